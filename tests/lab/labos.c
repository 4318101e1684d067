/*
 * labos.c: lab.os, the operating-system glue of the simulated Windows
 * lab (tests/lab): state locks, background processes, reaping, and the
 * loopback TCP listeners of the lab's POP3/IMAP4 servers (cutover itself
 * never listens).  Policy (what a host does) lives in the lab's Lua
 * modules.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cutover.h"

#define LAB_LOCK_MT "lab.os.lock"
#define LAB_LISTENER_MT "lab.os.listener"
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

/*
 * Listening sockets.  The socket is owned by a userdata created before
 * it is made, so an error can never leak the descriptor; __gc and
 * __close close it.  accept parks the task; an accepted connection is a
 * core.net stream (read_line, write, close).
 */
struct lab_listener {
    int fd;
    struct pollfd pfd;
    double deadline;
    unsigned interrupts;
};

static int lab_listener_gc(lua_State *L)
{
    struct lab_listener *l = luaL_checkudata(L, 1, LAB_LISTENER_MT);

    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    return 0;
}

static struct lab_listener *check_listener(lua_State *L)
{
    struct lab_listener *l = luaL_checkudata(L, 1, LAB_LISTENER_MT);

    if (l->fd < 0)
        luaL_error(L, "attempt to use a closed socket");
    return l;
}

/*
 * os.listen(host, port) -> listener | nil, message
 * Params on Lua stack: 1: numeric address (e.g. "127.0.0.1"), 2: port
 * (0: any free port).  Returns a listening TCP socket (SO_REUSEADDR).
 */
static int lab_listen(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct lab_listener *l;
    char service[16];
    int one = 1;
    int rc;
    int nret;

    luaL_argcheck(L, port >= 0 && port <= 65535, 2, "invalid port");
    lua_settop(L, 2);
    l = lua_newuserdatauv(L, sizeof *l, 0);  /* 3 */
    l->fd = -1;
    luaL_setmetatable(L, LAB_LISTENER_MT);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(service, sizeof service, "%d", (int)port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", host, gai_strerror(rc));
        return 2;
    }
    l->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
                   SOCK_CLOEXEC, res->ai_protocol);
    if (l->fd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        nret = 2;
        goto free_res;
    }
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l->fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(l->fd, 64) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s:%d: %s", host, (int)port, strerror(errno));
        nret = 2;
        close(l->fd);
        l->fd = -1;
        goto free_res;
    }
    lua_pushvalue(L, 3);
    nret = 1;
free_res:
    freeaddrinfo(res);
    return nret;
}

/* listener:port() -> the bound port number */
static int listener_port(lua_State *L)
{
    struct lab_listener *l = check_listener(L);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int port = 0;

    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    lua_pushinteger(L, port);
    return 1;
}

/* Stack: 1 listener, 2 timeout, 3 the stream userdata to fill. */
static int accept_step(lua_State *L, int status, lua_KContext ctx)
{
    struct lab_listener *l = check_listener(L);
    struct net_stream *s = lua_touserdata(L, 3);
    const char *why = NULL;
    int fd;

    (void)status;
    (void)ctx;
    for (;;) {
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            net_stream_adopt(s, fd);
            lua_settop(L, 3);
            return 1;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED)
            why = strerror(errno);
        else if (loop_interrupts() != l->interrupts)
            why = "interrupted";
        else if (loop_now() >= l->deadline)
            why = "timed out";
        if (why != NULL) {
            lua_pushnil(L);
            lua_pushstring(L, why);
            return 2;
        }
        l->pfd.fd = l->fd;
        l->pfd.events = POLLIN;
        if (loop_can_park(L))
            return loop_park(L, &l->pfd, 1, l->deadline, 0, accept_step);
        loop_block(L, &l->pfd, 1, l->deadline);
    }
}

/*
 * listener:accept([timeout]) -> stream | nil, message
 * Params on Lua stack: 1: listener, 2: seconds (default 30).
 * Waits (parking the task) for one connection; "timed out" and
 * "interrupted" are the messages of an empty wait.
 */
static int listener_accept(lua_State *L)
{
    struct lab_listener *l = check_listener(L);
    lua_Number timeout = luaL_optnumber(L, 2, 30);

    lua_settop(L, 2);
    net_stream_push(L);                      /* 3, before the socket */
    l->deadline = loop_now() + (timeout > 0 ? timeout : 0);
    l->interrupts = loop_interrupts();
    return accept_step(L, LUA_OK, 0);
}

static const luaL_Reg lab_lock_methods[] = {
    {"unlock", lab_lock_gc},
    {NULL, NULL}
};

static const luaL_Reg lab_listener_methods[] = {
    {"accept", listener_accept},
    {"port", listener_port},
    {"close", lab_listener_gc},
    {NULL, NULL}
};

static const luaL_Reg lab_os_funcs[] = {
    {"lock", lab_lock},
    {"spawn", lab_spawn},
    {"reap", lab_reap},
    {"exe", lab_exe},
    {"umask", lab_umask},
    {"getuid", lab_getuid},
    {"listen", lab_listen},
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
    luaL_newmetatable(L, LAB_LISTENER_MT);
    lua_pushcfunction(L, lab_listener_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lab_listener_gc);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, lab_listener_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, lab_os_funcs);
    return 1;
}
