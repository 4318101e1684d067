/*
 * luatest_main.c: runs one Lua test file with the embedded modules and
 * the full standard library.  usage: cutover_luatest FILE.lua [ARGS...]
 * The file's chunk gets ARGS as ...; a raised error fails the test.
 *
 * Every process the test starts carries CUTOVER_TEST_TOKEN in its
 * environment.  A watcher process outside the test kills the ones still
 * running once this process is gone, however it ended: ctest ends a test
 * on its timeout with SIGKILL, which no handler sees, and a lab test
 * killed that way used to leave its sshd servers and lab hosts running
 * (they call setsid, so no process group holds them).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cutover.h"

#define TOKEN_VAR "CUTOVER_TEST_TOKEN"
#define ENVIRON_CAP 65536   /* bytes of /proc/PID/environ read per process */

/* Whether process pid was started with TOKEN_VAR=token. */
static int carries_token(pid_t pid, const char *entry)
{
    static char buf[ENVIRON_CAP];
    char path[64];
    size_t entry_len = strlen(entry);
    ssize_t n;
    ssize_t i = 0;
    int fd;
    int found = 0;

    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    while (i < n && !found) {
        size_t len = strlen(buf + i);
        found = len == entry_len && memcmp(buf + i, entry, len) == 0;
        i += (ssize_t)len + 1;
    }
    return found;
}

/* Sends sig to every process that carries the token; returns how many. */
static int signal_marked(const char *entry, int sig)
{
    DIR *dir = opendir("/proc");
    struct dirent *d;
    int count = 0;

    if (dir == NULL)
        return 0;
    while ((d = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(d->d_name, &end, 10);
        if (*end != '\0' || pid <= 1 || pid == (long)getpid())
            continue;
        if (carries_token((pid_t)pid, entry) && kill((pid_t)pid, sig) == 0)
            count++;
    }
    closedir(dir);
    return count;
}

/* The watcher: waits for the test process to end (EOF on the pipe), then
 * TERM to what it left, KILL after up to 3 s.  Never returns. */
static void watch_and_reap(int read_fd, const char *entry)
{
    char c;
    int i;
    int fd = open("/dev/null", O_RDWR);

    /* ctest reads the test's output until every writer closes it */
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    setsid();              /* out of the test's process group and session */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    while (read(read_fd, &c, 1) < 0 && errno == EINTR)
        ;
    if (signal_marked(entry, SIGTERM) > 0) {
        for (i = 0; i < 30 && signal_marked(entry, 0) > 0; i++)
            usleep(100000);
        signal_marked(entry, SIGKILL);
    }
    _exit(0);
}

static void start_reaper(void)
{
    static char entry[96];
    int fds[2];
    pid_t pid;

    snprintf(entry, sizeof entry, "%s=%ld-%ld", TOKEN_VAR, (long)getpid(), (long)time(NULL));
    if (setenv(TOKEN_VAR, strchr(entry, '=') + 1, 1) != 0)
        return;
    /* O_CLOEXEC: only this process holds the write end, so EOF means it
     * is gone; the programs the test runs do not keep it open */
    if (pipe2(fds, O_CLOEXEC) != 0)
        return;
    pid = fork();
    if (pid == 0) {
        close(fds[1]);
        watch_and_reap(fds[0], entry);
    }
    close(fds[0]);
    if (pid < 0)
        close(fds[1]);
    /* else fds[1] stays open until this process ends */
}

int main(int argc, char **argv)
{
    lua_State *L;
    int status = 1;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: cutover_luatest FILE.lua [ARGS...]\n");
        return 2;
    }
    start_reaper();
    /* a test program: vault.derive may use the low test cost */
    cutover_vault_allow_test_kdf();
    L = cutover_newstate();
    if (L == NULL)
        return 1;
    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        goto done;
    }
    for (i = 2; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (cutover_pcall(L, argc - 2, 0) != LUA_OK) {
        fprintf(stderr, "FAILED: %s\n", lua_tostring(L, -1));
        goto done;
    }
    status = 0;
done:
    fflush(stdout);
    cutover_closestate(L);
    return status;
}
