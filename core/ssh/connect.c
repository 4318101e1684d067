/*
 * connect.c: ssh.connect, a session from a TCP connect (or a socket
 * given by the caller, a ProxyJump tunnel or a ProxyCommand) through the
 * handshake, the host-key decision (hostkey.c) and authentication
 * (auth.c) to PH_READY.  connect_step walks enum ssh_phase, one phase
 * function per state.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ssh_internal.h"

static int ssh_ready;

/* PH_CONNECT: the non-blocking TCP connect has finished, or not yet. */
static int phase_connect(lua_State *L, struct ssh_session *s)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (s->pfd.revents == 0)
        return STEP_WAIT;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
        return ssh_fail(L, s, "unreachable", "%s:%d: %s", s->host, s->port,
                        strerror(err));
    s->phase = PH_HANDSHAKE;
    return STEP_NEXT;
}

static int phase_handshake(lua_State *L, struct ssh_session *s)
{
    int rc = libssh2_session_handshake(s->session, s->fd);

    if (rc == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    if (rc != 0)
        return ssh_fail(L, s, "unreachable", "%s:%d: SSH handshake failed: "
                        "%s", s->host, s->port, ssh_last_error(s));
    s->phase = PH_HOSTKEY;
    return STEP_NEXT;
}

/* PH_READY: session, fingerprint, host_key_added. */
static int phase_ready(lua_State *L, struct ssh_session *s)
{
    libssh2_keepalive_config(s->session, 1, 15);
    lua_pushvalue(L, CONNECT_SESSION);
    lua_getfield(L, CONNECT_OPTS, "fingerprint");
    lua_getfield(L, CONNECT_OPTS, "host_key_added");
    return 3;
}

/* The deadline has passed or an interrupt came: the results of ssh_fail,
 * else STEP_NEXT. */
static int connect_stopped(lua_State *L, struct ssh_session *s)
{
    if (loop_now() >= s->deadline && s->phase != PH_READY)
        return ssh_fail(L, s, "timeout", "%s:%d: timed out while %s",
                        s->host, s->port,
                        s->phase == PH_CONNECT ? "connecting"
                        : s->phase == PH_HANDSHAKE ? "in the SSH handshake"
                        : s->phase == PH_HOSTKEY
                        ? "waiting for the lock on known_hosts"
                        : "authenticating");
    if (loop_interrupts() != 0 && !s->ignore_interrupts)
        return ssh_fail(L, s, "interrupted", "%s: interrupted", s->host);
    return STEP_NEXT;
}

/* Runs the phase the session is in (a phase function's answer). */
static int run_phase(lua_State *L, struct ssh_session *s, const char *user,
                     const char *known_hosts)
{
    switch (s->phase) {
    case PH_CONNECT:
        return phase_connect(L, s);
    case PH_HANDSHAKE:
        return phase_handshake(L, s);
    case PH_HOSTKEY:
        return ssh_hostkey_decide(L, s, known_hosts);
    case PH_AUTHLIST:
        return ssh_auth_list(L, s, user);
    case PH_AUTH_KEY:
        return ssh_auth_key(L, s, user);
    case PH_AUTH_AGENT:
        return ssh_auth_agent(L, s, user);
    case PH_AUTH_PASSWORD:
        return ssh_auth_password(L, s, user);
    case PH_READY:
        return phase_ready(L, s);
    case PH_DEAD:
        break;
    }
    return ssh_fail(L, s, "closed", "%s: session closed", s->host);
}

/*
 * The connection state machine.  Stack: 1 options, 2 session userdata.
 */
static int connect_step(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_session *s = luaL_checkudata(L, CONNECT_SESSION,
                                            SSH_SESSION_MT);
    const char *user;
    const char *known_hosts;
    int rc;

    (void)status;
    (void)ctx;
    lua_getfield(L, CONNECT_OPTS, "user");
    user = luaL_checkstring(L, -1);
    lua_getfield(L, CONNECT_OPTS, "known_hosts");
    known_hosts = luaL_checkstring(L, -1);
    lua_pop(L, 2);  /* both stay referenced by the options table */

    for (;;) {
        rc = connect_stopped(L, s);
        if (rc == STEP_NEXT)
            rc = run_phase(L, s, user, known_hosts);
        if (rc >= 0)
            return rc;
        if (rc == STEP_PAUSE) {
            double wake = loop_now() + SSH_PAUSE;
            if (wake > s->deadline)
                wake = s->deadline;
            if (loop_can_park(L))
                return loop_park(L, NULL, 0, wake, 0, connect_step);
            loop_block(L, NULL, 0, wake);
        } else if (rc == STEP_WAIT)
            WAIT_OR_PARK(L, s, s->phase == PH_CONNECT
                         ? LIBSSH2_SESSION_BLOCK_OUTBOUND
                         : libssh2_session_block_directions(s->session),
                         connect_step);
    }
}

/* Every key file is checked before anything connects (see
 * ssh_key_file_problem): a bad one is the user's error, said plainly.
 * Returns the results of ssh_fail, or 0. */
static int check_key_files(lua_State *L, struct ssh_session *s)
{
    int i;
    int nret = 0;

    lua_getfield(L, CONNECT_OPTS, "keys");
    s->key_count = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
    for (i = 1; i <= s->key_count && nret == 0; i++) {
        char why[160];
        const char *path;
        lua_rawgeti(L, -1, i);
        path = lua_tostring(L, -1);
        if (path != NULL && ssh_key_file_problem(path, why, sizeof why)) {
            lua_getfield(L, CONNECT_OPTS, "user");
            nret = ssh_fail(L, s, "auth", "%s@%s:%d: cannot use the "
                            "identity file %s: %s", lua_tostring(L, -1),
                            s->host, s->port, path, why);
            break;
        }
        lua_pop(L, 1);
    }
    if (nret == 0)
        lua_pop(L, 1);
    return nret;
}

/* Starts a non-blocking TCP connect to the session's host and port:
 * the results of ssh_fail, or STEP_NEXT (connect_step goes on). */
static int open_socket(lua_State *L, struct ssh_session *s)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    char service[16];
    int one = 1;
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", s->port);
    loop_before_blocking(L);  /* the lookup may block */
    rc = getaddrinfo(s->host, service, &hints, &res);
    if (rc != 0)
        return ssh_fail(L, s, "unreachable", "%s: %s", s->host,
                        gai_strerror(rc));
    s->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
                   SOCK_CLOEXEC, res->ai_protocol);
    if (s->fd < 0) {
        freeaddrinfo(res);
        return ssh_fail(L, s, "unreachable", "%s: socket: %s", s->host,
                        strerror(errno));
    }
    /* SSH is many small packets each way: no Nagle delays. */
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rc = connect(s->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS)
        return ssh_fail(L, s, "unreachable", "%s:%d: %s", s->host, s->port,
                        strerror(errno));
    s->pfd.revents = rc == 0 ? POLLOUT : 0;
    if (rc == 0)
        s->phase = PH_HANDSHAKE;
    return STEP_NEXT;
}

/*
 * libssh2's recv, minus most calls that cannot find anything.  libssh2
 * reads the socket at every call on the session (each channel read and
 * write, each stream of each channel), so a step's reply, read in one
 * packet, was followed by about ten recv calls that found the socket
 * empty: most of the controller's system calls with many hosts.  Once a
 * recv has found it empty, nothing can arrive that anyone would know of
 * until the loop polls again: until then this answers EAGAIN at once,
 * which makes libssh2 report EAGAIN and the caller park on the socket,
 * whose poll then says when to read.  But libssh2 also has loops of its
 * own that call again until the data comes (libssh2_sftp_init on a
 * server without SFTP spins so): so after RECV_DRY_MAX such answers in a
 * row the socket is read for real again, and such a loop still ends.
 * s is the session's abstract.
 */
#define RECV_DRY_MAX 8

/* CUTOVER_SSH_SKIP_EMPTY_READS=0: every read is a real one, as before
 * (for diagnosis, and for ssh.test_exec_race, whose race needs the
 * empty reads). */
static int skip_empty_reads(void)
{
    static int setting = -1;

    if (setting < 0) {
        const char *v = getenv("CUTOVER_SSH_SKIP_EMPTY_READS");
        setting = !(v != NULL && strcmp(v, "0") == 0);
    }
    return setting;
}

static ssize_t plain_recv(libssh2_socket_t fd, void *buf, size_t len,
                          int flags)
{
    ssize_t n = recv(fd, buf, len, flags);

    if (n >= 0)
        return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Up to len bytes of what was read ahead (at least one is there). */
static ssize_t take_line_ahead(struct ssh_session *s, void *buf, size_t len)
{
    size_t left = (size_t)(s->line_ahead_len - s->line_ahead_pos);
    size_t n = len < left ? len : left;

    memcpy(buf, s->line_ahead + s->line_ahead_pos, n);
    s->line_ahead_pos = (unsigned char)(s->line_ahead_pos + n);
    return (ssize_t)n;
}

/*
 * libssh2 reads the server's identification line ("SSH-2.0-...") with
 * one recv per byte: about 40 system calls per connection.  A one-byte
 * read here peeks at what has arrived and takes the rest of that line
 * (up to and including its '\n', SSH_LINE_AHEAD bytes at most), then
 * hands it out from s->line_ahead.  Bytes read ahead go out before any
 * other read, whatever its length, so libssh2 sees exactly the socket's
 * stream; and only bytes of the line are taken, which libssh2 goes on
 * asking for at once, so none wait here while the loop polls.
 */
static ssize_t read_line_ahead(struct ssh_session *s, void *buf, int flags)
{
    unsigned char peek[SSH_LINE_AHEAD];
    const unsigned char *nl;
    ssize_t n;

    n = plain_recv(s->fd, peek, sizeof peek, flags | MSG_PEEK);
    if (n <= 0)
        return n;
    nl = memchr(peek, '\n', (size_t)n);
    if (nl != NULL)
        n = nl - peek + 1;
    n = plain_recv(s->fd, s->line_ahead, (size_t)n, flags);  /* peeked: there */
    if (n <= 0)
        return n;
    s->line_ahead_len = (unsigned char)n;
    s->line_ahead_pos = 0;
    return take_line_ahead(s, buf, 1);
}

static ssize_t recv_unless_dry(libssh2_socket_t fd, void *buf, size_t len,
                               int flags, void **abstract)
{
    struct ssh_session *s = *abstract;
    ssize_t n;

    /* libssh2 reads the ssh-agent's socket through this too: that one
     * is never polled by the loop, so it is always read for real */
    if (fd != s->fd)
        return plain_recv(fd, buf, len, flags);
    if (s->line_ahead_pos < s->line_ahead_len)
        return take_line_ahead(s, buf, len);
    if (skip_empty_reads() && s->recv_dry &&
        s->recv_dry_turn == loop_poll_count() &&
        s->recv_dry_answers < RECV_DRY_MAX) {
        s->recv_dry_answers++;
        return -EAGAIN;
    }
    s->recv_dry_answers = 0;
    /* (the line comes first: only the handshake reads it) */
    n = len == 1 && s->phase == PH_HANDSHAKE ? read_line_ahead(s, buf, flags)
                                             : plain_recv(fd, buf, len, flags);
    s->recv_dry = n == -EAGAIN;
    s->recv_dry_turn = loop_poll_count();
    return n;
}

/*
 * ssh.connect{host=, port=, user=, known_hosts=, accept_new=, keys={...},
 *             agent=, password=, timeout=, fd=, ignore_interrupts=}
 *   -> session, fingerprint, host_key_added | nil, message, code
 * code: "unreachable", "timeout", "hostkey", "auth", "interrupted".
 * fd: an already connected socket (a ProxyJump tunnel's or a
 * ProxyCommand's, as those return it: never a bare number); taken over
 * by the session at once.
 */
int ssh_connect(lua_State *L)
{
    struct ssh_session *s;
    lua_Number timeout;
    int given_fd;
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    s = lua_newuserdatauv(L, sizeof *s, 0);  /* 2, before any resource */
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->phase = PH_CONNECT;
    luaL_setmetatable(L, SSH_SESSION_MT);

    /* A given socket is the session's at once: an error raised below
     * (a bad option) closes it with the session's __gc, and so does every
     * failure returned. */
    lua_getfield(L, CONNECT_OPTS, "fd");
    if (lua_isnil(L, -1))
        given_fd = -1;
    else if (lua_isuserdata(L, -1))
        given_fd = cutover_socket_take(L, -1);
    else
        return luaL_error(L, "ssh.connect: fd must be a socket from "
                          "proc.connect_command or session:tunnel, not %s",
                          luaL_typename(L, -1));
    s->fd = given_fd;
    lua_getfield(L, CONNECT_OPTS, "host");
    snprintf(s->host, sizeof s->host, "%s", luaL_checkstring(L, -1));
    lua_getfield(L, CONNECT_OPTS, "port");
    s->port = (int)luaL_optinteger(L, -1, 22);
    lua_getfield(L, CONNECT_OPTS, "timeout");
    timeout = luaL_optnumber(L, -1, 30);
    lua_getfield(L, CONNECT_OPTS, "known_hosts");
    luaL_checkstring(L, -1);
    lua_getfield(L, CONNECT_OPTS, "user");
    luaL_checkstring(L, -1);
    lua_getfield(L, CONNECT_OPTS, "ignore_interrupts");
    s->ignore_interrupts = lua_toboolean(L, -1);
    lua_pop(L, 7);
    s->deadline = loop_now() + timeout;
    rc = check_key_files(L, s);
    if (rc > 0)
        return rc;

    if (!ssh_ready) {
        if (libssh2_init(0) != 0)
            return luaL_error(L, "ssh: libssh2_init failed");
        ssh_ready = 1;
    }
    s->session = libssh2_session_init_ex(NULL, NULL, NULL, s);
    if (s->session == NULL)
        return ssh_fail(L, s, "unreachable", "%s: cannot create an SSH "
                        "session", s->host);
    libssh2_session_callback_set(s->session, LIBSSH2_CALLBACK_RECV,
                                 (void *)recv_unless_dry);
    libssh2_session_set_blocking(s->session, 0);
    lua_getfield(L, CONNECT_OPTS, "known_hosts");
    ssh_hostkey_load(s, lua_tostring(L, -1));
    lua_pop(L, 1);

    if (given_fd >= 0) {
        s->phase = PH_HANDSHAKE;
        return connect_step(L, LUA_OK, 0);
    }
    rc = open_socket(L, s);
    if (rc >= 0)
        return rc;
    return connect_step(L, LUA_OK, 0);
}
