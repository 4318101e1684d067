/*
 * sandbox.c: runs playbook expressions and user Lua with an instruction
 * limit and a memory limit.  The environment (which globals exist) is
 * built in lua/cutover/expr.lua; this file enforces the budgets, which
 * Lua code cannot do for itself without the debug library.
 *
 * The count hook raises once the budget is spent and keeps raising every
 * SANDBOX_STEP instructions after that, so a pcall inside the sandbox
 * (if one is ever exposed) cannot swallow the limit.
 */
#include "cutover.h"

#define SANDBOX_STEP 1000

static lua_Integer budget_left;

static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    budget_left -= SANDBOX_STEP;
    if (budget_left < 0)
        luaL_error(L, "instruction limit exceeded");
}

/*
 * sandbox.call(fn, max_instructions, max_bytes, ...) -> true, results...
 *                                                    | false, error
 * Calls fn(...) with both limits in force; max_bytes counts what fn
 * allocates on top of what the state already holds.  Not yieldable.
 */
static int sandbox_call(lua_State *L)
{
    lua_Integer max_instructions = luaL_checkinteger(L, 2);
    lua_Integer max_bytes = luaL_checkinteger(L, 3);
    int nargs = lua_gettop(L) - 3;
    /* Calls nest (a variable's value is itself an expression): restore
     * the outer call's hook, budget and memory limit afterwards. */
    lua_Hook outer_hook = lua_gethook(L);
    int outer_mask = lua_gethookmask(L);
    int outer_count = lua_gethookcount(L);
    lua_Integer outer_budget = budget_left;
    size_t outer_limit = cutover_mem_limit();
    size_t limit = cutover_mem_used() + (size_t)max_bytes;
    int status;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_remove(L, 2);
    lua_remove(L, 2);                       /* fn args... */
    if (outer_hook == sandbox_hook && outer_budget < max_instructions)
        max_instructions = outer_budget;
    if (outer_limit != 0 && outer_limit < limit)
        limit = outer_limit;
    budget_left = max_instructions;
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, SANDBOX_STEP);
    cutover_mem_set_limit(limit);
    status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    cutover_mem_set_limit(outer_limit);
    if (outer_hook == sandbox_hook)
        budget_left = outer_budget - (max_instructions - budget_left);
    lua_sethook(L, outer_hook, outer_mask, outer_count);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static const luaL_Reg sandbox_funcs[] = {
    {"call", sandbox_call},
    {NULL, NULL}
};

int luaopen_cutover_sandbox(lua_State *L)
{
    luaL_newlib(L, sandbox_funcs);
    return 1;
}
