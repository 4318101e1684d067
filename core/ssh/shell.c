/*
 * shell.c: session:shell, one long-lived exec channel (the persistent
 * remote runner of connection/ssh.lua and connection/session.lua).  C
 * moves bytes and bounds them; the frame protocol on top is Lua's.
 *
 *   sh:send(data [, opts])      all of data to the channel's stdin
 *   sh:recv_line(max [, opts])  one line of its stdout (without "\n")
 *   sh:recv_until(marker, opts) its stdout up to marker (taken, not
 *                               returned); opts.max: the most bytes
 *                               before it, past which the reply is a
 *                               protocol error
 *   sh:poll()                   between requests: still usable?
 *   sh:wait_stderr(text [, opts]) until its stderr holds text (a prompt)
 *   sh:stderr()                 what the remote shell itself wrote
 *   sh:close()
 * opts: timeout (seconds), uninterruptible; for send, stall (seconds
 * without progress: the deadline moves on with every byte written).
 * A failure returns nil, message, code: "timeout", "interrupted",
 * "eof" (the remote shell ended: the connection is still up),
 * "connection" (the session is gone, and closed), "protocol" (bytes
 * where none were due, a line too long), "unsupported" (session:shell
 * only: the server refused the channel or its command, as for
 * MaxSessions; the connection stays).  A failed send also returns a
 * fourth value: true when some of its bytes may have left (libssh2 took
 * bytes, or holds part of a packet it may still send).
 */
#include <stdlib.h>
#include <string.h>

#include "ssh_internal.h"

/* Buffers are allocated when bytes come, not with the shell: an idle
 * session holds none (1,000 connected hosts used to hold 68 MiB).  The
 * stdout buffer grows up to SHELL_IN_BUF and is freed once it is empty
 * again; recv_until's bytes move on into a buffer of their own. */
#define SHELL_IN_BUF 65536
#define SHELL_IN_MIN 1024
#define SHELL_ERR_BUF 4096
/* How long sh:close waits for its EOF and CLOSE packets to leave. */
#define SHELL_CLOSE_WAIT 10.0
/* The largest cap of one stream: the output cap is 8 MiB per stream by
 * default; a caller's larger cap is refused here, not allocated.  A
 * recv_until may hold one byte more (a cap plus the byte that tells a
 * cut stream). */
#define SHELL_MAX_RECV (256u * 1024 * 1024)
/* recv_until: its buffer starts at this and doubles as bytes come; the
 * longest marker. */
#define SHELL_UNTIL_MIN 4096
#define SHELL_MARKER_MAX 64

enum shell_state {
    SH_OPEN,      /* open a session channel */
    SH_START,     /* the exec request */
    SH_READY,     /* running: send and receive */
    SH_DEAD       /* closed, or the remote end ended */
};

struct ssh_shell {
    LIBSSH2_CHANNEL *channel;     /* owned */
    struct ssh_session *s;        /* kept alive by uservalue 1 */
    enum shell_state state;
    int closing;                  /* close: 0 send EOF, 1 send CLOSE */
    char *in;                     /* received stdout not yet taken: owned */
    size_t in_len;
    size_t in_cap;                /* at most SHELL_IN_BUF */
    char *err;                    /* the first bytes of its stderr: owned,
                                   * SHELL_ERR_BUF once any came */
    size_t err_len;
    /* the operation in progress (kept across parks) */
    char *want;                   /* recv_until's bytes: owned */
    size_t want_len;              /* its size */
    size_t want_have;
    int until_on;                 /* a recv_until is in progress */
    size_t until_max;             /* recv_until: the most bytes before
                                   * the marker */
    size_t until_scan;            /* where the marker may start */
    char marker[SHELL_MARKER_MAX];
    size_t marker_len;
    size_t sent;                  /* send: bytes written so far */
    int maybe_sent;               /* send: a write took bytes or waited */
    double stall;                 /* send: seconds allowed without progress */
    double stall_deadline;        /* send: moves on with each byte taken */
    size_t line_max;              /* recv_line: the longest line taken */
    double deadline;
    unsigned interrupts_at_start;
    int uninterruptible;
    lua_Alloc alloc;              /* the Lua state's allocator: buffers */
    void *alloc_ud;
};

/* The buffers come from the Lua state's allocator, not malloc, so the
 * controller's memory ceiling (core/host.c, CUTOVER_MEMORY_LIMIT) counts
 * remote data held here and sys.memory() shows it.  size 0 frees p
 * (old: its size); returns NULL then, or when memory runs out. */
static void *shell_mem(struct ssh_shell *h, void *p, size_t old, size_t size)
{
    return h->alloc(h->alloc_ud, p, p != NULL ? old : 0, size);
}

/* Stack of every method: 1 shell, 2 argument, 3 options. */
enum { SH_UD = 1, SH_ARG = 2, SH_OPTS = 3 };

static void shell_free_channel(struct ssh_shell *h)
{
    if (h->channel != NULL && h->s != NULL && h->s->session != NULL)
        libssh2_channel_free(h->channel);
    h->channel = NULL;
    h->state = SH_DEAD;
}

static int shell_gc(lua_State *L)
{
    struct ssh_shell *h = luaL_checkudata(L, 1, SSH_SHELL_MT);

    shell_free_channel(h);
    h->want = shell_mem(h, h->want, h->want_len, 0);
    h->in = shell_mem(h, h->in, h->in_cap, 0);
    h->in_len = h->in_cap = 0;
    h->err = shell_mem(h, h->err, SHELL_ERR_BUF, 0);
    h->err_len = 0;
    return 0;
}

/* nil, "HOST: msg", code; "connection" also closes the session. */
static int shell_fail(lua_State *L, struct ssh_shell *h, const char *code,
                      const char *msg)
{
    struct ssh_session *s = h->s;

    h->want = shell_mem(h, h->want, h->want_len, 0);
    h->until_on = 0;
    if (strcmp(code, "connection") == 0) {
        h->channel = NULL;  /* freed with the session */
        h->state = SH_DEAD;
        ssh_close_session(s);
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", s->host, msg);
    lua_pushstring(L, code);
    return 3;
}

/* Room for more stdout in h->in: grows it (up to SHELL_IN_BUF).  Returns
 * the bytes free; raises when memory runs out. */
static size_t shell_in_room(lua_State *L, struct ssh_shell *h)
{
    if (h->in_len == h->in_cap && h->in_cap < SHELL_IN_BUF) {
        size_t cap = h->in_cap < SHELL_IN_MIN ? SHELL_IN_MIN : h->in_cap * 2;
        char *p;

        if (cap > SHELL_IN_BUF)
            cap = SHELL_IN_BUF;
        p = shell_mem(h, h->in, h->in_cap, cap);
        if (p == NULL)
            luaL_error(L, "ssh: out of memory");
        h->in = p;
        h->in_cap = cap;
    }
    return h->in_cap - h->in_len;
}

/* One pass of shell_fill: stderr, then stdout while h->in has room. */
static long shell_fill_pass(lua_State *L, struct ssh_shell *h)
{
    char chunk[4096];
    ssize_t n;
    long got = 0;
    size_t room;

    if (h->channel == NULL)
        return -1;
    for (;;) {
        n = libssh2_channel_read_ex(h->channel, SSH_EXTENDED_DATA_STDERR,
                                    chunk, sizeof chunk);
        if (n > 0) {
            size_t k = (size_t)n;
            if (h->err == NULL) {
                h->err = shell_mem(h, NULL, 0, SHELL_ERR_BUF);
                if (h->err == NULL)
                    luaL_error(L, "ssh: out of memory");
            }
            if (k > SHELL_ERR_BUF - h->err_len)
                k = SHELL_ERR_BUF - h->err_len;
            memcpy(h->err + h->err_len, chunk, k);
            h->err_len += k;
            got += (long)n;
            continue;
        }
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            return -1;
        break;
    }
    while ((room = shell_in_room(L, h)) > 0) {
        n = libssh2_channel_read_ex(h->channel, 0, h->in + h->in_len, room);
        if (n > 0) {
            h->in_len += (size_t)n;
            got += (long)n;
            continue;
        }
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            return -1;
        break;
    }
    return got;
}

/* Reads what has arrived: stdout into h->in while it has room; stderr (the first
 * SHELL_ERR_BUF bytes kept).  Returns how many bytes came, -1 when the
 * channel broke.  libssh2 reads every packet the socket holds whenever
 * either stream is read, so stderr that came during the stdout read
 * waits in libssh2's queue, and while it does libssh2_channel_eof
 * does not tell the end: another pass takes it, since the socket will
 * not wake us for it.  (A pass with nothing read while data is still
 * queued, stdout with no room in h->in, ends the reading.) */
static long shell_fill(lua_State *L, struct ssh_shell *h)
{
    long got = 0;
    long pass;
    int idle = 0;

    for (;;) {
        pass = shell_fill_pass(L, h);
        if (pass < 0)
            return -1;
        got += pass;
        if (h->channel == NULL || libssh2_poll_channel_read(h->channel, 1) <= 0)
            break;
        if (pass == 0 && ++idle > 1)
            break;
    }
    return got;
}

static void shell_take(struct ssh_shell *h, size_t n)
{
    if (n == 0)
        return;
    memmove(h->in, h->in + n, h->in_len - n);
    h->in_len -= n;
    if (h->in_len == 0) {  /* an idle shell holds no buffer */
        h->in = shell_mem(h, h->in, h->in_cap, 0);
        h->in_cap = 0;
    }
}

static void shell_begin(lua_State *L, struct ssh_shell *h)
{
    lua_Number timeout = 0;

    if (lua_istable(L, SH_OPTS)) {
        lua_getfield(L, SH_OPTS, "timeout");
        timeout = luaL_optnumber(L, -1, 0);
        lua_getfield(L, SH_OPTS, "uninterruptible");
        h->uninterruptible = lua_toboolean(L, -1);
        lua_getfield(L, SH_OPTS, "stall");
        h->stall = luaL_optnumber(L, -1, 0);
        lua_pop(L, 3);
    } else {
        h->uninterruptible = 0;
        h->stall = 0;
    }
    lua_settop(L, SH_OPTS);
    h->deadline = timeout > 0 ? loop_now() + timeout : 0;
    h->stall_deadline = h->stall > 0 ? loop_now() + h->stall : 0;
    h->interrupts_at_start = loop_interrupts();
}

/* When the wait must end: the earlier of the two deadlines (0: none). */
static double shell_wake_at(const struct ssh_shell *h)
{
    if (h->stall_deadline > 0 &&
        (h->deadline == 0 || h->stall_deadline < h->deadline))
        return h->stall_deadline;
    return h->deadline;
}

/* Timed out or interrupted: the code, else NULL. */
static const char *shell_stopped(struct ssh_shell *h)
{
    if (h->deadline > 0 && loop_now() >= h->deadline)
        return "timeout";
    if (h->stall_deadline > 0 && loop_now() >= h->stall_deadline)
        return "timeout";
    if (!h->uninterruptible && loop_interrupts() != h->interrupts_at_start)
        return "interrupted";
    return NULL;
}

static struct ssh_shell *shell_check(lua_State *L)
{
    return luaL_checkudata(L, SH_UD, SSH_SHELL_MT);
}

/* A method's first checks: pushes a failure (returns 3), else 0. */
static int shell_unusable(lua_State *L, struct ssh_shell *h)
{
    if (h->s->session == NULL || h->s->phase != PH_READY) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: not connected", h->s->host);
        lua_pushliteral(L, "connection");
        return 3;
    }
    if (h->state != SH_READY || h->channel == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: the remote shell has ended", h->s->host);
        lua_pushliteral(L, "eof");
        return 3;
    }
    return 0;
}

#define SHELL_WAIT(L, h, k)                                              \
    do {                                                                 \
        (h)->s->deadline = shell_wake_at(h);                             \
        WAIT_OR_PARK((L), (h)->s,                                        \
                     libssh2_session_block_directions((h)->s->session),  \
                     (k));                                               \
    } while (0)

/* The start of a receiving wait's turn: the session must be there, then
 * what the channel has is read.  Returns the bytes read (0 or more), or
 * -1 with a failure pushed (*nret: its count). */
static long shell_turn_fill(lua_State *L, struct ssh_shell *h, int *nret)
{
    long got;

    if (h->s->session == NULL) {
        *nret = shell_fail(L, h, "connection", "session closed");
        return -1;
    }
    got = shell_fill(L, h);
    if (got < 0)
        *nret = shell_fail(L, h, "connection", ssh_last_error(h->s));
    return got;
}

/* The end of a receiving wait's turn, with nothing taken: the remote
 * shell's end, a timeout or an interrupt push a failure (returns its
 * count); else 0, and the caller waits. */
static int shell_turn_end(lua_State *L, struct ssh_shell *h)
{
    const char *stop;

    if (libssh2_channel_eof(h->channel)) {
        h->state = SH_DEAD;
        return shell_fail(L, h, "eof", "the remote shell has ended");
    }
    stop = shell_stopped(h);
    if (stop != NULL)
        return shell_fail(L, h, stop, stop);
    return 0;
}

/* A failed send: shell_fail's three values and whether bytes may have
 * left (the caller must then treat the request as maybe delivered). */
static int shell_send_fail(lua_State *L, struct ssh_shell *h,
                           const char *code, const char *msg)
{
    shell_fail(L, h, code, msg);
    lua_pushboolean(L, h->maybe_sent);
    return 4;
}

static int shell_send_k(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_shell *h = shell_check(L);
    size_t len;
    const char *data = lua_tolstring(L, SH_ARG, &len);
    const char *stop;
    ssize_t n;

    (void)status;
    (void)ctx;
    for (;;) {
        if (h->s->session == NULL)
            return shell_send_fail(L, h, "connection", "session closed");
        while (h->sent < len) {
            n = libssh2_channel_write(h->channel, data + h->sent,
                                      len - h->sent);
            /* an error leaves at most a packet cut short, which the
             * server never acts on; EAGAIN may leave part of one in
             * libssh2, sent later */
            if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
                return shell_send_fail(L, h, "connection",
                                       ssh_last_error(h->s));
            h->maybe_sent = 1;
            if (n == LIBSSH2_ERROR_EAGAIN)
                break;
            h->sent += (size_t)n;
            if (n > 0 && h->stall > 0)  /* progress: the stall clock restarts */
                h->stall_deadline = loop_now() + h->stall;
        }
        if (h->sent >= len) {
            lua_pushboolean(L, 1);
            return 1;
        }
        /* keep its output moving: a remote end that writes while it
         * reads must not stall on a full window */
        if (shell_fill(L, h) < 0)
            return shell_send_fail(L, h, "connection", ssh_last_error(h->s));
        stop = shell_stopped(h);
        if (stop != NULL)
            return shell_send_fail(L, h, stop, stop);
        SHELL_WAIT(L, h, shell_send_k);
    }
}

/* sh:send(data [, opts]) -> true | nil, message, code */
static int shell_send(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);
    int bad;

    luaL_checkstring(L, SH_ARG);
    bad = shell_unusable(L, h);
    if (bad)
        return bad;
    shell_begin(L, h);
    h->sent = 0;
    h->maybe_sent = 0;
    return shell_send_k(L, LUA_OK, 0);
}

static int shell_until_take(lua_State *L, struct ssh_shell *h, int *nret);

/* The start of a receiving method: a failure pushed (returns its count)
 * when the shell is not usable, else 0 with the wait begun and no
 * buffer of an earlier receive left. */
static int shell_recv_start(lua_State *L, struct ssh_shell *h)
{
    int bad = shell_unusable(L, h);

    if (bad)
        return bad;
    shell_begin(L, h);
    h->want = shell_mem(h, h->want, h->want_len, 0);
    h->until_on = 0;
    return 0;
}

/* One line, or the bytes up to a marker (until_on). */
static int shell_recv_k(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_shell *h = shell_check(L);
    size_t max = h->line_max;  /* not ctx: a park resumes with ctx 0 */
    int nret, found;
    long got;

    (void)status;
    (void)ctx;
    for (;;) {
        got = shell_turn_fill(L, h, &nret);
        if (got < 0)
            return nret;
        if (h->until_on) {
            found = h->in_len > 0 ? shell_until_take(L, h, &nret) : 0;
            if (found > 0)
                return 1;
            if (found < 0)
                return nret;
        } else {
            char *nl = h->in_len > 0 ? memchr(h->in, '\n', h->in_len) : NULL;
            if (nl != NULL && (size_t)(nl - h->in) <= max) {
                lua_pushlstring(L, h->in, (size_t)(nl - h->in));
                shell_take(h, (size_t)(nl - h->in) + 1);
                return 1;
            }
            if (nl != NULL || h->in_len > max)
                return shell_fail(L, h, "protocol",
                                  "a line from the remote shell is too long");
        }
        if (got > 0)
            continue;  /* the buffer had filled: read on before waiting */
        nret = shell_turn_end(L, h);
        if (nret > 0)
            return nret;
        SHELL_WAIT(L, h, shell_recv_k);
    }
}

/* sh:recv_line(max [, opts]) -> line | nil, message, code */
static int shell_recv_line(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);
    lua_Integer max = luaL_checkinteger(L, SH_ARG);
    int bad;

    luaL_argcheck(L, max > 0 && max < SHELL_IN_BUF, SH_ARG,
                  "line length out of range");
    bad = shell_recv_start(L, h);
    if (bad)
        return bad;
    h->line_max = (size_t)max;
    return shell_recv_k(L, LUA_OK, 0);
}

/* Moves what h->in holds into the recv_until buffer, up to the marker.
 * Returns 1 when the marker was found (the bytes before it pushed), 0
 * when more must come, -1 on a failure (pushed: *nret its count). */
static int shell_until_take(lua_State *L, struct ssh_shell *h, int *nret)
{
    size_t limit = h->until_max + h->marker_len;  /* the most ever held */
    size_t k = h->in_len;
    const char *at;

    if (k > limit - h->want_have)
        k = limit - h->want_have;
    if (h->want_have + k > h->want_len) {
        size_t cap = h->want_len < SHELL_UNTIL_MIN ? SHELL_UNTIL_MIN : h->want_len;
        char *p;

        while (cap < h->want_have + k)
            cap = cap > limit / 2 ? limit : cap * 2;
        p = shell_mem(h, h->want, h->want_len, cap);
        if (p == NULL)
            luaL_error(L, "ssh: out of memory");
        h->want = p;
        h->want_len = cap;
    }
    memcpy(h->want + h->want_have, h->in, k);
    at = memmem(h->want + h->until_scan, h->want_have + k - h->until_scan,
                h->marker, h->marker_len);
    if (at != NULL) {
        size_t before = (size_t)(at - h->want);

        /* the bytes after the marker stay in h->in: the next frame's */
        shell_take(h, before + h->marker_len - h->want_have);
        lua_pushlstring(L, h->want, before);
        h->want = shell_mem(h, h->want, h->want_len, 0);
        h->want_len = h->want_have = 0;
        h->until_on = 0;
        return 1;
    }
    h->want_have += k;
    shell_take(h, k);
    h->until_scan = h->want_have >= h->marker_len ? h->want_have - h->marker_len + 1 : 0;
    if (h->want_have >= limit) {
        *nret = shell_fail(L, h, "protocol",
                           "the remote shell's reply runs past its cap");
        return -1;
    }
    return 0;
}

/* sh:recv_until(marker, opts) -> the bytes before marker | nil, message,
 * code.  opts.max (required): the most bytes before it. */
static int shell_recv_until(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);
    size_t mlen;
    const char *marker = luaL_checklstring(L, SH_ARG, &mlen);
    lua_Integer max;
    int bad;

    luaL_argcheck(L, mlen > 0 && mlen <= SHELL_MARKER_MAX, SH_ARG,
                  "marker length out of range");
    luaL_checktype(L, SH_OPTS, LUA_TTABLE);
    lua_getfield(L, SH_OPTS, "max");
    max = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, max >= 0 && (lua_Unsigned)max <= SHELL_MAX_RECV + 1,
                  SH_OPTS, "max out of range");
    bad = shell_recv_start(L, h);
    if (bad)
        return bad;
    h->want_len = h->want_have = 0;
    memcpy(h->marker, marker, mlen);
    h->marker_len = mlen;
    h->until_max = (size_t)max;
    h->until_scan = 0;
    h->until_on = 1;
    return shell_recv_k(L, LUA_OK, 0);
}

/* sh:poll() -> true | nil, message, code: between requests, nothing is
 * due from the remote shell; bytes, an end or a broken connection mean
 * it is not usable (a request sent now might never run). */
static int shell_poll(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);
    int bad = shell_unusable(L, h);

    if (bad)
        return bad;
    /* a real read: this is a check, made without waiting for a poll */
    h->s->recv_dry = 0;
    if (shell_fill(L, h) < 0)
        return shell_fail(L, h, "connection", ssh_last_error(h->s));
    if (h->in_len > 0)
        return shell_fail(L, h, "protocol",
                          "the remote shell wrote when nothing was due");
    if (libssh2_channel_eof(h->channel)) {
        h->state = SH_DEAD;
        return shell_fail(L, h, "eof", "the remote shell has ended");
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int shell_wait_stderr_k(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_shell *h = shell_check(L);
    size_t len;
    const char *text = lua_tolstring(L, SH_ARG, &len);
    int nret;
    long got;

    (void)status;
    (void)ctx;
    for (;;) {
        got = shell_turn_fill(L, h, &nret);
        if (got < 0)
            return nret;
        if (h->err_len >= len && memmem(h->err, h->err_len, text, len) != NULL) {
            lua_pushboolean(L, 1);
            return 1;
        }
        /* nothing is due on stdout before the text (a prompt) shows */
        if (h->in_len > 0)
            return shell_fail(L, h, "protocol",
                              "the remote command wrote before its prompt");
        if (h->err_len == SHELL_ERR_BUF)
            return shell_fail(L, h, "protocol",
                              "the remote command did not prompt");
        if (got > 0)
            continue;
        nret = shell_turn_end(L, h);
        if (nret > 0)
            return nret;
        SHELL_WAIT(L, h, shell_wait_stderr_k);
    }
}

/* sh:wait_stderr(text [, opts]) -> true | nil, message, code: waits
 * until what the remote command wrote to stderr holds text (sudo's
 * prompt), so a password is never sent to a command that did not ask. */
static int shell_wait_stderr(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);
    size_t len;
    int bad;

    luaL_checklstring(L, SH_ARG, &len);
    luaL_argcheck(L, len > 0 && len < SHELL_ERR_BUF, SH_ARG,
                  "text length out of range");
    bad = shell_unusable(L, h);
    if (bad)
        return bad;
    shell_begin(L, h);
    return shell_wait_stderr_k(L, LUA_OK, 0);
}

/* sh:stderr() -> the first bytes the remote shell wrote to stderr */
static int shell_stderr(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);

    lua_pushlstring(L, h->err != NULL ? h->err : "", h->err_len);
    return 1;
}

static int shell_close_k(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_shell *h = shell_check(L);
    int rc;

    (void)status;
    (void)ctx;
    for (;;) {
        if (h->channel == NULL || h->s->session == NULL) {
            shell_free_channel(h);
            return 0;
        }
        rc = h->closing == 0 ? libssh2_channel_send_eof(h->channel)
                             : libssh2_channel_close(h->channel);
        if (rc == 0 && h->closing == 0) {
            h->closing = 1;
            continue;
        }
        if (rc == 0) {
            shell_free_channel(h);  /* the server's CLOSE came too */
            return 0;
        }
        if (rc == LIBSSH2_ERROR_EAGAIN && h->closing == 1 &&
            !(libssh2_session_block_directions(h->s->session) &
              LIBSSH2_SESSION_BLOCK_OUTBOUND)) {
            /* CLOSE has left; the server answers once the remote shell
             * has ended.  libssh2 keeps the channel until then (or until
             * the session closes): not waited for here. */
            h->channel = NULL;
            h->state = SH_DEAD;
            return 0;
        }
        if (rc != LIBSSH2_ERROR_EAGAIN || loop_now() >= h->deadline) {
            /* an error, or a packet stuck half sent: libssh2 would
             * refuse every other packet on this connection (BAD_USE),
             * so it is closed; the next step reconnects */
            h->channel = NULL;
            h->state = SH_DEAD;
            ssh_close_session(h->s);
            return 0;
        }
        SHELL_WAIT(L, h, shell_close_k);
    }
}

/* sh:close(): sends EOF (the remote shell sees its stdin end and exits)
 * and CLOSE, waiting while they cannot leave yet (at most
 * SHELL_CLOSE_WAIT seconds, a Ctrl-C notwithstanding: a packet left half
 * sent would break the connection for every later step; when they
 * still cannot leave, the connection is closed). */
static int shell_close(lua_State *L)
{
    struct ssh_shell *h = shell_check(L);

    lua_settop(L, SH_UD);
    if (h->channel == NULL || h->s->session == NULL) {
        shell_free_channel(h);
        return 0;
    }
    h->closing = 0;
    h->uninterruptible = 1;
    h->stall = 0;
    h->stall_deadline = 0;
    h->deadline = loop_now() + SHELL_CLOSE_WAIT;
    h->interrupts_at_start = loop_interrupts();
    return shell_close_k(L, LUA_OK, 0);
}

static int shell_open_k(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_shell *h = shell_check(L);
    size_t len;
    const char *cmd = lua_tolstring(L, SH_ARG, &len);
    const char *stop;
    int rc;

    (void)status;
    (void)ctx;
    for (;;) {
        if (h->s->session == NULL)
            return shell_fail(L, h, "connection", "session closed");
        if (h->state == SH_OPEN) {
            h->channel = libssh2_channel_open_session(h->s->session);
            if (h->channel != NULL)
                h->state = SH_START;
            else if (libssh2_session_last_errno(h->s->session) ==
                     LIBSSH2_ERROR_CHANNEL_FAILURE)
                /* the server said no (MaxSessions): the connection is fine */
                return shell_fail(L, h, "unsupported",
                                  "the server refused a session channel");
            else if (libssh2_session_last_errno(h->s->session) !=
                     LIBSSH2_ERROR_EAGAIN)
                return shell_fail(L, h, "connection", ssh_last_error(h->s));
        }
        if (h->state == SH_START) {
            rc = libssh2_channel_process_startup(h->channel, "exec", 4, cmd,
                                                 (unsigned)len);
            if (rc == 0) {
                h->state = SH_READY;
                lua_settop(L, SH_UD);
                return 1;
            }
            if (rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
                shell_free_channel(h);
                return shell_fail(L, h, "unsupported",
                                  "the server refused the session's command");
            }
            if (rc != LIBSSH2_ERROR_EAGAIN)
                return shell_fail(L, h, "connection", ssh_last_error(h->s));
        }
        stop = shell_stopped(h);
        if (stop != NULL)
            return shell_fail(L, h, stop, stop);
        SHELL_WAIT(L, h, shell_open_k);
    }
}

/*
 * session:shell(command [, {timeout=}]) -> shell | nil, message, code
 * Stack while it runs: 1 the shell userdata (the session moved to its
 * uservalue), 2 command, 3 options.
 */
int ssh_session_shell(lua_State *L)
{
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);
    struct ssh_shell *h;

    luaL_checkstring(L, 2);
    lua_settop(L, 3);
    if (s->phase != PH_READY || s->session == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: not connected", s->host);
        lua_pushliteral(L, "connection");
        return 3;
    }
    h = lua_newuserdatauv(L, sizeof *h, 1);
    memset(h, 0, sizeof *h);
    h->alloc = lua_getallocf(L, &h->alloc_ud);
    h->s = s;
    h->state = SH_OPEN;
    luaL_setmetatable(L, SSH_SHELL_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);   /* keeps the session alive */
    lua_replace(L, SH_UD);         /* slot 1: the shell */
    shell_begin(L, h);
    return shell_open_k(L, LUA_OK, 0);
}

static const luaL_Reg shell_methods[] = {
    {"send", shell_send},
    {"recv_line", shell_recv_line},
    {"recv_until", shell_recv_until},
    {"poll", shell_poll},
    {"stderr", shell_stderr},
    {"wait_stderr", shell_wait_stderr},
    {"close", shell_close},
    {NULL, NULL}
};

void ssh_shell_register(lua_State *L)
{
    luaL_newmetatable(L, SSH_SHELL_MT);
    lua_pushcfunction(L, shell_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, shell_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
