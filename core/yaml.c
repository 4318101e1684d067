/*
 * yaml.c: YAML text to Lua values, with the position of every node.
 *
 * One libyaml parser per call; the parser and the event being handled
 * live in a userdata so that a Lua error (out of memory) cannot leak them.
 * Plain scalars resolve as YAML 1.1 does for Ansible users (yes/no, 0644
 * octal); quoted scalars are always strings; mapping keys are always
 * strings.  A null is the light userdata yaml.null so that `key:` with no
 * value still exists in its table.
 *
 * Limits against hostile input: nesting depth, and the number of nodes
 * the document would have with every alias expanded (an alias shares the
 * anchored table, so memory stays small, but whoever walks the result
 * would walk the expansion: a billion-laughs file must fail here).
 *
 * Positions: pos[table] is the packed line/column of a mapping or
 * sequence, keypos[table][key or index] that of a key or item.  Packed
 * as line << 20 | column, both counted from 1.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cutover.h"

#define YAML_PARSER_MT "cutover.yaml.parser"
#define YAML_DEFAULT_MAX_DEPTH 64
#define YAML_HARD_MAX_DEPTH 200
#define YAML_DEFAULT_MAX_NODES 1000000
#define YAML_DEFAULT_MAX_BYTES (8 * 1024 * 1024)

/* Stack slots of one open container, relative to its base. */
enum { SLOT_TABLE, SLOT_KEYPOS, SLOT_KEY, SLOT_MERGES, SLOT_ANCHOR,
       SLOTS_PER_FRAME };

struct yaml_frame {
    int is_map;
    int base;              /* absolute stack index of SLOT_TABLE */
    lua_Integer count;     /* items so far in a sequence */
    lua_Integer nodes_at_start;
    int key_is_merge;
};

struct yaml_state {
    yaml_parser_t parser;
    yaml_event_t event;
    int parser_ready;
    int event_ready;
    int depth;
    struct yaml_frame frames[YAML_HARD_MAX_DEPTH];
};

static char yaml_null_marker;

static int yaml_state_gc(lua_State *L)
{
    struct yaml_state *st = luaL_checkudata(L, 1, YAML_PARSER_MT);

    if (st->event_ready)
        yaml_event_delete(&st->event);
    if (st->parser_ready)
        yaml_parser_delete(&st->parser);
    st->event_ready = 0;
    st->parser_ready = 0;
    return 0;
}

static lua_Integer pack_mark(yaml_mark_t mark)
{
    lua_Integer col = (lua_Integer)mark.column + 1;

    if (col > 0xFFFFF)
        col = 0xFFFFF;
    return ((lua_Integer)mark.line + 1) << 20 | col;
}

/* The byte offset of character index in text (libyaml counts characters). */
static size_t char_offset(const char *text, size_t len, size_t index)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0) == 0x80)
            continue;
        if (index == 0)
            return i;
        index--;
    }
    return len;
}

/*
 * The mark of byte offset in text; columns count characters, as libyaml's
 * do.  With to_lead, an offset at a bad trailing byte moves back to the
 * byte that started the UTF-8 sequence.
 */
static yaml_mark_t offset_mark(const char *text, size_t len, size_t offset,
                               int to_lead)
{
    yaml_mark_t mark;
    size_t line_start = 0;
    size_t i;

    if (offset > len)
        offset = len;
    if (to_lead) {
        size_t p = offset;
        while (p > 0 && offset - p < 2 &&
               ((unsigned char)text[p - 1] & 0xC0) == 0x80)
            p--;
        if (p > 0 && (unsigned char)text[p - 1] >= 0xC0)
            offset = p - 1;
    }
    memset(&mark, 0, sizeof mark);
    for (i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            mark.line++;
            line_start = i + 1;
        }
    }
    for (i = line_start; i < offset; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            mark.column++;
    }
    mark.index = offset;
    return mark;
}

/* Raises nothing: pushes "NAME:LINE:COL: message" and returns 2 (nil, msg). */
static int yaml_fail_at(lua_State *L, const char *name, yaml_mark_t mark,
                        const char *fmt, const char *detail)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s:%d:%d: ", name, (int)mark.line + 1,
                    (int)mark.column + 1);
    lua_pushfstring(L, fmt, detail);
    lua_concat(L, 2);
    return 2;
}

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words != NULL; words++) {
        if (strcmp(s, *words) == 0)
            return 1;
    }
    return 0;
}

static int parse_integer(const char *s, size_t len, lua_Integer *out)
{
    const char *p = s;
    int base = 10;
    int negative = 0;
    char *end;
    unsigned long long magnitude;

    if (*p == '+' || *p == '-') {
        negative = *p == '-';
        p++;
    }
    if (*p == '\0')
        return 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && p[1] == 'o') {
        base = 8;
        p += 2;
    } else if (p[0] == '0' && p[1] != '\0') {
        base = 8;  /* YAML 1.1: 0644 is octal, as file modes expect */
        p += 1;
    }
    if (*p == '\0' || *p == '+' || *p == '-' || strchr(p, '_') != NULL)
        return 0;
    errno = 0;
    magnitude = strtoull(p, &end, base);
    if (errno != 0 || end != s + len)
        return 0;
    if (magnitude > (unsigned long long)LUA_MAXINTEGER + negative)
        return 0;
    *out = negative ? (lua_Integer)(0 - magnitude) : (lua_Integer)magnitude;
    return 1;
}

static int parse_float(const char *s, size_t len, lua_Number *out)
{
    const char *p = s;
    int digits = 0;
    int fraction_or_exponent = 0;
    char *end;

    if (*p == '+' || *p == '-')
        p++;
    /* Only YAML's float syntax; strtod alone also takes "inf", "0x1p3". */
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        fraction_or_exponent = 1;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        fraction_or_exponent = 1;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    /* Digits alone are an integer too big for one (or "09"): text. */
    if (p != s + len || !fraction_or_exponent)
        return 0;
    *out = strtod(s, &end);
    return end == s + len;
}

/* Pushes the Lua value of a scalar event. */
static void push_scalar(lua_State *L, const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL",
                                        NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                        "YES", "on", "On", "ON", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no",
                                         "No", "NO", "off", "Off", "OFF",
                                         NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf",
                                       "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    lua_Integer i;
    lua_Number f;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0) ||
        strlen(s) != len) {
        lua_pushlstring(L, s, len);
        return;
    }
    /* Most plain scalars are ordinary words: only these first characters
     * can start a null, boolean or number. */
    if (strchr("~nNtTyYoOfF0123456789+-.", s[0]) == NULL || s[0] == '\0') {
        if (s[0] != '\0') {
            lua_pushlstring(L, s, len);
            return;
        }
    }
    if (is_one_of(s, nulls))
        lua_pushlightuserdata(L, &yaml_null_marker);
    else if (is_one_of(s, trues))
        lua_pushboolean(L, 1);
    else if (is_one_of(s, falses))
        lua_pushboolean(L, 0);
    else if (parse_integer(s, len, &i))
        lua_pushinteger(L, i);
    else if (parse_float(s, len, &f))
        lua_pushnumber(L, f);
    else if (is_one_of(s, infs))
        lua_pushnumber(L, HUGE_VAL);
    else if (is_one_of(s, ninfs))
        lua_pushnumber(L, -HUGE_VAL);
    else if (is_one_of(s, nans))
        lua_pushnumber(L, 0.0 / 0.0);
    else
        lua_pushlstring(L, s, len);
}

/*
 * Stores the value on top of the stack into the innermost open container
 * (or as the document root at root_index), popping it.
 * Returns NULL or an error format taking one %s.
 */
static const char *yaml_store(lua_State *L, struct yaml_state *st,
                              int root_index, lua_Integer packed_pos,
                              int value_is_scalar, int value_is_plain_merge)
{
    struct yaml_frame *fr;
    int base;

    if (st->depth == 0) {
        lua_replace(L, root_index);
        return NULL;
    }
    fr = &st->frames[st->depth - 1];
    base = fr->base;
    if (!fr->is_map) {
        fr->count++;
        lua_rawseti(L, base + SLOT_TABLE, fr->count);
        lua_pushinteger(L, packed_pos);
        lua_rawseti(L, base + SLOT_KEYPOS, fr->count);
        return NULL;
    }
    if (lua_isnil(L, base + SLOT_KEY)) {
        /* This node is a key. */
        if (!value_is_scalar) {
            lua_pop(L, 1);
            return "%scomplex mapping keys are not supported";
        }
        fr->key_is_merge = value_is_plain_merge;
        if (!lua_isstring(L, -1)) {
            /* the caller already turned null and booleans into text */
            lua_pop(L, 1);
            return "%sa mapping key must be text";
        }
        lua_tostring(L, -1);  /* an alias to a number: its text */
        if (!fr->key_is_merge) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, base + SLOT_TABLE) != LUA_TNIL) {
                lua_Integer first;
                lua_pushvalue(L, -2);
                lua_rawget(L, base + SLOT_KEYPOS);
                first = lua_tointeger(L, -1) >> 20;
                /* the format stays on the stack until the call returns */
                return lua_pushfstring(L, "duplicate key '%%s' (first at "
                                       "line %d)", (int)first);
            }
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushinteger(L, packed_pos);
            lua_rawset(L, base + SLOT_KEYPOS);
        }
        lua_replace(L, base + SLOT_KEY);
        return NULL;
    }
    if (fr->key_is_merge) {
        /* Collected; applied when the mapping ends, so explicit keys win. */
        if (lua_isnil(L, base + SLOT_MERGES)) {
            lua_newtable(L);
            lua_replace(L, base + SLOT_MERGES);
        }
        lua_rawseti(L, base + SLOT_MERGES,
                    (lua_Integer)luaL_len(L, base + SLOT_MERGES) + 1);
    } else {
        lua_pushvalue(L, base + SLOT_KEY);
        lua_insert(L, -2);
        lua_rawset(L, base + SLOT_TABLE);
    }
    lua_pushnil(L);
    lua_replace(L, base + SLOT_KEY);
    fr->key_is_merge = 0;
    return NULL;
}

/* Copies keys of the mapping on top into table at index t, where absent. */
static int merge_one(lua_State *L, int t, int keypos)
{
    int src = lua_gettop(L);

    if (!lua_istable(L, src) || lua_rawlen(L, src) > 0)
        return -1;
    lua_pushnil(L);
    while (lua_next(L, src) != 0) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, t) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, t);
            /* the merged key has no position of its own in this map */
            (void)keypos;
        } else {
            lua_pop(L, 2);
        }
    }
    return 0;
}

static int apply_merges(lua_State *L, struct yaml_frame *fr)
{
    int merges = fr->base + SLOT_MERGES;
    lua_Integer n;
    lua_Integer i;
    lua_Integer j;

    if (lua_isnil(L, merges))
        return 0;
    n = (lua_Integer)lua_rawlen(L, merges);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, merges, i);
        if (lua_istable(L, -1) && lua_rawlen(L, -1) > 0) {
            /* << : [*a, *b]: earlier ones win */
            lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
            for (j = 1; j <= m; j++) {
                lua_rawgeti(L, -1, j);
                if (merge_one(L, fr->base + SLOT_TABLE,
                              fr->base + SLOT_KEYPOS) != 0)
                    return -1;
                lua_pop(L, 1);
            }
        } else if (merge_one(L, fr->base + SLOT_TABLE,
                             fr->base + SLOT_KEYPOS) != 0) {
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/*
 * yaml.load(text, name [, opts]) -> value, pos, keypos | nil, message
 * Params on Lua stack: 1: YAML text; 2: name used in messages (a path);
 * 3: optional table {max_depth=, max_nodes=}.
 * Returns the document's value (yaml.null for an empty document), the
 * pos table and the keypos table (see the top of this file).
 */
static int yaml_load(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer max_depth = YAML_DEFAULT_MAX_DEPTH;
    lua_Integer max_nodes = YAML_DEFAULT_MAX_NODES;
    lua_Integer nodes = 0;
    int documents = 0;
    int done = 0;
    int root, pos, keypos, anchors, anchor_sizes;
    struct yaml_state *st;
    const char *err;

    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "max_depth");
        max_depth = luaL_optinteger(L, -1, max_depth);
        lua_getfield(L, 3, "max_nodes");
        max_nodes = luaL_optinteger(L, -1, max_nodes);
        lua_pop(L, 2);
    }
    luaL_argcheck(L, max_depth > 0 && max_depth <= YAML_HARD_MAX_DEPTH, 3,
                  "max_depth out of range");
    lua_settop(L, 2);

    st = lua_newuserdatauv(L, sizeof *st, 0);  /* 3 */
    memset(st, 0, sizeof *st);
    luaL_setmetatable(L, YAML_PARSER_MT);
    if (!yaml_parser_initialize(&st->parser))
        return luaL_error(L, "yaml: cannot initialise the parser");
    st->parser_ready = 1;
    yaml_parser_set_input_string(&st->parser, (const unsigned char *)text,
                                 len);

    lua_pushlightuserdata(L, &yaml_null_marker);
    root = lua_gettop(L);                       /* 4 */
    lua_newtable(L);
    pos = lua_gettop(L);                        /* 5 */
    lua_newtable(L);
    keypos = lua_gettop(L);                     /* 6 */
    lua_newtable(L);
    anchors = lua_gettop(L);                    /* 7 */
    lua_newtable(L);
    anchor_sizes = lua_gettop(L);               /* 8 */

    while (!done) {
        yaml_event_t *ev = &st->event;
        lua_Integer here;
        const char *anchor = NULL;

        if (!yaml_parser_parse(&st->parser, ev)) {
            yaml_mark_t mark = st->parser.problem_mark;
            const char *problem = st->parser.problem != NULL
                                      ? st->parser.problem
                                      : "malformed YAML";
            if (st->parser.error == YAML_READER_ERROR) {
                /* Bad bytes: libyaml gives only an offset. */
                mark = offset_mark(text, len, st->parser.problem_offset,
                                   strstr(problem, "trailing") != NULL);
                if (strstr(problem, "UTF-8") != NULL)
                    return yaml_fail_at(L, name, mark, "the file is not "
                                        "valid UTF-8 (%s)", problem);
                return yaml_fail_at(L, name, mark, "YAML syntax error: %s",
                                    problem);
            }
            if (strstr(problem, "cannot start any token") != NULL &&
                text[char_offset(text, len, mark.index)] == '\t')
                return yaml_fail_at(L, name, mark, "YAML syntax error: %s",
                                    "a tab cannot start a token here "
                                    "(indent YAML with spaces)");
            lua_pushfstring(L, "YAML syntax error: %s", problem);
            if (st->parser.context != NULL &&
                st->parser.context_mark.line != mark.line) {
                lua_pushfstring(L, " %s that starts at line %d",
                                st->parser.context,
                                (int)st->parser.context_mark.line + 1);
                lua_concat(L, 2);
            } else if (st->parser.context != NULL) {
                lua_pushfstring(L, " %s", st->parser.context);
                lua_concat(L, 2);
            }
            return yaml_fail_at(L, name, mark, "%s", lua_tostring(L, -1));
        }
        st->event_ready = 1;
        here = pack_mark(ev->start_mark);
        luaL_checkstack(L, SLOTS_PER_FRAME + 8, "yaml: nesting too deep");

        switch (ev->type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                return yaml_fail_at(L, name, ev->start_mark,
                                    "%sonly one YAML document per file is "
                                    "supported", "");
            break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT: {
            int merge = 0;
            int scalar = 1;
            if (++nodes > max_nodes)
                goto too_many;
            if (ev->type == YAML_ALIAS_EVENT) {
                const char *a = (const char *)ev->data.alias.anchor;
                lua_getfield(L, anchor_sizes, a);
                if (lua_isnil(L, -1))
                    return yaml_fail_at(L, name, ev->start_mark,
                                        "unknown alias '*%s'", a);
                nodes += lua_tointeger(L, -1) - 1;
                lua_pop(L, 1);
                if (nodes > max_nodes)
                    goto too_many;
                lua_getfield(L, anchors, a);
                scalar = !lua_istable(L, -1);
            } else {
                const char *tag = (const char *)ev->data.scalar.tag;
                if (tag != NULL && strncmp(tag, "tag:yaml.org,2002:", 18)
                                       != 0)
                    return yaml_fail_at(L, name, ev->start_mark,
                                        "unsupported YAML tag '%s'", tag);
                push_scalar(L, ev);
                merge = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                        strcmp((const char *)ev->data.scalar.value, "<<")
                            == 0;
                anchor = (const char *)ev->data.scalar.anchor;
                if (anchor != NULL) {
                    lua_pushvalue(L, -1);
                    lua_setfield(L, anchors, anchor);
                    lua_pushinteger(L, 1);
                    lua_setfield(L, anchor_sizes, anchor);
                }
            }
            if (st->depth > 0 && st->frames[st->depth - 1].is_map &&
                lua_isnil(L, st->frames[st->depth - 1].base + SLOT_KEY) &&
                scalar && (ev->type == YAML_SCALAR_EVENT
                               ? lua_type(L, -1) != LUA_TSTRING
                               : !lua_isstring(L, -1))) {
                /* null, boolean or number key: use its text as written */
                lua_pop(L, 1);
                if (ev->type == YAML_SCALAR_EVENT)
                    lua_pushlstring(L, (const char *)ev->data.scalar.value,
                                    ev->data.scalar.length);
                else
                    lua_pushstring(L, (const char *)ev->data.alias.anchor);
            }
            err = yaml_store(L, st, root, here, scalar, merge);
            if (err != NULL)
                return yaml_fail_at(L, name, ev->start_mark, err,
                                    ev->type == YAML_SCALAR_EVENT
                                        ? (const char *)ev->data.scalar.value
                                        : "");
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            struct yaml_frame *fr;
            const char *tag = ev->type == YAML_MAPPING_START_EVENT
                ? (const char *)ev->data.mapping_start.tag
                : (const char *)ev->data.sequence_start.tag;
            if (tag != NULL && strncmp(tag, "tag:yaml.org,2002:", 18) != 0)
                return yaml_fail_at(L, name, ev->start_mark,
                                    "unsupported YAML tag '%s'", tag);
            if (++nodes > max_nodes)
                goto too_many;
            if (st->depth > 0 && st->frames[st->depth - 1].is_map &&
                lua_isnil(L, st->frames[st->depth - 1].base + SLOT_KEY))
                return yaml_fail_at(L, name, ev->start_mark,
                                    "%scomplex mapping keys are not "
                                    "supported", "");
            if (st->depth >= max_depth)
                return yaml_fail_at(L, name, ev->start_mark,
                                    "nesting deeper than %s levels",
                                    lua_pushfstring(L, "%d",
                                                    (int)max_depth));
            fr = &st->frames[st->depth++];
            fr->is_map = ev->type == YAML_MAPPING_START_EVENT;
            fr->count = 0;
            fr->key_is_merge = 0;
            fr->nodes_at_start = nodes;
            lua_newtable(L);
            fr->base = lua_gettop(L);
            lua_pushvalue(L, -1);
            lua_pushinteger(L, here);
            lua_rawset(L, pos);
            lua_newtable(L);                    /* keypos */
            lua_pushvalue(L, fr->base);
            lua_pushvalue(L, -2);
            lua_rawset(L, keypos);
            lua_pushnil(L);                     /* key */
            lua_pushnil(L);                     /* merges */
            anchor = fr->is_map
                ? (const char *)ev->data.mapping_start.anchor
                : (const char *)ev->data.sequence_start.anchor;
            if (anchor != NULL)
                lua_pushstring(L, anchor);
            else
                lua_pushnil(L);
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            struct yaml_frame *fr = &st->frames[st->depth - 1];
            lua_Integer start_pos;
            int base = fr->base;
            if (fr->is_map && apply_merges(L, fr) != 0)
                return yaml_fail_at(L, name, ev->start_mark,
                                    "%sa merge key '<<' needs a mapping or "
                                    "a list of mappings", "");
            if (!lua_isnil(L, base + SLOT_ANCHOR)) {
                lua_pushvalue(L, base + SLOT_TABLE);
                lua_setfield(L, anchors, lua_tostring(L, base + SLOT_ANCHOR));
                lua_pushinteger(L, nodes - fr->nodes_at_start + 1);
                lua_setfield(L, anchor_sizes,
                             lua_tostring(L, base + SLOT_ANCHOR));
            }
            lua_pushvalue(L, base + SLOT_TABLE);
            lua_rawget(L, pos);
            start_pos = lua_tointeger(L, -1);
            lua_pop(L, 1);
            lua_settop(L, base);                /* just the table */
            st->depth--;
            err = yaml_store(L, st, root, start_pos, 0, 0);
            if (err != NULL)
                return yaml_fail_at(L, name, ev->start_mark, err, "");
            break;
        }
        default:
            break;
        }
        yaml_event_delete(ev);
        st->event_ready = 0;
    }
    lua_pushvalue(L, root);
    lua_pushvalue(L, pos);
    lua_pushvalue(L, keypos);
    return 3;

too_many:
    return yaml_fail_at(L, name, st->event.start_mark,
                        "document too large: more than %s nodes with "
                        "aliases expanded (alias expansion limit)",
                        lua_pushfstring(L, "%d", (int)max_nodes));
}

/*
 * yaml.unpack(packed) -> line, column
 */
static int yaml_unpack(lua_State *L)
{
    lua_Integer p = luaL_checkinteger(L, 1);

    lua_pushinteger(L, p >> 20);
    lua_pushinteger(L, p & 0xFFFFF);
    return 2;
}

static const luaL_Reg yaml_funcs[] = {
    {"load", yaml_load},
    {"unpack", yaml_unpack},
    {NULL, NULL}
};

int luaopen_cutover_yaml(lua_State *L)
{
    luaL_newmetatable(L, YAML_PARSER_MT);
    lua_pushcfunction(L, yaml_state_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, yaml_state_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, yaml_funcs);
    lua_pushlightuserdata(L, &yaml_null_marker);
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, YAML_DEFAULT_MAX_BYTES);
    lua_setfield(L, -2, "max_bytes");
    return 1;
}
