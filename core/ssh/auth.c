/*
 * auth.c: the authentication phases of connect, in order: the methods
 * the server accepts (PH_AUTHLIST), then each key file (PH_AUTH_KEY),
 * the agent's identities (PH_AUTH_AGENT) and the password, once
 * (PH_AUTH_PASSWORD).  Each returns as a phase function (ssh_internal.h):
 * STEP_NEXT, STEP_WAIT, or the results of ssh_fail.  The password is
 * never copied into a message; what was tried is named instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ssh_internal.h"

/* A private key is a few KiB (a 16384-bit RSA key, about 12 KiB). */
#define SSH_MAX_KEY_FILE 65536

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
const char *ssh_key_file_problem(const char *path, char *why, size_t n)
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

int ssh_auth_list(lua_State *L, struct ssh_session *s, const char *user)
{
    s->auth_methods = libssh2_userauth_list(s->session, user,
                                            (unsigned)strlen(user));
    if (s->auth_methods != NULL) {
        s->phase = PH_AUTH_KEY;
        return STEP_NEXT;
    }
    if (libssh2_userauth_authenticated(s->session)) {
        s->phase = PH_READY;  /* "none" was enough */
        return STEP_NEXT;
    }
    if (libssh2_session_last_errno(s->session) == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    return ssh_fail(L, s, "unreachable", "%s: %s", s->host,
                    ssh_last_error(s));
}

/* libssh2 reports any failure to read a key file as LIBSSH2_ERROR_FILE,
 * and errno does not survive it: open the file again to learn why.
 * 0 when it opens now. */
static int key_open_errno(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = errno;

    if (fd < 0)
        return err;
    close(fd);
    return 0;
}

/* One key file per call: options.keys[key_index + 1]. */
int ssh_auth_key(lua_State *L, struct ssh_session *s, const char *user)
{
    const char *path;
    int rc;

    if (s->key_index >= s->key_count ||
        strstr(s->auth_methods, "publickey") == NULL) {
        s->phase = PH_AUTH_AGENT;
        return STEP_NEXT;
    }
    lua_getfield(L, CONNECT_OPTS, "keys");
    lua_rawgeti(L, -1, s->key_index + 1);
    path = lua_tostring(L, -1);
    lua_pop(L, 2);  /* still held by the options table */
    if (path == NULL) {
        s->key_index++;
        return STEP_NEXT;
    }
    /* an unencrypted ed25519 key is signed here; any other, by libssh2 */
    if (!s->key_read) {
        ssh_keyfile_load(path, &s->key);
        s->key_read = 1;
    }
    if (s->key.ready)
        rc = ssh_keyfile_userauth(s->session, user, &s->key);
    else
        rc = libssh2_userauth_publickey_fromfile_ex(
            s->session, user, (unsigned)strlen(user), NULL, path, NULL);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    ssh_keyfile_clear(&s->key);
    s->key_read = 0;
    if (rc == 0) {
        s->phase = PH_READY;
        return STEP_NEXT;
    }
    if (rc == LIBSSH2_ERROR_FILE) {
        int err = key_open_errno(path);

        /* the controller is out of descriptors: not the key's fault, and
         * not an authentication failure */
        if (err == EMFILE || err == ENFILE)
            return ssh_fail(L, s, "unreachable", "%s: cannot open the key "
                            "file %s: %s (the controller's limit of open "
                            "files: ulimit -n; or fewer --forks)", s->host,
                            path, strerror(err));
        add_tried(s, lua_pushfstring(L, "key %s (cannot read it: %s)", path,
                                     err != 0 ? strerror(err)
                                              : "encrypted, or not a key "
                                                "libssh2 reads"));
        lua_pop(L, 1);
        s->key_index++;
        return STEP_NEXT;
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
        return ssh_fail(L, s, "unreachable", "%s: connection lost while "
                        "authenticating: %s", s->host, ssh_last_error(s));
    s->key_index++;
    return STEP_NEXT;
}

/* Connects to the agent and takes its first identity; 0, or -1 with
 * the reason added to what was tried. */
static int agent_open(struct ssh_session *s)
{
    s->agent = libssh2_agent_init(s->session);
    if (s->agent == NULL || libssh2_agent_connect(s->agent) != 0 ||
        libssh2_agent_list_identities(s->agent) != 0) {
        add_tried(s, "agent (not available)");
        return -1;
    }
    s->agent_key = NULL;
    if (libssh2_agent_get_identity(s->agent, &s->agent_key, NULL) != 0) {
        add_tried(s, "agent (no keys)");
        return -1;
    }
    return 0;
}

/* One agent identity per call. */
int ssh_auth_agent(lua_State *L, struct ssh_session *s, const char *user)
{
    int use_agent;
    int rc;

    lua_getfield(L, CONNECT_OPTS, "agent");
    use_agent = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!use_agent || strstr(s->auth_methods, "publickey") == NULL ||
        (s->agent == NULL && agent_open(s) != 0)) {
        s->phase = PH_AUTH_PASSWORD;
        return STEP_NEXT;
    }
    rc = libssh2_agent_userauth(s->agent, user, s->agent_key);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    if (rc == 0) {
        s->phase = PH_READY;
        return STEP_NEXT;
    }
    s->agent_keys++;
    if (s->agent_key->comment != NULL &&
        strstr(s->agent_key->comment, "rsa") != NULL)
        s->rsa_refused = 1;
    if (libssh2_agent_get_identity(s->agent, &s->agent_key,
                                   s->agent_key) != 0) {
        add_tried(s, lua_pushfstring(L, "agent (%d key%s)", s->agent_keys,
                                     s->agent_keys == 1 ? "" : "s"));
        lua_pop(L, 1);
        s->phase = PH_AUTH_PASSWORD;
    }
    return STEP_NEXT;
}

/* Nothing left to try: the failure names what the server accepts and
 * what was tried (never the password itself). */
static int auth_failed(lua_State *L, struct ssh_session *s,
                       const char *user)
{
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

int ssh_auth_password(lua_State *L, struct ssh_session *s,
                      const char *user)
{
    const char *password;
    int rc;

    lua_getfield(L, CONNECT_OPTS, "password");
    password = lua_tostring(L, -1);
    lua_pop(L, 1);  /* still held by the options table */
    if (password == NULL || s->password_tried ||
        strstr(s->auth_methods, "password") == NULL)
        return auth_failed(L, s, user);
    rc = libssh2_userauth_password_ex(s->session, user,
                                      (unsigned)strlen(user), password,
                                      (unsigned)strlen(password), NULL);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return STEP_WAIT;
    s->password_tried = 1;
    if (rc == 0) {
        s->phase = PH_READY;
        return STEP_NEXT;
    }
    add_tried(s, "password");
    return STEP_NEXT;
}
