/*
 * loop.c: the event loop.  Each host runs as a task (a Lua coroutine);
 * a C primitive that must wait parks its task with the file descriptors
 * and deadline it waits for, and the loop resumes it when poll() says so.
 * All hosts thus run concurrently on one thread and one lua_State.
 *
 * SIGINT, SIGTERM and SIGHUP (unless ignored, as under nohup) set a
 * counter and wake poll through a self-pipe; parked tasks are then
 * resumed once so that each primitive can stop its work (kill a process,
 * close a socket) and report "interrupted".
 *
 * A task that waits for another task (a lock, a shared result) parks on a
 * condition (loop.condition()) with no file descriptor; it runs again
 * only when another task signals that condition, its deadline passes or
 * an interrupt arrives, so no task polls a Lua flag in a sleep loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cutover.h"

enum task_state { TASK_RUNNABLE, TASK_RUNNING, TASK_PARKED };

struct loop_task {
    lua_State *co;
    int ref;                  /* registry reference keeping co alive */
    enum task_state state;
    int first_resume_args;    /* arguments waiting for the first resume */
    struct pollfd *fds;       /* owned by the primitive that parked */
    int nfds;
    double deadline;
    unsigned interrupts_seen;
    int daemon;               /* does not keep loop.run going */
    const void *waiting_on;   /* the condition parked on, or NULL */
    int signalled;            /* 1: woken by its signal; -1: deadlock */
};

#define CONDITION_MT "cutover.loop.condition"


static struct loop_task **tasks;     /* owned here, each task too */
static int task_count;
static int daemon_count;    /* tasks that do not keep loop.run going */
static int task_cap;
static struct loop_task *running;    /* the task being resumed, if any */
static int loop_active;
static volatile sig_atomic_t interrupt_count;
static int wake_pipe[2] = {-1, -1};
/* loop.before_wait's functions, run once at the end of the loop's turn:
 * two lists in arming order, each function at most once in each (the
 * journal's deferred commits in the first; the output's flush in the
 * second, "last", so nothing is printed before it is durable).  Registry
 * references to Lua sequences, LUA_NOREF while a list is empty. */
static int before_wait_refs[2] = {LUA_NOREF, LUA_NOREF};
static unsigned long poll_count;  /* polls made: loop_poll_count */

unsigned long loop_poll_count(void)
{
    return poll_count;
}

double loop_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned loop_interrupts(void)
{
    return (unsigned)interrupt_count;
}

static void loop_on_signal(int sig)
{
    int saved = errno;
    char byte = 1;
    ssize_t ignored;

    (void)sig;
    interrupt_count++;
    ignored = write(wake_pipe[1], &byte, 1);
    (void)ignored;
    errno = saved;
}

static int timeout_ms(double deadline)
{
    double left;

    if (deadline <= 0)
        return -1;
    left = deadline - loop_now();
    if (left <= 0)
        return 0;
    if (left > 86400.0)
        left = 86400.0;
    return (int)(left * 1000.0) + 1;
}

/*
 * Runs the functions loop.before_wait armed, if any (each once: a list is
 * taken before its functions run, so one may arm itself again for the
 * next turn; what the first list arms for the second runs now).  Called
 * at the end of each turn of the loop, before it polls (even with no
 * timeout), and where a primitive blocks outside a task: so what a task
 * armed runs by the end of the turn it was armed in, and never waits for
 * the network or a timer.  An error in one is reported, not raised (the
 * journal keeps its own failure), and the others still run.
 */
static void run_before_wait(lua_State *L)
{
    int list;
    lua_Integer i;
    lua_Integer n;

    if (before_wait_refs[0] == LUA_NOREF && before_wait_refs[1] == LUA_NOREF)
        return;
    /* called from inside C primitives too: room for the list, the
     * function and cutover_pcall's handler whatever they left */
    luaL_checkstack(L, 6, "before a wait");
    for (list = 0; list < 2; list++) {
        if (before_wait_refs[list] == LUA_NOREF)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, before_wait_refs[list]);
        luaL_unref(L, LUA_REGISTRYINDEX, before_wait_refs[list]);
        before_wait_refs[list] = LUA_NOREF;
        n = (lua_Integer)lua_rawlen(L, -1);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (cutover_pcall(L, 0, 0) != LUA_OK) {
                lua_writestringerror("cutover: internal error before a "
                                     "wait: %s\n", lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
}

void loop_before_blocking(lua_State *L)
{
    run_before_wait(L);
}

int loop_can_park(lua_State *L)
{
    return running != NULL && running->co == L && lua_isyieldable(L);
}

int loop_park(lua_State *L, struct pollfd *fds, int nfds, double deadline,
              lua_KContext ctx, lua_KFunction k)
{
    int i;

    for (i = 0; i < nfds; i++)
        fds[i].revents = 0;
    running->fds = fds;
    running->nfds = nfds;
    running->deadline = deadline;
    running->state = TASK_PARKED;
    running->interrupts_seen = loop_interrupts();
    return lua_yieldk(L, 0, ctx, k);
}

void *loop_current_task(void)
{
    return running;
}

void loop_wake(void *task)
{
    int i;

    for (i = 0; i < task_count; i++)
        if (tasks[i] == task && tasks[i]->state == TASK_PARKED)
            tasks[i]->state = TASK_RUNNABLE;
}

void loop_block(lua_State *L, struct pollfd *fds, int nfds, double deadline)
{
    unsigned seen = loop_interrupts();
    int i;
    int n;

    run_before_wait(L);
    do {
        for (i = 0; i < nfds; i++)
            fds[i].revents = 0;
        n = poll(fds, (nfds_t)nfds, timeout_ms(deadline));
        poll_count++;
    } while (n < 0 && errno == EINTR && loop_interrupts() == seen);
}

/*
 * loop.spawn(fn, ...) -> nothing
 * Params on Lua stack: 1: function; 2...: its arguments.
 * The task starts at the next turn of loop.run.
 */
static int spawn_task(lua_State *L, int daemon)
{
    int nargs = lua_gettop(L) - 1;
    struct loop_task *t;
    lua_State *co;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (task_count == task_cap) {
        int cap = task_cap == 0 ? 16 : task_cap * 2;
        struct loop_task **grown = realloc(tasks, sizeof *tasks * cap);
        if (grown == NULL)
            return luaL_error(L, "loop.spawn: out of memory");
        tasks = grown;
        task_cap = cap;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return luaL_error(L, "loop.spawn: out of memory");
    tasks[task_count] = t;  /* owned by tasks[] from here */
    task_count++;
    co = lua_newthread(L);
    lua_insert(L, 1);                        /* co fn args... */
    lua_xmove(L, co, nargs + 1);
    t->co = co;
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* pops co */
    t->state = TASK_RUNNABLE;
    t->first_resume_args = nargs;
    t->daemon = daemon;
    daemon_count += daemon;
    return 0;
}

static int loop_spawn(lua_State *L)
{
    return spawn_task(L, 0);
}

/*
 * loop.spawn_daemon(fn, ...) -> nothing
 * A background task (an SSH tunnel pump): it runs whenever loop.run
 * runs, but loop.run returns once only such tasks remain; they carry on
 * in the next loop.run.
 */
static int loop_spawn_daemon(lua_State *L)
{
    return spawn_task(L, 1);
}

/*
 * True when no task can make progress: every task is parked on a
 * condition without a deadline, so none of them can ever be signalled.
 */
static int only_condition_waits(void)
{
    int i;

    for (i = 0; i < task_count; i++) {
        struct loop_task *t = tasks[i];
        if (t->state != TASK_PARKED || t->nfds > 0 || t->deadline > 0 ||
            t->waiting_on == NULL)
            return 0;
    }
    return 1;
}

/* Wakes every condition waiter with signalled = -1: its wait raises. */
static void release_deadlocked(void)
{
    int i;

    for (i = 0; i < task_count; i++)
        if (tasks[i]->waiting_on != NULL) {
            tasks[i]->state = TASK_RUNNABLE;
            tasks[i]->signalled = -1;
        }
}

/* Resumes task i; returns 1 when it has finished. */
static int loop_resume(lua_State *L, int i)
{
    struct loop_task *t = tasks[i];
    int nargs = t->first_resume_args;
    int nres = 0;
    int status;

    t->first_resume_args = 0;
    t->state = TASK_RUNNING;
    running = t;
    status = lua_resume(t->co, L, nargs, &nres);
    running = NULL;
    if (status == LUA_YIELD) {
        lua_pop(t->co, nres);
        /* A plain coroutine.yield() just lets the others run. */
        if (t->state == TASK_RUNNING)
            t->state = TASK_RUNNABLE;
        return 0;
    }
    if (status != LUA_OK) {
        /* Tasks catch their own errors; this is a bug in cutover. */
        const char *msg = lua_tostring(t->co, -1);
        luaL_traceback(L, t->co, msg != NULL ? msg : "(error object)", 0);
        lua_writestringerror("cutover: internal error in a task: %s\n",
                             lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
    return 1;
}

/* Resumes every runnable task; finished ones are removed. */
static void resume_runnable(lua_State *L)
{
    int i;

    for (i = 0; i < task_count; i++) {
        if (tasks[i]->state != TASK_RUNNABLE)
            continue;
        if (loop_resume(L, i)) {
            daemon_count -= tasks[i]->daemon;
            free(tasks[i]);
            tasks[i] = tasks[task_count - 1];
            task_count--;
            i--;
        }
    }
}

/*
 * When poll must return: the earliest deadline of the parked tasks, now
 * when a task is runnable, 0 for no deadline.  *parked: whether any task
 * is parked; *total: the pollfds needed (the wake pipe's included).
 */
static double earliest_deadline(int *parked, int *total)
{
    double deadline = 0;
    int i;

    *parked = 0;
    *total = 1;
    for (i = 0; i < task_count; i++) {
        if (tasks[i]->state == TASK_PARKED) {
            *parked = 1;
            *total += tasks[i]->nfds;
            if (tasks[i]->deadline > 0 &&
                (deadline <= 0 || tasks[i]->deadline < deadline))
                deadline = tasks[i]->deadline;
        } else {
            deadline = loop_now();  /* someone is runnable: no wait */
        }
    }
    return deadline;
}

/* Room for total pollfds (twice that, to grow rarely); -1 when out of
 * memory (the old array is kept for the caller to free). */
static int grow_pollfds(struct pollfd **pfds, int *cap, int total)
{
    struct pollfd *grown;

    if (total <= *cap)
        return 0;
    grown = realloc(*pfds, sizeof **pfds * total * 2);
    if (grown == NULL)
        return -1;
    *pfds = grown;
    *cap = total * 2;
    return 0;
}

/* The wake pipe, then each parked task's descriptors; returns the count. */
static int fill_pollfds(struct pollfd *pfds)
{
    int n = 0;
    int i;

    pfds[n].fd = wake_pipe[0];
    pfds[n].events = POLLIN;
    n++;
    for (i = 0; i < task_count; i++) {
        if (tasks[i]->state != TASK_PARKED)
            continue;
        if (tasks[i]->nfds > 0)
            memcpy(&pfds[n], tasks[i]->fds,
                   sizeof *pfds * (size_t)tasks[i]->nfds);
        n += tasks[i]->nfds;
    }
    return n;
}

/* Calls the tick function (at index 1) outside any task; an error in it
 * is reported, not raised. */
static void run_tick(lua_State *L)
{
    lua_pushvalue(L, 1);
    if (cutover_pcall(L, 0, 0) != LUA_OK) {
        lua_writestringerror("cutover: internal error in tick: %s\n",
                             lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* Hands each parked task its results; wakes those with news (a ready
 * descriptor, a deadline passed, an interrupt they have not seen). */
static void wake_tasks_with_news(const struct pollfd *pfds)
{
    unsigned interrupts = loop_interrupts();
    int n = 1;
    int i;

    for (i = 0; i < task_count; i++) {
        struct loop_task *t = tasks[i];
        int j;
        int news = 0;
        if (t->state != TASK_PARKED)
            continue;
        for (j = 0; j < t->nfds; j++) {
            t->fds[j].revents = pfds[n + j].revents;
            if (pfds[n + j].revents != 0)
                news = 1;
        }
        n += t->nfds;
        if (t->deadline > 0 && loop_now() >= t->deadline)
            news = 1;
        if (interrupts != t->interrupts_seen)
            news = 1;
        if (news)
            t->state = TASK_RUNNABLE;
    }
}

/*
 * loop.run([tick, interval]) -> true
 * Runs every spawned task (and those they spawn) until all have finished.
 * tick (optional) is called every interval seconds (default 0.25) while
 * tasks remain, outside any task: it must not wait.  It does not keep
 * the loop alive.
 */
static int loop_run(lua_State *L)
{
    struct pollfd *pfds = NULL;
    int pfd_cap = 0;
    int has_tick = lua_isfunction(L, 1);
    double interval = luaL_optnumber(L, 2, 0.25);
    double next_tick = loop_now() + interval;
    char failure[160] = "";

    if (loop_active)
        return luaL_error(L, "loop.run: the loop is already running");
    loop_active = 1;
    while (task_count > daemon_count) {
        int parked;
        int total;
        int n;
        int i;
        double deadline;

        resume_runnable(L);
        deadline = earliest_deadline(&parked, &total);
        if (task_count == daemon_count)
            break;
        if (parked && deadline <= 0 && only_condition_waits()) {
            release_deadlocked();
            deadline = loop_now();  /* they run now: no wait */
        }
        if (has_tick && (deadline <= 0 || next_tick < deadline))
            deadline = next_tick;
        if (grow_pollfds(&pfds, &pfd_cap, total) != 0) {
            snprintf(failure, sizeof failure, "out of memory");
            break;
        }
        run_before_wait(L);  /* the turn's end: before any poll */
        n = fill_pollfds(pfds);
        if (parked) {
            int rc = poll(pfds, (nfds_t)n, timeout_ms(deadline));
            poll_count++;
            if (rc < 0 && errno != EINTR) {
                snprintf(failure, sizeof failure, "poll: %s", strerror(errno));
                break;
            }
            if (rc < 0)
                for (i = 0; i < n; i++)
                    pfds[i].revents = 0;
        }
        if (pfds[0].revents & POLLIN) {
            char drain[64];
            while (read(wake_pipe[0], drain, sizeof drain) > 0)
                ;
        }
        if (has_tick && loop_now() >= next_tick) {
            next_tick = loop_now() + interval;
            run_tick(L);
        }
        wake_tasks_with_news(pfds);
    }
    free(pfds);
    loop_active = 0;
    run_before_wait(L);  /* nothing armed outlives the loop's tasks */
    if (failure[0] != '\0')
        return luaL_error(L, "loop.run: %s", failure);
    lua_pushboolean(L, 1);
    return 1;
}

static int loop_sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    double deadline = lua_tonumber(L, 2);

    (void)status;
    (void)ctx;
    while (loop_now() < deadline &&
           loop_interrupts() == (unsigned)lua_tointeger(L, 3)) {
        if (loop_can_park(L))
            return loop_park(L, NULL, 0, deadline, 0, loop_sleep_k);
        loop_block(L, NULL, 0, deadline);
    }
    lua_pushboolean(L, loop_now() >= deadline);
    return 1;
}

/*
 * loop.sleep(seconds) -> true, or false when interrupted early
 */
static int loop_sleep(lua_State *L)
{
    double seconds = luaL_checknumber(L, 1);

    lua_settop(L, 1);
    lua_pushnumber(L, loop_now() + (seconds > 0 ? seconds : 0));
    lua_pushinteger(L, loop_interrupts());
    return loop_sleep_k(L, LUA_OK, 0);
}

/* loop.now() -> monotonic seconds */
static int loop_lnow(lua_State *L)
{
    lua_pushnumber(L, loop_now());
    return 1;
}

/* loop.interrupts() -> how many SIGINT/SIGTERM arrived */
static int loop_linterrupts(lua_State *L)
{
    lua_pushinteger(L, loop_interrupts());
    return 1;
}

/* loop.in_task() -> true when called from a task that may park */
static int loop_in_task(lua_State *L)
{
    lua_pushboolean(L, loop_can_park(L));
    return 1;
}

/*
 * loop.condition() -> condition
 * A condition tasks wait on until another task signals it.  Waiters
 * re-check what they wait for when they wake (a signal, a timeout and an
 * interrupt all wake them), as with any condition variable.
 */
static int loop_condition(lua_State *L)
{
    lua_newuserdatauv(L, 1, 0);  /* its address is its identity */
    luaL_setmetatable(L, CONDITION_MT);
    return 1;
}

/* Continuation of condition:wait, after the task was woken. */
static int condition_wait_k(lua_State *L, int status, lua_KContext ctx)
{
    int signalled = running->signalled;

    (void)status;
    (void)ctx;
    running->waiting_on = NULL;
    running->signalled = 0;
    if (signalled < 0)
        return luaL_error(L, "condition:wait: every task waits on a "
                          "condition that no task can signal (a deadlock)");
    lua_pushboolean(L, signalled > 0);
    return 1;
}

/*
 * condition:wait([timeout]) -> true when signalled, false on timeout or
 * interrupt.  Only a task can wait.
 */
static int condition_wait(lua_State *L)
{
    void *cond = luaL_checkudata(L, 1, CONDITION_MT);
    double timeout = luaL_optnumber(L, 2, -1);

    if (!loop_can_park(L))
        return luaL_error(L, "condition:wait: only a task can wait");
    running->waiting_on = cond;
    running->signalled = 0;
    return loop_park(L, NULL, 0, timeout >= 0 ? loop_now() + timeout : 0,
                     0, condition_wait_k);
}

/* condition:signal() -> how many waiting tasks it woke (all of them) */
static int condition_signal(lua_State *L)
{
    const void *cond = luaL_checkudata(L, 1, CONDITION_MT);
    int woken = 0;
    int i;

    for (i = 0; i < task_count; i++) {
        struct loop_task *t = tasks[i];
        if (t->state == TASK_PARKED && t->waiting_on == cond) {
            t->state = TASK_RUNNABLE;
            t->signalled = 1;
            woken++;
        }
    }
    lua_pushinteger(L, woken);
    return 1;
}

static const luaL_Reg condition_methods[] = {
    {"wait", condition_wait},
    {"signal", condition_signal},
    {NULL, NULL}
};

static int loop_yield_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)L;
    (void)status;
    (void)ctx;
    return 0;
}

/*
 * loop.yield() -> nothing
 * Parks the task until the next turn of the loop (no wait when nothing
 * else is due): every task resumed in this turn runs first.  The
 * journal's group commit is built on it.  Outside a task: returns.
 */
static int loop_yield(lua_State *L)
{
    if (loop_can_park(L))
        return loop_park(L, NULL, 0, loop_now(), 0, loop_yield_k);
    return 0;
}

/*
 * loop.before_wait(fn [, "last"]) -> nothing
 * Arms fn (once: arming it again while armed changes nothing) to run,
 * with no arguments, at the end of the loop's current turn (before it
 * polls; outside any task) or when loop.run ends, or first before a
 * primitive blocks because it cannot park (then on that primitive's
 * thread).  Functions armed "last" run after the others.  It must not
 * wait; its errors are reported, not raised.
 */
static int loop_before_wait(lua_State *L)
{
    static const char *const lists[] = {"first", "last", NULL};
    int list;
    lua_Integer i;
    lua_Integer n;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    list = luaL_checkoption(L, 2, "first", lists);
    lua_settop(L, 1);
    if (before_wait_refs[list] == LUA_NOREF) {
        lua_newtable(L);
        before_wait_refs[list] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, before_wait_refs[list]);
    n = (lua_Integer)lua_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 2, i) == LUA_TFUNCTION && lua_rawequal(L, -1, 1))
            return 0;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_rawseti(L, 2, n + 1);
    return 0;
}

/* loop.tasks() -> how many tasks (daemons not counted) the loop holds */
static int loop_tasks(lua_State *L)
{
    lua_pushinteger(L, task_count - daemon_count);
    return 1;
}

static const luaL_Reg loop_funcs[] = {
    {"condition", loop_condition},
    {"spawn", loop_spawn},
    {"spawn_daemon", loop_spawn_daemon},
    {"run", loop_run},
    {"sleep", loop_sleep},
    {"yield", loop_yield},
    {"before_wait", loop_before_wait},
    {"tasks", loop_tasks},
    {"now", loop_lnow},
    {"interrupts", loop_linterrupts},
    {"in_task", loop_in_task},
    {NULL, NULL}
};

int luaopen_cutover_loop(lua_State *L)
{
    struct sigaction sa;

    if (wake_pipe[0] < 0) {
        if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
            return luaL_error(L, "loop: pipe: %s", strerror(errno));
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = loop_on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  /* no SA_RESTART: poll must return */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        /* a hang-up (the terminal or ssh session went away) stops the
         * run like SIGTERM, unless it was ignored on purpose (nohup) */
        {
            struct sigaction old;
            if (sigaction(SIGHUP, NULL, &old) == 0 &&
                old.sa_handler != SIG_IGN)
                sigaction(SIGHUP, &sa, NULL);
        }
        signal(SIGPIPE, SIG_IGN);
        /* over a file-size limit a write fails (EFBIG) and the journal
         * reports it, instead of the process dying mid-step */
        signal(SIGXFSZ, SIG_IGN);
    }
    if (luaL_newmetatable(L, CONDITION_MT)) {
        luaL_newlib(L, condition_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, loop_funcs);
    return 1;
}
