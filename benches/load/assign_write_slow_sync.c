/* A slower fdatasync for the callgrind runs of benches/load/assign_write_cost.sh (SLOW_SYNC_US).
 *
 * Under valgrind the HTTP worker runs ~50 times slower than natively while the disk does not,
 * so a group commit carries the ~4 requests the worker answers during one fdatasync, against
 * ~30 natively: the writer's per-request part at real commit sizes is not what a 4-request
 * commit shows (a run of rewards reads each delay bin once). Preloaded into the server, this
 * sleeps SLOW_SYNC_US microseconds before each fdatasync, so that more requests arrive during
 * one commit. A sleep costs no instructions; what this adds to the writer's count is the few
 * dozen of this function per commit.
 *
 *   cc -shared -fPIC -O2 -o slow_sync.so assign_write_slow_sync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int fdatasync(int fd) {
    static int (*real)(int);
    static long delay_us = -1;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (delay_us < 0) {
        const char *text = getenv("SLOW_SYNC_US");
        delay_us = text ? atol(text) : 0;
    }
    if (delay_us > 0) {
        struct timespec wait = {delay_us / 1000000, (delay_us % 1000000) * 1000};
        nanosleep(&wait, NULL);
    }
    return real(fd);
}
