/*
 * /init of the Linux guest of `cargo skiff bench net` (Debian's unmodified
 * kernel; tools/skiff/src/linux_guest.rs builds the initramfs):
 *
 *  1. devtmpfs, sysfs, proc (guest.h's guest_setup, plus /proc);
 *  2. loads every module in /skiff-bench/modules/ (the virtio and
 *     virtio-net modules of the same kernel package) with finit_module,
 *     in passes until no more load (so no dependency order is needed);
 *  3. brings lo up and configures eth0 like QEMU's user network expects:
 *     10.0.2.15/24, default route via 10.0.2.2 (ioctls, no netlink);
 *  4. starts every server listed in /skiff-bench/servers (one per line,
 *     words separated by spaces: the absolute path, then the arguments);
 *  5. prints `bench: suite=net cpus=N` and `bench: ready`, then serves a
 *     control port (argv[1], default 7999): a connection sending "stop"
 *     ends every server (SIGTERM, then SIGKILL after 2 s), prints each
 *     server's exit, `bench: done` and powers the VM off (guest_exit).
 *     After SKIFF_BENCH_DEADLINE seconds (kernel command line, default
 *     1800) it powers off by itself, with status 1.
 *
 * A server that exits early is reported as `bench: error=exited-NAME-...`.
 * Outside a Linux guest (no SKIFF_BENCH_INIT=1) it refuses to run: it
 * would configure the host's network.
 *
 * Build: gcc -O2 -static -o netinit netinit.c (cargo skiff bench does).
 */
#include "guest.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MODULE_DIR "/skiff-bench/modules"
#define SERVERS "/skiff-bench/servers"
#define MAX_MODULES 32
#define MAX_SERVERS 8
#define MAX_ARGS 32

struct server {
    pid_t pid;
    char name[64];
    int exited;
};

static struct server servers[MAX_SERVERS];
static int nservers;

/*
 * The parameters the kernel command line gives module `name` (`name.k=v`
 * words, e.g. microvm's `virtio_mmio.device=...`): the kernel applies them
 * to built-in code only; for modules modprobe reads them from /proc/cmdline,
 * and so does this.
 */
static void module_params(const char *name, char *out, size_t size)
{
    static char cmdline[4096];
    out[0] = 0;
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    cmdline[n > 0 ? n : 0] = 0;
    size_t len = strlen(name), used = 0;
    for (char *w = strtok(cmdline, " \n"); w != NULL; w = strtok(NULL, " \n")) {
        if (strncmp(w, name, len) != 0 || w[len] != '.')
            continue;
        int k = snprintf(out + used, size - used, "%s%s", used ? " " : "", w + len + 1);
        if (k < 0 || (size_t)k >= size - used)
            break;
        used += (size_t)k;
    }
}

/* Loads the modules of MODULE_DIR; returns how many failed to load. */
static int load_modules(void)
{
    char names[MAX_MODULES][128];
    int loaded[MAX_MODULES] = {0};
    int n = 0;
    DIR *d = opendir(MODULE_DIR);
    if (d == NULL) {
        printf("bench: error=no-module-dir\n");
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_MODULES) {
        size_t len = strlen(e->d_name);
        if (len > 3 && len < sizeof names[0] && strcmp(e->d_name + len - 3, ".ko") == 0)
            strcpy(names[n++], e->d_name);
    }
    closedir(d);
    int progress = 1, left = n;
    while (progress && left > 0) {
        progress = 0;
        for (int i = 0; i < n; i++) {
            if (loaded[i])
                continue;
            char path[256];
            snprintf(path, sizeof path, "%s/%.127s", MODULE_DIR, names[i]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            char name[128], params[1024];
            snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 3), names[i]);
            for (char *p = name; *p; p++)
                if (*p == '-')
                    *p = '_';
            module_params(name, params, sizeof params);
            long r = syscall(SYS_finit_module, fd, params, 0);
            close(fd);
            if (r == 0)
                printf("bench: module %s%s%s\n", name, params[0] ? " " : "", params);
            if (r == 0 || errno == EEXIST) {
                loaded[i] = 1;
                left--;
                progress = 1;
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (!loaded[i])
            printf("bench: error=module-%s\n", names[i]);
    return left;
}

static void set_addr(int s, unsigned long req, const char *ifname, const char *addr)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sin->sin_addr);
    if (ioctl(s, req, &ifr) != 0)
        printf("bench: error=ioctl-%lx-%s-%s\n", req, ifname, strerror(errno));
}

static int link_up(int s, const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* lo up (Linux gives it 127.0.0.1 itself), eth0 10.0.2.15/24 via 10.0.2.2. */
static int configure_network(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        printf("bench: error=socket-%s\n", strerror(errno));
        return -1;
    }
    link_up(s, "lo");
    /* virtio_net registers eth0 while its module loads; allow a probe
     * that finishes a little later. */
    int tries = 0;
    while (link_up(s, "eth0") != 0) {
        if (++tries == 100) {
            printf("bench: error=no-eth0\n");
            close(s);
            return -1;
        }
        usleep(50000);
    }
    set_addr(s, SIOCSIFADDR, "eth0", "10.0.2.15");
    set_addr(s, SIOCSIFNETMASK, "eth0", "255.255.255.0");
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
    dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
    inet_pton(AF_INET, "10.0.2.2", &gw->sin_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = "eth0";
    if (ioctl(s, SIOCADDRT, &rt) != 0)
        printf("bench: error=route-%s\n", strerror(errno));
    close(s);
    printf("bench: net eth0=10.0.2.15/24 gw=10.0.2.2\n");
    return 0;
}

static char *const server_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "TERM=linux",
    NULL,
};

/* Starts the servers of SERVERS; returns how many started. */
static int start_servers(void)
{
    FILE *f = fopen(SERVERS, "r");
    if (f == NULL) {
        printf("bench: error=no-server-list\n");
        return 0;
    }
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL && nservers < MAX_SERVERS) {
        line[strcspn(line, "\n")] = 0;
        char *argv[MAX_ARGS + 1];
        int argc = 0;
        for (char *w = strtok(line, " "); w != NULL && argc < MAX_ARGS; w = strtok(NULL, " "))
            argv[argc++] = w;
        argv[argc] = NULL;
        if (argc == 0)
            continue;
        struct server *sv = &servers[nservers];
        const char *base = strrchr(argv[0], '/');
        snprintf(sv->name, sizeof sv->name, "%s", base ? base + 1 : argv[0]);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            printf("bench: error=fork-%s\n", sv->name);
            continue;
        }
        if (pid == 0) {
            chdir("/tmp");
            execve(argv[0], argv, server_env);
            printf("bench: error=exec-%s-%s\n", sv->name, strerror(errno));
            fflush(stdout);
            _exit(127);
        }
        sv->pid = pid;
        printf("bench: started %s pid=%d\n", sv->name, (int)pid);
        nservers++;
    }
    fclose(f);
    return nservers;
}

static struct server *find(pid_t pid)
{
    for (int i = 0; i < nservers; i++)
        if (servers[i].pid == pid)
            return &servers[i];
    return NULL;
}

/* Reaps children without blocking; `stopping`: exits are expected. */
static void reap(int stopping)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        struct server *sv = find(pid);
        if (sv == NULL)
            continue;
        sv->exited = 1;
        if (stopping)
            printf("bench: stopped %s %s=%d\n", sv->name,
                   WIFSIGNALED(st) ? "signal" : "status",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        else
            printf("bench: error=exited-%s-%s-%d\n", sv->name,
                   WIFSIGNALED(st) ? "signal" : "status",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
}

static void stop_servers(void)
{
    for (int i = 0; i < nservers; i++)
        if (!servers[i].exited)
            kill(servers[i].pid, SIGTERM);
    uint64_t until = now_ns() + 2000000000ull;
    for (;;) {
        reap(1);
        int running = 0;
        for (int i = 0; i < nservers; i++)
            running += !servers[i].exited;
        if (running == 0)
            return;
        if (now_ns() > until)
            break;
        usleep(20000);
    }
    for (int i = 0; i < nservers; i++)
        if (!servers[i].exited)
            kill(servers[i].pid, SIGKILL);
    usleep(100000);
    reap(1);
}

static int control_socket(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) {
        printf("bench: error=control-port-%s\n", strerror(errno));
        return -1;
    }
    return s;
}

int main(int argc, char **argv)
{
    (void)report; /* guest.h's figure lines: this program has none */
    (void)skipped;
    guest_setup();
    if (!bench_is_init) {
        fprintf(stderr, "netinit: only runs as a Linux guest's /init (SKIFF_BENCH_INIT=1)\n");
        return 2;
    }
    int port = argc > 1 ? atoi(argv[1]) : 7999;
    const char *dl = getenv("SKIFF_BENCH_DEADLINE");
    uint64_t deadline = now_ns() + (uint64_t)(dl ? atoi(dl) : 1800) * 1000000000ull;
    mkdir("/proc", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mkdir("/tmp", 01777);
    signal(SIGPIPE, SIG_IGN);
    if (load_modules() != 0 || configure_network() != 0)
        return guest_exit(1);
    int ctl = control_socket(port);
    if (ctl < 0 || start_servers() == 0)
        return guest_exit(1);
    printf("bench: suite=net cpus=%d\n", online_cpus());
    printf("bench: ready control=%d\n", port);
    fflush(stdout);
    for (;;) {
        reap(0);
        fflush(stdout);
        if (now_ns() > deadline) {
            printf("bench: error=deadline\n");
            stop_servers();
            return guest_exit(1);
        }
        struct pollfd p = {.fd = ctl, .events = POLLIN};
        if (poll(&p, 1, 500) <= 0)
            continue;
        int c = accept4(ctl, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        char cmd[16] = {0};
        struct pollfd pc = {.fd = c, .events = POLLIN};
        if (poll(&pc, 1, 2000) == 1 && read(c, cmd, sizeof cmd - 1) > 0 &&
            strncmp(cmd, "stop", 4) == 0) {
            (void)!write(c, "ok\n", 3);
            close(c);
            stop_servers();
            printf("bench: done\n");
            return guest_exit(0);
        }
        close(c);
    }
}
