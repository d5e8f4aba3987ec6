/*
 * A QEMU TCG plugin for `cargo skiff bench net`'s instruction columns:
 * counts the guest instructions every vCPU executes and keeps the running
 * total in a file (plugin argument `out=PATH`, rewritten every 10 ms
 * through a rename), so the host can read the count before and after a
 * load phase: instructions / requests is the guest's cost per request,
 * whatever the host's speed. (An in-guest clock under -icount cannot give
 * it here: the guest idles while it waits for the host's packets, and that
 * idle time would count.)
 *
 * Built for the host as a shared object: gcc -O2 -shared -fPIC. QEMU's
 * plugin header is not packaged by Debian, so the few entry points used
 * are declared below as QEMU's stable plugin API (docs/devel/tcg-plugins)
 * defines them; the ABI version given is the oldest QEMU >= 8 accepts.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

#define EXPORT __attribute__((visibility("default")))

EXPORT int qemu_plugin_version = 2;

static uint64_t total;
static char out[1024];

static void tb_exec(unsigned int vcpu, void *n)
{
    (void)vcpu;
    __atomic_fetch_add(&total, (uint64_t)(uintptr_t)n, __ATOMIC_RELAXED);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)n);
}

static void *writer(void *arg)
{
    (void)arg;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    for (;;) {
        FILE *f = fopen(tmp, "w");
        if (f != NULL) {
            fprintf(f, "%llu\n", (unsigned long long)__atomic_load_n(&total, __ATOMIC_RELAXED));
            if (fclose(f) == 0)
                rename(tmp, out);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
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
        fprintf(stderr, "insncount: needs out=PATH\n");
        return -1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, writer, NULL) != 0)
        return -1;
    pthread_detach(t);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    return 0;
}
