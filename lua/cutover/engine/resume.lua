-- engine.resume: the journal around each step (an intent row before, the
-- result after), and resume: replaying finished steps, sealed results,
-- the guard for a step that was in flight.
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local actions = require("cutover.actions")
local output = require("cutover.output")
local run_lib = require("cutover.actions.lib.run")
local util = require("cutover.util")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local redact = require("cutover.secrets.redact")
local diff = require("cutover.diff")
local engine = require("cutover.engine")

local Run = {}

local DONE = require("cutover.engine.step").DONE

-- A stable digest of a step's definition (its YAML, canonical JSON).
local function step_digest(step)
    if not step.digest then
        step.digest = crypto.sha256(json.encode(step.raw or {}))
    end
    return step.digest
end


-- The result fields kept in the journal (no diff text; secrets masked),
-- and, when masking changed them, the unmasked text sealed with the
-- vault key so that a resumed run gets the real values back.
-- Output kept in the journal for a step that registers nothing: its head
-- and tail (what `show` and a post-mortem need); the whole is kept only
-- where a registered value must be replayed on resume.
local JOURNAL_OUTPUT_KEEP = 32 * 1024

local function head_and_tail(text)
    local keep = JOURNAL_OUTPUT_KEEP
    if type(text) ~= "string" or #text <= 2 * keep + 256 then return text end
    return text:sub(1, keep) .. string.format("\n[... %d bytes not kept in the journal ...]\n", #text - 2 * keep)
        .. text:sub(-keep)
end

local function elide_output(t)
    t.stdout, t.stderr = head_and_tail(t.stdout), head_and_tail(t.stderr)
end

function Run:journal_json(result, registered)
    local keep = {}
    for k, v in pairs(result) do if k ~= "diff" then keep[k] = v end end
    if not registered then
        elide_output(keep)
        if type(keep.results) == "table" then
            local items = {}
            for i, item in ipairs(keep.results) do
                items[i] = type(item) == "table" and util.copy(item) or item
                if type(items[i]) == "table" then elide_output(items[i]) end
            end
            keep.results = items
        end
    end
    local plain = json.encode(keep)
    -- no secret known yet: nothing to mask (the common case), one encoding
    if not redact.active() then return plain end
    local masked = redact.json_line(json.encode(redact.value(keep)))
    if masked ~= plain then return masked, self.secrets:seal_result(plain, self.run_id) end
    return masked
end

-- The step of play number pi with id (for naming it in a message).
local function find_step(book, pi, id)
    local found
    local function walk(list)
        for _, s in ipairs(list or {}) do
            if s.id == id then found = found or s end
            walk(s.block); walk(s.rescue); walk(s.always)
        end
    end
    local play = book.plays[pi]
    if play then walk(play.steps); walk(play.handlers) end
    return found
end

-- Resume: opens every sealed step result of the run before anything
-- runs or prints, and registers the secrets in them for masking (a
-- secret gate's answer is in no vault: without this, the replayed value
-- would be printed in clear).  A row this vault's key cannot open (a
-- recreated or another vault) refuses the resume: its masked copy would
-- otherwise be replayed and deployed.  Returns nil | an exit code.
function Run:open_sealed(j, run_id)
    self.unsealed = {}
    local rows = j:sealed_steps(run_id)
    local bad = {}
    for _, row in ipairs(rows) do
        local text, list = self.secrets:open_result(row.sealed, row.result, run_id)
        if text then
            self.unsealed[row.seq] = text
            for _, v in ipairs(list) do redact.register(v) end
        else
            local s = find_step(self.book, row.play, row.step)
            bad[#bad + 1] = "step '" .. row.step .. "' on " .. row.host ..
                ((s and s.register) and (": its registered value '" .. s.register .. "'")
                 or (s and s.action == "set_fact" and ": the facts it set") or ": its result")
        end
    end
    if #bad == 0 then return nil end
    for _, b in ipairs(bad) do
        output.error(b .. " is sealed and cannot be opened with the vault " ..
                     tostring(self.secrets.vault_path))
    end
    output.error("refusing to resume run " .. run_id .. " with masked copies of sealed values " ..
                 "(a recreated vault, or another one?); resume with the vault the run started with")
    return engine.EXIT_REFUSED
end

-- The resume guard: a non-idempotent step (or loop item, index) was in
-- flight when the controller died.  Stops the host outside any
-- block/rescue (not a step failure: no rescue or always may run after
-- it, and the run stays resumable until the operator decides); returns
-- the message saying what to check and how to decide.
function Run:guard_stop(hs, step, index)
    local what = index and string.format("item %d of step '%s'", index, step.id) or ("step '" .. step.id .. "'")
    local spec = step.id .. (index and ("[" .. index .. "]") or "") .. "@" .. hs.name
    local st = self.stats.per_host[hs.name]
    st.failed_at = st.failed_at or step.id
    st.attention = step.id
    hs.halted = true
    return string.format(
        "%s was running on %s when the controller stopped, and it is not idempotent: " ..
        "cutover will not run it again on its own. Check on %s whether it took effect, then run " ..
        "'cutover resume %s --mark-done %s' (it did) or 'cutover resume %s --retry %s' (it did not).",
        what, hs.name, hs.name, self.run_id, spec, self.run_id, spec)
end

-- Replays a step finished before a restart: its registered value,
-- set_fact values and notifications, without touching the host.
function Run:replay(hs, step, row)
    local text = row.result
    if row.sealed then
        -- opened (and its secrets registered) before the run started; a
        -- masked copy is never used in its place
        text = self.unsealed and self.unsealed[row.seq]
        if not text then
            error("step '" .. step.id .. "' on " .. hs.name .. ": its sealed result was not opened", 0)
        end
    end
    local result = text and json.decode(text) or {}
    if type(result) ~= "table" then result = {} end
    run_lib.with_lines(result)
    if step.register then hs.scope:set(step.register, result) end
    if step.action == "set_fact" and type(result.facts) == "table" then
        for k, v in pairs(result.facts) do hs.scope:set(k, v) end
    end
    if result.changed and step.notify and not result.failed then
        for _, h in ipairs(step.notify) do hs.notified[h] = true end
    end
    local shown = util.copy(result)
    shown.msg = "done before the restart" .. (row.note and (": " .. row.note) or "")
    shown.resumed = true
    self:report(hs, step, shown, loop.now())
    return true
end

-- This step's occurrence on the host in this play (a step an include
-- runs twice occurs twice): the number and the key of its journal row.
function Run:occurrence(hs, step)
    local play = self.play_state.index
    hs.occurrences = hs.occurrences or {}
    local okey = play .. "\0" .. step.id
    local n = (hs.occurrences[okey] or 0) + 1
    hs.occurrences[okey] = n
    return n, play .. "/" .. step.id .. "#" .. n
end

-- Whether running the step again after a crash is safe: its action
-- says so, or a command guarded by creates/removes.
local function step_idempotent(step, action)
    return action.idempotent == true or
        ((step.action == "command" or step.action == "shell") and type(step.args) == "table" and
         (step.args.creates ~= nil or step.args.removes ~= nil))
end

-- A step in flight at the crash (or failed) that the operator marked
-- done: recorded as marked, then replayed like a finished step.
function Run:mark_step_done(hs, step, row, intent)
    local j = self.journal
    local seq = j:intent(intent)
    local done = { changed = false, msg = "marked done by " .. (sys.user()) }
    -- the marked row keeps the step's own result (masked, and
    -- sealed when it holds a secret), so later resumes replay the
    -- real values too
    local text = row.result or (self:journal_json(done, step.register ~= nil))
    j:result(seq, "marked", false, text, "marked done by " .. (sys.user()), row.result and row.sealed or nil)
    j:event(self.run_id, hs.name, "mark-done", step.id, nil)
    return self:replay(hs, step, { result = text, sealed = row.result and row.sealed or nil, seq = row.seq,
                                   note = "marked done by the operator" })
end

-- A loop stopped half-way: the items it finished are not run again;
-- the one in flight is decided like a step (action_step).
function Run:resume_loop_midway(hs, step, row, idempotent)
    local r = self.resume
    local decision = step.id .. "@" .. hs.name
    local items = (r.items and r.items[hs.name] or {})[row.seq] or {}
    local first = require("cutover.journal").loop_inflight(items)
    local ikey = step.id .. "[" .. first .. "]@" .. hs.name
    hs.resume_loop = { items = items, inflight = first, idempotent = idempotent,
                       mark = r.mark_done[ikey], retry = r.retry[decision] or r.retry[ikey] }
    if r.retry[decision] or r.retry[ikey] then
        self.journal:event(self.run_id, hs.name, "retry", r.retry[ikey] and (step.id .. "[" .. first ..
            "]") or step.id, nil)
    end
end

-- On resume, a step that was in flight (or failed and is marked done):
-- marked done, resumed mid-loop, retried, run again when idempotent,
-- or stopped.  Returns true and the step's return value when it is
-- settled here, else false and the note its journal row gets.
function Run:resume_inflight(hs, step, row, intent)
    local r = self.resume
    local decision = step.id .. "@" .. hs.name  -- per host (history.decisions)
    if r.mark_done[decision] then
        return true, self:mark_step_done(hs, step, row, intent)
    elseif step.loop ~= nil and row.status ~= "failed" then
        self:resume_loop_midway(hs, step, row, intent.idempotent)
        return false, "resumed in the middle of its loop"
    elseif r.retry[decision] then
        self.journal:event(self.run_id, hs.name, "retry", step.id, nil)
        return false, "retried after a restart (--retry)"
    elseif not intent.idempotent then
        self:report(hs, step, { failed = true, msg = self:guard_stop(hs, step) }, loop.now())
        return true, false
    end
    return false, "run again after a restart (idempotent)"
end

-- The step's result row (and its --diff text) after it ran.
function Run:record_step_result(hs, step, intent, seq, note, ok)
    local j = self.journal
    local result = hs.last_result or { failed = not ok }
    local text, sealed = self:journal_json(result, step.register ~= nil)
    local shown_diff = result.diff and redact.text(diff.render(result.diff)) or ""
    if seq then
        j:result(seq, output.status(result), result.changed == true, text, note, sealed)
    else
        seq = j:intent_with_result(intent, output.status(result), result.changed == true,
                                   text, note, sealed)
    end
    if shown_diff ~= "" then
        -- the --diff text, masked, for `cutover report` (capped: a report is read by people)
        j:event(self.run_id, hs.name, "diff", step.id, json.encode({ seq = seq, text = shown_diff:sub(1, 65536) }))
    end
end

-- A step with its journal rows around it: an intent before, the result
-- after.  On resume, a step already done is replayed; one that was in
-- flight runs again only when that is safe.
function Run:journaled_step(hs, step)
    if self.journal_error then
        -- another host found the journal unwritable: start nothing more
        self:host_stats(hs.name).journal_step = step.id .. " (not started)"
        error(self.journal_error, 0)
    end
    local n, key = self:occurrence(hs, step)
    local action = actions.get(step.action)
    local intent = { run = self.run_id, host = hs.name, play = self.play_state.index, step = step.id,
                     occurrence = n, name = step.name, action = step.action,
                     digest = step_digest(step), idempotent = step_idempotent(step, action) }
    local row = self.resume and self.resume.done[hs.name] and self.resume.done[hs.name][key]
    local note
    if row and row.status == "parked" then
        row = nil  -- the gate is asked again (approved now, or parks again)
    end
    if row and DONE[row.status] then
        return self:replay(hs, step, row)
    elseif row and (row.status == "running" or row.status == "interrupted" or
                    (row.status == "failed" and self.resume.mark_done[step.id .. "@" .. hs.name])) then
        -- (a failed step marked done: it took effect though it failed, e.g.
        -- a reboot whose host came back refusing the login)
        local settled, value = self:resume_inflight(hs, step, row, intent)
        if settled then return value end
        note = value
        -- what the step remembered before the restart (ctx.before_restart)
        if row.status ~= "failed" then hs.restart_seq = row.seq end
    end
    if engine.step_boundary then engine.step_boundary("before", step.id, hs.name) end
    -- A step that only works on the controller changes nothing a crash
    -- could leave half done: one row after it, not an intent before.
    self:host_stats(hs.name).journal_step = step.id
    local seq = not action.controller and self.journal:intent(intent) or nil
    hs.last_result = nil
    hs.item_seq, hs.item_index = seq, nil
    local ok = self:action_step(hs, step)
    hs.item_seq, hs.resume_loop, hs.restart_seq = nil, nil, nil
    if hs.halted then
        -- stopped at a loop item in flight: the step stays in flight
        -- (its intent row "running") until the operator decides
        return false
    end
    self:record_step_result(hs, step, intent, seq, note, ok)
    if engine.step_boundary then engine.step_boundary("after", step.id, hs.name) end
    return ok
end

return { methods = Run, step_digest = step_digest, JOURNAL_OUTPUT_KEEP = JOURNAL_OUTPUT_KEEP }
