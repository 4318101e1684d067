-- engine.step: one step on one host: tags, run_once, when, loops,
-- register and notify, the line reported.  The action itself (its
-- arguments, become, until/retries, changed_when and failed_when) runs
-- in engine/action.lua.
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local expr = require("cutover.expr")
local vars = require("cutover.vars")
local output = require("cutover.output")
local util = require("cutover.util")
local json = require("cutover.core.json")

local Run = {}

local function interrupted() return loop.interrupts() > 0 end

-- run_once: the first host's result, handed to the hosts waiting for it.
function Run:once_done(step, result)
    local shared = self.once[step]
    shared.result, shared.done = result, true
    shared.cond:signal()
end

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

-- Statuses of a journaled step that count as done on resume.
local DONE = { ok = true, changed = true, skipped = true, ignored = true, marked = true }

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

-- run_once, on a host other than the first: the first host's result,
-- reported as this host's.  Returns false when the host must stop.
function Run:take_once_result(hs, step, scope, started, shared)
    while not shared.done do shared.cond:wait() end
    local r = util.copy(shared.result)
    r.msg = (r.msg and r.msg .. " " or "") .. "(run once, on " .. shared.host .. ")"
    if step.register then scope:set(step.register, r.unknown and expr.UNKNOWN_VALUE or shared.result) end
    self:report(hs, step, r, started)
    self.running[hs.name] = nil
    hs.last_result = r
    return not (r.failed and not r.ignored)
end

-- A step's loop: its items, or nil and the result when the loop
-- expression fails or is no list.
local function loop_items(step, scope)
    local ok, v, unknown = expr.render_value(step.loop, scope)
    if not ok then
        return nil, unknown and { unknown = true, msg = "loop: " .. v } or { failed = true, msg = "loop: " .. v }
    elseif type(v) ~= "table" or not util.is_list(v) then
        return nil, { failed = true, msg = "loop: expected a list, got " .. type(v) }
    end
    return v
end

-- A loop that could not start: its result registered and reported.
function Run:loop_failed(hs, step, scope, started, result)
    if step.register then scope:set(step.register, result.unknown and expr.UNKNOWN_VALUE or result) end
    if step.run_once then self:once_done(step, result) end
    self:report(hs, step, result, started)
    self.running[hs.name] = nil
    hs.last_result = result
    return not result.failed
end

-- One run of the step (one item of a loop): when, then the action.
function Run:when_then_execute(hs, step, item_scope)
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

-- The label of a loop item on its result line: a table item by its
-- name when it has one; at most 60 characters.
local function item_label_of(item)
    local label
    if type(item) == "table" then
        local nm = item.name or (type(item.config) == "table" and item.config.name) or item.id
        label = nm ~= nil and tostring(nm) or json.encode(item)
    else
        label = tostring(item)
    end
    if #label > 60 then label = label:sub(1, 57) .. "..." end
    return label
end

-- Item i of a loop: on resume, an item done before the restart is not
-- run again, the in-flight one is marked done, guarded or run again.
function Run:loop_item(hs, step, i, item_scope)
    local rl = hs.resume_loop
    local done = rl and rl.items[i]
    if done and DONE[done.status] then
        return { changed = done.changed == true, skipped = done.status == "skipped" or nil,
                 msg = "done before the restart", resumed = true }
    elseif rl and i == rl.inflight and rl.mark then
        self.journal:event(self.run_id, hs.name, "mark-done", step.id .. "[" .. i .. "]", nil)
        return { changed = false, msg = "marked done by " .. (sys.user()) }
    elseif rl and i == rl.inflight and not (rl.retry or rl.idempotent) then
        return { failed = true, msg = self:guard_stop(hs, step, i) }
    end
    return self:when_then_execute(hs, step, item_scope)
end

-- A loop's items in order, each reported (and journaled) as it ends.
-- Returns the loop's result: its items' results and their sum.
function Run:run_items(hs, step, scope, items)
    local results = {}
    local agg = { changed = false, results = results }
    local any_run = false
    for i, item in ipairs(items) do
        if interrupted() then agg.interrupted = true; agg.failed = true; break end
        local item_started = loop.now()
        local item_scope = scope:with({ [step.loop_var or "item"] = item, loop_index = i })
        hs.item_index = i  -- (its memo: ctx.remember)
        local r = self:loop_item(hs, step, i, item_scope)
        hs.item_index = nil
        r.item = item
        results[i] = r
        if r.failed and step.ignore_errors and not hs.halted then r.ignored = true end
        self:report(hs, step, r, item_started, item_label_of(item))
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
    if agg.failed then agg.msg = "one or more items failed" end
    return agg
end

-- ignore_errors (a boolean or a condition) for a failed result.
local function errors_ignored(step, scope, result)
    if not result.failed or step.ignore_errors == nil then return false end
    if type(step.ignore_errors) == "boolean" then return step.ignore_errors end
    local ok, v = expr.condition(step.ignore_errors, scope)
    return ok and v
end

-- What a step's result means for its host: false when the host must
-- stop (interrupted, parked at a gate, a failure not ignored).
function Run:host_goes_on(hs, step, result, ignored)
    local st = self.stats.per_host[hs.name]
    if result.interrupted then
        st.interrupted_at = step.id
        return false
    end
    if result.parked then
        st.parked_at = step.id
        st.parked_gate = result.gate
        st.parked_kind = result.gate_kind
        st.parked_choices = result.choices
        return false
    end
    if result.failed and not ignored then
        st.failed_at = st.failed_at or step.id
        if self.play_state and self.play_state.any_errors_fatal and (hs.in_rescue or 0) == 0 then
            self.fatal = self.fatal or hs.name
        end
        if result.unreachable then st.unreachable = true end
        return false
    end
    return true
end

-- One action step on one host: when, loop, register, notify, report.
-- Returns false when the host must stop (a failure not ignored).
function Run:action_step(hs, step)
    local scope = self:scope_for(hs, step)
    local started = loop.now()
    self.running[hs.name] = { host = hs.name, step = step.name or step.id, started = started }
    self.reporter:step_start(hs.name, step)

    -- run_once: the first host runs it, the others take its result.
    if step.run_once then
        local shared = self.once[step]
        if shared then return self:take_once_result(hs, step, scope, started, shared) end
        self.once[step] = { done = false, host = hs.name, cond = loop.condition() }
    end

    local items
    if step.loop ~= nil then
        local bad
        items, bad = loop_items(step, scope)
        if bad then return self:loop_failed(hs, step, scope, started, bad) end
    end

    local result
    if items then
        result = self:run_items(hs, step, scope, items)
    else
        result = self:when_then_execute(hs, step, scope)
        if result.failed and interrupted() then result.interrupted = true end
    end

    local ignored = errors_ignored(step, scope, result)
    if ignored then result.ignored = true end
    if step.register then
        -- a loop with any item unknown in check mode is unknown as a whole
        scope:set(step.register, result.unknown and expr.UNKNOWN_VALUE or result)
    end
    if result.changed and step.notify and not result.failed then
        for _, h in ipairs(step.notify) do hs.notified[h] = true end
    elseif result.unknown and step.notify then
        -- check mode: it may notify for real; the handler is then unknown
        -- (a notification by a change wins: the handler is predicted)
        for _, h in ipairs(step.notify) do hs.notified[h] = hs.notified[h] or step.id end
    end
    if step.run_once then self:once_done(step, result) end
    if not items then self:report(hs, step, result, started) end
    self.running[hs.name] = nil
    hs.last_result = result
    return self:host_goes_on(hs, step, result, ignored)
end

return { methods = Run, DONE = DONE }
