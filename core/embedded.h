/* The Lua modules compiled into the binary (generated lua_modules.c). */
#ifndef CUTOVER_EMBEDDED_H
#define CUTOVER_EMBEDDED_H
#include <stddef.h>

struct embedded_module {
    const char *name;   /* "cutover.actions.copy" */
    const char *path;   /* "cutover/actions/copy.lua", for dev loading */
    const char *source;
    size_t length;
    /* the source precompiled at build time (core/tools/embed.c), with its
     * debug information: what is loaded, unless this liblua reads
     * another bytecode format (then the source is) */
    const char *bytecode;
    size_t bytecode_length;
};

/* Terminated by an entry whose name is NULL. */
extern const struct embedded_module cutover_embedded[];

/* Registers each of `modules` in the package.preload table on top of the
 * stack; with the environment variable `dev_env` set to a folder, they
 * load from there instead (development).  Chunk names are
 * "@CHUNK_DIR/PATH".  Defined in host.c. */
struct lua_State;
void cutover_preload_embedded(struct lua_State *L,
                              const struct embedded_module *modules,
                              const char *dev_env, const char *chunk_dir);

#endif
