/* AF_UNIX sockets: socketpair (stream, datagram, seqpacket), bind/listen/
 * accept/connect on a path and an abstract name, addresses from
 * getsockname/getpeername/accept, shutdown half-close, EOF, EPIPE,
 * non-blocking EAGAIN, SO_PEERCRED and the other socket options,
 * SCM_RIGHTS descriptor passing, and the errors Linux gives. */
#include "common.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t un_addr(struct sockaddr_un *a, const char *path, int abstract) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (abstract) {
        memcpy(a->sun_path + 1, path, n);
        return offsetof(struct sockaddr_un, sun_path) + 1 + n;
    }
    memcpy(a->sun_path, path, n + 1);
    return offsetof(struct sockaddr_un, sun_path) + n + 1;
}

static void pair_stream(void) {
    int sv[2];
    char buf[64];
    CHECK("stream_pair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK("stream_write", write(sv[0], "hello", 5) == 5);
    CHECK("stream_peek", recv(sv[1], buf, 2, MSG_PEEK) == 2 && memcmp(buf, "he", 2) == 0);
    CHECK("stream_read", read(sv[1], buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0);
    EXPECT_ERR("stream_dontwait_eagain", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* Two writes may come back in one read: a byte stream. */
    CHECK("stream_writes", send(sv[1], "ab", 2, 0) == 2 && send(sv[1], "cd", 2, 0) == 2);
    CHECK("stream_waitall", recv(sv[0], buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "abcd", 4) == 0);
    /* Half-close: the peer reads EOF and can still answer. */
    CHECK("shutdown_wr", shutdown(sv[0], SHUT_WR) == 0);
    CHECK("peer_eof", read(sv[1], buf, sizeof buf) == 0);
    EXPECT_ERR("write_after_shutdown_epipe", send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK("peer_still_writes", write(sv[1], "back", 4) == 4);
    CHECK("read_after_half_close", read(sv[0], buf, sizeof buf) == 4 && memcmp(buf, "back", 4) == 0);
    EXPECT_ERR("shutdown_bad_how", shutdown(sv[0], 7), EINVAL);
    close(sv[1]);
    CHECK("eof_after_peer_close", read(sv[0], buf, sizeof buf) == 0);
    close(sv[0]);

    CHECK("pair_nonblock", socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK("pair_flags", (fcntl(sv[0], F_GETFL) & O_NONBLOCK) && fcntl(sv[1], F_GETFD) == FD_CLOEXEC);
    EXPECT_ERR("nonblock_read_eagain", read(sv[0], buf, sizeof buf), EAGAIN);
    /* Fill the buffer: the last write is short or EAGAIN, never blocks. */
    static char big[1 << 16];
    long total = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t n = write(sv[0], big, sizeof big);
        if (n < 0) {
            int e = errno;
            CHECK("fill_ends_with_eagain", e == EAGAIN);
            break;
        }
        total += n;
    }
    CHECK("filled_some", total > 0);
    long drained = 0;
    for (;;) {
        ssize_t n = read(sv[1], big, sizeof big);
        if (n <= 0)
            break;
        drained += n;
    }
    CHECK("drained_all", drained == total);
    close(sv[1]);
    EXPECT_ERR("write_to_closed_epipe", write(sv[0], "x", 1), EPIPE);
    close(sv[0]);
}

static void pair_dgram(void) {
    int sv[2];
    char buf[64];
    CHECK("dgram_pair", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
    CHECK("dgram_send1", send(sv[0], "one", 3, 0) == 3);
    CHECK("dgram_send2", send(sv[0], "three", 5, 0) == 5);
    CHECK("dgram_boundary", recv(sv[1], buf, sizeof buf, 0) == 3);
    CHECK("dgram_trunc_len", recv(sv[1], buf, 2, MSG_TRUNC) == 5);
    EXPECT_ERR("dgram_empty_eagain", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK("dgram_send3", send(sv[1], "abcdef", 6, 0) == 6);
    struct msghdr m;
    struct iovec iov = {buf, 4};
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    CHECK("dgram_recvmsg_trunc", recvmsg(sv[0], &m, 0) == 4 && (m.msg_flags & MSG_TRUNC));
    EXPECT_ERR("dgram_listen_eopnotsupp", listen(sv[0], 1), EOPNOTSUPP);
    close(sv[0]);
    close(sv[1]);

    CHECK("seqpacket_pair", socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
    CHECK("seq_send", send(sv[0], "rec1", 4, 0) == 4 && send(sv[0], "record2", 7, 0) == 7);
    CHECK("seq_recv1", recv(sv[1], buf, sizeof buf, 0) == 4);
    CHECK("seq_recv2", recv(sv[1], buf, sizeof buf, 0) == 7 && memcmp(buf, "record2", 7) == 0);
    close(sv[0]);
    CHECK("seq_eof", recv(sv[1], buf, sizeof buf, 0) == 0);
    close(sv[1]);
}

struct conn_arg {
    struct sockaddr_un addr;
    socklen_t len;
    int ok;
};

static void *client(void *p) {
    struct conn_arg *a = p;
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    char buf[16];
    a->ok = c >= 0 && connect(c, (struct sockaddr *)&a->addr, a->len) == 0 &&
            write(c, "ping", 4) == 4 && read(c, buf, sizeof buf) == 4 && memcmp(buf, "pong", 4) == 0;
    close(c);
    return NULL;
}

static void server(const char *tag, const char *name, int abstract) {
    char what[64];
    struct conn_arg a;
    a.len = un_addr(&a.addr, name, abstract);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
#define T(x) (snprintf(what, sizeof what, "%s_%s", tag, x), what)
    CHECK(T("bind"), bind(s, (struct sockaddr *)&a.addr, a.len) == 0);
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    EXPECT_ERR(T("bind_again_eaddrinuse"), bind(s2, (struct sockaddr *)&a.addr, a.len), EADDRINUSE);
    EXPECT_ERR(T("connect_not_listening"), connect(s2, (struct sockaddr *)&a.addr, a.len), ECONNREFUSED);
    close(s2);
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    CHECK(T("getsockname"), getsockname(s, (struct sockaddr *)&got, &gl) == 0 && gl == a.len &&
                                memcmp(&got, &a.addr, a.len) == 0);
    CHECK(T("listen"), listen(s, 4) == 0);
    int acc = 0;
    socklen_t al = sizeof acc;
    CHECK(T("so_acceptconn"), getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) == 0 && acc == 1);
    pthread_t t;
    pthread_create(&t, NULL, client, &a);
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    int c = accept(s, (struct sockaddr *)&peer, &pl);
    CHECK(T("accept"), c >= 0);
    CHECK(T("accept_addr_unnamed"), pl == sizeof(sa_family_t) && peer.sun_family == AF_UNIX);
    char buf[16];
    CHECK(T("server_read"), read(c, buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0);
    struct ucred cr;
    socklen_t cl = sizeof cr;
    CHECK(T("peercred"), getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cl == sizeof cr &&
                             cr.pid == getpid() && cr.uid == getuid() && cr.gid == getgid());
    gl = sizeof got;
    CHECK(T("accepted_sockname"), getsockname(c, (struct sockaddr *)&got, &gl) == 0 && gl == a.len &&
                                      memcmp(&got, &a.addr, a.len) == 0);
    CHECK(T("server_write"), write(c, "pong", 4) == 4);
    pthread_join(t, NULL);
    CHECK(T("client_done"), a.ok);
    CHECK(T("eof_after_client_close"), read(c, buf, sizeof buf) == 0);
    close(c);
    /* Non-blocking accept with nothing pending. */
    CHECK(T("setfl_nonblock"), fcntl(s, F_SETFL, O_NONBLOCK) == 0);
    EXPECT_ERR(T("accept_eagain"), accept(s, NULL, NULL), EAGAIN);
    /* A connect that accept has not taken yet still succeeds. */
    int q = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(T("connect_before_accept"), connect(q, (struct sockaddr *)&a.addr, a.len) == 0);
    EXPECT_ERR(T("connect_again_eisconn"), connect(q, (struct sockaddr *)&a.addr, a.len), EISCONN);
    CHECK(T("write_before_accept"), write(q, "early", 5) == 5);
    int c2 = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    CHECK(T("accept4_cloexec"), c2 >= 0 && fcntl(c2, F_GETFD) == FD_CLOEXEC);
    CHECK(T("early_data"), read(c2, buf, sizeof buf) == 5 && memcmp(buf, "early", 5) == 0);
    pl = sizeof peer;
    CHECK(T("getpeername"), getpeername(q, (struct sockaddr *)&peer, &pl) == 0 && pl == a.len &&
                                memcmp(&peer, &a.addr, a.len) == 0);
    close(q);
    close(c2);
    close(s);
#undef T
}

static void rights(void) {
    int sv[2], p[2];
    char buf[16];
    CHECK("rights_pair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(p) == 0);
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {"f", 1};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.b;
    m.msg_controllen = sizeof u.b;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    CHECK("rights_sendmsg", sendmsg(sv[0], &m, 0) == 1);
    close(p[0]);
    memset(&u, 0, sizeof u);
    struct iovec riov = {buf, sizeof buf};
    memset(&m, 0, sizeof m);
    m.msg_iov = &riov;
    m.msg_iovlen = 1;
    m.msg_control = u.b;
    m.msg_controllen = sizeof u.b;
    CHECK("rights_recvmsg", recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) == 1 && buf[0] == 'f');
    c = CMSG_FIRSTHDR(&m);
    int fd = -1;
    CHECK("rights_cmsg", c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                             c->cmsg_len == CMSG_LEN(sizeof(int)));
    if (c)
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
    CHECK("rights_fd_cloexec", fd >= 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC);
    CHECK("rights_pipe_works", write(p[1], "via", 3) == 3 && read(fd, buf, sizeof buf) == 3 &&
                                   memcmp(buf, "via", 3) == 0);
    close(fd);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

static void options_and_errors(void) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    int v = 0;
    socklen_t l = sizeof v;
    CHECK("so_type", getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &l) == 0 && v == SOCK_STREAM && l == sizeof v);
    CHECK("so_domain", getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == AF_UNIX);
    CHECK("so_error_zero", getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l) == 0 && v == 0);
    CHECK("so_acceptconn_zero", getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v == 0);
    v = 32768;
    CHECK("so_sndbuf_doubled", setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) == 0 &&
                                   getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &l) == 0 && v == 65536);
    v = 1;
    CHECK("so_reuseaddr", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v) == 0 &&
                              getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &l) == 0 && v == 1);
    EXPECT_ERR("unknown_option", getsockopt(s, SOL_SOCKET, 9999, &v, &l), ENOPROTOOPT);
    struct ucred cr;
    socklen_t cl = sizeof cr;
    CHECK("peercred_unconnected", getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.pid == 0 &&
                                      cr.uid == (uid_t)-1 && cr.gid == (gid_t)-1);
    struct sockaddr_un a;
    socklen_t al = sizeof a;
    CHECK("unbound_sockname", getsockname(s, (struct sockaddr *)&a, &al) == 0 && al == sizeof(sa_family_t));
    al = sizeof a;
    EXPECT_ERR("getpeername_enotconn", getpeername(s, (struct sockaddr *)&a, &al), ENOTCONN);
    EXPECT_ERR("send_unconnected_enotconn", send(s, "x", 1, MSG_NOSIGNAL), ENOTCONN);
    EXPECT_ERR("listen_unbound_einval", listen(s, 1), EINVAL);
    socklen_t len = un_addr(&a, "/nonexistent-dir/sock", 0);
    EXPECT_ERR("connect_missing_path", connect(s, (struct sockaddr *)&a, len), ENOENT);
    len = un_addr(&a, "skiff-nobody-here", 1);
    EXPECT_ERR("connect_unbound_abstract", connect(s, (struct sockaddr *)&a, len), ECONNREFUSED);
    EXPECT_ERR("bind_short_addr", bind(s, (struct sockaddr *)&a, 1), EINVAL);
    close(s);
    int p[2];
    CHECK("pipe", pipe(p) == 0);
    al = sizeof a;
    EXPECT_ERR("getsockname_enotsock", getsockname(p[0], (struct sockaddr *)&a, &al), ENOTSOCK);
    close(p[0]);
    close(p[1]);
    EXPECT_ERR("bad_family", socket(12345, SOCK_STREAM, 0), EAFNOSUPPORT);
    EXPECT_ERR("bad_protocol", socket(AF_UNIX, SOCK_STREAM, 7), EPROTONOSUPPORT);
    EXPECT_ERR("inet_socketpair", socketpair(AF_INET, SOCK_STREAM, 0, p), EOPNOTSUPP);
    /* A datagram socket talks to a named one; the stream type differs. */
    int d = socket(AF_UNIX, SOCK_DGRAM, 0), st = socket(AF_UNIX, SOCK_STREAM, 0);
    len = un_addr(&a, "skiff-stream-srv", 1);
    CHECK("bind_stream_abstract", bind(st, (struct sockaddr *)&a, len) == 0 && listen(st, 1) == 0);
    /* Abstract names are per type: a datagram finds no stream socket. */
    EXPECT_ERR("dgram_to_stream_abstract", sendto(d, "x", 1, 0, (struct sockaddr *)&a, len), ECONNREFUSED);
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    len = un_addr(&a, "skiff-dgram-srv", 1);
    CHECK("bind_dgram_abstract", bind(r, (struct sockaddr *)&a, len) == 0);
    CHECK("dgram_sendto", sendto(d, "dg", 2, 0, (struct sockaddr *)&a, len) == 2);
    char buf[8];
    struct sockaddr_un from;
    socklen_t fl = sizeof from;
    /* An unbound sender has no name: the address length is 0. */
    CHECK("dgram_recvfrom", recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) == 2 && fl == 0);
    close(d);
    close(st);
    close(r);
}

int main(void) {
    test_init();
    signal(SIGPIPE, SIG_IGN);
    pair_stream();
    pair_dgram();
    char dir[] = "/tmp/unixXXXXXX";
    CHECK("mkdtemp", mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/sock", dir);
    server("path", path, 0);
    struct stat sb;
    CHECK("path_left_behind", stat(path, &sb) == 0);
    CHECK("unlink", unlink(path) == 0);
    server("abstract", "skiff-unix-test", 1);
    rights();
    options_and_errors();
    rmdir(dir);
    return test_exit();
}
