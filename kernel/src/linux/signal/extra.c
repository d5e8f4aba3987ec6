/* Signal checks beyond tests/linux/signals.c (a candidate for that suite;
 * run: cargo skiff run -- ./extra). Checks: registers survive a handler, the mask during the
 * handler, SIG_IGN, ESRCH, sigsuspend, rt_sigreturn restoring the mask,
 * si_pid, and last a default-action termination (exit status 128+15). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static volatile sig_atomic_t hits, pid_seen, mask_had_self, mask_had_extra;

static void h(int sig, siginfo_t *si, void *ucv) {
    sigset_t cur;
    sigprocmask(SIG_SETMASK, NULL, &cur);
    mask_had_self = sigismember(&cur, sig);
    mask_had_extra = sigismember(&cur, SIGHUP);
    pid_seen = si->si_pid;
    hits++;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGUSR1, &sa, NULL);
    volatile double d = 1.5;
    long before = 0x1234567;
    kill(getpid(), SIGUSR1);
    printf("hits=%d self_masked=%d extra_masked=%d si_pid_ok=%d\n", hits, mask_had_self,
           mask_had_extra, pid_seen == getpid());
    sigset_t cur;
    sigprocmask(SIG_SETMASK, NULL, &cur);
    printf("mask_restored=%d locals_ok=%d\n", !sigismember(&cur, SIGUSR1) && !sigismember(&cur, SIGHUP),
           before == 0x1234567 && d == 1.5);
    signal(SIGUSR2, SIG_IGN);
    printf("ign_raise=%d\n", raise(SIGUSR2));
    errno = 0;
    int k = kill(999999999, SIGUSR1);
    printf("kill_other=%d errno_esrch=%d\n", k, errno == ESRCH);
    errno = 0;
    k = (int)syscall(SYS_tgkill, getpid(), 999999999, SIGUSR1);
    printf("tgkill_other=%d errno_esrch=%d\n", k, errno == ESRCH);
    /* sigsuspend: block USR1, send it, wait with an empty mask. */
    sigset_t blk, empty;
    sigemptyset(&blk);
    sigaddset(&blk, SIGUSR1);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &blk, NULL);
    hits = 0;
    kill(getpid(), SIGUSR1);
    int r = sigsuspend(&empty);
    sigprocmask(SIG_SETMASK, NULL, &cur);
    printf("sigsuspend=%d eintr=%d hits=%d still_blocked=%d\n", r, errno == EINTR, hits,
           sigismember(&cur, SIGUSR1));
    printf("terminating=1\n");
    fflush(stdout);
    kill(getpid(), SIGTERM);
    printf("not_reached=1\n");
    return 0;
}
