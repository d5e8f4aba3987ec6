/* A NULL dereference: Linux kills the program with SIGSEGV (status 139
 * from a shell); Skiff must do the same, with no kernel panic. */
#include "common.h"

int main(void) {
    test_init();
    printf("before=1\n");
    volatile int *p = NULL;
    *p = 42;
    printf("after=1\n");
    return 0;
}
