-- Unit: core.journal keeps prepared statements by their SQL text (a
-- fixed number; the oldest gives way).  What must hold whatever the
-- cache does: each call sees its own parameters only, an error keeps its
-- message and leaves the next call working, a query holds no read open
-- once it returns, more texts than the cache holds still run right, and
-- close releases the file.  Real SQLite files.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local core = require("cutover.core.journal")
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")

local function fresh()
    local path = T.tmpdir() .. "/journal.db"
    local db = assert(core.open(path))
    assert(db:exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, w TEXT)"))
    return db, path
end

T.test("the same text with other parameters: each call binds its own, none left from the last", function()
    local db = fresh()
    for i = 1, 50 do
        assert(db:exec("INSERT INTO t (k, v, w) VALUES (?, ?, ?)", i, "v" .. i, i % 2 == 0 and "even" or nil))
    end
    local rows = assert(db:rows("SELECT k, v, w FROM t WHERE k > ? ORDER BY k", 47))
    T.eq(#rows, 3, "rows after 47")
    T.eq(rows[1].v, "v48")
    T.eq(rows[1].w, "even")
    -- the odd rows were given nil: not the previous call's "even"
    T.eq(rows[2].w, nil, "no binding carried over")
    -- fewer parameters than the last call: the missing one is NULL
    assert(db:exec("INSERT INTO t (k, v, w) VALUES (?, ?, ?)", 100, "x"))
    T.eq(assert(db:rows("SELECT w FROM t WHERE k = ?", 100))[1].w, nil, "an unbound parameter is NULL")
    db:close()
end)

T.test("an error keeps its message and code; the next call of the same text works", function()
    local db = fresh()
    assert(db:exec("INSERT INTO t (k, v) VALUES (?, ?)", 1, "a"))
    for _ = 1, 3 do
        local ok, msg, code = db:exec("INSERT INTO t (k, v) VALUES (?, ?)", 1, "again")
        T.eq(ok, nil, "a duplicate key fails")
        T.match(msg, "UNIQUE constraint failed", "SQLite's message")
        T.eq(code, 19, "SQLITE_CONSTRAINT")
    end
    local ok, msg = db:exec("INSERT INTO t (k, v) VALUES (?, ?)", 2, nil)
    T.eq(ok, nil, "NOT NULL fails")
    T.match(msg, "NOT NULL constraint failed", "its own message, not the last one's")
    T.ok(db:exec("INSERT INTO t (k, v) VALUES (?, ?)", 2, "b"), "the same text then works")
    -- a parameter of a type the journal refuses raises; the text still works
    T.ok(not pcall(db.exec, db, "INSERT INTO t (k, v) VALUES (?, ?)", 3, {}), "a table raises")
    T.ok(db:exec("INSERT INTO t (k, v) VALUES (?, ?)", 3, "c"), "and the text works after it")
    T.eq(#assert(db:rows("SELECT k FROM t")), 3, "three rows")
    local none, err = db:rows("SELECT nope FROM t")
    T.eq(none, nil, "a bad query fails")
    T.match(err, "no such column", "with SQLite's message")
    db:close()
end)

T.test("a query returns with no read left open: another connection can checkpoint the whole log", function()
    local db, path = fresh()
    assert(db:exec("INSERT INTO t (k, v) VALUES (1, 'a')"))
    -- stop a SELECT after its first row? rows() reads them all; exec()
    -- of a SELECT stops at the first row: neither may hold its read
    assert(db:exec("INSERT INTO t (k, v) VALUES (2, 'b')"))
    assert(db:exec("SELECT k FROM t WHERE k > 0 ORDER BY k"))
    assert(db:rows("SELECT k FROM t ORDER BY k"))
    assert(db:exec("INSERT INTO t (k, v) VALUES (3, 'c')"))
    local other = assert(core.open(path))
    -- TRUNCATE waits for (and fails on) readers of the log: busy = 1
    local r = assert(other:rows("PRAGMA wal_checkpoint(TRUNCATE)"))
    T.eq(r[1].busy, 0, "no reader holds the log")
    T.eq((fs.stat(path .. "-wal") or { size = 0 }).size, 0, "the log was checkpointed whole")
    other:close()
    db:close()
end)

T.test("more texts than the cache holds, in turns: every result right", function()
    local db = fresh()
    for i = 1, 40 do assert(db:exec("INSERT INTO t (k, v) VALUES (?, ?)", i, "v" .. i)) end
    for round = 1, 3 do
        for i = 1, 40 do
            -- 40 distinct texts (a literal in each), used again each round
            local rows = assert(db:rows("SELECT v FROM t WHERE k = " .. i .. " AND ? = ?", round, round))
            T.eq(rows[1] and rows[1].v, "v" .. i, "text " .. i .. ", round " .. round)
        end
    end
    db:close()
end)

T.test("close releases the file with statements cached; a closed journal raises", function()
    local db, path = fresh()
    assert(db:exec("INSERT INTO t (k, v) VALUES (1, 'a')"))
    assert(db:rows("SELECT * FROM t"))
    -- (this process's descriptors, as ls shows their targets: the shell
    -- proc.run starts is this process's child)
    local function open_fds()
        local r = proc.run({ shell = "ls -l /proc/$PPID/fd" })
        local n = 0
        for _ in r.stdout:gmatch("%-> " .. path:gsub("%p", "%%%0")) do n = n + 1 end
        return n
    end
    T.ok(open_fds() > 0, "open: the file is held")
    db:close()
    T.eq(open_fds(), 0, "closed: no descriptor of the journal left")
    T.ok(not pcall(db.exec, db, "SELECT 1"), "a closed journal raises")
    db:close()   -- twice: no harm
end)

T.test("the page cache is capped at 128 KB (a run of 1,000 hosts filled SQLite's default 2 MB)", function()
    local db = fresh()
    local rows = assert(db:rows("PRAGMA cache_size"))
    T.eq(rows[1].cache_size, -128, "cache_size (negative: KiB)")
    db:close()
end)

T.done()
