-- engine.action: a step's action on one host, once: its arguments
-- rendered and checked, its context (connection, delegate_to, become,
-- check mode), until/retries, changed_when and failed_when.  Called by
-- engine/step.lua for each run of a step (each loop item).
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local expr = require("cutover.expr")
local schema = require("cutover.load.schema")
local actions = require("cutover.actions")
local util = require("cutover.util")
local crypto = require("cutover.core.crypto")
local redact = require("cutover.secrets.redact")
local json = require("cutover.core.json")

local Run = {}

local function interrupted() return loop.interrupts() > 0 end

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

-- A step's arguments rendered and checked.  Arguments with no template
-- anywhere render and check the same way on every host and loop item,
-- so that is done once per step: it was about a tenth of the
-- controller's Lua work for a step like `command: /bin/true` (issue 13's
-- CPU per host-step).  Each call still gets its own copy, since an
-- action may set its arguments' fields (sysctl does).  Keyed weakly by
-- the step: a step is never changed once loaded.
local checked_once = setmetatable({}, { __mode = "k" })

local function checked_args(action, step, scope)
    local once = checked_once[step]
    if once then return util.deep_copy(once.args), once.errs end
    local rendered, err, unknown = render_args(action, step.args, scope)
    if not rendered then return nil, err, unknown end
    local args, errs = schema.check(action, rendered)
    if once == nil then
        once = not expr.value_has_template(step.args) and { args = util.deep_copy(args), errs = errs }
        checked_once[step] = once
    end
    return args, errs
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
    spec.user, err = value(pick("become_user", { "ansible_become_user" }, self.opts.become_user) or "root",
        "become_user")
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

-- A step's memo is small: what the host looked like before the step's
-- risky part (a boot identity, a version), never its output.
local MEMO_MAX = 4096

-- ctx.before_restart: what the same step (this loop item) remembered
-- in the run before the restart (nil when it ran to its end, or
-- remembered nothing).
function Run:step_memo(hs)
    local index = hs.item_index or 0
    local memos = hs.restart_seq and self.resume and self.resume.memos and self.resume.memos[hs.name]
    if memos then return memos[hs.restart_seq .. "/" .. index] end
    return nil
end

-- ctx.remember(data): records, durably before it returns, what this
-- step (this loop item) must know if the controller stops while it
-- runs.  The journal holds it masked, like every result.
function Run:remember_fn(hs, step)
    return function(data)
        if type(data) ~= "table" then error("remember: a table expected, got " .. type(data), 2) end
        if not (self.journal and hs.item_seq) then return end  -- check mode, or a controller step
        local text = redact.text(json.encode({ seq = hs.item_seq, index = hs.item_index, data = data }))
        if #text > MEMO_MAX then
            error(string.format("remember: %d bytes, more than %d", #text, MEMO_MAX), 2)
        end
        self.journal:event(self.run_id, hs.name, "memo", step.id, text)
    end
end

-- The hooks of an action's context back into the run, each made when an
-- action first reads it (most actions read none, and five closures
-- were made for every step of every host).
-- ctx.run_, hs_, step_, running_ hold what they need.
local CTX_HOOKS = {
    remember = function(ctx) return ctx.run_:remember_fn(ctx.hs_, ctx.step_) end,
    progress = function(ctx)
        local running = ctx.running_
        return function(text) if running then running.progress = text end end
    end,
    -- a controller file an action reads (copy/template src): its path
    -- and sha256 are recorded in the run (saved plans check them)
    read_file = function(ctx)
        local self = ctx.run_
        return function(path)
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
        end
    end,
    gate = function(ctx)
        local self, hs, step = ctx.run_, ctx.hs_, ctx.step_
        return function(spec)
            if step.gate_id then spec = util.copy(spec); spec.gate = step.gate_id end
            return self:gate(hs, spec)
        end
    end,
    -- gather_facts/setup: read the host's facts again
    refresh_facts = function(ctx)
        local self, hs = ctx.run_, ctx.hs_
        return function(subset) return self:refresh_facts(hs, subset) end
    end,
}

local CTX_MT = {
    __index = function(ctx, key)
        local make = CTX_HOOKS[key]
        if not make then return nil end
        local hook = make(ctx)
        rawset(ctx, key, hook)
        return hook
    end,
}

-- What an action's run() gets besides its arguments: the connection,
-- check mode, the scope, and hooks back into the run (CTX_HOOKS).
function Run:action_context(hs, step, scope, args, check, running)
    local seen = self.stats.per_host[hs.name] or {}
    return setmetatable({
        before_restart = self:step_memo(hs),
        conn = hs.conn, check = check, diff = self.opts.diff, host = hs.name,
        -- check mode: an earlier step of the run would change this host (or
        -- could not tell), so a path missing now may be there for real
        earlier_change = check and ((seen.changed or 0) + (seen.unknown or 0)) > 0,
        scope = scope, playbook_dir = files_dir(step, args, self.book.dir), interrupted = interrupted,
        gate_id = step.gate_id,
        run_ = self, hs_ = hs, step_ = step, running_ = running,
    }, CTX_MT)
end

-- The connection the action uses: delegate_to's, else the host's.
-- Returns a result when the step cannot run.
function Run:pick_connection(hs, step, scope, action, ctx)
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
    return nil
end

-- become: the host's commands (and file writes) run as that user for
-- this step; the connection asks become.lua how.  Returns the spec to
-- set on the connection (nil: none), or nil and a failed result.
function Run:step_become(hs, step, scope, action, conn)
    if action.controller or not conn then return nil end
    local become_spec, berr = self:become_for(hs, step, scope)
    if berr then return nil, { failed = true, msg = berr } end
    if become_spec and conn.kind ~= "ssh" then
        local sys_user = conn.kind == "local" and sys.user() or nil
        if sys_user ~= become_spec.user then
            return nil, { failed = true, msg = "become is for SSH hosts (POSIX); on the " .. tostring(conn.kind) ..
                          " connection run cutover as " .. become_spec.user .. " instead" }
        end
        return nil
    end
    return become_spec
end

-- The scope until, changed_when and failed_when see: the result as
-- `result` and under the register name.
local function result_scope(step, scope, result)
    return step.register and scope:with({ [step.register] = result, result = result })
        or scope:with({ result = result })
end

-- Seconds between until's attempts (delay may be a template).
local function retry_delay(step, scope)
    local delay = step.delay or 5
    if type(delay) == "string" then
        local dok, d = expr.render(delay, scope)
        delay = dok and tonumber(d) or 5
    end
    return delay
end

-- Calls the action once; an error it raises is a failed result.
local function call_action(step, action, ctx, args)
    local ok, r = xpcall(action.run, debug.traceback, ctx, args)
    local result
    if not ok then
        result = { failed = true, msg = "internal error in action '" .. step.action .. "': " .. tostring(r) }
    else
        result = r or {}
    end
    if result.changed == nil then result.changed = false end
    return result
end

-- The action, again until `until` holds (at most retries + 1 times).
-- Returns the last result and the number of attempts.
local function run_until(step, scope, action, ctx, args, running)
    local attempts = 0
    local result
    while true do
        attempts = attempts + 1
        result = call_action(step, action, ctx, args)
        if step["until"] == nil or result.unknown or result.interrupted or ctx.check then break end
        local cok, done = expr.condition(step["until"], result_scope(step, scope, result))
        if not cok then result = { failed = true, msg = "until: " .. done }; break end
        if done then break end
        if attempts > (step.retries or 3) or interrupted() then
            result.failed = true
            result.msg = "still not true after " .. attempts .. " attempts: until " .. tostring(step["until"])
            break
        end
        local delay = retry_delay(step, scope)
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
    return result, attempts
end

-- Evaluates the step's KEY (changed_when or failed_when) against probe.
-- -> true, value; or false when it could not be evaluated: the result is
-- then failed (unknown when a value it reads is not known yet), its msg set.
local function result_condition(step, key, probe, result)
    local ok, v, unk = expr.condition(step[key], probe)
    if ok then return true, v end
    if unk then result.unknown = true else result.failed = true end
    result.msg = key .. ": " .. v
    return false
end

-- changed_when and failed_when, applied to a known result.
local function apply_changed_failed_when(step, scope, result)
    if result.unknown or (step.changed_when == nil and step.failed_when == nil) then return end
    local probe = result_scope(step, scope, result)
    if step.changed_when ~= nil then
        local cok, v = result_condition(step, "changed_when", probe, result)
        if cok then result.changed = v end
    end
    if step.failed_when ~= nil then
        local fok, v = result_condition(step, "failed_when", probe, result)
        if fok then
            result.failed = v
            if v and not result.msg then result.msg = "failed_when: " .. tostring(step.failed_when) end
            if not v and result.rc and result.rc ~= 0 and result.msg == "exit code " .. result.rc then
                result.msg = nil
            end
        end
    end
end

-- Runs an action once (with until/retries) and applies changed_when /
-- failed_when.  Returns the result table.
function Run:execute(hs, step, scope)
    local action = actions.get(step.action)
    local args, errs, unknown = checked_args(action, step, scope)
    if not args then
        if unknown then return { unknown = true, msg = errs } end
        return { failed = true, msg = errs }
    end
    if #errs > 0 then
        return { failed = true, msg = step.action .. ": " .. table.concat(errs, "; ") }
    end
    local check = self.opts.check
    if step.check_mode == true then check = true end
    if step.check_mode == false then check = false end
    local running = self.running[hs.name]
    local ctx = self:action_context(hs, step, scope, args, check, running)
    local refused = self:pick_connection(hs, step, scope, action, ctx)
    if refused then return refused end
    local become_spec
    become_spec, refused = self:step_become(hs, step, scope, action, ctx.conn)
    if refused then return refused end
    -- In check mode, after a step whose effect cannot be known and that
    -- changes what the host is (a reboot, a promotion: actions marked
    -- `pivot`), what the host would answer is unknown too.
    if check and hs.pivot and (not action.controller or action.probes_host) then
        return { unknown = true, msg = "decided at apply time: follows '" .. hs.pivot ..
                 "', which check mode cannot know" }
    end
    if become_spec then ctx.conn.become = become_spec end
    local result, attempts = run_until(step, scope, action, ctx, args, running)
    if become_spec then ctx.conn.become = nil end
    if attempts > 1 then result.attempts = attempts end
    if check and result.unknown and action.pivot then hs.pivot = step.id end
    apply_changed_failed_when(step, scope, result)
    return result
end

return { methods = Run, files_dir = files_dir, checked_args = checked_args }
