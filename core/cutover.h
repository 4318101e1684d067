/*
 * Shared declarations of the C runtime.  Each module in core/ exposes one
 * luaopen_* function; host.c registers them all in package.preload under
 * the names given in host.c's table.
 */
#ifndef CUTOVER_H
#define CUTOVER_H

#include <lua.h>
#include <lauxlib.h>
#include <poll.h>
#include <stddef.h>

/* host.c: the one lua_State and the way into it.  NULL when the state
 * cannot be made; cutover_bad_setting() then tells whether the cause was
 * the user's setting (already reported on stderr). */
#define CUTOVER_DEFAULT_MEMORY_MIB 4096
lua_State *cutover_newstate(void);
int cutover_bad_setting(void);
/* A program's main: the state, then setup (may be NULL) in a protected
 * call, then require(module).main(argv), whose result is the exit code.
 * prog names the program in start-up and internal error messages. */
int cutover_main(int argc, char **argv, const char *prog,
                 lua_CFunction setup, const char *module);
void cutover_closestate(lua_State *L);
/* lua_pcall with a traceback handler; the error, if any, is left on top. */
int cutover_pcall(lua_State *L, int nargs, int nresults);
/* Memory accounting used by the sandbox's memory limit; the limit starts
 * at the controller's ceiling (CUTOVER_MEMORY_LIMIT). */
size_t cutover_mem_used(void);
void cutover_mem_set_limit(size_t limit); /* 0: no limit */
size_t cutover_mem_limit(void);

/* host.c: a socket handed from one module to another through Lua (a
 * ProxyCommand's end, a ProxyJump tunnel's end) is a userdata that owns
 * it, never a bare descriptor number: __gc closes it unless it was taken.
 * cutover_socket_push pushes one that holds no socket yet and returns its
 * slot (store the fd there at once); cutover_socket_take checks that idx
 * is one, hands its fd to the caller (who owns it from then on) and
 * leaves it empty: -1 when it held none. */
int *cutover_socket_push(lua_State *L);
int cutover_socket_take(lua_State *L, int idx);

/* loop.c: waiting without blocking other hosts.
 *
 * A primitive that waits is written as one continuation function that
 * loops: do what can be done, then either park the coroutine (when
 * loop_can_park) with itself as continuation, or block in loop_block and
 * go round again.  fds must outlive the park: keep them in a userdata
 * that stays on the coroutine's stack.  On wake-up, fds[i].revents holds
 * what poll saw (all zero after a timeout or an interrupt).
 */
#define LOOP_MAX_FDS 4
int loop_can_park(lua_State *L);
int loop_park(lua_State *L, struct pollfd *fds, int nfds, double deadline,
              lua_KContext ctx, lua_KFunction k);
void loop_block(lua_State *L, struct pollfd *fds, int nfds, double deadline);
/* Before a call that blocks outside the loop (getaddrinfo: a slow DNS
 * server holds the whole controller): runs what loop.before_wait armed,
 * so the journal's deferred step results are committed first. */
void loop_before_blocking(lua_State *L);
double loop_now(void);            /* monotonic seconds */
/* How many times the loop has polled: a socket found empty stays empty,
 * as far as anyone can know, until this changes. */
unsigned long loop_poll_count(void);
/* The task being resumed (NULL outside tasks), and a wake-up for a task
 * parked on something another task's work can change (a buffer filled
 * by a read made on a shared session): it runs again at the next turn.
 * A task that is gone is ignored. */
void *loop_current_task(void);
void loop_wake(void *task);
unsigned loop_interrupts(void);   /* SIGINT/SIGTERM seen so far */

/* sandbox.c: work done in C on behalf of sandboxed code (pattern
 * matching) is charged here; raises "instruction limit exceeded" once the
 * budget is spent.  Charges nothing outside a sandbox call. */
void sandbox_spend(lua_State *L, lua_Integer instructions);

/* net.c: pushes a TCP stream userdata (the class net.connect returns:
 * read_line, write, close) that holds no socket yet; net_stream_adopt
 * then gives it a connected non-blocking fd, which it owns from there on.
 * For the listeners of the lab's mail servers (tests/lab/labos.c). */
struct net_stream;
struct net_stream *net_stream_push(lua_State *L);
void net_stream_adopt(struct net_stream *s, int fd);

/* pattern.c: the one glob matcher ('*', '?'; whole text; bytes). */
int cutover_glob_match(const char *glob, size_t glen, const char *text,
                       size_t tlen);

int luaopen_cutover_yaml(lua_State *L);
int luaopen_cutover_loop(lua_State *L);
int luaopen_cutover_proc(lua_State *L);
int luaopen_cutover_fs(lua_State *L);
int luaopen_cutover_json(lua_State *L);
int luaopen_cutover_crypto(lua_State *L);
int luaopen_cutover_sandbox(lua_State *L);
int luaopen_cutover_pattern(lua_State *L);
int luaopen_cutover_sys(lua_State *L);
int luaopen_cutover_net(lua_State *L);
int luaopen_cutover_ssh(lua_State *L);
int luaopen_cutover_vault(lua_State *L);
/* Lets this process derive vault keys at the test-only low cost
 * (vault.derive(..., "test")).  Called by the test programs' main
 * functions only, before the state is made; core/main.c never calls it,
 * and no variable or Lua call can: the shipped binary cannot use it. */
void cutover_vault_allow_test_kdf(void);
int luaopen_cutover_journal(lua_State *L);

#endif
