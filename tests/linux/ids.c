/* Credentials, process group and session, resource usage, scheduling
 * parameters, membarrier, mlock and msync: facts that hold whether the
 * reference runs as root or not (the privilege rules themselves are
 * host-tested in kernel/src/linux/creds.rs). */
#include "common.h"
#include <grp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <unistd.h>

/* <linux/membarrier.h> is not in musl-gcc's headers. */
#define MEMBARRIER_CMD_QUERY 0
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED 8
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED 16

static const char *err(long r) { return r < 0 ? errname(errno) : "0"; }

int main(void) {
    test_init();
    uid_t r, e, s;
    gid_t gr, ge, gs;
    CHECK("getresuid", getresuid(&r, &e, &s) == 0 && r == getuid() && e == geteuid());
    CHECK("getresgid", getresgid(&gr, &ge, &gs) == 0 && gr == getgid() && ge == getegid());
    CHECK("setuid_self", setuid(geteuid()) == 0 && geteuid() == e);
    CHECK("setresuid_keep_all", setresuid(-1, -1, -1) == 0 && getuid() == r);
    CHECK("setresgid_keep_all", setresgid(-1, -1, -1) == 0 && getgid() == gr);
    int n = getgroups(0, NULL);
    gid_t groups[256];
    CHECK("getgroups_count", n >= 0 && n <= 256 && getgroups(n, groups) == n);
    errno = 0;
    long rr = n > 0 ? getgroups(n - 1, groups) : -2;
    printf("getgroups_too_small=%s\n", rr == -2 ? "EINVAL" : err(rr));
    printf("getgroups_negative=%s\n", err(syscall(SYS_getgroups, -1, groups)));

    CHECK("getpgid_self", getpgid(0) == getpgrp() && getpgid(getpid()) == getpgrp());
    CHECK("getsid_self", getsid(0) >= 0 && getsid(getpid()) == getsid(0));
    printf("getpgid_none=%s\n", err(getpgid(0x3ffffff0)));
    printf("getsid_none=%s\n", err(getsid(0x3ffffff0)));

    struct tms t;
    clock_t now = times(&t);
    CHECK("times", now != (clock_t)-1 && t.tms_cutime == 0 && t.tms_cstime == 0);
    struct rusage ru;
    CHECK("getrusage_self", getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_utime.tv_usec < 1000000);
    CHECK("getrusage_children", getrusage(RUSAGE_CHILDREN, &ru) == 0 && ru.ru_utime.tv_sec == 0 &&
                                    ru.ru_utime.tv_usec == 0);
    printf("getrusage_bad_who=%s\n", err(getrusage(42, &ru)));

    printf("prio_fifo=%d..%d\n", sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_FIFO));
    printf("prio_rr=%d..%d\n", sched_get_priority_min(SCHED_RR), sched_get_priority_max(SCHED_RR));
    printf("prio_other=%d..%d\n", sched_get_priority_min(SCHED_OTHER), sched_get_priority_max(SCHED_OTHER));
    printf("prio_batch=%d..%d\n", sched_get_priority_min(SCHED_BATCH), sched_get_priority_max(SCHED_BATCH));
    printf("prio_bad=%s\n", err(sched_get_priority_max(42)));

    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    CHECK("membarrier_query", q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                                  (q & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED));
    printf("membarrier_private_unregistered=%s\n",
           err(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0)));
    printf("membarrier_register=%s\n",
           err(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0)));
    printf("membarrier_private=%s\n",
           err(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0)));
    printf("membarrier_bad_flags=%s\n",
           err(syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 1, 0)));
    printf("membarrier_bad_cmd=%s\n", err(syscall(SYS_membarrier, 1 << 20, 0, 0)));

    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, page * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK("mmap", p != MAP_FAILED);
    munmap(p + page * 2, page * 2); /* a hole after two pages */
    p[0] = 1;
    printf("mlock=%s\n", err(mlock(p, page)));
    printf("mlock_unaligned=%s\n", err(mlock(p + 1, 16)));
    printf("munlock=%s\n", err(munlock(p, page)));
    printf("mlock_unmapped=%s\n", err(mlock(p + page * 2, page)));
    printf("msync_sync=%s\n", err(msync(p, page, MS_SYNC)));
    printf("msync_async=%s\n", err(msync(p, page * 2, MS_ASYNC)));
    printf("msync_unaligned=%s\n", err(msync(p + 1, page, MS_SYNC)));
    printf("msync_both=%s\n", err(msync(p, page, MS_SYNC | MS_ASYNC)));
    printf("msync_unmapped=%s\n", err(msync(p + page * 2, page, MS_SYNC)));
    printf("mlockall_bad=%s\n", err(mlockall(0)));
    printf("munlockall=%s\n", err(munlockall()));
    return 3;
}
