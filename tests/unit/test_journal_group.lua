-- Unit (issue 13): the journal's group commit.  Hosts that write their
-- step intents (or results) in the same turn of the loop share one
-- COMMIT, and none of them goes on before it: a second connection to
-- the same SQLite file (which sees committed rows only) already finds
-- every row when the writer's call returns.  Real SQLite file, real
-- loop tasks.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local journal = require("cutover.journal")
local core = require("cutover.core.journal")
local loop = require("cutover.core.loop")

local function open()
    local path = T.tmpdir() .. "/journal.db"
    local j = assert(journal.open(path))
    local id = journal.new_run_id()
    j:new_run({ id = id, command = "run", playbook = "p.yml" })
    return j, path, id
end

local function count_rows(path, sql)
    local other = assert(core.open(path))
    local rows = assert(other:rows(sql))
    other:close()
    return #rows
end

T.test("10 hosts' intents in one turn: one commit, every row durable before any host goes on", function()
    local j, path, id = open()
    local c0 = journal.commits
    local seen = {}
    for h = 1, 10 do
        loop.spawn(function()
            j:intent({ run = id, host = "h" .. h, play = 1, step = "s1", occurrence = 1,
                       name = "s1", action = "command", digest = "d", idempotent = false })
            -- what another process would find now, had we crashed here
            seen[h] = count_rows(path, "SELECT seq FROM steps WHERE host = 'h" .. h .. "'")
        end)
    end
    loop.run()
    T.eq(journal.commits - c0, 1, "one COMMIT for the ten intents")
    for h = 1, 10 do T.eq(seen[h], 1, "h" .. h .. "'s intent was committed before it went on") end
    j:close()
end)

local function step_of(id, h, s)
    return { run = id, host = h, play = 1, step = s, occurrence = 1, name = s, action = "command",
             digest = "d", idempotent = false }
end

-- One step of host h written whole: its intent, then its result "ok".
local function step_done(j, id, h, s)
    local seq = j:intent(step_of(id, h, s))
    j:result(seq, "ok", false, "{}", nil, nil)
end

-- How many rows of step s a second connection finds ended "ok".
local function ok_rows(path, s)
    return count_rows(path, "SELECT seq FROM steps WHERE step = '" .. s .. "' AND status = 'ok'")
end

T.test("steps of 5 hosts x 4 steps: one commit per loop turn, each result durable before the next step", function()
    local j, path, id = open()
    local c0, gw0 = journal.commits, journal.group_writes
    for h = 1, 5 do
        loop.spawn(function()
            for s = 1, 4 do
                local seq = j:intent(step_of(id, "h" .. h, "s" .. s))
                if s > 1 then
                    -- the step may start now: the one before must be on disk
                    T.eq(count_rows(path, "SELECT seq FROM steps WHERE host = 'h" .. h ..
                        "' AND step = 's" .. (s - 1) .. "' AND status = 'ok'"), 1,
                        "h" .. h .. " s" .. (s - 1) .. "'s result durable before s" .. s .. " starts")
                end
                j:result(seq, "ok", false, "{}", nil, nil)
            end
        end)
    end
    loop.run()
    local commits = journal.commits - c0
    -- every intent and result went through the group (a write that
    -- committed on its own would not be counted in commits at all)
    T.eq(journal.group_writes - gw0, 40, "the 40 writes were grouped")
    -- a turn per step (the result rides with the next intent), and one
    -- for the last results when the loop ended: 2 per step before
    T.ok(commits <= 5, "40 writes in at most 5 commits: " .. commits)
    T.eq(count_rows(path, "SELECT seq FROM steps WHERE status = 'ok'"), 20, "all 20 results, the last ones too")
    j:close()
end)

T.test("one host alone: a step's result and the next intent share a commit", function()
    local j, path, id = open()
    local c0 = journal.commits
    loop.spawn(function()
        for s = 1, 10 do
            local seq = j:intent(step_of(id, "h1", "s" .. s))
            T.eq(count_rows(path, "SELECT seq FROM steps WHERE status = 'running'"), 1,
                 "s" .. s .. ": its intent durable, and no earlier step left running")
            j:result(seq, "ok", false, "{}", nil, nil)
        end
    end)
    loop.run()
    T.ok(journal.commits - c0 <= 11, "20 writes in at most 11 commits: " .. (journal.commits - c0))
    T.eq(count_rows(path, "SELECT seq FROM steps WHERE status = 'ok'"), 10, "all 10 results")
    j:close()
end)

T.test("a result is committed before the loop waits (a timer, a blocking wait)", function()
    local j, path, id = open()
    local seen = {}
    loop.spawn(function()
        step_done(j, id, "h1", "s1")
        -- h1 now waits on a timer, writing nothing
        loop.sleep(0.3)
        step_done(j, id, "h1", "s2")
        -- a wait that blocks the loop (no task can park inside a
        -- coroutine of its own): it commits first too
        coroutine.wrap(function() loop.sleep(0.05) end)()
        seen.blocked = ok_rows(path, "s2")
    end)
    loop.spawn(function()
        loop.sleep(0.1)
        seen.parked = ok_rows(path, "s1")
    end)
    loop.run()
    T.eq(seen.parked, 1, "h1's result was on disk while h1 slept")
    T.eq(seen.blocked, 1, "h1's second result was on disk after a blocking wait")
    j:close()
end)

T.test("a result is committed before a name lookup, which blocks outside the loop", function()
    local net = require("cutover.core.net")
    local j, path, id = open()
    local seen = {}
    loop.spawn(function()
        step_done(j, id, "h1", "s1")
        -- getaddrinfo runs before anything can park: an empty name fails
        -- at once, with no lookup on the network, and no turn of the loop
        local ok, err = net.connect("", 22, 1)
        seen.failed = ok == nil and err ~= nil
        seen.rows = ok_rows(path, "s1")
    end)
    loop.run()
    T.ok(seen.failed, "the lookup failed at once")
    T.eq(seen.rows, 1, "h1's result was on disk when the lookup began")
    j:close()
end)

T.test("a group holding a result fails to commit: every later write refused, the step stays running", function()
    local j, path, id = open()
    -- a real COMMIT failure: a deferred foreign key is only checked at
    -- COMMIT, so h1's result is written and its group then fails (as a
    -- full disk fails a COMMIT)
    j:exec("CREATE TABLE lost_check (run TEXT REFERENCES runs(id) DEFERRABLE INITIALLY DEFERRED)")
    j:exec("CREATE TRIGGER lose_h1 AFTER UPDATE ON steps WHEN NEW.host = 'h1' " ..
           "BEGIN INSERT INTO lost_check VALUES ('no such run'); END")
    local errs = {}
    loop.spawn(function()
        step_done(j, id, "h1", "s1")
        loop.sleep(0.1)    -- the loop commits the group before it waits: that fails
        local ok, err = pcall(j.intent, j, step_of(id, "h1", "s2"))
        errs.h1 = not ok and err or "went on"
    end)
    loop.spawn(function()
        loop.sleep(0.2)
        local ok, err = pcall(j.intent, j, step_of(id, "h2", "s1"))
        errs.h2 = not ok and err or "went on"
    end)
    loop.run()
    for _, h in ipairs({ "h1", "h2" }) do
        T.ok(journal.is_write_error(errs[h]), h .. "'s next write fails as a WriteError: " .. tostring(errs[h]))
        T.contains(tostring(errs[h]), "a result was not recorded", h .. ": says why")
    end
    T.eq(count_rows(path, "SELECT seq FROM steps WHERE host = 'h1' AND status = 'running'"), 1,
         "h1's step stays running in the file (a resume asks about it)")
    T.eq(count_rows(path, "SELECT seq FROM steps WHERE step = 's2' OR host = 'h2'"), 0, "nothing started after it")
    local ok, err = pcall(j.host_status, j, id, "h1", "ok")
    T.ok(not ok and journal.is_write_error(err), "the run's own end is refused too: " .. tostring(err))
    j:close()
end)

T.test("outside a task each write commits at once (as before)", function()
    local j, path, id = open()
    local c0 = journal.commits
    local seq = j:intent({ run = id, host = "h", play = 1, step = "s", occurrence = 1, name = "s",
                           action = "command", digest = "d", idempotent = false })
    T.eq(count_rows(path, "SELECT seq FROM steps"), 1, "visible at once")
    j:result(seq, "ok", false, "{}")
    T.eq(journal.commits - c0, 0, "no group transaction")
    -- an explicit transaction inside a task is left alone (the runner's
    -- controller-only steps write intent and result in one), also while
    -- group commit is on (a second task)
    local c1 = journal.commits
    loop.spawn(function() loop.sleep(0.05) end)
    loop.spawn(function()
        j:exec("BEGIN")
        local s2 = j:intent({ run = id, host = "h", play = 1, step = "t", occurrence = 1, name = "t",
                              action = "debug", digest = "d", idempotent = false })
        j:result(s2, "ok", false, "{}")
        j:exec("COMMIT")
    end)
    loop.run()
    T.eq(count_rows(path, "SELECT seq FROM steps"), 2, "the explicit transaction committed")
    T.eq(journal.commits - c1, 0, "no group transaction opened inside it")
    j:close()
end)

for _, how in ipairs({ "ABORT", "ROLLBACK" }) do
T.test("H2: one host's failed write in a group never leaves another host going on with a rolled-back intent (" ..
       how .. ")", function()
    local j, path, id = open()
    -- a real SQLite failure for one host's INSERT only (as a full disk
    -- or a file-size limit would fail the write that meets it): ABORT
    -- undoes that statement, ROLLBACK the whole open transaction (what
    -- SQLite may do on a full disk or an I/O error)
    j:exec("CREATE TRIGGER fail_h2 BEFORE INSERT ON steps WHEN NEW.host = 'h2' " ..
           "BEGIN SELECT RAISE(" .. how .. ", 'simulated write failure'); END")
    local got, errs = {}, {}
    for h = 1, 4 do
        loop.spawn(function()
            local ok, seq = pcall(j.intent, j, { run = id, host = "h" .. h, play = 1, step = "s1", occurrence = 1,
                                                 name = "s1", action = "command", digest = "d", idempotent = false })
            if ok then got[h] = seq else errs[h] = seq end
        end)
    end
    loop.run()
    T.ok(errs[2] ~= nil and journal.is_write_error(errs[2]), "h2's own write fails as a WriteError: " ..
        tostring(errs[2]))
    if how == "ABORT" then
        -- only h2's statement failed: its savepoint undoes it alone
        for _, h in ipairs({ 1, 3, 4 }) do T.ok(got[h] ~= nil, "h" .. h .. " went on: " .. tostring(errs[h])) end
    end
    for h = 1, 4 do
        if got[h] then
            -- a host that goes on must have its own intent durable, at the
            -- seq it was given
            T.eq(count_rows(path, "SELECT seq FROM steps WHERE seq = " .. math.floor(got[h]) ..
                " AND host = 'h" .. h .. "'"), 1, "h" .. h .. " went on: its intent is durable at seq " .. got[h])
        else
            T.ok(journal.is_write_error(errs[h]), "h" .. h .. " failed with a WriteError: " .. tostring(errs[h]))
        end
    end
    -- the journal is usable afterwards (no transaction left open)
    local seq = j:intent({ run = id, host = "h9", play = 1, step = "s2", occurrence = 1, name = "s2",
                           action = "command", digest = "d", idempotent = false })
    T.eq(count_rows(path, "SELECT seq FROM steps WHERE seq = " .. math.floor(seq)), 1, "a later write commits")
    j:close()
end)
end

T.test("H3: a write of another kind made while a group is open is durable when it returns", function()
    local j, path, id = open()
    local seen = {}
    -- h1's intent opens a group and waits for the end of the turn; in
    -- that same turn h2 writes a loop item's end event and its status
    loop.spawn(function()
        j:intent({ run = id, host = "h1", play = 1, step = "s1", occurrence = 1, name = "s1",
                   action = "command", digest = "d", idempotent = false })
    end)
    loop.spawn(function()
        j:event(id, "h2", "item", "s1", '{"index":1}')
        -- what a resume would find, had the controller been killed here
        seen.event = count_rows(path, "SELECT seq FROM events WHERE host = 'h2' AND kind = 'item'")
        j:host_status(id, "h2", "failed", "s1", "x")
        seen.status = count_rows(path, "SELECT host FROM run_hosts WHERE run = '" .. id .. "' AND host = 'h2'")
    end)
    loop.spawn(function() end)   -- a third task: group commit is on
    loop.run()
    T.eq(seen.event, 1, "the item event was committed before j:event returned")
    T.eq(seen.status, 1, "the host status was committed before j:host_status returned")
    T.eq(count_rows(path, "SELECT seq FROM steps WHERE host = 'h1'"), 1, "h1's intent is durable too")
    j:close()
end)

T.test("H3: kill -9 right after a loop item's end event written while a group is open: the event survives", function()
    local proc = require("cutover.core.proc")
    local j, path, id = open()
    j:close()
    local d = T.tmpdir()
    -- a child controller: h1's intent opens a group and waits for the end
    -- of the turn; in that turn h2 records its item's end, and the
    -- process is killed (SIGKILL) the moment that call returns
    T.write(d .. "/child.lua", [==[
local path, id = ...
local journal = require("cutover.journal")
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local j = assert(journal.open(path))
loop.spawn(function()
    j:intent({ run = id, host = "h1", play = 1, step = "s1", occurrence = 1, name = "s1",
               action = "command", digest = "d", idempotent = false })
end)
loop.spawn(function()
    j:event(id, "h2", "item", "s1", '{"index":2}')
    sys.kill(sys.getpid(), 9)
end)
loop.spawn(function() end)
loop.run()
]==])
    local luatest = T.cutover:gsub("cutover$", "cutover_luatest")
    local r = proc.run({ argv = { luatest, d .. "/child.lua", path, id }, timeout = 60 })
    T.eq(r.signal, 9, "the child was killed (SIGKILL): rc " .. tostring(r.rc) .. " " .. tostring(r.stderr))
    T.eq(count_rows(path, "SELECT seq FROM events WHERE host = 'h2' AND kind = 'item'"), 1,
         "the item's end event is in the journal after the kill")
end)

T.test("kill -9 right after a step's next intent returns: the step before it has its result on disk", function()
    local proc = require("cutover.core.proc")
    local j, path, id = open()
    j:close()
    local d = T.tmpdir()
    for _, when in ipairs({ "next-intent", "sleeping" }) do
        T.write(d .. "/child.lua", [==[
local path, id, when = ...
local journal = require("cutover.journal")
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local j = assert(journal.open(path))
local function step(s)
    return { run = id, host = when, play = 1, step = s, occurrence = 1, name = s,
             action = "command", digest = "d", idempotent = false }
end
loop.spawn(function()
    local seq = j:intent(step("s1"))
    j:result(seq, "ok", false, "{}", nil, nil)
    if when == "next-intent" then
        j:intent(step("s2"))
        sys.kill(sys.getpid(), 9)
    end
    loop.sleep(5)
end)
loop.spawn(function()
    loop.sleep(0.2)
    sys.kill(sys.getpid(), 9)
end)
loop.run()
]==])
        local luatest = T.cutover:gsub("cutover$", "cutover_luatest")
        local r = proc.run({ argv = { luatest, d .. "/child.lua", path, id, when }, timeout = 60 })
        T.eq(r.signal, 9, when .. ": the child was killed (SIGKILL): rc " .. tostring(r.rc) .. " " ..
             tostring(r.stderr))
        T.eq(count_rows(path, "SELECT seq FROM steps WHERE host = '" .. when ..
                        "' AND step = 's1' AND status = 'ok'"), 1,
             when .. ": s1's result is in the journal after the kill")
        if when == "next-intent" then
            T.eq(count_rows(path, "SELECT seq FROM steps WHERE host = '" .. when .. "' AND step = 's2'"), 1,
                 "s2's intent is in the journal after the kill")
        end
    end
end)

-- Journal:transaction when SQLite refuses its BEGIN or its COMMIT once
-- (a busy or full disk): the journal's db wrapped so that one statement
-- fails.  Neither may leave a transaction behind for the next one to
-- join: a later transaction whose fn fails must leave nothing written.
local function failing_db(j, which)
    local real, armed = j.db, true
    j.db = setmetatable({
        exec = function(_, sql, ...)
            if armed and sql:find("^%s*" .. which) then
                armed = false
                return nil, "journal: database is locked (made to fail by the test)"
            end
            return real:exec(sql, ...)
        end,
    }, { __index = function(_, k) return function(_, ...) return real[k](real, ...) end end })
    return function() j.db = real end
end

for _, which in ipairs({ "BEGIN", "COMMIT" }) do
    T.test("a transaction whose " .. which .. " fails leaves none open; the next one is whole or nothing", function()
        local j, path, id = open()
        local restore = failing_db(j, which)
        local ok, err = pcall(j.transaction, j, function()
            j:exec("INSERT INTO events (run, kind, time) VALUES (?, 'first', 0)", id)
        end)
        T.eq(ok, false, which .. " failed: the transaction raised")
        T.contains(tostring(type(err) == "table" and err.msg or err), "made to fail", "the error says why")
        restore()
        T.eq(j.db:in_transaction(), false, "no transaction left open")
        ok = pcall(j.transaction, j, function()
            j:exec("INSERT INTO events (run, kind, time) VALUES (?, 'second', 0)", id)
            error("fn fails after its first write")
        end)
        T.eq(ok, false, "the second transaction's fn raised")
        T.eq(count_rows(path, "SELECT seq FROM events WHERE kind IN ('first', 'second')"), 0,
             "neither transaction's write is in the journal")
        j:transaction(function()
            j:exec("INSERT INTO events (run, kind, time) VALUES (?, 'third', 0)", id)
        end)
        T.eq(count_rows(path, "SELECT seq FROM events WHERE kind = 'third'"), 1, "a later transaction commits")
    end)
end

T.done()
