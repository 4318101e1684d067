/*
 * hostkey.c: the host-key decision, made in C and failing closed.
 *
 * known_hosts is read once per connection, before the handshake
 * (ssh_hostkey_load): the key types it holds for the host are asked for
 * first, so a host with an ed25519 line is not refused for offering
 * ECDSA first.  After the handshake the same lines decide
 * (ssh_hostkey_decide): the server's key must match; an unknown host is
 * refused unless the caller asked to trust new hosts, and then only a
 * host with no line at all; a changed key and an @revoked key are always
 * refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ssh_internal.h"

/* What libssh2 1.10 can verify, in OpenSSH's order. */
static const char *hostkey_prefs(const char *known_types)
{
    static const char *all = "ssh-ed25519,ecdsa-sha2-nistp256,"
                             "ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
                             "ssh-rsa";
    return known_types[0] != '\0' ? known_types : all;
}

/* Reads the host's lines and sets the key types to ask for.  An
 * unreadable file is remembered and refused after the handshake. */
void ssh_hostkey_load(struct ssh_session *s, const char *known_hosts)
{
    if (kh_load(known_hosts, s->host, s->port, &s->known,
                &s->known_problem) == 0) {
        libssh2_session_method_pref(s->session, LIBSSH2_METHOD_HOSTKEY,
                                    hostkey_prefs(s->known.types));
    } else {
        s->known_unreadable = 1;
        s->known_errno = errno;
    }
}

/* The server's key, as the messages name it. */
struct offered {
    const unsigned char *blob;
    size_t len;
    char fp[128];
    char type[128];
};

static int refuse_changed(lua_State *L, struct ssh_session *s,
                          const struct offered *k, const char *known_hosts,
                          int line)
{
    return ssh_fail(L, s, "hostkey",
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
        "Host %s port %d now offers the %s key %s,\n"
        "which differs from the one in %s line %d.\n"
        "cutover refuses to connect. If the host was really"
        " reinstalled, remove that line (ssh-keygen -R '%s%s%s' -f %s)"
        " after checking the new key out of band.",
        s->host, s->port, k->type, k->fp, known_hosts, line,
        s->port == 22 ? "" : "[", s->host,
        s->port == 22 ? "" : lua_pushfstring(L, "]:%d", s->port),
        known_hosts);
}

/* No line holds this key: refused, or trusted and recorded when the
 * caller accepts new hosts and the host has no line at all. */
static int unknown_host(lua_State *L, struct ssh_session *s,
                        const struct offered *k, const char *known_hosts,
                        const char *known_types)
{
    char err[512];
    int accept_new;
    int rc;

    if (known_types[0] != '\0')
        return ssh_fail(L, s, "hostkey",
            "%s:%d: known_hosts (%s) holds %s key(s) for this host but "
            "the server offered %s %s; refusing", s->host, s->port,
            known_hosts, known_types, k->type, k->fp);
    lua_getfield(L, CONNECT_OPTS, "accept_new");
    accept_new = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!accept_new)
        return ssh_fail(L, s, "hostkey",
            "%s:%d: unknown host: its %s key is %s and %s has no line for "
            "it. Check the fingerprint out of band, then run again with "
            "--accept-new-host-keys (or add the key with ssh-keyscan) to "
            "trust it.", s->host, s->port, k->type, k->fp, known_hosts);
    rc = kh_append(known_hosts, s->host, s->port, k->blob, k->len,
                   s->kh_lock_since > 0, err, sizeof err);
    if (rc == KH_APPEND_LOCKED) {
        /* another program (another cutover run) is writing the file:
         * other hosts go on while this one looks again in a moment.
         * options.on_lock_wait (once): the caller gives up what it
         * holds for the handshake (its place among those that may run
         * at once), so waiting hosts do not hold up the others. */
        if (s->kh_lock_since == 0) {
            s->kh_lock_since = loop_now();
            lua_getfield(L, CONNECT_OPTS, "on_lock_wait");
            if (lua_isfunction(L, -1)) {
                if (cutover_pcall(L, 0, 0) != LUA_OK)
                    return ssh_fail(L, s, "hostkey", "%s: %s", s->host,
                                    lua_tostring(L, -1));
            } else {
                lua_pop(L, 1);
            }
        }
        if (loop_now() - s->kh_lock_since < SSH_KNOWN_HOSTS_LOCK_WAIT)
            return STEP_PAUSE;
        return ssh_fail(L, s, "hostkey", "%s: cannot record the new host "
                        "key: another program has held the lock on %s for "
                        "%d s", s->host, known_hosts,
                        SSH_KNOWN_HOSTS_LOCK_WAIT);
    }
    if (rc != 0)
        return ssh_fail(L, s, "hostkey", "%s: cannot record the new host "
                        "key: %s", s->host, err);
    s->kh_lock_since = 0;
    lua_pushboolean(L, 1);
    lua_setfield(L, CONNECT_OPTS, "host_key_added");
    return STEP_NEXT;
}

/*
 * The PH_HOSTKEY phase of connect: STEP_NEXT (and PH_AUTHLIST) when the
 * server's key is trusted, else the results of ssh_fail.  Sets
 * options.fingerprint (and options.host_key_added) for connect's result.
 */
int ssh_hostkey_decide(lua_State *L, struct ssh_session *s,
                       const char *known_hosts)
{
    struct offered k;
    struct kh_result kh;
    int type = 0;
    int rc;

    k.blob = (const unsigned char *)libssh2_session_hostkey(s->session,
                                                            &k.len, &type);
    if (k.blob == NULL)
        return ssh_fail(L, s, "hostkey", "%s: the server sent no host key",
                        s->host);
    kh_fingerprint(k.blob, k.len, k.fp, sizeof k.fp);
    snprintf(k.type, sizeof k.type, "?");
    kh_blob_type(k.blob, k.len, k.type, sizeof k.type);
    if (s->kh_lock_since > 0) {
        /* decided before (unknown, to be added); known_hosts was locked */
        rc = unknown_host(L, s, &k, known_hosts, "");
        if (rc != STEP_NEXT)
            return rc;
        s->phase = PH_AUTHLIST;
        return STEP_NEXT;
    }
    if (s->known_unreadable)
        return ssh_fail(L, s, "hostkey", "%s: cannot read %s: %s", s->host,
                        known_hosts, s->known_problem != NULL
                        ? s->known_problem : strerror(s->known_errno));
    if (kh_decide(&s->known, k.blob, k.len, &kh) != 0)
        return ssh_fail(L, s, "hostkey", "%s: the server's host key is "
                        "malformed", s->host);
    kh_host_free(&s->known);  /* decided: not needed any more */
    lua_pushstring(L, k.fp);
    lua_setfield(L, CONNECT_OPTS, "fingerprint");
    switch (kh.status) {
    case KH_REVOKED:
        return ssh_fail(L, s, "hostkey", "%s:%d: the host key %s (%s) is "
                        "marked @revoked in %s line %d; refusing to connect",
                        s->host, s->port, k.fp, k.type, known_hosts,
                        kh.line);
    case KH_CHANGED:
        return refuse_changed(L, s, &k, known_hosts, kh.line);
    case KH_UNKNOWN:
        rc = unknown_host(L, s, &k, known_hosts, kh.types);
        if (rc != STEP_NEXT)
            return rc;
        break;
    case KH_MATCH:
        break;
    }
    s->phase = PH_AUTHLIST;
    return STEP_NEXT;
}
