/*
 * connect.c: ssh.connect and, for now, the rest of the module's step
 * functions (see ssh_internal.h for the files of cutover.core.ssh).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ssh_internal.h"

#define SSH_DEFAULT_MAX_OUTPUT (8 * 1024 * 1024)
/* A private key is a few KiB (a 16384-bit RSA key, about 12 KiB). */
#define SSH_MAX_KEY_FILE 65536

static int ssh_ready;

static void add_tried(struct ssh_session *s, const char *what)
{
    size_t used = strlen(s->tried);

    snprintf(s->tried + used, sizeof s->tried - used, "%s%s",
             used > 0 ? ", " : "", what);
}

/* Is this private key an RSA key?  (libssh2 1.10 signs RSA with SHA-1.) */
static int key_is_rsa(const char *path)
{
    char head[16384];
    FILE *f = fopen(path, "r");
    size_t n;
    char *body;
    unsigned char *raw;
    size_t raw_len = 0;
    int rsa = 0;

    if (f == NULL)
        return 0;
    n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = '\0';
    if (strstr(head, "BEGIN RSA PRIVATE KEY") != NULL)
        return 1;
    body = strstr(head, "BEGIN OPENSSH PRIVATE KEY-----");
    if (body == NULL)
        return 0;
    body += strlen("BEGIN OPENSSH PRIVATE KEY-----");
    raw = malloc(sizeof head);
    if (raw == NULL)
        return 0;
    if (sodium_base642bin(raw, sizeof head, body, strlen(body), "\r\n",
                          &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0 ||
        raw_len > 0) {
        rsa = memmem(raw, raw_len, "ssh-rsa", 7) != NULL;
    }
    free(raw);
    return rsa;
}

/*
 * Why a key file cannot be used, or NULL when it is a regular file of at
 * most SSH_MAX_KEY_FILE bytes.  libssh2 reads a key with a plain loop to
 * end of file: /dev/zero never ends (100% CPU, deaf to signals), and
 * opening a FIFO blocks until someone writes to it.  stat() (following
 * links, as a key may be one) opens nothing, so the check cannot hang or
 * disturb a device.
 */
static const char *key_file_problem(const char *path, char *why, size_t n)
{
    struct stat st;
    const char *kind = NULL;

    if (stat(path, &st) != 0)
        return NULL;  /* missing: libssh2 reports it, the next key is tried */
    if (S_ISCHR(st.st_mode))
        kind = "a character device";
    else if (S_ISBLK(st.st_mode))
        kind = "a block device";
    else if (S_ISFIFO(st.st_mode))
        kind = "a FIFO";
    else if (S_ISSOCK(st.st_mode))
        kind = "a socket";
    else if (S_ISDIR(st.st_mode))
        kind = "a folder";
    else if (!S_ISREG(st.st_mode))
        kind = "a special file";
    if (kind != NULL) {
        snprintf(why, n, "it is %s, not a regular file", kind);
        return why;
    }
    if (st.st_size > SSH_MAX_KEY_FILE) {
        snprintf(why, n, "it is larger than %d bytes, too large for a "
                 "private key", SSH_MAX_KEY_FILE);
        return why;
    }
    return NULL;
}

static const char *hostkey_prefs(const char *known_types)
{
    /* What libssh2 1.10 can verify, in OpenSSH's order. */
    static const char *all = "ssh-ed25519,ecdsa-sha2-nistp256,"
                             "ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
                             "ssh-rsa";
    return known_types[0] != '\0' ? known_types : all;
}

static int connect_step(lua_State *L, int status, lua_KContext ctx);

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
        if (loop_now() >= s->deadline && s->phase != PH_READY)
            return ssh_fail(L, s, "timeout", "%s:%d: timed out while %s",
                        s->host, s->port,
                        s->phase == PH_CONNECT ? "connecting"
                        : s->phase == PH_HANDSHAKE ? "in the SSH handshake"
                        : "authenticating");
        if (loop_interrupts() != 0 && !s->ignore_interrupts)
            return ssh_fail(L, s, "interrupted", "%s: interrupted", s->host);
        switch (s->phase) {
        case PH_CONNECT: {
            int err = 0;
            socklen_t len = sizeof err;
            if (s->pfd.revents == 0) {
                WAIT_OR_PARK(L, s, LIBSSH2_SESSION_BLOCK_OUTBOUND,
                             connect_step);
                break;
            }
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0)
                return ssh_fail(L, s, "unreachable", "%s:%d: %s", s->host,
                            s->port, strerror(err));
            s->phase = PH_HANDSHAKE;
            break;
        }
        case PH_HANDSHAKE:
            rc = libssh2_session_handshake(s->session, s->fd);
            if (rc == LIBSSH2_ERROR_EAGAIN) {
                WAIT_OR_PARK(L, s,
                    libssh2_session_block_directions(s->session),
                    connect_step);
                break;
            }
            if (rc != 0)
                return ssh_fail(L, s, "unreachable",
                            "%s:%d: SSH handshake failed: %s", s->host,
                            s->port, ssh_last_error(s));
            s->phase = PH_HOSTKEY;
            break;
        case PH_HOSTKEY: {
            size_t len = 0;
            int type = 0;
            const char *blob = libssh2_session_hostkey(s->session, &len,
                                                       &type);
            struct kh_result kh;
            char fp[128];
            char keytype[128] = "?";
            char err[512];
            int accept_new;
            if (blob == NULL)
                return ssh_fail(L, s, "hostkey", "%s: the server sent no host "
                            "key", s->host);
            kh_fingerprint((const unsigned char *)blob, len, fp, sizeof fp);
            kh_blob_type((const unsigned char *)blob, len, keytype,
                         sizeof keytype);
            if (s->known_unreadable)
                return ssh_fail(L, s, "hostkey", "%s: cannot read %s: %s",
                            s->host, known_hosts, s->known_problem != NULL
                            ? s->known_problem : strerror(s->known_errno));
            if (kh_decide(&s->known, (const unsigned char *)blob, len,
                          &kh) != 0)
                return ssh_fail(L, s, "hostkey", "%s: the server's host key "
                            "is malformed", s->host);
            kh_host_free(&s->known);  /* decided: not needed any more */
            lua_getfield(L, CONNECT_OPTS, "accept_new");
            accept_new = lua_toboolean(L, -1);
            lua_pop(L, 1);
            lua_pushstring(L, fp);
            lua_setfield(L, CONNECT_OPTS, "fingerprint");
            if (kh.status == KH_REVOKED)
                return ssh_fail(L, s, "hostkey",
                    "%s:%d: the host key %s (%s) is marked @revoked in %s "
                    "line %d; refusing to connect", s->host, s->port, fp,
                    keytype, known_hosts, kh.line);
            if (kh.status == KH_CHANGED)
                return ssh_fail(L, s, "hostkey",
                    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"
                    "@@@@\n"
                    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!  "
                    "   @\n"
                    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"
                    "@@@@\n"
                    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
                    "Host %s port %d now offers the %s key %s,\n"
                    "which differs from the one in %s line %d.\n"
                    "cutover refuses to connect. If the host was really "
                    "reinstalled, remove that line (ssh-keygen -R '%s%s%s'"
                    " -f %s) after checking the new key out of band.",
                    s->host, s->port, keytype, fp, known_hosts, kh.line,
                    s->port == 22 ? "" : "[", s->host,
                    s->port == 22 ? "" : lua_pushfstring(L, "]:%d",
                                                         s->port),
                    known_hosts);
            if (kh.status == KH_UNKNOWN) {
                if (kh.types[0] != '\0')
                    return ssh_fail(L, s, "hostkey",
                        "%s:%d: known_hosts (%s) holds %s key(s) for this "
                        "host but the server offered %s %s; refusing",
                        s->host, s->port, known_hosts, kh.types, keytype,
                        fp);
                if (!accept_new)
                    return ssh_fail(L, s, "hostkey",
                        "%s:%d: unknown host: its %s key is %s and %s has "
                        "no line for it. Check the fingerprint out of band, "
                        "then run again with --accept-new-host-keys (or "
                        "add the key with ssh-keyscan) to trust it.",
                        s->host, s->port, keytype, fp, known_hosts);
                if (kh_append(known_hosts, s->host, s->port,
                              (const unsigned char *)blob, len, err,
                              sizeof err) != 0)
                    return ssh_fail(L, s, "hostkey", "%s: cannot record the "
                                "new host key: %s", s->host, err);
                lua_pushboolean(L, 1);
                lua_setfield(L, CONNECT_OPTS, "host_key_added");
            }
            s->phase = PH_AUTHLIST;
            break;
        }
        case PH_AUTHLIST:
            s->auth_methods = libssh2_userauth_list(s->session, user,
                                                    (unsigned)strlen(user));
            if (s->auth_methods == NULL) {
                if (libssh2_userauth_authenticated(s->session)) {
                    s->phase = PH_READY;
                    break;
                }
                if (libssh2_session_last_errno(s->session) ==
                    LIBSSH2_ERROR_EAGAIN) {
                    WAIT_OR_PARK(L, s,
                        libssh2_session_block_directions(s->session),
                        connect_step);
                    break;
                }
                return ssh_fail(L, s, "unreachable", "%s: %s", s->host,
                            ssh_last_error(s));
            }
            s->phase = PH_AUTH_KEY;
            break;
        case PH_AUTH_KEY: {
            const char *path;
            if (s->key_index >= s->key_count ||
                strstr(s->auth_methods, "publickey") == NULL) {
                s->phase = PH_AUTH_AGENT;
                break;
            }
            lua_getfield(L, CONNECT_OPTS, "keys");
            lua_rawgeti(L, -1, s->key_index + 1);
            path = lua_tostring(L, -1);
            lua_pop(L, 2);
            if (path == NULL) {
                s->key_index++;
                break;
            }
            rc = libssh2_userauth_publickey_fromfile_ex(
                s->session, user, (unsigned)strlen(user), NULL, path, NULL);
            if (rc == LIBSSH2_ERROR_EAGAIN) {
                WAIT_OR_PARK(L, s,
                    libssh2_session_block_directions(s->session),
                    connect_step);
                break;
            }
            if (rc == 0) {
                s->phase = PH_READY;
                break;
            }
            if (key_is_rsa(path) &&
                (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
                 rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED))
                s->rsa_refused = 1;
            add_tried(s, lua_pushfstring(L, "key %s", path));
            lua_pop(L, 1);
            if (rc == LIBSSH2_ERROR_SOCKET_SEND ||
                rc == LIBSSH2_ERROR_SOCKET_DISCONNECT ||
                rc == LIBSSH2_ERROR_SOCKET_RECV)
                return ssh_fail(L, s, "unreachable", "%s: connection lost "
                            "while authenticating: %s", s->host,
                            ssh_last_error(s));
            s->key_index++;
            break;
        }
        case PH_AUTH_AGENT: {
            int use_agent;
            lua_getfield(L, CONNECT_OPTS, "agent");
            use_agent = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (!use_agent || strstr(s->auth_methods, "publickey") == NULL) {
                s->phase = PH_AUTH_PASSWORD;
                break;
            }
            if (s->agent == NULL) {
                s->agent = libssh2_agent_init(s->session);
                if (s->agent == NULL || libssh2_agent_connect(s->agent) != 0
                    || libssh2_agent_list_identities(s->agent) != 0) {
                    add_tried(s, "agent (not available)");
                    s->phase = PH_AUTH_PASSWORD;
                    break;
                }
                s->agent_key = NULL;
                rc = libssh2_agent_get_identity(s->agent, &s->agent_key,
                                                NULL);
                if (rc != 0) {
                    add_tried(s, "agent (no keys)");
                    s->phase = PH_AUTH_PASSWORD;
                    break;
                }
            }
            rc = libssh2_agent_userauth(s->agent, user, s->agent_key);
            if (rc == LIBSSH2_ERROR_EAGAIN) {
                WAIT_OR_PARK(L, s,
                    libssh2_session_block_directions(s->session),
                    connect_step);
                break;
            }
            if (rc == 0) {
                s->phase = PH_READY;
                break;
            }
            s->agent_keys++;
            if (s->agent_key->comment != NULL &&
                strstr(s->agent_key->comment, "rsa") != NULL)
                s->rsa_refused = 1;
            rc = libssh2_agent_get_identity(s->agent, &s->agent_key,
                                            s->agent_key);
            if (rc != 0) {
                add_tried(s, lua_pushfstring(L, "agent (%d key%s)",
                                             s->agent_keys,
                                             s->agent_keys == 1 ? "" : "s"));
                lua_pop(L, 1);
                s->phase = PH_AUTH_PASSWORD;
            }
            break;
        }
        case PH_AUTH_PASSWORD: {
            const char *password;
            lua_getfield(L, CONNECT_OPTS, "password");
            password = lua_tostring(L, -1);
            lua_pop(L, 1);  /* still held by the options table */
            if (password == NULL || s->password_tried ||
                strstr(s->auth_methods, "password") == NULL) {
                char msg[900];
                snprintf(msg, sizeof msg,
                    "%s@%s:%d: authentication failed (server accepts: %s; "
                    "tried: %s)", user, s->host, s->port, s->auth_methods,
                    s->tried[0] != '\0' ? s->tried : "nothing");
                if (s->rsa_refused)
                    return ssh_fail(L, s, "auth", "%s. The server refused an "
                        "RSA key: this build's libssh2 (1.10) signs RSA "
                        "keys only with SHA-1 (ssh-rsa), which current "
                        "OpenSSH refuses. Use an ed25519 key "
                        "(ssh-keygen -t ed25519).", msg);
                return ssh_fail(L, s, "auth", "%s", msg);
            }
            rc = libssh2_userauth_password_ex(s->session, user,
                                              (unsigned)strlen(user),
                                              password,
                                              (unsigned)strlen(password),
                                              NULL);
            if (rc == LIBSSH2_ERROR_EAGAIN) {
                WAIT_OR_PARK(L, s,
                    libssh2_session_block_directions(s->session),
                    connect_step);
                break;
            }
            s->password_tried = 1;
            if (rc == 0) {
                s->phase = PH_READY;
                break;
            }
            add_tried(s, "password");
            break;
        }
        case PH_READY:
            libssh2_keepalive_config(s->session, 1, 15);
            lua_pushvalue(L, CONNECT_SESSION);
            lua_getfield(L, CONNECT_OPTS, "fingerprint");
            lua_getfield(L, CONNECT_OPTS, "host_key_added");
            return 3;
        case PH_DEAD:
            return ssh_fail(L, s, "closed", "%s: session closed", s->host);
        }
    }
}

/*
 * ssh.connect{host=, port=, user=, known_hosts=, accept_new=, keys={...},
 *             agent=, password=, timeout=, fd=, ignore_interrupts=}
 *   -> session, fingerprint, host_key_added | nil, message, code
 * code: "unreachable", "timeout", "hostkey", "auth", "interrupted".
 * fd: an already connected socket (a ProxyJump tunnel); owned by the
 * session from here on.
 */
int ssh_connect(lua_State *L)
{
    struct ssh_session *s;
    const char *host;
    lua_Integer port;
    lua_Number timeout;
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    char service[16];
    int rc;
    int given_fd;
    const char *known_hosts;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    s = lua_newuserdatauv(L, sizeof *s, 0);  /* 2, before any resource */
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->phase = PH_CONNECT;
    luaL_setmetatable(L, SSH_SESSION_MT);

    lua_getfield(L, 1, "host");
    host = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "port");
    port = luaL_optinteger(L, -1, 22);
    lua_getfield(L, 1, "timeout");
    timeout = luaL_optnumber(L, -1, 30);
    lua_getfield(L, 1, "fd");
    given_fd = (int)luaL_optinteger(L, -1, -1);
    lua_getfield(L, 1, "known_hosts");
    known_hosts = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "user");
    luaL_checkstring(L, -1);
    lua_getfield(L, 1, "ignore_interrupts");
    s->ignore_interrupts = lua_toboolean(L, -1);
    lua_pop(L, 7);
    snprintf(s->host, sizeof s->host, "%s", host);
    s->port = (int)port;
    s->deadline = loop_now() + timeout;
    lua_getfield(L, 1, "keys");
    s->key_count = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
    /* Every key file is checked before anything connects (see
     * key_file_problem): a bad one is the user's error, said plainly. */
    for (rc = 1; rc <= s->key_count; rc++) {
        char why[160];
        const char *path;
        lua_rawgeti(L, -1, rc);
        path = lua_tostring(L, -1);
        if (path != NULL && key_file_problem(path, why, sizeof why)) {
            if (given_fd >= 0)
                close(given_fd);
            lua_getfield(L, 1, "user");
            return ssh_fail(L, s, "auth", "%s@%s:%d: cannot use the identity "
                        "file %s: %s", lua_tostring(L, -1), host,
                        (int)port, path, why);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    if (!ssh_ready) {
        if (libssh2_init(0) != 0)
            return luaL_error(L, "ssh: libssh2_init failed");
        ssh_ready = 1;
    }
    s->session = libssh2_session_init_ex(NULL, NULL, NULL, NULL);
    if (s->session == NULL) {
        if (given_fd >= 0)
            close(given_fd);
        return ssh_fail(L, s, "unreachable", "%s: cannot create an SSH "
                    "session", host);
    }
    libssh2_session_set_blocking(s->session, 0);
    /* known_hosts is read once, here: the key types it holds for this
     * host are asked for first, and the same lines decide the server's
     * key after the handshake (an unreadable file is refused there). */
    if (kh_load(known_hosts, host, (int)port, &s->known,
                &s->known_problem) == 0) {
        libssh2_session_method_pref(s->session, LIBSSH2_METHOD_HOSTKEY,
                                    hostkey_prefs(s->known.types));
    } else {
        s->known_unreadable = 1;
        s->known_errno = errno;
    }

    if (given_fd >= 0) {
        s->fd = given_fd;
        s->phase = PH_HANDSHAKE;
        return connect_step(L, LUA_OK, 0);
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", (int)port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return ssh_fail(L, s, "unreachable", "%s: %s", host, gai_strerror(rc));
    s->fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
                   SOCK_CLOEXEC, res->ai_protocol);
    if (s->fd < 0) {
        freeaddrinfo(res);
        return ssh_fail(L, s, "unreachable", "%s: socket: %s", host,
                    strerror(errno));
    }
    {
        /* SSH is many small packets each way: no Nagle delays. */
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    rc = connect(s->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS)
        return ssh_fail(L, s, "unreachable", "%s:%d: %s", host, (int)port,
                    strerror(errno));
    s->pfd.revents = rc == 0 ? POLLOUT : 0;
    if (rc == 0)
        s->phase = PH_HANDSHAKE;
    return connect_step(L, LUA_OK, 0);
}

/* ---------------------------------------------------------------- exec */

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
    int phase;                    /* 0 open, 1 exec, 2 io, 3 close, 4 done */
    size_t stdin_off;
    int stdin_done;
    struct ssh_buf out;
    struct ssh_buf err;
    double started;
    double deadline;
    int timed_out;
    int interrupted;
    unsigned interrupts_at_start;
    int uninterruptible;          /* the command that stops another one */
};

/* Stack of exec: 1 session, 2 command, 3 options, 4 exec userdata. */
enum { EXEC_SESSION = 1, EXEC_COMMAND = 2, EXEC_OPTS = 3, EXEC_UD = 4 };

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

static int exec_fail(lua_State *L, struct ssh_exec *e, const char *code,
                     const char *msg) {
    struct ssh_session *s = e->s;
    char text[700];

    snprintf(text, sizeof text, "%s", msg);
    e->channel = NULL;  /* freed with the session */
    s->busy = 0;
    ssh_close_session(s);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", s->host, text);
    lua_pushstring(L, code);
    lua_pushinteger(L, e->phase);
    return 4;
}

static int exec_step(lua_State *L, int status, lua_KContext ctx)
{
    struct ssh_exec *e = luaL_checkudata(L, EXEC_UD, SSH_EXEC_MT);
    struct ssh_session *s = e->s;
    size_t cmd_len;
    const char *cmd = lua_tolstring(L, EXEC_COMMAND, &cmd_len);
    size_t stdin_len = 0;
    const char *stdin_data;
    char chunk[32768];
    ssize_t n;
    int rc;
    int got_stdout_eagain;

    (void)status;
    (void)ctx;
    lua_getfield(L, EXEC_OPTS, "stdin");
    stdin_data = lua_tolstring(L, -1, &stdin_len);
    lua_pop(L, 1);

    for (;;) {
        double now = loop_now();
        if (s->session == NULL)
            return exec_fail(L, e, "connection", "session closed");
        if (e->phase < 4 && e->deadline > 0 && now >= e->deadline) {
            e->timed_out = 1;
            break;
        }
        if (e->phase < 4 && !e->uninterruptible &&
            loop_interrupts() != e->interrupts_at_start) {
            e->interrupted = 1;
            break;
        }
        switch (e->phase) {
        case 0:
            e->channel = libssh2_channel_open_session(s->session);
            if (e->channel == NULL) {
                if (libssh2_session_last_errno(s->session) ==
                    LIBSSH2_ERROR_EAGAIN)
                    goto wait;
                return exec_fail(L, e, "connection", ssh_last_error(s));
            }
            e->phase = 1;
            break;
        case 1:
            rc = libssh2_channel_process_startup(e->channel, "exec", 4, cmd,
                                                 (unsigned)cmd_len);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                goto wait;
            if (rc != 0)
                return exec_fail(L, e, "connection", ssh_last_error(s));
            e->phase = 2;
            break;
        case 2:
            while (!e->stdin_done && e->stdin_off < stdin_len) {
                n = libssh2_channel_write(e->channel,
                                          stdin_data + e->stdin_off,
                                          stdin_len - e->stdin_off);
                if (n == LIBSSH2_ERROR_EAGAIN)
                    break;
                if (n < 0) {
                    e->stdin_done = 1;  /* the program closed its input */
                    break;
                }
                e->stdin_off += (size_t)n;
            }
            if (!e->stdin_done && e->stdin_off >= stdin_len) {
                rc = libssh2_channel_send_eof(e->channel);
                if (rc == 0 || rc != LIBSSH2_ERROR_EAGAIN)
                    e->stdin_done = 1;
            }
            got_stdout_eagain = 0;
            for (;;) {
                n = libssh2_channel_read(e->channel, chunk, sizeof chunk);
                if (n > 0) {
                    buf_add(&e->out, chunk, (size_t)n);
                    continue;
                }
                if (n == LIBSSH2_ERROR_EAGAIN)
                    got_stdout_eagain = 1;
                else if (n < 0)
                    return exec_fail(L, e, "connection", ssh_last_error(s));
                break;
            }
            for (;;) {
                n = libssh2_channel_read_stderr(e->channel, chunk,
                                                sizeof chunk);
                if (n > 0) {
                    buf_add(&e->err, chunk, (size_t)n);
                    continue;
                }
                if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
                    return exec_fail(L, e, "connection", ssh_last_error(s));
                break;
            }
            if (libssh2_channel_eof(e->channel)) {
                e->phase = 3;
                break;
            }
            (void)got_stdout_eagain;
            goto wait;
        case 3:
            rc = libssh2_channel_close(e->channel);
            if (rc == 0)
                rc = libssh2_channel_wait_closed(e->channel);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                goto wait;
            if (rc != 0)
                return exec_fail(L, e, "connection", ssh_last_error(s));
            e->phase = 4;
            break;
        case 4:
            goto done;
        }
        continue;
wait:
        s->deadline = e->deadline;
        WAIT_OR_PARK(L, s, libssh2_session_block_directions(s->session),
                     exec_step);
    }
done:
    lua_createtable(L, 0, 12);
    if (e->phase == 4) {
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
    struct ssh_session *s = luaL_checkudata(L, 1, SSH_SESSION_MT);
    struct ssh_exec *e;
    lua_Integer max_output;
    lua_Number timeout;

    luaL_checkstring(L, 2);
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    if (s->phase != PH_READY) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: not connected", s->host);
        lua_pushliteral(L, "connection");
        lua_pushinteger(L, 0);
        return 4;
    }
    if (s->busy)
        return luaL_error(L, "ssh: session to %s is already running a "
                          "command", s->host);
    lua_getfield(L, 3, "max_output");
    max_output = luaL_optinteger(L, -1, SSH_DEFAULT_MAX_OUTPUT);
    lua_getfield(L, 3, "timeout");
    timeout = luaL_optnumber(L, -1, 0);
    lua_pop(L, 2);
    e = lua_newuserdatauv(L, sizeof *e, 1);  /* 4 */
    memset(e, 0, sizeof *e);
    luaL_setmetatable(L, SSH_EXEC_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, 4, 1);              /* keeps the session alive */
    e->s = s;
    e->out.max = e->err.max = max_output > 0 ? (size_t)max_output : 0;
    e->started = loop_now();
    e->deadline = timeout > 0 ? e->started + timeout : 0;
    e->interrupts_at_start = loop_interrupts();
    lua_getfield(L, 3, "uninterruptible");
    e->uninterruptible = lua_toboolean(L, -1);
    lua_pop(L, 1);
    s->busy = 1;
    return exec_step(L, LUA_OK, 0);
}
