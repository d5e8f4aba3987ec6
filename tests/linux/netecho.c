/* netecho: a TCP and UDP echo server on one port, driven from the host by
 * `cargo skiff test --only net` (tools/skiff/src/nettest/echo.rs) through
 * QEMU port forwards.
 *
 * Usage: netecho PORT MAXCONN
 * Prints what it learned (the nameservers of /etc/resolv.conf, the address
 * the first connection reached), then "netecho: listening ..." once both
 * sockets are bound. Echoes every byte on each TCP connection and every UDP
 * datagram. Exits 0 after MAXCONN TCP connections have closed, or when a
 * TCP line or UDP datagram "quit" arrives (answered with "bye\n").
 * One thread, epoll, non-blocking sockets; a connection whose peer is slow
 * to read keeps its unsent bytes and waits for EPOLLOUT. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 4096
#define BUF 16384

struct conn {
    char *pending; /* unsent echo bytes */
    size_t len, off;
    char line[8]; /* the first bytes, to spot "quit" */
    size_t line_len;
};

static struct conn *conns[MAX_FDS];
static int ep;

static void die(const char *what) {
    printf("netecho: %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void print_resolv(void) {
    FILE *f = fopen("/etc/resolv.conf", "r");
    if (!f) {
        printf("netecho: resolv.conf: %s\n", strerror(errno));
        return;
    }
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "nameserver ", 11) == 0) {
            printf("netecho: resolv %s\n", line);
            n++;
        }
    }
    if (n == 0)
        printf("netecho: resolv none\n");
    fclose(f);
}

static void close_conn(int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (conns[fd]) {
        free(conns[fd]->pending);
        free(conns[fd]);
        conns[fd] = NULL;
    }
}

/* Sends what is pending; returns -1 if the connection failed. */
static int flush_conn(int fd, struct conn *c) {
    while (c->off < c->len) {
        ssize_t w = write(fd, c->pending + c->off, c->len - c->off);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        c->off += (size_t)w;
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->off < c->len ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    if (c->off == c->len)
        c->off = c->len = 0;
    return 0;
}

/* Reads and echoes; 1: closed, 2: quit asked, 0: carry on. */
static int serve(int fd, struct conn *c) {
    static char buf[BUF];
    for (;;) {
        if (c->len - c->off > 4 * BUF) /* the peer is not reading: wait */
            return 0;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0)
            return 1;
        if (r < 0)
            return errno == EAGAIN ? 0 : 1;
        if (c->line_len < sizeof c->line) {
            size_t k = (size_t)r < sizeof c->line - c->line_len ? (size_t)r : sizeof c->line - c->line_len;
            memcpy(c->line + c->line_len, buf, k);
            c->line_len += k;
            if (c->line_len >= 5 && memcmp(c->line, "quit\n", 5) == 0) {
                if (write(fd, "bye\n", 4) != 4)
                    return 1;
                return 2;
            }
        }
        char *p = realloc(c->pending, c->len + (size_t)r);
        if (!p)
            die("realloc");
        memcpy(p + c->len, buf, (size_t)r);
        c->pending = p;
        c->len += (size_t)r;
        if (flush_conn(fd, c) < 0)
            return 1;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("usage: netecho PORT MAXCONN\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long maxconn = atol(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    print_resolv();

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0)
        die("socket tcp");
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind tcp");
    if (listen(ls, 1024) < 0)
        die("listen");
    int us = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (us < 0)
        die("socket udp");
    if (bind(us, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind udp");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.fd = us;
    epoll_ctl(ep, EPOLL_CTL_ADD, us, &ev);
    printf("netecho: listening tcp+udp port %d maxconn %ld\n", port, maxconn);

    long accepted = 0, closed = 0, datagrams = 0, peak = 0, open_now = 0;
    int quit = 0;
    struct epoll_event evs[64];
    while (!quit && (maxconn <= 0 || closed < maxconn)) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    struct sockaddr_in peer;
                    socklen_t pl = sizeof peer;
                    int c = accept4(ls, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) {
                        if (errno != EAGAIN && errno != ECONNABORTED)
                            die("accept4");
                        break;
                    }
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    if (accepted++ == 0) {
                        struct sockaddr_in me;
                        socklen_t ml = sizeof me;
                        char ip[INET_ADDRSTRLEN], pip[INET_ADDRSTRLEN];
                        getsockname(c, (struct sockaddr *)&me, &ml);
                        inet_ntop(AF_INET, &me.sin_addr, ip, sizeof ip);
                        inet_ntop(AF_INET, &peer.sin_addr, pip, sizeof pip);
                        printf("netecho: first connection local %s:%d peer %s\n", ip, ntohs(me.sin_port), pip);
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[c] = calloc(1, sizeof(struct conn));
                    if (!conns[c])
                        die("calloc");
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    if (++open_now > peak)
                        peak = open_now;
                }
            } else if (fd == us) {
                static char buf[65536];
                for (;;) {
                    struct sockaddr_in peer;
                    socklen_t pl = sizeof peer;
                    ssize_t r = recvfrom(us, buf, sizeof buf, 0, (struct sockaddr *)&peer, &pl);
                    if (r < 0)
                        break;
                    datagrams++;
                    if (r == 5 && memcmp(buf, "quit\n", 5) == 0) {
                        sendto(us, "bye\n", 4, 0, (struct sockaddr *)&peer, pl);
                        quit = 1;
                        break;
                    }
                    sendto(us, buf, (size_t)r, 0, (struct sockaddr *)&peer, pl);
                }
            } else if (conns[fd]) {
                struct conn *c = conns[fd];
                int st = 0;
                if (evs[i].events & EPOLLOUT && flush_conn(fd, c) < 0)
                    st = 1;
                if (!st && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    st = serve(fd, c);
                if (st) {
                    close_conn(fd);
                    closed++;
                    open_now--;
                    if (st == 2)
                        quit = 1;
                }
            }
        }
    }
    printf("netecho: done accepted %ld closed %ld peak %ld datagrams %ld%s\n", accepted, closed, peak,
           datagrams, quit ? " (quit)" : "");
    return 0;
}
