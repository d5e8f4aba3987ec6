/* Robust mutexes (set_robust_list): a thread that dies holding one makes
 * the next locker get EOWNERDEAD, whether it locks after the death or was
 * already waiting. The kernel walks the dying thread's robust list.
 * qemu-user (the arm64 reference) does not implement robust lists: then
 * this prints that and stops, instead of hanging. */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static pthread_mutex_t robust;
static volatile sig_atomic_t holder_locked;

static void *die_holding(void *arg) {
    long wait_ms = (long)(intptr_t)arg;
    pthread_mutex_lock(&robust);
    holder_locked = 1;
    sleep_ms(wait_ms);
    return NULL; /* exits still holding it */
}

static void test_robust(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);

    /* The owner is gone before we try. */
    pthread_t t;
    holder_locked = 0;
    pthread_create(&t, NULL, die_holding, (void *)0);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&robust);
    printf("robust_after_exit lock=%s\n", r == EOWNERDEAD ? "EOWNERDEAD" : errname(r));
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);

    /* We wait on it while the owner dies: the exit wakes us. */
    holder_locked = 0;
    pthread_create(&t, NULL, die_holding, (void *)(intptr_t)150);
    while (!holder_locked)
        sleep_ms(5);
    r = pthread_mutex_lock(&robust);
    printf("robust_waiter lock=%s\n", r == EOWNERDEAD ? "EOWNERDEAD" : errname(r));
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    pthread_join(t, NULL);
    r = pthread_mutex_lock(&robust);
    printf("robust_consistent lock=%d\n", r);
    pthread_mutex_unlock(&robust);
}

int main(void) {
    test_init();
    void *head;
    size_t len;
    if (syscall(SYS_get_robust_list, 0, &head, &len) != 0) {
        printf("robust_list=unsupported errno=%s\n", errname(errno));
        return 0;
    }
    printf("robust_list_len=%zu\n", len);
    test_robust();
    return test_exit();
}
