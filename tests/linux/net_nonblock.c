/* Non-blocking TCP and the send/receive flags: a non-blocking connect
 * waited for with poll (POLLOUT, SO_ERROR 0; refused: SO_ERROR
 * ECONNREFUSED), accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC, EAGAIN on empty
 * reads, half-close both ways, SO_REUSEADDR rebinding a closed listener's
 * port, getsockname/getpeername of both ends, MSG_PEEK, MSG_DONTWAIT,
 * MSG_WAITALL, sendmmsg/recvmmsg over UDP, and SIGPIPE/EPIPE (ignored,
 * MSG_NOSIGNAL, a handler, then the default action: status 141). */
#include "common.h"
#include "inet.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int listener(int family, int port) {
    int s = socket(family, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(family, &ss, port);
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&ss, l) != 0 || listen(s, 8) != 0)
        return -1;
    return s;
}

/* A connected pair over `family`: *c the client, *a the accepted end. */
static int tcp_pair(int family, int *c, int *a) {
    int s = listener(family, 0);
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(family, &ss, port_of(s));
    *c = socket(family, SOCK_STREAM, 0);
    int ok = s >= 0 && connect(*c, (struct sockaddr *)&ss, l) == 0 && (*a = accept(s, NULL, NULL)) >= 0;
    close(s);
    return ok;
}

static int poll_one(int fd, short events, int ms) {
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, 1, ms);
    return n == 1 ? p.revents : -1;
}

#define SHOWN (POLLIN | POLLOUT | POLLERR | POLLHUP)

static void nb_connect(const char *tag, int family) {
    char what[64];
#define T(x) (snprintf(what, sizeof what, "%s_%s", tag, x), what)
    int s = listener(family, 0);
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(family, &ss, port_of(s));
    int c = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EXPECT_ERR(T("connect_einprogress"), connect(c, (struct sockaddr *)&ss, l), EINPROGRESS);
    int r = poll_one(c, POLLOUT, 5000);
    printf("%s_connected_revents=%#x\n", tag, r & SHOWN);
    int err = -1;
    socklen_t el = sizeof err;
    CHECK(T("so_error_0"), getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0);

    /* accept4 flags; plain accept never inherits O_NONBLOCK. */
    CHECK(T("listener_nonblock"), fcntl(s, F_SETFL, O_NONBLOCK) == 0);
    printf("%s_listener_revents=%#x\n", tag, poll_one(s, POLLIN, 5000) & SHOWN);
    int a = accept4(s, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(T("accept4"), a >= 0);
    CHECK(T("accept4_nonblock"), (fcntl(a, F_GETFL) & O_NONBLOCK) != 0);
    CHECK(T("accept4_cloexec"), (fcntl(a, F_GETFD) & FD_CLOEXEC) != 0);
    EXPECT_ERR(T("accept_empty"), accept(s, NULL, NULL), EAGAIN);
    int c2 = socket(family, SOCK_STREAM, 0);
    CHECK(T("connect_blocking"), connect(c2, (struct sockaddr *)&ss, l) == 0);
    poll_one(s, POLLIN, 5000);
    int a2 = accept(s, NULL, NULL);
    CHECK(T("accept_plain_blocking"), a2 >= 0 && (fcntl(a2, F_GETFL) & O_NONBLOCK) == 0 &&
                                          (fcntl(a2, F_GETFD) & FD_CLOEXEC) == 0);

    /* Names of both ends agree. */
    struct sockaddr_storage x, y;
    socklen_t xl = sizeof x, yl = sizeof y;
    CHECK(T("names_client_to_server"), getsockname(c2, (struct sockaddr *)&x, &xl) == 0 &&
                                           getpeername(a2, (struct sockaddr *)&y, &yl) == 0 &&
                                           same_addr(&x, xl, &y, yl));
    xl = sizeof x, yl = sizeof y;
    CHECK(T("names_server_to_client"), getsockname(a2, (struct sockaddr *)&x, &xl) == 0 &&
                                           getpeername(c2, (struct sockaddr *)&y, &yl) == 0 &&
                                           same_addr(&x, xl, &y, yl) && same_addr(&x, xl, &ss, l));

    /* Empty reads. */
    char buf[64];
    EXPECT_ERR(T("read_empty_eagain"), read(a, buf, sizeof buf), EAGAIN);
    EXPECT_ERR(T("recv_dontwait_eagain"), recv(a2, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK(T("write_nb"), write(c, "ping", 4) == 4);
    printf("%s_readable_revents=%#x\n", tag, poll_one(a, POLLIN, 5000) & SHOWN);
    CHECK(T("read_nb"), read(a, buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0);

    /* Half-close: c stops writing; a reads EOF and still writes to c. */
    CHECK(T("shut_wr"), shutdown(c, SHUT_WR) == 0);
    printf("%s_eof_revents=%#x\n", tag, poll_one(a, POLLIN, 5000) & SHOWN);
    CHECK(T("peer_reads_eof"), read(a, buf, sizeof buf) == 0);
    CHECK(T("peer_still_writes"), write(a, "back", 4) == 4);
    poll_one(c, POLLIN, 5000);
    CHECK(T("half_closed_reads"), read(c, buf, sizeof buf) == 4 && memcmp(buf, "back", 4) == 0);
    EXPECT_ERR(T("write_after_shut_wr"), send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    close(a);
    printf("%s_closed_revents=%#x\n", tag, poll_one(c, POLLIN, 5000) & SHOWN);
    CHECK(T("eof_after_close"), read(c, buf, sizeof buf) == 0);
    close(c);
    close(a2);
    close(c2);

    /* A port nobody listens on. */
    int port = port_of(s);
    close(s);
    l = lo_addr(family, &ss, port);
    c = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EXPECT_ERR(T("refused_einprogress"), connect(c, (struct sockaddr *)&ss, l), EINPROGRESS);
    r = poll_one(c, POLLOUT, 5000);
    printf("%s_refused_revents=%#x\n", tag, r & SHOWN);
    el = sizeof err;
    CHECK(T("refused_so_error"), getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == ECONNREFUSED);
    close(c);
#undef T
}

/* SO_REUSEADDR: a listener's port is bound again after it closed (its
 * accepted connection closed first, from the server side). */
static void reuseaddr(void) {
    int s = listener(AF_INET, 0);
    int port = port_of(s);
    int c, a = -1;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(AF_INET, &ss, port);
    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("reuse_connect", connect(c, (struct sockaddr *)&ss, l) == 0 && (a = accept(s, NULL, NULL)) >= 0);
    close(a);
    char b;
    CHECK("reuse_client_eof", read(c, &b, 1) == 0);
    close(c);
    close(s);
    s = listener(AF_INET, port);
    CHECK("reuse_rebind_listen", s >= 0 && port_of(s) == port);
    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("reuse_connect_again", connect(c, (struct sockaddr *)&ss, l) == 0 && (a = accept(s, NULL, NULL)) >= 0);
    close(a);
    close(c);
    close(s);
}

static void *slow_writer(void *p) {
    int fd = *(int *)p;
    write(fd, "abc", 3);
    usleep(50000);
    write(fd, "defg", 4);
    usleep(50000);
    write(fd, "hij", 3);
    return NULL;
}

static void flags(void) {
    int c, a;
    CHECK("flags_pair", tcp_pair(AF_INET, &c, &a));
    char buf[32];
    CHECK("flags_write", write(c, "hello", 5) == 5);
    poll_one(a, POLLIN, 5000);
    CHECK("peek", recv(a, buf, 3, MSG_PEEK) == 3 && memcmp(buf, "hel", 3) == 0);
    CHECK("peek_again", recv(a, buf, sizeof buf, MSG_PEEK) == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK("read_after_peek", recv(a, buf, sizeof buf, 0) == 5 && memcmp(buf, "hello", 5) == 0);
    EXPECT_ERR("dontwait_empty", recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    EXPECT_ERR("peek_dontwait_empty", recv(a, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT), EAGAIN);
    pthread_t t;
    pthread_create(&t, NULL, slow_writer, &c);
    CHECK("waitall", recv(a, buf, 10, MSG_WAITALL) == 10 && memcmp(buf, "abcdefghij", 10) == 0);
    pthread_join(t, NULL);
    /* MSG_WAITALL stops early at EOF with what it has. */
    CHECK("waitall_tail", write(c, "xy", 2) == 2);
    shutdown(c, SHUT_WR);
    CHECK("waitall_eof", recv(a, buf, 10, MSG_WAITALL) == 2 && memcmp(buf, "xy", 2) == 0);
    close(a);
    close(c);
}

static void mmsg(int family, const char *tag) {
    char what[64];
#define T(x) (snprintf(what, sizeof what, "%s_%s", tag, x), what)
    struct sockaddr_storage ss[2], from[4];
    socklen_t l[2];
    int r[2], s = socket(family, SOCK_DGRAM, 0);
    for (int i = 0; i < 2; i++) {
        r[i] = socket(family, SOCK_DGRAM, 0);
        l[i] = lo_addr(family, &ss[i], 0);
        bind(r[i], (struct sockaddr *)&ss[i], l[i]);
        l[i] = lo_addr(family, &ss[i], port_of(r[i]));
    }
    /* Three datagrams, to two receivers. */
    struct mmsghdr m[4];
    struct iovec iov[4] = {{"one", 3}, {"two!", 4}, {"three", 5}, {0, 0}};
    memset(m, 0, sizeof m);
    for (int i = 0; i < 3; i++) {
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
        m[i].msg_hdr.msg_name = &ss[i == 1];
        m[i].msg_hdr.msg_namelen = l[i == 1];
    }
    CHECK(T("sendmmsg_3"), sendmmsg(s, m, 3, 0) == 3 && m[0].msg_len == 3 && m[1].msg_len == 4 &&
                               m[2].msg_len == 5);
    char bufs[4][16];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 4; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
        m[i].msg_hdr.msg_name = &from[i];
        m[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    poll_one(r[0], POLLIN, 5000);
    int n = recvmmsg(r[0], m, 4, MSG_DONTWAIT, NULL);
    printf("%s_recvmmsg=%d lens=%u,%u\n", tag, n, m[0].msg_len, m[1].msg_len);
    struct sockaddr_storage me;
    socklen_t ml = lo_addr(family, &me, port_of(s));
    CHECK(T("recvmmsg_data"), n == 2 && memcmp(bufs[0], "one", 3) == 0 && memcmp(bufs[1], "three", 5) == 0 &&
                                  same_addr(&from[0], m[0].msg_hdr.msg_namelen, &me, ml));
    poll_one(r[1], POLLIN, 5000);
    n = recvmmsg(r[1], m, 4, MSG_WAITFORONE, NULL);
    CHECK(T("recvmmsg_other"), n == 1 && m[0].msg_len == 4 && memcmp(bufs[0], "two!", 4) == 0);
    EXPECT_ERR(T("recvmmsg_empty"), recvmmsg(r[1], m, 4, MSG_DONTWAIT, NULL), EAGAIN);
    close(s);
    close(r[0]);
    close(r[1]);
#undef T
}

static volatile sig_atomic_t pipes_seen;
static void on_pipe(int sig) {
    if (sig == SIGPIPE)
        pipes_seen++;
}

static void sigpipe(void) {
    int p[2], c, a;
    char b[8];
    /* Ignored: EPIPE only. */
    signal(SIGPIPE, SIG_IGN);
    CHECK("ign_pipe", pipe(p) == 0 && close(p[0]) == 0);
    EXPECT_ERR("ign_pipe_epipe", write(p[1], "x", 1), EPIPE);
    close(p[1]);
    CHECK("ign_pair", tcp_pair(AF_INET, &c, &a));
    shutdown(c, SHUT_WR);
    EXPECT_ERR("ign_send_epipe", send(c, "x", 1, 0), EPIPE);
    close(a);
    close(c);

    /* A handler: it runs for each EPIPE unless MSG_NOSIGNAL. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_pipe;
    sigaction(SIGPIPE, &sa, NULL);
    CHECK("h_pipe", pipe(p) == 0 && close(p[0]) == 0);
    EXPECT_ERR("h_pipe_epipe", write(p[1], "x", 1), EPIPE);
    printf("h_pipe_signals=%d\n", (int)pipes_seen);
    struct iovec v = {"yy", 2};
    EXPECT_ERR("h_writev_epipe", writev(p[1], &v, 1), EPIPE);
    printf("h_writev_signals=%d\n", (int)pipes_seen);
    close(p[1]);
    CHECK("h_pair", tcp_pair(AF_INET6, &c, &a));
    shutdown(c, SHUT_WR);
    EXPECT_ERR("h_nosignal_epipe", send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    printf("h_nosignal_signals=%d\n", (int)pipes_seen);
    EXPECT_ERR("h_send_epipe", send(c, "x", 1, 0), EPIPE);
    printf("h_send_signals=%d\n", (int)pipes_seen);
    EXPECT_ERR("h_write_epipe", write(c, "x", 1), EPIPE);
    printf("h_write_signals=%d\n", (int)pipes_seen);
    close(a);
    close(c);

    /* The peer closed: writes go on until the reset, then EPIPE. */
    CHECK("reset_pair", tcp_pair(AF_INET, &c, &a));
    close(a);
    poll_one(c, POLLIN, 5000);
    CHECK("reset_eof", read(c, b, 1) == 0);
    int err = 0;
    for (int i = 0; i < 200 && !err; i++) {
        if (send(c, "data", 4, MSG_NOSIGNAL) < 0)
            err = errno;
        else
            usleep(10000);
    }
    printf("reset_write_errno=%s\n", errname(err));
    close(c);

    /* The default action ends the program: status 128 + 13. */
    signal(SIGPIPE, SIG_DFL);
    printf("default_action_next=1\n");
    CHECK("dfl_pipe", pipe(p) == 0 && close(p[0]) == 0);
    write(p[1], "x", 1);
    printf("survived_sigpipe=1\n");
}

int main(void) {
    test_init();
    nb_connect("v4", AF_INET);
    nb_connect("v6", AF_INET6);
    reuseaddr();
    flags();
    mmsg(AF_INET, "udp4");
    mmsg(AF_INET6, "udp6");
    sigpipe();
    return test_exit();
}
