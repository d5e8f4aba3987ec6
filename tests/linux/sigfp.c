/* Signals beyond signals.c: FP/SIMD state saved in the signal frame and
 * restored by rt_sigreturn (a handler clobbers every vector register and
 * the FP control register while the interrupted code holds values there),
 * system calls interrupted by a signal from another thread (pipe read with
 * and without SA_RESTART, nanosleep's remaining time, rt_sigsuspend),
 * and signals aimed at other threads (pthread_kill, kill() reaching the
 * thread that does not block the signal). Robust mutexes: sigrobust.c. */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static pid_t gettid_raw(void) { return (pid_t)syscall(SYS_gettid); }

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void on_signal(int sig, void (*fn)(int), int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* ---- FP/SIMD state across a handler ---- */

#define NREGS_X86 16
#define NREGS_A64 32
static uint64_t pattern[2 * NREGS_A64], seen[2 * NREGS_A64];
static volatile int fp_frame_ok, fp_handler_clean = -1;
static const uint64_t EDITED = 0x0123456789abcdefULL;

#if defined(__x86_64__)
static void fp_handler(int sig, siginfo_t *si, void *ucv) {
    (void)sig;
    (void)si;
    ucontext_t *uc = ucv;
    fpregset_t fp = uc->uc_mcontext.fpregs;
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    fp_handler_clean = mxcsr == 0x1f80;
    /* The frame holds the interrupted state: MXCSR with round-down, xmm0. */
    fp_frame_ok = fp && fp->mxcsr == (0x1f80 | 0x2000) &&
                  memcmp(&fp->_xmm[0], &pattern[0], 16) == 0 &&
                  memcmp(&fp->_xmm[15], &pattern[30], 16) == 0;
    /* Resume after the ud2; edit xmm1 in the frame: rt_sigreturn must
     * load it. */
    uc->uc_mcontext.gregs[REG_RIP] += 2;
    if (fp) {
        memcpy(&fp->_xmm[1], &EDITED, 8);
        memcpy((char *)&fp->_xmm[1] + 8, &EDITED, 8);
    }
    /* Clobber every register and MXCSR (round toward zero). */
    uint32_t rz = 0x1f80 | 0x6000;
    __asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n\t"
                     "movdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm2\n\t"
                     "movdqa %%xmm0, %%xmm3\n\tmovdqa %%xmm0, %%xmm4\n\t"
                     "movdqa %%xmm0, %%xmm5\n\tmovdqa %%xmm0, %%xmm6\n\t"
                     "movdqa %%xmm0, %%xmm7\n\tmovdqa %%xmm0, %%xmm8\n\t"
                     "movdqa %%xmm0, %%xmm9\n\tmovdqa %%xmm0, %%xmm10\n\t"
                     "movdqa %%xmm0, %%xmm11\n\tmovdqa %%xmm0, %%xmm12\n\t"
                     "movdqa %%xmm0, %%xmm13\n\tmovdqa %%xmm0, %%xmm14\n\t"
                     "movdqa %%xmm0, %%xmm15\n\t"
                     "ldmxcsr %0"
                     :
                     : "m"(rz)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* Loads the pattern and MXCSR = round down, raises SIGILL right there
 * (ud2: a synchronous signal, delivered at that instruction everywhere,
 * qemu-user included), and stores what the registers hold afterwards.
 * True if MXCSR came back. */
static uint32_t fp_roundtrip(void) {
    uint32_t mxcsr_in = 0x1f80 | 0x2000, mxcsr_out;
    __asm__ volatile("ldmxcsr %[mi]\n\t"
                     "movdqu 0(%[in]), %%xmm0\n\tmovdqu 16(%[in]), %%xmm1\n\t"
                     "movdqu 32(%[in]), %%xmm2\n\tmovdqu 48(%[in]), %%xmm3\n\t"
                     "movdqu 64(%[in]), %%xmm4\n\tmovdqu 80(%[in]), %%xmm5\n\t"
                     "movdqu 96(%[in]), %%xmm6\n\tmovdqu 112(%[in]), %%xmm7\n\t"
                     "movdqu 128(%[in]), %%xmm8\n\tmovdqu 144(%[in]), %%xmm9\n\t"
                     "movdqu 160(%[in]), %%xmm10\n\tmovdqu 176(%[in]), %%xmm11\n\t"
                     "movdqu 192(%[in]), %%xmm12\n\tmovdqu 208(%[in]), %%xmm13\n\t"
                     "movdqu 224(%[in]), %%xmm14\n\tmovdqu 240(%[in]), %%xmm15\n\t"
                     "ud2\n\t"
                     "movdqu %%xmm0, 0(%[out])\n\tmovdqu %%xmm1, 16(%[out])\n\t"
                     "movdqu %%xmm2, 32(%[out])\n\tmovdqu %%xmm3, 48(%[out])\n\t"
                     "movdqu %%xmm4, 64(%[out])\n\tmovdqu %%xmm5, 80(%[out])\n\t"
                     "movdqu %%xmm6, 96(%[out])\n\tmovdqu %%xmm7, 112(%[out])\n\t"
                     "movdqu %%xmm8, 128(%[out])\n\tmovdqu %%xmm9, 144(%[out])\n\t"
                     "movdqu %%xmm10, 160(%[out])\n\tmovdqu %%xmm11, 176(%[out])\n\t"
                     "movdqu %%xmm12, 192(%[out])\n\tmovdqu %%xmm13, 208(%[out])\n\t"
                     "movdqu %%xmm14, 224(%[out])\n\tmovdqu %%xmm15, 240(%[out])\n\t"
                     "stmxcsr %[mo]"
                     : [mo] "=m"(mxcsr_out)
                     : [mi] "m"(mxcsr_in), [in] "r"(pattern), [out] "r"(seen)
                     : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                       "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
                       "xmm14", "xmm15");
    uint32_t def = 0x1f80;
    __asm__ volatile("ldmxcsr %0" : : "m"(def));
    return mxcsr_out == mxcsr_in;
}
#define NREGS NREGS_X86
#elif defined(__aarch64__)
/* struct fpsimd_context (uapi asm/sigcontext.h) */
struct fpsimd_rec {
    uint32_t magic, size, fpsr, fpcr;
    __uint128_t vregs[32];
};

static void fp_handler(int sig, siginfo_t *si, void *ucv) {
    (void)sig;
    (void)si;
    ucontext_t *uc = ucv;
    struct fpsimd_rec *rec = (struct fpsimd_rec *)uc->uc_mcontext.__reserved;
    fp_frame_ok = rec->magic == 0x46508001 && rec->size == sizeof *rec &&
                  (rec->fpcr & (3u << 22)) == (2u << 22) &&
                  memcmp(&rec->vregs[0], &pattern[0], 16) == 0 &&
                  memcmp(&rec->vregs[31], &pattern[62], 16) == 0;
    uc->uc_mcontext.pc += 4; /* resume after the udf */
    if (fp_frame_ok) {
        memcpy(&rec->vregs[1], &EDITED, 8);
        memcpy((char *)&rec->vregs[1] + 8, &EDITED, 8);
    }
    /* Where Linux (or qemu-user) saved SVE registers too (sve_context with
     * data: Z registers at 16, vl bytes each), those are what sigreturn
     * loads: V1 is the low 128 bits of Z1. */
    for (char *p = (char *)rec; ((uint32_t *)p)[0] != 0; p += ((uint32_t *)p)[1]) {
        uint32_t magic = ((uint32_t *)p)[0], size = ((uint32_t *)p)[1];
        uint16_t vl = *(uint16_t *)(p + 8);
        if (size == 0)
            break;
        if (magic == 0x53564501 && size > 16) {
            memcpy(p + 16 + vl, &EDITED, 8);
            memcpy(p + 16 + vl + 8, &EDITED, 8);
        }
    }
    uint64_t rz = 3u << 22;
    __asm__ volatile("movi v0.16b, #0xff\n\t"
                     "mov v1.16b, v0.16b\n\tmov v2.16b, v0.16b\n\tmov v3.16b, v0.16b\n\t"
                     "mov v4.16b, v0.16b\n\tmov v5.16b, v0.16b\n\tmov v6.16b, v0.16b\n\t"
                     "mov v7.16b, v0.16b\n\tmov v8.16b, v0.16b\n\tmov v9.16b, v0.16b\n\t"
                     "mov v10.16b, v0.16b\n\tmov v11.16b, v0.16b\n\tmov v12.16b, v0.16b\n\t"
                     "mov v13.16b, v0.16b\n\tmov v14.16b, v0.16b\n\tmov v15.16b, v0.16b\n\t"
                     "mov v16.16b, v0.16b\n\tmov v17.16b, v0.16b\n\tmov v18.16b, v0.16b\n\t"
                     "mov v19.16b, v0.16b\n\tmov v20.16b, v0.16b\n\tmov v21.16b, v0.16b\n\t"
                     "mov v22.16b, v0.16b\n\tmov v23.16b, v0.16b\n\tmov v24.16b, v0.16b\n\t"
                     "mov v25.16b, v0.16b\n\tmov v26.16b, v0.16b\n\tmov v27.16b, v0.16b\n\t"
                     "mov v28.16b, v0.16b\n\tmov v29.16b, v0.16b\n\tmov v30.16b, v0.16b\n\t"
                     "mov v31.16b, v0.16b\n\t"
                     "msr fpcr, %0"
                     :
                     : "r"(rz)
                     : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
                       "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21",
                       "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
}

static uint32_t fp_roundtrip(void) {
    uint64_t fpcr_in = 2u << 22, fpcr_out; /* RMode = toward minus infinity */
    __asm__ volatile("msr fpcr, %[fi]\n\t"
                     "ldp q0, q1, [%[in], #0]\n\tldp q2, q3, [%[in], #32]\n\t"
                     "ldp q4, q5, [%[in], #64]\n\tldp q6, q7, [%[in], #96]\n\t"
                     "ldp q8, q9, [%[in], #128]\n\tldp q10, q11, [%[in], #160]\n\t"
                     "ldp q12, q13, [%[in], #192]\n\tldp q14, q15, [%[in], #224]\n\t"
                     "ldp q16, q17, [%[in], #256]\n\tldp q18, q19, [%[in], #288]\n\t"
                     "ldp q20, q21, [%[in], #320]\n\tldp q22, q23, [%[in], #352]\n\t"
                     "ldp q24, q25, [%[in], #384]\n\tldp q26, q27, [%[in], #416]\n\t"
                     "ldp q28, q29, [%[in], #448]\n\tldp q30, q31, [%[in], #480]\n\t"
                     "udf #0\n\t"
                     "stp q0, q1, [%[out], #0]\n\tstp q2, q3, [%[out], #32]\n\t"
                     "stp q4, q5, [%[out], #64]\n\tstp q6, q7, [%[out], #96]\n\t"
                     "stp q8, q9, [%[out], #128]\n\tstp q10, q11, [%[out], #160]\n\t"
                     "stp q12, q13, [%[out], #192]\n\tstp q14, q15, [%[out], #224]\n\t"
                     "stp q16, q17, [%[out], #256]\n\tstp q18, q19, [%[out], #288]\n\t"
                     "stp q20, q21, [%[out], #320]\n\tstp q22, q23, [%[out], #352]\n\t"
                     "stp q24, q25, [%[out], #384]\n\tstp q26, q27, [%[out], #416]\n\t"
                     "stp q28, q29, [%[out], #448]\n\tstp q30, q31, [%[out], #480]\n\t"
                     "mrs %[fo], fpcr\n\t"
                     "msr fpcr, xzr"
                     : [fo] "=&r"(fpcr_out)
                     : [fi] "r"(fpcr_in), [in] "r"(pattern), [out] "r"(seen)
                     : "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
                       "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19",
                       "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29",
                       "v30", "v31");
    return fpcr_out == fpcr_in;
}
#define NREGS NREGS_A64
#endif

/* A plain handler that computes with doubles under a different rounding
 * mode, leaving registers and the control register changed. */
static volatile double sink;
static void clobber(int sig) {
    (void)sig;
#if defined(__x86_64__)
    uint32_t rz = 0x1f80 | 0x6000;
    __asm__ volatile("ldmxcsr %0" : : "m"(rz));
#else
    uint64_t rz = 3u << 22;
    __asm__ volatile("msr fpcr, %0" : : "r"(rz));
#endif
    volatile double x = 2.0, y = 3.0;
    sink = x / y + x * y;
}

static void test_fp(void) {
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 2 * NREGS_A64; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = x;
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = fp_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK("fp_sigaction", sigaction(SIGILL, &sa, NULL) == 0);
    int ctl_ok = fp_roundtrip();
    CHECK("fp_frame_holds_interrupted_state", fp_frame_ok == 1);
    CHECK("fp_control_register_survives", ctl_ok);
    int same = 1;
    for (int i = 0; i < 2 * NREGS; i++) {
        uint64_t want = (i == 2 || i == 3) ? EDITED : pattern[i];
        same &= seen[i] == want;
    }
    CHECK("fp_registers_restored_from_frame", same);
#if defined(__x86_64__)
    CHECK("fp_handler_starts_clean", fp_handler_clean == 1);
#endif
    on_signal(SIGILL, SIG_DFL, 0);
    /* Doubles computed around raise() of a handler that clobbers the
     * registers and the rounding mode. */
    on_signal(SIGUSR1, clobber, 0);
    volatile double a = 1.0 / 3.0;
    double before = a * 3.0 + 0.25;
    raise(SIGUSR1);
    double after = a * 3.0 + 0.25;
    volatile double third = 1.0, three = 3.0;
    CHECK("fp_doubles_survive_raise", before == after && after == 1.25 &&
                                          third / three == 1.0 / 3.0);
    on_signal(SIGUSR1, SIG_DFL, 0);
}

/* ---- interrupted system calls ---- */

static volatile sig_atomic_t hits, stop_sender;
static pthread_t main_thread;
static int pipefd[2];

static void count(int sig) {
    (void)sig;
    hits++;
}

/* Signals the main thread every 50 ms until told to stop; writes one byte
 * to the pipe after 30 rounds so nothing hangs if a wait is not
 * interruptible (the output then shows it). */
static void *sender(void *arg) {
    int sig = (int)(intptr_t)arg;
    for (int i = 0; !stop_sender; i++) {
        sleep_ms(50);
        if (stop_sender)
            break;
        pthread_kill(main_thread, sig);
        if (i == 30 && write(pipefd[1], "x", 1) != 1)
            break;
    }
    return NULL;
}

/* Sends one signal after 100 ms, then one byte 200 ms later. */
static void *send_then_write(void *arg) {
    (void)arg;
    sleep_ms(100);
    pthread_kill(main_thread, SIGUSR2);
    sleep_ms(200);
    if (write(pipefd[1], "y", 1) != 1)
        return NULL;
    return NULL;
}

static void test_interrupted_calls(void) {
    main_thread = pthread_self();
    CHECK("pipe", pipe(pipefd) == 0);
    char c;
    pthread_t t;

    /* No SA_RESTART: the blocked read returns EINTR. */
    on_signal(SIGUSR2, count, 0);
    hits = stop_sender = 0;
    pthread_create(&t, NULL, sender, (void *)(intptr_t)SIGUSR2);
    ssize_t n = read(pipefd[0], &c, 1);
    int e = errno;
    stop_sender = 1;
    pthread_join(t, NULL);
    printf("read_no_restart n=%zd errno=%s handled=%d\n", n, errname(e), hits > 0);

    /* SA_RESTART: the read resumes and gets the byte written after. */
    on_signal(SIGUSR2, count, SA_RESTART);
    hits = 0;
    pthread_create(&t, NULL, send_then_write, NULL);
    n = read(pipefd[0], &c, 1);
    e = n < 0 ? errno : 0;
    pthread_join(t, NULL);
    printf("read_restart n=%zd errno=%s byte=%c handled=%d\n", n, errname(e), n == 1 ? c : '-',
           hits);

    /* nanosleep: EINTR with the time left written back. */
    on_signal(SIGUSR2, count, SA_RESTART);
    hits = stop_sender = 0;
    pthread_create(&t, NULL, sender, (void *)(intptr_t)SIGUSR2);
    struct timespec req = {5, 0}, rem = {-1, -1};
    int r = nanosleep(&req, &rem);
    e = errno;
    stop_sender = 1;
    pthread_join(t, NULL);
    long long left = (long long)rem.tv_sec * 1000000000LL + rem.tv_nsec;
    printf("nanosleep r=%d errno=%s rem_in_range=%d\n", r, errname(e),
           left > 0 && left < 5000000000LL);
    on_signal(SIGUSR2, SIG_DFL, 0);
}

/* ---- rt_sigsuspend, pthread_kill, kill() to the unblocked thread ---- */

static volatile pid_t handler_tid;
static void record_tid(int sig) {
    (void)sig;
    handler_tid = gettid_raw();
}

static void *kill_main_later(void *arg) {
    (void)arg;
    sleep_ms(100);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

static volatile pid_t waiter_tid;
static volatile sig_atomic_t waiter_ready, waiter_done;

/* Waits in sigsuspend (everything but SIGUSR1/SIGUSR2 blocked... none
 * here) until a handler recorded this thread. */
static void *waiter(void *arg) {
    (void)arg;
    waiter_tid = gettid_raw();
    sigset_t none;
    sigemptyset(&none);
    waiter_ready = 1;
    while (handler_tid != waiter_tid)
        sigsuspend(&none);
    waiter_done = 1;
    return NULL;
}

static void test_thread_signals(void) {
    main_thread = pthread_self();
    on_signal(SIGUSR1, record_tid, 0);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    handler_tid = 0;
    pthread_t t;
    pthread_create(&t, NULL, kill_main_later, NULL);
    sigset_t none;
    sigemptyset(&none);
    int r = sigsuspend(&none);
    int e = errno;
    pthread_join(t, NULL);
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("sigsuspend r=%d errno=%s on_main=%d mask_back=%d\n", r, errname(e),
           handler_tid == gettid_raw(), sigismember(&now, SIGUSR1));

    /* pthread_kill to another thread: its handler runs there. SIGUSR1 is
     * still blocked here, so only the target can take it. */
    handler_tid = 0;
    waiter_ready = waiter_done = 0;
    pthread_create(&t, NULL, waiter, NULL);
    while (!waiter_ready)
        sleep_ms(10);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    printf("pthread_kill on_target=%d\n", waiter_done && handler_tid == waiter_tid);

    /* kill(getpid()): the main thread blocks it, the waiter does not. */
    handler_tid = 0;
    waiter_ready = waiter_done = 0;
    pthread_create(&t, NULL, waiter, NULL);
    while (!waiter_ready)
        sleep_ms(10);
    kill(getpid(), SIGUSR1);
    pthread_join(t, NULL);
    printf("kill_process on_unblocked_thread=%d\n", waiter_done && handler_tid == waiter_tid);
    sigprocmask(SIG_SETMASK, &old, NULL);
    on_signal(SIGUSR1, SIG_DFL, 0);
}

int main(void) {
    test_init();
    test_fp();
    test_interrupted_calls();
    test_thread_signals();
    return test_exit();
}
