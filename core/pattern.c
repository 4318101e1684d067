/*
 * pattern.c: Lua's string patterns (find, match, gmatch, gsub) with a
 * step count, for the expression sandbox; and the one glob matcher
 * (glob_match, at the end).
 *
 * string.find and friends run in C, where the sandbox's instruction hook
 * cannot see them, so a pattern that backtracks over a long subject (a
 * registered command's output, say) could hold the controller for
 * minutes.  This matcher follows the semantics the Lua 5.4 manual gives
 * for patterns (section 6.4.1) and charges its steps to the sandbox's
 * instruction budget (sandbox_spend), which raises "instruction limit
 * exceeded" once the budget is spent.  Outside a sandbox call nothing is
 * charged, like string.*.
 *
 * Written here from the manual; tests/unit/test_pattern.lua compares it
 * with string.* on generated patterns and subjects.
 */
#include "cutover.h"

#include <ctype.h>
#include <string.h>

#define PAT_MAX_CAPTURES 32
#define PAT_MAX_DEPTH 200          /* nested trials before "too complex" */
#define PAT_CAP_OPEN (-1)          /* a capture whose ')' is not reached */
#define PAT_CAP_POSITION (-2)      /* a "()" capture */
/* A step (one item tried at one position) is a few machine instructions,
 * a tenth of a Lua VM instruction or less: 16 steps cost one instruction
 * of the budget, charged in blocks. */
#define PAT_STEPS_PER_INSTRUCTION 16
#define PAT_STEPS_PER_CHARGE 4096

struct pat_state {
    lua_State *L;
    const char *subject, *subject_end;
    const char *pattern_end;
    int depth_left;
    int level;                     /* captures opened so far */
    unsigned steps;                /* not yet charged */
    struct {
        const char *start;
        ptrdiff_t len;             /* or PAT_CAP_OPEN, PAT_CAP_POSITION */
    } cap[PAT_MAX_CAPTURES];
};

static void pat_init(struct pat_state *ms, lua_State *L, const char *s,
                     size_t ls, const char *p, size_t lp)
{
    ms->L = L;
    ms->subject = s;
    ms->subject_end = s + ls;
    ms->pattern_end = p + lp;
    ms->depth_left = PAT_MAX_DEPTH;
    ms->level = 0;
    ms->steps = 0;
}

/* Before each attempt at a new position: no captures, full depth. */
static void pat_reset(struct pat_state *ms)
{
    ms->level = 0;
    ms->depth_left = PAT_MAX_DEPTH;
}

static void pat_step(struct pat_state *ms)
{
    if (++ms->steps >= PAT_STEPS_PER_CHARGE) {
        ms->steps = 0;
        sandbox_spend(ms->L, PAT_STEPS_PER_CHARGE / PAT_STEPS_PER_INSTRUCTION);
    }
}

/* %a, %d, ... (upper case: the complement); any other %x is x itself. */
static int class_matches(unsigned char c, unsigned char cl)
{
    int in;

    switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == '\0'; break;   /* Lua 5.1's, still accepted */
    default: return cl == c;
    }
    in = in != 0;
    return isupper(cl) ? !in : in;
}

/* p is at the '[' of a set, close at its ']'. */
static int set_matches(unsigned char c, const char *p, const char *close)
{
    int want = 1;

    p++;
    if (*p == '^') {
        want = 0;
        p++;
    }
    while (p < close) {
        if (*p == '%' && p + 1 < close) {
            if (class_matches(c, (unsigned char)p[1]))
                return want;
            p += 2;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return want;
            p++;
        }
    }
    return !want;
}

/* The end of the single-character class that starts at p. */
static const char *item_end(struct pat_state *ms, const char *p)
{
    const char *end = ms->pattern_end;
    int first;

    if (*p == '%') {
        if (p + 1 >= end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 2;
    }
    if (*p != '[')
        return p + 1;
    p++;
    if (p < end && *p == '^')
        p++;
    /* a set's first character is itself, even ']' */
    for (first = 1;; first = 0) {
        if (p >= end)
            luaL_error(ms->L, "malformed pattern (missing ']')");
        if (!first && *p == ']')
            return p + 1;
        if (*p == '%' && p + 1 < end)
            p++;
        p++;
    }
}

static int single_matches(const struct pat_state *ms, const char *s,
                          const char *p, const char *ep)
{
    unsigned char c;

    if (s >= ms->subject_end)
        return 0;
    c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_matches(c, (unsigned char)p[1]);
    case '[': return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(struct pat_state *ms, const char *s, const char *p);

/* %bxy at s: x, then text balanced in x and y, then y. */
static const char *match_balance(struct pat_state *ms, const char *s, const char *p)
{
    int open, close, depth = 1;

    if (p + 1 >= ms->pattern_end)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->subject_end || *s != *p)
        return NULL;
    open = *p;
    close = p[1];
    while (++s < ms->subject_end) {
        pat_step(ms);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* %1 .. %9: the text of a closed capture, again. */
static const char *match_backref(struct pat_state *ms, const char *s, int digit)
{
    int i = digit - '1';
    ptrdiff_t len;

    if (i < 0 || i >= ms->level || ms->cap[i].len == PAT_CAP_OPEN)
        luaL_error(ms->L, "invalid capture index %%%d in pattern", i + 1);
    len = ms->cap[i].len;
    if (len < 0 || ms->subject_end - s < len ||
        memcmp(ms->cap[i].start, s, (size_t)len) != 0)
        return NULL;
    return s + len;
}

static const char *max_expand(struct pat_state *ms, const char *s,
                              const char *p, const char *ep)
{
    ptrdiff_t count = 0;
    const char *result = NULL;

    while (single_matches(ms, s + count, p, ep)) {
        pat_step(ms);
        count++;
    }
    /* the longest run first, then shorter ones */
    for (; count >= 0 && result == NULL; count--)
        result = do_match(ms, s + count, ep + 1);
    return result;
}

static const char *min_expand(struct pat_state *ms, const char *s,
                              const char *p, const char *ep)
{
    const char *result;

    for (;;) {
        result = do_match(ms, s, ep + 1);
        if (result != NULL || !single_matches(ms, s, p, ep))
            return result;
        s++;
    }
}

static const char *start_capture(struct pat_state *ms, const char *s,
                                 const char *p, ptrdiff_t what)
{
    const char *result;

    if (ms->level >= PAT_MAX_CAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->cap[ms->level].start = s;
    ms->cap[ms->level].len = what;
    ms->level++;
    result = do_match(ms, s, p);
    if (result == NULL)
        ms->level--;
    return result;
}

static const char *end_capture(struct pat_state *ms, const char *s, const char *p)
{
    int i;
    const char *result;

    for (i = ms->level - 1; i >= 0; i--)
        if (ms->cap[i].len == PAT_CAP_OPEN)
            break;
    if (i < 0)
        luaL_error(ms->L, "invalid pattern capture");
    ms->cap[i].len = s - ms->cap[i].start;
    result = do_match(ms, s, p);
    if (result == NULL)
        ms->cap[i].len = PAT_CAP_OPEN;
    return result;
}

/* %f[set] at s (p at its '['): the pattern after the set when s is at
 * a frontier (the character before s not in the set, the one at s in
 * it), else NULL. */
static const char *match_frontier(struct pat_state *ms, const char *s, const char *p)
{
    const char *ep;
    unsigned char before, here;

    if (p >= ms->pattern_end || *p != '[')
        luaL_error(ms->L, "missing '[' after '%%f' in pattern");
    ep = item_end(ms, p);
    before = s == ms->subject ? '\0' : (unsigned char)s[-1];
    here = s < ms->subject_end ? (unsigned char)*s : '\0';
    if (set_matches(before, p, ep - 1) || !set_matches(here, p, ep - 1))
        return NULL;
    return ep;
}

/* The item p..ep with quantifier '+', '*' or '-' at s, which matches it
 * once: the end of the whole match, or NULL. */
static const char *match_repeat(struct pat_state *ms, const char *s,
                                const char *p, const char *ep, char quant)
{
    if (quant == '+')
        return max_expand(ms, s + 1, p, ep);
    if (quant == '*')
        return max_expand(ms, s, p, ep);
    return min_expand(ms, s, p, ep);
}

/* Matches pattern p at s: the end of the match, or NULL.  Items that
 * need no backtracking loop here; the others recurse. */
static const char *do_match(struct pat_state *ms, const char *s, const char *p)
{
    const char *end = ms->pattern_end;
    const char *result = NULL;
    const char *ep;
    char quant;

    if (ms->depth_left-- == 0)
        luaL_error(ms->L, "pattern too complex");
    for (;;) {
        pat_step(ms);
        if (p == end) {
            result = s;
            break;
        }
        if (*p == '(') {
            if (p + 1 < end && p[1] == ')')
                result = start_capture(ms, s, p + 2, PAT_CAP_POSITION);
            else
                result = start_capture(ms, s, p + 1, PAT_CAP_OPEN);
            break;
        }
        if (*p == ')') {
            result = end_capture(ms, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == end) {
            result = s == ms->subject_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < end && p[1] == 'b') {
            s = match_balance(ms, s, p + 2);
            if (s == NULL)
                break;
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < end && p[1] == 'f') {
            p = match_frontier(ms, s, p + 2);
            if (p == NULL)
                break;
            continue;
        }
        if (*p == '%' && p + 1 < end && isdigit((unsigned char)p[1])) {
            s = match_backref(ms, s, p[1]);
            if (s == NULL)
                break;
            p += 2;
            continue;
        }
        /* one character class, maybe with a quantifier */
        ep = item_end(ms, p);
        quant = ep < end ? *ep : '\0';
        if (!single_matches(ms, s, p, ep)) {
            if (quant == '*' || quant == '?' || quant == '-') {
                p = ep + 1;            /* zero of them */
                continue;
            }
            break;
        }
        if (quant == '?') {
            result = do_match(ms, s + 1, ep + 1);
            if (result != NULL)
                break;
            p = ep + 1;
            continue;
        }
        if (quant == '+' || quant == '*' || quant == '-') {
            result = match_repeat(ms, s, p, ep, quant);
            break;
        }
        s++;
        p = ep;
    }
    ms->depth_left++;
    return result;
}

/* Pushes capture i (the whole match s..e when there are none). */
static void push_capture(struct pat_state *ms, int i, const char *s, const char *e)
{
    lua_State *L = ms->L;

    if (i >= ms->level) {
        if (i != 0)
            luaL_error(L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(L, s, (size_t)(e - s));
    } else if (ms->cap[i].len == PAT_CAP_OPEN) {
        luaL_error(L, "unfinished capture");
    } else if (ms->cap[i].len == PAT_CAP_POSITION) {
        lua_pushinteger(L, (ms->cap[i].start - ms->subject) + 1);
    } else {
        lua_pushlstring(L, ms->cap[i].start, (size_t)ms->cap[i].len);
    }
}

/* Pushes every capture; with none, the whole match unless s is NULL. */
static int push_captures(struct pat_state *ms, const char *s, const char *e)
{
    int n = (ms->level == 0 && s != NULL) ? 1 : ms->level;
    int i;

    luaL_checkstack(ms->L, n, "too many captures");
    for (i = 0; i < n; i++)
        push_capture(ms, i, s, e);
    return n;
}

/* A 1-based start index from a Lua argument: negative counts from the
 * end; the result may be len + 2 or more ("past the end"). */
static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp)
{
    size_t i;

    for (i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0')
            return 1;
    return 0;
}

static const char *plain_find(const char *s, size_t ls, const char *p, size_t lp)
{
    const char *last;

    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    for (last = s + (ls - lp); s <= last; s++) {
        s = memchr(s, *p, (size_t)(last - s) + 1);
        if (s == NULL)
            return NULL;
        if (memcmp(s, p, lp) == 0)
            return s;
    }
    return NULL;
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    struct pat_state ms;
    const char *at, *e;
    int anchor;

    if (init > ls + 1) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        at = plain_find(s + init - 1, ls - init + 1, p, lp);
        if (at == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (at - s) + 1);
        lua_pushinteger(L, (lua_Integer)((at - s) + lp));
        return 2;
    }
    anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pat_init(&ms, L, s, ls, p, lp);
    at = s + init - 1;
    do {
        pat_reset(&ms);
        e = do_match(&ms, at, p);
        if (e != NULL) {
            if (!find)
                return push_captures(&ms, at, e);
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&ms, NULL, NULL) + 2;
        }
    } while (at++ < ms.subject_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

/* pattern.find(s, pattern [, init [, plain]]): as string.find */
static int pattern_find(lua_State *L)
{
    return find_or_match(L, 1);
}

/* pattern.match(s, pattern [, init]): as string.match */
static int pattern_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* gmatch's iterator state; the subject and pattern stay alive as the
 * iterator's upvalues 1 and 2 (the state is upvalue 3). */
struct gmatch_state {
    size_t next;                   /* offset where the next search starts */
    size_t last_end;               /* offset of the last match's end */
    int matched;                   /* last_end is set */
};

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    struct pat_state ms;
    size_t at;
    const char *e;

    pat_init(&ms, L, s, ls, p, lp);
    for (at = gm->next; at <= ls; at++) {
        pat_reset(&ms);
        e = do_match(&ms, s + at, p);
        /* an empty match where the last one ended is skipped */
        if (e != NULL && !(gm->matched && (size_t)(e - s) == gm->last_end)) {
            gm->next = gm->last_end = (size_t)(e - s);
            gm->matched = 1;
            return push_captures(&ms, s + at, e);
        }
    }
    gm->next = ls + 1;
    return 0;
}

/* pattern.gmatch(s, pattern [, init]): as string.gmatch (a '^' is an
 * ordinary character here, as there) */
static int pattern_gmatch(lua_State *L)
{
    size_t ls;
    size_t init;
    struct gmatch_state *gm;

    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);
    gm = lua_newuserdatauv(L, sizeof *gm, 0);
    gm->next = init;
    if (gm->next > ls)
        gm->next = ls + 1;
    gm->last_end = 0;
    gm->matched = 0;
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_rotate(L, -3, 2);          /* s, p, state */
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* The replacement string: %0 .. %9 and %%. */
static void add_replacement_string(struct pat_state *ms, luaL_Buffer *b,
                                   const char *s, const char *e)
{
    lua_State *L = ms->L;
    size_t len;
    const char *r = lua_tolstring(L, 3, &len);
    const char *r_end = r + len;
    const char *pct;

    while ((pct = memchr(r, '%', (size_t)(r_end - r))) != NULL) {
        luaL_addlstring(b, r, (size_t)(pct - r));
        pct++;
        if (pct < r_end && *pct == '%') {
            luaL_addchar(b, '%');
        } else if (pct < r_end && isdigit((unsigned char)*pct)) {
            if (*pct == '0')
                lua_pushlstring(L, s, (size_t)(e - s));
            else
                push_capture(ms, *pct - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        r = pct + 1;
    }
    luaL_addlstring(b, r, (size_t)(r_end - r));
}

/* Appends what replaces the match s..e, by the kind of argument 3. */
static void add_replacement(struct pat_state *ms, luaL_Buffer *b,
                            const char *s, const char *e, int kind)
{
    lua_State *L = ms->L;

    if (kind == LUA_TSTRING || kind == LUA_TNUMBER) {
        add_replacement_string(ms, b, s, e);
        return;
    }
    if (kind == LUA_TFUNCTION) {
        int n;

        lua_pushvalue(L, 3);
        n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else {
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) {   /* nil or false: keep the match */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

/* pattern.gsub(s, pattern, repl [, n]): as string.gsub */
static int pattern_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    const char *at = s, *e, *last_end = NULL;
    lua_Integer n = 0;
    struct pat_state ms;
    luaL_Buffer b;
    int anchor;

    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING ||
                     kind == LUA_TFUNCTION || kind == LUA_TTABLE, 3,
                     "string/function/table");
    anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pat_init(&ms, L, s, ls, p, lp);
    luaL_buffinit(L, &b);
    while (n < max_n) {
        pat_reset(&ms);
        e = do_match(&ms, at, p);
        if (e != NULL && e != last_end) {
            n++;
            add_replacement(&ms, &b, at, e, kind);
            at = last_end = e;
        } else if (at < ms.subject_end) {
            pat_step(&ms);
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    luaL_addlstring(&b, at, (size_t)(ms.subject_end - at));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

/*
 * pattern.lines(s [, skip_empty]) -> list: s split at "\n", a "\r" ending
 * a line dropped, and no empty last line ("a\n" is one line).  With
 * skip_empty, empty lines are left out.  Linear, and charged to the
 * sandbox's budget per 64 bytes; the list itself counts against its
 * memory budget.
 */
static int pattern_lines(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int skip_empty = lua_toboolean(L, 2);
    const char *end = s + len;
    const char *at = s;
    lua_Integer n = 0;

    sandbox_spend(L, (lua_Integer)(len / 64));
    lua_newtable(L);
    while (at < end) {
        const char *nl = memchr(at, '\n', (size_t)(end - at));
        const char *stop = nl != NULL ? nl : end;
        size_t line_len = (size_t)(stop - at);

        if (line_len > 0 && at[line_len - 1] == '\r')
            line_len--;
        if (line_len > 0 || !skip_empty) {
            lua_pushlstring(L, at, line_len);
            lua_rawseti(L, -2, ++n);
        }
        at = nl != NULL ? nl + 1 : end;
    }
    return 1;
}

/*
 * The one glob matcher (knownhosts.c's host patterns, and Lua's through
 * pattern.glob_match): does text match glob as a whole?  '*' is any run
 * of bytes, '?' one byte, every other byte itself (no classes, no
 * escapes; '[' is literal, as in [host]:port).  Greedy, remembering only
 * the last star: O(glen * tlen), never the exponential backtracking of
 * a Lua pattern made from the glob.
 */
int cutover_glob_match(const char *glob, size_t glen, const char *text,
                       size_t tlen)
{
    size_t g = 0;
    size_t t = 0;
    size_t star = 0;
    size_t mark = 0;
    int have_star = 0;

    while (t < tlen) {
        if (g < glen && glob[g] == '*') {
            have_star = 1;
            star = g++;
            mark = t;
        } else if (g < glen && (glob[g] == '?' || glob[g] == text[t])) {
            g++;
            t++;
        } else if (have_star) {
            /* let the last star take one more byte */
            g = star + 1;
            t = ++mark;
        } else {
            return 0;
        }
    }
    while (g < glen && glob[g] == '*')
        g++;
    return g == glen;
}

/* pattern.glob_match(glob, text) -> boolean (see cutover_glob_match) */
static int pattern_glob_match(lua_State *L)
{
    size_t glen;
    size_t tlen;
    const char *glob = luaL_checklstring(L, 1, &glen);
    const char *text = luaL_checklstring(L, 2, &tlen);

    lua_pushboolean(L, cutover_glob_match(glob, glen, text, tlen));
    return 1;
}

static const luaL_Reg pattern_funcs[] = {
    {"glob_match", pattern_glob_match},
    {"lines", pattern_lines},
    {"find", pattern_find},
    {"match", pattern_match},
    {"gmatch", pattern_gmatch},
    {"gsub", pattern_gsub},
    {NULL, NULL}
};

int luaopen_cutover_pattern(lua_State *L)
{
    luaL_newlib(L, pattern_funcs);
    return 1;
}
