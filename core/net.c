/*
 * net.c: TCP probes for wait_for, and client streams for the mail-login
 * checks.  Name resolution uses getaddrinfo and may block briefly;
 * connecting, reading and writing park the task.  (The lab's mail
 * servers listen and accept in tests/lab/labos.c, which wraps each
 * accepted socket in this module's stream class: net_stream_push.)
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cutover.h"

#define NET_SOCK_MT "cutover.net.socket"

struct net_probe {
    int fd;
    struct pollfd pfd;
    double deadline;
};

static int net_probe_gc(lua_State *L)
{
    struct net_probe *p = luaL_checkudata(L, 1, NET_SOCK_MT);

    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    return 0;
}

/* Stack: 1 host, 2 port, 3 timeout, 4 probe userdata. */
static int probe_step(lua_State *L, int status, lua_KContext ctx)
{
    struct net_probe *p = luaL_checkudata(L, 4, NET_SOCK_MT);
    int err = 0;
    socklen_t len = sizeof err;

    (void)status;
    (void)ctx;
    for (;;) {
        if (p->pfd.revents != 0) {
            getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            close(p->fd);
            p->fd = -1;
            if (err == 0) {
                lua_pushboolean(L, 1);
                return 1;
            }
            lua_pushnil(L);
            lua_pushstring(L, strerror(err));
            return 2;
        }
        if (loop_now() >= p->deadline) {
            lua_pushnil(L);
            lua_pushliteral(L, "timed out");
            return 2;
        }
        if (loop_can_park(L))
            return loop_park(L, &p->pfd, 1, p->deadline, 0, probe_step);
        loop_block(L, &p->pfd, 1, p->deadline);
    }
}

/*
 * net.probe_tcp(host, port, timeout) -> true | nil, message
 * Connects and closes at once: is something listening?
 */
static int net_probe_tcp(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    lua_Number timeout = luaL_optnumber(L, 3, 5);
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct net_probe *p;
    char service[16];
    int rc;

    lua_settop(L, 3);
    p = lua_newuserdatauv(L, sizeof *p, 0);
    p->fd = -1;
    luaL_setmetatable(L, NET_SOCK_MT);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", (int)port);
    loop_before_blocking(L);  /* the lookup may block */
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", host, gai_strerror(rc));
        return 2;
    }
    p->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
                   SOCK_CLOEXEC, res->ai_protocol);
    if (p->fd < 0) {
        freeaddrinfo(res);
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    rc = connect(p->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    p->pfd.fd = p->fd;
    p->pfd.events = POLLOUT;
    p->pfd.revents = 0;
    p->deadline = loop_now() + timeout;
    if (rc == 0) {
        p->pfd.revents = POLLOUT;
    } else if (errno != EINPROGRESS) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    return probe_step(L, LUA_OK, 0);
}

/*
 * Client streams (mail_login), and the streams the lab's listeners
 * accept.  Each socket is owned by a userdata created before the socket
 * is made, so an error can never leak the descriptor; __gc and __close
 * close it.  connect, read_line and write park the task like probe_tcp.
 */
#define NET_STREAM_MT "cutover.net.stream"
#define NET_STREAM_BUF 8192     /* cap on one buffered line */

struct net_stream {
    int fd;
    struct pollfd pfd;
    double deadline;
    unsigned interrupts;
    size_t woff;                /* bytes of the pending write sent */
    size_t len;                 /* bytes buffered in buf */
    char buf[NET_STREAM_BUF];
};

static int net_stream_gc(lua_State *L)
{
    struct net_stream *s = luaL_checkudata(L, 1, NET_STREAM_MT);

    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    return 0;
}

static struct net_stream *check_stream(lua_State *L)
{
    struct net_stream *s = luaL_checkudata(L, 1, NET_STREAM_MT);

    if (s->fd < 0)
        luaL_error(L, "attempt to use a closed socket");
    return s;
}

static struct net_stream *new_stream(lua_State *L)
{
    struct net_stream *s = lua_newuserdatauv(L, sizeof *s, 0);

    s->fd = -1;
    s->len = 0;
    s->woff = 0;
    luaL_setmetatable(L, NET_STREAM_MT);
    return s;
}

/* Pushes nil and a message; returns 2 (the failure convention). */
static int net_fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/*
 * The shared end of the wait loops below, for a socket that is not ready
 * yet.  An interrupt since `interrupts` or a passed deadline ends the wait:
 * pushes nil and the message and returns 2.  Inside a task it parks until
 * fd is ready for `events` and Lua resumes `k` instead (loop_park does not
 * return).  Outside a task it blocks in poll and returns -1: go round again.
 */
static int wait_fd(lua_State *L, struct pollfd *pfd, int fd, short events,
                   double deadline, unsigned interrupts, lua_KFunction k)
{
    if (loop_interrupts() != interrupts)
        return net_fail(L, "interrupted");
    if (loop_now() >= deadline)
        return net_fail(L, "timed out");
    pfd->fd = fd;
    pfd->events = events;
    if (loop_can_park(L))
        return loop_park(L, pfd, 1, deadline, 0, k);
    loop_block(L, pfd, 1, deadline);
    return -1;
}

/* Stack: 1 stream, 2 max line length, 3 timeout. */
static int read_line_step(lua_State *L, int status, lua_KContext ctx)
{
    struct net_stream *s = check_stream(L);
    size_t max = (size_t)lua_tointeger(L, 2);
    char *nl;
    size_t line;
    ssize_t n;
    int rc;

    (void)status;
    (void)ctx;
    for (;;) {
        nl = memchr(s->buf, '\n', s->len);
        if (nl != NULL) {
            line = (size_t)(nl - s->buf);
            if (line > 0 && s->buf[line - 1] == '\r')
                lua_pushlstring(L, s->buf, line - 1);
            else
                lua_pushlstring(L, s->buf, line);
            s->len -= line + 1;
            memmove(s->buf, nl + 1, s->len);
            if (line > max + 1)
                return net_fail(L, "line too long");
            return 1;
        }
        if (s->len > max + 1 || s->len == sizeof s->buf)
            return net_fail(L, "line too long");
        n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
        if (n > 0) {
            s->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return net_fail(L, "closed");
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return net_fail(L, strerror(errno));
        rc = wait_fd(L, &s->pfd, s->fd, POLLIN, s->deadline, s->interrupts, read_line_step);
        if (rc >= 0)
            return rc;
    }
}

/*
 * stream:read_line([max, timeout]) -> line | nil, message
 * Params on Lua stack: 1: stream, 2: longest line accepted (default and
 * cap 8190 bytes), 3: seconds (default 30).  The line comes without its
 * LF or CRLF.  Messages: "closed" (end of stream), "timed out",
 * "interrupted", "line too long", or the system's.
 */
static int stream_read_line(lua_State *L)
{
    struct net_stream *s = check_stream(L);
    lua_Integer max = luaL_optinteger(L, 2, NET_STREAM_BUF - 2);
    lua_Number timeout = luaL_optnumber(L, 3, 30);

    if (max < 1 || max > NET_STREAM_BUF - 2)
        max = NET_STREAM_BUF - 2;
    lua_settop(L, 1);
    lua_pushinteger(L, max);
    lua_pushnumber(L, timeout);
    s->deadline = loop_now() + (timeout > 0 ? timeout : 0);
    s->interrupts = loop_interrupts();
    return read_line_step(L, LUA_OK, 0);
}

/* Stack: 1 stream, 2 data, 3 timeout. */
static int write_step(lua_State *L, int status, lua_KContext ctx)
{
    struct net_stream *s = check_stream(L);
    size_t len;
    const char *data = lua_tolstring(L, 2, &len);
    ssize_t n;
    int rc;

    (void)status;
    (void)ctx;
    while (s->woff < len) {
        n = send(s->fd, data + s->woff, len - s->woff, MSG_NOSIGNAL);
        if (n > 0) {
            s->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR)
            return net_fail(L, strerror(errno));
        rc = wait_fd(L, &s->pfd, s->fd, POLLOUT, s->deadline, s->interrupts, write_step);
        if (rc >= 0)
            return rc;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * stream:write(data [, timeout]) -> true | nil, message
 * Params on Lua stack: 1: stream, 2: bytes, 3: seconds (default 30).
 * Sends everything, parking while the peer is slow.
 */
static int stream_write(lua_State *L)
{
    struct net_stream *s = check_stream(L);
    lua_Number timeout = luaL_optnumber(L, 3, 30);

    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushnumber(L, timeout);
    s->woff = 0;
    s->deadline = loop_now() + (timeout > 0 ? timeout : 0);
    s->interrupts = loop_interrupts();
    return write_step(L, LUA_OK, 0);
}

/* stream:close() -> nothing (also __close) */
static int stream_close(lua_State *L)
{
    return net_stream_gc(L);
}

/* Stack of connect: 1 host, 2 port, 3 timeout, 4 stream. */
static int connect_step(lua_State *L, int status, lua_KContext ctx)
{
    struct net_stream *s = luaL_checkudata(L, 4, NET_STREAM_MT);
    int err = 0, rc;
    socklen_t len = sizeof err;

    (void)status;
    (void)ctx;
    for (;;) {
        if (s->pfd.revents != 0) {
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                close(s->fd);
                s->fd = -1;
                return net_fail(L, strerror(err));
            }
            lua_settop(L, 4);
            return 1;
        }
        rc = wait_fd(L, &s->pfd, s->fd, POLLOUT, s->deadline, s->interrupts, connect_step);
        if (rc >= 0)
            return rc;
    }
}

/*
 * net.connect(host, port [, timeout]) -> stream | nil, message
 * Params on Lua stack: 1: host, 2: port, 3: seconds (default 10).
 * A TCP client stream (the same methods as an accepted one: read_line,
 * write, close); connecting parks the task.
 */
static int net_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    lua_Number timeout = luaL_optnumber(L, 3, 10);
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct net_stream *s;
    char service[16];
    int rc;

    lua_settop(L, 3);
    s = new_stream(L);                       /* 4, before the socket */
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", (int)port);
    loop_before_blocking(L);  /* the lookup may block */
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return net_fail(L, gai_strerror(rc));
    s->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
                   SOCK_CLOEXEC, res->ai_protocol);
    if (s->fd < 0) {
        freeaddrinfo(res);
        return net_fail(L, strerror(errno));
    }
    rc = connect(s->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    s->pfd.revents = rc == 0 ? POLLOUT : 0;
    if (rc != 0 && errno != EINPROGRESS)
        return net_fail(L, strerror(errno));
    s->deadline = loop_now() + (timeout > 0 ? timeout : 0);
    s->interrupts = loop_interrupts();
    return connect_step(L, LUA_OK, 0);
}

static const luaL_Reg stream_methods[] = {
    {"read_line", stream_read_line},
    {"write", stream_write},
    {"close", stream_close},
    {NULL, NULL}
};

/* Creates a metatable with __gc, __close and the methods in __index. */
static void net_new_class(lua_State *L, const char *name,
                          const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* For the lab's listeners (see cutover.h). */
struct net_stream *net_stream_push(lua_State *L)
{
    /* the class may not exist yet: core.net need not be required first */
    if (luaL_getmetatable(L, NET_STREAM_MT) == LUA_TNIL)
        net_new_class(L, NET_STREAM_MT, stream_methods, net_stream_gc);
    lua_pop(L, 1);
    return new_stream(L);
}

void net_stream_adopt(struct net_stream *s, int fd)
{
    s->fd = fd;
}

static const luaL_Reg net_funcs[] = {
    {"probe_tcp", net_probe_tcp},
    {"connect", net_connect},
    {NULL, NULL}
};

int luaopen_cutover_net(lua_State *L)
{
    luaL_newmetatable(L, NET_SOCK_MT);
    lua_pushcfunction(L, net_probe_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    net_new_class(L, NET_STREAM_MT, stream_methods, net_stream_gc);
    luaL_newlib(L, net_funcs);
    return 1;
}
