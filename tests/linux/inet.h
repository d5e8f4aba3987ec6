/* Loopback socket addresses and bound ports for the network programs
 * (tcp.c, net_echo.c, net_nonblock.c). */
#ifndef SKIFF_TEST_INET_H
#define SKIFF_TEST_INET_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* 127.0.0.1:port (AF_INET) or [::1]:port (AF_INET6) in `ss`; its length. */
static inline socklen_t lo_addr(int family, struct sockaddr_storage *ss, int port) {
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof *a;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    return sizeof *a;
}
/* The port `fd` is bound to (host order), IPv4 or IPv6; -1 on error. */
static inline int port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &l) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
/* Whether two socket addresses name the same family, address and port. */
static inline int same_addr(const struct sockaddr_storage *a, socklen_t al,
                            const struct sockaddr_storage *b, socklen_t bl) {
    if (al != bl || a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}
#endif
