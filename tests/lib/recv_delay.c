/*
 * recv_delay: an LD_PRELOAD shim for tests.  A recv() that finds nothing
 * to read (EAGAIN) sleeps CUTOVER_TEST_RECV_DELAY_US microseconds (2000
 * by default) before it says so, so that what the peer sends meanwhile
 * is there for the very next recv().  That widens the moment between two
 * reads of one SSH connection (libssh2 reads the socket through recv) to
 * milliseconds: tests/ssh/test_exec_race.lua uses it to show that a
 * command's last output, read off the socket while another stream was
 * being drained, is not left waiting for a socket that has nothing more.
 * CUTOVER_TEST_RECV_DELAY_MARK names a file made at the first delay, so a
 * test knows the shim was loaded and took effect.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static ssize_t (*real_recv)(int, void *, size_t, int);
    static long delay_us = -1;
    ssize_t n;

    if (real_recv == NULL)
        real_recv = (ssize_t (*)(int, void *, size_t, int))dlsym(RTLD_NEXT,
                                                                  "recv");
    if (delay_us < 0) {
        const char *v = getenv("CUTOVER_TEST_RECV_DELAY_US");
        delay_us = v != NULL ? strtol(v, NULL, 10) : 2000;
        if (delay_us < 0 || delay_us > 1000000)
            delay_us = 2000;
    }
    n = real_recv(fd, buf, len, flags);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && delay_us > 0) {
        static int marked;
        int saved = errno;
        struct timespec ts = { delay_us / 1000000, (delay_us % 1000000) * 1000 };
        const char *mark = getenv("CUTOVER_TEST_RECV_DELAY_MARK");
        if (!marked && mark != NULL) {
            int mark_fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (mark_fd >= 0)
                close(mark_fd);
            marked = 1;
        }
        nanosleep(&ts, NULL);
        errno = saved;
    }
    return n;
}
