/* Signals: a handler runs for raise() with SA_SIGINFO details, the mask
 * blocks and sigpending reports, unblocking delivers, SA_RESETHAND
 * restores the default, a handler on an alternate stack (sigaltstack), and
 * a SIGSEGV handler that longjmps out of a bad access. */
#include "common.h"
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

static volatile sig_atomic_t got, got_code, on_alt;
static char altstack[64 * 1024];
static sigjmp_buf jump;

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig;
    got_code = si->si_code;
}

static void alt_handler(int sig) {
    char here;
    (void)sig;
    on_alt = (uintptr_t)&here >= (uintptr_t)altstack && (uintptr_t)&here < (uintptr_t)altstack + sizeof altstack;
}

static void segv_handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got = sig;
    got_code = si->si_addr == (void *)16;
    siglongjmp(jump, 1);
}

int main(void) {
    test_init();
    struct sigaction sa = {0};
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK("sigaction", sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK("raise", raise(SIGUSR1) == 0);
    CHECK("handler_ran", got == SIGUSR1);
    CHECK("si_code_tkill", got_code == SI_TKILL);

    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    got = 0;
    CHECK("block", sigprocmask(SIG_BLOCK, &set, NULL) == 0);
    CHECK("kill_self", kill(getpid(), SIGUSR1) == 0);
    CHECK("not_delivered_while_blocked", got == 0);
    CHECK("sigpending", sigpending(&pending) == 0 && sigismember(&pending, SIGUSR1));
    CHECK("unblock", sigprocmask(SIG_UNBLOCK, &set, NULL) == 0);
    CHECK("delivered_on_unblock", got == SIGUSR1);
    CHECK("si_code_user", got_code == SI_USER);

    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    CHECK("sigaltstack", sigaltstack(&ss, NULL) == 0);
    struct sigaction alt = {0};
    alt.sa_handler = alt_handler;
    alt.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&alt.sa_mask);
    CHECK("sigaction_onstack", sigaction(SIGUSR2, &alt, NULL) == 0);
    raise(SIGUSR2);
    CHECK("ran_on_altstack", on_alt);
    struct sigaction now;
    CHECK("resethand_restored_default", sigaction(SIGUSR2, NULL, &now) == 0 && now.sa_handler == SIG_DFL);

    struct sigaction segv = {0};
    segv.sa_sigaction = segv_handler;
    segv.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&segv.sa_mask);
    CHECK("sigaction_segv", sigaction(SIGSEGV, &segv, NULL) == 0);
    got = 0;
    if (sigsetjmp(jump, 1) == 0) {
        volatile int *bad = (volatile int *)16;
        *bad = 1;
        printf("segv_not_raised=1\n");
    }
    CHECK("segv_handled", got == SIGSEGV);
    CHECK("segv_si_addr", got_code == 1);
    CHECK("bad_signal_einval", sigaction(0, &sa, NULL) == -1 && errno == EINVAL);
    CHECK("sigkill_not_catchable", sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL);
    return test_exit();
}
