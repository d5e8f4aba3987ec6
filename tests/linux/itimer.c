/* Interval timers: setitimer/getitimer ITIMER_REAL (one-shot and
 * periodic SIGALRM, the time left, the old setting returned), alarm()'s
 * rounding of the seconds left, the argument errors, and finally SIGALRM's
 * default action killing the process (exit status compared). */
#include "common.h"
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
    (void)sig;
    alarms++;
}

static long us(struct timeval t) { return t.tv_sec * 1000000L + t.tv_usec; }

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* Waits (sigsuspend, SIGALRM unblocked only there) for `n` SIGALRMs. */
static void wait_alarms(int n) {
    sigset_t none;
    sigemptyset(&none);
    while (alarms < n)
        sigsuspend(&none);
}

static int arm(long interval_us, long value_us, struct itimerval *old) {
    struct itimerval v = {{interval_us / 1000000, interval_us % 1000000},
                          {value_us / 1000000, value_us % 1000000}};
    return setitimer(ITIMER_REAL, &v, old);
}

int main(void) {
    test_init();
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alrm, NULL);

    struct itimerval cur, old;
    CHECK("initial_get", getitimer(ITIMER_REAL, &cur) == 0);
    CHECK("initial_disarmed", us(cur.it_value) == 0 && us(cur.it_interval) == 0);

    /* One-shot, 50 ms. */
    long t0 = now_ms();
    CHECK("oneshot_arm", arm(0, 50000, &old) == 0);
    CHECK("oneshot_old_disarmed", us(old.it_value) == 0);
    CHECK("oneshot_get", getitimer(ITIMER_REAL, &cur) == 0);
    CHECK("oneshot_left", us(cur.it_value) > 0 && us(cur.it_value) <= 50000 &&
                              us(cur.it_interval) == 0);
    wait_alarms(1);
    long waited = now_ms() - t0;
    printf("oneshot_alarms=%d\n", (int)alarms);
    CHECK("oneshot_not_early", waited >= 49);
    CHECK("oneshot_get_after", getitimer(ITIMER_REAL, &cur) == 0 && us(cur.it_value) == 0);

    /* Periodic, 20 ms: five signals, then disarm; the old setting keeps
     * its interval. */
    alarms = 0;
    t0 = now_ms();
    CHECK("periodic_arm", arm(20000, 20000, NULL) == 0);
    CHECK("periodic_get", getitimer(ITIMER_REAL, &cur) == 0);
    CHECK("periodic_interval", us(cur.it_interval) == 20000 && us(cur.it_value) > 0);
    wait_alarms(5);
    waited = now_ms() - t0;
    CHECK("periodic_disarm", arm(0, 0, &old) == 0);
    CHECK("periodic_old_interval", us(old.it_interval) == 20000 && us(old.it_value) > 0 &&
                                       us(old.it_value) <= 20000);
    printf("periodic_alarms_at_least_5=%s\n", alarms >= 5 ? "yes" : "no");
    CHECK("periodic_not_early", waited >= 99);
    /* Nothing more comes once disarmed. */
    int seen = alarms;
    usleep(60000);
    sigset_t pending;
    sigpending(&pending);
    CHECK("disarmed_quiet", alarms == seen && !sigismember(&pending, SIGALRM));

    /* alarm(): the seconds left, rounded to nearest (never 0 if armed). */
    printf("alarm_first=%u\n", alarm(10));
    printf("alarm_second=%u\n", alarm(5));
    CHECK("alarm_get", getitimer(ITIMER_REAL, &cur) == 0 && cur.it_value.tv_sec <= 5 &&
                           us(cur.it_value) > 4000000);
    printf("alarm_cancel=%u\n", alarm(0));
    CHECK("alarm_cancelled", getitimer(ITIMER_REAL, &cur) == 0 && us(cur.it_value) == 0);

    /* Errors. */
    struct itimerval bad = {{0, 0}, {0, 1000000}};
    EXPECT_ERR("bad_usec", setitimer(ITIMER_REAL, &bad, NULL), EINVAL);
    bad.it_value.tv_usec = -1;
    EXPECT_ERR("negative_usec", setitimer(ITIMER_REAL, &bad, NULL), EINVAL);
    EXPECT_ERR("bad_which_set", setitimer(7, &cur, NULL), EINVAL);
    EXPECT_ERR("bad_which_get", getitimer(7, &cur), EINVAL);
    CHECK("still_disarmed", getitimer(ITIMER_REAL, &cur) == 0 && us(cur.it_value) == 0);

    /* SIGALRM's default action ends the process. */
    printf("failures=%d\n", test_failures);
    signal(SIGALRM, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);
    alarm(1);
    for (;;)
        pause();
}
