/*
 * proc.c: runs a local process and collects its output without blocking
 * the other hosts.
 *
 * The child gets its own process group so a timeout or an interrupt can
 * stop everything it started (SIGTERM, then SIGKILL after a grace time).
 * A pidfd tells the loop when it exits.  Each output stream is capped;
 * what goes past the cap is read and dropped, and the result says so.
 * All state, buffers and descriptors belong to a userdata, so a Lua error
 * or an abandoned coroutine cannot leak them (__gc kills and reaps).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cutover.h"

#define PROC_MT "cutover.proc"
#define HELPER_MT "cutover.proc.helper"
#define PROC_DEFAULT_MAX_OUTPUT (8 * 1024 * 1024)
#define PROC_KILL_GRACE 3.0   /* seconds between SIGTERM and SIGKILL */
#define PROC_DRAIN_GRACE 2.0  /* reading after exit, for daemonised kids */

extern char **environ;

struct proc_stream {
    int fd;
    char *data;           /* owned */
    size_t len;
    size_t cap;
    size_t max;
    int truncated;
};

struct proc {
    pid_t pid;
    int pidfd;
    int reaped;
    int wait_status;
    int stdin_fd;
    size_t stdin_off;     /* the data is uservalue 1 */
    struct proc_stream out;
    struct proc_stream err;
    double started;
    double deadline;      /* 0: none */
    double exited_at;
    double kill_at;       /* when to escalate to SIGKILL */
    int kill_stage;       /* 0 none, 1 TERM sent, 2 KILL sent */
    int timed_out;
    int interrupted;
    unsigned interrupts_at_start;
    struct pollfd fds[LOOP_MAX_FDS];
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int proc_gc(lua_State *L)
{
    struct proc *p = luaL_checkudata(L, 1, PROC_MT);

    if (p->pid > 0 && !p->reaped) {
        kill(-p->pid, SIGKILL);
        while (waitpid(p->pid, &p->wait_status, 0) < 0 && errno == EINTR)
            ;
        p->reaped = 1;
    }
    close_fd(&p->pidfd);
    close_fd(&p->stdin_fd);
    close_fd(&p->out.fd);
    close_fd(&p->err.fd);
    free(p->out.data);
    free(p->err.data);
    p->out.data = NULL;
    p->err.data = NULL;
    return 0;
}

/* Reads what is available; returns 1 at end of stream. */
static int stream_read(struct proc_stream *s)
{
    char chunk[65536];
    ssize_t n;

    for (;;) {
        n = read(s->fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno != EAGAIN;
        if (n == 0)
            return 1;
        if (s->len + (size_t)n > s->max) {
            s->truncated = 1;
            n = (ssize_t)(s->max - s->len);
        }
        if (n > 0 && s->len + (size_t)n > s->cap) {
            size_t cap = s->cap == 0 ? 4096 : s->cap;
            char *grown;
            while (cap < s->len + (size_t)n)
                cap *= 2;
            if (cap > s->max)
                cap = s->max;
            grown = realloc(s->data, cap);
            if (grown == NULL) {
                s->truncated = 1;
                continue;
            }
            s->data = grown;
            s->cap = cap;
        }
        if (n > 0) {
            memcpy(s->data + s->len, chunk, (size_t)n);
            s->len += (size_t)n;
        }
    }
}

static void proc_reap(struct proc *p)
{
    pid_t r;

    if (p->reaped)
        return;
    r = waitpid(p->pid, &p->wait_status, WNOHANG);
    if (r == p->pid) {
        p->reaped = 1;
        p->exited_at = loop_now();
        close_fd(&p->pidfd);
    }
}

static void proc_signal(struct proc *p, double now)
{
    if (p->reaped)
        return;
    if (p->kill_stage == 0) {
        kill(-p->pid, SIGTERM);
        p->kill_stage = 1;
        p->kill_at = now + PROC_KILL_GRACE;
    } else if (p->kill_stage == 1 && now >= p->kill_at) {
        kill(-p->pid, SIGKILL);
        p->kill_stage = 2;
    }
}

static void push_result(lua_State *L, struct proc *p)
{
    lua_createtable(L, 0, 10);
    if (WIFEXITED(p->wait_status)) {
        lua_pushinteger(L, WEXITSTATUS(p->wait_status));
        lua_setfield(L, -2, "rc");
    } else if (WIFSIGNALED(p->wait_status)) {
        lua_pushinteger(L, 128 + WTERMSIG(p->wait_status));
        lua_setfield(L, -2, "rc");
        lua_pushinteger(L, WTERMSIG(p->wait_status));
        lua_setfield(L, -2, "signal");
    }
    lua_pushlstring(L, p->out.data != NULL ? p->out.data : "", p->out.len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, p->err.data != NULL ? p->err.data : "", p->err.len);
    lua_setfield(L, -2, "stderr");
    lua_pushboolean(L, p->out.truncated);
    lua_setfield(L, -2, "stdout_truncated");
    lua_pushboolean(L, p->err.truncated);
    lua_setfield(L, -2, "stderr_truncated");
    lua_pushboolean(L, p->timed_out);
    lua_setfield(L, -2, "timed_out");
    lua_pushboolean(L, p->interrupted);
    lua_setfield(L, -2, "interrupted");
    lua_pushnumber(L, loop_now() - p->started);
    lua_setfield(L, -2, "duration");
}

/*
 * The wait loop; also the continuation after each park.
 * Stack: 1: options table, 2: the proc userdata.
 */
/* Writes what stdin the pipe takes now; closes it once all is sent. */
static void feed_stdin(struct proc *p, const char *data, size_t len)
{
    while (p->stdin_fd >= 0 && p->stdin_off < len) {
        ssize_t w = write(p->stdin_fd, data + p->stdin_off,
                          len - p->stdin_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w < 0) {  /* EPIPE: the child does not read its input */
            p->stdin_off = len;
            break;
        }
        p->stdin_off += (size_t)w;
    }
    if (p->stdin_fd >= 0 && p->stdin_off >= len)
        close_fd(&p->stdin_fd);
}

/* Fills p->fds with what to wait on; returns how many, and in *wake
 * when to look again whatever happens (0: no time limit). */
static int wait_set(struct proc *p, double now, double *wake)
{
    int n = 0;

    *wake = 0;
    if (p->kill_stage == 1)
        *wake = p->kill_at;
    else if (p->kill_stage == 0 && p->deadline > 0)
        *wake = p->deadline;
    if (p->reaped)
        *wake = p->exited_at + PROC_DRAIN_GRACE;
    if (p->out.fd >= 0) {
        p->fds[n].fd = p->out.fd;
        p->fds[n++].events = POLLIN;
    }
    if (p->err.fd >= 0) {
        p->fds[n].fd = p->err.fd;
        p->fds[n++].events = POLLIN;
    }
    if (p->stdin_fd >= 0) {
        p->fds[n].fd = p->stdin_fd;
        p->fds[n++].events = POLLOUT;
    }
    if (p->pidfd >= 0) {
        p->fds[n].fd = p->pidfd;
        p->fds[n++].events = POLLIN;
    } else if (!p->reaped && (*wake <= 0 || *wake > now + 0.05)) {
        *wake = now + 0.05;  /* no pidfd: look again soon */
    }
    return n;
}

static int proc_step(lua_State *L, int status, lua_KContext ctx)
{
    struct proc *p = luaL_checkudata(L, 2, PROC_MT);
    size_t stdin_len = 0;
    const char *stdin_data;

    (void)status;
    (void)ctx;
    lua_getiuservalue(L, 2, 1);
    stdin_data = lua_tolstring(L, -1, &stdin_len);
    lua_pop(L, 1);  /* the string stays alive as the uservalue */

    for (;;) {
        double now = loop_now();
        double wake;
        int n;

        if (p->out.fd >= 0 && stream_read(&p->out))
            close_fd(&p->out.fd);
        if (p->err.fd >= 0 && stream_read(&p->err))
            close_fd(&p->err.fd);
        feed_stdin(p, stdin_data, stdin_len);
        proc_reap(p);

        if (p->reaped && p->out.fd < 0 && p->err.fd < 0)
            break;
        if (p->reaped && now - p->exited_at > PROC_DRAIN_GRACE) {
            /* Something the child left behind holds the pipes open. */
            close_fd(&p->out.fd);
            close_fd(&p->err.fd);
            break;
        }
        if (!p->reaped && p->deadline > 0 && now >= p->deadline) {
            p->timed_out = 1;
            proc_signal(p, now);
        }
        if (!p->reaped && loop_interrupts() != p->interrupts_at_start) {
            p->interrupted = 1;
            proc_signal(p, now);
        }
        n = wait_set(p, now, &wake);
        if (loop_can_park(L))
            return loop_park(L, p->fds, n, wake, 0, proc_step);
        loop_block(L, p->fds, n, wake);
    }
    push_result(L, p);
    return 1;
}

static int set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* A child in its own process group (so that stopping it stops all it
 * started), with no signal blocked and the controller's handled signals
 * back to their defaults. */
static void init_spawn_attr(posix_spawnattr_t *attr)
{
    sigset_t sigs;

    posix_spawnattr_init(attr);
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(attr, &sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGPIPE);
    sigaddset(&sigs, SIGXFSZ);
    sigaddset(&sigs, SIGQUIT);
    posix_spawnattr_setsigdefault(attr, &sigs);
    posix_spawnattr_setpgroup(attr, 0);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP |
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* 0 if `prog` names an executable file, as posix_spawnp would find it,
 * else an errno.  Checked before spawning because a failed exec is not
 * reported by every spawn implementation (valgrind turns the vfork into
 * a fork, and the child then just exits 127). */
static int check_program(const char *prog)
{
    const char *path = getenv("PATH");
    char candidate[4096];
    int rc = ENOENT;

    if (strchr(prog, '/') != NULL)
        return access(prog, X_OK) == 0 ? 0 : errno;
    if (path == NULL)
        path = "/bin:/usr/bin";
    while (*path != '\0') {
        size_t dir_len = strcspn(path, ":");
        int n = snprintf(candidate, sizeof candidate, "%.*s%s%s", (int)dir_len,
                         path, dir_len > 0 ? "/" : "", prog);
        if (n > 0 && (size_t)n < sizeof candidate) {
            if (access(candidate, X_OK) == 0)
                return 0;
            if (errno == EACCES)
                rc = EACCES;  /* found but not runnable: say so */
        }
        path += dir_len;
        if (*path == ':')
            path++;
    }
    return rc;
}

/*
 * Builds argv (and envp) as arrays of pointers into Lua strings held in
 * the options table; the arrays go in userdata so nothing leaks.
 */
static const char **build_argv(lua_State *L, int opts, int *is_shell)
{
    const char **argv;
    lua_Integer n;
    lua_Integer i;

    if (lua_getfield(L, opts, "shell") == LUA_TSTRING) {
        argv = lua_newuserdatauv(L, sizeof *argv * 4, 0);
        argv[0] = "/bin/sh";
        argv[1] = "-c";
        argv[2] = lua_tostring(L, -2);
        argv[3] = NULL;
        *is_shell = 1;
        return argv;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, opts, "argv") != LUA_TTABLE)
        luaL_error(L, "proc.run: 'argv' (a list) or 'shell' is required");
    n = (lua_Integer)lua_rawlen(L, -1);
    if (n < 1)
        luaL_error(L, "proc.run: 'argv' is empty");
    argv = lua_newuserdatauv(L, sizeof *argv * (size_t)(n + 1), 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        argv[i - 1] = lua_tostring(L, -1);
        if (argv[i - 1] == NULL)
            luaL_error(L, "proc.run: argv[%d] is not a string", (int)i);
        lua_pop(L, 1);  /* still referenced by the argv table */
    }
    argv[n] = NULL;
    *is_shell = 0;
    return argv;
}

static char **build_envp(lua_State *L, int opts)
{
    char **envp;
    size_t base = 0;
    size_t extra = 0;
    size_t i;
    int list;

    if (lua_getfield(L, opts, "env") != LUA_TTABLE) {
        lua_pop(L, 1);
        return environ;
    }
    list = lua_gettop(L);
    while (environ[base] != NULL)
        base++;
    lua_newtable(L);  /* keeps the "NAME=value" strings alive */
    lua_pushnil(L);
    while (lua_next(L, list) != 0) {
        lua_pushfstring(L, "%s=%s", luaL_checkstring(L, -2),
                        luaL_checkstring(L, -1));
        lua_rawseti(L, list + 1, (lua_Integer)++extra);
        lua_pop(L, 1);
    }
    envp = lua_newuserdatauv(L, sizeof *envp * (base + extra + 1), 0);
    {
        size_t n = 0;
        /* Inherited variables the caller sets again are left out: the
         * first of two entries would win in the child. */
        for (i = 0; i < base; i++) {
            const char *eq = strchr(environ[i], '=');
            int overridden = 0;
            if (eq != NULL) {
                lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
                overridden = lua_rawget(L, list) != LUA_TNIL;
                lua_pop(L, 1);
            }
            if (!overridden)
                envp[n++] = environ[i];
        }
        for (i = 0; i < extra; i++) {
            lua_rawgeti(L, list + 1, (lua_Integer)i + 1);
            envp[n++] = (char *)lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        envp[n] = NULL;
    }
    return envp;
}

/*
 * proc.run{argv={...} | shell="...", stdin=, cwd=, env={}, timeout=,
 *          max_output=} -> result | nil, message, errno
 * Waits (parking the task) until the process exits and its output is
 * read.  result: rc, signal, stdout, stderr, stdout_truncated,
 * stderr_truncated, timed_out, interrupted, duration.
 */
/* The options of proc.run that are not argv or env: stdin (kept as the
 * userdata's uservalue), timeout, max_output; returns cwd (NULL: ours),
 * which stays alive in the options table. */
static const char *run_options(lua_State *L, struct proc *p,
                               lua_Number *timeout)
{
    lua_Integer max_output;
    const char *cwd;

    lua_getfield(L, 1, "stdin");
    if (!lua_isnil(L, -1))
        luaL_checkstring(L, -1);
    lua_setiuservalue(L, 2, 1);
    lua_getfield(L, 1, "timeout");
    *timeout = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 1, "max_output");
    max_output = luaL_optinteger(L, -1, PROC_DEFAULT_MAX_OUTPUT);
    lua_getfield(L, 1, "cwd");
    cwd = luaL_optstring(L, -1, NULL);
    lua_pop(L, 3);
    p->out.max = p->err.max = max_output > 0 ? (size_t)max_output : 0;
    return cwd;
}

static int proc_run(lua_State *L)
{
    struct proc *p;
    const char **argv;
    char **envp;
    const char *cwd;
    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    int err_pipe[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int is_shell;
    int rc;
    lua_Number timeout;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    p = lua_newuserdatauv(L, sizeof *p, 1);  /* 2, before any resource */
    memset(p, 0, sizeof *p);
    p->pidfd = p->stdin_fd = p->out.fd = p->err.fd = -1;
    luaL_setmetatable(L, PROC_MT);
    cwd = run_options(L, p, &timeout);

    argv = build_argv(L, 1, &is_shell);
    envp = build_envp(L, 1);

    rc = check_program(argv[0]);
    if (rc != 0)
        goto spawn_failed;
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
        pipe2(err_pipe, O_CLOEXEC) != 0) {
        rc = errno;
        goto spawn_failed;
    }
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    if (cwd != NULL)
        posix_spawn_file_actions_addchdir_np(&actions, cwd);
    init_spawn_attr(&attr);
    p->started = loop_now();
    rc = posix_spawnp(&p->pid, argv[0], &actions, &attr,
                      (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        p->pid = 0;
        goto spawn_failed;
    }
    close_fd(&in_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[1]);
    p->stdin_fd = in_pipe[1];
    p->out.fd = out_pipe[0];
    p->err.fd = err_pipe[0];
    set_nonblock(p->stdin_fd);
    set_nonblock(p->out.fd);
    set_nonblock(p->err.fd);
    p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    p->deadline = timeout > 0 ? p->started + timeout : 0;
    p->interrupts_at_start = loop_interrupts();
    lua_settop(L, 2);
    return proc_step(L, LUA_OK, 0);

spawn_failed:
    close_fd(&in_pipe[0]);
    close_fd(&in_pipe[1]);
    close_fd(&out_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[0]);
    close_fd(&err_pipe[1]);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot run '%s': %s", is_shell ? "/bin/sh" : argv[0],
                    strerror(rc));
    lua_pushinteger(L, rc);
    return 3;
}

/* A ProxyCommand's process: it lives as long as its SSH session. */
struct proc_helper {
    pid_t pid;            /* 0 once reaped */
};

/* helper:stop() -> nothing; also __gc.  Its session is closed by then,
 * so nothing it could still do matters: SIGKILL to its process group,
 * which dies at once, so the reaping wait holds up no other host. */
static int helper_stop(lua_State *L)
{
    struct proc_helper *h = luaL_checkudata(L, 1, HELPER_MT);
    int status;

    if (h->pid > 0) {
        kill(-h->pid, SIGKILL);
        while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
            ;
        h->pid = 0;
    }
    return 0;
}

/*
 * proc.connect_command(command) -> socket, helper | nil, message
 * Runs `/bin/sh -c "exec COMMAND"` (an SSH ProxyCommand) with one end of
 * a socket pair as its stdin and stdout, in its own process group; its
 * stderr is the controller's, as with OpenSSH.  socket (a userdata
 * owning the other end, nonblocking) is for ssh.connect{fd=}, which
 * takes it; dropped, it is closed.  helper:stop() ends the process.
 */
static int proc_connect_command(lua_State *L)
{
    const char *command = luaL_checkstring(L, 1);
    struct proc_helper *h;
    int sv[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    pid_t pid;
    int rc;
    const char *argv[4];
    int *slot;

    lua_pushfstring(L, "exec %s", command);     /* 2: kept alive for argv */
    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = lua_tostring(L, 2);
    argv[3] = NULL;
    h = lua_newuserdatauv(L, sizeof *h, 0);     /* 3, before any resource */
    h->pid = 0;
    luaL_setmetatable(L, HELPER_MT);
    slot = cutover_socket_push(L);              /* 4 */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = errno;
        goto failed;
    }
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, sv[1], 0);
    posix_spawn_file_actions_adddup2(&actions, sv[1], 1);
    init_spawn_attr(&attr);
    rc = posix_spawn(&pid, argv[0], &actions, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        goto failed;
    h->pid = pid;                               /* owned by the helper */
    close_fd(&sv[1]);
    set_nonblock(sv[0]);
    *slot = sv[0];                              /* owned by the socket */
    lua_insert(L, -2);                          /* socket, helper */
    return 2;

failed:
    close_fd(&sv[0]);
    close_fd(&sv[1]);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot start the ProxyCommand: %s", strerror(rc));
    return 2;
}

static const luaL_Reg helper_methods[] = {
    {"stop", helper_stop},
    {NULL, NULL}
};

static const luaL_Reg proc_funcs[] = {
    {"run", proc_run},
    {"connect_command", proc_connect_command},
    {NULL, NULL}
};

int luaopen_cutover_proc(lua_State *L)
{
    luaL_newmetatable(L, PROC_MT);
    lua_pushcfunction(L, proc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, proc_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newmetatable(L, HELPER_MT);
    luaL_newlib(L, helper_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, helper_stop);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, proc_funcs);
    return 1;
}
