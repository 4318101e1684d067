/*
 * journal.c: the run journal, a SQLite database.  This file owns its
 * format and its durability: WAL with synchronous=FULL (a committed step
 * boundary survives a power cut or kill -9), a busy timeout so two
 * controllers can share one journal, and the format version in
 * PRAGMA user_version (a newer journal is refused, never misread).
 * The schema is created here; lua/cutover/journal.lua holds the queries.
 *
 * db:exec(sql, ...) runs a statement with bound parameters; db:rows(sql,
 * ...) returns the result rows as tables keyed by column name.  Values:
 * nil -> NULL, booleans -> 0/1, integers, numbers, strings (text).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cutover.h"

#define JOURNAL_MT "cutover.journal"
#define JOURNAL_FORMAT 2
#define JOURNAL_BUSY_MS 10000

/*
 * Prepared statements, kept by their SQL text: the runner sends the same
 * few statements for every step of every host, and parsing them again
 * each time cost about as much as running them (perf, 50 steps x 10
 * hosts).  A small fixed number; the
 * oldest entry gives way (finalised) when a new text needs a place.
 */
#define JOURNAL_STMT_CACHE 24

struct journal_cached {
    char *sql;             /* owned copy of the text (the key) */
    sqlite3_stmt *stmt;    /* owned; finalised before the database closes */
};

struct journal {
    sqlite3 *db;  /* owned; closed by __gc / close */
    struct journal_cached cache[JOURNAL_STMT_CACHE];
    unsigned next_evict;   /* the cache slot that gives way next */
};

static void cache_clear(struct journal *j)
{
    unsigned i;

    for (i = 0; i < JOURNAL_STMT_CACHE; i++) {
        sqlite3_finalize(j->cache[i].stmt);
        free(j->cache[i].sql);
        j->cache[i].stmt = NULL;
        j->cache[i].sql = NULL;
    }
}

static const char *const journal_schema =
    "CREATE TABLE IF NOT EXISTS runs ("
    " id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,"
    " status TEXT NOT NULL, command TEXT, playbook TEXT,"
    " playbook_digest TEXT, inventory TEXT, inventory_digest TEXT,"
    " extra_vars TEXT, options TEXT, os_user TEXT, controller TEXT,"
    " pid INTEGER, exit_code INTEGER, version TEXT, sealed TEXT);"
    "CREATE TABLE IF NOT EXISTS run_hosts ("
    " run TEXT NOT NULL REFERENCES runs(id), host TEXT NOT NULL,"
    " status TEXT NOT NULL, failed_at TEXT, detail TEXT,"
    " PRIMARY KEY (run, host));"
    "CREATE TABLE IF NOT EXISTS steps ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " run TEXT NOT NULL REFERENCES runs(id), host TEXT NOT NULL,"
    " play INTEGER NOT NULL, step TEXT NOT NULL, occurrence INTEGER NOT NULL,"
    " name TEXT, action TEXT, digest TEXT, idempotent INTEGER,"
    " status TEXT NOT NULL, changed INTEGER, started REAL, ended REAL,"
    " result TEXT, note TEXT, sealed TEXT);"
    "CREATE INDEX IF NOT EXISTS steps_by_run ON steps(run, host, seq);"
    "CREATE TABLE IF NOT EXISTS locks ("
    " host TEXT PRIMARY KEY, run TEXT NOT NULL, pid INTEGER,"
    " controller TEXT, boot TEXT, os_user TEXT, since REAL);"
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL,"
    " host TEXT, kind TEXT NOT NULL, name TEXT, detail TEXT,"
    " os_user TEXT, time REAL NOT NULL);";

static int journal_gc(lua_State *L)
{
    struct journal *j = luaL_checkudata(L, 1, JOURNAL_MT);

    /* the statements first: close_v2 would keep the file open for them */
    cache_clear(j);
    if (j->db != NULL)
        sqlite3_close_v2(j->db);
    j->db = NULL;
    return 0;
}

static struct journal *check_open(lua_State *L)
{
    struct journal *j = luaL_checkudata(L, 1, JOURNAL_MT);

    if (j->db == NULL)
        luaL_error(L, "attempt to use a closed journal");
    return j;
}

/* Pushes "what: message", with the operating system's reason when
 * SQLite has one: "unable to open database file" alone does not say that
 * the controller ran out of file descriptors, or of disk. */
static void push_db_error(lua_State *L, sqlite3 *db, const char *what,
                          const char *message)
{
    int err = db != NULL ? sqlite3_system_errno(db) : 0;
    int code = db != NULL ? sqlite3_errcode(db) & 0xff : 0;

    if (err != 0 && (code == SQLITE_CANTOPEN || code == SQLITE_IOERR ||
                     code == SQLITE_FULL))
        lua_pushfstring(L, "%s: %s (%s)", what, message, strerror(err));
    else
        lua_pushfstring(L, "%s: %s", what, message);
}

/* journal.open's failures: nil, "journal PATH: message (reason)", code */
static int fail_open(lua_State *L, sqlite3 *db, const char *path,
                     const char *message, int code)
{
    lua_pushnil(L);
    lua_pushfstring(L, "journal %s", path);
    push_db_error(L, db, lua_tostring(L, -1), message);
    lua_remove(L, -2);
    lua_pushinteger(L, code);
    return 3;
}

static int fail_db(lua_State *L, sqlite3 *db, const char *what)
{
    lua_pushnil(L);
    push_db_error(L, db, what, sqlite3_errmsg(db));
    lua_pushinteger(L, sqlite3_errcode(db));
    return 3;
}

/*
 * journal.open(path) -> db | nil, message, code
 * Creates the file and schema when missing.  A journal of a newer format
 * is refused with a message that says so.
 */
static int journal_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct journal *j;
    sqlite3_stmt *stmt = NULL;
    int version = 0;
    char *err = NULL;
    int fd;
    int rc;

    j = lua_newuserdatauv(L, sizeof *j, 0);  /* before the resource */
    memset(j, 0, sizeof *j);
    luaL_setmetatable(L, JOURNAL_MT);
    /* Created 0600 here: SQLite gives the -wal and -shm files the mode
     * of the database file, and results may hold what only the operator
     * should read. */
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd >= 0)
        close(fd);
    rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE |
                         SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK)
        return fail_open(L, j->db, path, j->db != NULL ? sqlite3_errmsg(j->db)
                                                       : sqlite3_errstr(rc), rc);
    sqlite3_busy_timeout(j->db, JOURNAL_BUSY_MS);
    if (sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &stmt, NULL)
        != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return fail_db(L, j->db, path);
    }
    version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    if (version > JOURNAL_FORMAT) {
        lua_pushnil(L);
        lua_pushfstring(L, "journal %s has format %d; this cutover reads "
                        "format %d and older: use a newer cutover (nothing "
                        "was changed)", path, version, JOURNAL_FORMAT);
        lua_pushinteger(L, 0);
        return 3;
    }
    /* cache_size: the journal is mostly appended to, and a long run
     * filled SQLite's default 2 MB page cache (the soak's 1,000 hosts).
     * 128 KB (32 pages) holds what a run rereads (the B-trees' inner
     * pages and the last leaves) and a group commit's dirty pages; the
     * OS caches the rest */
    rc = sqlite3_exec(j->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                      "PRAGMA foreign_keys=ON; PRAGMA cache_size=-128;",
                      NULL, NULL, &err);
    if (rc == SQLITE_OK && version == 0) {
        char sql[64];
        rc = sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, &err);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(j->db, journal_schema, NULL, NULL, &err);
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", JOURNAL_FORMAT);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(j->db, sql, NULL, NULL, &err);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(j->db, "COMMIT", NULL, NULL, &err);
        else
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && version == 1) {
        /* format 1 -> 2: sealed (encrypted) values of runs and steps */
        rc = sqlite3_exec(j->db, "BEGIN IMMEDIATE;"
                          "ALTER TABLE runs ADD COLUMN sealed TEXT;"
                          "ALTER TABLE steps ADD COLUMN sealed TEXT;"
                          "PRAGMA user_version=2; COMMIT;", NULL, NULL, &err);
        if (rc != SQLITE_OK)
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        int n = fail_open(L, j->db, path,
                          err != NULL ? err : sqlite3_errstr(rc), rc);
        sqlite3_free(err);
        return n;
    }
    return 1;
}

/* Binds Lua values idx.. to the statement's parameters. */
static void bind_params(lua_State *L, sqlite3_stmt *stmt, int first)
{
    int top = lua_gettop(L);
    int i;

    for (i = first; i <= top; i++) {
        int p = i - first + 1;
        switch (lua_type(L, i)) {
        case LUA_TNIL:
        case LUA_TNONE:
            sqlite3_bind_null(stmt, p);
            break;
        case LUA_TBOOLEAN:
            sqlite3_bind_int(stmt, p, lua_toboolean(L, i));
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, i))
                sqlite3_bind_int64(stmt, p, lua_tointeger(L, i));
            else
                sqlite3_bind_double(stmt, p, lua_tonumber(L, i));
            break;
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, i, &len);
            sqlite3_bind_text(stmt, p, s, (int)len, SQLITE_TRANSIENT);
            break;
        }
        default:
            luaL_argerror(L, i, "journal values are nil, boolean, number "
                          "or text");
        }
    }
}

/* A statement owned by a userdata while it runs (a Lua error finalises). */
struct journal_stmt {
    sqlite3_stmt *stmt;
};

static int stmt_gc(lua_State *L)
{
    struct journal_stmt *s = lua_touserdata(L, 1);

    if (s != NULL && s->stmt != NULL)
        sqlite3_finalize(s->stmt);
    if (s != NULL)
        s->stmt = NULL;
    return 0;
}

static struct journal_stmt *prepare(lua_State *L, struct journal *j,
                                    const char *sql, int *rc)
{
    struct journal_stmt *s = lua_newuserdatauv(L, sizeof *s, 0);

    s->stmt = NULL;
    luaL_setmetatable(L, JOURNAL_MT ".stmt");
    *rc = sqlite3_prepare_v2(j->db, sql, -1, &s->stmt, NULL);
    return s;
}

/*
 * The prepared statement for sql, reset and with no bindings: the cached
 * one, else prepared now and cached.  NULL when SQLite refuses the text
 * (its message is on the database).  Ownership stays with the cache; the
 * caller resets the statement once it is done, so no read stays open.  A
 * Lua error between (a bad parameter) leaves it to the next use's reset.
 */
static sqlite3_stmt *cached_stmt(struct journal *j, const char *sql)
{
    struct journal_cached *slot;
    sqlite3_stmt *stmt = NULL;
    char *copy;
    unsigned i;

    for (i = 0; i < JOURNAL_STMT_CACHE; i++) {
        slot = &j->cache[i];
        if (slot->sql != NULL && strcmp(slot->sql, sql) == 0) {
            sqlite3_reset(slot->stmt);
            sqlite3_clear_bindings(slot->stmt);
            return slot->stmt;
        }
    }
    if (sqlite3_prepare_v2(j->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return NULL;
    }
    copy = strdup(sql);
    if (copy == NULL) {
        sqlite3_finalize(stmt);
        return NULL;
    }
    slot = &j->cache[j->next_evict];
    j->next_evict = (j->next_evict + 1) % JOURNAL_STMT_CACHE;
    sqlite3_finalize(slot->stmt);
    free(slot->sql);
    slot->sql = copy;
    slot->stmt = stmt;
    return stmt;
}

/* fail_db for a cached statement that failed: its message first (a
 * reset would keep it, but the order says so), then the reset that ends
 * its read. */
static int fail_reset(lua_State *L, struct journal *j, sqlite3_stmt *stmt)
{
    int n = fail_db(L, j->db, "journal");

    sqlite3_reset(stmt);
    return n;
}

/*
 * db:exec(sql, ...) -> changes, last_rowid | nil, message, code
 */
static int journal_exec(lua_State *L)
{
    struct journal *j = check_open(L);
    const char *sql = luaL_checkstring(L, 2);
    sqlite3_stmt *stmt;
    int rc;

    stmt = cached_stmt(j, sql);
    if (stmt == NULL)
        return fail_db(L, j->db, "journal");
    bind_params(L, stmt, 3);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return fail_reset(L, j, stmt);
    }
    sqlite3_reset(stmt);
    lua_pushinteger(L, sqlite3_changes(j->db));
    lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(j->db));
    return 2;
}

/*
 * db:rows(sql, ...) -> { {column = value, ...}, ... } | nil, message, code
 */
static int journal_rows(lua_State *L)
{
    struct journal *j = check_open(L);
    const char *sql = luaL_checkstring(L, 2);
    sqlite3_stmt *stmt;
    lua_Integer n = 0;
    int rc;
    int cols;
    int i;

    stmt = cached_stmt(j, sql);
    if (stmt == NULL)
        return fail_db(L, j->db, "journal");
    bind_params(L, stmt, 3);
    lua_settop(L, 2);
    lua_newtable(L);                       /* 3: rows */
    cols = sqlite3_column_count(stmt);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        lua_createtable(L, 0, cols);
        for (i = 0; i < cols; i++) {
            switch (sqlite3_column_type(stmt, i)) {
            case SQLITE_INTEGER:
                lua_pushinteger(L, sqlite3_column_int64(stmt, i));
                break;
            case SQLITE_FLOAT:
                lua_pushnumber(L, sqlite3_column_double(stmt, i));
                break;
            case SQLITE_TEXT:
            case SQLITE_BLOB:
                lua_pushlstring(L,
                    (const char *)sqlite3_column_blob(stmt, i),
                    (size_t)sqlite3_column_bytes(stmt, i));
                break;
            default:
                lua_pushnil(L);
                break;
            }
            lua_setfield(L, -2, sqlite3_column_name(stmt, i));
        }
        lua_rawseti(L, 3, ++n);
    }
    if (rc != SQLITE_DONE) {
        return fail_reset(L, j, stmt);
    }
    sqlite3_reset(stmt);
    return 1;
}

/*
 * db:quick_check() -> true | nil, message
 * PRAGMA quick_check: the b-trees, pages and records are consistent.  A
 * damaged journal must not be trusted to say which steps are done.  The
 * message holds the first few problems SQLite reports, capped.
 */
#define QUICK_CHECK_ROWS 3  /* also the limit given to the pragma */
#define QUICK_CHECK_MSG 512

static int journal_quick_check(lua_State *L)
{
    struct journal *j = check_open(L);
    struct journal_stmt *s;
    char msg[QUICK_CHECK_MSG];
    size_t used = 0;
    int rows = 0;
    int ok = 1;
    int rc;

    msg[0] = '\0';
    s = prepare(L, j, "PRAGMA quick_check(3)", &rc);
    if (rc != SQLITE_OK)
        return fail_db(L, j->db, "quick_check");
    while ((rc = sqlite3_step(s->stmt)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(s->stmt, 0);
        if (line == NULL)
            continue;
        if (strcmp(line, "ok") == 0 && rows == 0)
            break;
        ok = 0;
        if (rows++ < QUICK_CHECK_ROWS && used + 3 < sizeof msg) {
            int n = snprintf(msg + used, sizeof msg - used, "%s%s",
                             used > 0 ? "; " : "", line);
            if (n > 0)
                used += (size_t)n < sizeof msg - used ? (size_t)n
                                                      : sizeof msg - used - 1;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        /* the check itself could not read the file: damaged too */
        ok = 0;
        snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(j->db));
    }
    sqlite3_finalize(s->stmt);
    s->stmt = NULL;
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* db:close() */
static int journal_close(lua_State *L)
{
    return journal_gc(L);
}

/* journal.format() -> the format version this cutover writes */
static int journal_format(lua_State *L)
{
    lua_pushinteger(L, JOURNAL_FORMAT);
    return 1;
}

/*
 * db:in_transaction() -> boolean: a transaction is open.  After a failed
 * statement inside one, false means SQLite rolled the whole transaction
 * back (it may, on a full disk or an I/O error), not just the statement.
 */
static int journal_in_transaction(lua_State *L)
{
    struct journal *j = check_open(L);

    lua_pushboolean(L, !sqlite3_get_autocommit(j->db));
    return 1;
}

static const luaL_Reg journal_methods[] = {
    {"exec", journal_exec},
    {"in_transaction", journal_in_transaction},
    {"rows", journal_rows},
    {"quick_check", journal_quick_check},
    {"close", journal_close},
    {NULL, NULL}
};

static const luaL_Reg journal_funcs[] = {
    {"open", journal_open},
    {"format", journal_format},
    {NULL, NULL}
};

int luaopen_cutover_journal(lua_State *L)
{
    luaL_newmetatable(L, JOURNAL_MT);
    lua_pushcfunction(L, journal_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, journal_gc);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, journal_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, JOURNAL_MT ".stmt");
    lua_pushcfunction(L, stmt_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, journal_funcs);
    return 1;
}
