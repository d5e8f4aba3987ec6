/* Pipes, dup/dup2/dup3 and fcntl: data through a pipe, EOF after the write
 * end closes, O_NONBLOCK → EAGAIN, close-on-exec flags, F_DUPFD_CLOEXEC,
 * EPIPE (SIGPIPE ignored) and lseek on a pipe → ESPIPE. */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

int main(void) {
    test_init();
    int p[2];
    char buf[32];
    CHECK("pipe", pipe(p) == 0);
    CHECK("write", write(p[1], "ping", 4) == 4);
    CHECK("read", read(p[0], buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0);
    CHECK("lseek_espipe", lseek(p[0], 0, SEEK_SET) == -1 && errno == ESPIPE);
    int fl = fcntl(p[0], F_GETFL);
    CHECK("getfl_rdonly", fl >= 0 && (fl & O_ACCMODE) == O_RDONLY);
    CHECK("setfl_nonblock", fcntl(p[0], F_SETFL, fl | O_NONBLOCK) == 0);
    CHECK("getfl_nonblock", (fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
    CHECK("read_empty_eagain", read(p[0], buf, sizeof buf) == -1 && errno == EAGAIN);
    CHECK("getfd_default", fcntl(p[0], F_GETFD) == 0);
    CHECK("setfd_cloexec", fcntl(p[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(p[0], F_GETFD) == FD_CLOEXEC);

    int d;
    CHECK("dup", (d = dup(p[1])) >= 0);
    CHECK("dup_no_cloexec", fcntl(d, F_GETFD) == 0);
    CHECK("write_via_dup", write(d, "dup", 3) == 3);
    CHECK("read_dup_data", read(p[0], buf, sizeof buf) == 3 && memcmp(buf, "dup", 3) == 0);
    CHECK("dup2", dup2(p[1], 20) == 20);
    CHECK("dup2_same", dup2(20, 20) == 20);
    CHECK("dup3_cloexec", dup3(p[1], 21, O_CLOEXEC) == 21 && fcntl(21, F_GETFD) == FD_CLOEXEC);
    CHECK("dup3_same_einval", dup3(21, 21, 0) == -1 && errno == EINVAL);
    int c;
    CHECK("dupfd_cloexec_min", (c = fcntl(p[1], F_DUPFD_CLOEXEC, 30)) >= 30 && fcntl(c, F_GETFD) == FD_CLOEXEC);
    CHECK("dupfd_lowest_free", fcntl(p[1], F_DUPFD, 30) == c + 1);
    CHECK("badf", dup(999) == -1 && errno == EBADF);

    /* Close every write end: the reader sees EOF. */
    close(p[1]);
    close(d);
    close(20);
    close(21);
    close(c);
    close(c + 1);
    CHECK("setfl_block", fcntl(p[0], F_SETFL, fl) == 0);
    CHECK("read_eof", read(p[0], buf, sizeof buf) == 0);
    close(p[0]);

    CHECK("pipe2_cloexec_nonblock", pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0 &&
                                        fcntl(p[0], F_GETFD) == FD_CLOEXEC &&
                                        (fcntl(p[1], F_GETFL) & O_NONBLOCK));
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    CHECK("write_no_reader_epipe", write(p[1], "x", 1) == -1 && errno == EPIPE);
    close(p[1]);

    /* stdout is a valid descriptor on both systems. */
    CHECK("stdout_open", fcntl(1, F_GETFD) >= 0);
    return test_exit();
}
