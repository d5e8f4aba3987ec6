/* Readiness and waiting for many descriptors: poll/ppoll, select/pselect6,
 * epoll (level, edge, one-shot, MOD/DEL, nesting, errors), eventfd and
 * timerfd, a thread waking a waiter, a signal interrupting a wait.
 * Only deterministic facts are printed (counts and flags, never times). */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int wait1(int ep, int timeout, struct epoll_event *out) {
    return epoll_wait(ep, out, 1, timeout);
}

static void test_poll(void) {
    int p[2];
    CHECK("pipe", pipe(p) == 0);
    struct pollfd f[4] = {
        {p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}, {99, POLLIN, 0}};
    int n = poll(f, 4, 0);
    printf("poll_initial=%d revents=%#x,%#x,%#x,%#x\n", n, f[0].revents, f[1].revents,
           f[2].revents, f[3].revents);
    long long t0 = now_ms();
    n = poll(f, 1, 50);
    printf("poll_timeout_50ms=%d\n", n);
    CHECK("poll_waited_50ms", now_ms() - t0 >= 50);
    CHECK("write", write(p[1], "ab", 2) == 2);
    n = poll(f, 2, 0);
    printf("poll_after_write=%d revents=%#x,%#x\n", n, f[0].revents, f[1].revents);
    close(p[1]);
    n = poll(f, 1, 0);
    printf("poll_writer_closed=%d revents=%#x\n", n, f[0].revents);
    char buf[8];
    CHECK("drain", read(p[0], buf, sizeof buf) == 2);
    f[0].events = 0;
    n = poll(f, 1, 1000);
    printf("poll_hup_unasked=%d revents=%#x\n", n, f[0].revents);
    close(p[0]);

    CHECK("pipe2", pipe(p) == 0);
    close(p[0]);
    struct pollfd w = {p[1], POLLOUT, 0};
    n = poll(&w, 1, 0);
    printf("poll_reader_closed=%d revents=%#x\n", n, w.revents);
    close(p[1]);

    /* volatile: keeps the compiler from refusing the bad calls. */
    struct pollfd *volatile unmapped = (struct pollfd *)8;
    volatile nfds_t too_many = 0x7fffffff;
    CHECK("poll_efault", poll(unmapped, 1, 0) == -1 && errno == EFAULT);
    CHECK("poll_nfds_too_big", poll(f, too_many, 0) == -1 && errno == EINVAL);

    CHECK("pipe3", pipe(p) == 0);
    struct pollfd r = {p[0], POLLIN, 0};
    struct timespec ts = {0, 20 * 1000000};
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    t0 = now_ms();
    n = ppoll(&r, 1, &ts, &mask);
    printf("ppoll_timeout=%d\n", n);
    CHECK("ppoll_waited_20ms", now_ms() - t0 >= 20);
    struct timespec bad = {0, 1000000000L};
    CHECK("ppoll_bad_timespec", ppoll(&r, 1, &bad, NULL) == -1 && errno == EINVAL);
    CHECK("write3", write(p[1], "x", 1) == 1);
    struct timespec zero = {0, 0};
    n = ppoll(&r, 1, &zero, NULL);
    printf("ppoll_ready=%d revents=%#x\n", n, r.revents);
    close(p[0]);
    close(p[1]);
}

static void test_select(void) {
    int p[2];
    CHECK("select_pipe", pipe(p) == 0);
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(p[0], &rd);
    FD_SET(p[1], &wr);
    struct timeval tv = {0, 0};
    int n = select(p[1] + 1, &rd, &wr, NULL, &tv);
    printf("select_initial=%d rd=%d wr=%d\n", n, FD_ISSET(p[0], &rd) != 0,
           FD_ISSET(p[1], &wr) != 0);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    tv.tv_sec = 0;
    tv.tv_usec = 30000;
    long long t0 = now_ms();
    n = select(p[0] + 1, &rd, NULL, NULL, &tv);
    printf("select_timeout=%d rd=%d tv_left=%ld.%06ld\n", n, FD_ISSET(p[0], &rd) != 0,
           (long)tv.tv_sec, (long)tv.tv_usec);
    CHECK("select_waited_30ms", now_ms() - t0 >= 30);
    CHECK("select_write", write(p[1], "x", 1) == 1);
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(p[0], &rd);
    FD_SET(p[1], &wr);
    tv.tv_sec = 1;
    tv.tv_usec = 0;
    n = select(p[1] + 1, &rd, &wr, NULL, &tv);
    printf("select_both=%d rd=%d wr=%d\n", n, FD_ISSET(p[0], &rd) != 0,
           FD_ISSET(p[1], &wr) != 0);

    FD_ZERO(&rd);
    FD_SET(50, &rd);
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    CHECK("select_ebadf", select(51, &rd, NULL, NULL, &tv) == -1 && errno == EBADF);
    CHECK("select_negative_nfds", select(-1, NULL, NULL, NULL, &tv) == -1 && errno == EINVAL);
    tv.tv_usec = -1;
    CHECK("select_bad_timeval", select(1, NULL, NULL, NULL, &tv) == -1 && errno == EINVAL);

    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timespec ts = {1, 0};
    sigset_t mask;
    sigemptyset(&mask);
    n = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &mask);
    printf("pselect_ready=%d rd=%d\n", n, FD_ISSET(p[0], &rd) != 0);
    close(p[0]);
    close(p[1]);
}

static void test_epoll_modes(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK("epoll_create1", ep >= 0);
    CHECK("epoll_cloexec", (fcntl(ep, F_GETFD) & FD_CLOEXEC) != 0);
    int lt[2], et[2], one[2];
    CHECK("epoll_pipes", pipe2(lt, O_NONBLOCK) == 0 && pipe2(et, O_NONBLOCK) == 0 &&
                             pipe2(one, O_NONBLOCK) == 0);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
    CHECK("ctl_add_lt", epoll_ctl(ep, EPOLL_CTL_ADD, lt[0], &e) == 0);
    struct epoll_event got;
    int n = wait1(ep, 0, &got);
    printf("lt_empty=%d\n", n);
    CHECK("lt_write", write(lt[1], "ab", 2) == 2);
    n = wait1(ep, 0, &got);
    printf("lt_first=%d events=%#x data=%#llx\n", n, got.events,
           (unsigned long long)got.data.u64);
    n = wait1(ep, 0, &got);
    printf("lt_again=%d\n", n);
    CHECK("ctl_del_lt", epoll_ctl(ep, EPOLL_CTL_DEL, lt[0], NULL) == 0);
    n = wait1(ep, 0, &got);
    printf("after_del=%d\n", n);

    e.events = EPOLLIN | EPOLLET;
    e.data.u32 = 2;
    CHECK("ctl_add_et", epoll_ctl(ep, EPOLL_CTL_ADD, et[0], &e) == 0);
    CHECK("et_write", write(et[1], "a", 1) == 1);
    n = wait1(ep, 0, &got);
    printf("et_first=%d data=%u\n", n, got.data.u32);
    n = wait1(ep, 0, &got);
    printf("et_no_new_data=%d\n", n);
    CHECK("et_write2", write(et[1], "b", 1) == 1);
    n = wait1(ep, 0, &got);
    printf("et_new_data=%d\n", n);
    n = wait1(ep, 0, &got);
    printf("et_again=%d\n", n);
    CHECK("ctl_del_et", epoll_ctl(ep, EPOLL_CTL_DEL, et[0], NULL) == 0);

    e.events = EPOLLIN | EPOLLONESHOT;
    e.data.u32 = 3;
    CHECK("ctl_add_oneshot", epoll_ctl(ep, EPOLL_CTL_ADD, one[0], &e) == 0);
    CHECK("oneshot_write", write(one[1], "a", 1) == 1);
    n = wait1(ep, 0, &got);
    printf("oneshot_first=%d data=%u\n", n, got.data.u32);
    CHECK("oneshot_write2", write(one[1], "b", 1) == 1);
    n = wait1(ep, 0, &got);
    printf("oneshot_disabled=%d\n", n);
    e.events = EPOLLIN | EPOLLOUT;
    e.data.u32 = 33;
    CHECK("ctl_mod", epoll_ctl(ep, EPOLL_CTL_MOD, one[0], &e) == 0);
    n = wait1(ep, 0, &got);
    printf("after_mod=%d events=%#x data=%u\n", n, got.events, got.data.u32);

    /* The write end, for POLLOUT; then HUP when it closes. */
    close(et[0]);
    e.events = EPOLLIN;
    e.data.u32 = 3;
    CHECK("ctl_mod_back", epoll_ctl(ep, EPOLL_CTL_MOD, one[0], &e) == 0);
    e.events = EPOLLOUT;
    e.data.u32 = 4;
    char buf[8];
    CHECK("oneshot_drain", read(one[0], buf, sizeof buf) == 2);
    CHECK("ctl_add_out", epoll_ctl(ep, EPOLL_CTL_ADD, lt[1], &e) == 0);
    n = wait1(ep, 0, &got);
    printf("writer_ready=%d events=%#x data=%u\n", n, got.events, got.data.u32);
    CHECK("ctl_del_out", epoll_ctl(ep, EPOLL_CTL_DEL, lt[1], NULL) == 0);
    close(one[1]);
    n = wait1(ep, 0, &got);
    printf("hup=%d events=%#x data=%u\n", n, got.events, got.data.u32);

    /* Closing the only descriptor of a file removes its entry. */
    CHECK("ctl_del_one", epoll_ctl(ep, EPOLL_CTL_DEL, one[0], NULL) == 0);
    close(one[0]);
    int q[2];
    CHECK("close_pipe", pipe(q) == 0);
    e.events = EPOLLIN;
    e.data.u32 = 5;
    CHECK("ctl_add_closed", epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &e) == 0);
    int d = dup(q[0]);
    close(q[0]);
    CHECK("close_write", write(q[1], "z", 1) == 1);
    n = wait1(ep, 0, &got);
    printf("dup_keeps_entry=%d data=%u\n", n, got.data.u32);
    close(d);
    n = wait1(ep, 0, &got);
    printf("last_close_removes=%d\n", n);
    CHECK("removed_fd_is_enoent", epoll_ctl(ep, EPOLL_CTL_DEL, q[1], NULL) == -1 &&
                                      errno == ENOENT);
    close(q[1]);
    close(lt[0]);
    close(lt[1]);
    close(et[1]);
    close(ep);
}

static void test_epoll_errors(void) {
    int ep = epoll_create(1);
    CHECK("epoll_create", ep >= 0);
#ifdef SYS_epoll_create
    /* The raw call: some libcs map epoll_create to epoll_create1(0). */
    CHECK("epoll_create_0", syscall(SYS_epoll_create, 0) == -1 && errno == EINVAL);
#endif
    CHECK("epoll_create1_flags", epoll_create1(1) == -1 && errno == EINVAL);
    int p[2];
    CHECK("err_pipe", pipe(p) == 0);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
    CHECK("ctl_mod_missing", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e) == -1 && errno == ENOENT);
    CHECK("ctl_del_missing", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], &e) == -1 && errno == ENOENT);
    CHECK("ctl_add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e) == 0);
    CHECK("ctl_add_twice", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e) == -1 && errno == EEXIST);
    CHECK("ctl_bad_op", epoll_ctl(ep, 99, p[0], &e) == -1 && errno == EINVAL);
    CHECK("ctl_self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &e) == -1 && errno == EINVAL);
    CHECK("ctl_not_epoll", epoll_ctl(p[1], EPOLL_CTL_ADD, p[0], &e) == -1 && errno == EINVAL);
    CHECK("ctl_bad_fd", epoll_ctl(ep, EPOLL_CTL_ADD, 77, &e) == -1 && errno == EBADF);
    CHECK("ctl_bad_epfd", epoll_ctl(77, EPOLL_CTL_ADD, p[0], &e) == -1 && errno == EBADF);
    CHECK("ctl_efault",
          epoll_ctl(ep, EPOLL_CTL_ADD, p[1], (struct epoll_event *)8) == -1 && errno == EFAULT);
    char dir[] = "/tmp/skiff-poll-XXXXXX";
    CHECK("mkdtemp", mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    int reg = open(path, O_CREAT | O_RDWR, 0600);
    CHECK("ctl_regular_file_eperm",
          epoll_ctl(ep, EPOLL_CTL_ADD, reg, &e) == -1 && errno == EPERM);
    close(reg);
    unlink(path);
    rmdir(dir);
    e.events = EPOLLIN | EPOLLEXCLUSIVE;
    CHECK("ctl_add_exclusive", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &e) == 0);
    CHECK("ctl_mod_exclusive", epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &e) == -1 && errno == EINVAL);
    int ep2 = epoll_create1(0);
    e.events = EPOLLIN;
    CHECK("nest", epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &e) == 0);
    CHECK("nest_loop", epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &e) == -1 && errno == ELOOP);
    struct epoll_event out[2];
    CHECK("wait_maxevents_0", epoll_wait(ep, out, 0, 0) == -1 && errno == EINVAL);
    CHECK("wait_not_epoll", epoll_wait(p[0], out, 1, 0) == -1 && errno == EINVAL);
    CHECK("wait_bad_fd", epoll_wait(77, out, 1, 0) == -1 && errno == EBADF);

    /* An epoll is pollable, and nests. */
    struct pollfd pf = {ep, POLLIN, 0};
    int n = poll(&pf, 1, 0);
    printf("epoll_poll_idle=%d\n", n);
    CHECK("nest_write", write(p[1], "x", 1) == 1);
    n = poll(&pf, 1, 0);
    printf("epoll_poll_ready=%d revents=%#x\n", n, pf.revents);
    n = epoll_wait(ep2, out, 2, 0);
    printf("nested_ready=%d events=%#x\n", n, out[0].events);
    close(ep2);
    close(ep);
    close(p[0]);
    close(p[1]);
}

static void test_eventfd(void) {
    int e = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    CHECK("eventfd", e >= 0);
    uint64_t v = 0;
    int ones = 0;
    for (int i = 0; i < 3; i++)
        ones += read(e, &v, 8) == 8 && v == 1;
    printf("semaphore_reads_of_1=%d\n", ones);
    CHECK("semaphore_empty_eagain", read(e, &v, 8) == -1 && errno == EAGAIN);
    CHECK("eventfd_short_read", read(e, &v, 4) == -1 && errno == EINVAL);
    v = 2;
    CHECK("eventfd_write", write(e, &v, 8) == 8);
    CHECK("eventfd_short_write", write(e, &v, 4) == -1 && errno == EINVAL);
    v = UINT64_MAX;
    CHECK("eventfd_write_max_einval", write(e, &v, 8) == -1 && errno == EINVAL);
    v = UINT64_MAX - 1;
    CHECK("eventfd_overflow_eagain", write(e, &v, 8) == -1 && errno == EAGAIN);
    close(e);

    e = eventfd(0, EFD_CLOEXEC);
    CHECK("eventfd_cloexec", (fcntl(e, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK("eventfd_bad_flags", eventfd(0, 0x10) == -1 && errno == EINVAL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = 7};
    CHECK("eventfd_epoll_add", epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == 0);
    struct epoll_event got;
    int n = wait1(ep, 0, &got);
    printf("eventfd_writable=%d events=%#x\n", n, got.events);
    n = wait1(ep, 0, &got);
    printf("eventfd_et_quiet=%d\n", n);
    v = 5;
    CHECK("eventfd_write5", write(e, &v, 8) == 8);
    v = 6;
    CHECK("eventfd_write6", write(e, &v, 8) == 8);
    n = wait1(ep, 0, &got);
    printf("eventfd_readable=%d events=%#x data=%u\n", n, got.events, got.data.u32);
    CHECK("eventfd_sum", read(e, &v, 8) == 8 && v == 11);
    close(ep);
    close(e);
}

static void test_timerfd(void) {
    CHECK("timerfd_bad_clock", timerfd_create(12345, 0) == -1 && errno == EINVAL);
    CHECK("timerfd_bad_flags", timerfd_create(CLOCK_MONOTONIC, 1) == -1 && errno == EINVAL);
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    CHECK("timerfd_create", t >= 0);
    uint64_t v;
    CHECK("timerfd_unarmed_eagain", read(t, &v, 8) == -1 && errno == EAGAIN);
    struct itimerspec its = {{0, 10 * 1000000}, {0, 10 * 1000000}}, old;
    CHECK("timerfd_settime", timerfd_settime(t, 0, &its, &old) == 0);
    printf("old_was_disarmed=%d\n", old.it_value.tv_sec == 0 && old.it_value.tv_nsec == 0);
    struct itimerspec cur;
    CHECK("timerfd_gettime", timerfd_gettime(t, &cur) == 0);
    printf("gettime_interval_ns=%ld value_in_range=%d\n", cur.it_interval.tv_nsec,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 &&
               cur.it_value.tv_nsec <= 10 * 1000000);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = 10};
    CHECK("timerfd_epoll_add", epoll_ctl(ep, EPOLL_CTL_ADD, t, &e) == 0);
    struct epoll_event got;
    int n = wait1(ep, 2000, &got);
    printf("timerfd_epoll=%d data=%u\n", n, got.data.u32);
    sleep_ms(60);
    CHECK("timerfd_read", read(t, &v, 8) == 8);
    CHECK("timerfd_interval_expirations_at_least_5", v >= 5);
    CHECK("timerfd_short_read", read(t, &v, 4) == -1 && errno == EINVAL);
    struct itimerspec off = {{0, 0}, {0, 0}};
    CHECK("timerfd_disarm", timerfd_settime(t, 0, &off, &old) == 0);
    printf("old_interval_ns=%ld\n", old.it_interval.tv_nsec);
    CHECK("timerfd_gettime2", timerfd_gettime(t, &cur) == 0);
    printf("disarmed=%d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    sleep_ms(15);
    n = wait1(ep, 0, &got);
    printf("disarmed_epoll=%d\n", n);
    close(ep);
    close(t);

    /* One-shot, blocking read; an absolute time in the past fires at once. */
    t = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec shot = {{0, 0}, {0, 20 * 1000000}};
    CHECK("oneshot_settime", timerfd_settime(t, 0, &shot, NULL) == 0);
    long long t0 = now_ms();
    CHECK("oneshot_read", read(t, &v, 8) == 8);
    printf("oneshot_expirations=%llu\n", (unsigned long long)v);
    CHECK("oneshot_waited_20ms", now_ms() - t0 >= 19);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    close(t);
    t = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct itimerspec past = {{0, 0}, {now.tv_sec - 10, 0}};
    CHECK("abstime_settime", timerfd_settime(t, TFD_TIMER_ABSTIME, &past, NULL) == 0);
    n = read(t, &v, 8);
    printf("abstime_past=%d expirations=%llu\n", n, (unsigned long long)v);
    int p[2];
    CHECK("timerfd_pipe", pipe(p) == 0);
    CHECK("settime_not_timerfd", timerfd_settime(p[0], 0, &shot, NULL) == -1 && errno == EINVAL);
    struct itimerspec bad = {{0, 0}, {0, 1000000000L}};
    CHECK("settime_bad_timespec", timerfd_settime(t, 0, &bad, NULL) == -1 && errno == EINVAL);
    close(p[0]);
    close(p[1]);
    close(t);
}

static int wake_fd;

static void *writer(void *arg) {
    (void)arg;
    sleep_ms(30);
    if (write(wake_fd, "w", 1) != 1)
        return (void *)1;
    return NULL;
}

static void test_thread_wakes_epoll(void) {
    int p[2];
    CHECK("thread_pipe", pipe(p) == 0);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0xabcdef};
    CHECK("thread_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e) == 0);
    wake_fd = p[1];
    pthread_t th;
    CHECK("thread_create", pthread_create(&th, NULL, writer, NULL) == 0);
    struct epoll_event got;
    int n = epoll_wait(ep, &got, 1, -1);
    printf("thread_woke_epoll=%d data=%#llx\n", n, (unsigned long long)got.data.u64);
    void *ret;
    pthread_join(th, &ret);
    CHECK("thread_wrote", ret == NULL);
    char c;
    CHECK("thread_drain", read(p[0], &c, 1) == 1);
    /* And a poll() in the main thread. */
    CHECK("thread_create2", pthread_create(&th, NULL, writer, NULL) == 0);
    struct pollfd pf = {p[0], POLLIN, 0};
    n = poll(&pf, 1, -1);
    printf("thread_woke_poll=%d revents=%#x\n", n, pf.revents);
    pthread_join(th, &ret);
    close(ep);
    close(p[0]);
    close(p[1]);
}

static pthread_t main_thread;
static volatile sig_atomic_t got_signal;

static void on_usr1(int sig) {
    (void)sig;
    got_signal++;
}

static volatile int wait_over;

/* Interrupts the main thread's wait; if the wait goes on (the signal did
 * not end it), ends it after 2 s with a byte on `arg`'s pipe, if any, so
 * a failure shows as a wrong line rather than a hang. */
static void *signaller(void *arg) {
    sleep_ms(30);
    pthread_kill(main_thread, SIGUSR1);
    for (int i = 0; i < 200 && !wait_over; i++)
        sleep_ms(10);
    if (!wait_over && arg != NULL && write(*(int *)arg, "s", 1) != 1)
        return (void *)1;
    return NULL;
}

static void test_signal_interrupts(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    main_thread = pthread_self();
    int p[2];
    CHECK("sig_pipe", pipe(p) == 0);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e);
    pthread_t th;
    wait_over = 0;
    pthread_create(&th, NULL, signaller, NULL);
    struct epoll_event got;
    int n = epoll_wait(ep, &got, 1, 3000);
    int err = errno;
    wait_over = 1;
    pthread_join(th, NULL);
    printf("epoll_wait_signal=%d errno=%s handled=%d\n", n, errname(err), got_signal);

    got_signal = 0;
    wait_over = 0;
    pthread_create(&th, NULL, signaller, NULL);
    struct pollfd pf = {p[0], POLLIN, 0};
    n = poll(&pf, 1, 3000);
    err = errno;
    wait_over = 1;
    pthread_join(th, NULL);
    printf("poll_signal=%d errno=%s handled=%d\n", n, errname(err), got_signal);

    got_signal = 0;
    wait_over = 0;
    pthread_create(&th, NULL, signaller, &p[1]);
    char c;
    ssize_t r = read(p[0], &c, 1);
    err = errno;
    wait_over = 1;
    pthread_join(th, NULL);
    printf("pipe_read_signal=%zd errno=%s handled=%d\n", r, errname(err), got_signal);
    close(ep);
    close(p[0]);
    close(p[1]);
}

int main(void) {
    test_init();
    test_poll();
    test_select();
    test_epoll_modes();
    test_epoll_errors();
    test_eventfd();
    test_timerfd();
    test_thread_wakes_epoll();
    test_signal_interrupts();
    return test_exit();
}
