/*
 * Shared by the benchmark programs (bench/sched.c, bench/syscall.c): the
 * clock, the `bench:` output lines (the exact format Skiff's in-kernel
 * benchmarks print, so one host parser reads both), and what a program
 * needs when it is a Linux guest's /init (a console, power-off).
 *
 * The same static binary, with the same arguments, runs as a Linux guest's
 * /init and as an app on Skiff. The host tells the Linux guest's /init what
 * it is through the environment: the Linux kernel hands unknown `key=value`
 * command-line words to init as environment variables, and the tool puts
 * SKIFF_BENCH_INIT=1 on that command line (never on Skiff's).
 */
#ifndef SKIFF_BENCH_GUEST_H
#define SKIFF_BENCH_GUEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <sys/io.h>
#endif

/* True when this process is a Linux guest's /init (see above). */
static int bench_is_init;

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* `bench: name=NAME ops=N ns_per_op=X`, integer division like Skiff's. */
static void report(const char *name, uint64_t ops, uint64_t ns)
{
    printf("bench: name=%s ops=%llu ns_per_op=%llu\n", name, (unsigned long long)ops,
           (unsigned long long)(ns / (ops ? ops : 1)));
    fflush(stdout);
}

static void skipped(const char *name, const char *why)
{
    printf("bench: name=%s skipped=%s\n", name, why);
    fflush(stdout);
}

/* CPUs this process may run on (no /proc or /sys needed). */
static int online_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    return CPU_COUNT(&set);
}

/* Prints the line a string file holds (without its newline), or "unknown". */
static void print_file_line(const char *key, const char *path)
{
    char buf[64] = "unknown";
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        close(fd);
    }
    printf("bench: %s=%s\n", key, buf[0] ? buf : "unknown");
}

/*
 * As a Linux /init: make sure fds 0-2 are the console (the kernel opens
 * /dev/console for init when the initramfs has one; ours relies on
 * devtmpfs), mount devtmpfs (the syscall suite reads /dev/zero) and sysfs,
 * and report the clock source the figures are measured on. Otherwise (an
 * app on Skiff, or run by hand) there is nothing to do.
 */
static void guest_setup(void)
{
    const char *flag = getenv("SKIFF_BENCH_INIT");
    if (flag == NULL || strcmp(flag, "1") != 0)
        return;
    bench_is_init = 1;
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    if (fcntl(1, F_GETFD) < 0) {
        int fd = open("/dev/console", O_RDWR);
        if (fd < 0)
            return; /* no console to complain on: the host sees no output */
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mkdir("/sys", 0755);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    print_file_line("clocksource",
                    "/sys/devices/system/clocksource/clocksource0/current_clocksource");
}

/*
 * Ends the program with `status`. As a Linux /init: prints the status line
 * the host's runner waits for (the same line Skiff's kernel prints), then
 * powers the VM off: x86 through QEMU's isa-debug-exit port (every x86 board
 * has it; Linux cannot power off microvm without ACPI), aarch64 through
 * reboot(), which is PSCI SYSTEM_OFF on QEMU virt.
 */
static int guest_exit(int status)
{
    fflush(stdout);
    if (!bench_is_init)
        return status;
    printf("skiff: exit status=%d\n", status);
    fflush(stdout);
    /* The console is a tty: wait until the UART has sent every byte, or the
     * power-off below cuts the last lines. */
    tcdrain(1);
    sync();
#if defined(__x86_64__)
    if (ioperm(0xf4, 4, 1) == 0)
        outl((unsigned)status, 0xf4);
#endif
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

#endif
