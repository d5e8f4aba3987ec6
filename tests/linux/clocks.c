/* Clocks: CLOCK_MONOTONIC never goes back, nanosleep and clock_nanosleep
 * sleep at least as asked, CLOCK_REALTIME is after 2020, clock_getres is
 * sane, gettimeofday agrees with CLOCK_REALTIME. Only facts are printed,
 * never times. */
#include "common.h"
#include <sys/time.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    test_init();
    struct timespec a, b, res;
    CHECK("monotonic", clock_gettime(CLOCK_MONOTONIC, &a) == 0);
    int back = 0;
    for (int i = 0; i < 1000; i++) {
        if (clock_gettime(CLOCK_MONOTONIC, &b) != 0 || ns(b) < ns(a))
            back = 1;
        a = b;
    }
    CHECK("monotonic_never_back", !back);
    struct timespec req = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK("nanosleep", nanosleep(&req, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK("slept_at_least_20ms", ns(b) - ns(a) >= 20 * 1000 * 1000);
    CHECK("slept_under_5s", ns(b) - ns(a) < 5LL * 1000 * 1000 * 1000);
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec until = {a.tv_sec, a.tv_nsec + 10 * 1000 * 1000};
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    CHECK("clock_nanosleep_abs", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK("woke_after_deadline", ns(b) >= ns(until));
    struct timespec bad = {0, 1000000000};
    CHECK("nanosleep_bad_einval", nanosleep(&bad, NULL) == -1 && errno == EINVAL);
    CHECK("getres_monotonic", clock_getres(CLOCK_MONOTONIC, &res) == 0 && ns(res) > 0 && ns(res) <= 1000000);
    struct timespec rt;
    CHECK("realtime_after_2020", clock_gettime(CLOCK_REALTIME, &rt) == 0 && rt.tv_sec > 1577836800);
    struct timeval tv;
    CHECK("gettimeofday_agrees", gettimeofday(&tv, NULL) == 0 && tv.tv_sec - rt.tv_sec >= 0 && tv.tv_sec - rt.tv_sec < 5);
    /* time() reads the coarse clock (the last tick's time) on Linux, which
     * can still be a second behind a precise reading just taken, right
     * after a second boundary: one second behind is the same time. */
    CHECK("time_agrees", time(NULL) - rt.tv_sec >= -1 && time(NULL) - rt.tv_sec < 5);
    CHECK("bad_clock_einval", clock_gettime((clockid_t)1234, &a) == -1 && errno == EINVAL);
    CHECK("process_cputime", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a) == 0);
    return test_exit();
}
