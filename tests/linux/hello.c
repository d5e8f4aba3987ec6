/* argv, environment and exit status: prints argc, every argv[i] and the
 * SKIFF_* variables plus HOME and PATH, then exits with the status named by
 * an `exit=N` argument (0 without one). */
#include "common.h"

extern char **environ;

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    test_init();
    printf("hello=world\n");
    printf("argc=%d\n", argc);
    int status = 0;
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=<%s>\n", i, argv[i]);
        if (strncmp(argv[i], "exit=", 5) == 0)
            status = atoi(argv[i] + 5);
    }
    /* Sorted: qemu-user (the arm64 reference) reverses envp's order. */
    int n = 0;
    while (environ[n])
        n++;
    char **sorted = calloc(n + 1, sizeof *sorted);
    memcpy(sorted, environ, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, by_name);
    for (int i = 0; i < n; i++) {
        if (strncmp(sorted[i], "SKIFF_", 6) == 0 || strncmp(sorted[i], "HOME=", 5) == 0 ||
            strncmp(sorted[i], "PATH=", 5) == 0)
            printf("env <%s>\n", sorted[i]);
    }
    free(sorted);
    printf("envc=%d\n", n);
    const char *missing = getenv("SKIFF_NOT_SET");
    printf("getenv_unset=%s\n", missing ? "set" : "null");
    printf("status=%d\n", status);
    return status;
}
