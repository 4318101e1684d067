/*
 * labos.c: lab.os, the operating-system glue of the simulated Windows
 * lab (tests/lab): state locks, background processes, reaping.  Policy
 * (what a host does) lives in the lab's Lua modules.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cutover.h"

#define LAB_LOCK_MT "lab.os.lock"
#define LAB_MAX_ARGV 64

/* An exclusive flock on a file, owned by a userdata. */
struct lab_lock {
    int fd;
};

static int lab_lock_gc(lua_State *L)
{
    struct lab_lock *k = luaL_checkudata(L, 1, LAB_LOCK_MT);

    if (k->fd >= 0)
        close(k->fd);      /* closing releases the flock */
    k->fd = -1;
    return 0;
}

/*
 * os.lock(path) -> lock | nil, message
 * Params on Lua stack: 1: path of the lock file (created, mode 0666).
 * Blocks until the exclusive lock is held.  lock:unlock(), __close and
 * __gc release it.
 */
static int lab_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct lab_lock *k;
    mode_t old;
    int rc;

    k = lua_newuserdatauv(L, sizeof *k, 0);
    k->fd = -1;
    luaL_setmetatable(L, LAB_LOCK_MT);
    old = umask(0);
    k->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    umask(old);
    if (k->fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    do {
        rc = flock(k->fd, LOCK_EX);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    return 1;
}

/*
 * os.spawn(argv, log) -> pid | nil, message
 * Params on Lua stack: 1: {program, args...} (program: a full path),
 * 2: file that receives stdout and stderr (appended).
 * Starts the program in a new session with stdin from /dev/null and
 * returns at once; reap it with os.reap.
 */
static int lab_spawn(lua_State *L)
{
    const char *argv[LAB_MAX_ARGV + 1];
    const char *log = luaL_checkstring(L, 2);
    lua_Integer n;
    lua_Integer i;
    pid_t pid;
    int fd;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n <= LAB_MAX_ARGV, 1, "1 to 64 strings");
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        argv[i - 1] = lua_tostring(L, -1);
        luaL_argcheck(L, argv[i - 1] != NULL, 1, "strings expected");
        lua_pop(L, 1);     /* the table keeps the string alive */
    }
    argv[n] = NULL;
    pid = fork();
    if (pid < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "fork: %s", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. */
        setsid();
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0)
            dup2(fd, 0);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (fd = 3; fd < 1024; fd++)
            close(fd);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    lua_pushinteger(L, pid);
    return 1;
}

/*
 * os.reap(pid) -> true, exit code (or 128 + signal) | false (running)
 * Params on Lua stack: 1: a child's pid.  Never blocks.  A pid that is
 * not our child counts as finished (code -1).
 */
static int lab_reap(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int st = 0;
    pid_t got = waitpid(pid, &st, WNOHANG);

    if (got == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushboolean(L, 1);
    if (got < 0)
        lua_pushinteger(L, -1);
    else if (WIFEXITED(st))
        lua_pushinteger(L, WEXITSTATUS(st));
    else
        lua_pushinteger(L, 128 + WTERMSIG(st));
    return 2;
}

/* os.exe() -> the running binary's full path | nil, message */
static int lab_exe(lua_State *L)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);

    if (n < 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* os.umask(mask) -> the previous mask */
static int lab_umask(lua_State *L)
{
    lua_pushinteger(L, umask((mode_t)luaL_checkinteger(L, 1)));
    return 1;
}

/* os.getuid() -> the real user id */
static int lab_getuid(lua_State *L)
{
    lua_pushinteger(L, getuid());
    return 1;
}

static const luaL_Reg lab_lock_methods[] = {
    {"unlock", lab_lock_gc},
    {NULL, NULL}
};

static const luaL_Reg lab_os_funcs[] = {
    {"lock", lab_lock},
    {"spawn", lab_spawn},
    {"reap", lab_reap},
    {"exe", lab_exe},
    {"umask", lab_umask},
    {"getuid", lab_getuid},
    {NULL, NULL}
};

int luaopen_lab_os(lua_State *L)
{
    luaL_newmetatable(L, LAB_LOCK_MT);
    lua_pushcfunction(L, lab_lock_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lab_lock_gc);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, lab_lock_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, lab_os_funcs);
    return 1;
}
