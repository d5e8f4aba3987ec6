/* /proc/self/maps in Linux's format: every line parses as
 * `start-end perms offset dev inode [path]`, there is a [stack], the
 * executable (readlink /proc/self/exe) is mapped r-xp, a fresh anonymous
 * mapping appears with its exact range and rw-p. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    test_init();
    char exe[4096] = {0};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK("readlink_exe", n > 0 && exe[0] == '/');
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK("mmap", m != MAP_FAILED);
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK("open_maps", f != NULL);
    int lines = 0, bad = 0, stack = 0, exe_rx = 0, anon = 0, ordered = 1;
    unsigned long prev_end = 0;
    char line[4352];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long start, end, off, inode;
        char perms[8], dev[16];
        int pos = 0;
        lines++;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu%n", &start, &end, perms, &off, dev, &inode, &pos) != 6 ||
            start >= end || strlen(perms) != 4) {
            bad++;
            continue;
        }
        if (start < prev_end)
            ordered = 0;
        prev_end = end;
        char *path = line + pos;
        while (*path == ' ')
            path++;
        path[strcspn(path, "\n")] = 0;
        if (strcmp(path, "[stack]") == 0)
            stack++;
        if (strcmp(path, exe) == 0 && strcmp(perms, "r-xp") == 0)
            exe_rx++;
        if (start <= (uintptr_t)m && (uintptr_t)m + 3 * page <= end && strcmp(perms, "rw-p") == 0)
            anon++;
    }
    if (f)
        fclose(f);
    CHECK("has_lines", lines > 3);
    CHECK("all_lines_parse", bad == 0);
    CHECK("sorted_disjoint", ordered);
    CHECK("one_stack", stack == 1);
    CHECK("exe_mapped_rx", exe_rx >= 1);
    CHECK("anon_mapping_listed", anon == 1);
    return test_exit();
}
