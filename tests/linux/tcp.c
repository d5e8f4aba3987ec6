/* TCP and UDP over the loopback: an echo server and client threads over
 * 127.0.0.1 and ::1, a 10 MiB checksummed transfer, shutdown half-close,
 * getsockname/getpeername, a non-blocking connect (EINPROGRESS, then
 * SO_ERROR), ECONNREFUSED to a closed port, EADDRINUSE, socket options,
 * and UDP datagrams both ways with their source addresses. */
#include "common.h"
#include "inet.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A listener on the loopback of `family`, ephemeral port. */
static int listener(int family, int backlog) {
    int s = socket(family, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(family, &ss, 0);
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&ss, l) != 0 || listen(s, backlog) != 0)
        return -1;
    return s;
}

static long read_full(int fd, void *buf, long len) {
    long got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            return n < 0 ? -1 : got;
        got += n;
    }
    return got;
}

static long write_full(int fd, const void *buf, long len) {
    long done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n <= 0)
            return -1;
        done += n;
    }
    return done;
}

struct echo {
    int family, port, ok;
};

/* The client: connects, sends three messages, checks the echoes, closes. */
static void *echo_client(void *p) {
    struct echo *e = p;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(e->family, &ss, e->port);
    int c = socket(e->family, SOCK_STREAM, 0);
    int one = 1;
    e->ok = c >= 0 && setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 &&
            connect(c, (struct sockaddr *)&ss, l) == 0;
    const char *msgs[] = {"hello", "echo over tcp", "bye"};
    for (int i = 0; i < 3 && e->ok; i++) {
        char buf[64];
        long n = strlen(msgs[i]);
        e->ok = write_full(c, msgs[i], n) == n && read_full(c, buf, n) == n && memcmp(buf, msgs[i], n) == 0;
    }
    close(c);
    return NULL;
}

static void echo(const char *tag, int family) {
    char what[64];
#define T(x) (snprintf(what, sizeof what, "%s_%s", tag, x), what)
    int s = listener(family, 8);
    CHECK(T("listen"), s >= 0);
    struct echo e = {family, port_of(s), 0};
    CHECK(T("ephemeral_port"), e.port >= 1024);
    pthread_t t;
    pthread_create(&t, NULL, echo_client, &e);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int c = accept(s, (struct sockaddr *)&peer, &pl);
    CHECK(T("accept"), c >= 0);
    CHECK(T("accept_family"), peer.ss_family == family);
    struct sockaddr_storage lp;
    socklen_t ll = sizeof lp;
    CHECK(T("getpeername_matches_accept"), getpeername(c, (struct sockaddr *)&lp, &ll) == 0 &&
                                               same_addr(&lp, ll, &peer, pl));
    ll = sizeof lp;
    struct sockaddr_storage want;
    socklen_t wl = lo_addr(family, &want, e.port);
    CHECK(T("accepted_sockname"), getsockname(c, (struct sockaddr *)&lp, &ll) == 0 &&
                                      same_addr(&lp, ll, &want, wl));
    char buf[256];
    long total = 0;
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0)
            break;
        total += n;
        if (write_full(c, buf, n) != n)
            break;
    }
    pthread_join(t, NULL);
    CHECK(T("client_ok"), e.ok);
    CHECK(T("echoed_bytes"), total == 5 + 13 + 3);
    close(c);
    close(s);
#undef T
}

/* 10 MiB from a client thread, checksummed on both ends. */
#define BULK (10L << 20)
struct bulk {
    int port;
    unsigned long sum;
    long sent;
};

static unsigned long fnv(unsigned long h, const unsigned char *p, long n) {
    for (long i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211UL;
    return h;
}

static void *bulk_client(void *p) {
    struct bulk *b = p;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(AF_INET, &ss, b->port);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&ss, l) != 0) {
        close(c);
        return NULL;
    }
    static unsigned char chunk[100000];
    unsigned long h = 14695981039346656037UL;
    unsigned int x = 12345;
    long left = BULK;
    while (left > 0) {
        long n = left < (long)sizeof chunk ? left : (long)sizeof chunk;
        for (long i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            chunk[i] = x >> 16;
        }
        h = fnv(h, chunk, n);
        if (write_full(c, chunk, n) != n)
            break;
        b->sent += n;
        left -= n;
    }
    b->sum = h;
    shutdown(c, SHUT_WR);
    /* The server's reply after our half-close. */
    char r[8];
    if (read_full(c, r, 4) != 4 || memcmp(r, "done", 4) != 0)
        b->sent = -1;
    close(c);
    return NULL;
}

static void bulk(void) {
    int s = listener(AF_INET, 1);
    struct bulk b = {port_of(s), 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, bulk_client, &b);
    int c = accept(s, NULL, NULL);
    static unsigned char buf[65536];
    unsigned long h = 14695981039346656037UL;
    long got = 0;
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0)
            break;
        h = fnv(h, buf, n);
        got += n;
    }
    CHECK("bulk_eof_after_half_close", got == BULK);
    CHECK("bulk_write_after_peer_shutdown", write(c, "done", 4) == 4);
    pthread_join(t, NULL);
    CHECK("bulk_sent_10mib", b.sent == BULK);
    CHECK("bulk_checksum", h == b.sum);
    close(c);
    close(s);
}

static void nonblocking(void) {
    int s = listener(AF_INET, 4);
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(AF_INET, &ss, port_of(s));
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EXPECT_ERR("nb_connect_einprogress", connect(c, (struct sockaddr *)&ss, l), EINPROGRESS);
    /* Wait until connected (no poll needed: getpeername succeeds then). */
    struct sockaddr_storage p;
    socklen_t pl;
    int connected = 0;
    for (int i = 0; i < 2000 && !connected; i++) {
        pl = sizeof p;
        connected = getpeername(c, (struct sockaddr *)&p, &pl) == 0;
        if (!connected)
            usleep(1000);
    }
    CHECK("nb_connected", connected);
    int err = -1;
    socklen_t el = sizeof err;
    CHECK("nb_so_error_zero", getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0);
    /* After a completed non-blocking connect, connect reports it once. */
    CHECK("nb_connect_again_ok", connect(c, (struct sockaddr *)&ss, l) == 0);
    EXPECT_ERR("nb_connect_eisconn", connect(c, (struct sockaddr *)&ss, l), EISCONN);
    char buf[8];
    EXPECT_ERR("nb_read_eagain", read(c, buf, sizeof buf), EAGAIN);
    int a = accept(s, NULL, NULL);
    CHECK("nb_accept", a >= 0);
    CHECK("nb_listener", fcntl(s, F_SETFL, O_NONBLOCK) == 0);
    EXPECT_ERR("nb_accept_empty", accept4(s, NULL, NULL, SOCK_NONBLOCK), EAGAIN);
    CHECK("nb_write", write(a, "x", 1) == 1);
    int got = 0;
    for (int i = 0; i < 2000 && got != 1; i++) {
        got = read(c, buf, sizeof buf);
        if (got != 1)
            usleep(1000);
    }
    CHECK("nb_read_data", got == 1 && buf[0] == 'x');
    close(a);
    close(c);

    /* A port nobody listens on: refused, reported through SO_ERROR. */
    int port = port_of(s);
    close(s);
    l = lo_addr(AF_INET, &ss, port);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EXPECT_ERR("refused_einprogress", connect(c, (struct sockaddr *)&ss, l), EINPROGRESS);
    err = 0;
    for (int i = 0; i < 2000 && err == 0; i++) {
        el = sizeof err;
        getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err == 0)
            usleep(1000);
    }
    CHECK("refused_so_error", err == ECONNREFUSED);
    el = sizeof err;
    CHECK("so_error_cleared", getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0);
    close(c);
    c = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_ERR("blocking_connect_refused", connect(c, (struct sockaddr *)&ss, l), ECONNREFUSED);
    close(c);
    c = socket(AF_INET6, SOCK_STREAM, 0);
    l = lo_addr(AF_INET6, &ss, port);
    EXPECT_ERR("v6_connect_refused", connect(c, (struct sockaddr *)&ss, l), ECONNREFUSED);
    close(c);
}

static void errors_and_options(void) {
    int s = listener(AF_INET, 1);
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(AF_INET, &ss, port_of(s));
    int d = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(d, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    EXPECT_ERR("bind_listening_port_eaddrinuse", bind(d, (struct sockaddr *)&ss, l), EADDRINUSE);
    struct sockaddr_in any;
    socklen_t al = sizeof any;
    CHECK("unbound_sockname_any", getsockname(d, (struct sockaddr *)&any, &al) == 0 && al == sizeof any &&
                                      any.sin_port == 0 && any.sin_addr.s_addr == htonl(INADDR_ANY));
    al = sizeof any;
    EXPECT_ERR("getpeername_enotconn", getpeername(d, (struct sockaddr *)&any, &al), ENOTCONN);
    EXPECT_ERR("send_unconnected_epipe", send(d, "x", 1, MSG_NOSIGNAL), EPIPE);
    EXPECT_ERR("accept_not_listening", accept(d, NULL, NULL), EINVAL);
    close(d);
    close(s);

    int v = 0;
    socklen_t vl = sizeof v;
    int t = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("so_type_stream", getsockopt(t, SOL_SOCKET, SO_TYPE, &v, &vl) == 0 && v == SOCK_STREAM);
    CHECK("so_protocol_tcp", getsockopt(t, SOL_SOCKET, SO_PROTOCOL, &v, &vl) == 0 && v == IPPROTO_TCP);
    CHECK("so_domain_inet", getsockopt(t, SOL_SOCKET, SO_DOMAIN, &v, &vl) == 0 && v == AF_INET);
    CHECK("tcp_nodelay_default", getsockopt(t, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v == 0);
    v = 1;
    CHECK("tcp_nodelay_set", setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0 &&
                                 getsockopt(t, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v == 1);
    v = 1;
    CHECK("so_keepalive", setsockopt(t, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v) == 0 &&
                              getsockopt(t, SOL_SOCKET, SO_KEEPALIVE, &v, &vl) == 0 && v == 1);
    v = 1;
    CHECK("so_reuseport", setsockopt(t, SOL_SOCKET, SO_REUSEPORT, &v, sizeof v) == 0 &&
                              getsockopt(t, SOL_SOCKET, SO_REUSEPORT, &v, &vl) == 0 && v == 1);
    v = 32768;
    CHECK("so_rcvbuf_doubled", setsockopt(t, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == 0 &&
                                   getsockopt(t, SOL_SOCKET, SO_RCVBUF, &v, &vl) == 0 && v == 65536);
    EXPECT_ERR("v6only_on_inet", getsockopt(t, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl), EOPNOTSUPP);
    EXPECT_ERR("short_optlen", setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &v, 2), EINVAL);
    close(t);
    t = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK("v6only_default", getsockopt(t, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) == 0 && v == 0);
    v = 1;
    CHECK("v6only_set", setsockopt(t, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v) == 0 &&
                            getsockopt(t, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) == 0 && v == 1);
    close(t);
    EXPECT_ERR("tcp_over_udp_proto", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
    EXPECT_ERR("bad_family", socket(4242, SOCK_STREAM, 0), EAFNOSUPPORT);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    EXPECT_ERR("udp_listen", listen(u, 1), EOPNOTSUPP);
    EXPECT_ERR("udp_no_dest", send(u, "x", 1, 0), EDESTADDRREQ);
    close(u);
}

static void udp(const char *tag, int family) {
    char what[64];
#define T(x) (snprintf(what, sizeof what, "%s_%s", tag, x), what)
    struct sockaddr_storage ss, from;
    socklen_t l = lo_addr(family, &ss, 0), fl;
    int a = socket(family, SOCK_DGRAM, 0), b = socket(family, SOCK_DGRAM, 0);
    CHECK(T("bind"), bind(a, (struct sockaddr *)&ss, l) == 0);
    l = lo_addr(family, &ss, port_of(a));
    CHECK(T("sendto"), sendto(b, "ping", 4, 0, (struct sockaddr *)&ss, l) == 4);
    char buf[64];
    fl = sizeof from;
    CHECK(T("recvfrom"), recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) == 4 &&
                             memcmp(buf, "ping", 4) == 0);
    struct sockaddr_storage bs;
    socklen_t bl = lo_addr(family, &bs, port_of(b));
    CHECK(T("source_is_sender"), same_addr(&from, fl, &bs, bl));
    CHECK(T("reply"), sendto(a, "pong!", 5, 0, (struct sockaddr *)&from, fl) == 5);
    CHECK(T("reply_trunc"), recv(b, buf, 2, MSG_TRUNC) == 5);
    EXPECT_ERR(T("empty_eagain"), recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* connect: send without an address, only the peer is heard. */
    CHECK(T("connect"), connect(b, (struct sockaddr *)&ss, l) == 0);
    struct sockaddr_storage pn;
    socklen_t pnl = sizeof pn;
    CHECK(T("getpeername"), getpeername(b, (struct sockaddr *)&pn, &pnl) == 0 && same_addr(&pn, pnl, &ss, l));
    CHECK(T("send_connected"), send(b, "abc", 3, 0) == 3);
    CHECK(T("recv_connected"), recv(a, buf, sizeof buf, 0) == 3 && memcmp(buf, "abc", 3) == 0);
    int c = socket(family, SOCK_DGRAM, 0);
    CHECK(T("stranger_sends"), sendto(c, "zz", 2, 0, (struct sockaddr *)&bs, bl) == 2);
    CHECK(T("peer_sends"), sendto(a, "ok", 2, 0, (struct sockaddr *)&bs, bl) == 2);
    CHECK(T("only_peer_heard"), recv(b, buf, sizeof buf, 0) == 2 && memcmp(buf, "ok", 2) == 0);
    EXPECT_ERR(T("stranger_dropped"), recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    struct iovec iov[2] = {{"sc", 2}, {"atter", 5}};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    CHECK(T("sendmsg_iov"), sendmsg(b, &m, 0) == 7);
    char x[3], y[8];
    struct iovec riov[2] = {{x, 3}, {y, 8}};
    memset(&m, 0, sizeof m);
    m.msg_iov = riov;
    m.msg_iovlen = 2;
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    CHECK(T("recvmsg_iov"), recvmsg(a, &m, 0) == 7 && memcmp(x, "sca", 3) == 0 && memcmp(y, "tter", 4) == 0 &&
                                same_addr(&from, m.msg_namelen, &bs, bl));
    struct mmsghdr mm[2];
    struct iovec mi[2] = {{"m1", 2}, {"msg2", 4}};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 2; i++) {
        mm[i].msg_hdr.msg_iov = &mi[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK(T("sendmmsg"), sendmmsg(b, mm, 2, 0) == 2 && mm[0].msg_len == 2 && mm[1].msg_len == 4);
    char r1[8], r2[8];
    struct iovec ri[2] = {{r1, sizeof r1}, {r2, sizeof r2}};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 2; i++) {
        mm[i].msg_hdr.msg_iov = &ri[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK(T("recvmmsg"), recvmmsg(a, mm, 2, MSG_WAITFORONE, NULL) == 2 && mm[0].msg_len == 2 &&
                             mm[1].msg_len == 4 && memcmp(r1, "m1", 2) == 0 && memcmp(r2, "msg2", 4) == 0);
    close(a);
    close(b);
    close(c);
#undef T
}

int main(void) {
    test_init();
    signal(SIGPIPE, SIG_IGN);
    echo("v4", AF_INET);
    echo("v6", AF_INET6);
    bulk();
    nonblocking();
    errors_and_options();
    udp("udp4", AF_INET);
    udp("udp6", AF_INET6);
    return test_exit();
}
