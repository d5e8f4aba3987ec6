/*
 * A QEMU TCG plugin for `SKIFF_BENCH_PROFILE=ROW cargo skiff bench net`:
 * counts the guest instructions executed per translation block (exec count
 * × instructions in the block, every vCPU), keyed by the block's guest
 * virtual start address, and writes the table on request, so the host can
 * take a snapshot before and after a load phase and symbolise the
 * difference against the kernel ELF (tools/skiff/src/bench_net/profile.rs).
 *
 * Plugin argument `out=PATH`. The host asks for a snapshot by writing the
 * destination path into PATH.req; the plugin (polling every 5 ms) writes
 * lines `PC INSNS` (hex PC, decimal instruction count since boot) to that
 * destination through a rename, then deletes PATH.req.
 *
 * Built for the host like bench/insncount.c (gcc -O2 -shared -fPIC); QEMU's
 * plugin header is not packaged by Debian, so the entry points used are
 * declared below as QEMU's stable plugin API defines them.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

#define EXPORT __attribute__((visibility("default")))

EXPORT int qemu_plugin_version = 2;

/* One entry per (start address, length): retranslations reuse it. */
struct block {
    uint64_t pc;
    uint64_t n;
    uint64_t insns;
};

#define SLOTS (1u << 20)
static struct block *table;
static unsigned used;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char out[1024];

static void tb_exec(unsigned int vcpu, void *p)
{
    (void)vcpu;
    struct block *b = p;
    __atomic_fetch_add(&b->insns, b->n, __ATOMIC_RELAXED);
}

static struct block *lookup(uint64_t pc, uint64_t n)
{
    uint64_t h = (pc * 0x9e3779b97f4a7c15ull) ^ n;
    for (unsigned i = 0; i < SLOTS; i++) {
        struct block *b = &table[(h + i) & (SLOTS - 1)];
        if (b->n == 0) {
            if (used + 1 >= SLOTS * 3 / 4)
                return NULL;
            used++;
            b->pc = pc;
            b->insns = 0;
            __atomic_store_n(&b->n, n, __ATOMIC_RELEASE);
            return b;
        }
        if (b->pc == pc && b->n == n)
            return b;
    }
    return NULL;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uint64_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0)
        return;
    pthread_mutex_lock(&lock);
    struct block *b = lookup(qemu_plugin_tb_vaddr(tb), n);
    pthread_mutex_unlock(&lock);
    if (b == NULL) {
        static int warned;
        if (!warned++)
            fprintf(stderr, "tbprof: table full, later blocks are not counted\n");
        return;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void snapshot(const char *dest)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", dest);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    for (unsigned i = 0; i < SLOTS; i++) {
        struct block *b = &table[i];
        uint64_t n = __atomic_load_n(&b->n, __ATOMIC_ACQUIRE);
        uint64_t insns = __atomic_load_n(&b->insns, __ATOMIC_RELAXED);
        if (n != 0 && insns != 0)
            fprintf(f, "%llx %llu\n", (unsigned long long)b->pc, (unsigned long long)insns);
    }
    if (fclose(f) == 0)
        rename(tmp, dest);
}

static void *watcher(void *arg)
{
    (void)arg;
    char req[1100];
    snprintf(req, sizeof req, "%s.req", out);
    for (;;) {
        FILE *f = fopen(req, "r");
        if (f != NULL) {
            char dest[1024];
            if (fgets(dest, sizeof dest, f) != NULL) {
                dest[strcspn(dest, "\n")] = 0;
                if (dest[0] != 0)
                    snapshot(dest);
            }
            fclose(f);
            unlink(req);
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc,
                               char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0)
            snprintf(out, sizeof out, "%s", argv[i] + 4);
    if (out[0] == 0) {
        fprintf(stderr, "tbprof: needs out=PATH\n");
        return -1;
    }
    table = calloc(SLOTS, sizeof *table);
    if (table == NULL)
        return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, watcher, NULL) != 0)
        return -1;
    pthread_detach(t);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    return 0;
}
