/* An unknown system call (999 is free on x86_64 and aarch64) fails with
 * ENOSYS, and the program goes on. */
#include "common.h"
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    test_init();
    errno = 0;
    long r = syscall(999, 1, 2, 3);
    printf("ret=%ld errno=%s\n", r, errname(errno));
    errno = 0;
    r = syscall(1999);
    printf("ret=%ld errno=%s\n", r, errname(errno));
    printf("still_running=1\n");
    return 0;
}
