-- load.step: one step of a playbook, checked and normalised (keywords,
-- its action's arguments, a block's steps).  Part of the loader in
-- playbook.lua: these are its methods.
local expr = require("cutover.expr")
local util = require("cutover.util")
local actions = require("cutover.actions")
local schema = require("cutover.load.schema")
local checks = require("cutover.load.checks")

local is_null, as_list, is_mapping = checks.is_null, checks.as_list, checks.is_mapping
local is_str, is_bool, is_bool_or_expr = checks.is_str, checks.is_bool, checks.is_bool_or_expr
local is_count, is_delay, is_name, is_str_list = checks.is_count, checks.is_delay, checks.is_name, checks.is_str_list
local push_vars, push_become = checks.push_vars, checks.push_become

local STEP_KEYS = {
    "name", "id", "when", "register", "loop", "loop_var", "until", "retries",
    "delay", "failed_when", "changed_when", "ignore_errors", "check_mode",
    "no_log", "tags", "notify", "run_once", "delegate_to", "block", "rescue",
    "always", "vars", "become", "become_user", "become_method", "become_flags",
}
local CONDITION_KEYS = { "when", "failed_when", "changed_when", "until" }
local BLOCK_ONLY_KEYS = { "rescue", "always" }
local STEP_KEY_SET = {}
for _, k in ipairs(STEP_KEYS) do STEP_KEY_SET[k] = true end

local Loader = {}

-- The step's keys: keywords, one action, nothing else.  Returns the
-- action's name (nil when none) and whether an unknown key was found.
function Loader:step_action_key(src, t, label)
    local action_name
    local had_unknown = false
    -- (errors are sorted by position at the end, so key order is free;
    -- only two actions in one step need a stable order for the message)
    local second_action
    for k in pairs(t) do
        if type(k) ~= "string" then
            self:err(src:at(t, k), label .. ": keys must be text")
        elseif STEP_KEY_SET[k] then
            -- handled below
        elseif actions.exists(k) then
            if action_name then
                second_action = true
                if k < action_name then action_name = k end
            else
                action_name = k
            end
        else
            had_unknown = true
            local all = util.copy(STEP_KEYS)
            for _, a in ipairs(actions.names()) do all[#all + 1] = a end
            self:err(src:at(t, k), label .. ": unknown keyword or action '" .. k .. "'" .. util.did_you_mean(k, all))
        end
    end
    if second_action then
        local names = {}
        for k in pairs(t) do if type(k) == "string" and actions.exists(k) then names[#names + 1] = k end end
        table.sort(names)
        for i = 2, #names do
            self:err(src:at(t, names[i]), label .. ": a step has one action, found '" .. names[1] .. "' and '" ..
                names[i] .. "'")
        end
    end
    return action_name, had_unknown
end

-- The value of t[key] when check(value) holds; else an error saying
-- what it must be, and nil.
function Loader:typed(src, t, label, key, check, want)
    local v = t[key]
    if v == nil then return nil end
    if not check(v) then
        self:err(src:at(t, key), label .. ": '" .. key .. "' must be " .. want)
        return nil
    end
    return v
end

-- loop, loop_var and the conditions (when, until, ...) with retries.
function Loader:step_loop_and_conditions(src, t, step, label)
    if t.loop ~= nil then
        if type(t.loop) == "table" or type(t.loop) == "string" and expr.has_template(t.loop) then
            step.loop = t.loop
        else
            self:err(src:at(t, "loop"), label .. ": 'loop' must be a list or a '{{ }}' expression giving one")
        end
    end
    if step.loop_var and t.loop == nil then
        self:err(src:at(t, "loop_var"), label .. ": 'loop_var' needs 'loop'")
    end
    for _, key in ipairs(CONDITION_KEYS) do
        if t[key] ~= nil and not (type(t[key]) == "string" or type(t[key]) == "boolean" or util.is_list(t[key])) then
            self:err(src:at(t, key), label .. ": '" .. key .. "' must be an expression or a list of them")
        else
            self:check_condition(src, t, key, label)
        end
    end
    if type(t.ignore_errors) == "string" then self:check_condition(src, t, "ignore_errors", label) end
    step.when, step.failed_when, step.changed_when, step["until"] = t.when, t.failed_when, t.changed_when, t["until"]
    if step["until"] ~= nil and step.retries == nil then step.retries = 3 end
    if step.retries ~= nil and step["until"] == nil then
        self:err(src:at(t, "retries"), label .. ": 'retries' needs 'until'")
    end
end

-- The keywords every step may have.  Returns its id (explicit, from
-- its name) as step_id does, and its own tags.
function Loader:step_keywords(src, t, step, label)
    step.name = self:typed(src, t, label, "name", is_str, "text")
    self:become_keys(src, t, step, label)
    local id, explicit, from_name = self:step_id(t, label, src, t)
    step.register = self:typed(src, t, label, "register", is_name,
        "a variable name (letters, digits and '_', not starting with a digit)")
    step.loop_var = self:typed(src, t, label, "loop_var", is_name, "a variable name")
    step.retries = self:typed(src, t, label, "retries", is_count, "a whole number")
    step.delay = self:typed(src, t, label, "delay", is_delay, "a number of seconds")
    step.ignore_errors = self:typed(src, t, label, "ignore_errors", is_bool_or_expr, "true, false or an expression")
    step.no_log = self:typed(src, t, label, "no_log", is_bool, "true or false")
    step.run_once = self:typed(src, t, label, "run_once", is_bool, "true or false")
    step.check_mode = self:typed(src, t, label, "check_mode", is_bool, "true or false")
    step.delegate_to = self:typed(src, t, label, "delegate_to", is_str, "a host name")
    step.notify = self:typed(src, t, label, "notify", is_str_list, "a handler name or a list of them")
    local tags = self:typed(src, t, label, "tags", is_str_list, "a tag or a list of tags")
    step.vars = self:typed(src, t, label, "vars", is_mapping, "a mapping")
    self:step_loop_and_conditions(src, t, step, label)
    return id, explicit, from_name, tags
end

-- A block step: its block, rescue and always lists, which get the
-- block's become keywords and vars.
function Loader:block_step(src, t, step, label, action_name, in_handlers)
    if action_name then
        self:err(src:at(t, action_name), label .. ": a block cannot also have an action ('" .. action_name .. "')")
    end
    step.block = self:steps(src, t, "block", step.tags, in_handlers, label)
    step.rescue = self:steps(src, t, "rescue", step.tags, in_handlers, label)
    step.always = self:steps(src, t, "always", step.tags, in_handlers, label)
    -- the block's become keywords reach its steps (their own win)
    push_become(step.block, step); push_become(step.rescue, step); push_become(step.always, step)
    -- the block's vars reach its steps (their own vars win)
    if is_mapping(t.vars) then
        push_vars(step.block, t.vars, "vars")
        push_vars(step.rescue, t.vars, "vars")
        push_vars(step.always, t.vars, "vars")
    end
    for _, k in ipairs({ "register", "loop", "until", "failed_when", "changed_when" }) do
        if t[k] ~= nil then self:err(src:at(t, k), label .. ": '" .. k .. "' does not apply to a block") end
    end
end

-- A pause step's gate: its name under the import's prefix, like a step
-- id (one file or role brought in twice has two gates, approved one at
-- a time), used once in the playbook.
function Loader:step_gate(src, t, step, label)
    local g = self.prefix .. t.pause.gate
    if self.gates[g] then
        self:err(src:at(t.pause, "gate"), label .. ": gate '" .. g .. "' is already used at " .. self.gates[g])
    else
        self.gates[g] = src:at(t.pause, "gate")
    end
    step.gate_id = g
end

-- An action step: its arguments checked against the action's spec (and
-- the files it names), its templates and an assert's conditions noted.
function Loader:action_args(src, t, step, label, action_name)
    step.action = action_name
    if action_name == "pause" and type(t.pause) == "table" and type(t.pause.gate) == "string" then
        self:step_gate(src, t, step, label)
    end
    local raw = t[action_name]
    if action_name == "assert" and type(raw) == "table" and raw.that ~= nil then
        for _, c in ipairs(type(raw.that) == "table" and raw.that or { raw.that }) do
            if type(c) == "string" then
                self:record_use("condition", c:match("^%s*{{(.-)}}%s*$") or c, src:at(raw, "that"), label)
            end
        end
    end
    local args, errs, err_keys = schema.normalize(actions.get(action_name), raw)
    for i, e in ipairs(errs) do
        -- an error about one argument points at that argument
        local k = type(raw) == "table" and err_keys and err_keys[i] or nil
        self:err(k and src:at(raw, k) or src:at(t, action_name), label .. ": " .. action_name .. ": " .. e)
    end
    step.args = args
    local action = actions.get(action_name)
    if #errs == 0 and action.check_files then
        for _, e in ipairs(action.check_files(args, util.dirname(src.path))) do
            self:err(src:at(t, action_name), label .. ": " .. action_name .. ": " .. e)
        end
    end
    self:check_templates(src, t[action_name], t, action_name, label)
end

-- Normalises one step table; returns the step or nil.
-- list, index: where the step sits (a scalar step has no position of its own)
function Loader:step(src, t, inherited_tags, in_handlers, list, index)
    local function where()
        if type(t) == "table" then return src:at(t) end
        return list and src:at(list, index) or src.path
    end
    if type(t) ~= "table" or util.is_list(t) and next(t) ~= nil then
        self:err(where(), "a step must be a mapping of keywords and one action")
        return nil
    end
    for _, kind in ipairs(checks.REUSE_KINDS) do
        if t[kind] ~= nil then return self:reuse_step(src, t, inherited_tags, in_handlers) end
    end
    if t.meta ~= nil then return self:meta_step(src, t, inherited_tags, where) end
    local label = checks.step_label(t)
    local step = { raw = t, source = src }
    local action_name, had_unknown = self:step_action_key(src, t, label)
    local id, explicit, from_name, tags = self:step_keywords(src, t, step, label)

    step.tags = {}
    for tag in pairs(inherited_tags) do step.tags[tag] = true end
    for _, tag in ipairs(as_list(tags)) do step.tags[tag] = true end

    if t.block ~= nil then
        self:block_step(src, t, step, label, action_name, in_handlers)
        if not id then id, explicit = "block", false end
    else
        for _, k in ipairs(BLOCK_ONLY_KEYS) do
            if t[k] ~= nil then self:err(src:at(t, k), label .. ": '" .. k .. "' needs 'block'") end
        end
        if not action_name then
            if had_unknown then return nil end
            self:err(where(), label .. ": no action given" .. (t.name and "" or
                " (a step needs one action such as 'command:')"))
            return nil
        end
        self:action_args(src, t, step, label, action_name)
        if not id then
            local hint = type(t[action_name]) == "string" and t[action_name] or ""
            id = util.slug(action_name .. " " .. hint)
            explicit = false
        end
    end
    step.id = self:claim_id(id, explicit, where, label, from_name)
    step.label = label
    self:check_templates(src, t.name, t, "name", label)
    if step.vars then self:check_templates(src, step.vars, t, "vars", label) end
    if type(step.loop) == "table" then self:check_templates(src, step.loop, t, "loop", label) end
    if step.notify then
        for _, h in ipairs(as_list(step.notify)) do
            self.notifies[#self.notifies + 1] = { name = h, where = src:at(t, "notify"), label = label,
                                                  play = self.play_index }
        end
        step.notify = as_list(step.notify)
    end
    self.step_count = self.step_count + 1
    return step
end

-- meta: flush_handlers runs the handlers notified so far, here.
function Loader:meta_step(src, t, inherited_tags, where)
    local label = type(t.name) == "string" and ("step '" .. t.name .. "'") or "'meta' step"
    for k in pairs(t) do
        if k ~= "meta" and k ~= "name" and k ~= "id" and k ~= "tags" then
            self:err(src:at(t, k), label .. ": '" .. tostring(k) .. "' does not apply to meta")
        end
    end
    if t.meta ~= "flush_handlers" then
        self:err(src:at(t, "meta"), label .. ": meta: only 'flush_handlers' is supported" ..
            util.did_you_mean(tostring(t.meta), { "flush_handlers" }))
        return nil
    end
    local id, explicit, from_name = self:step_id(t, label, src, t)
    local step = { raw = t, source = src, meta = "flush_handlers", name = type(t.name) == "string" and t.name or nil,
                   label = label, tags = {} }
    for tag in pairs(inherited_tags) do step.tags[tag] = true end
    for _, tag in ipairs(is_str_list(t.tags or {}) and as_list(t.tags) or {}) do step.tags[tag] = true end
    step.id = self:claim_id(id or "flush-handlers", explicit, where, label, from_name)
    self.step_count = self.step_count + 1
    return step
end

-- The steps under parent[key] (a list of steps, or nothing).
function Loader:steps(src, parent, key, tags, in_handlers, label)
    local list = parent[key]
    if list == nil or is_null(list) then return {} end
    if type(list) ~= "table" or not util.is_list(list) then
        self:err(src:at(parent, key), (label and label .. ": " or "") .. "'" .. key .. "' must be a list of steps")
        return {}
    end
    local out = {}
    for i, t in ipairs(list) do
        local s = self:step(src, t, tags, in_handlers, list, i)
        if s then out[#out + 1] = s end
    end
    return out
end

return { methods = Loader }
