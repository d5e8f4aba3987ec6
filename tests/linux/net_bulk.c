/* 100 MiB over TCP on 127.0.0.1 between two threads: the sender makes a
 * fixed pseudo-random stream, both ends checksum it (FNV-1a over 64-bit
 * words, 64 KiB blocks) and the receiver prints the byte count and the
 * checksum, which must equal the sender's. Slow under TCG: suite.toml
 * runs it in one variant per arch. */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOTAL (100L << 20)
#define BLOCK 65536

static uint64_t sum_block(uint64_t h, const uint64_t *w, long words) {
    for (long i = 0; i < words; i++)
        h = (h ^ w[i]) * 1099511628211ULL;
    return h;
}

struct sender {
    int port;
    uint64_t sum;
    long sent;
};

static void *send_all(void *p) {
    struct sender *s = p;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
        return NULL;
    static uint64_t block[BLOCK / 8];
    uint64_t x = 0x9e3779b97f4a7c15ULL, h = 14695981039346656037ULL;
    while (s->sent < TOTAL) {
        for (long i = 0; i < BLOCK / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block[i] = x;
        }
        h = sum_block(h, block, BLOCK / 8);
        long done = 0;
        while (done < BLOCK) {
            ssize_t n = write(c, (char *)block + done, BLOCK - done);
            if (n <= 0) {
                close(c);
                return NULL;
            }
            done += n;
        }
        s->sent += BLOCK;
    }
    s->sum = h;
    close(c);
    return NULL;
}

int main(void) {
    test_init();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CHECK("listen", bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0 &&
                        getsockname(l, (struct sockaddr *)&a, &al) == 0);
    struct sender s = {ntohs(a.sin_port), 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, send_all, &s);
    int c = accept(l, NULL, NULL);
    CHECK("accept", c >= 0);
    static uint64_t block[BLOCK / 8];
    uint64_t h = 14695981039346656037ULL;
    long got = 0, fill = 0;
    for (;;) {
        ssize_t n = read(c, (char *)block + fill, BLOCK - fill);
        if (n <= 0)
            break;
        fill += n;
        got += n;
        if (fill == BLOCK) {
            h = sum_block(h, block, BLOCK / 8);
            fill = 0;
        }
    }
    pthread_join(t, NULL);
    printf("received_bytes=%ld\n", got);
    printf("checksum=%016llx\n", (unsigned long long)h);
    CHECK("whole_blocks", fill == 0);
    CHECK("sent_all", s.sent == TOTAL);
    CHECK("checksums_match", h == s.sum);
    close(c);
    close(l);
    return test_exit();
}
