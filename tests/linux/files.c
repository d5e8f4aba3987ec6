/* Files and directories under /tmp: mkdir, open/creat, write, lseek, read,
 * pread/pwrite, fstat/stat, getdents (readdir), rename, unlink, rmdir, and
 * the errno values of the usual mistakes. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
    test_init();
    umask(022);
    char dir[] = "/tmp/skiff-files-XXXXXX";
    CHECK("mkdtemp", mkdtemp(dir) != NULL);
    CHECK("chdir", chdir(dir) == 0);
    int fd;
    CHECK("open_creat", (fd = open("a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644)) >= 0);
    CHECK("write", write(fd, "hello, world\n", 13) == 13);
    CHECK("lseek_set", lseek(fd, 7, SEEK_SET) == 7);
    char buf[64] = {0};
    CHECK("read_after_seek", read(fd, buf, sizeof buf) == 6 && memcmp(buf, "world\n", 6) == 0);
    CHECK("read_eof", read(fd, buf, sizeof buf) == 0);
    CHECK("lseek_end", lseek(fd, 0, SEEK_END) == 13);
    CHECK("pwrite", pwrite(fd, "W", 1, 7) == 1);
    memset(buf, 0, sizeof buf);
    CHECK("pread", pread(fd, buf, 5, 7) == 5 && memcmp(buf, "World", 5) == 0);
    CHECK("offset_kept_by_pread", lseek(fd, 0, SEEK_CUR) == 13);
    struct stat st;
    CHECK("fstat", fstat(fd, &st) == 0 && st.st_size == 13 && S_ISREG(st.st_mode));
    printf("size=%lld mode=%o\n", (long long)st.st_size, (unsigned)(st.st_mode & 0777));
    CHECK("ftruncate", ftruncate(fd, 5) == 0 && fstat(fd, &st) == 0 && st.st_size == 5);
    CHECK("close", close(fd) == 0);
    CHECK("close_again_ebadf", close(fd) == -1 && errno == EBADF);

    CHECK("mkdir", mkdir("sub", 0755) == 0);
    CHECK("mkdir_eexist", mkdir("sub", 0755) == -1 && errno == EEXIST);
    CHECK("stat_dir", stat("sub", &st) == 0 && S_ISDIR(st.st_mode));
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "sub/f%d", 4 - i);
        int f = open(name, O_CREAT | O_WRONLY, 0600);
        if (f < 0 || write(f, name, strlen(name)) != (ssize_t)strlen(name) || close(f) != 0)
            printf("create_%d=FAIL errno=%s\n", i, errname(errno));
    }
    CHECK("rename", rename("sub/f0", "sub/renamed") == 0);
    CHECK("rename_missing_enoent", rename("sub/nope", "sub/x") == -1 && errno == ENOENT);
    DIR *d;
    CHECK("opendir", (d = opendir("sub")) != NULL);
    char *names[16];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < 16)
        names[n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    qsort(names, n, sizeof names[0], cmp);
    printf("entries=%d\n", n);
    for (int i = 0; i < n; i++)
        printf("entry=%s\n", names[i]);
    CHECK("rmdir_notempty", rmdir("sub") == -1 && errno == ENOTEMPTY);
    CHECK("open_dir_for_write_eisdir", open("sub", O_WRONLY) == -1 && errno == EISDIR);
    CHECK("open_missing_enoent", open("sub/missing", O_RDONLY) == -1 && errno == ENOENT);
    CHECK("open_excl_eexist", open("a.txt", O_CREAT | O_EXCL | O_WRONLY, 0644) == -1 && errno == EEXIST);
    CHECK("enotdir", open("a.txt/x", O_RDONLY) == -1 && errno == ENOTDIR);
    for (int i = 0; i < n; i++) {
        if (names[i][0] != '.') {
            char p[64];
            snprintf(p, sizeof p, "sub/%s", names[i]);
            if (unlink(p) != 0)
                printf("unlink_%s=FAIL errno=%s\n", names[i], errname(errno));
        }
        free(names[i]);
    }
    CHECK("unlink_gone", access("sub/renamed", F_OK) == -1 && errno == ENOENT);
    CHECK("rmdir", rmdir("sub") == 0);
    CHECK("unlink", unlink("a.txt") == 0);
    CHECK("chdir_back", chdir("/") == 0);
    CHECK("rmdir_top", rmdir(dir) == 0);
    return test_exit();
}
