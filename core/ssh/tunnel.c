/*
 * tunnel.c: ProxyJump through a session (session:tunnel, session:pump):
 * direct-tcpip channels, each joined to one end of a socket pair whose
 * other end the next hop's session uses as its socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ssh_internal.h"

/* Frees tunnel i (the last one takes its place). */
void ssh_free_tunnel(struct ssh_session *s, int i)
{
    struct ssh_tunnel *t = s->tunnels[i];

    if (t->channel != NULL && s->session != NULL)
        libssh2_channel_free(t->channel);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
    s->tunnels[i] = s->tunnels[--s->tunnel_count];
    s->tunnels[s->tunnel_count] = NULL;
}

/* Stack of tunnel: 1 session, 2 host, 3 port, 4 timeout. */
static int tunnel_step(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);
    const char *host = luaL_checkstring(L, 2);
    int port = (int)luaL_checkinteger(L, 3);
    LIBSSH2_CHANNEL *ch;
    struct ssh_tunnel *t;
    int *slot;
    int sv[2];

    (void)status;
    (void)ctx;
    for (;;) {
        if (s->session == NULL || s->phase != PH_READY)
            return ssh_fail(L, s, "unreachable", "%s: the jump host's session "
                        "is closed", s->host);
        if (loop_now() >= s->deadline)
            return ssh_fail(L, s, "timeout", "%s: timed out opening a tunnel "
                        "to %s:%d", s->host, host, port);
        ch = libssh2_channel_direct_tcpip_ex(s->session, host, port,
                                             "127.0.0.1", 22);
        /* that call read the socket, maybe packets of the tunnels the
         * pump serves: wake it to take them */
        if (s->pump_task != NULL)
            loop_wake(s->pump_task);
        if (ch != NULL)
            break;
        if (libssh2_session_last_errno(s->session) != LIBSSH2_ERROR_EAGAIN) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s: the jump host refused a tunnel to "
                            "%s:%d: %s", s->host, host, port,
                            ssh_last_error(s));
            lua_pushliteral(L, "unreachable");
            return 3;
        }
        WAIT_OR_PARK(L, s, libssh2_session_block_directions(s->session),
                     tunnel_step);
    }
    slot = cutover_socket_push(L);  /* before the socket pair */
    if (s->tunnel_count >= SSH_MAX_TUNNELS ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        libssh2_channel_free(ch);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: cannot open another tunnel", s->host);
        lua_pushliteral(L, "unreachable");
        return 3;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        libssh2_channel_free(ch);
        close(sv[0]);
        close(sv[1]);
        return luaL_error(L, "ssh: out of memory");
    }
    t->channel = ch;
    t->fd = sv[1];
    fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) | O_NONBLOCK);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    s->tunnels[s->tunnel_count++] = t;  /* owned by the session */
    *slot = sv[0];                      /* owned by the socket on top */
    return 1;
}

/*
 * session:tunnel(host, port [, timeout]) -> socket | nil, message, code
 * Opens a direct-tcpip channel to host:port through this session (a
 * ProxyJump) and returns a socket (a userdata owning our end of it) for
 * ssh.connect{fd=}.  The bytes move
 * only while session:pump() runs (in a daemon task).
 */
int ssh_session_tunnel(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);

    luaL_checkstring(L, 2);
    luaL_checkinteger(L, 3);
    lua_settop(L, 4);
    s->deadline = loop_now() + luaL_optnumber(L, 4, 30);
    return tunnel_step(L, LUA_OK, 0);
}

/* Moves what it can for one tunnel; returns 1 when something moved. */
static int pump_tunnel(struct ssh_tunnel *t)
{
    int moved = 0;
    ssize_t n;

    if (!t->local_eof && t->up_len < sizeof t->up) {
        n = read(t->fd, t->up + t->up_len, sizeof t->up - t->up_len);
        if (n > 0) {
            t->up_len += (size_t)n;
            moved = 1;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            t->local_eof = 1;
        }
    }
    if (t->up_len > 0) {
        n = libssh2_channel_write(t->channel, t->up, t->up_len);
        if (n > 0) {
            memmove(t->up, t->up + n, t->up_len - (size_t)n);
            t->up_len -= (size_t)n;
            moved = 1;
        } else if (n != LIBSSH2_ERROR_EAGAIN) {
            t->dead = 1;
        }
    }
    if (t->local_eof && t->up_len == 0 && !t->sent_eof) {
        int rc = libssh2_channel_send_eof(t->channel);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            t->sent_eof = 1;
    }
    if (t->down_len < sizeof t->down) {
        n = libssh2_channel_read(t->channel, t->down + t->down_len,
                                 sizeof t->down - t->down_len);
        if (n > 0) {
            t->down_len += (size_t)n;
            moved = 1;
        } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
            t->dead = 1;
        }
    }
    if (libssh2_channel_eof(t->channel))
        t->channel_eof = 1;
    if (t->down_len > 0) {
        n = write(t->fd, t->down, t->down_len);
        if (n > 0) {
            memmove(t->down, t->down + n, t->down_len - (size_t)n);
            t->down_len -= (size_t)n;
            moved = 1;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            t->dead = 1;
        }
    }
    if (t->channel_eof && t->down_len == 0 && !t->shut) {
        shutdown(t->fd, SHUT_WR);
        t->shut = 1;
    }
    return moved;
}

/* True when libssh2 holds data or an end of file for a tunnel that the
 * last pass did not take: a read for one channel can queue packets for
 * another that was already passed over. */
static int pending_in_library(struct ssh_session *s)
{
    int i;

    for (i = 0; i < s->tunnel_count; i++) {
        struct ssh_tunnel *t = s->tunnels[i];
        if (t->down_len < sizeof t->down &&
            libssh2_poll_channel_read(t->channel, 0) > 0)
            return 1;
        if (!t->channel_eof && libssh2_channel_eof(t->channel))
            return 1;
    }
    return 0;
}

struct ssh_pump {
    struct pollfd fds[1 + SSH_MAX_TUNNELS];
};

/* Stack of pump: 1 session, 2 pump userdata. */
static int pump_step(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);
    struct ssh_pump *p = lua_touserdata(L, 2);
    int i;

    (void)status;
    (void)ctx;
    s->pump_task = NULL;
    for (;;) {
        int moved = 0;
        int n = 0;
        int dirs;

        if (s->session == NULL)
            return 0;
        for (i = 0; i < s->tunnel_count; i++) {
            struct ssh_tunnel *t = s->tunnels[i];
            moved |= pump_tunnel(t);
            if (t->dead || (t->local_eof && t->channel_eof &&
                            t->up_len == 0 && t->down_len == 0)) {
                ssh_free_tunnel(s, i);
                i--;
            }
        }
        if (s->tunnel_count == 0)
            return 0;
        if (moved || pending_in_library(s))
            continue;
        dirs = libssh2_session_block_directions(s->session);
        p->fds[n].fd = s->fd;
        p->fds[n].events = POLLIN |
            ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? POLLOUT : 0);
        n++;
        for (i = 0; i < s->tunnel_count; i++) {
            struct ssh_tunnel *t = s->tunnels[i];
            p->fds[n].fd = t->fd;
            p->fds[n].events = 0;
            if (!t->local_eof && t->up_len < sizeof t->up)
                p->fds[n].events |= POLLIN;
            if (t->down_len > 0)
                p->fds[n].events |= POLLOUT;
            n++;
        }
        /* Another task's call on this session (a new tunnel) may read
         * a tunnel's data off the socket into libssh2: that call wakes
         * us through pump_task, so no timer is needed. */
        if (loop_can_park(L)) {
            s->pump_task = loop_current_task();
            return loop_park(L, p->fds, n, 0, 0, pump_step);
        }
        loop_block(L, p->fds, n, loop_now() + 0.05);
    }
}

/*
 * session:pump() -> nothing, when the last tunnel has closed
 * Moves bytes between every tunnel of this session and its socket.
 */
int ssh_session_pump(lua_State *L)
{
    struct ssh_pump *p;

    luaL_checkudata(L, 1, SSH_SESSION_MT);
    lua_settop(L, 1);
    p = lua_newuserdatauv(L, sizeof *p, 0);  /* 2 */
    memset(p, 0, sizeof *p);
    return pump_step(L, LUA_OK, 0);
}

/* session:tunnels() -> number of open tunnels */
int ssh_session_tunnels(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);

    lua_pushinteger(L, s->tunnel_count);
    return 1;
}
