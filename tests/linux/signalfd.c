/* signalfd4: blocked signals read as signalfd_siginfo records (raise and
 * kill, their codes and sender), poll and epoll readiness, SFD_NONBLOCK /
 * SFD_CLOEXEC, EAGAIN when empty, several records in one read, a blocking
 * read woken by another thread's kill, updating the set of an existing
 * fd, and the errors. */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ready(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, 0);
    return n == 1 ? p.revents : n;
}

static void *killer(void *arg) {
    (void)arg;
    usleep(50000);
    kill(getpid(), SIGUSR2);
    return NULL;
}

int main(void) {
    test_init();
    sigset_t block, one, both;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    CHECK("block", sigprocmask(SIG_BLOCK, &block, NULL) == 0);
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    both = block;

    int fd = signalfd(-1, &one, SFD_NONBLOCK | SFD_CLOEXEC);
    CHECK("signalfd", fd >= 0);
    CHECK("cloexec", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK("nonblock", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    struct signalfd_siginfo si[4];
    EXPECT_ERR("empty_eagain", read(fd, si, sizeof si[0]), EAGAIN);
    printf("idle_poll=%d\n", ready(fd));

    CHECK("raise", raise(SIGUSR1) == 0);
    printf("raised_poll=%#x\n", ready(fd));
    ssize_t n = read(fd, si, sizeof si);
    printf("read_raise=%zd signo=%u code=%d from_me=%d\n", n, si[0].ssi_signo, si[0].ssi_code,
           si[0].ssi_pid == (unsigned)getpid());
    EXPECT_ERR("drained_eagain", read(fd, si, sizeof si[0]), EAGAIN);
    sigset_t pend;
    sigpending(&pend);
    printf("pending_after_read=%d\n", sigismember(&pend, SIGUSR1));

    CHECK("kill", kill(getpid(), SIGUSR1) == 0);
    n = read(fd, si, sizeof si);
    printf("read_kill=%zd signo=%u code=%d from_me=%d\n", n, si[0].ssi_signo, si[0].ssi_code,
           si[0].ssi_pid == (unsigned)getpid());
    EXPECT_ERR("short_buffer", read(fd, si, 64), EINVAL);

    /* SIGUSR2 is not in the set: pending, but the fd is not ready. */
    CHECK("raise_usr2", raise(SIGUSR2) == 0);
    printf("other_signal_poll=%d\n", ready(fd));
    CHECK("update_mask", signalfd(fd, &both, 0) == fd);
    printf("updated_poll=%#x\n", ready(fd));
    CHECK("raise_usr1", raise(SIGUSR1) == 0);
    n = read(fd, si, sizeof si);
    printf("read_two=%zd first=%u second=%u\n", n, si[0].ssi_signo, si[1].ssi_signo);

    /* epoll: nothing, then one event per new signal. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 7}, got;
    CHECK("epoll_add", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    printf("epoll_idle=%d\n", epoll_wait(ep, &got, 1, 0));
    CHECK("kill_usr2", kill(getpid(), SIGUSR2) == 0);
    n = epoll_wait(ep, &got, 1, 1000);
    printf("epoll_signal=%zd events=%#x data=%u\n", n, got.events, got.data.u32);
    printf("epoll_et_quiet=%d\n", epoll_wait(ep, &got, 1, 0));
    n = read(fd, si, sizeof si);
    printf("epoll_read=%zd signo=%u\n", n, si[0].ssi_signo);
    close(ep);

    /* A blocking signalfd: the read waits for another thread's kill. */
    int bfd = signalfd(-1, &both, 0);
    CHECK("blocking_fd", bfd >= 0 && (fcntl(bfd, F_GETFL) & O_NONBLOCK) == 0);
    CHECK("no_cloexec", (fcntl(bfd, F_GETFD) & FD_CLOEXEC) == 0);
    pthread_t t;
    pthread_create(&t, NULL, killer, NULL);
    n = read(bfd, si, sizeof si);
    printf("blocking_read=%zd signo=%u code=%d\n", n, si[0].ssi_signo, si[0].ssi_code);
    pthread_join(t, NULL);
    close(bfd);

    /* Errors (not a wrong sizemask: qemu-user, the arm64 reference, takes any). */
    EXPECT_ERR("bad_flags", syscall(SYS_signalfd4, -1, &one, 8, 1), EINVAL);
    int p[2];
    CHECK("pipe", pipe(p) == 0);
    EXPECT_ERR("not_a_signalfd", signalfd(p[0], &one, 0), EINVAL);
    EXPECT_ERR("bad_fd", signalfd(999, &one, 0), EBADF);
    EXPECT_ERR("write", write(fd, si, sizeof si[0]), EINVAL);
    close(p[0]);
    close(p[1]);
    close(fd);
    return test_exit();
}
