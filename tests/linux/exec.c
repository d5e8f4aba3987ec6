/* execve/execveat: the program re-executes itself through several stages
 * (argv[1] names the stage) and checks what survives an exec and what does
 * not. Stage "start": every failing exec returns its errno and the process
 * goes on; then it sets up descriptors, signals and a name, and execs
 * /proc/self/exe. "stage2": argv/envp, descriptors, dispositions, mask,
 * pending signal, comm, AT_EXECFN, /proc/self/cmdline; execveat relative to
 * a directory descriptor. "stage3": a #! script whose interpreter is this
 * binary. "-a" (as the script): the script's argv; then exec from a second
 * thread while the main thread sleeps. "thread": the thread became the
 * only one, tid = pid. Exits 7. */
#include "common.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *ename(int e) {
    switch (e) {
    case ENOEXEC: return "ENOEXEC";
    case E2BIG: return "E2BIG";
    case ELOOP: return "ELOOP";
    default: return errname(e);
    }
}

/* An exec that must fail with `want`, leaving the process as it was. */
static void expect_err(const char *what, long r, int want) {
    int e = errno;
    if (r == -1 && e == want) {
        printf("%s=%s\n", what, ename(e));
    } else {
        printf("%s=FAIL ret=%ld errno=%s\n", what, r, ename(e));
        test_failures++;
    }
}

static void write_file(const char *path, const char *data, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data)) {
        printf("setup_write=FAIL errno=%s\n", ename(errno));
        exit(1);
    }
    close(fd);
    chmod(path, mode);
}

static void on_usr1(int sig) { (void)sig; }

static char self[4096];

static void find_self(void) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        printf("readlink_self=FAIL errno=%s\n", ename(errno));
        exit(1);
    }
    self[n] = 0;
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int stage_start(void) {
    find_self();
    char dir[] = "/tmp/skiff-exec-XXXXXX";
    CHECK("mkdtemp", mkdtemp(dir) != NULL);
    char plain[256], garbage[256], empty[256], loop_a[256], loop_b[256], link[256],
        nointerp[256], notdir[300];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage", dir);
    snprintf(empty, sizeof empty, "%s/empty", dir);
    snprintf(loop_a, sizeof loop_a, "%s/loop_a", dir);
    snprintf(loop_b, sizeof loop_b, "%s/loop_b", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    snprintf(nointerp, sizeof nointerp, "%s/nointerp.sh", dir);
    snprintf(notdir, sizeof notdir, "%s/sub", plain);
    write_file(plain, "#!/bin/sh\n", 0644);
    write_file(garbage, "\x01\x02 not a program\n", 0755);
    write_file(empty, "", 0755);
    write_file(nointerp, "#!/nonexistent/skiff-interp -x\necho no\n", 0755);
    CHECK("symlinks", symlink(loop_b, loop_a) == 0 && symlink(loop_a, loop_b) == 0 &&
                          symlink(self, link) == 0);

    char *args[] = {"exec", "never", NULL};
    char *env[] = {NULL};
    expect_err("missing", execve("/nonexistent/skiff-exec", args, env), ENOENT);
    expect_err("not_executable", execve(plain, args, env), EACCES);
    expect_err("not_a_program", execve(garbage, args, env), ENOEXEC);
    expect_err("empty_file", execve(empty, args, env), ENOEXEC);
    expect_err("directory", execve(dir, args, env), EACCES);
    expect_err("not_a_directory", execve(notdir, args, env), ENOTDIR);
    expect_err("symlink_loop", execve(loop_a, args, env), ELOOP);
    expect_err("nofollow_link",
               syscall(SYS_execveat, AT_FDCWD, link, args, env, AT_SYMLINK_NOFOLLOW), ELOOP);
    expect_err("bad_flags", syscall(SYS_execveat, AT_FDCWD, self, args, env, 0x4), EINVAL);
    expect_err("empty_path", execve("", args, env), ENOENT);
    expect_err("script_interp_missing", execve(nointerp, args, env), ENOENT);
    expect_err("bad_argv", syscall(SYS_execve, self, 8L, env), EFAULT);
    expect_err("bad_arg_string", execve(self, (char *[]){"exec", (char *)8, NULL}, env),
               EFAULT);
    size_t big = 200 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = 0;
    expect_err("arg_too_long", execve(self, (char *[]){"exec", huge, NULL}, env), E2BIG);
    free(huge);
    CHECK("still_alive", getpid() > 0);

    unlink(plain);
    unlink(garbage);
    unlink(empty);
    unlink(nointerp);
    unlink(loop_a);
    unlink(loop_b);
    unlink(link);

    /* What an exec keeps and what it resets. */
    int keep = open("/dev/null", O_RDONLY);
    int gone = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK("fds", keep >= 0 && gone >= 0);
    struct sigaction sa = {0};
    sa.sa_handler = SIG_IGN;
    CHECK("ignore_usr2", sigaction(SIGUSR2, &sa, NULL) == 0);
    sa.sa_handler = on_usr1;
    CHECK("handle_usr1", sigaction(SIGUSR1, &sa, NULL) == 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    CHECK("block", sigprocmask(SIG_BLOCK, &set, NULL) == 0);
    CHECK("raise_blocked", raise(SIGINT) == 0);
    CHECK("rename", prctl(PR_SET_NAME, "renamed-first", 0, 0, 0) == 0);

    char keep_s[16], gone_s[16];
    snprintf(keep_s, sizeof keep_s, "%d", keep);
    snprintf(gone_s, sizeof gone_s, "%d", gone);
    char tmp_env[300];
    snprintf(tmp_env, sizeof tmp_env, "EXEC_TMP=%s", dir);
    char *next[] = {"exec-stage2", "stage2", keep_s, gone_s, "", "two words", NULL};
    char *nenv[] = {"EXEC_MARK=changed env", "EMPTY=", tmp_env, NULL};
    execve("/proc/self/exe", next, nenv);
    printf("exec_proc_self=FAIL errno=%s\n", ename(errno));
    return 1;
}

static int stage2(int argc, char **argv) {
    printf("stage2 argc=%d\n", argc);
    CHECK("argv0", strcmp(argv[0], "exec-stage2") == 0);
    CHECK("argv_empty", argc == 6 && argv[4][0] == 0);
    CHECK("argv_spaces", argc == 6 && strcmp(argv[5], "two words") == 0);
    int n = 0;
    for (char **e = environ; *e; e++)
        n++;
    printf("envc=%d\n", n);
    const char *mark = getenv("EXEC_MARK");
    printf("EXEC_MARK=%s\n", mark ? mark : "(unset)");
    CHECK("env_empty_value", getenv("EMPTY") && !getenv("EMPTY")[0]);
    CHECK("env_old_gone", getenv("PATH") == NULL);

    int keep = atoi(argv[2]), gone = atoi(argv[3]);
    CHECK("plain_fd_kept", fcntl(keep, F_GETFD) == 0);
    errno = 0;
    int r = fcntl(gone, F_GETFD);
    printf("cloexec_fd_closed=%s\n", r == -1 && errno == EBADF ? "ok" : "FAIL");
    close(keep);

    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    CHECK("handler_reset", old.sa_handler == SIG_DFL);
    sigaction(SIGUSR2, NULL, &old);
    CHECK("ignored_kept", old.sa_handler == SIG_IGN);
    sigset_t set;
    sigprocmask(SIG_BLOCK, NULL, &set);
    CHECK("mask_kept", sigismember(&set, SIGHUP) && sigismember(&set, SIGINT) &&
                           !sigismember(&set, SIGUSR1));
    sigpending(&set);
    CHECK("pending_kept", sigismember(&set, SIGINT));

    char comm[17] = {0};
    prctl(PR_GET_NAME, comm, 0, 0, 0);
    printf("comm=%s\n", comm);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    CHECK("execfn", execfn && strcmp(execfn, "/proc/self/exe") == 0);
    find_self();
    CHECK("proc_self_exe_real", strcmp(self, "/proc/self/exe") != 0 &&
                                    strcmp(base(self), "exec") == 0);
    char cmd[512] = {0};
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, cmd, sizeof cmd) : -1;
    close(fd);
    static const char want[] = "exec-stage2\0stage2\0";
    CHECK("cmdline", got > (ssize_t)sizeof want && memcmp(cmd, want, sizeof want - 1) == 0);

    /* Next: execveat relative to the executable's directory. */
    char dir[4096];
    strcpy(dir, self);
    *strrchr(dir, '/') = 0;
    int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY);
    CHECK("open_dir", dfd >= 0);
    char *next[] = {"exec", "stage3", NULL};
    char tmp_env[300];
    snprintf(tmp_env, sizeof tmp_env, "EXEC_TMP=%s", getenv("EXEC_TMP"));
    char *nenv[] = {tmp_env, NULL};
    syscall(SYS_execveat, dfd, base(self), next, nenv, 0);
    printf("execveat=FAIL errno=%s\n", ename(errno));
    return 1;
}

static int stage3(void) {
    printf("stage3=ok\n");
    char comm[17] = {0};
    prctl(PR_GET_NAME, comm, 0, 0, 0);
    printf("comm=%s\n", comm);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    CHECK("execfn_dev_fd", execfn && strncmp(execfn, "/dev/fd/", 8) == 0);
    find_self();
    const char *dir = getenv("EXEC_TMP");
    char script[300], line[4200];
    snprintf(script, sizeof script, "%s/script.sh", dir);
    snprintf(line, sizeof line, "#!  %s   -a  b \nexit 3\n", self);
    write_file(script, line, 0755);
    char *next[] = {"script-name", "x", "", NULL};
    char tmp_env[300];
    snprintf(tmp_env, sizeof tmp_env, "EXEC_TMP=%s", dir);
    char *nenv[] = {tmp_env, NULL};
    execve(script, next, nenv);
    printf("exec_script=FAIL errno=%s\n", ename(errno));
    return 1;
}

static void *exec_from_thread(void *arg) {
    (void)arg;
    char *next[] = {"exec", "thread", NULL};
    char *nenv[] = {NULL};
    execve("/proc/self/exe", next, nenv);
    printf("exec_thread=FAIL errno=%s\n", ename(errno));
    exit(1);
}

/* Run as the script: argv = interpreter, its one argument, the script. */
static int stage_script(int argc, char **argv) {
    printf("script argc=%d\n", argc);
    char comm[17] = {0};
    prctl(PR_GET_NAME, comm, 0, 0, 0);
    printf("comm=%s\n", comm);
    find_self();
    CHECK("script_interp", strcmp(argv[0], self) == 0);
    CHECK("script_arg", strcmp(argv[1], "-a  b") == 0);
    const char *dir = getenv("EXEC_TMP");
    char script[300];
    snprintf(script, sizeof script, "%s/script.sh", dir);
    CHECK("script_path", argc == 5 && strcmp(argv[2], script) == 0);
    CHECK("script_args", argc == 5 && strcmp(argv[3], "x") == 0 && argv[4][0] == 0);
    unlink(script);
    rmdir(dir);

    /* Nothing is printed after the thread starts: its exec may end this
     * thread at any point. */
    pthread_t t;
    if (pthread_create(&t, NULL, exec_from_thread, NULL) != 0) {
        printf("thread=FAIL\n");
        return 1;
    }
    /* A long sleep: the exec must end this thread, not wait for it. */
    for (;;) {
        struct timespec ts = {3600, 0};
        nanosleep(&ts, NULL);
    }
    return 1;
}

static int stage_thread(void) {
    printf("thread_exec=ok\n");
    CHECK("tid_is_pid", syscall(SYS_gettid) == getpid());
    char buf[4096] = {0};
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    close(fd);
    CHECK("one_thread", n > 0 && strstr(buf, "\nThreads:\t1\n") != NULL);
    return test_failures ? 1 : 7;
}

int main(int argc, char **argv) {
    test_init();
    if (argc < 2)
        return stage_start();
    if (strcmp(argv[1], "stage2") == 0 && argc >= 4)
        return stage2(argc, argv);
    if (strcmp(argv[1], "stage3") == 0)
        return stage3();
    if (strcmp(argv[1], "-a  b") == 0)
        return stage_script(argc, argv);
    if (strcmp(argv[1], "thread") == 0)
        return stage_thread();
    if (strcmp(argv[1], "never") == 0) {
        printf("exec_that_should_fail_ran=FAIL\n");
        return 1;
    }
    printf("unknown_stage=FAIL\n");
    return 1;
}
