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

/* What one yaml.load call carries from event to event: the input, its
 * limits, the node count so far, and the stack indexes of its tables. */
struct yaml_load {
    struct yaml_state *st;
    const char *text;
    size_t len;
    const char *name;
    lua_Integer max_depth;
    lua_Integer max_nodes;
    lua_Integer nodes;
    int documents;
    int done;
    int root, pos, keypos, anchors, anchor_sizes;
};

/* The parser refused the text: its problem, at the right place. */
static int load_syntax_error(lua_State *L, struct yaml_load *ld)
{
    struct yaml_state *st = ld->st;
    yaml_mark_t mark = st->parser.problem_mark;
    const char *problem = st->parser.problem != NULL ? st->parser.problem
                                                     : "malformed YAML";

    if (st->parser.error == YAML_READER_ERROR) {
        /* Bad bytes: libyaml gives only an offset. */
        mark = offset_mark(ld->text, ld->len, st->parser.problem_offset,
                           strstr(problem, "trailing") != NULL);
        if (strstr(problem, "UTF-8") != NULL)
            return yaml_fail_at(L, ld->name, mark, "the file is not "
                                "valid UTF-8 (%s)", problem);
        return yaml_fail_at(L, ld->name, mark, "YAML syntax error: %s",
                            problem);
    }
    if (strstr(problem, "cannot start any token") != NULL &&
        ld->text[char_offset(ld->text, ld->len, mark.index)] == '\t')
        return yaml_fail_at(L, ld->name, mark, "YAML syntax error: %s",
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
    return yaml_fail_at(L, ld->name, mark, "%s", lua_tostring(L, -1));
}

static int load_too_many(lua_State *L, struct yaml_load *ld)
{
    return yaml_fail_at(L, ld->name, ld->st->event.start_mark,
                        "document too large: more than %s nodes with "
                        "aliases expanded (alias expansion limit)",
                        lua_pushfstring(L, "%d", (int)ld->max_nodes));
}

/* A scalar or an alias: its value stored in the collection around it.
 * Returns 0, or the results of a failure (nil, message). */
static int load_scalar(lua_State *L, struct yaml_load *ld, yaml_event_t *ev,
                       lua_Integer here)
{
    struct yaml_state *st = ld->st;
    int merge = 0;
    int scalar = 1;
    const char *err;

    if (++ld->nodes > ld->max_nodes)
        return load_too_many(L, ld);
    if (ev->type == YAML_ALIAS_EVENT) {
        const char *a = (const char *)ev->data.alias.anchor;
        lua_getfield(L, ld->anchor_sizes, a);
        if (lua_isnil(L, -1))
            return yaml_fail_at(L, ld->name, ev->start_mark,
                                "unknown alias '*%s'", a);
        ld->nodes += lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
        if (ld->nodes > ld->max_nodes)
            return load_too_many(L, ld);
        lua_getfield(L, ld->anchors, a);
        scalar = !lua_istable(L, -1);
    } else {
        const char *tag = (const char *)ev->data.scalar.tag;
        const char *anchor;
        if (tag != NULL && strncmp(tag, "tag:yaml.org,2002:", 18) != 0)
            return yaml_fail_at(L, ld->name, ev->start_mark,
                                "unsupported YAML tag '%s'", tag);
        push_scalar(L, ev);
        merge = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                strcmp((const char *)ev->data.scalar.value, "<<") == 0;
        anchor = (const char *)ev->data.scalar.anchor;
        if (anchor != NULL) {
            lua_pushvalue(L, -1);
            lua_setfield(L, ld->anchors, anchor);
            lua_pushinteger(L, 1);
            lua_setfield(L, ld->anchor_sizes, anchor);
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
    err = yaml_store(L, st, ld->root, here, scalar, merge);
    if (err != NULL)
        return yaml_fail_at(L, ld->name, ev->start_mark, err,
                            ev->type == YAML_SCALAR_EVENT
                                ? (const char *)ev->data.scalar.value
                                : "");
    return 0;
}

/* A mapping or sequence starts: a new frame (its table, keypos, key,
 * merges and anchor slots) on the stack.  Returns 0, or the results of
 * a failure. */
static int load_collection_start(lua_State *L, struct yaml_load *ld,
                                 yaml_event_t *ev, lua_Integer here)
{
    struct yaml_state *st = ld->st;
    struct yaml_frame *fr;
    const char *anchor;
    const char *tag = ev->type == YAML_MAPPING_START_EVENT
        ? (const char *)ev->data.mapping_start.tag
        : (const char *)ev->data.sequence_start.tag;

    if (tag != NULL && strncmp(tag, "tag:yaml.org,2002:", 18) != 0)
        return yaml_fail_at(L, ld->name, ev->start_mark,
                            "unsupported YAML tag '%s'", tag);
    if (++ld->nodes > ld->max_nodes)
        return load_too_many(L, ld);
    if (st->depth > 0 && st->frames[st->depth - 1].is_map &&
        lua_isnil(L, st->frames[st->depth - 1].base + SLOT_KEY))
        return yaml_fail_at(L, ld->name, ev->start_mark,
                            "%scomplex mapping keys are not "
                            "supported", "");
    if (st->depth >= ld->max_depth)
        return yaml_fail_at(L, ld->name, ev->start_mark,
                            "nesting deeper than %s levels",
                            lua_pushfstring(L, "%d", (int)ld->max_depth));
    fr = &st->frames[st->depth++];
    fr->is_map = ev->type == YAML_MAPPING_START_EVENT;
    fr->count = 0;
    fr->key_is_merge = 0;
    fr->nodes_at_start = ld->nodes;
    lua_newtable(L);
    fr->base = lua_gettop(L);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, here);
    lua_rawset(L, ld->pos);
    lua_newtable(L);                    /* keypos */
    lua_pushvalue(L, fr->base);
    lua_pushvalue(L, -2);
    lua_rawset(L, ld->keypos);
    lua_pushnil(L);                     /* key */
    lua_pushnil(L);                     /* merges */
    anchor = fr->is_map
        ? (const char *)ev->data.mapping_start.anchor
        : (const char *)ev->data.sequence_start.anchor;
    if (anchor != NULL)
        lua_pushstring(L, anchor);
    else
        lua_pushnil(L);
    return 0;
}

/* A mapping or sequence ends: merges applied, its anchor recorded, its
 * frame popped and its table stored in the collection around it.
 * Returns 0, or the results of a failure. */
static int load_collection_end(lua_State *L, struct yaml_load *ld,
                               yaml_event_t *ev)
{
    struct yaml_state *st = ld->st;
    struct yaml_frame *fr = &st->frames[st->depth - 1];
    lua_Integer start_pos;
    int base = fr->base;
    const char *err;

    if (fr->is_map && apply_merges(L, fr) != 0)
        return yaml_fail_at(L, ld->name, ev->start_mark,
                            "%sa merge key '<<' needs a mapping or "
                            "a list of mappings", "");
    if (!lua_isnil(L, base + SLOT_ANCHOR)) {
        lua_pushvalue(L, base + SLOT_TABLE);
        lua_setfield(L, ld->anchors, lua_tostring(L, base + SLOT_ANCHOR));
        lua_pushinteger(L, ld->nodes - fr->nodes_at_start + 1);
        lua_setfield(L, ld->anchor_sizes,
                     lua_tostring(L, base + SLOT_ANCHOR));
    }
    lua_pushvalue(L, base + SLOT_TABLE);
    lua_rawget(L, ld->pos);
    start_pos = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_settop(L, base);                /* just the table */
    st->depth--;
    err = yaml_store(L, st, ld->root, start_pos, 0, 0);
    if (err != NULL)
        return yaml_fail_at(L, ld->name, ev->start_mark, err, "");
    return 0;
}

/* One parser event.  Returns 0, or the results of a failure. */
static int load_event(lua_State *L, struct yaml_load *ld, yaml_event_t *ev)
{
    lua_Integer here = pack_mark(ev->start_mark);

    luaL_checkstack(L, SLOTS_PER_FRAME + 8, "yaml: nesting too deep");
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        ld->done = 1;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++ld->documents > 1)
            return yaml_fail_at(L, ld->name, ev->start_mark,
                                "%sonly one YAML document per file is "
                                "supported", "");
        return 0;
    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
        return load_scalar(L, ld, ev, here);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return load_collection_start(L, ld, ev, here);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return load_collection_end(L, ld, ev);
    default:
        return 0;
    }
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
    struct yaml_load ld;
    struct yaml_state *st;
    int failed;

    memset(&ld, 0, sizeof ld);
    ld.text = luaL_checklstring(L, 1, &ld.len);
    ld.name = luaL_checkstring(L, 2);
    ld.max_depth = YAML_DEFAULT_MAX_DEPTH;
    ld.max_nodes = YAML_DEFAULT_MAX_NODES;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "max_depth");
        ld.max_depth = luaL_optinteger(L, -1, ld.max_depth);
        lua_getfield(L, 3, "max_nodes");
        ld.max_nodes = luaL_optinteger(L, -1, ld.max_nodes);
        lua_pop(L, 2);
    }
    luaL_argcheck(L, ld.max_depth > 0 && ld.max_depth <= YAML_HARD_MAX_DEPTH,
                  3, "max_depth out of range");
    lua_settop(L, 2);

    st = lua_newuserdatauv(L, sizeof *st, 0);  /* 3 */
    memset(st, 0, sizeof *st);
    luaL_setmetatable(L, YAML_PARSER_MT);
    if (!yaml_parser_initialize(&st->parser))
        return luaL_error(L, "yaml: cannot initialise the parser");
    st->parser_ready = 1;
    yaml_parser_set_input_string(&st->parser,
                                 (const unsigned char *)ld.text, ld.len);
    ld.st = st;

    lua_pushlightuserdata(L, &yaml_null_marker);
    ld.root = lua_gettop(L);                    /* 4 */
    lua_newtable(L);
    ld.pos = lua_gettop(L);                     /* 5 */
    lua_newtable(L);
    ld.keypos = lua_gettop(L);                  /* 6 */
    lua_newtable(L);
    ld.anchors = lua_gettop(L);                 /* 7 */
    lua_newtable(L);
    ld.anchor_sizes = lua_gettop(L);            /* 8 */

    while (!ld.done) {
        if (!yaml_parser_parse(&st->parser, &st->event))
            return load_syntax_error(L, &ld);
        st->event_ready = 1;
        /* a failure leaves the event for the state's __gc to delete */
        failed = load_event(L, &ld, &st->event);
        if (failed)
            return failed;
        yaml_event_delete(&st->event);
        st->event_ready = 0;
    }
    lua_pushvalue(L, ld.root);
    lua_pushvalue(L, ld.pos);
    lua_pushvalue(L, ld.keypos);
    return 3;
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
