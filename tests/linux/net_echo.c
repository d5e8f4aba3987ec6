/* Echo servers inside one process, over 127.0.0.1 and ::1: a TCP server
 * thread multiplexing several concurrent client threads with poll (each
 * client sends messages of growing sizes and checks the echo), and a UDP
 * server thread echoing datagrams to several client threads. */
#include "common.h"
#include "inet.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 4
#define ROUNDS 6

struct client {
    int family, port, id, ok;
    long bytes;
};

static void fill(unsigned char *p, long n, int seed) {
    for (long i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + seed * 7 + (i >> 8));
}

/* A TCP client: ROUNDS messages of 1, 8, 64, ... bytes, each echoed. */
static void *tcp_client(void *p) {
    struct client *c = p;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(c->family, &ss, c->port);
    int s = socket(c->family, SOCK_STREAM, 0);
    c->ok = s >= 0 && connect(s, (struct sockaddr *)&ss, l) == 0;
    static __thread unsigned char out[40000], in[40000];
    long len = 1;
    for (int r = 0; r < ROUNDS && c->ok; r++, len *= 8) {
        long n = len < (long)sizeof out ? len : (long)sizeof out;
        fill(out, n, c->id + r);
        long done = 0;
        while (done < n && c->ok) {
            ssize_t w = write(s, out + done, n - done);
            c->ok = w > 0;
            done += w > 0 ? w : 0;
        }
        long got = 0;
        while (got < n && c->ok) {
            ssize_t g = read(s, in + got, n - got);
            c->ok = g > 0;
            got += g > 0 ? g : 0;
        }
        c->ok = c->ok && memcmp(in, out, n) == 0;
        c->bytes += n;
    }
    close(s);
    return NULL;
}

/* The TCP server: one thread, poll over the listener and every
 * connection; echoes until each client closed. */
struct server {
    int listener, served;
    long echoed;
};

static void *tcp_server(void *p) {
    struct server *sv = p;
    struct pollfd f[CLIENTS + 1];
    int n = 1, open = 0;
    f[0].fd = sv->listener;
    f[0].events = POLLIN;
    while (sv->served < CLIENTS || open > 0) {
        if (poll(f, n, 10000) <= 0)
            return NULL;
        if (f[0].revents & POLLIN) {
            int c = accept(sv->listener, NULL, NULL);
            if (c >= 0 && n <= CLIENTS) {
                f[n].fd = c;
                f[n].events = POLLIN;
                f[n].revents = 0;
                n++;
                open++;
                sv->served++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (f[i].fd < 0 || !(f[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[8192];
            ssize_t r = read(f[i].fd, buf, sizeof buf);
            if (r <= 0) {
                close(f[i].fd);
                f[i].fd = -1;
                open--;
                continue;
            }
            for (ssize_t d = 0; d < r;) {
                ssize_t w = write(f[i].fd, buf + d, r - d);
                if (w <= 0)
                    break;
                d += w;
            }
            sv->echoed += r;
        }
    }
    return NULL;
}

/* Runs CLIENTS threads of `fn` against `port`; adds the bytes they sent
 * to *bytes and returns how many succeeded. */
static int run_clients(int family, int port, void *(*fn)(void *), long *bytes) {
    pthread_t ct[CLIENTS];
    struct client c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (struct client){family, port, i, 0, 0};
        pthread_create(&ct[i], NULL, fn, &c[i]);
    }
    int good = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(ct[i], NULL);
        good += c[i].ok;
        *bytes += c[i].bytes;
    }
    return good;
}

static void tcp(const char *tag, int family) {
    int s = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(family, &ss, 0);
    int ok = bind(s, (struct sockaddr *)&ss, l) == 0 && listen(s, CLIENTS) == 0;
    printf("%s_listen=%s\n", tag, ok ? "ok" : "FAIL");
    struct server sv = {s, 0, 0};
    pthread_t st;
    pthread_create(&st, NULL, tcp_server, &sv);
    long bytes = 0;
    int good = run_clients(family, port_of(s), tcp_client, &bytes);
    pthread_join(st, NULL);
    printf("%s_clients_ok=%d served=%d bytes=%ld echoed=%ld\n", tag, good, sv.served, bytes, sv.echoed);
    if (good != CLIENTS || sv.echoed != bytes)
        test_failures++;
    close(s);
}

/* UDP: the server echoes every datagram to its source until it gets
 * "quit"; each client sends ROUNDS datagrams and waits for each echo. */
static void *udp_server(void *p) {
    int s = *(int *)p;
    for (;;) {
        char buf[2048];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0 || (n == 4 && memcmp(buf, "quit", 4) == 0))
            return NULL;
        sendto(s, buf, n, 0, (struct sockaddr *)&from, fl);
    }
}

static void *udp_client(void *p) {
    struct client *c = p;
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(c->family, &ss, c->port);
    int s = socket(c->family, SOCK_DGRAM, 0);
    c->ok = s >= 0 && connect(s, (struct sockaddr *)&ss, l) == 0;
    unsigned char out[1500], in[1500];
    for (int r = 0; r < ROUNDS && c->ok; r++) {
        long n = 100 + r * 250;
        fill(out, n, c->id * 10 + r);
        struct pollfd f = {s, POLLIN, 0};
        c->ok = send(s, out, n, 0) == n && poll(&f, 1, 5000) == 1 && recv(s, in, sizeof in, 0) == n &&
                memcmp(in, out, n) == 0;
        c->bytes += n;
    }
    close(s);
    return NULL;
}

static void udp(const char *tag, int family) {
    int s = socket(family, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t l = lo_addr(family, &ss, 0);
    printf("%s_bind=%s\n", tag, bind(s, (struct sockaddr *)&ss, l) == 0 ? "ok" : "FAIL");
    pthread_t st;
    pthread_create(&st, NULL, udp_server, &s);
    long bytes = 0;
    int good = run_clients(family, port_of(s), udp_client, &bytes);
    int q = socket(family, SOCK_DGRAM, 0);
    l = lo_addr(family, &ss, port_of(s));
    sendto(q, "quit", 4, 0, (struct sockaddr *)&ss, l);
    pthread_join(st, NULL);
    printf("%s_clients_ok=%d bytes=%ld\n", tag, good, bytes);
    if (good != CLIENTS)
        test_failures++;
    close(q);
    close(s);
}

int main(void) {
    test_init();
    tcp("tcp4", AF_INET);
    tcp("tcp6", AF_INET6);
    udp("udp4", AF_INET);
    udp("udp6", AF_INET6);
    return test_exit();
}
