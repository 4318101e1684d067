/*
 * json.c: JSON with jansson.  Encoding walks Lua values; a table is an
 * array when its keys are exactly 1..n (n > 0) or when its metatable has
 * __jsontype = "array"; otherwise an object with string keys, sorted so
 * output is stable.  Strings that are not valid UTF-8 (command output)
 * get U+FFFD for each bad byte instead of failing the whole event.
 *
 * An encode's jansson tree lives only inside json.encode: its nodes and
 * the dumped text come from an arena (json_arena_*) that the next encode
 * reuses, so building it costs no malloc per node and dropping it no
 * walk of the tree.  Decoded trees use malloc as before.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cutover.h"

#define JSON_MAX_DEPTH 64
#define JSON_REF_MT "cutover.json.ref"

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    size_t need;
    size_t i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (left < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

/* Pushes s with each byte that starts no valid UTF-8 sequence replaced
 * by U+FFFD (internal: json.c's own repair). */
static void json_push_valid_utf8(lua_State *L, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    luaL_Buffer b;
    size_t i = 0;

    luaL_buffinit(L, &b);
    while (i < len) {
        size_t n = utf8_seq(u + i, len - i);
        if (n == 0) {
            luaL_addstring(&b, "\xEF\xBF\xBD");
            i++;
        } else {
            luaL_addlstring(&b, s + i, n);
            i += n;
        }
    }
    luaL_pushresult(&b);
}

/* Local UTF-8 check: 0 when valid. */
static int utf8_check_all(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq(u + i, len - i);
        if (n == 0)
            return -1;
        i += n;
    }
    return 0;
}

/*
 * The encode arena.  jansson allocates through json_arena_alloc and
 * json_arena_free (json_set_alloc_funcs, once).  While an encode runs
 * (arena_depth > 0), allocations are carved from chunks and frees of
 * them do nothing; when the outermost encode ends, all of it goes back
 * at once.  json_lencode does its work under lua_pcall, so the arena is
 * left even when the encode raises (nesting too deep, out of memory),
 * and an encode inside another (a finalizer run by the collector during
 * one) adds to the same arena without emptying it.  No userdata owns an
 * encode tree, so no finalizer walks arena memory.  A decode allocates
 * with malloc (arena_off), and its tree is freed by json_decref as
 * before, also when that runs during an encode.  A big encode keeps
 * about three times its text until it ends (jansson's growing buffer).
 * One lua_State and no threads: the arena is process-wide.
 */
#define ARENA_CHUNK (16 * 1024)            /* kept between encodes */
#define ARENA_CHUNK_MAX (4 * 1024 * 1024)  /* growth of later chunks */
#define ARENA_ALIGN 16

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;                  /* bytes of data */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

static struct arena_chunk *arena_head;  /* newest first; the last is kept */
static int arena_depth;                 /* encodes running */
static int arena_off;                   /* a decode runs: malloc */

static int in_arena(const void *p)
{
    const unsigned char *u = p;
    const struct arena_chunk *c;

    for (c = arena_head; c != NULL; c = c->next)
        if (u >= c->data && u < c->data + c->size)
            return 1;
    return 0;
}

static void *json_arena_alloc(size_t n)
{
    struct arena_chunk *c = arena_head;
    size_t need;
    size_t size;

    if (arena_depth == 0 || arena_off)
        return malloc(n);
    if (n > SIZE_MAX / 4)
        return NULL;
    need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (c == NULL || c->size - c->used < need) {
        /* each new chunk twice the last (few chunks for a big encode:
         * every free looks through them) */
        size = c == NULL ? ARENA_CHUNK : c->size * 2;
        if (size > ARENA_CHUNK_MAX)
            size = ARENA_CHUNK_MAX;
        if (size < need)
            size = need;
        c = malloc(sizeof *c + size);
        if (c == NULL)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = arena_head;
        arena_head = c;
        ARENA_POISON(c->data, c->size);
    }
    c->used += need;
    ARENA_UNPOISON(c->data + c->used - need, n);
    return c->data + c->used - need;
}

static void json_arena_free(void *p)
{
    if (p != NULL && !in_arena(p))
        free(p);
}

/* Empties the arena: every chunk but the oldest (the first, of
 * ARENA_CHUNK bytes) goes back to malloc; the kept one is poisoned
 * (ASan: a use after the encode shows). */
static void arena_reset(void)
{
    while (arena_head != NULL && arena_head->next != NULL) {
        struct arena_chunk *c = arena_head;
        arena_head = c->next;
        free(c);
    }
    if (arena_head != NULL && arena_head->size != ARENA_CHUNK) {
        free(arena_head);
        arena_head = NULL;
    }
    if (arena_head != NULL) {
        arena_head->used = 0;
        ARENA_POISON(arena_head->data, arena_head->size);
    }
}

/* A decoded tree is owned by a userdata (__gc). */
static int json_ref_gc(lua_State *L)
{
    json_t **ref = luaL_checkudata(L, 1, JSON_REF_MT);

    json_decref(*ref);
    *ref = NULL;
    return 0;
}

static int is_array(lua_State *L, int idx, size_t *n)
{
    lua_Integer count = 0;

    if (luaL_getmetafield(L, idx, "__jsontype") != LUA_TNIL) {
        int arr = strcmp(lua_tostring(L, -1), "array") == 0;
        lua_pop(L, 1);
        *n = lua_rawlen(L, idx);
        return arr;
    }
    *n = lua_rawlen(L, idx);
    if (*n == 0)
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1)) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return (size_t)count == *n;
}

/* Converts the value at idx; NULL on a value JSON cannot hold. */
static json_t *to_json(lua_State *L, int idx, int depth)
{
    json_t *out = NULL;
    size_t len;
    const char *s;

    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 6, "json.encode: nesting too deep");
    if (depth > JSON_MAX_DEPTH)
        luaL_error(L, "json.encode: nesting deeper than %d (a cycle?)",
                   JSON_MAX_DEPTH);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TLIGHTUSERDATA:
        return json_null();  /* yaml.null */
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx)))
            return json_null();
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (utf8_check_all(s, len) == 0)
            return json_stringn_nocheck(s, len);
        json_push_valid_utf8(L, s, len);
        s = lua_tolstring(L, -1, &len);
        out = json_stringn_nocheck(s, len);
        lua_pop(L, 1);
        return out;
    case LUA_TTABLE: {
        /* in the arena: a raise midway leaves nothing to free */
        size_t n;
        size_t i;
        if (is_array(L, idx, &n)) {
            out = json_array();
            for (i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i);
                json_array_append_new(out, to_json(L, -1, depth + 1));
                lua_pop(L, 1);
            }
        } else {
            out = json_object();
            lua_pushnil(L);
            while (lua_next(L, idx) != 0) {
                if (lua_type(L, -2) == LUA_TSTRING) {
                    s = lua_tolstring(L, -2, &len);
                    json_object_setn_new_nocheck(out, s, len,
                                                 to_json(L, -1, depth + 1));
                } else if (lua_type(L, -2) == LUA_TNUMBER) {
                    lua_pushvalue(L, -2);
                    s = lua_tolstring(L, -1, &len);
                    json_object_setn_new_nocheck(out, s, len,
                                                 to_json(L, -2, depth + 1));
                    lua_pop(L, 1);
                }
                lua_pop(L, 1);
            }
        }
        return out;
    }
    default:
        /* functions, userdata: describe rather than fail */
        lua_pushstring(L, luaL_typename(L, idx));
        out = json_string(lua_tostring(L, -1));
        lua_pop(L, 1);
        return out;
    }
}

/* json.encode's work, under lua_pcall: (value, pretty) -> string */
static int encode_body(lua_State *L)
{
    json_t *tree;
    char *text;
    size_t flags = JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_COMPACT;

    if (lua_toboolean(L, 2))
        flags = JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_INDENT(2);
    tree = to_json(L, 1, 0);
    if (tree == NULL)
        return luaL_error(L, "json.encode: cannot encode this value");
    text = json_dumps(tree, flags);
    if (text == NULL)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, text);  /* tree and text: freed with the arena */
    return 1;
}

/*
 * json.encode(value [, pretty]) -> string
 */
static int json_lencode(lua_State *L)
{
    int rc;

    lua_settop(L, 2);
    lua_pushcfunction(L, encode_body);
    lua_insert(L, 1);
    arena_depth++;
    rc = lua_pcall(L, 2, 1, 0);
    if (--arena_depth == 0)
        arena_reset();
    if (rc != LUA_OK)
        return lua_error(L);
    return 1;
}

static void push_json(lua_State *L, json_t *v, int depth)
{
    luaL_checkstack(L, 4, "json.decode: too deep");
    if (depth > JSON_MAX_DEPTH)
        luaL_error(L, "json.decode: nesting deeper than %d", JSON_MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        lua_newtable(L);
        json_object_foreach(v, key, val) {
            push_json(L, val, depth + 1);
            lua_setfield(L, -2, key);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        lua_newtable(L);
        json_array_foreach(v, i, val) {
            push_json(L, val, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

/*
 * json.decode(text) -> value | nil, "line L column C: message"
 */
static int json_ldecode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    json_t **ref;
    json_error_t error;

    ref = lua_newuserdatauv(L, sizeof *ref, 0);
    *ref = NULL;
    luaL_setmetatable(L, JSON_REF_MT);
    /* malloc'd, also in a decode run by a finalizer during an encode:
     * json_loadb raises nothing, so arena_off is always put back */
    arena_off++;
    *ref = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    arena_off--;
    if (*ref == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "line %d column %d: %s", error.line, error.column,
                        error.text);
        return 2;
    }
    push_json(L, *ref, 0);
    return 1;
}

/* json.valid_utf8(s) -> s with each invalid byte replaced by U+FFFD */
static int json_lvalid_utf8(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);

    json_push_valid_utf8(L, s, len);
    return 1;
}

static const luaL_Reg json_funcs[] = {
    {"encode", json_lencode},
    {"decode", json_ldecode},
    {"valid_utf8", json_lvalid_utf8},
    {NULL, NULL}
};

int luaopen_cutover_json(lua_State *L)
{
    json_set_alloc_funcs(json_arena_alloc, json_arena_free);
    luaL_newmetatable(L, JSON_REF_MT);
    lua_pushcfunction(L, json_ref_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, json_funcs);
    return 1;
}
