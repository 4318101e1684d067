/*
 * sandbox.c: runs playbook expressions and user Lua with an instruction
 * limit and a memory limit.  The environment (which globals exist) is
 * built in lua/cutover/expr.lua; this file enforces the budgets, which
 * Lua code cannot do for itself without the debug library.
 *
 * The count hook raises once the budget is spent and keeps raising every
 * SANDBOX_STEP instructions after that, so a pcall inside the sandbox
 * (if one is ever exposed) cannot swallow the limit.
 *
 * One budget per top-level evaluation: a nested call (a variable whose
 * value is itself a template) spends from the same counter and never
 * re-arms the hook, since re-arming would drop the instructions counted
 * since the last tick and a loop over such a variable would never be
 * charged.  A nested call's own, smaller limit is a floor on that counter.
 * Each nested call also costs SANDBOX_CALL_COST for the C work the hook
 * cannot see.
 *
 * A SIGINT or SIGTERM that arrives during an evaluation stops it at the
 * next tick ("interrupted"), so the controller answers a signal within
 * milliseconds whatever the budget.
 *
 * The hook cannot see inside C functions.  String methods ("x:match(p)")
 * are therefore switched, for the time of a sandbox call, to the table
 * given to sandbox.strings (built in expr.lua with core/pattern.c's
 * matcher, which charges its steps through sandbox_spend).
 */
#include "cutover.h"

#define SANDBOX_STEP 1000
#define SANDBOX_CALL_COST 64
#define SANDBOX_STRINGS "cutover.sandbox.strings"

static lua_Integer budget_left;   /* counts down across nested calls */
static lua_Integer budget_floor;  /* the innermost call's limit */
static unsigned interrupts_at_start;

static void sandbox_check(lua_State *L)
{
    if (loop_interrupts() != interrupts_at_start)
        luaL_error(L, "interrupted");
    if (budget_left < budget_floor)
        luaL_error(L, "instruction limit exceeded");
}

static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    budget_left -= SANDBOX_STEP;
    sandbox_check(L);
}

void sandbox_spend(lua_State *L, lua_Integer instructions)
{
    if (lua_gethook(L) != sandbox_hook)
        return;
    budget_left -= instructions;
    sandbox_check(L);
}

/*
 * Sets the string metatable's __index to the value on top of the stack
 * and leaves the previous __index there instead (called again with that
 * value, it restores it).
 */
static void swap_string_methods(lua_State *L)
{
    lua_pushliteral(L, "");
    if (!lua_getmetatable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_getfield(L, -1, "__index");     /* new "" mt old */
    lua_pushvalue(L, -4);
    lua_setfield(L, -3, "__index");
    lua_replace(L, -4);                 /* old "" mt */
    lua_pop(L, 2);
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
     * the outer call's floor and memory limit afterwards. */
    lua_Hook outer_hook = lua_gethook(L);
    int outer_mask = lua_gethookmask(L);
    int outer_count = lua_gethookcount(L);
    lua_Integer outer_floor = budget_floor;
    size_t outer_limit = cutover_mem_limit();
    size_t limit = cutover_mem_used() + (size_t)max_bytes;
    int nested = outer_hook == sandbox_hook;
    int swapped = 0;
    int status;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (max_instructions < 0)
        max_instructions = 0;
    if (nested) {
        budget_left -= SANDBOX_CALL_COST;
        sandbox_check(L);
    }
    lua_remove(L, 2);
    lua_remove(L, 2);                       /* fn args... */
    /* below fn: the string methods to restore afterwards (outermost only) */
    if (!nested) {
        lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_STRINGS);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
        } else {
            swap_string_methods(L);
            lua_insert(L, 1);               /* old fn args... */
            swapped = 1;
        }
    }
    if (outer_limit != 0 && outer_limit < limit)
        limit = outer_limit;
    if (nested) {
        if (budget_left - max_instructions > budget_floor)
            budget_floor = budget_left - max_instructions;
    } else {
        budget_left = max_instructions;
        budget_floor = 0;
        interrupts_at_start = loop_interrupts();
        lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, SANDBOX_STEP);
    }
    cutover_mem_set_limit(limit);
    status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    if (swapped) {
        lua_pushvalue(L, 1);
        swap_string_methods(L);
        lua_pop(L, 1);
        lua_remove(L, 1);
    }
    cutover_mem_set_limit(outer_limit);
    budget_floor = outer_floor;
    if (!nested)
        lua_sethook(L, outer_hook, outer_mask, outer_count);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/*
 * sandbox.strings(t): string methods use t's functions during sandbox
 * calls (t: string's functions with bounded pattern matching).
 */
static int sandbox_strings(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_STRINGS);
    return 0;
}

static const luaL_Reg sandbox_funcs[] = {
    {"call", sandbox_call},
    {"strings", sandbox_strings},
    {NULL, NULL}
};

int luaopen_cutover_sandbox(lua_State *L)
{
    luaL_newlib(L, sandbox_funcs);
    return 1;
}
