/* Shared helpers for the Linux conformance programs (see README.md here).
 * Output rules: stdout only, whole lines, only deterministic facts, and no
 * line may look like a kernel log line (`word: ...`): print `key=value`. */
#ifndef SKIFF_TEST_COMMON_H
#define SKIFF_TEST_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Line-buffered stdout on Linux (a pipe) and on Skiff (the console) alike,
 * so every line leaves whole and in order with the kernel's lines. */
static inline void test_init(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/* errno by name (glibc's strerrorname_np is not in musl). */
static inline const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EADDRINUSE: return "EADDRINUSE";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EALREADY: return "EALREADY";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    case EINPROGRESS: return "EINPROGRESS";
    case EISCONN: return "EISCONN";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTCONN: return "ENOTCONN";
    case ENOTSOCK: return "ENOTSOCK";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EPROTOTYPE: return "EPROTOTYPE";
    default: return "other";
    }
}

/* Prints `what=ok`, or `what=FAIL errno=E` and counts the failure. */
static int test_failures;
#define CHECK(what, cond)                                                  \
    do {                                                                   \
        errno = 0; /* so a stale errno is never blamed */          \
        if (cond) {                                                        \
            printf("%s=ok\n", what);                                       \
        } else {                                                           \
            printf("%s=FAIL errno=%s\n", what, errname(errno));            \
            test_failures++;                                               \
        }                                                                  \
    } while (0)

/* Like CHECK for a call that must fail with `want`: prints what it got. */
#define EXPECT_ERR(what, call, want)                                         \
    do {                                                                     \
        errno = 0;                                                           \
        long r_ = (long)(call);                                              \
        int e_ = errno;                                                      \
        if (r_ == -1 && e_ == (want)) {                                      \
            printf("%s=ok\n", what);                                         \
        } else {                                                             \
            printf("%s=FAIL ret=%ld errno=%s\n", what, r_, errname(e_));     \
            test_failures++;                                                 \
        }                                                                    \
    } while (0)

static inline int test_exit(void) { return test_failures ? 1 : 0; }
#endif
