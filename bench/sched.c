/*
 * The scheduler benchmark on Linux: what Skiff's in-kernel `bench=sched`
 * (kernel/src/bench.rs) measures, with Linux's user-level equivalents, so
 * `cargo skiff bench sched` can print the two side by side. Output lines
 * are Skiff's: `bench: name=NAME ops=N ns_per_op=X`, then `bench: done`.
 *
 *   switch_1cpu          two threads pinned to CPU 0 hand a token back and
 *                        forth through futexes (FUTEX_WAIT / FUTEX_WAKE,
 *                        private); ns per hand-off, thread creation and join
 *                        included, as Skiff does
 *   switch_2cpu          the same with the threads pinned to CPUs 0 and 1
 *   wakeup_latency_2cpu  median over 101 of: time from just before
 *                        FUTEX_WAKE on CPU 0 to the woken thread's first
 *                        clock read on CPU 1, the target idle (the waker
 *                        slept 2 ms first); the waker then blocks for the
 *                        reply
 *   mutex_uncontended    pthread_mutex_lock + increment + unlock of a
 *                        default (PTHREAD_MUTEX_NORMAL) mutex, 100 000 times
 *
 * docs/benchmarks.md says where these differ from Skiff's.
 *
 * Build: gcc -O2 -static -pthread -o sched sched.c (cargo skiff bench does).
 */
#include "guest.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>

static long futex(atomic_uint *word, int op, unsigned val)
{
    return syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* Blocks while *word == val (returns at once if it already differs). */
static void futex_wait(atomic_uint *word, unsigned val)
{
    futex(word, FUTEX_WAIT, val);
}

static void futex_wake_one(atomic_uint *word)
{
    futex(word, FUTEX_WAKE, 1);
}

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* ---- switch_1cpu, switch_2cpu ---------------------------------------- */

struct ping_pong {
    atomic_uint turn; /* the futex word: whose turn is turn % 2 */
    unsigned rounds;
};

struct player {
    struct ping_pong *pp;
    unsigned me;
    int cpu;
    int failed;
};

static void *play(void *arg)
{
    struct player *p = arg;
    struct ping_pong *pp = p->pp;
    if (pin(p->cpu) != 0) {
        p->failed = 1;
        return NULL;
    }
    for (unsigned i = 0; i < pp->rounds; i++) {
        /* Skiff: q[me].wait_until(turn % 2 == me) */
        for (;;) {
            unsigned t = atomic_load(&pp->turn);
            if (t % 2 == p->me)
                break;
            futex_wait(&pp->turn, t);
        }
        atomic_fetch_add(&pp->turn, 1);
        /* Skiff: q[1 - me].wake_one(), unconditionally */
        futex_wake_one(&pp->turn);
    }
    return NULL;
}

/* Hand-offs and elapsed ns, or 0 hand-offs on failure. */
static uint64_t ping_pong(unsigned rounds, int cpu0, int cpu1, uint64_t *ns)
{
    struct ping_pong pp = { .rounds = rounds };
    struct player players[2] = {
        { .pp = &pp, .me = 0, .cpu = cpu0 },
        { .pp = &pp, .me = 1, .cpu = cpu1 },
    };
    pthread_t threads[2];
    uint64_t t0 = now_ns();
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&threads[i], NULL, play, &players[i]) != 0)
            return 0;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    *ns = now_ns() - t0;
    if (players[0].failed || players[1].failed || atomic_load(&pp.turn) != 2 * rounds)
        return 0;
    return 2ull * rounds;
}

/* ---- wakeup_latency_2cpu ---------------------------------------------- */

struct wakeup {
    atomic_uint go;      /* futex word: the round the waker released */
    atomic_uint replied; /* futex word: the round the waiter answered */
    _Atomic uint64_t woke_at;
    unsigned n;
    int failed;
};

static void *waiter(void *arg)
{
    struct wakeup *w = arg;
    if (pin(1) != 0) {
        w->failed = 1;
        atomic_store(&w->replied, w->n);
        futex_wake_one(&w->replied);
        return NULL;
    }
    for (unsigned i = 1; i <= w->n; i++) {
        for (;;) {
            unsigned g = atomic_load(&w->go);
            if (g >= i)
                break;
            futex_wait(&w->go, g);
        }
        atomic_store(&w->woke_at, now_ns());
        atomic_store(&w->replied, i);
        futex_wake_one(&w->replied);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Median latency in ns, or UINT64_MAX on failure. */
static uint64_t wakeup_latency(unsigned n)
{
    static uint64_t lat[1024];
    if (n > sizeof lat / sizeof lat[0] || pin(0) != 0)
        return UINT64_MAX;
    struct wakeup w = { .n = n };
    pthread_t t;
    if (pthread_create(&t, NULL, waiter, &w) != 0)
        return UINT64_MAX;
    const struct timespec two_ms = { .tv_sec = 0, .tv_nsec = 2000000 };
    for (unsigned i = 1; i <= n && !w.failed; i++) {
        nanosleep(&two_ms, NULL); /* let CPU 1 go idle */
        atomic_store(&w.woke_at, 0);
        uint64_t t0 = now_ns();
        atomic_store(&w.go, i);
        futex_wake_one(&w.go);
        for (;;) {
            unsigned r = atomic_load(&w.replied);
            if (r >= i)
                break;
            futex_wait(&w.replied, r);
        }
        uint64_t at = atomic_load(&w.woke_at);
        lat[i - 1] = at > t0 ? at - t0 : 0;
    }
    pthread_join(t, NULL);
    if (w.failed)
        return UINT64_MAX;
    qsort(lat, n, sizeof lat[0], cmp_u64);
    return lat[n / 2];
}

/* ---- mutex_uncontended ------------------------------------------------ */

static int mutex_uncontended(void)
{
    enum { N = 100000 };
    static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    static volatile uint64_t counter;
    uint64_t t0 = now_ns();
    for (int i = 0; i < N; i++) {
        pthread_mutex_lock(&m);
        counter++;
        pthread_mutex_unlock(&m);
    }
    uint64_t ns = now_ns() - t0;
    if (counter != N)
        return -1;
    report("mutex_uncontended", N, ns);
    return 0;
}

static int run(void)
{
    int cpus = online_cpus();
    printf("bench: suite=sched cpus=%d\n", cpus);
    uint64_t ns, ops = ping_pong(2000, 0, 0, &ns);
    if (ops == 0) {
        printf("bench: error=switch_1cpu\n");
        return 1;
    }
    report("switch_1cpu", ops, ns);
    if (cpus >= 2) {
        ops = ping_pong(2000, 0, 1, &ns);
        if (ops == 0) {
            printf("bench: error=switch_2cpu\n");
            return 1;
        }
        report("switch_2cpu", ops, ns);
        uint64_t median = wakeup_latency(101);
        if (median == UINT64_MAX) {
            printf("bench: error=wakeup_latency_2cpu\n");
            return 1;
        }
        report("wakeup_latency_2cpu", 1, median);
    } else {
        skipped("switch_2cpu", "needs-2-cpus");
        skipped("wakeup_latency_2cpu", "needs-2-cpus");
    }
    /* The main thread stays on CPU 0 (pinned above), where Skiff's main
     * thread runs too. */
    if (mutex_uncontended() != 0) {
        printf("bench: error=mutex_uncontended\n");
        return 1;
    }
    printf("bench: done\n");
    return 0;
}

int main(void)
{
    guest_setup();
    return guest_exit(run());
}
