/*
 * sys.c: facts about the controller and its terminal.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cutover.h"

/* sys.uname() -> {system=, node=, release=, machine=} */
static int sys_uname(lua_State *L)
{
    struct utsname u;

    if (uname(&u) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, u.sysname);
    lua_setfield(L, -2, "system");
    lua_pushstring(L, u.nodename);
    lua_setfield(L, -2, "node");
    lua_pushstring(L, u.release);
    lua_setfield(L, -2, "release");
    lua_pushstring(L, u.machine);
    lua_setfield(L, -2, "machine");
    return 1;
}

/* sys.user() -> name of the effective user, uid */
static int sys_user(lua_State *L)
{
    struct passwd *pw = getpwuid(geteuid());

    lua_pushstring(L, pw != NULL ? pw->pw_name : "unknown");
    lua_pushinteger(L, geteuid());
    return 2;
}

/* sys.isatty(fd) -> boolean */
static int sys_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* sys.columns(fd) -> terminal width or nil */
static int sys_columns(lua_State *L)
{
    struct winsize ws;

    if (ioctl((int)luaL_checkinteger(L, 1), TIOCGWINSZ, &ws) != 0 ||
        ws.ws_col == 0)
        return 0;
    lua_pushinteger(L, ws.ws_col);
    return 1;
}

/* sys.time() -> wall-clock seconds since the epoch, with fractions */
static int sys_time(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* sys.getpid() -> pid */
static int sys_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

/* sys.write(fd, text) -> true: unbuffered, for progress lines */
static int sys_write(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);

    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        s += n;
        len -= (size_t)n;
    }
    lua_pushboolean(L, len == 0);
    return 1;
}

/*
 * sys.read_secret(prompt) -> text | nil, message
 * Asks on the controlling terminal with echo off (never on stdout, which
 * may be a pipe); the newline is not part of the answer.  At most 4 KiB.
 */
static int sys_read_secret(lua_State *L)
{
    const char *prompt = luaL_checkstring(L, 1);
    char buf[4096];
    struct termios old;
    struct termios quiet;
    size_t len = 0;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    int restored = 0;
    ssize_t ignored;

    if (fd < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "no terminal to ask on");
        return 2;
    }
    ignored = write(fd, prompt, strlen(prompt));
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSANOW, &quiet);  /* keep what was typed ahead */
    } else {
        restored = 1;
    }
    while (len < sizeof buf - 1) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == '\n')
            break;
        buf[len++] = c;
    }
    if (!restored)
        tcsetattr(fd, TCSANOW, &old);
    ignored = write(fd, "\n", 1);
    (void)ignored;
    close(fd);
    lua_pushlstring(L, buf, len);
    sodium_memzero(buf, sizeof buf);
    return 1;
}

/*
 * sys.alive(pid) -> true when a process with that pid exists (it may
 * belong to another user); false when none does.
 */
static int sys_alive(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);

    lua_pushboolean(L, pid > 0 && (kill(pid, 0) == 0 || errno == EPERM));
    return 1;
}

/* sys.kill(pid, signal) -> true | nil, message (tests, fault injection) */
static int sys_kill(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int sig = (int)luaL_checkinteger(L, 2);

    if (kill(pid, sig) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg sys_funcs[] = {
    {"alive", sys_alive},
    {"kill", sys_kill},
    {"read_secret", sys_read_secret},
    {"uname", sys_uname},
    {"user", sys_user},
    {"isatty", sys_isatty},
    {"columns", sys_columns},
    {"time", sys_time},
    {"getpid", sys_getpid},
    {"write", sys_write},
    {NULL, NULL}
};

int luaopen_cutover_sys(lua_State *L)
{
    luaL_newlib(L, sys_funcs);
    return 1;
}
