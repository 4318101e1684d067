/*
 * ssh_internal.h: what the files of cutover.core.ssh share (core/ssh/):
 *   session.c   the module's one luaL_Reg table, a session's life (close,
 *               alive, keepalive), helpers every file uses
 *   connect.c   ssh.connect: the socket and the connection state machine
 *   hostkey.c   the host-key decision against known_hosts
 *   auth.c      the authentication phases (keys, agent, password)
 *   exec.c      session:exec, a command on its own channel
 *   sftp.c      session:sftp_put
 *   tunnel.c    session:tunnel and session:pump (ProxyJump)
 *   shell.c     session:shell, a long-lived channel (the remote runner)
 * Not for use outside core/ssh/.
 *
 * Every libssh2 call that answers EAGAIN parks the host's task on the
 * session's socket (in the directions libssh2 asks for) and is repeated,
 * the same call, when the loop resumes it: each primitive is one step
 * function that walks a named state enum.
 */
#ifndef CUTOVER_SSH_INTERNAL_H
#define CUTOVER_SSH_INTERNAL_H

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "cutover.h"
#include "knownhosts.h"

#define SSH_SESSION_MT "cutover.ssh.session"
#define SSH_EXEC_MT "cutover.ssh.exec"
#define SSH_PUT_MT "cutover.ssh.put"
#define SSH_SHELL_MT "cutover.ssh.shell"

#define SSH_MAX_TUNNELS 64
#define SSH_LINE_AHEAD 64  /* bytes of the identification line read at once */
_Static_assert(SSH_LINE_AHEAD <= 255, "line_ahead_len and _pos are unsigned char");
#define SSH_TUNNEL_BUF 32768

/* A direct-tcpip channel through this session, joined to one end of a
 * socketpair whose other end another session uses as its socket. */
struct ssh_tunnel {
    LIBSSH2_CHANNEL *channel;     /* owned */
    int fd;                       /* our end; owned */
    char up[SSH_TUNNEL_BUF];      /* from fd, to the channel */
    size_t up_len;
    char down[SSH_TUNNEL_BUF];    /* from the channel, to fd */
    size_t down_len;
    int local_eof;
    int sent_eof;
    int channel_eof;
    int shut;
    int dead;
};

/* Where a session is: connect walks PH_CONNECT .. PH_READY. */
enum ssh_phase {
    PH_CONNECT,        /* TCP connect in progress */
    PH_HANDSHAKE,      /* SSH key exchange */
    PH_HOSTKEY,        /* the host-key decision (hostkey.c) */
    PH_AUTHLIST,       /* which methods the server accepts */
    PH_AUTH_KEY,       /* key files, one by one */
    PH_AUTH_AGENT,     /* ssh-agent identities, one by one */
    PH_AUTH_PASSWORD,  /* the password, once */
    PH_READY,          /* authenticated: exec, sftp, tunnels */
    PH_DEAD            /* closed */
};

/* keyfile.c: an unencrypted OpenSSH ed25519 key, signed with libsodium
 * (libssh2's own reading of key files costs millions of instructions). */
struct ssh_keyfile {
    int ready;
    unsigned char secret[64];       /* seed and public key; wiped by clear */
    unsigned char public_blob[51];  /* string "ssh-ed25519", string key */
    void *abstract;                 /* libssh2's handle: points here */
};
int ssh_keyfile_load(const char *path, struct ssh_keyfile *k);
void ssh_keyfile_clear(struct ssh_keyfile *k);
int ssh_keyfile_userauth(LIBSSH2_SESSION *session, const char *user,
                         struct ssh_keyfile *k);

struct ssh_session {
    int fd;
    LIBSSH2_SESSION *session;     /* owned; freed by __gc / close */
    LIBSSH2_AGENT *agent;         /* owned */
    struct libssh2_agent_publickey *agent_key;
    enum ssh_phase phase;
    struct pollfd pfd;
    double deadline;
    double kh_lock_since;         /* known_hosts locked elsewhere since
                                     (loop_now), 0 when not waiting */
    int busy;                     /* an exec is using the session */
    int key_index;
    int key_count;
    struct ssh_keyfile key;       /* keys[key_index] when ours to sign */
    int key_read;                 /* keys[key_index] was read for that */
    int agent_keys;
    int rsa_refused;
    int password_tried;
    char *auth_methods;           /* libssh2's, not owned */
    char tried[512];              /* "key ~/.ssh/id_ed25519, agent, ..." */
    char host[256];
    int port;
    struct ssh_tunnel *tunnels[SSH_MAX_TUNNELS];  /* owned */
    int tunnel_count;
    void *pump_task;      /* the parked pump task (loop_wake), or NULL */
    LIBSSH2_SFTP *sftp;           /* owned; NULL until first used */
    int sftp_unavailable;         /* the server has no SFTP subsystem */
    int ignore_interrupts;        /* connecting to stop a command (Ctrl-C) */
    struct kh_host known;         /* the host's known_hosts lines; owned */
    int known_unreadable;         /* kh_load failed: known_errno, _problem */
    int known_errno;
    const char *known_problem;
    int recv_dry;                 /* the last recv found nothing ... */
    unsigned long recv_dry_turn;  /* ... in this loop_poll_count() */
    int recv_dry_answers;         /* EAGAINs given since, without a recv */
    unsigned char line_ahead[SSH_LINE_AHEAD];  /* the server's identification
                                     line, read ahead (connect.c) */
    unsigned char line_ahead_len, line_ahead_pos;
};

/* Stack slots of ssh.connect while it runs. */
enum { CONNECT_OPTS = 1, CONNECT_SESSION = 2 };

/* What a phase function of connect asks of the state machine: a result
 * count >= 0 ends ssh.connect with that many results. */
enum {
    STEP_NEXT = -1,          /* go round again (the phase may have moved) */
    STEP_WAIT = -2,          /* wait until libssh2 can go on */
    STEP_PAUSE = -3          /* wait a moment (SSH_PAUSE s), no socket:
                                a file lock held by another program */
};
#define SSH_PAUSE 0.05
/* How long a host waits for known_hosts' lock before it fails. */
#define SSH_KNOWN_HOSTS_LOCK_WAIT 10

/* session.c */
void ssh_close_session(struct ssh_session *s);
int ssh_fail(lua_State *L, struct ssh_session *s, const char *code,
             const char *fmt, ...);
const char *ssh_last_error(struct ssh_session *s);
void ssh_prepare_wait(struct ssh_session *s, int dirs);

/*
 * In a step function: wait until libssh2 can go on.  Parks the task (the
 * step function is resumed as continuation) or, outside a task, blocks
 * and falls through so the caller's loop goes round again.
 */
#define WAIT_OR_PARK(L, s, dirs, k)                                      \
    do {                                                                 \
        ssh_prepare_wait((s), (dirs));                                   \
        if (loop_can_park(L))                                            \
            return loop_park((L), &(s)->pfd, 1, (s)->deadline, 0, (k));  \
        loop_block((L), &(s)->pfd, 1, (s)->deadline);                    \
    } while (0)

/* connect.c */
int ssh_connect(lua_State *L);

/* hostkey.c */
void ssh_hostkey_load(struct ssh_session *s, const char *known_hosts);
int ssh_hostkey_decide(lua_State *L, struct ssh_session *s,
                       const char *known_hosts);

/* auth.c: each is a phase of connect (returns as a phase function). */
const char *ssh_key_file_problem(const char *path, char *why, size_t n);
int ssh_auth_list(lua_State *L, struct ssh_session *s, const char *user);
int ssh_auth_key(lua_State *L, struct ssh_session *s, const char *user);
int ssh_auth_agent(lua_State *L, struct ssh_session *s, const char *user);
int ssh_auth_password(lua_State *L, struct ssh_session *s,
                      const char *user);

/* exec.c */
int ssh_session_exec(lua_State *L);
int ssh_exec_gc(lua_State *L);

/* sftp.c */
int ssh_session_sftp_put(lua_State *L);
int ssh_put_gc(lua_State *L);

/* shell.c */
int ssh_session_shell(lua_State *L);
void ssh_shell_register(lua_State *L);

/* tunnel.c */
void ssh_free_tunnel(struct ssh_session *s, int i);
int ssh_session_tunnel(lua_State *L);
int ssh_session_pump(lua_State *L);
int ssh_session_tunnels(lua_State *L);

#endif
