-- engine: runs a validated playbook.  Each host of a play runs as one
-- task (a coroutine driven by core/loop.c); a host's steps run in order,
-- hosts run side by side.  This folder is policy only: conditions, loops,
-- retries, blocks, handlers, tags, check mode; the actions do the work
-- through the host's connection.
--
-- init.lua: a run (checks before it starts, secrets, locks, the plays,
-- the exit code); play.lua: hosts, batches, forks, facts; block.lua:
-- lists of steps, blocks, includes, handlers; step.lua: one step (when,
-- loop, run_once, register, notify); action.lua: its action once (the
-- arguments, become, until, changed_when, failed_when); gate.lua:
-- approval gates; resume.lua: the journal around each step and resume;
-- delegate.lua: delegate_to's connections.
local loop = require("cutover.core.loop")
local output = require("cutover.output")
local connections = require("cutover.connection")
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")

local M = {}

-- Called as step_boundary("before"|"after", step_id, host) around every
-- journaled step when set.  Nothing in the product sets it: the test
-- build cutover-faults (tests/faults) does, to crash at exact points.
M.step_boundary = nil

M.EXIT_OK = 0
M.EXIT_FAILED = 1
M.EXIT_USAGE = 2
M.EXIT_REFUSED = 3
M.EXIT_PARKED = 4
M.EXIT_INTERRUPTED = 130

-- The parts below read the exit codes and step_boundary from this table
-- when they run: it is the module before they are loaded.
package.loaded["cutover.engine"] = M

local Run = {}
Run.__index = Run

-- A run's methods, by part of the folder.
local step_part = require("cutover.engine.step")
local action_part = require("cutover.engine.action")
local resume_part = require("cutover.engine.resume")
local block_part = require("cutover.engine.block")
local gate_part = require("cutover.engine.gate")
local play_part = require("cutover.engine.play")
local delegate_part = require("cutover.engine.delegate")
for _, part in ipairs({ step_part, action_part, gate_part, resume_part, block_part, play_part, delegate_part }) do
    for k, f in pairs(part.methods) do Run[k] = f end
end

-- Parts other modules and tests use by these names.
M.files_dir = action_part.files_dir
M.step_digest = resume_part.step_digest
M.JOURNAL_OUTPUT_KEEP = resume_part.JOURNAL_OUTPUT_KEEP
M.MAX_DYNAMIC_DEPTH = block_part.MAX_DYNAMIC_DEPTH

local function interrupted() return loop.interrupts() > 0 end

-- Every host the run may touch (the plays' hosts within --limit).
function Run:run_hosts()
    local all, seen = {}, {}
    for _, play in ipairs(self.book.plays) do
        for _, h in ipairs((self.inventory:select(play.hosts))) do
            if (not self.opts.limit or self.limit[h]) and not seen[h] then
                seen[h] = true
                all[#all + 1] = h
            end
        end
    end
    return all
end

-- --limit: the hosts it names; an exit code when it names none.
function Run:apply_limit()
    local opts = self.opts
    if not opts.limit then return nil end
    local names, unknown = self.inventory:select(opts.limit)
    for _, n in ipairs(names) do self.limit[n] = true end
    if #names == 0 then
        output.error("--limit '" .. opts.limit .. "' matches no host" ..
            (#unknown > 0 and (" (unknown: " .. table.concat(unknown, ", ") .. ")") or ""))
        return M.EXIT_USAGE
    end
    return nil
end

-- --start-at: an exit code when it names no step of the playbook.
local function check_start_at(book, opts)
    if not opts.start_at then return nil end
    -- a misspelt --start-at must not look like a successful run
    local found, names = false, {}
    local function walk(list)
        for _, s in ipairs(list or {}) do
            if s.id == opts.start_at or s.name == opts.start_at then found = true end
            names[#names + 1] = s.id
            walk(s.block); walk(s.rescue); walk(s.always)
        end
    end
    for _, play in ipairs(book.plays) do walk(play.steps); walk(play.handlers) end
    if not found then
        output.error("--start-at '" .. opts.start_at .. "' matches no step id or name" ..
            util.did_you_mean(opts.start_at, names) .. "; nothing ran")
        return M.EXIT_USAGE
    end
    return nil
end

-- On resume: the sealed values back, and no secret extra var that was
-- recorded only masked.  Returns an exit code when the run cannot go on.
function Run:reopen_resumed_secrets()
    local opts = self.opts
    local code = self:open_sealed(opts.journal, opts.resume.run.id)
    if code then return code end
    -- a secret extra var recorded only masked (no vault to seal it,
    -- not from a file): never run with the mask in its place
    local lost = {}
    for k, v in pairs(opts.extra_vars or {}) do
        if v == redact.MASK then lost[#lost + 1] = k end
    end
    if #lost > 0 then
        table.sort(lost)
        output.error("run " .. opts.resume.run.id .. ": extra var" .. (#lost > 1 and "s " or " ") ..
            "'" .. table.concat(lost, "', '") .. "' held a secret that was recorded only masked " ..
            "(no vault was open to seal it); refusing to resume with the mask in its place")
        return M.EXIT_REFUSED
    end
    return nil
end

-- Secrets first: a run that cannot have what it needs never starts.
-- Returns nil and the extra vars that are secret, or an exit code.
function Run:prepare_secrets()
    local book, opts = self.book, self.opts
    local sealed_any = false
    if opts.resume and opts.journal then
        sealed_any = opts.resume.run.sealed ~= nil or
            opts.journal:has_sealed_steps(opts.resume.run.id)
    end
    local secrets, serr, scode = require("cutover.secrets").prepare(book, {
        vault = opts.vault, interactive = opts.interactive, extra_vars = opts.extra_vars,
        run_id = opts.resume and opts.resume.run.id, needs_key = sealed_any,
        sealed_prompts = opts.resume and opts.resume.run.sealed,
        journaled = opts.journal ~= nil, extra_vars_secret = opts.extra_vars_secret,
        inventory = self.inventory, hosts = self:run_hosts(),
    })
    if not secrets then
        output.error(serr)
        return scode or M.EXIT_USAGE
    end
    self.secrets = secrets
    if opts.resume and opts.journal then
        local code = self:reopen_resumed_secrets()
        if code then return code end
    end
    -- what the journal and saved plans show of the extra vars: secret
    -- ones masked (their real values are sealed with the run)
    local ev_record, ev_secret = secrets:split_extra_vars(book, opts.extra_vars, opts.extra_vars_secret)
    opts.extra_vars_masked = ev_record
    return nil, ev_secret
end

-- The lock keys of the hosts: their names, and their machines too: two
-- inventory names for one machine (one address, port and user) must not
-- run side by side.  Also returns each machine key's machine and hosts.
function Run:lock_keys(all)
    local keys, machine_of = {}, {}
    for _, h in ipairs(all) do keys[#keys + 1] = h end
    for _, h in ipairs(all) do
        local m = connections.machine(h, self:connection_vars(h), self.opts)
        if m then
            local key = require("cutover.journal").machine_key(m)
            if not machine_of[key] then keys[#keys + 1] = key end
            machine_of[key] = machine_of[key] or { machine = m, hosts = {} }
            table.insert(machine_of[key].hosts, h)
        end
    end
    return keys, machine_of
end

-- Records a new run: its options, sealed values, files and hosts.
function Run:record_new_run(all, sealed)
    local j, opts, book = self.journal, self.opts, self.book
    j:new_run({ id = self.run_id, command = opts.check and "check" or "run",
                playbook = opts.playbook_path or book.path,
                playbook_digest = opts.playbook_digest, inventory = opts.inventory_path,
                inventory_digest = opts.inventory_digest,
                extra_vars = opts.extra_vars_masked,
                options = opts.record_options, version = opts.version })
    if sealed then j:run_sealed(self.run_id, sealed) end
    -- the files the playbook is built from (imports, roles, vars
    -- files): resume refuses when one changed
    for _, f in ipairs(book.files or {}) do j:event(self.run_id, nil, "file", f.abs, f.digest) end
    -- cutover apply: which plan this run applies, and what it
    -- predicted (for `cutover report`'s plan versus actual)
    if opts.applied_plan then
        j:event(self.run_id, nil, "plan", opts.applied_plan.file, opts.applied_plan.detail)
    end
    for _, h in ipairs(all) do j:host_status(self.run_id, h, "pending") end
end

-- One error line per lock another run holds.
local function report_lock_conflicts(conflicts, machine_of)
    for _, c in ipairs(conflicts) do
        local m = machine_of[c.host]
        local what = m and string.format("machine %s (host %s here)", m.machine,
            table.concat(m.hosts, ", ")) or ("host " .. c.host)
        output.error(string.format(
            "%s is locked by run %s (pid %s on %s, user %s)%s",
            what, c.run, tostring(c.pid), tostring(c.controller), tostring(c.os_user),
            c.alive and "; refusing to run" or
            ("; that controller is gone: resume it (cutover resume " .. c.run ..
             "), end it (cutover abort " .. c.run .. "), or break the lock (cutover unlock " ..
             (m and m.machine or c.host) .. ")")))
    end
end

-- The journal: a run record, locks on every host the run may touch.
-- Returns an exit code when another run holds one of them.
function Run:open_journal(ev_secret)
    local j, opts = self.opts.journal, self.opts
    self.journal = j
    self.resume = opts.resume
    self.run_id = opts.resume and opts.resume.run.id or opts.run_id or require("cutover.journal").new_run_id()
    local all = self:run_hosts()
    local keys, machine_of = self:lock_keys(all)
    -- a new run is recorded (with its sealed values and its hosts) in
    -- the transaction that takes its locks
    local sealed = not opts.resume and self.secrets:sealed_run(self.run_id, ev_secret) or nil
    local record_run = not opts.resume and function() self:record_new_run(all, sealed) end or nil
    local ok, conflicts = j:lock(self.run_id, keys, record_run)
    if not ok then
        report_lock_conflicts(conflicts, machine_of)
        return M.EXIT_REFUSED
    end
    if opts.resume then
        j:run_status(self.run_id, "running", nil)
        j:event(self.run_id, nil, "resume", nil, nil)
        for _, h in ipairs(all) do
            if not opts.resume.finished[h] then j:host_status(self.run_id, h, "pending") end
        end
    end
    return nil
end

-- The plays in order, until an interrupt or a stop; then every
-- connection closed.
function Run:play_all()
    local opts = self.opts
    for _, play in ipairs(self.book.plays) do
        if interrupted() or self.stop_run then break end
        self:play(play)
    end
    if opts.start_at then
        local any = false
        for _, hs in pairs(self.hosts) do if hs.started then any = true end end
        if not any then
            self.reporter:warn("--start-at '" .. opts.start_at .. "' matched no step; nothing ran")
        end
    end
    for _, hs in pairs(self.hosts) do if hs.conn then hs.conn:close() end end
    for _, c in pairs(self.delegates or {}) do c:close() end
end

-- The run's exit code, and the hosts parked at a gate (not failed).
function Run:exit_code()
    local code = M.EXIT_OK
    local parked = {}
    for name, st in pairs(self.stats.per_host) do
        if st.parked_at then
            parked[#parked + 1] = name
            self.failed_hosts[name] = nil
        end
    end
    if #parked > 0 then code = M.EXIT_PARKED end
    if next(self.failed_hosts) then code = M.EXIT_FAILED end
    if interrupted() then code = M.EXIT_INTERRUPTED end
    return code, parked
end

-- The run's end in the journal: each host's status, the run's, and
-- which gates the parked hosts wait at.
function Run:record_end(code, parked)
    local j, opts = self.journal, self.opts
    local ends = {}
    for name, st in pairs(self.stats.per_host) do
        local status = st.never_started and "pending"
            or (st.parked_at and "parked")
            or (st.interrupted_at and "interrupted")
            or (st.attention and "attention")
            or (self.failed_hosts[name] and "failed")
            or "ok"
        if not (opts.resume and opts.resume.finished[name]) then
            ends[#ends + 1] = { name, status, st.failed_at or st.interrupted_at, st.never_started or st.stopped_why }
        end
    end
    local status = opts.check and "check" or (code == M.EXIT_OK and "ok")
        or (code == M.EXIT_INTERRUPTED and "interrupted")
        or (code == M.EXIT_PARKED and "parked") or "failed"
    -- one transaction: one sync for the whole end, not one per host (a
    -- thousand at the end of the 1,000-host soak), and never the end of
    -- some hosts without the others'.  Only journal writes inside it.
    j:transaction(function()
        for _, e in ipairs(ends) do j:host_status(self.run_id, e[1], e[2], e[3], e[4]) end
        -- a parked run keeps its hosts until it is resumed or aborted
        j:finish_run(self.run_id, status, code, status == "parked")
    end)
    if #parked > 0 then
        local gates, kinds = {}, {}
        for _, name in ipairs(parked) do
            local st = self.stats.per_host[name]
            local g = st.parked_gate
            gates[g] = gates[g] or {}
            table.insert(gates[g], name)
            kinds[g] = { kind = st.parked_kind, choices = st.parked_choices }
        end
        self.stats.parked = gates
        self.stats.parked_kinds = kinds
    end
    self.stats.run = self.run_id
end

-- Runs the playbook; returns the exit code.
function M.run(book, inventory, opts)
    -- the files the playbook is built from count as read (saved plans
    -- bind them, as they bind a template's source)
    if opts.on_file_read then
        for _, f in ipairs(book.files or {}) do opts.on_file_read(f.abs, f.digest) end
    end
    local reporter = opts.format == "json" and output.json(opts) or output.text(opts)
    require("cutover.connection.ssh").on_warning = function(msg) reporter:warn(msg) end  -- issue 13: session fallbacks
    local self = setmetatable({
        book = book, inventory = inventory, opts = opts, reporter = reporter,
        hosts = {}, failed_hosts = {}, running = {}, once = {}, limit = {},
        stats = { per_host = {}, hosts = {}, totals = {}, check = opts.check },
    }, Run)
    local refused = self:apply_limit() or check_start_at(book, opts)
    if refused then return refused end
    local ev_secret
    refused, ev_secret = self:prepare_secrets()
    if refused then return refused end
    if opts.journal then
        refused = self:open_journal(ev_secret)
        if refused then return refused end
    end
    local start = loop.now()
    reporter:run_start({ playbook = book.path, check = opts.check, version = opts.version, run = self.run_id })
    self:play_all()
    local code, parked = self:exit_code()
    self.stats.duration = loop.now() - start
    self.stats.exit_code = code
    -- a journal that failed during the run cannot record its end either:
    -- the run stays "running" with this (soon dead) controller's pid, as
    -- after a crash
    local journal_ok = self.journal and not self.journal_error
    if self.journal_error then
        code = M.EXIT_FAILED
        self.stats.exit_code = code
    end
    if journal_ok then self:record_end(code, parked) end
    reporter:run_end(self.stats)
    if opts.report and journal_ok then
        local ok, err = require("cutover.report").write(self.journal, self.run_id, opts.report, "html")
        if not ok then output.error(err) end
    end
    return code
end

return M
