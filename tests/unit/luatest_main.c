/*
 * luatest_main.c: runs one Lua test file with the embedded modules and
 * the full standard library.  usage: cutover_luatest FILE.lua [ARGS...]
 * The file's chunk gets ARGS as ...; a raised error fails the test.
 */
#include <stdio.h>

#include "cutover.h"

int main(int argc, char **argv)
{
    lua_State *L;
    int status = 1;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: cutover_luatest FILE.lua [ARGS...]\n");
        return 2;
    }
    L = cutover_newstate();
    if (L == NULL)
        return 1;
    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        goto done;
    }
    for (i = 2; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (cutover_pcall(L, argc - 2, 0) != LUA_OK) {
        fprintf(stderr, "FAILED: %s\n", lua_tostring(L, -1));
        goto done;
    }
    status = 0;
done:
    fflush(stdout);
    cutover_closestate(L);
    return status;
}
