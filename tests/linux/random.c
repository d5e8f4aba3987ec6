/* getrandom: full length returned, two draws differ, GRND_NONBLOCK works,
 * bad flags → EINVAL; /dev/urandom reads too. */
#include "common.h"
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

int main(void) {
    test_init();
    unsigned char a[32], b[32];
    ssize_t n = getrandom(a, sizeof a, 0);
    printf("getrandom_len=%zd\n", n);
    CHECK("getrandom_second", getrandom(b, sizeof b, GRND_NONBLOCK) == (ssize_t)sizeof b);
    CHECK("draws_differ", memcmp(a, b, sizeof a) != 0);
    int all_zero = 1;
    for (size_t i = 0; i < sizeof a; i++)
        all_zero &= a[i] == 0;
    CHECK("not_all_zero", !all_zero);
    CHECK("bad_flags_einval", getrandom(a, 4, 0x1000) == -1 && errno == EINVAL);
    CHECK("zero_length", getrandom(a, 0, 0) == 0);
    int fd;
    CHECK("open_urandom", (fd = open("/dev/urandom", O_RDONLY)) >= 0);
    CHECK("read_urandom", read(fd, b, sizeof b) == (ssize_t)sizeof b);
    close(fd);
    return test_exit();
}
