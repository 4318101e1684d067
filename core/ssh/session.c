/*
 * session.c: cutover.core.ssh, SSH sessions with libssh2 in non-blocking
 * mode, driven by the loop (the files of the module: ssh_internal.h).
 * This file holds the module's public surface (its one luaL_Reg table of
 * functions, and the session methods), a session's life and the helpers
 * every step function uses.
 *
 * Security decisions made in this module, not in Lua:
 *  - host keys fail closed (hostkey.c);
 *  - passwords are used once and never copied into messages (auth.c).
 *
 * libssh2 1.10 reports exit status 0 for a channel that closed without
 * one; exec returns `exit_status_received = false` when nothing but
 * that 0 is known (no exit-signal either), and the Lua side settles it
 * with an in-band status line for POSIX hosts.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "ssh_internal.h"

/*
 * Frees everything of a session without ever waiting on the peer: a
 * best-effort goodbye, then the socket is shut down so that every further
 * libssh2 write or read fails at once (libssh2 would otherwise wait for
 * channel-close replies that a dead peer, or a tunnel whose pump is not
 * running, never sends, and give up without freeing).
 */
void ssh_close_session(struct ssh_session *s)
{
    while (s->tunnel_count > 0)
        ssh_free_tunnel(s, s->tunnel_count - 1);
    if (s->session != NULL && s->phase == PH_READY)
        libssh2_session_disconnect(s->session, "cutover done");
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    s->recv_dry = 0;  /* the next recv must see the end, not EAGAIN */
    s->line_ahead_len = s->line_ahead_pos = 0;
    if (s->sftp != NULL && s->session != NULL)
        libssh2_sftp_shutdown(s->sftp);
    s->sftp = NULL;
    if (s->agent != NULL) {
        libssh2_agent_disconnect(s->agent);
        libssh2_agent_free(s->agent);
        s->agent = NULL;
    }
    if (s->session != NULL) {
        libssh2_session_free(s->session);
        s->session = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    kh_host_free(&s->known);
    ssh_keyfile_clear(&s->key);
    s->key_read = 0;
    s->phase = PH_DEAD;
}

/* Closes the session and pushes nil, the message and code: returns 3. */
int ssh_fail(lua_State *L, struct ssh_session *s, const char *code,
             const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ssh_close_session(s);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

const char *ssh_last_error(struct ssh_session *s)
{
    char *msg = NULL;

    if (s->session == NULL)
        return "no session";
    libssh2_session_last_error(s->session, &msg, NULL, 0);
    return msg != NULL ? msg : "unknown error";
}

/* Sets up the pollfd for the directions libssh2 is blocked on. */
void ssh_prepare_wait(struct ssh_session *s, int dirs)
{
    s->pfd.fd = s->fd;
    s->pfd.events = 0;
    s->pfd.revents = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        s->pfd.events |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        s->pfd.events |= POLLOUT;
    if (s->pfd.events == 0)
        s->pfd.events = POLLIN;
}

static int session_gc(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);

    ssh_close_session(s);
    return 0;
}

/* session:close() */
static int session_close(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);

    ssh_close_session(s);
    return 0;
}

/* session:alive() -> boolean (connected and authenticated) */
static int session_alive(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);

    lua_pushboolean(L, s->phase == PH_READY && s->session != NULL);
    return 1;
}

/* session:keepalive() -> seconds until the next one is due */
static int session_keepalive(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);
    int next = 0;

    if (s->phase == PH_READY && !s->busy)
        libssh2_keepalive_send(s->session, &next);
    lua_pushinteger(L, next);
    return 1;
}

/* ssh.fingerprint(base64_blob) -> "SHA256:..." (for tests and docs) */
static int ssh_fingerprint(lua_State *L)
{
    size_t len;
    const char *b64 = luaL_checklstring(L, 1, &len);
    unsigned char blob[8192];
    size_t blob_len;
    char fp[128];

    if (sodium_base642bin(blob, sizeof blob, b64, len, NULL, &blob_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return luaL_argerror(L, 1, "not base64");
    kh_fingerprint(blob, blob_len, fp, sizeof fp);
    lua_pushstring(L, fp);
    return 1;
}

/*
 * ssh.known_lines(path, host, port) -> { {line =, type =, revoked =,
 * blob =}, ... } | nil, message: the known_hosts lines that name the
 * host, in file order, exactly as a connection reads them (for tests).
 */
static int ssh_known_lines(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *host = luaL_checkstring(L, 2);
    int port = (int)luaL_checkinteger(L, 3);
    const char *problem = NULL;
    struct kh_host h;
    size_t i;

    if (kh_load(path, host, port, &h, &problem) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path,
                        problem != NULL ? problem : strerror(errno));
        kh_host_free(&h);
        return 2;
    }
    lua_createtable(L, (int)h.count, 0);
    for (i = 0; i < h.count; i++) {
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, h.entries[i].line);
        lua_setfield(L, -2, "line");
        lua_pushstring(L, h.entries[i].type);
        lua_setfield(L, -2, "type");
        lua_pushboolean(L, h.entries[i].revoked);
        lua_setfield(L, -2, "revoked");
        lua_pushlstring(L, (const char *)h.entries[i].blob, h.entries[i].len);
        lua_setfield(L, -2, "blob");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    kh_host_free(&h);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"tunnel", ssh_session_tunnel},
    {"sftp_put", ssh_session_sftp_put},
    {"pump", ssh_session_pump},
    {"tunnels", ssh_session_tunnels},
    {"exec", ssh_session_exec},
    {"shell", ssh_session_shell},
    {"close", session_close},
    {"alive", session_alive},
    {"keepalive", session_keepalive},
    {NULL, NULL}
};

static const luaL_Reg ssh_funcs[] = {
    {"connect", ssh_connect},
    {"fingerprint", ssh_fingerprint},
    {"known_lines", ssh_known_lines},
    {NULL, NULL}
};

int luaopen_cutover_ssh(lua_State *L)
{
    luaL_newmetatable(L, SSH_SESSION_MT);
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, session_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, SSH_PUT_MT);
    lua_pushcfunction(L, ssh_put_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, SSH_EXEC_MT);
    lua_pushcfunction(L, ssh_exec_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    ssh_shell_register(L);
    luaL_newlib(L, ssh_funcs);
    return 1;
}
