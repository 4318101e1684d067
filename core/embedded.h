/* The Lua modules compiled into the binary (generated lua_modules.c). */
#ifndef CUTOVER_EMBEDDED_H
#define CUTOVER_EMBEDDED_H
#include <stddef.h>

struct embedded_module {
    const char *name;   /* "cutover.actions.copy" */
    const char *path;   /* "cutover/actions/copy.lua", for dev loading */
    const char *source;
    size_t length;
};

/* Terminated by an entry whose name is NULL. */
extern const struct embedded_module cutover_embedded[];

#endif
