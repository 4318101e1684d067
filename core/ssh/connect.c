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
