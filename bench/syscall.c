/*
 * The system-call benchmark (`cargo skiff bench syscall`, issue 4): the cost
 * of a few calls every program makes, timed with CLOCK_MONOTONIC in loops.
 * The same static binary runs as a Linux guest's /init and as an app on
 * Skiff. Output lines are Skiff's bench format:
 * `bench: name=NAME ops=N ns_per_op=X`, then `bench: done`.
 *
 *   getpid                 syscall(SYS_getpid): the bare kernel round trip
 *                          (glibc's getpid() wrapper is the same syscall; it
 *                          stopped caching in 2.25, but be explicit)
 *   clock_gettime_vdso     clock_gettime(CLOCK_MONOTONIC) through glibc,
 *                          which uses the vDSO when the kernel provides one
 *                          (a syscall otherwise: compare with the next line)
 *   clock_gettime_syscall  syscall(SYS_clock_gettime, CLOCK_MONOTONIC)
 *   read_dev_zero_4k       read(fd, buf, 4096) from /dev/zero
 *   futex_wake_nowaiter    FUTEX_WAKE | FUTEX_PRIVATE_FLAG on a word nobody
 *                          waits on
 *   mmap_munmap_64k        mmap 64 KiB anonymous private, then munmap it,
 *                          without touching it (no page faults)
 *
 * Build: gcc -O2 -static -o syscall syscall.c (cargo skiff bench does).
 */
#include "guest.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/* Keeps results alive so the compiler cannot drop the calls. */
static volatile long sink;

#define TIME_LOOP(name, n, body)                                                                   \
    do {                                                                                           \
        uint64_t t0_ = now_ns();                                                                   \
        for (long i_ = 0; i_ < (n); i_++) {                                                        \
            body;                                                                                  \
        }                                                                                          \
        report(name, (n), now_ns() - t0_);                                                         \
    } while (0)

static int run(void)
{
    printf("bench: suite=syscall cpus=%d\n", online_cpus());

    TIME_LOOP("getpid", 20000, sink = syscall(SYS_getpid));

    struct timespec ts;
    TIME_LOOP("clock_gettime_vdso", 20000, {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sink = ts.tv_nsec;
    });
    TIME_LOOP("clock_gettime_syscall", 20000,
              sink = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts));

    static char buf[4096];
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0) {
        skipped("read_dev_zero_4k", "cannot-open-dev-zero");
    } else {
        long bad = 0;
        TIME_LOOP("read_dev_zero_4k", 5000, bad += read(fd, buf, sizeof buf) != sizeof buf);
        close(fd);
        if (bad != 0 || buf[0] != 0) {
            printf("bench: error=read_dev_zero_4k short-reads=%ld\n", bad);
            return 1;
        }
    }

    static unsigned word;
    TIME_LOOP("futex_wake_nowaiter", 20000,
              sink = syscall(SYS_futex, &word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0));

    long failed = 0;
    TIME_LOOP("mmap_munmap_64k", 5000, {
        void *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || munmap(p, 65536) != 0)
            failed++;
    });
    if (failed != 0) {
        printf("bench: error=mmap_munmap_64k failures=%ld\n", failed);
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
