/*
 * main.c: start-up.  Everything after creating the state happens inside
 * one protected call to cutover.cli.main, which returns the exit code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cutover.h"

/* Exit code when the runtime itself fails (documented in docs/cli.md). */
#define EXIT_INTERNAL 70
#define EXIT_USAGE 2

int main(int argc, char **argv)
{
    lua_State *L = cutover_newstate();
    int status = EXIT_INTERNAL;
    int i;

    if (L == NULL && cutover_bad_setting())
        return EXIT_USAGE;
    if (L == NULL) {
        fprintf(stderr, "cutover: cannot create the Lua state\n");
        return EXIT_INTERNAL;
    }
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cutover.cli");
    if (cutover_pcall(L, 1, 1) != LUA_OK)
        goto failed;
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    if (cutover_pcall(L, 1, 1) != LUA_OK)
        goto failed;
    status = (int)luaL_optinteger(L, -1, 0);
    goto done;
failed:
    if (lua_type(L, -1) == LUA_TSTRING &&
        strcmp(lua_tostring(L, -1), "not enough memory") == 0)
        fprintf(stderr, "cutover: the controller reached its memory limit "
                "(%zu MiB; CUTOVER_MEMORY_LIMIT sets it)\n",
                cutover_mem_limit() >> 20);
    else
        fprintf(stderr, "cutover: internal error: %s\n", lua_tostring(L, -1));
done:
    fflush(stdout);
    cutover_closestate(L);
    return status;
}
