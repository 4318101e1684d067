/*
 * sys.c: facts about the controller and its terminal.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
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

/* sys.terminal_size(fd) -> columns, rows | nil */
static int sys_terminal_size(lua_State *L)
{
    struct winsize ws;

    if (ioctl((int)luaL_checkinteger(L, 1), TIOCGWINSZ, &ws) != 0 ||
        ws.ws_col == 0 || ws.ws_row == 0)
        return 0;
    lua_pushinteger(L, ws.ws_col);
    lua_pushinteger(L, ws.ws_row);
    return 2;
}

/* SIGWINCH only bumps a counter: the live view polls it on its tick. */
static volatile sig_atomic_t resize_count;

static void on_winch(int sig)
{
    (void)sig;
    resize_count++;
}

/* sys.resized() -> how many SIGWINCH so far (the first call installs the
 * handler, with SA_RESTART so no system call sees EINTR for it) */
static int sys_resized(lua_State *L)
{
    static int installed;

    if (!installed) {
        struct sigaction sa;

        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_winch;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGWINCH, &sa, NULL) == 0)
            installed = 1;
    }
    lua_pushinteger(L, (lua_Integer)resize_count);
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

/* sys.memory() -> the bytes the controller's allocator holds: Lua's heap
 * and the buffers C modules take from it (SSH session buffers); what
 * CUTOVER_MEMORY_LIMIT caps. */
static int sys_memory(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)cutover_mem_used());
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
    /* echo off before the prompt shows: what is typed the moment it
     * appears must not be echoed */
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSANOW, &quiet);  /* keep what was typed ahead */
    } else {
        restored = 1;
    }
    ignored = write(fd, prompt, strlen(prompt));
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
 * belong to another user); false when none does, or when it is a zombie:
 * a controller killed after its parent died is reparented to an init
 * that may never reap it, and must not hold its run's locks forever.
 */
static int sys_alive(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int alive = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
    char path[64];
    char stat[512];
    FILE *f;

    if (alive) {
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
        f = fopen(path, "re");
        if (f != NULL) {
            size_t n = fread(stat, 1, sizeof stat - 1, f);
            const char *close_paren;

            stat[n] = '\0';
            fclose(f);
            /* "PID (COMM) STATE ...": COMM may hold ')' itself */
            close_paren = strrchr(stat, ')');
            if (close_paren != NULL && close_paren[1] == ' ' &&
                (close_paren[2] == 'Z' || close_paren[2] == 'X'))
                alive = 0;
        }
    }
    lua_pushboolean(L, alive);
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

/* State of a terminal question, owned by a userdata (closes the tty). */
struct tty_ask {
    int fd;
    int secret;
    struct termios old;
    int restore;
    struct pollfd pfd;
    char buf[4096];
    size_t len;
};

static void tty_ask_end(struct tty_ask *a)
{
    ssize_t ignored;

    if (a->fd < 0)
        return;
    if (a->restore)
        tcsetattr(a->fd, TCSANOW, &a->old);
    if (a->secret) {
        ignored = write(a->fd, "\n", 1);
        (void)ignored;
    }
    close(a->fd);
    a->fd = -1;
    sodium_memzero(a->buf, sizeof a->buf);
}

static int tty_ask_gc(lua_State *L)
{
    tty_ask_end(luaL_checkudata(L, 1, "cutover.sys.tty"));
    return 0;
}

/* Stack: 1 prompt, 2 secret, 3 ask userdata. */
static int ask_step(lua_State *L, int status, lua_KContext ctx)
{
    struct tty_ask *a = luaL_checkudata(L, 3, "cutover.sys.tty");

    (void)status;
    (void)ctx;
    for (;;) {
        char c;
        ssize_t n = read(a->fd, &c, 1);
        if (n == 1) {
            if (c == '\n') {
                lua_pushlstring(L, a->buf, a->len);
                tty_ask_end(a);
                return 1;
            }
            if (a->len < sizeof a->buf - 1)
                a->buf[a->len++] = c;
            continue;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
            loop_interrupts() != 0) {
            tty_ask_end(a);
            lua_pushnil(L);
            lua_pushliteral(L, "no answer (end of input or interrupted)");
            return 2;
        }
        a->pfd.fd = a->fd;
        a->pfd.events = POLLIN;
        if (loop_can_park(L))
            return loop_park(L, &a->pfd, 1, 0, 0, ask_step);
        loop_block(L, &a->pfd, 1, 0);
    }
}

/*
 * sys.ask(prompt, secret) -> answer | nil, message
 * Asks on the controlling terminal (never stdout) and waits for a line
 * without blocking the other hosts: the task parks on the terminal.  With
 * secret, the answer is not echoed.
 */
static int sys_ask(lua_State *L)
{
    const char *prompt = luaL_checkstring(L, 1);
    int secret = lua_toboolean(L, 2);
    struct tty_ask *a;
    ssize_t ignored;

    lua_settop(L, 2);
    a = lua_newuserdatauv(L, sizeof *a, 0);  /* 3, before the resource */
    memset(a, 0, sizeof *a);
    a->fd = -1;
    luaL_setmetatable(L, "cutover.sys.tty");
    a->fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (a->fd < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "no terminal to ask on");
        return 2;
    }
    a->secret = secret;
    if (secret && tcgetattr(a->fd, &a->old) == 0) {
        struct termios quiet = a->old;
        quiet.c_lflag &= (tcflag_t)~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(a->fd, TCSANOW, &quiet);
        a->restore = 1;
    }
    ignored = write(a->fd, prompt, strlen(prompt));
    (void)ignored;
    return ask_step(L, LUA_OK, 0);
}

/* sys.has_tty() -> true when a controlling terminal can be opened */
static int sys_has_tty(lua_State *L)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);

    lua_pushboolean(L, fd >= 0);
    if (fd >= 0)
        close(fd);
    return 1;
}

static const luaL_Reg sys_funcs[] = {
    {"ask", sys_ask},
    {"has_tty", sys_has_tty},
    {"alive", sys_alive},
    {"kill", sys_kill},
    {"read_secret", sys_read_secret},
    {"uname", sys_uname},
    {"user", sys_user},
    {"isatty", sys_isatty},
    {"columns", sys_columns},
    {"terminal_size", sys_terminal_size},
    {"resized", sys_resized},
    {"time", sys_time},
    {"getpid", sys_getpid},
    {"memory", sys_memory},
    {"write", sys_write},
    {NULL, NULL}
};

int luaopen_cutover_sys(lua_State *L)
{
    luaL_newmetatable(L, "cutover.sys.tty");
    lua_pushcfunction(L, tty_ask_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, sys_funcs);
    return 1;
}
