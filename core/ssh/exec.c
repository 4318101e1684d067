/*
 * exec.c: session:exec, one command on its own channel of a session,
 * with stdin sent, stdout and stderr gathered (capped), a timeout and
 * interrupts (SIGINT/SIGTERM) that leave the session up for the caller
 * to stop the command.
 */
#include <stdlib.h>
#include <string.h>

#include "ssh_internal.h"

#define SSH_DEFAULT_MAX_OUTPUT (8 * 1024 * 1024)

/* The states of one exec, in order.  The numbers are part of the Lua
 * API: a failure returns the state it happened in, and below EX_IO the
 * command was never started (safe to reconnect and run it again). */
enum exec_state {
    EX_OPEN = 0,      /* open a session channel */
    EX_START = 1,     /* the exec request */
    EX_IO = 2,        /* stdin out, stdout and stderr in, until EOF */
    EX_CLOSE = 3,     /* close the channel, wait for the server's close */
    EX_DONE = 4       /* the exit status and signal are known */
};

struct ssh_buf {
    char *data;     /* owned */
    size_t len;
    size_t cap;
    size_t max;
    int truncated;
};

struct ssh_exec {
    LIBSSH2_CHANNEL *channel;     /* owned until freed */
    struct ssh_session *s;        /* kept alive by uservalue 1 */
    enum exec_state state;
    size_t stdin_off;
    int stdin_done;
    struct ssh_buf out;
    struct ssh_buf err;
    double started;
    double deadline;
    int timed_out;                /* else, when stopped early: interrupted */
    unsigned interrupts_at_start;
    int uninterruptible;          /* the command that stops another one */
    int reread;                   /* went round once with data queued and
                                     nothing read (exec_io) */
};

/* Stack of exec: 1 session, 2 command, 3 options, 4 exec userdata. */
enum { EXEC_SESSION = 1, EXEC_COMMAND = 2, EXEC_OPTS = 3, EXEC_UD = 4 };

/* What an EX_* state function asks of exec_step. */
enum { EXEC_NEXT, EXEC_WAIT, EXEC_FAILED };

static void buf_add(struct ssh_buf *b, const char *data, size_t n)
{
    if (b->len + n > b->max) {
        b->truncated = 1;
        n = b->max - b->len;
    }
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        char *grown;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->max)
            cap = b->max;
        grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->truncated = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

int ssh_exec_gc(lua_State *L)
{
    struct ssh_exec *e = luaL_checkudata(L, 1, SSH_EXEC_MT);

    if (e->channel != NULL && e->s != NULL && e->s->session != NULL)
        libssh2_channel_free(e->channel);  /* best effort if unfinished */
    e->channel = NULL;
    if (e->s != NULL)
        e->s->busy = 0;
    free(e->out.data);
    free(e->err.data);
    e->out.data = e->err.data = NULL;
    return 0;
}

/* The session is gone: nil, "HOST: msg", code, the state it failed in. */
static int exec_fail(lua_State *L, struct ssh_exec *e, const char *code,
                     const char *msg)
{
    struct ssh_session *s = e->s;
    char text[700];

    snprintf(text, sizeof text, "%s", msg);
    e->channel = NULL;  /* freed with the session */
    s->busy = 0;
    ssh_close_session(s);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", s->host, text);
    lua_pushstring(L, code);
    lua_pushinteger(L, (lua_Integer)e->state);
    return 4;
}

static int exec_open(struct ssh_exec *e)
{
    e->channel = libssh2_channel_open_session(e->s->session);
    if (e->channel == NULL)
        return libssh2_session_last_errno(e->s->session) ==
               LIBSSH2_ERROR_EAGAIN ? EXEC_WAIT : EXEC_FAILED;
    e->state = EX_START;
    return EXEC_NEXT;
}

static int exec_start(lua_State *L, struct ssh_exec *e)
{
    size_t cmd_len;
    const char *cmd = lua_tolstring(L, EXEC_COMMAND, &cmd_len);
    int rc = libssh2_channel_process_startup(e->channel, "exec", 4, cmd,
                                             (unsigned)cmd_len);

    if (rc == LIBSSH2_ERROR_EAGAIN)
        return EXEC_WAIT;
    if (rc != 0)
        return EXEC_FAILED;
    e->state = EX_IO;
    return EXEC_NEXT;
}

/* Sends what stdin libssh2 takes now, then EOF once it is all sent. */
static void exec_send_stdin(lua_State *L, struct ssh_exec *e)
{
    size_t len = 0;
    const char *data;
    ssize_t n;

    lua_getfield(L, EXEC_OPTS, "stdin");
    data = lua_tolstring(L, -1, &len);
    lua_pop(L, 1);  /* still held by the options table */
    while (!e->stdin_done && e->stdin_off < len) {
        n = libssh2_channel_write(e->channel, data + e->stdin_off,
                                  len - e->stdin_off);
        if (n == LIBSSH2_ERROR_EAGAIN)
            break;
        if (n < 0) {
            e->stdin_done = 1;  /* the program closed its input */
            break;
        }
        e->stdin_off += (size_t)n;
    }
    if (!e->stdin_done && e->stdin_off >= len &&
        libssh2_channel_send_eof(e->channel) != LIBSSH2_ERROR_EAGAIN)
        e->stdin_done = 1;
}

/* Reads everything waiting on one stream: how many bytes came, or -1
 * when the channel broke. */
static long exec_drain(struct ssh_exec *e, int stream, struct ssh_buf *b)
{
    char chunk[32768];
    long got = 0;
    ssize_t n;

    for (;;) {
        n = libssh2_channel_read_ex(e->channel, stream, chunk, sizeof chunk);
        if (n > 0) {
            buf_add(b, chunk, (size_t)n);
            got += (long)n;
            continue;
        }
        return n < 0 && n != LIBSSH2_ERROR_EAGAIN ? -1 : got;
    }
}

static int exec_io(lua_State *L, struct ssh_exec *e)
{
    long out;
    long err;

    exec_send_stdin(L, e);
    out = exec_drain(e, 0, &e->out);
    err = out < 0 ? -1 : exec_drain(e, SSH_EXTENDED_DATA_STDERR, &e->err);
    if (out < 0 || err < 0)
        return EXEC_FAILED;
    if (!libssh2_channel_eof(e->channel)) {
        /* libssh2 reads every packet the socket holds whenever either
         * stream is read: stdout's last data (and the EOF, the close)
         * may have been queued while stderr was read.  The socket then
         * has nothing more to wake us, so read again rather than wait.
         * (Once with nothing read: data of a stream neither read takes
         * would otherwise loop for ever.) */
        if (libssh2_poll_channel_read(e->channel, 1) > 0 &&
            (out + err > 0 || !e->reread)) {
            e->reread = out + err == 0;
            return EXEC_NEXT;
        }
        e->reread = 0;
        return EXEC_WAIT;
    }
    e->state = EX_CLOSE;
    return EXEC_NEXT;
}

static int exec_close(struct ssh_exec *e)
{
    int rc = libssh2_channel_close(e->channel);

    if (rc == 0)
        rc = libssh2_channel_wait_closed(e->channel);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return EXEC_WAIT;
    if (rc != 0)
        return EXEC_FAILED;
    e->state = EX_DONE;
    return EXEC_NEXT;
}

/* The result table of an exec that ended (EX_DONE) or was stopped. */
static int exec_result(lua_State *L, struct ssh_exec *e)
{
    struct ssh_session *s = e->s;

    lua_createtable(L, 0, 12);
    if (e->state == EX_DONE) {
        char *signal_name = NULL;
        libssh2_channel_get_exit_signal(e->channel, &signal_name, NULL,
                                        NULL, NULL, NULL, NULL);
        lua_pushinteger(L, libssh2_channel_get_exit_status(e->channel));
        lua_setfield(L, -2, "rc");
        if (signal_name != NULL) {
            lua_pushstring(L, signal_name);
            lua_setfield(L, -2, "signal");
            libssh2_free(s->session, signal_name);
        }
        libssh2_channel_free(e->channel);
        e->channel = NULL;
    } else {
        /* Timed out or interrupted: the remote command may still run.
         * The session stays up so that the caller can stop the command
         * over a second channel at once (a new connection would be one
         * more handshake, refused once the controller is interrupted);
         * the caller closes it afterwards.  The channel is left to the
         * session, which frees it when it closes. */
        e->channel = NULL;
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, e->timed_out ? "timed_out" : "interrupted");
    }
    s->busy = 0;
    lua_pushlstring(L, e->out.data != NULL ? e->out.data : "", e->out.len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, e->err.data != NULL ? e->err.data : "", e->err.len);
    lua_setfield(L, -2, "stderr");
    lua_pushboolean(L, e->out.truncated);
    lua_setfield(L, -2, "stdout_truncated");
    lua_pushboolean(L, e->err.truncated);
    lua_setfield(L, -2, "stderr_truncated");
    lua_pushnumber(L, loop_now() - e->started);
    lua_setfield(L, -2, "duration");
    return 1;
}

/* Has the exec to stop before EX_DONE (its timeout, an interrupt)? */
static int exec_stopped(struct ssh_exec *e)
{
    if (e->state == EX_DONE)
        return 0;
    if (e->deadline > 0 && loop_now() >= e->deadline) {
        e->timed_out = 1;
        return 1;
    }
    return !e->uninterruptible &&
           loop_interrupts() != e->interrupts_at_start;
}

static int exec_step(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_exec *e = luaL_checkudata(L, EXEC_UD, SSH_EXEC_MT);
    struct ssh_session *s = e->s;
    int next = EXEC_NEXT;

    (void)status;
    (void)ctx;
    for (;;) {
        if (s->session == NULL)
            return exec_fail(L, e, "connection", "session closed");
        if (exec_stopped(e) || e->state == EX_DONE)
            return exec_result(L, e);
        switch (e->state) {
        case EX_OPEN:
            next = exec_open(e);
            break;
        case EX_START:
            next = exec_start(L, e);
            break;
        case EX_IO:
            next = exec_io(L, e);
            break;
        case EX_CLOSE:
            next = exec_close(e);
            break;
        case EX_DONE:
            break;
        }
        if (next == EXEC_FAILED)
            return exec_fail(L, e, "connection", ssh_last_error(s));
        if (next == EXEC_WAIT) {
            s->deadline = e->deadline;
            WAIT_OR_PARK(L, s, libssh2_session_block_directions(s->session),
                         exec_step);
        }
    }
}

/*
 * session:exec(command [, {stdin=, timeout=, max_output=,
 *                            uninterruptible=}])
 *   -> {rc=, signal=, stdout=, stderr=, stdout_truncated=,
 *       stderr_truncated=, timed_out=, interrupted=, duration=}
 *    | nil, message, code, phase
 * code "connection": the session is gone (phase 0 or 1: the command was
 * never started, so it is safe to reconnect and run it again).
 * timed_out / interrupted: the session is left open for the caller to
 * stop the command with another exec, and must then be closed.
 * uninterruptible: SIGINT/SIGTERM do not stop this exec (the one that
 * stops an interrupted command; its timeout bounds it).
 */
int ssh_session_exec(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, EXEC_SESSION,
                                            SSH_SESSION_MT);
    struct ssh_exec *e;
    lua_Integer max_output;
    lua_Number timeout;

    luaL_checkstring(L, EXEC_COMMAND);
    if (lua_isnoneornil(L, EXEC_OPTS)) {
        lua_settop(L, EXEC_COMMAND);
        lua_newtable(L);
    }
    luaL_checktype(L, EXEC_OPTS, LUA_TTABLE);
    lua_settop(L, EXEC_OPTS);
    if (s->phase != PH_READY) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: not connected", s->host);
        lua_pushliteral(L, "connection");
        lua_pushinteger(L, EX_OPEN);
        return 4;
    }
    if (s->busy)
        return luaL_error(L, "ssh: session to %s is already running a "
                          "command", s->host);
    lua_getfield(L, EXEC_OPTS, "max_output");
    max_output = luaL_optinteger(L, -1, SSH_DEFAULT_MAX_OUTPUT);
    lua_getfield(L, EXEC_OPTS, "timeout");
    timeout = luaL_optnumber(L, -1, 0);
    lua_pop(L, 2);
    e = lua_newuserdatauv(L, sizeof *e, 1);  /* EXEC_UD */
    memset(e, 0, sizeof *e);
    e->state = EX_OPEN;
    luaL_setmetatable(L, SSH_EXEC_MT);
    lua_pushvalue(L, EXEC_SESSION);
    lua_setiuservalue(L, EXEC_UD, 1);        /* keeps the session alive */
    e->s = s;
    e->out.max = e->err.max = max_output > 0 ? (size_t)max_output : 0;
    e->started = loop_now();
    e->deadline = timeout > 0 ? e->started + timeout : 0;
    e->interrupts_at_start = loop_interrupts();
    lua_getfield(L, EXEC_OPTS, "uninterruptible");
    e->uninterruptible = lua_toboolean(L, -1);
    lua_pop(L, 1);
    s->busy = 1;
    return exec_step(L, LUA_OK, 0);
}
