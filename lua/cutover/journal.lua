-- journal: what every run did, in a SQLite file (core/journal.c owns the
-- format and durability; this module holds the queries).  A step is
-- written twice: an intent row before it starts (status "running") and
-- its result after; a row still "running" after the controller died is a
-- step that was in flight.  Locks on hosts live in the same file, so two
-- controllers sharing a journal see each other.
local core = require("cutover.core.journal")
local fs = require("cutover.core.fs")
local sys = require("cutover.core.sys")
local crypto = require("cutover.core.crypto")
local json = require("cutover.core.json")
local loop = require("cutover.core.loop")

local M = {}

local Journal = {}
Journal.__index = Journal

function M.default_path()
    local state = os.getenv("XDG_STATE_HOME")
    if not state or state == "" then
        state = (os.getenv("HOME") or "/root") .. "/.local/state"
    end
    return state .. "/cutover/journal.db"
end

local function mkdir_p(dir)
    local parts = {}
    local p = dir
    while p ~= "" and p ~= "/" and not fs.stat(p, true) do
        table.insert(parts, 1, p)
        p = p:match("^(.*)/[^/]*$") or ""
    end
    for _, d in ipairs(parts) do
        local ok, err, code = fs.mkdir(d, 448)
        if not ok and code ~= 17 then return nil, err end
    end
    return true
end

-- Opens (creating) the journal at path.  Returns journal | nil, message.
function M.open(path)
    path = path or M.default_path()
    local dir = path:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then
        local ok, err = mkdir_p(dir)
        if not ok then return nil, "journal " .. path .. ": " .. err end
    end
    local db, err = core.open(path)
    if not db then return nil, err end
    fs.chmod(path, 384)  -- results may hold what only the operator should read
    return setmetatable({ db = db, path = path }, Journal)
end

-- A failed read or write is raised as a table, so the runner can tell
-- "the journal cannot be written" (a full disk, a file-size limit) from a
-- bug, and stop the run cleanly.  tostring() gives the message.
local WriteError = { __tostring = function(e) return e.msg end }

function M.is_write_error(err)
    return getmetatable(err) == WriteError
end

local function check(self, ok, ...)
    if ok == nil then
        local why = tostring((...)):gsub("^journal: ", "")
        error(setmetatable({ msg = "journal " .. self.path .. ": " .. why, why = why }, WriteError), 0)
    end
    return ok, ...
end

function Journal:exec(sql, ...)
    -- a transaction of its own ends the group's first (they do not nest)
    if sql:find("^%s*BEGIN") then
        self:flush()
        self:check_lost()
        -- in_tx only once BEGIN worked: a BEGIN that failed (busy, an
        -- I/O error) leaves no transaction for a later one to join
        local ok = check(self, self.db:exec(sql, ...))
        self.in_tx = true
        return ok
    elseif sql:find("^%s*COMMIT") or sql:find("^%s*ROLLBACK") then
        self.in_tx = nil
    elseif not self.in_group_write and not self.in_tx and not sql:find("^%s*SELECT") then
        -- any other write (an event, a host's status) is durable when it
        -- returns too: the open group is committed first, so the write
        -- commits on its own and never waits in (or is lost with) the group
        self:flush()
        self:check_lost()
    end
    return check(self, self.db:exec(sql, ...))
end

-- Group commit (issue 13).  A step's intent must be durable before the
-- step starts and its result before the next one starts, but with steps
-- of about a millisecond two fsyncs per step per host would dominate.
-- So, inside the loop's tasks, every intent and result joins the open
-- group transaction:
--   * an intent's task waits for the end of the loop's turn
--     (loop.yield): every host that wrote in that turn is committed by
--     one COMMIT (one WAL fsync), by the first of them to resume, before
--     any of them goes on;
--   * a result does not wait: it is committed with the group at the end
--     of the loop's turn it was written in (loop.before_wait), so with
--     the same host's next intent when that follows in the same turn (the
--     usual case: the next step cannot start before that commit), or
--     with any other write before then.  So a step's result and the next
--     step's intent cost one fsync, not two, and no result stays
--     uncommitted while the controller waits on the network, a timer or
--     an operator.
-- A group that held a deferred result and failed to commit (a full
-- disk, an I/O error) leaves the journal behind what the hosts did: every
-- later write through this journal object raises that failure, so no
-- host goes on and no run ends as if its results were recorded (the
-- steps stay "running" in the file: a resume asks about them).
-- Outside a task (tests, history, resume's own writes) each write
-- commits at once, as before.  M.commits counts COMMITs of group
-- transactions and M.group_writes the writes they held (bench).
M.commits = 0
M.group_writes = 0

function Journal:flush()
    if not self.group_gen then return end
    local gen = self.group_gen
    self.group_gen = nil
    local deferred = self.group_deferred
    self.group_deferred = nil
    local ok, err = self.db:exec("COMMIT")
    if ok == nil then
        self.db:exec("ROLLBACK")
        self.group_failed = { gen = gen, err = err }
        if deferred then self.lost = tostring(err):gsub("^journal: ", "") end
        check(self, nil, err)
    end
    M.commits = M.commits + 1
end

-- Raises when a group holding a result that did not wait failed to
-- commit (see above).
function Journal:check_lost()
    if self.lost then check(self, nil, "a result was not recorded: " .. self.lost) end
end

-- The journals with a result waiting in their open group, committed at
-- the end of the loop's turn (loop.before_wait runs this once).
local deferring = setmetatable({}, { __mode = "k" })
local function commit_deferred()
    for j in pairs(deferring) do
        deferring[j] = nil
        -- a failure is kept in j.lost and raised by j's next write
        if j.group_deferred then pcall(j.flush, j) end
    end
end

local function durable(self, wait, fn, ...)
    if not loop.in_task() or self.no_group or self.in_tx then return fn(self, ...) end
    self:check_lost()
    if not self.group_gen then
        check(self, self.db:exec("BEGIN IMMEDIATE"))
        self.group_next = (self.group_next or 0) + 1
        self.group_gen = self.group_next
    end
    local gen = self.group_gen
    -- each write is one statement (intent: an INSERT, result: an UPDATE),
    -- which SQLite undoes by itself when it fails, so the writes of the
    -- other hosts in the group stand; unless SQLite rolled the whole
    -- transaction back, which in_transaction() tells (a savepoint around
    -- each write did the same for two more statements per write)
    self.in_group_write = true
    local res = table.pack(pcall(fn, self, ...))
    self.in_group_write = nil
    if not res[1] then
        if not self.db:in_transaction() and self.group_gen == gen then
            -- SQLite rolled the whole transaction back (a full disk, an
            -- I/O error): the group's other writes are gone too, so every
            -- host of the group fails, none goes on with a lost intent
            self.group_gen = nil
            self.db:exec("ROLLBACK")
            self.group_failed = { gen = gen, err = type(res[2]) == "table" and res[2].why or tostring(res[2]) }
            if self.group_deferred then self.lost = self.group_failed.err end
            self.group_deferred = nil
        end
        if type(res[2]) == "string" then check(self, nil, res[2]) end
        error(res[2], 0)
    end
    M.group_writes = M.group_writes + 1
    if not wait then
        self.group_deferred = true
        deferring[self] = true
        loop.before_wait(commit_deferred)
        return table.unpack(res, 2, res.n)
    end
    loop.yield()
    if self.group_gen == gen then self:flush() end
    if self.group_failed and self.group_failed.gen == gen then check(self, nil, self.group_failed.err) end
    return table.unpack(res, 2, res.n)
end
function Journal:rows(sql, ...) return check(self, self.db:rows(sql, ...)) end

-- The controller's boot, so a pid from an earlier boot is never taken
-- for a live process.
local boot_id
function M.controller_boot()
    if not boot_id then
        boot_id = (fs.read("/proc/sys/kernel/random/boot_id") or ""):gsub("%s+", "")
    end
    return boot_id
end

function M.new_run_id()
    return os.date("!%Y%m%d-%H%M%S") .. "-" .. crypto.random_hex(2)
end

-- fields: id, command, playbook, playbook_digest, inventory,
-- inventory_digest, extra_vars (table), options (table), version
function Journal:new_run(f)
    local now = sys.time()
    self:exec([[INSERT INTO runs (id, created, updated, status, command, playbook,
        playbook_digest, inventory, inventory_digest, extra_vars, options, os_user,
        controller, pid, version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)]],
        f.id, now, now, "running", f.command, f.playbook, f.playbook_digest,
        f.inventory, f.inventory_digest, json.encode(f.extra_vars or {}),
        json.encode(f.options or {}), (sys.user()), (sys.uname() or {}).node,
        sys.getpid(), f.version)
    return f.id
end

function Journal:run_status(id, status, exit_code)
    self:exec("UPDATE runs SET status = ?, exit_code = ?, updated = ?, pid = ? WHERE id = ?",
              status, exit_code, sys.time(), sys.getpid(), id)
end

function Journal:host_status(run, host, status, failed_at, detail)
    self:exec([[INSERT INTO run_hosts (run, host, status, failed_at, detail) VALUES (?,?,?,?,?)
        ON CONFLICT(run, host) DO UPDATE SET status = excluded.status,
        failed_at = excluded.failed_at, detail = excluded.detail]],
        run, host, status, failed_at, detail)
end

-- f: run, host, play, step, occurrence, name, action, digest, idempotent
local function intent(self, f)
    local _, seq = self:exec([[INSERT INTO steps (run, host, play, step, occurrence, name,
        action, digest, idempotent, status, started) VALUES (?,?,?,?,?,?,?,?,?,?,?)]],
        f.run, f.host, f.play, f.step, f.occurrence, f.name, f.action, f.digest,
        f.idempotent and 1 or 0, "running", sys.time())
    return seq
end

-- sealed: the unmasked result encrypted with the vault key, when the
-- result holds a secret (result_json itself is always masked)
local function result(self, seq, status, changed, result_json, note, sealed)
    self:exec("UPDATE steps SET status = ?, changed = ?, ended = ?, result = ?, note = ?, sealed = ? WHERE seq = ?",
              status, changed and 1 or 0, sys.time(), result_json, note, sealed, seq)
end

-- An intent is durable when it returns; a result by the end of the
-- loop's turn, with the host's next intent (group commit, see above).
function Journal:intent(f) return durable(self, true, intent, f) end
function Journal:result(seq, status, changed, result_json, note, sealed)
    return durable(self, false, result, seq, status, changed, result_json, note, sealed)
end

-- A controller-side step (no intent row before it ran): its intent and
-- result in one transaction, so no reader sees it half written.
-- Returns its seq.
function Journal:intent_with_result(f, status, changed, result_json, note, sealed)
    -- (a transaction of its own: Journal:exec commits an open group first)
    self:exec("BEGIN")
    local ok, seq = pcall(function()
        local s = intent(self, f)
        result(self, s, status, changed, result_json, note, sealed)
        return s
    end)
    if not ok then
        self.in_tx = nil
        self.db:exec("ROLLBACK")
        error(seq, 0)
    end
    self:exec("COMMIT")
    return seq
end

-- The step rows of a run that carry a sealed (encrypted) result, in order.
function Journal:sealed_steps(run)
    return self:rows("SELECT seq, host, play, step, result, sealed FROM steps " ..
                     "WHERE run = ? AND sealed IS NOT NULL ORDER BY seq", run)
end

function Journal:has_sealed_steps(run)
    return self:rows("SELECT 1 FROM steps WHERE run = ? AND sealed IS NOT NULL LIMIT 1",
                     run)[1] ~= nil
end

function Journal:run_sealed(id, sealed)
    self:exec("UPDATE runs SET sealed = ? WHERE id = ?", sealed, id)
end

function Journal:event(run, host, kind, name, detail)
    self:exec("INSERT INTO events (run, host, kind, name, detail, os_user, time) VALUES (?,?,?,?,?,?,?)",
              run, host, kind, name, detail, (sys.user()), sys.time())
end

function Journal:runs(limit)
    return self:rows("SELECT * FROM runs ORDER BY created DESC, id DESC LIMIT ?", limit or 50)
end

function Journal:run(id)
    return self:rows("SELECT * FROM runs WHERE id = ?", id)[1]
end

-- The latest run that is not finished (for `cutover resume` without id).
function Journal:latest_unfinished()
    return self:rows([[SELECT * FROM runs WHERE status NOT IN ('ok', 'aborted', 'check')
        ORDER BY created DESC, id DESC LIMIT 1]])[1]
end

function Journal:steps(run, host)
    if host then
        return self:rows("SELECT * FROM steps WHERE run = ? AND host = ? ORDER BY seq", run, host)
    end
    return self:rows("SELECT * FROM steps WHERE run = ? ORDER BY seq", run)
end

function Journal:hosts(run)
    return self:rows("SELECT * FROM run_hosts WHERE run = ? ORDER BY rowid", run)
end

function Journal:events(run)
    return self:rows("SELECT * FROM events WHERE run = ? ORDER BY seq", run)
end

-- Is the process that holds a lock still there?  Only a holder on this
-- controller, in this boot, can be checked; others count as alive.
function M.holder_alive(lock)
    local node = (sys.uname() or {}).node
    if lock.controller ~= node then return true end
    if lock.boot ~= M.controller_boot() then return false end
    return lock.pid ~= nil and sys.alive(lock.pid)
end

-- Runs fn() inside one BEGIN IMMEDIATE transaction: what fn reads cannot
-- change before what it writes is committed (two controllers sharing the
-- journal wait for each other here, up to the busy timeout).  Returns
-- what fn returns.
-- Inside another transaction fn's writes are part of that one (SQLite
-- does not nest them): an error in fn goes up through the outer
-- transaction, which rolls back all of it.
function Journal:transaction(fn)
    if self.in_tx then return fn() end
    self:exec("BEGIN IMMEDIATE")
    local res = table.pack(pcall(fn))
    local commit_err
    if res[1] then
        local ok, err = self.db:exec("COMMIT")
        self.in_tx = nil
        if ok ~= nil then return table.unpack(res, 2, res.n) end
        commit_err = err
    end
    -- fn failed, or COMMIT did (busy, a full disk), which may leave the
    -- transaction open: nothing of it stays
    self.in_tx = nil
    if self.db:in_transaction() then self.db:exec("ROLLBACK") end
    if commit_err then check(self, nil, commit_err) end
    error(res[2], 0)
end

-- The lock row that says which process is running (or resuming) a run.
-- Host names are the other lock keys; a space cannot start a host name.
local function claim_key(run) return " run " .. run end
M.claim_key = claim_key

-- The item a loop was running when its run stopped, from the item ends
-- it recorded (index -> {status, ...}): the first with no end, or one
-- stopped by an interrupt.
function M.loop_inflight(items)
    local first = 1
    while items[first] and items[first].status ~= "interrupted" do first = first + 1 end
    return first
end

-- The lock row of a machine (connection.machine: "local@NODE",
-- "USER@ADDRESS:PORT"), beside the host names'.
function M.machine_key(machine) return " machine " .. machine end

local function mine(lock)
    return lock.pid == sys.getpid() and lock.controller == (sys.uname() or {}).node
        and lock.boot == M.controller_boot()
end

local function take(self, key, run, now)
    self:exec([[INSERT INTO locks (host, run, pid, controller, boot, os_user, since)
        VALUES (?,?,?,?,?,?,?) ON CONFLICT(host) DO UPDATE SET run = excluded.run, pid = excluded.pid,
        controller = excluded.controller, boot = excluded.boot, os_user = excluded.os_user,
        since = excluded.since]],
        key, run, sys.getpid(), (sys.uname() or {}).node, M.controller_boot(), (sys.user()), now)
end

local FINISHED = { ok = true, aborted = true, check = true }
M.FINISHED = FINISHED

-- Claims run id for this process, atomically: in one transaction it
-- checks that the run is unfinished and that no live process holds it
-- (the run itself, or another resume), then takes the run's claim and
-- moves the run's host locks to this process.  Returns the run row |
-- nil, why ("missing", "finished" or "held"), the row that explains it
-- (the run, or the holder's lock row).
function Journal:claim(id)
    return self:transaction(function()
        local r = self:run(id)
        if not r then return nil, "missing" end
        if FINISHED[r.status] then return nil, "finished", r end
        -- a run that recorded its end (parked, failed, ...) has no live
        -- holder of its host locks; a "running" one may have
        local sql = r.status == "running" and "SELECT * FROM locks WHERE run = ? ORDER BY host"
            or "SELECT * FROM locks WHERE run = ? AND host = ?"
        for _, l in ipairs(self:rows(sql, id, claim_key(id))) do
            if not mine(l) and M.holder_alive(l) then return nil, "held", l end
        end
        local node = (sys.uname() or {}).node
        if r.status == "running" and r.controller == node and r.pid ~= sys.getpid() and
                r.pid and sys.alive(r.pid) and #self:rows("SELECT 1 FROM locks WHERE run = ?", id) == 0 then
            -- a run without any lock (recorded by an older cutover)
            return nil, "held", { run = id, pid = r.pid, controller = r.controller, os_user = r.os_user }
        end
        local now = sys.time()
        take(self, claim_key(id), id, now)
        self:exec("UPDATE locks SET pid = ?, controller = ?, boot = ? WHERE run = ?",
                  sys.getpid(), node, M.controller_boot(), id)
        return r
    end)
end

-- Gives up this process's claim on a run (its host locks stay).
function Journal:release_claim(id)
    self:exec("DELETE FROM locks WHERE host = ? AND pid = ? AND boot = ?",
              claim_key(id), sys.getpid(), M.controller_boot())
end

-- Locks hosts for run, all or none, with the run's claim; also(), when
-- given, runs in the same transaction (a new run records itself there, so
-- no crash can leave locks of a run the journal does not know).  A lock
-- of a run that was never recorded, whose holder is gone, is stale and
-- taken over (no resume or abort could ever release it).  Returns true |
-- nil, conflicts (list of lock rows held by other runs, each with .alive).
function Journal:lock(run, hosts, also)
    local conflicts = self:transaction(function()
        local conflicts = {}
        for _, h in ipairs(hosts) do
            local l = self:rows("SELECT * FROM locks WHERE host = ?", h)[1]
            if l and (l.run ~= run or (not mine(l) and M.holder_alive(l))) then
                l.alive = M.holder_alive(l)
                local orphan = l.run ~= run and not l.alive and self:run(l.run) == nil
                if not orphan then conflicts[#conflicts + 1] = l end
            end
        end
        if #conflicts > 0 then return conflicts end
        local now = sys.time()
        take(self, claim_key(run), run, now)
        for _, h in ipairs(hosts) do take(self, h, run, now) end
        if also then also() end
        return nil
    end)
    if conflicts then return nil, conflicts end
    return true
end

-- Records the end of a run and releases its locks in one transaction, so
-- that a resume can never claim the run between the two.  keep_hosts: a
-- parked run keeps its host locks (its claim goes: the process ends).
function Journal:finish_run(id, status, exit_code, keep_hosts)
    self:transaction(function()
        self:run_status(id, status, exit_code)
        if keep_hosts then
            self:exec("DELETE FROM locks WHERE host = ?", claim_key(id))
        else
            self:exec("DELETE FROM locks WHERE run = ?", id)
        end
    end)
end

function Journal:unlock_run(run)
    self:exec("DELETE FROM locks WHERE run = ?", run)
end

function Journal:locks_of_run(run)
    return self:rows("SELECT * FROM locks WHERE run = ?", run)
end

function Journal:lock_of(host)
    return self:rows("SELECT * FROM locks WHERE host = ?", host)[1]
end

-- Breaks host's lock if its holder is gone, atomically (a resume that
-- takes the lock over meanwhile is seen).  Returns "unlocked", lock |
-- "free" | "alive", lock.
function Journal:unlock_host(host)
    return self:transaction(function()
        local l = self:lock_of(host)
        if not l then
            -- a machine, as the refusal names it (USER@ADDRESS:PORT)
            host = M.machine_key(host)
            l = self:lock_of(host)
        end
        if not l then return "free" end
        if M.holder_alive(l) then return "alive", l end
        self:exec("DELETE FROM locks WHERE host = ?", host)
        -- the machine locks the same gone process left (the journal does
        -- not know which machine each name is; the name locks remain)
        self:exec([[DELETE FROM locks WHERE run = ? AND pid IS ? AND boot IS ? AND substr(host, 1, 9) = ' machine ']],
                  l.run, l.pid, l.boot)
        return "unlocked", l
    end)
end

-- PRAGMA quick_check.  Returns true | nil, message (for the operator):
-- a damaged journal cannot say which steps are done.
function Journal:verify(doing)
    local ok, why = self.db:quick_check()
    if ok then return true end
    return nil, string.format("journal %s is damaged (%s); refusing to %s. " ..
        "Keep a copy of the file; 'sqlite3 %s .recover' may save what it holds",
        self.path, why or "?", doing, self.path)
end

function Journal:close()
    self:flush()
    self.db:close()
end

return M
