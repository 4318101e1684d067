-- engine.step: one step on one host: tags, when, become, the action's
-- arguments rendered and checked, until/retries, changed_when and
-- failed_when, loops, register and notify, the line reported.
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local expr = require("cutover.expr")
local vars = require("cutover.vars")
local schema = require("cutover.load.schema")
local actions = require("cutover.actions")
local output = require("cutover.output")
local util = require("cutover.util")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local redact = require("cutover.secrets.redact")

local Run = {}

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
local function files_dir(step, args, book_dir)
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
        scope = scope, playbook_dir = files_dir(step, args, self.book.dir), interrupted = interrupted,
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
        -- gather_facts/setup: read the host's facts again
        refresh_facts = function(subset) return self:refresh_facts(hs, subset) end,
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

return { methods = Run, files_dir = files_dir, DONE = DONE }
