/*
 * host.c: creates the one lua_State, registers the C modules and the
 * embedded Lua modules in package.preload, and gives every call into Lua
 * a traceback handler.
 *
 * package.path and package.cpath are emptied: the runtime loads nothing
 * from disk by module name, so a file dropped beside a playbook can never
 * replace one of our modules.  CUTOVER_LUA_DIR (development only) makes
 * the preloaders read the modules from that folder instead.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>
#include <sodium.h>

#include "cutover.h"
#include "embedded.h"

static size_t mem_used;
static size_t mem_limit;
static int bad_setting;

/* Counts every byte Lua holds so the sandbox can cap what it allocates. */
static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    void *grown;
    size_t old = ptr != NULL ? osize : 0;

    (void)ud;
    if (nsize == 0) {
        free(ptr);
        mem_used -= old;
        return NULL;
    }
    if (mem_limit != 0 && nsize > old && mem_used - old + nsize > mem_limit)
        return NULL;
    grown = realloc(ptr, nsize);
    if (grown != NULL)
        mem_used = mem_used - old + nsize;
    return grown;
}

size_t cutover_mem_used(void)
{
    return mem_used;
}

size_t cutover_mem_limit(void)
{
    return mem_limit;
}

void cutover_mem_set_limit(size_t limit)
{
    mem_limit = limit;
}

static int host_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        /* Error objects (tables) pass through untouched for Lua to read. */
        if (!lua_isnoneornil(L, 1) && !luaL_callmeta(L, 1, "__tostring"))
            return 1;
        msg = lua_tostring(L, -1);
        if (msg == NULL)
            msg = "(error object is not a string)";
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int cutover_pcall(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, host_traceback);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

/*
 * Preloader for an embedded module (cutover's and the lab's).
 * Params on Lua stack: 1: module name.  Upvalues: 1: the module (light
 * userdata, static), 2: the variable naming a development folder to load
 * it from instead, 3: the folder its chunk name shows.  Returns the
 * module's value, as require expects.
 */
static int host_load_embedded(lua_State *L)
{
    const struct embedded_module *mod = lua_touserdata(L, lua_upvalueindex(1));
    const char *dev_dir = getenv(lua_tostring(L, lua_upvalueindex(2)));
    char chunkname[512];
    int status;

    if (dev_dir != NULL && dev_dir[0] != '\0') {
        lua_pushfstring(L, "%s/%s", dev_dir, mod->path);
        status = luaL_loadfilex(L, lua_tostring(L, -1), "t");
    } else {
        snprintf(chunkname, sizeof chunkname, "@%s/%s",
                 lua_tostring(L, lua_upvalueindex(3)), mod->path);
        /* The bytecode is the binary's own, made from this very source
         * at build time; no bytecode from anywhere else is ever loaded
         * (user code and playbook expressions are loaded as text). */
        status = luaL_loadbufferx(L, mod->bytecode, mod->bytecode_length,
                                  chunkname, "b");
        if (status != LUA_OK) {
            /* a liblua of another bytecode format: parse the source */
            lua_pop(L, 1);
            status = luaL_loadbufferx(L, mod->source, mod->length,
                                      chunkname, "t");
        }
    }
    if (status != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

void cutover_preload_embedded(lua_State *L,
                              const struct embedded_module *modules,
                              const char *dev_env, const char *chunk_dir)
{
    int i;

    for (i = 0; modules[i].name != NULL; i++) {
        lua_pushlightuserdata(L, (void *)&modules[i]);
        lua_pushstring(L, dev_env);
        lua_pushstring(L, chunk_dir);
        lua_pushcclosure(L, host_load_embedded, 3);
        lua_setfield(L, -2, modules[i].name);
    }
}

static const luaL_Reg host_c_modules[] = {
    {"cutover.core.yaml", luaopen_cutover_yaml},
    {"cutover.core.loop", luaopen_cutover_loop},
    {"cutover.core.proc", luaopen_cutover_proc},
    {"cutover.core.fs", luaopen_cutover_fs},
    {"cutover.core.json", luaopen_cutover_json},
    {"cutover.core.crypto", luaopen_cutover_crypto},
    {"cutover.core.sandbox", luaopen_cutover_sandbox},
    {"cutover.core.pattern", luaopen_cutover_pattern},
    {"cutover.core.sys", luaopen_cutover_sys},
    {"cutover.core.net", luaopen_cutover_net},
    {"cutover.core.ssh", luaopen_cutover_ssh},
    {"cutover.core.vault", luaopen_cutover_vault},
    {"cutover.core.journal", luaopen_cutover_journal},
    {NULL, NULL}
};

static int host_setup(lua_State *L)
{
    const luaL_Reg *reg;

    luaL_openlibs(L);
    /* Most objects (parsed YAML, results) live short or for the whole
     * run: the generational collector does far less work on them. */
    lua_gc(L, LUA_GCGEN, 0, 0);
    /* Bytecode can be forged; nothing in cutover needs to dump functions. */
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "package");        /* loaded package */
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 2);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (reg = host_c_modules; reg->name != NULL; reg++) {
        lua_pushcfunction(L, reg->func);
        lua_setfield(L, -2, reg->name);
    }
    cutover_preload_embedded(L, cutover_embedded, "CUTOVER_LUA_DIR", "lua");
    lua_pop(L, 1);
    return 0;
}

/*
 * The whole controller's memory ceiling (the sandbox's per-evaluation
 * limits sit below it): CUTOVER_MEMORY_LIMIT in MiB, default 4096.  A run
 * that keeps what expressions build (set_fact in a loop, registered
 * output) stops with "not enough memory" instead of taking the machine.
 * Returns 0 and says why on a value that is not a whole number >= 64.
 */
static size_t host_memory_cap(void)
{
    const char *text = getenv("CUTOVER_MEMORY_LIMIT");
    char *end = NULL;
    unsigned long long mib;

    if (text == NULL || *text == '\0')
        return (size_t)CUTOVER_DEFAULT_MEMORY_MIB << 20;
    errno = 0;
    mib = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || text[0] == '-' || mib < 64 ||
        mib > ((unsigned long long)SIZE_MAX >> 20)) {
        fprintf(stderr, "cutover: CUTOVER_MEMORY_LIMIT must be a whole "
                "number of MiB, 64 or more (got '%s')\n", text);
        return 0;
    }
    return (size_t)mib << 20;
}

int cutover_bad_setting(void)
{
    return bad_setting;
}

lua_State *cutover_newstate(void)
{
    lua_State *L;
    size_t cap = host_memory_cap();

    if (cap == 0) {
        bad_setting = 1;
        return NULL;
    }
    if (sodium_init() < 0)
        return NULL;
    mem_limit = cap;
    L = lua_newstate(host_alloc, NULL);
    if (L == NULL)
        return NULL;
    lua_pushcfunction(L, host_setup);
    if (cutover_pcall(L, 0, 0) != LUA_OK) {
        fprintf(stderr, "cutover: start-up failed: %s\n",
                lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

void cutover_closestate(lua_State *L)
{
    if (L != NULL)
        lua_close(L);
}

/* Exit codes of the runtime itself (documented in docs/cli.md). */
#define EXIT_USAGE 2
#define EXIT_INTERNAL 70

static int host_run_main(lua_State *L, int argc, char **argv,
                         lua_CFunction setup, const char *module)
{
    int i;

    if (setup != NULL) {
        lua_pushcfunction(L, setup);
        if (cutover_pcall(L, 0, 0) != LUA_OK)
            return 0;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    if (cutover_pcall(L, 1, 1) != LUA_OK)
        return 0;
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    return cutover_pcall(L, 1, 1) == LUA_OK;
}

int cutover_main(int argc, char **argv, const char *prog,
                 lua_CFunction setup, const char *module)
{
    lua_State *L = cutover_newstate();
    int status = EXIT_INTERNAL;

    if (L == NULL && cutover_bad_setting())
        return EXIT_USAGE;
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create the Lua state\n", prog);
        return EXIT_INTERNAL;
    }
    if (host_run_main(L, argc, argv, setup, module))
        status = (int)luaL_optinteger(L, -1, 0) & 255;
    else if (lua_type(L, -1) == LUA_TSTRING &&
             strcmp(lua_tostring(L, -1), "not enough memory") == 0)
        fprintf(stderr, "%s: the controller reached its memory limit "
                "(%zu MiB; CUTOVER_MEMORY_LIMIT sets it)\n", prog,
                cutover_mem_limit() >> 20);
    else
        fprintf(stderr, "%s: internal error: %s\n", prog,
                lua_tostring(L, -1));
    fflush(stdout);
    cutover_closestate(L);
    return status;
}

#define SOCKET_MT "cutover.socket"

static int socket_gc(lua_State *L)
{
    int *fd = luaL_checkudata(L, 1, SOCKET_MT);

    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    return 0;
}

int *cutover_socket_push(lua_State *L)
{
    int *fd = lua_newuserdatauv(L, sizeof *fd, 0);

    *fd = -1;
    if (luaL_newmetatable(L, SOCKET_MT)) {
        lua_pushcfunction(L, socket_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, socket_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return fd;
}

int cutover_socket_take(lua_State *L, int idx)
{
    int *slot = luaL_checkudata(L, idx, SOCKET_MT);
    int fd = *slot;

    *slot = -1;
    return fd;
}
