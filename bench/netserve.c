/*
 * The TCP server of `cargo skiff bench net`'s echo rows: one single-threaded
 * poll() loop (no threads, no fork: the smallest server either guest can
 * run) serving two ports.
 *
 *   ECHO_PORT (argv[1], default 7)   echoes every byte back: the host's
 *                                    round-trip row sends 64 bytes and waits
 *                                    for them
 *   SINK_PORT (argv[2], default 9)   reads until the peer shuts its side
 *                                    down, then answers "<bytes>\n" and
 *                                    closes: the bulk-throughput row
 *
 * It prints `netserve: listening echo=P sink=Q` once both sockets listen and
 * runs until killed. The same static binary runs on Skiff (as the app) and
 * on the Linux guest (started by bench/netinit.c).
 *
 * Build: gcc -O2 -static -o netserve netserve.c (cargo skiff bench does).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 64

enum kind { LISTEN_ECHO, LISTEN_SINK, ECHO, SINK };

struct conn {
    enum kind kind;
    uint64_t bytes; /* SINK: received so far */
};

static struct pollfd fds[MAX_FDS];
static struct conn conns[MAX_FDS];
static int nfds;

static int listen_on(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        perror("netserve: socket");
        exit(1);
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0) {
        fprintf(stderr, "netserve: port %d: %s\n", port, strerror(errno));
        exit(1);
    }
    return s;
}

static void add(int fd, enum kind kind)
{
    if (nfds == MAX_FDS) {
        close(fd);
        return;
    }
    fds[nfds] = (struct pollfd){.fd = fd, .events = POLLIN};
    conns[nfds] = (struct conn){.kind = kind};
    nfds++;
}

static void drop(int i)
{
    close(fds[i].fd);
    nfds--;
    fds[i] = fds[nfds];
    conns[i] = conns[nfds];
}

/* Writes all of buf (blocking socket); false when the peer is gone. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        buf += w;
        n -= (size_t)w;
    }
    return 1;
}

int main(int argc, char **argv)
{
    int echo_port = argc > 1 ? atoi(argv[1]) : 7;
    int sink_port = argc > 2 ? atoi(argv[2]) : 9;
    add(listen_on(echo_port), LISTEN_ECHO);
    add(listen_on(sink_port), LISTEN_SINK);
    printf("netserve: listening echo=%d sink=%d\n", echo_port, sink_port);
    fflush(stdout);
    static char buf[65536];
    for (;;) {
        if (poll(fds, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("netserve: poll");
            return 1;
        }
        for (int i = nfds - 1; i >= 0; i--) {
            if (!fds[i].revents)
                continue;
            fds[i].revents = 0;
            struct conn *c = &conns[i];
            if (c->kind == LISTEN_ECHO || c->kind == LISTEN_SINK) {
                int fd = accept(fds[i].fd, NULL, NULL);
                if (fd < 0)
                    continue;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                add(fd, c->kind == LISTEN_ECHO ? ECHO : SINK);
                continue;
            }
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                if (c->kind == SINK && n == 0) {
                    char line[32];
                    int len = snprintf(line, sizeof line, "%llu\n", (unsigned long long)c->bytes);
                    write_all(fds[i].fd, line, (size_t)len);
                }
                drop(i);
                continue;
            }
            if (c->kind == SINK)
                c->bytes += (uint64_t)n;
            else if (!write_all(fds[i].fd, buf, (size_t)n))
                drop(i);
        }
    }
}
