/* A slow disk for one file of a process: fsync and fdatasync on a descriptor whose path
 * contains $SLOW_FSYNC_MATCH first sleep for the number of milliseconds written in the
 * file $SLOW_FSYNC_CONTROL (read at every call, so a test can slow the disk down and
 * speed it up again while the process runs; absent or empty: no delay). Loaded with
 * LD_PRELOAD by tests/faults/test_slow_fsync.py, built there with the system's cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long delay_ms(void) {
    const char *control = getenv("SLOW_FSYNC_CONTROL");
    if (control == NULL || *control == '\0') return 0;
    FILE *f = fopen(control, "r");
    if (f == NULL) return 0;
    long ms = 0;
    if (fscanf(f, "%ld", &ms) != 1) ms = 0;
    fclose(f);
    return ms > 0 ? ms : 0;
}

static int slowed(int fd) {
    const char *match = getenv("SLOW_FSYNC_MATCH");
    if (match == NULL || *match == '\0') return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    return strstr(path, match) != NULL;
}

static void wait_for_the_disk(int fd) {
    if (!slowed(fd)) return;
    long ms = delay_ms();
    if (ms == 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_for_the_disk(fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_for_the_disk(fd);
    return real(fd);
}
