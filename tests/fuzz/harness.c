/*
 * harness.c: one fuzz target per binary, named by FUZZ_ENTRY at compile
 * time.  The input goes, as a Lua string, to the entry of that name in
 * tests/fuzz/targets.lua, which feeds it to the same function the
 * runtime uses (the YAML loader, expressions, inventory readers, ...).
 * An entry returns normally for any input; a raised Lua error is a bug in
 * cutover (bad input must give nil, message), so it aborts like a crash.
 *
 * Built two ways: with -fsanitize=fuzzer (CUTOVER_FUZZ=ON, scripts/fuzz.sh)
 * and standalone (FUZZ_STANDALONE), where main() runs each file given on
 * the command line once: ctest replays the seed corpus and every crash
 * that became a regression file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cutover.h"

#ifndef FUZZ_ENTRY
#error "FUZZ_ENTRY must name a target"
#endif
#ifndef FUZZ_TARGETS_FILE
#error "FUZZ_TARGETS_FILE must name tests/fuzz/targets.lua"
#endif

static lua_State *fuzz_state;
static int fuzz_entry_ref = LUA_NOREF;

static void fuzz_init(void)
{
    fuzz_state = cutover_newstate();
    if (fuzz_state == NULL)
        abort();
    if (luaL_loadfile(fuzz_state, FUZZ_TARGETS_FILE) != LUA_OK ||
        cutover_pcall(fuzz_state, 0, 1) != LUA_OK) {
        fprintf(stderr, "fuzz: %s\n", lua_tostring(fuzz_state, -1));
        abort();
    }
    lua_getfield(fuzz_state, -1, FUZZ_ENTRY);
    if (!lua_isfunction(fuzz_state, -1)) {
        fprintf(stderr, "fuzz: no target '%s'\n", FUZZ_ENTRY);
        abort();
    }
    fuzz_entry_ref = luaL_ref(fuzz_state, LUA_REGISTRYINDEX);
    lua_settop(fuzz_state, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_state == NULL)
        fuzz_init();
    lua_rawgeti(fuzz_state, LUA_REGISTRYINDEX, fuzz_entry_ref);
    lua_pushlstring(fuzz_state, (const char *)data, size);
    if (cutover_pcall(fuzz_state, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz: target %s raised: %s\n", FUZZ_ENTRY,
                lua_tostring(fuzz_state, -1));
        abort();
    }
    lua_settop(fuzz_state, 0);
    /* Keep memory flat across millions of inputs. */
    lua_gc(fuzz_state, LUA_GCSTEP, 0);
    return 0;
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        char *buf;
        long len;

        if (f == NULL) {
            perror(argv[i]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc(len > 0 ? (size_t)len : 1);
        if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
            fclose(f);
            free(buf);
            return 1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)buf, (size_t)len);
        free(buf);
    }
    printf("%s: %d input(s) replayed\n", FUZZ_ENTRY, argc - 1);
    if (fuzz_state != NULL)
        cutover_closestate(fuzz_state);
    return 0;
}
#endif
