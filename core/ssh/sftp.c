/*
 * sftp.c: session:sftp_put, a file written by SFTP.  The SFTP subsystem
 * is started once per session, on first use; a server without one is
 * remembered (the caller then streams the file over exec).
 */
#include <string.h>

#include "ssh_internal.h"

/* The states of one put, in order. */
enum put_state {
    PUT_INIT,     /* start the session's SFTP subsystem (once) */
    PUT_OPEN,     /* open the remote file (create, truncate) */
    PUT_WRITE,    /* write the content */
    PUT_CLOSE     /* close the handle: the server's answer is the result */
};

struct ssh_put {
    LIBSSH2_SFTP_HANDLE *handle;  /* owned until closed */
    struct ssh_session *s;        /* kept alive by the stack */
    enum put_state state;
    size_t off;
};

/* Stack of put: 1 session, 2 path, 3 content, 4 mode, 5 put userdata. */
enum { PUT_SESSION = 1, PUT_PATH, PUT_CONTENT, PUT_MODE, PUT_UD };

int ssh_put_gc(lua_State *L)
{
    struct ssh_put *p = luaL_checkudata(L, 1, SSH_PUT_MT);

    /* An unfinished upload: drop the session rather than guess. */
    if (p->handle != NULL && p->s != NULL)
        ssh_close_session(p->s);
    p->handle = NULL;
    return 0;
}

static int is_eagain(struct ssh_session *s)
{
    return libssh2_session_last_errno(s->session) == LIBSSH2_ERROR_EAGAIN;
}

/* Pushes nil, "HOST: no SFTP[: why]", "nosftp"; returns 3. */
static int no_sftp(lua_State *L, struct ssh_session *s, const char *why)
{
    lua_pushnil(L);
    if (why != NULL)
        lua_pushfstring(L, "%s: no SFTP: %s", s->host, why);
    else
        lua_pushfstring(L, "%s: no SFTP", s->host);
    lua_pushliteral(L, "nosftp");
    return 3;
}

static int put_init(lua_State *L, struct ssh_session *s, struct ssh_put *p)
{
    if (s->sftp == NULL) {
        s->sftp = libssh2_sftp_init(s->session);
        if (s->sftp == NULL) {
            if (is_eagain(s))
                return STEP_WAIT;
            /* No SFTP subsystem: say so; the caller streams the file
             * over exec instead.  The session stays. */
            s->sftp_unavailable = 1;
            return no_sftp(L, s, ssh_last_error(s));
        }
    }
    p->state = PUT_OPEN;
    return STEP_NEXT;
}

static int put_open(lua_State *L, struct ssh_session *s, struct ssh_put *p)
{
    size_t path_len;
    const char *path = lua_tolstring(L, PUT_PATH, &path_len);
    long mode = (long)lua_tointeger(L, PUT_MODE);
    unsigned long err;

    p->handle = libssh2_sftp_open_ex(s->sftp, path, (unsigned)path_len,
        LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
        mode, LIBSSH2_SFTP_OPENFILE);
    if (p->handle != NULL) {
        p->state = PUT_WRITE;
        return STEP_NEXT;
    }
    if (is_eagain(s))
        return STEP_WAIT;
    err = libssh2_sftp_last_error(s->sftp);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path,
        err == LIBSSH2_FX_NO_SUCH_FILE ? "No such file or directory"
        : err == LIBSSH2_FX_PERMISSION_DENIED ? "Permission denied"
        : "cannot open for writing");
    lua_pushliteral(L, "sftp");
    return 3;
}

static int put_write(lua_State *L, struct ssh_session *s, struct ssh_put *p)
{
    size_t len;
    const char *content = lua_tolstring(L, PUT_CONTENT, &len);
    ssize_t n;

    if (p->off >= len) {
        p->state = PUT_CLOSE;
        return STEP_NEXT;
    }
    n = libssh2_sftp_write(p->handle, content + p->off, len - p->off);
    if (n == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    if (n < 0)
        return ssh_fail(L, s, "connection", "%s: writing %s by SFTP: %s",
                        s->host, lua_tostring(L, PUT_PATH),
                        ssh_last_error(s));
    p->off += (size_t)n;
    return STEP_NEXT;
}

static int put_close(lua_State *L, struct ssh_put *p)
{
    int rc = libssh2_sftp_close_handle(p->handle);

    if (rc == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    p->handle = NULL;
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int put_step(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_session *s = luaL_checkudata(L, PUT_SESSION, SSH_SESSION_MT);
    struct ssh_put *p = luaL_checkudata(L, PUT_UD, SSH_PUT_MT);
    int rc = STEP_NEXT;

    (void)status;
    (void)ctx;
    for (;;) {
        if (s->session == NULL || s->phase != PH_READY)
            return ssh_fail(L, s, "connection", "%s: session closed",
                            s->host);
        if (loop_now() >= s->deadline)
            return ssh_fail(L, s, "connection", "%s: timed out writing %s "
                            "by SFTP", s->host, lua_tostring(L, PUT_PATH));
        switch (p->state) {
        case PUT_INIT:
            rc = put_init(L, s, p);
            break;
        case PUT_OPEN:
            rc = put_open(L, s, p);
            break;
        case PUT_WRITE:
            rc = put_write(L, s, p);
            break;
        case PUT_CLOSE:
            rc = put_close(L, p);
            break;
        }
        if (rc >= 0)
            return rc;
        if (rc == STEP_WAIT)
            WAIT_OR_PARK(L, s, libssh2_session_block_directions(s->session),
                         put_step);
    }
}

/*
 * session:sftp_put(path, content, mode [, timeout])
 *   -> true | nil, message, code
 * Writes content to path (created with mode, truncated if it exists) by
 * SFTP.  code "nosftp": the server offers no SFTP; use exec instead.
 * code "connection": the session is gone.
 */
int ssh_session_sftp_put(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);
    struct ssh_put *p;

    luaL_checkstring(L, PUT_PATH);
    luaL_checkstring(L, PUT_CONTENT);
    luaL_checkinteger(L, PUT_MODE);
    if (s->sftp_unavailable)
        return no_sftp(L, s, NULL);
    if (s->busy)
        return luaL_error(L, "ssh: session to %s is busy", s->host);
    s->deadline = loop_now() + luaL_optnumber(L, 5, 300);
    lua_settop(L, PUT_MODE);
    p = lua_newuserdatauv(L, sizeof *p, 0);  /* PUT_UD */
    memset(p, 0, sizeof *p);
    p->s = s;
    p->state = PUT_INIT;
    luaL_setmetatable(L, SSH_PUT_MT);
    return put_step(L, LUA_OK, 0);
}
