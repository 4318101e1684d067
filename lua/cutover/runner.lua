-- runner: runs a validated playbook.  Each host of a play runs as one
-- task (a coroutine driven by core/loop.c); a host's steps run in order,
-- hosts run side by side.  This file is policy only: conditions, loops,
-- retries, blocks, handlers, tags, check mode; the actions do the work
-- through the host's connection.
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local expr = require("cutover.expr")
local vars = require("cutover.vars")
local schema = require("cutover.schema")
local actions = require("cutover.actions")
local output = require("cutover.output")
local run_lib = require("cutover.actions.run")
local connections = require("cutover.connection")
local util = require("cutover.util")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local redact = require("cutover.redact")
local diff = require("cutover.diff")
local facts_mod = require("cutover.facts")

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

local Run = {}
Run.__index = Run

local function interrupted() return loop.interrupts() > 0 end

-- Tag selection: --tags picks steps carrying one of them ("always" always
-- runs unless skipped; "never" only when asked for); --skip-tags drops.
function Run:tags_allow(step)
    local tags = step.tags
    for t in pairs(self.opts.skip_tags or {}) do
        if tags[t] then return false end
    end
    local want = self.opts.tags
    if not want or next(want) == nil then return not tags.never end
    if tags.always then return true end
    if want.all and not tags.never then return true end
    for t in pairs(want) do if tags[t] then return true end end
    if want.untagged and next(tags) == nil then return true end
    return false
end

function Run:report(hs, step, result, started, item_label)
    local duration = loop.now() - started
    local name = step.name and select(2, expr.render(step.name, hs.scope)) or step.id
    if type(name) ~= "string" then name = step.name or step.id end
    local shown = result
    if step.no_log then
        shown = { changed = result.changed, failed = result.failed, unknown = result.unknown,
                  skipped = result.skipped, ignored = result.ignored,
                  interrupted = result.interrupted,
                  msg = "(output hidden: no_log)" }
    end
    self.reporter:host_result({ host = hs.name, step_id = step.id, step_name = name,
                                action = step.action, result = shown,
                                duration = duration, item_label = item_label })
    if self.opts.on_result then
        -- saved plans (cutover.plan): every result as it is reported
        self.opts.on_result({ host = hs.name, step = step, step_name = name, result = result,
                              item_label = item_label, play = self.play_state and self.play_state.index })
    end
    local st = self.stats.per_host[hs.name]
    local status = output.status(result)
    st[status] = (st[status] or 0) + 1
    self.stats.totals[status] = (self.stats.totals[status] or 0) + 1
end

-- Renders a step's arguments; raw arguments (expressions) are kept.
local function render_args(action, args, scope)
    local out = {}
    for k, v in pairs(args) do
        local spec = action.args and action.args[k]
        if spec and spec.raw then
            out[k] = v
        else
            local ok, r, unknown = expr.render_value(v, scope)
            if not ok then return nil, r, unknown end
            out[k] = r
        end
    end
    return out
end

-- Where a step's relative `src` is looked for: a role's step looks in
-- the role's templates/ (template) or files/ (copy and others) first,
-- then the role's folder; other steps in the playbook's folder.
function M.files_dir(step, args, book_dir)
    local dir = step.role_dir
    if not dir or type(args) ~= "table" or type(args.src) ~= "string" then return book_dir end
    local fs = require("cutover.core.fs")
    local subs = step.action == "template" and { "templates", "files" } or { "files", "templates" }
    for _, sub in ipairs(subs) do
        local st = fs.stat(dir .. "/" .. sub .. "/" .. args.src)
        if type(st) == "table" then return dir .. "/" .. sub end
    end
    return dir
end

-- The user a step's commands run as: nil (the login user) or
-- {user=, method=, flags=, password=}.  The step (with its blocks'
-- keywords) wins over the play, the play over the host's variables
-- (ansible_become, ansible_become_user, ...), those over the command
-- line (-b, --become-user, -K).  nil, message when a value is bad.
local BECOME_TRUE = { ["true"] = true, yes = true, on = true, ["1"] = true }
local BECOME_FALSE = { ["false"] = true, no = true, off = true, ["0"] = true }
function Run:become_for(hs, step, scope)
    local play = hs.play or {}
    local function var(name) return scope:get(name) end
    local function pick(key, varnames, opt)
        if step[key] ~= nil then return step[key], "step" end
        if play[key] ~= nil then return play[key], "play" end
        for _, n in ipairs(varnames) do
            local v = var(n)
            if v ~= nil then return v, n end
        end
        return opt, "command line"
    end
    local function value(v, what)
        if type(v) == "string" and expr.has_template(v) then
            local ok, r = expr.render(v, scope)
            if not ok then return nil, what .. ": " .. tostring(r) end
            return r
        end
        return v
    end
    local on, from = pick("become", { "ansible_become" }, self.opts.become)
    local err
    on, err = value(on, "become")
    if err then return nil, err end
    if type(on) == "string" then
        if BECOME_TRUE[on:lower()] then on = true elseif BECOME_FALSE[on:lower()] then on = false end
    end
    if on ~= nil and type(on) ~= "boolean" then
        return nil, "become (from " .. from .. ") must be true or false, not '" .. tostring(on) .. "'"
    end
    if not on then return nil end
    local spec = {}
    spec.user, err = value(pick("become_user", { "ansible_become_user" }, self.opts.become_user) or "root", "become_user")
    if err then return nil, err end
    spec.method, err = value(pick("become_method", { "ansible_become_method" }, nil) or "sudo", "become_method")
    if err then return nil, err end
    if spec.method ~= "sudo" and spec.method ~= "su" then
        return nil, "become_method must be sudo or su, not '" .. tostring(spec.method) .. "'"
    end
    spec.flags, err = value(pick("become_flags", { "ansible_become_flags" }, nil), "become_flags")
    if err then return nil, err end
    local pw = var("ansible_become_password")
    if pw == nil then pw = var("ansible_become_pass") end
    if pw ~= nil then
        pw, err = value(pw, "ansible_become_password")
        if err then return nil, err end
    else
        pw = self.opts.become_password
    end
    if pw ~= nil then
        pw = tostring(pw)
        redact.register(pw)
    end
    spec.user, spec.password = tostring(spec.user), pw
    return spec
end

-- Runs an action once (with until/retries) and applies changed_when /
-- failed_when.  Returns the result table.
function Run:execute(hs, step, scope)
    local action = actions.get(step.action)
    local rendered, err, unknown = render_args(action, step.args, scope)
    if not rendered then
        if unknown then return { unknown = true, msg = err } end
        return { failed = true, msg = err }
    end
    local args, errs = schema.check(action, rendered)
    if #errs > 0 then
        return { failed = true, msg = step.action .. ": " .. table.concat(errs, "; ") }
    end
    local check = self.opts.check
    if step.check_mode == true then check = true end
    if step.check_mode == false then check = false end
    local running = self.running[hs.name]
    local ctx = {
        conn = hs.conn, check = check, diff = self.opts.diff, host = hs.name,
        scope = scope, playbook_dir = M.files_dir(step, args, self.book.dir), interrupted = interrupted,
        progress = function(text) if running then running.progress = text end end,
        -- a controller file an action reads (copy/template src): its
        -- path and sha256 are recorded in the run (saved plans check them)
        read_file = function(path)
            local data, rerr = require("cutover.core.fs").read(path)
            if data then
                self.files_read = self.files_read or {}
                local digest = crypto.sha256(data)
                if self.journal and self.files_read[path] ~= digest then
                    -- resume compares it: a changed file is refused
                    local rok, abs = pcall(require("cutover.core.fs").realpath, path)
                    self.journal:event(self.run_id, nil, "file", rok and abs or path, digest)
                end
                self.files_read[path] = digest
                if self.opts.on_file_read then self.opts.on_file_read(path, self.files_read[path]) end
            end
            return data, rerr
        end,
        gate = function(spec)
            if step.gate_id then spec = util.copy(spec); spec.gate = step.gate_id end
            return self:gate(hs, spec)
        end,
        gate_id = step.gate_id,
    }
    if step.delegate_to ~= nil and (not action.controller or action.delegatable) then
        local dok, target, dunknown = expr.render(step.delegate_to, scope)
        if not dok then
            if dunknown then return { unknown = true, msg = "delegate_to: " .. target } end
            return { failed = true, msg = "delegate_to: " .. target }
        end
        local conn, derr = self:delegate(tostring(target))
        if not conn then return { failed = true, msg = derr } end
        ctx.conn = conn
        ctx.delegated_to = tostring(target)
    elseif not action.controller and not hs.conn then
        return { failed = true, unreachable = true, msg = hs.unreachable_msg }
    end
    -- become: the host's commands (and file writes) run as that user for
    -- this step; the connection asks become.lua how
    local become_spec
    if not action.controller and ctx.conn then
        local berr
        become_spec, berr = self:become_for(hs, step, scope)
        if berr then return { failed = true, msg = berr } end
        if become_spec and ctx.conn.kind ~= "ssh" then
            local sys_user = ctx.conn.kind == "local" and sys.user() or nil
            if sys_user ~= become_spec.user then
                return { failed = true, msg = "become is for SSH hosts (POSIX); on the " .. tostring(ctx.conn.kind) ..
                         " connection run cutover as " .. become_spec.user .. " instead" }
            end
            become_spec = nil
        end
    end
    -- In check mode, after a step whose effect cannot be known and that
    -- changes what the host is (a reboot, a promotion: actions marked
    -- `pivot`), what the host would answer is unknown too.
    if check and hs.pivot and (not action.controller or action.probes_host) then
        return { unknown = true, msg = "decided at apply time: follows '" .. hs.pivot ..
                 "', which check mode cannot know" }
    end
    local attempts = 0
    local result
    if become_spec then ctx.conn.become = become_spec end
    while true do
        attempts = attempts + 1
        local ok, r = xpcall(action.run, debug.traceback, ctx, args)
        if not ok then
            result = { failed = true, msg = "internal error in action '" .. step.action .. "': " .. tostring(r) }
        else
            result = r or {}
        end
        if result.changed == nil then result.changed = false end
        if step["until"] == nil or result.unknown or result.interrupted or check then break end
        local probe = step.register and scope:with({ [step.register] = result, result = result })
            or scope:with({ result = result })
        local cok, done = expr.condition(step["until"], probe)
        if not cok then result = { failed = true, msg = "until: " .. done }; break end
        if done then break end
        if attempts > (step.retries or 3) or interrupted() then
            result.failed = true
            result.msg = "still not true after " .. attempts .. " attempts: until " .. tostring(step["until"])
            break
        end
        local delay = step.delay or 5
        if type(delay) == "string" then
            local dok, d = expr.render(delay, scope)
            delay = dok and tonumber(d) or 5
        end
        if running then running.progress = "attempt " .. (attempts + 1) end
        loop.sleep(delay)
        if interrupted() then
            -- no further attempt: a program started now would not be
            -- stopped by the interrupt that already arrived
            result.failed, result.interrupted = true, true
            result.msg = "interrupted while waiting to retry (after " .. attempts ..
                (attempts == 1 and " attempt)" or " attempts)")
            break
        end
    end
    if become_spec then ctx.conn.become = nil end
    if attempts > 1 then result.attempts = attempts end
    if check and result.unknown and action.pivot then hs.pivot = step.id end
    if not result.unknown and (step.changed_when ~= nil or step.failed_when ~= nil) then
        local probe = step.register and scope:with({ [step.register] = result, result = result })
            or scope:with({ result = result })
        if step.changed_when ~= nil then
            local cok, v, unk = expr.condition(step.changed_when, probe)
            if not cok then
                if unk then result.unknown = true else result.failed = true end
                result.msg = "changed_when: " .. v
            else
                result.changed = v
            end
        end
        if step.failed_when ~= nil then
            local fok, v, unk = expr.condition(step.failed_when, probe)
            if not fok then
                if unk then result.unknown = true else result.failed = true end
                result.msg = "failed_when: " .. v
            else
                result.failed = v
                if v and not result.msg then result.msg = "failed_when: " .. tostring(step.failed_when) end
                if not v and result.rc and result.rc ~= 0 and result.msg == "exit code " .. result.rc then
                    result.msg = nil
                end
            end
        end
    end
    return result
end

-- Statuses of a journaled step that count as done on resume.
local DONE = { ok = true, changed = true, skipped = true, ignored = true, marked = true }

-- One action step on one host: when, loop, register, notify, report.
-- Returns false when the host must stop (a failure not ignored).
-- The scope a step sees: step vars (with those of the imports and roles
-- around it) just above play vars, below registered and extra vars; the
-- loop variables of the includes it runs in above them; a role's
-- defaults below everything.
function Run:scope_for(hs, step)
    local items = hs.include_items
    if not step.vars and not step.defaults and not (items and #items > 0) then return hs.scope end
    local layers = {}
    for _, l in ipairs(hs.scope.layers) do
        if l.is_play_vars then
            for i = #(items or {}), 1, -1 do layers[#layers + 1] = { vars = items[i], literal = true } end
            if step.vars then layers[#layers + 1] = { vars = step.vars } end
        end
        layers[#layers + 1] = l
    end
    if step.defaults then layers[#layers + 1] = { vars = step.defaults } end
    return vars.new(hs.scope.specials, layers)
end

function Run:action_step(hs, step)
    local scope = self:scope_for(hs, step)
    local started = loop.now()
    self.running[hs.name] = { host = hs.name, step = step.name or step.id, started = started }
    self.reporter:step_start(hs.name, step)

    local function finish(result)
        self.running[hs.name] = nil
        return result
    end

    -- run_once: the first host runs it, the others take its result.
    if step.run_once then
        local shared = self.once[step]
        if shared then
            while not shared.done do loop.sleep(0.01) end
            local r = util.copy(shared.result)
            r.msg = (r.msg and r.msg .. " " or "") .. "(run once, on " .. shared.host .. ")"
            if step.register then scope:set(step.register, r.unknown and expr.UNKNOWN_VALUE or shared.result) end
            self:report(hs, step, r, started)
            finish()
            hs.last_result = r
            return not (r.failed and not r.ignored)
        end
        shared = { done = false, host = hs.name }
        self.once[step] = shared
    end

    local items, item_label
    if step.loop ~= nil then
        local ok, v, unknown = expr.render_value(step.loop, scope)
        local result
        if not ok then
            result = unknown and { unknown = true, msg = "loop: " .. v } or { failed = true, msg = "loop: " .. v }
        elseif type(v) ~= "table" or not util.is_list(v) then
            result = { failed = true, msg = "loop: expected a list, got " .. type(v) }
        end
        if result then
            if step.register then scope:set(step.register, result.unknown and expr.UNKNOWN_VALUE or result) end
            if step.run_once then self.once[step].result, self.once[step].done = result, true end
            self:report(hs, step, result, started)
            finish()
            hs.last_result = result
            return not result.failed
        end
        items = v
    end

    local function one(item_scope)
        if step.when ~= nil then
            local ok, v, unknown = expr.condition(step.when, item_scope)
            if not ok then
                if unknown then return { unknown = true, msg = "when: " .. v } end
                return { failed = true, msg = "when: " .. v }
            end
            if not v then return { skipped = true, changed = false } end
        end
        return self:execute(hs, step, item_scope)
    end

    local result
    if items then
        local results = {}
        local agg = { changed = false, results = results }
        local any_run = false
        local rl = hs.resume_loop
        for i, item in ipairs(items) do
            if interrupted() then agg.interrupted = true; agg.failed = true; break end
            local item_started = loop.now()
            local item_scope = scope:with({ [step.loop_var or "item"] = item, loop_index = i })
            local r
            local done = rl and rl.items[i]
            if done and DONE[done.status] then
                r = { changed = done.changed == true, skipped = done.status == "skipped" or nil,
                      msg = "done before the restart", resumed = true }
            elseif rl and i == rl.inflight and rl.mark then
                r = { changed = false, msg = "marked done by " .. (sys.user()) }
                self.journal:event(self.run_id, hs.name, "mark-done", step.id .. "[" .. i .. "]", nil)
            elseif rl and i == rl.inflight and not (rl.retry or rl.idempotent) then
                r = { failed = true, msg = self:guard_stop(hs, step, i) }
            else
                r = one(item_scope)
            end
            r.item = item
            results[i] = r
            -- a table item is labelled by its name when it has one
            if type(item) == "table" then
                local nm = item.name or (type(item.config) == "table" and item.config.name) or item.id
                item_label = nm ~= nil and tostring(nm) or json.encode(item)
            else
                item_label = tostring(item)
            end
            if #item_label > 60 then item_label = item_label:sub(1, 57) .. "..." end
            if r.failed and step.ignore_errors and not hs.halted then r.ignored = true end
            self:report(hs, step, r, item_started, item_label)
            if hs.halted then agg.failed = true; break end
            if hs.item_seq then
                -- each item's end, so a resume knows where a loop stopped
                local status = (r.failed and interrupted()) and "interrupted" or output.status(r)
                self.journal:event(self.run_id, hs.name, "item", step.id, json.encode({
                    seq = hs.item_seq, index = i, status = status, changed = r.changed == true }))
            end
            if r.changed then agg.changed = true end
            if r.failed then agg.failed = true end
            if r.unknown then agg.unknown = true end
            if not r.skipped then any_run = true end
        end
        if not any_run and #items > 0 then agg.skipped = true end
        result = agg
        if agg.failed then agg.msg = "one or more items failed" end
    else
        result = one(scope)
        if result.failed and interrupted() then result.interrupted = true end
    end

    local ignored = false
    if result.failed and step.ignore_errors ~= nil then
        if type(step.ignore_errors) == "boolean" then ignored = step.ignore_errors
        else
            local ok, v = expr.condition(step.ignore_errors, scope)
            ignored = ok and v
        end
        if ignored then result.ignored = true end
    end
    if step.register then
        -- a loop with any item unknown in check mode is unknown as a whole
        scope:set(step.register, result.unknown and expr.UNKNOWN_VALUE or result)
    end
    if result.changed and step.notify and not result.failed then
        for _, h in ipairs(step.notify) do hs.notified[h] = true end
    end
    if step.run_once then self.once[step].result, self.once[step].done = result, true end
    if not items then self:report(hs, step, result, started) end
    finish()
    hs.last_result = result
    if result.interrupted then
        self.stats.per_host[hs.name].interrupted_at = step.id
        return false
    end
    if result.parked then
        local st = self.stats.per_host[hs.name]
        st.parked_at = step.id
        st.parked_gate = result.gate
        st.parked_kind = result.gate_kind
        st.parked_choices = result.choices
        return false
    end
    if result.failed and not ignored then
        self.stats.per_host[hs.name].failed_at = self.stats.per_host[hs.name].failed_at or step.id
        if self.play_state and self.play_state.any_errors_fatal and (hs.in_rescue or 0) == 0 then
            self.fatal = self.fatal or hs.name
        end
        if result.unreachable then self.stats.per_host[hs.name].unreachable = true end
        return false
    end
    return true
end

-- Approval gates.  Approved when: --approve GATE or GATE@HOST, an
-- --answer for it, or an approval the journal recorded for this run.
-- Otherwise asked on the terminal (one host at a time) or parked.
function Run:gate(hs, spec)
    local o = self.opts
    local gate = spec.gate
    local approve = o.approve or {}
    local answer = o.answers and o.answers[gate]
    local who = (sys.user())
    local function approved(how, value)
        if spec.choices and value ~= nil then
            local okc = false
            for _, c in ipairs(spec.choices) do if tostring(c) == value then okc = true end end
            if not okc then
                return { failed = true, gate = gate, msg = "gate '" .. gate .. "': '" ..
                         (spec.secret and "********" or value) .. "' is not one of " ..
                         table.concat(spec.choices, ", ") }
            end
        end
        -- a secret answer is masked in all output from here on
        if spec.secret and value ~= nil then redact.register(value) end
        if self.journal then
            self.journal:event(self.run_id, hs.name, "approve", gate,
                               how .. (value ~= nil and not spec.secret and (": " .. value) or ""))
        end
        return { changed = false, approved = true, gate = gate, answer = value or "yes",
                 approved_by = who, msg = "gate '" .. gate .. "' approved (" .. how .. ")" }
    end
    if answer ~= nil then return approved("answered on the command line by " .. who, answer) end
    -- a gate with choices or a secret needs its value: --approve alone
    -- does not answer it (it is asked, or the host parks, as without)
    local needs_value = spec.choices ~= nil or spec.secret
    if not needs_value and (approve[gate] or approve[gate .. "@" .. hs.name]) then
        return approved("--approve by " .. who, nil)
    end
    if o.interactive then
        while self.prompting do loop.sleep(0.02) end
        self.prompting = true
        local text = string.format("\n[%s] gate '%s': %s%s ", hs.name, gate, spec.prompt,
            spec.choices and (" (" .. table.concat(spec.choices, "/") .. ")") or " [yes/no]")
        self.reporter:clear()
        local got, err
        for _ = 1, 3 do
            got, err = sys.ask(text, spec.secret)
            if got == nil then break end
            got = util.trim(got)
            if spec.choices then
                local okc = false
                for _, c in ipairs(spec.choices) do if tostring(c) == got then okc = true end end
                if okc then break end
                sys.write(2, "  answer one of: " .. table.concat(spec.choices, ", ") .. "\n")
                got = nil
            else
                break
            end
        end
        self.prompting = false
        if got == nil then
            return { failed = true, gate = gate, msg = "gate '" .. gate .. "': " .. (err or "no valid answer") }
        end
        if not spec.choices and not spec.secret and got:lower() ~= "yes" and got:lower() ~= "y" then
            if self.journal then self.journal:event(self.run_id, hs.name, "refuse", gate, "by " .. who) end
            return { failed = true, gate = gate, msg = "gate '" .. gate .. "' not approved by " .. who }
        end
        return approved("at the terminal by " .. who, (spec.choices or spec.secret) and got or nil)
    end
    return { parked = true, gate = gate, changed = false,
             gate_kind = spec.secret and "secret" or (spec.choices and "choices") or "approve",
             choices = spec.choices,
             msg = "parked at gate '" .. gate .. "': " .. spec.prompt }
end

-- A stable digest of a step's definition (its YAML, canonical JSON).
local function step_digest(step)
    if not step.digest then
        step.digest = crypto.sha256(json.encode(step.raw or {}))
    end
    return step.digest
end
M.step_digest = step_digest

-- The result fields kept in the journal (no diff text; secrets masked),
-- and, when masking changed them, the unmasked text sealed with the
-- vault key so that a resumed run gets the real values back.
-- Output kept in the journal for a step that registers nothing: its head
-- and tail (what `show` and a post-mortem need); the whole is kept only
-- where a registered value must be replayed on resume.
M.JOURNAL_OUTPUT_KEEP = 32 * 1024

local function head_and_tail(text)
    local keep = M.JOURNAL_OUTPUT_KEEP
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
    local rows = j:rows("SELECT seq, host, play, step, result, sealed FROM steps " ..
                        "WHERE run = ? AND sealed IS NOT NULL ORDER BY seq", run_id)
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
        io.stderr:write("cutover: " .. redact.text(b) .. " is sealed and cannot be opened with the vault " ..
                        tostring(self.secrets.vault_path) .. "\n")
    end
    io.stderr:write("cutover: refusing to resume run " .. run_id .. " with masked copies of sealed values " ..
                    "(a recreated vault, or another one?); resume with the vault the run started with\n")
    return M.EXIT_REFUSED
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

-- A step with its journal rows around it: an intent before, the result
-- after.  On resume, a step already done is replayed; one that was in
-- flight runs again only when that is safe.
function Run:journaled_step(hs, step)
    local j = self.journal
    if self.journal_error then
        -- another host found the journal unwritable: start nothing more
        self:host_stats(hs.name).journal_step = step.id .. " (not started)"
        error(self.journal_error, 0)
    end
    local play = self.play_state.index
    hs.occurrences = hs.occurrences or {}
    local okey = play .. "\0" .. step.id
    local n = (hs.occurrences[okey] or 0) + 1
    hs.occurrences[okey] = n
    local key = play .. "/" .. step.id .. "#" .. n
    local action = actions.get(step.action)
    local idempotent = action.idempotent == true or
        ((step.action == "command" or step.action == "shell") and type(step.args) == "table" and
         (step.args.creates ~= nil or step.args.removes ~= nil))
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
        local r = self.resume
        local decision = step.id .. "@" .. hs.name  -- per host (history.decisions)
        if r.mark_done[decision] then
            local seq = j:intent({ run = self.run_id, host = hs.name, play = play, step = step.id,
                                   occurrence = n, name = step.name, action = step.action,
                                   digest = step_digest(step), idempotent = idempotent })
            local done = { changed = false, msg = "marked done by " .. (sys.user()) }
            -- the marked row keeps the step's own result (masked, and
            -- sealed when it holds a secret), so later resumes replay the
            -- real values too
            local text = row.result or (self:journal_json(done, step.register ~= nil))
            j:result(seq, "marked", false, text, "marked done by " .. (sys.user()), row.result and row.sealed or nil)
            j:event(self.run_id, hs.name, "mark-done", step.id, nil)
            return self:replay(hs, step, { result = text, sealed = row.result and row.sealed or nil, seq = row.seq,
                                           note = "marked done by the operator" })
        elseif step.loop ~= nil and row.status ~= "failed" then
            -- a loop stopped half-way: the items it finished are not run
            -- again; the one in flight is decided like a step (action_step)
            local items = (r.items and r.items[hs.name] or {})[row.seq] or {}
            local first = require("cutover.journal").loop_inflight(items)
            local ikey = step.id .. "[" .. first .. "]@" .. hs.name
            hs.resume_loop = { items = items, inflight = first, idempotent = idempotent,
                               mark = r.mark_done[ikey], retry = r.retry[decision] or r.retry[ikey] }
            if r.retry[decision] or r.retry[ikey] then
                j:event(self.run_id, hs.name, "retry", r.retry[ikey] and (step.id .. "[" .. first .. "]") or step.id, nil)
            end
            note = "resumed in the middle of its loop"
        elseif r.retry[decision] then
            note = "retried after a restart (--retry)"
            j:event(self.run_id, hs.name, "retry", step.id, nil)
        elseif not idempotent then
            self:report(hs, step, { failed = true, msg = self:guard_stop(hs, step) }, loop.now())
            return false
        else
            note = "run again after a restart (idempotent)"
        end
    end
    local intent = { run = self.run_id, host = hs.name, play = play, step = step.id,
                     occurrence = n, name = step.name, action = step.action,
                     digest = step_digest(step), idempotent = idempotent }
    if M.step_boundary then M.step_boundary("before", step.id, hs.name) end
    -- A step that only works on the controller changes nothing a crash
    -- could leave half done: one row after it, not an intent before.
    self:host_stats(hs.name).journal_step = step.id
    local seq = not action.controller and j:intent(intent) or nil
    hs.last_result = nil
    hs.item_seq = seq
    local ok = self:action_step(hs, step)
    hs.item_seq, hs.resume_loop = nil, nil
    if hs.halted then
        -- stopped at a loop item in flight: the step stays in flight
        -- (its intent row "running") until the operator decides
        return false
    end
    local result = hs.last_result or { failed = not ok }
    local text, sealed = self:journal_json(result, step.register ~= nil)
    local shown_diff = result.diff and redact.text(diff.render(result.diff)) or ""
    if seq then
        j:result(seq, output.status(result), result.changed == true, text, note, sealed)
    else
        j:exec("BEGIN")
        seq = j:intent(intent)
        j:result(seq, output.status(result), result.changed == true, text, note, sealed)
        j:exec("COMMIT")
    end
    if shown_diff ~= "" then
        -- the --diff text, masked, for `cutover report` (capped: a report is read by people)
        j:event(self.run_id, hs.name, "diff", step.id, json.encode({ seq = seq, text = shown_diff:sub(1, 65536) }))
    end
    if M.step_boundary then M.step_boundary("after", step.id, hs.name) end
    return ok
end

-- The steps of an include_steps whose file name is a template: rendered
-- in the host's scope (with the include's loop item), read and checked
-- as an imported file is, once per run and file, and journaled (resume
-- and saved plans check it).  Returns the steps, or nil after reporting
-- the failure (unknown in check mode: nil, true).
M.MAX_DYNAMIC_DEPTH = 16
function Run:dynamic_steps(hs, step)
    local function fail(msg, unknown)
        self:report(hs, step, unknown and { unknown = true, msg = msg } or { failed = true, msg = msg }, loop.now())
        if not unknown then self.stats.per_host[hs.name].failed_at = step.id end
        return nil, unknown
    end
    local ok, name, unknown = expr.render(step.dynamic_file, self:scope_for(hs, step))
    if not ok then return fail("include_steps: the file name '" .. step.dynamic_file .. "': " .. name, unknown) end
    name = tostring(name)
    if name == "" then return fail("include_steps: the file name '" .. step.dynamic_file .. "' gave an empty name") end
    if (hs.dynamic_depth or 0) >= M.MAX_DYNAMIC_DEPTH then
        return fail("include_steps: includes nested deeper than " .. M.MAX_DYNAMIC_DEPTH .. " levels")
    end
    -- the name may come from data (a registered result, a host's
    -- variable): it stays inside the folder of the file naming it
    local depth, escapes = 0, name:sub(1, 1) == "/" or name:find("[\0\n]") ~= nil
    for seg in name:gmatch("[^/]+") do
        if seg == ".." then depth = depth - 1 elseif seg ~= "." then depth = depth + 1 end
        if depth < 0 then escapes = true end
    end
    if escapes then
        return fail("include_steps: '" .. name .. "' (from '" .. step.dynamic_file .. "') leaves the folder of " ..
            (step.source and step.source.path or "the file naming it") .. " (a name given by {{ }} must stay inside it: " ..
            "no absolute path, no '..' above it)")
    end
    local path = util.join_path(step.dynamic_base, name)
    self.dynamic = self.dynamic or {}
    local cache = self.dynamic[step] or {}
    self.dynamic[step] = cache
    local got = cache[path]
    if not got then
        local fs = require("cutover.core.fs")
        local st = fs.stat(path)
        if type(st) ~= "table" or st.type ~= "file" then
            got = { err = "include_steps: " .. path .. ": no such file (from '" .. step.dynamic_file .. "')" }
        else
            local list, files = require("cutover.playbook").load_steps(path, step, self.book,
                                                                      hs.play and hs.play.handler_names)
            if not list then
                got = { err = "include_steps: " .. path .. ": " .. table.concat(files, "; ") }
            else
                got = { steps = list }
                for _, f in ipairs(files) do
                    self.files_read = self.files_read or {}
                    if self.files_read[f.abs] ~= f.digest then
                        self.files_read[f.abs] = f.digest
                        if self.journal then self.journal:event(self.run_id, nil, "file", f.abs, f.digest) end
                        if self.opts.on_file_read then self.opts.on_file_read(f.abs, f.digest) end
                    end
                end
                -- what the include carries reaches its steps (their own win)
                local function push(list2, v, field)
                    for _, s2 in ipairs(list2) do
                        if s2.block then
                            push(s2.block, v, field); push(s2.rescue, v, field); push(s2.always, v, field)
                        else
                            local merged = {}
                            for k, x in pairs(v or {}) do merged[k] = x end
                            for k, x in pairs(s2[field] or {}) do merged[k] = x end
                            s2[field] = merged
                        end
                        s2.role_dir = s2.role_dir or step.role_dir
                    end
                end
                push(list, step.vars, "vars")
                push(list, step.defaults, "defaults")
            end
        end
        cache[path] = got
    end
    if got.err then return fail(got.err) end
    return got.steps
end

-- Runs the steps of an include (static or dynamic) once.
function Run:include_body(hs, step)
    if not step.dynamic_file then return self:steps(hs, step.block) end
    local list, unknown = self:dynamic_steps(hs, step)
    if not list then return unknown == true end
    hs.dynamic_depth = (hs.dynamic_depth or 0) + 1
    local ok = self:steps(hs, list)
    hs.dynamic_depth = hs.dynamic_depth - 1
    return ok
end

-- include_steps / include_role with a loop: the included steps run once
-- per item, with the item (and loop_index) in their scope; `when` is
-- asked per item.
function Run:include_loop(hs, step)
    if not hs.started then
        -- --start-at inside: walk the steps once to find the start (a
        -- file named at run time is not looked into)
        return step.dynamic_file ~= nil or self:steps(hs, step.block)
    end
    local scope = self:scope_for(hs, step)
    local ok, v, unknown = expr.render_value(step.include_loop, scope)
    local bad
    if not ok then
        bad = unknown and { unknown = true, msg = "loop: " .. v } or { failed = true, msg = "loop: " .. v }
    elseif type(v) ~= "table" or not util.is_list(v) then
        bad = { failed = true, msg = "loop: expected a list, got " .. type(v) }
    end
    if bad then
        self:report(hs, step, bad, loop.now())
        if bad.failed then
            self.stats.per_host[hs.name].failed_at = step.id
            return false
        end
        return true
    end
    hs.include_items = hs.include_items or {}
    local result = true
    for i, item in ipairs(v) do
        local layer = { [step.loop_var or "item"] = item, loop_index = i }
        hs.include_items[#hs.include_items + 1] = layer
        local run_it = true
        if step.when ~= nil then
            local cok, cv, cunknown = expr.condition(step.when, self:scope_for(hs, step))
            if not cok then
                hs.include_items[#hs.include_items] = nil
                self:report(hs, step, cunknown and { unknown = true, msg = "when: " .. cv }
                            or { failed = true, msg = "when: " .. cv }, loop.now())
                if not cunknown then
                    self.stats.per_host[hs.name].failed_at = step.id
                    return false
                end
                return true
            end
            run_it = cv
        end
        local one = (not run_it) or self:include_body(hs, step)
        hs.include_items[#hs.include_items] = nil
        if not one then result = false; break end
    end
    return result
end

-- The handlers notified so far, in the order they are defined (at the
-- end of the play, and at meta: flush_handlers).  Returns false when
-- one failed.
function Run:run_handlers(hs)
    local play = hs.play
    if not play then return true end
    local ok = true
    for _, handler in ipairs(play.handlers) do
        if hs.notified[handler.name] or hs.notified[handler.id] then
            if not self:step(hs, handler) then ok = false; break end
        end
    end
    hs.notified = {}
    return ok
end

-- Runs a list of steps; returns false when the host failed.
function Run:steps(hs, list)
    for _, step in ipairs(list) do
        if not self:step(hs, step) then return false end
    end
    return true
end

function Run:step(hs, step)
    if hs.halted then return false end
    if interrupted() then
        if not self.stats.per_host[hs.name].interrupted_at then
            self.stats.per_host[hs.name].interrupted_at = step.id
        end
        return false
    end
    if self.fatal and self.fatal ~= hs.name then
        -- any_errors_fatal: another host failed; stop at this boundary
        local st = self.stats.per_host[hs.name]
        if not st.stopped_at then
            st.stopped_at = step.id
            st.stopped_why = "any_errors_fatal: " .. self.fatal .. " failed"
        end
        return false
    end
    if step.meta == "flush_handlers" then
        -- the handlers notified so far run here, then are forgotten
        if not hs.started or not self:tags_allow(step) then return true end
        return self:run_handlers(hs)
    end
    if step.include_loop ~= nil then return self:include_loop(hs, step) end
    if step.dynamic_file and not hs.started then return true end
    if step.block or step.dynamic_file then
        if step.when ~= nil and hs.started then
            local ok, v, unknown = expr.condition(step.when, self:scope_for(hs, step))
            if not ok then
                local r = unknown and { unknown = true, msg = "when: " .. v } or { failed = true, msg = "when: " .. v }
                self:report(hs, step, r, loop.now())
                if not unknown then
                    self.stats.per_host[hs.name].failed_at = step.id
                    return false
                end
                return true
            end
            if not v then return true end
        end
        -- a failure that a rescue will handle is not fatal to the others
        if #step.rescue > 0 then hs.in_rescue = (hs.in_rescue or 0) + 1 end
        local ok = self:include_body(hs, step)
        if #step.rescue > 0 then hs.in_rescue = hs.in_rescue - 1 end
        if hs.halted then return false end
        if not ok and not interrupted() and #step.rescue > 0 then
            -- the failure is handled: the host carries on after rescue
            hs.recovered = true
            self.stats.per_host[hs.name].failed_at = nil
            ok = self:steps(hs, step.rescue)
        end
        if not interrupted() then
            local always_ok = self:steps(hs, step.always)
            ok = ok and always_ok
        end
        return ok
    end
    if not hs.started then
        if step.id == self.opts.start_at or step.name == self.opts.start_at then
            hs.started = true
        else
            return true
        end
    end
    if not self:tags_allow(step) then return true end
    if self.journal then return self:journaled_step(hs, step) end
    return self:action_step(hs, step)
end

-- Remote facts (facts.lua, docs/facts.md): one round trip at the start
-- of the host's first play that wants them, kept for the run (a later
-- play gathers again only for subsets not yet read) and in the journal.
-- POSIX SSH hosts gather unless the play says gather_facts: false; the
-- local connection only when it says true; cmd.exe hosts never (win_facts).
-- A host resumed with a step in flight is not contacted before that step
-- (it may be rebooting), so it has no gathered facts.  Returns false when
-- gathering failed (the host is reported failed).
function Run:gather_facts(hs, play)
    local conn = hs.conn
    local kind = conn and conn.kind
    local on = play.gather_facts
    if on == nil then on = kind == "ssh" end
    if not on or (kind ~= "ssh" and kind ~= "local") then return true end
    if self.resume and self.resume.inflight and self.resume.inflight[hs.name] then return true end
    local want = facts_mod.resolve_subset(play.gather_subset)
    local have = hs.gathered
    if have and (have.want.hardware or not want.hardware) and (have.want.network or not want.network) then
        return true
    end
    local t0 = loop.now()
    self.running[hs.name] = { host = hs.name, step = "gather facts", started = t0 }
    local f, err, code = facts_mod.gather(conn, want)
    self.running[hs.name] = nil
    if not f then
        local lost = code == "connection" or nil
        local result = { failed = true, unreachable = lost, interrupted = interrupted() or nil,
                         msg = tostring(err):find(hs.name, 1, true) and tostring(err) or (hs.name .. ": " .. tostring(err)) }
        self:report(hs, { id = "gather_facts", name = "gather facts", action = "gather_facts" }, result, t0)
        local st = self.stats.per_host[hs.name]
        if result.interrupted then st.interrupted_at = "gather_facts" else st.failed_at = "gather_facts" end
        st.unreachable = lost
        self.failed_hosts[hs.name] = true
        return false
    end
    hs.gathered = { want = want, facts = f }
    if self.journal then
        -- a failed write (a full disk) shows up, named, at the next step
        pcall(self.journal.event, self.journal, self.run_id, hs.name, "facts", play.name,
              redact.json_line(json.encode(redact.value(f))))
    end
    return true
end

-- What is known of the host, read-only in expressions.  The local
-- connection runs on the controller, so its uname and user are the
-- host's; over SSH what the connection knows, and the gathered facts:
-- never the controller's hostname or user.
function Run:host_facts(hs)
    local conn = hs.conn
    local kind = conn and conn.kind
    local facts
    if kind == "local" or kind == nil then
        local u = sys.uname() or {}
        facts = {
            name = hs.name, hostname = u.node, system = u.system, kernel = u.release,
            architecture = u.machine, user = (sys.user()), connection = kind,
        }
    else
        local st = conn.settings or {}
        facts = { name = hs.name, address = st.host, port = st.port, user = st.user, connection = kind }
    end
    for k, v in pairs(hs.gathered and hs.gathered.facts or {}) do
        if facts[k] == nil or k == "hostname" then facts[k] = v end
    end
    return facts_mod.freeze(facts, "facts")
end


-- All hosts of one play.
-- Hosts of a play in the order the play asks for.
local function ordered(hosts, order)
    local out = util.copy(hosts)
    if order == "sorted" then table.sort(out)
    elseif order == "reverse_sorted" then table.sort(out, function(a, b) return a > b end)
    elseif order == "reverse_inventory" then
        for i = 1, #out // 2 do out[i], out[#out - i + 1] = out[#out - i + 1], out[i] end
    elseif order == "shuffle" then
        for i = #out, 2, -1 do
            local j = math.random(i)
            out[i], out[j] = out[j], out[i]
        end
    end
    return out
end

-- Batch sizes for `serial` (a count, "N%", or a list; the last repeats).
local function batches(hosts, serial)
    if not serial then return { hosts } end
    local out, i, k = {}, 1, 1
    while i <= #hosts do
        local spec = serial[math.min(k, #serial)]
        local size
        if type(spec) == "string" then
            size = math.max(1, math.floor(#hosts * tonumber(spec:match("%d+")) / 100))
        else
            size = spec
        end
        local batch = {}
        for j = i, math.min(#hosts, i + size - 1) do batch[#batch + 1] = hosts[j] end
        out[#out + 1] = batch
        i = i + size
        k = k + 1
    end
    return out
end

-- Runs one batch: at most `forks` hosts at once, one task per slot, each
-- taking the next host of the batch.
function Run:batch(play, hosts)
    local next_host = 1
    local forks = math.max(1, self.opts.forks or 50)
    for _ = 1, math.min(forks, #hosts) do
        loop.spawn(function()
            while next_host <= #hosts do
                local name = hosts[next_host]
                next_host = next_host + 1
                if self.abort then
                    self:never_started(name, self.abort)
                else
                    self.active = (self.active or 0) + 1
                    self.peak_active = math.max(self.peak_active or 0, self.active)
                    local ok, err = xpcall(self.host_play, debug.traceback, self, play, name)
                    self.active = self.active - 1
                    if not ok and require("cutover.journal").is_write_error(err) then
                        self:journal_broken(name, err)
                    elseif not ok then
                        io.stderr:write("cutover: internal error on host " .. name .. ": " .. tostring(err) .. "\n")
                        self.failed_hosts[name] = true
                        self.stats.per_host[name].failed_at = "internal error"
                    end
                    if self.reporter.host_end then
                        local st = self.stats.per_host[name] or {}
                        self.reporter:host_end(name, st.parked_at and "parked" or
                            ((self.failed_hosts[name] or st.interrupted_at) and "failed") or "done")
                    end
                end
            end
        end)
    end
    loop.run(function() self.reporter:tick(self.running, loop.now()) end, 0.25)
    self.reporter:tick({}, loop.now())
end

-- The journal refused a write (a full disk, a file-size limit): nothing
-- more may run unrecorded.  The host stops where it is, no host starts,
-- and the run's record is left as a crash leaves it, so `cutover resume`
-- takes it from there once there is room.
function Run:journal_broken(name, err)
    local st = self:host_stats(name)
    local step = st.journal_step or "?"
    self.failed_hosts[name] = true
    st.failed_at = step
    st.stopped_why = "the journal cannot be written"
    if not self.journal_error then
        self.journal_error = err
        self.abort = "stopped: the journal cannot be written"
        self.stop_run = self.abort
        io.stderr:write(string.format(
            "cutover: host %s, step '%s': %s\n" ..
            "  The journal cannot be written (is its disk full, or a file-size limit reached?).\n" ..
            "  The run stops: no further step starts on any host.  Steps already recorded are safe;\n" ..
            "  '%s' may or may not have taken effect.  Make room, then: cutover resume %s\n",
            name, step, tostring(err), step, self.run_id or ""))
    else
        io.stderr:write(string.format("cutover: host %s, step '%s': stopped, the journal cannot be written\n",
                                      name, step))
    end
end

function Run:never_started(name, why)
    self:host_stats(name).never_started = why
end

function Run:host_stats(name)
    local st = self.stats.per_host[name]
    if not st then
        st = {}
        self.stats.per_host[name] = st
        self.stats.hosts[#self.stats.hosts + 1] = name
    end
    return st
end

-- All hosts of one play, batch by batch.
function Run:play(play)
    local names, unknown = self.inventory:select(play.hosts)
    for _, u in ipairs(unknown) do
        self.reporter:warn("play '" .. play.name .. "': hosts pattern '" .. u .. "' matched no host")
    end
    local hosts = {}
    for _, h in ipairs(names) do
        if (not self.opts.limit or self.limit[h]) and not self.failed_hosts[h]
            and not (self.resume and self.resume.finished[h]) then
            hosts[#hosts + 1] = h
        end
    end
    if #hosts == 0 then
        self.reporter:warn("play '" .. play.name .. "': no hosts to run on")
        return
    end
    self:warn_unhonoured_vars(hosts)
    hosts = ordered(hosts, play.order)
    self.reporter:play_start(play, hosts)
    self.play_state = play
    self.abort = nil
    self.fatal = nil
    local list = batches(hosts, play.serial)
    for b, batch in ipairs(list) do
        if interrupted() then
            for _, name in ipairs(batch) do self:never_started(name, "interrupted") end
        elseif self.abort then
            for _, name in ipairs(batch) do self:never_started(name, self.abort) end
        else
            if #list > 1 then self.reporter:batch_start(play, b, #list, batch) end
            if self.journal then
                -- for the report's timeline; a failed write shows up at the next step
                pcall(self.journal.event, self.journal, self.run_id, nil, "batch", play.name,
                      json.encode({ play = self.play_state and self.play_state.index, batch = b, of = #list,
                                    hosts = setmetatable(util.copy(batch), { __jsontype = "array" }) }))
            end
            self.once = {}
            self:batch(play, batch)
            if #list > 1 then
                -- A rolling batch is done with its hosts for this play:
                -- close their sessions so that sockets and memory stay
                -- bounded by the batch size, not the inventory size (a
                -- later play reconnects).  What stays per host is its
                -- registered values and its recap counts (the step
                -- occurrence counts are per play: this play is over for it).
                for _, name in ipairs(batch) do
                    local hs = self.hosts[name]
                    if hs then
                        if hs.conn then hs.conn:close() end
                        hs.conn, hs.scope, hs.released = nil, nil, true
                        hs.occurrences, hs.last_result = nil, nil
                    end
                end
                -- a full collection between batches returns the batch's
                -- garbage before the next one allocates (a few ms)
                collectgarbage("collect")
            end
            local failed, parked = 0, {}
            for _, name in ipairs(batch) do
                local st = self.stats.per_host[name]
                if st and st.parked_at then
                    parked[#parked + 1] = name .. " at gate " .. st.parked_gate
                elseif self.failed_hosts[name] then
                    failed = failed + 1
                end
            end
            if #list > 1 then self.reporter:batch_end(play, b, #list, failed, #parked) end
            if #parked > 0 and b < #list and not self.abort then
                -- a rolling upgrade waits for its gate before going on
                self.abort = "waiting: " .. table.concat(parked, ", ") ..
                    " (later batches start when the run is resumed)"
                self.reporter:warn("play '" .. play.name .. "': " .. self.abort)
            end
            if failed > 0 and not self.abort then
                local pct = failed * 100 / #batch
                if play.any_errors_fatal then
                    self.abort = "stopped: any_errors_fatal after a failure in batch " .. b
                elseif play.max_fail_percentage and pct > play.max_fail_percentage then
                    self.abort = string.format("stopped: %d of %d hosts failed in batch %d (%.0f%%, more than max_fail_percentage %s%%)",
                                               failed, #batch, b, pct, tostring(play.max_fail_percentage))
                elseif failed == #batch and #list > 1 then
                    self.abort = "stopped: every host of batch " .. b .. " failed"
                end
                if self.abort then self.reporter:warn("play '" .. play.name .. "': " .. self.abort) end
            end
        end
    end
    -- the run stops at a play whose rollout was stopped
    if self.abort then self.stop_run = self.abort end
end

-- The connection a delegated step uses: its own pool, so a delegate's
-- session is never the one its own host is using at that moment.
function Run:delegate(name)
    self.delegates = self.delegates or {}
    local conn = self.delegates[name]
    if conn then return conn end
    local h = self.inventory.hosts[name]
    if not h then
        if name == "localhost" or name == "127.0.0.1" then
            conn = connections.open(name, { ansible_connection = "local" }, self.opts)
            self.delegates[name] = conn
            return conn
        end
        return nil, "delegate_to: no host '" .. name .. "' in the inventory"
    end
    local err
    conn, err = connections.open(name, self:connection_vars(name), self.opts)
    if not conn then return nil, "delegate_to " .. name .. ": " .. err end
    self.delegates[name] = conn
    return conn
end

-- One warning per run for each ansible_* variable of these hosts that
-- cutover does not act on, naming it and a host that has it.
function Run:warn_unhonoured_vars(hosts)
    self.warned_vars = self.warned_vars or {}
    local found, names = {}, {}
    for _, h in ipairs(hosts) do
        for k in pairs(self:connection_vars(h)) do
            if type(k) == "string" and k:match("^ansible_") and not connections.HONOURED[k]
                and not self.warned_vars[k] then
                if not found[k] then found[k] = {}; names[#names + 1] = k end
                table.insert(found[k], h)
            end
        end
    end
    table.sort(names)
    for _, k in ipairs(names) do
        self.warned_vars[k] = true
        local on = found[k]
        self.reporter:warn("inventory variable " .. k .. " (on " .. on[1] ..
            (#on > 1 and (" and " .. (#on - 1) .. " more host(s)") or "") .. ") is not honoured by cutover: " ..
            (connections.WHY_NOT_HONOURED[k] or "it is ignored"))
    end
end

-- Variables that choose a host's connection: group vars, then host vars.
function Run:connection_vars(name)
    local h = self.inventory.hosts[name]
    local hostvars = {}
    local groups = h.implicit and {} or self.inventory:group_layers(name)
    for i = #groups, 1, -1 do
        for k, v in pairs(groups[i].vars) do hostvars[k] = v end
    end
    for k, v in pairs(h.vars) do hostvars[k] = v end
    return hostvars
end

function Run:host_state(name)
    local hs = self.hosts[name]
    if hs and hs.released then
        -- released at the end of an earlier play's batch
        hs.conn, hs.unreachable_msg = connections.open(name, self:connection_vars(name), self.opts)
        hs.released = nil
    end
    if hs then return hs end
    hs = { name = name, registered = {}, notified = {}, started = self.opts.start_at == nil }
    local conn, err = connections.open(name, self:connection_vars(name), self.opts)
    hs.conn = conn
    hs.unreachable_msg = err
    self.hosts[name] = hs
    self:host_stats(name)
    return hs
end

function Run:host_play(play, name)
    local hs = self:host_state(name)
    local h = self.inventory.hosts[name]
    local layers = {
        { vars = self.opts.extra_vars or {} },
        { vars = hs.registered, literal = true, writable = true },
        { vars = self.secrets.prompted, literal = true },
        { vars = play.vars, is_play_vars = true },
        { vars = h.vars },
    }
    for _, l in ipairs(self.inventory:group_layers(name)) do layers[#layers + 1] = l end
    local specials = {
        inventory_hostname = name,
        secret = self.secrets:table(),
        check_mode = self.opts.check == true,
    }
    hs.scope = vars.new(specials, layers)
    if hs.conn and hs.conn.open and not (self.resume and self.resume.inflight and self.resume.inflight[name]) then
        -- connect before the first step, so an unreachable host is
        -- reported as such and takes no part
        local t0 = loop.now()
        self.running[name] = { host = name, step = "connect", started = t0 }
        local ok, err = hs.conn:open()
        self.running[name] = nil
        if not ok then
            self:report(hs, { id = "connect", name = "connect", action = "connect" },
                        { failed = true, unreachable = true, msg = err }, t0)
            self.stats.per_host[name].failed_at = "connect"
            self.stats.per_host[name].unreachable = true
            self.failed_hosts[name] = true
            return
        end
    end
    if not self:gather_facts(hs, play) then return end
    specials.facts = self:host_facts(hs)
    specials.ansible_facts = specials.facts
    hs.notified = {}
    hs.play = play
    local ok = self:steps(hs, play.steps)
    -- handlers run at the end of the play, in the order they are defined
    if ok and not interrupted() then ok = self:run_handlers(hs) end
    if not ok then self.failed_hosts[name] = true end
end

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
    if opts.limit then
        local names, unknown = inventory:select(opts.limit)
        for _, n in ipairs(names) do self.limit[n] = true end
        if #names == 0 then
            io.stderr:write("cutover: --limit '" .. opts.limit .. "' matches no host" ..
                (#unknown > 0 and (" (unknown: " .. table.concat(unknown, ", ") .. ")") or "") .. "\n")
            return M.EXIT_USAGE
        end
    end
    if opts.start_at then
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
            io.stderr:write("cutover: --start-at '" .. opts.start_at .. "' matches no step id or name" ..
                util.did_you_mean(opts.start_at, names) .. "; nothing ran\n")
            return M.EXIT_USAGE
        end
    end
    -- Secrets first: a run that cannot have what it needs never starts.
    local sealed_any = false
    if opts.resume and opts.journal then
        sealed_any = opts.resume.run.sealed ~= nil or
            opts.journal:rows("SELECT 1 FROM steps WHERE run = ? AND sealed IS NOT NULL LIMIT 1",
                              opts.resume.run.id)[1] ~= nil
    end
    local secrets, serr, scode = require("cutover.secrets").prepare(book, {
        vault = opts.vault, interactive = opts.interactive, extra_vars = opts.extra_vars,
        run_id = opts.resume and opts.resume.run.id, needs_key = sealed_any,
        sealed_prompts = opts.resume and opts.resume.run.sealed,
        journaled = opts.journal ~= nil, extra_vars_secret = opts.extra_vars_secret,
        inventory = inventory, hosts = self:run_hosts(),
    })
    if not secrets then
        io.stderr:write("cutover: " .. redact.text(serr) .. "\n")
        return scode or M.EXIT_USAGE
    end
    self.secrets = secrets
    if opts.resume and opts.journal then
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
            io.stderr:write("cutover: run " .. opts.resume.run.id .. ": extra var" .. (#lost > 1 and "s " or " ") ..
                "'" .. table.concat(lost, "', '") .. "' held a secret that was recorded only masked " ..
                "(no vault was open to seal it); refusing to resume with the mask in its place\n")
            return M.EXIT_REFUSED
        end
    end
    -- what the journal and saved plans show of the extra vars: secret
    -- ones masked (their real values are sealed with the run)
    local ev_record, ev_secret = secrets:split_extra_vars(book, opts.extra_vars, opts.extra_vars_secret)
    opts.extra_vars_masked = ev_record

    -- The journal: a run record, locks on every host the run may touch.
    local j = opts.journal
    if j then
        self.journal = j
        self.resume = opts.resume
        self.run_id = opts.resume and opts.resume.run.id or opts.run_id or require("cutover.journal").new_run_id()
        local all = self:run_hosts()
        -- the machines too: two inventory names for one machine (one
        -- address, port and user) must not run side by side
        local keys, machine_of = {}, {}
        for _, h in ipairs(all) do keys[#keys + 1] = h end
        for _, h in ipairs(all) do
            local m = connections.machine(h, self:connection_vars(h), opts)
            if m then
                local key = require("cutover.journal").machine_key(m)
                if not machine_of[key] then keys[#keys + 1] = key end
                machine_of[key] = machine_of[key] or { machine = m, hosts = {} }
                table.insert(machine_of[key].hosts, h)
            end
        end
        -- a new run is recorded (with its sealed values and its hosts) in
        -- the transaction that takes its locks
        local sealed = not opts.resume and secrets:sealed_run(self.run_id, ev_secret) or nil
        local record_run = not opts.resume and function()
            j:new_run({ id = self.run_id, command = opts.check and "check" or "run",
                        playbook = opts.playbook_path or book.path,
                        playbook_digest = opts.playbook_digest, inventory = opts.inventory_path,
                        inventory_digest = opts.inventory_digest,
                        extra_vars = ev_record,
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
        end or nil
        local ok, conflicts = j:lock(self.run_id, keys, record_run)
        if not ok then
            for _, c in ipairs(conflicts) do
                local m = machine_of[c.host]
                local what = m and string.format("machine %s (host %s here)", m.machine,
                    table.concat(m.hosts, ", ")) or ("host " .. c.host)
                io.stderr:write(string.format(
                    "cutover: %s is locked by run %s (pid %s on %s, user %s)%s\n",
                    what, c.run, tostring(c.pid), tostring(c.controller), tostring(c.os_user),
                    c.alive and "; refusing to run" or
                    ("; that controller is gone: resume it (cutover resume " .. c.run ..
                     "), end it (cutover abort " .. c.run .. "), or break the lock (cutover unlock " ..
                     (m and m.machine or c.host) .. ")")))
            end
            return M.EXIT_REFUSED
        end
        if opts.resume then
            j:run_status(self.run_id, "running", nil)
            j:event(self.run_id, nil, "resume", nil, nil)
            for _, h in ipairs(all) do
                if not opts.resume.finished[h] then j:host_status(self.run_id, h, "pending") end
            end
        end
    end
    local start = loop.now()
    reporter:run_start({ playbook = book.path, check = opts.check, version = opts.version, run = self.run_id })
    for _, play in ipairs(book.plays) do
        if interrupted() or self.stop_run then break end
        self:play(play)
    end
    if opts.start_at then
        local any = false
        for _, hs in pairs(self.hosts) do if hs.started then any = true end end
        if not any then
            reporter:warn("--start-at '" .. opts.start_at .. "' matched no step; nothing ran")
        end
    end
    for _, hs in pairs(self.hosts) do if hs.conn then hs.conn:close() end end
    for _, c in pairs(self.delegates or {}) do c:close() end
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
    self.stats.duration = loop.now() - start
    self.stats.exit_code = code
    if self.journal_error then
        -- the run's end cannot be recorded either: it stays "running" with
        -- this (soon dead) controller's pid, as after a crash
        code = M.EXIT_FAILED
        self.stats.exit_code = code
        j = nil
    end
    if j then
        for name, st in pairs(self.stats.per_host) do
            local status = st.never_started and "pending"
                or (st.parked_at and "parked")
                or (st.interrupted_at and "interrupted")
                or (st.attention and "attention")
                or (self.failed_hosts[name] and "failed")
                or "ok"
            if not (opts.resume and opts.resume.finished[name]) then
                j:host_status(self.run_id, name, status, st.failed_at or st.interrupted_at,
                              st.never_started or st.stopped_why)
            end
        end
        local status = opts.check and "check" or (code == M.EXIT_OK and "ok")
            or (code == M.EXIT_INTERRUPTED and "interrupted")
            or (code == M.EXIT_PARKED and "parked") or "failed"
        -- a parked run keeps its hosts until it is resumed or aborted
        j:finish_run(self.run_id, status, code, status == "parked")
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
    reporter:run_end(self.stats)
    if opts.report and j then
        local ok, err = require("cutover.report").write(j, self.run_id, opts.report, "html")
        if not ok then io.stderr:write("cutover: " .. redact.text(err) .. "\n") end
    end
    return code
end

return M
