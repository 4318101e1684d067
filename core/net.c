/*
 * net.c: TCP probes for wait_for (and later the mail-login checks).
 * Name resolution uses getaddrinfo and may block briefly; connecting
 * parks the task.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
        loop_block(&p->pfd, 1, p->deadline);
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

static const luaL_Reg net_funcs[] = {
    {"probe_tcp", net_probe_tcp},
    {NULL, NULL}
};

int luaopen_cutover_net(lua_State *L)
{
    luaL_newmetatable(L, NET_SOCK_MT);
    lua_pushcfunction(L, net_probe_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, net_funcs);
    return 1;
}
