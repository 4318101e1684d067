-- playbook: loads a playbook file and validates it completely before
-- anything runs.  Every problem is reported as FILE:LINE:COL: message,
-- naming the play or step; all problems are collected, not just the first.
local yaml = require("cutover.core.yaml")
local fs = require("cutover.core.fs")
local expr = require("cutover.expr")
local util = require("cutover.util")
local actions = require("cutover.actions")
local schema = require("cutover.schema")

local M = {}

M.MAX_BYTES = 8 * 1024 * 1024

local PLAY_KEYS = { "name", "hosts", "vars", "steps", "handlers", "tags",
                    "serial", "max_fail_percentage", "any_errors_fatal", "order",
                    "vars_prompt" }

local ORDERS = { "inventory", "reverse_inventory", "sorted", "reverse_sorted", "shuffle" }

local STEP_KEYS = {
    "name", "id", "when", "register", "loop", "loop_var", "until", "retries",
    "delay", "failed_when", "changed_when", "ignore_errors", "check_mode",
    "no_log", "tags", "notify", "run_once", "delegate_to", "block", "rescue",
    "always", "vars",
}
local CONDITION_KEYS = { "when", "failed_when", "changed_when", "until" }
local BLOCK_ONLY_KEYS = { "rescue", "always" }
local STEP_KEY_SET = {}
for _, k in ipairs(STEP_KEYS) do STEP_KEY_SET[k] = true end

-- A loaded YAML file: the value and where each part of it came from.
local Source = {}
Source.__index = Source

function M.read_yaml(path, what)
    local text, err = fs.read(path, M.MAX_BYTES)
    if not text then
        if err:find("larger than the limit", 1, true) then
            return nil, path .. ": " .. (what or "file") .. " is larger than the limit of " .. M.MAX_BYTES .. " bytes"
        end
        return nil, err
    end
    local value, pos, keypos = yaml.load(text, path)
    if value == nil then return nil, pos end
    return setmetatable({ path = path, value = value, pos = pos, keypos = keypos }, Source)
end

local function fmt(path, packed)
    if not packed then return path end
    local line, col = yaml.unpack(packed)
    return string.format("%s:%d:%d", path, line, col)
end

-- Position of a table, or of key k inside table t.
function Source:at(t, k)
    if k ~= nil then
        local kp = self.keypos[t]
        if kp and kp[k] then return fmt(self.path, kp[k]) end
    end
    return fmt(self.path, self.pos[t])
end

local function is_null(v) return v == yaml.null end

local function step_label(step)
    if type(step) ~= "table" then return "step" end
    local n = step.name
    if type(n) == "string" then return "step '" .. n .. "'" end
    if type(step.id) == "string" then return "step '" .. step.id .. "'" end
    for k in pairs(step) do
        if type(k) == "string" and actions.exists(k) then return "'" .. k .. "' step" end
    end
    return "step"
end

local Loader = {}
Loader.__index = Loader

function Loader:err(where, msg)
    self.errors[#self.errors + 1] = where .. ": " .. msg
end

local function as_list(v)
    if v == nil or is_null(v) then return {} end
    if type(v) == "table" then return v end
    return { v }
end

-- Every expression and template, where it is (for lint's variable check).
function Loader:record_use(kind, text, where, label)
    self.uses[#self.uses + 1] = { kind = kind, text = text, where = where, label = label }
end

function Loader:check_condition(src, t, key, label)
    local v = t[key]
    if v == nil then return end
    local ok, err = expr.check_condition(v)
    if not ok then self:err(src:at(t, key), label .. ": " .. key .. ": " .. err) end
    for _, c in ipairs(type(v) == "table" and v or { v }) do
        if type(c) == "string" then
            self:record_use("condition", c:match("^%s*{{(.-)}}%s*$") or c, src:at(t, key), label)
        end
    end
end

-- Checks the {{ }} syntax of every string inside v.
function Loader:check_templates(src, v, t, key, label, depth)
    depth = depth or 0
    if type(v) == "string" then
        if expr.has_template(v) then
            local ok, err = expr.check_template(v)
            if not ok then self:err(src:at(t, key), label .. ": " .. err) end
            self:record_use("template", v, src:at(t, key), label)
        end
    elseif type(v) == "table" and depth < 32 then
        for k, x in pairs(v) do self:check_templates(src, x, v, k, label, depth + 1) end
    end
end

function Loader:step_id(step, label, src, t)
    local id = step.id
    if id ~= nil then
        if type(id) ~= "string" or not id:match("^[%w][%w%-_%.]*$") then
            self:err(src:at(t, "id"), label .. ": id must be letters, digits, '-', '_' or '.'")
            return nil, true
        end
        return id, true
    end
    if type(step.name) == "string" then return util.slug(step.name), true, true end
    return nil, false
end

-- where: a function giving the step's position (computed only for an
-- error: formatting it for every step of a large playbook costs).
function Loader:claim_id(id, explicit, where, label, from_name)
    if not id then return end
    local prev = self.ids[id]
    if prev then
        -- ids taken by name or id: the first one's where(); others: true
        if explicit and prev ~= true and from_name then
            self:err(where(), label .. ": its name gives the step id '" .. id .. "', already used at " .. prev() .. "; rename the step or give it an 'id:'")
            return id
        elseif explicit and prev ~= true then
            self:err(where(), label .. ": duplicate step id '" .. id .. "' (first used at " .. prev() .. "); step ids must be unique")
            return id
        end
        local n = 2
        while self.ids[id .. "-" .. n] do n = n + 1 end
        id = id .. "-" .. n
    end
    self.ids[id] = explicit and where or true
    return id
end

local function is_str(v) return type(v) == "string" end
local function is_bool(v) return type(v) == "boolean" end
local function is_bool_or_expr(v) return type(v) == "boolean" or type(v) == "string" end
local function is_count(v) return math.type(v) == "integer" and v >= 0 or expr.has_template(v) end
local function is_delay(v) return type(v) == "number" and v >= 0 or expr.has_template(v) end
local function is_name(v) return type(v) == "string" and v:match("^[%a_][%w_]*$") ~= nil end
local function is_mapping(v) return type(v) == "table" and (not util.is_list(v) or next(v) == nil) end
local function is_str_list(v)
    if type(v) == "string" then return true end
    if type(v) ~= "table" or not util.is_list(v) then return false end
    for _, x in ipairs(v) do if type(x) ~= "string" then return false end end
    return true
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
    local label = step_label(t)
    local step = { raw = t, source = src }
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
            self:err(src:at(t, names[i]), label .. ": a step has one action, found '" .. names[1] .. "' and '" .. names[i] .. "'")
        end
    end

    local function typed(key, check, want)
        local v = t[key]
        if v == nil then return nil end
        if not check(v) then
            self:err(src:at(t, key), label .. ": '" .. key .. "' must be " .. want)
            return nil
        end
        return v
    end

    step.name = typed("name", is_str, "text")
    local id, explicit, from_name = self:step_id(t, label, src, t)
    step.register = typed("register", is_name, "a variable name (letters, digits and '_', not starting with a digit)")
    step.loop_var = typed("loop_var", is_name, "a variable name")
    step.retries = typed("retries", is_count, "a whole number")
    step.delay = typed("delay", is_delay, "a number of seconds")
    step.ignore_errors = typed("ignore_errors", is_bool_or_expr, "true, false or an expression")
    step.no_log = typed("no_log", is_bool, "true or false")
    step.run_once = typed("run_once", is_bool, "true or false")
    step.check_mode = typed("check_mode", is_bool, "true or false")
    step.delegate_to = typed("delegate_to", is_str, "a host name")
    step.notify = typed("notify", is_str_list, "a handler name or a list of them")
    local tags = typed("tags", is_str_list, "a tag or a list of tags")
    step.vars = typed("vars", is_mapping, "a mapping")
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

    step.tags = {}
    for tag in pairs(inherited_tags) do step.tags[tag] = true end
    for _, tag in ipairs(as_list(tags)) do step.tags[tag] = true end

    local is_block = t.block ~= nil
    if is_block then
        if action_name then
            self:err(src:at(t, action_name), label .. ": a block cannot also have an action ('" .. action_name .. "')")
        end
        step.block = self:steps(src, t, "block", step.tags, in_handlers, label)
        step.rescue = self:steps(src, t, "rescue", step.tags, in_handlers, label)
        step.always = self:steps(src, t, "always", step.tags, in_handlers, label)
        for _, k in ipairs({ "register", "loop", "until", "failed_when", "changed_when" }) do
            if t[k] ~= nil then self:err(src:at(t, k), label .. ": '" .. k .. "' does not apply to a block") end
        end
        if not id then id, explicit = "block", false end
    else
        for _, k in ipairs(BLOCK_ONLY_KEYS) do
            if t[k] ~= nil then self:err(src:at(t, k), label .. ": '" .. k .. "' needs 'block'") end
        end
        if not action_name then
            if had_unknown then return nil end
            self:err(where(), label .. ": no action given" .. (t.name and "" or " (a step needs one action such as 'command:')"))
            return nil
        end
        step.action = action_name
        if action_name == "pause" and type(t.pause) == "table" and type(t.pause.gate) == "string" then
            local g = t.pause.gate
            if self.gates[g] then
                self:err(src:at(t.pause, "gate"), label .. ": gate '" .. g .. "' is already used at " .. self.gates[g])
            else
                self.gates[g] = src:at(t.pause, "gate")
            end
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

function Loader:play(src, t, index)
    if type(t) ~= "table" or (util.is_list(t) and next(t) ~= nil) then
        self:err(src:at(src.value, index), "play " .. index .. " must be a mapping with 'hosts' and 'steps'")
        return nil
    end
    local label = type(t.name) == "string" and ("play '" .. t.name .. "'") or ("play " .. index)
    local play = { index = index, where = src:at(t) }
    local suggested = {}
    for _, k in ipairs(util.sorted_keys(t)) do
        local found = false
        for _, pk in ipairs(PLAY_KEYS) do if pk == k then found = true end end
        if not found and (k == "import_playbook" or k == "include_playbook") then
            -- not a play at all: 'hosts' and 'steps' are not missing
            suggested.hosts, suggested.steps = true, true
            self:err(src:at(t, k), label .. ": unknown keyword '" .. k .. "' (cutover does not import playbooks: " ..
                "give each playbook its own 'cutover run', or copy its plays into this file)")
        elseif not found then
            local hint = util.did_you_mean(tostring(k), PLAY_KEYS)
            if k == "tasks" then hint = " (cutover calls them 'steps')" end
            -- what was meant is not also reported missing
            suggested[hint:match("'(.-)'") or ""] = true
            self:err(src:at(t, k), label .. ": unknown play keyword '" .. tostring(k) .. "'" .. hint)
        end
    end
    play.name = type(t.name) == "string" and t.name or ("play " .. index)
    if t.hosts == nil and suggested.hosts then
        -- reported as a misspelt keyword
    elseif t.hosts == nil then
        self:err(play.where, label .. ": 'hosts' is required (a host, a group or 'all')")
    elseif type(t.hosts) == "string" then
        play.hosts = t.hosts
        play.hosts_where = src:at(t, "hosts")
    elseif type(t.hosts) == "table" and util.is_list(t.hosts) and is_str_list(t.hosts) then
        play.hosts = table.concat(t.hosts, ",")
        play.hosts_where = src:at(t, "hosts")
    else
        self:err(src:at(t, "hosts"), label .. ": 'hosts' must be a pattern or a list of them")
    end
    if t.vars ~= nil and not is_null(t.vars) then
        if type(t.vars) ~= "table" or (util.is_list(t.vars) and next(t.vars) ~= nil) then
            self:err(src:at(t, "vars"), label .. ": 'vars' must be a mapping")
        else
            play.vars = t.vars
            self:check_templates(src, t.vars, t, "vars", label)
        end
    end
    play.vars = play.vars or {}
    -- vars_prompt: asked once at start; private (the default) means no
    -- echo and masked everywhere
    if t.vars_prompt ~= nil and not is_null(t.vars_prompt) then
        local list = t.vars_prompt
        if type(list) ~= "table" or not util.is_list(list) then
            self:err(src:at(t, "vars_prompt"), label .. ": 'vars_prompt' must be a list of {name, prompt, private, default}")
        else
            play.vars_prompt = {}
            for i, p in ipairs(list) do
                if type(p) ~= "table" or type(p.name) ~= "string" or not p.name:match("^[%a_][%w_]*$") then
                    self:err(src:at(list, i), label .. ": a vars_prompt entry needs a 'name' (a variable name)")
                else
                    for k in pairs(p) do
                        if k ~= "name" and k ~= "prompt" and k ~= "private" and k ~= "default" then
                            self:err(src:at(p, k), label .. ": vars_prompt: unknown key '" .. tostring(k) .. "'" ..
                                util.did_you_mean(tostring(k), { "name", "prompt", "private", "default" }))
                        end
                    end
                    play.vars_prompt[#play.vars_prompt + 1] = {
                        name = p.name, prompt = type(p.prompt) == "string" and p.prompt or nil,
                        private = p.private ~= false, default = p.default ~= yaml.null and p.default or nil,
                    }
                end
            end
        end
    end
    -- rollout: serial is a count, "N%", or a list of them (batch sizes;
    -- the last repeats)
    if t.serial ~= nil then
        local list = type(t.serial) == "table" and t.serial or { t.serial }
        local ok = type(list) == "table" and #list > 0 and util.is_list(list)
        for _, v in ipairs(ok and list or {}) do
            local pct = type(v) == "string" and v:match("^(%d+)%%$")
            if not ((math.type(v) == "integer" and v > 0) or (pct and tonumber(pct) > 0 and tonumber(pct) <= 100)) then
                ok = false
            end
        end
        if ok then
            play.serial = list
        else
            self:err(src:at(t, "serial"), label .. ": 'serial' must be a host count, a percentage such as '25%', or a list of them")
        end
    end
    if t.max_fail_percentage ~= nil then
        local v = t.max_fail_percentage
        if type(v) == "string" then v = tonumber((v:gsub("%%$", ""))) end
        if type(v) ~= "number" or v < 0 or v > 100 then
            self:err(src:at(t, "max_fail_percentage"), label .. ": 'max_fail_percentage' must be a number from 0 to 100")
        else
            play.max_fail_percentage = v
        end
    end
    if t.any_errors_fatal ~= nil then
        if type(t.any_errors_fatal) ~= "boolean" then
            self:err(src:at(t, "any_errors_fatal"), label .. ": 'any_errors_fatal' must be true or false")
        else
            play.any_errors_fatal = t.any_errors_fatal
        end
    end
    if t.order ~= nil then
        local known = false
        for _, o in ipairs(ORDERS) do if o == t.order then known = true end end
        if not known then
            self:err(src:at(t, "order"), label .. ": 'order' must be one of " .. table.concat(ORDERS, ", ") ..
                util.did_you_mean(tostring(t.order), ORDERS))
        else
            play.order = t.order
        end
    end
    local tags = {}
    for _, tag in ipairs(as_list(t.tags)) do tags[tag] = true end
    if t.steps == nil and t.tasks == nil and not suggested.steps then
        self:err(play.where, label .. ": 'steps' is required")
    end
    self.play_index = index
    play.steps = self:steps(src, t, "steps", tags, false, label)
    play.handlers = self:steps(src, t, "handlers", tags, true, label)
    return play
end

-- Sorts "FILE:LINE:COL: message" errors by position (lint's too).
function M.sort_errors(errors)
    table.sort(errors, function(a, b)
        local la, ca = a:match(":(%d+):(%d+):")
        local lb, cb = b:match(":(%d+):(%d+):")
        la, ca, lb, cb = tonumber(la) or 0, tonumber(ca) or 0, tonumber(lb) or 0, tonumber(cb) or 0
        if la ~= lb then return la < lb end
        if ca ~= cb then return ca < cb end
        return a < b
    end)
    return errors
end

-- Loads and validates.  Returns playbook | nil, {messages}
function M.load(path)
    local src, err = M.read_yaml(path, "playbook")
    if not src then return nil, { err } end
    local self = setmetatable({ errors = {}, ids = {}, notifies = {}, gates = {}, step_count = 0,
                                uses = {} }, Loader)
    local doc = src.value
    local book = { path = path, dir = util.dirname(path), plays = {}, source = src }
    if is_null(doc) then
        return nil, { path .. ":1:1: the playbook is empty (expected a list of plays)" }
    end
    if type(doc) ~= "table" or not util.is_list(doc) or next(doc) == nil then
        local at = type(doc) == "table" and src:at(doc) or path .. ":1:1"
        return nil, { at .. ": a playbook is a list of plays (each with 'hosts' and 'steps')" }
    end
    for i, t in ipairs(doc) do
        local play = self:play(src, t, i)
        if play then book.plays[#book.plays + 1] = play end
    end
    -- notify must name a handler of the same play
    for _, play in ipairs(book.plays) do
        play.handler_names = {}
        for _, h in ipairs(play.handlers) do
            if h.name then play.handler_names[h.name] = h end
            play.handler_names[h.id] = h
        end
    end
    local by_index = {}
    for _, play in ipairs(book.plays) do by_index[play.index] = play end
    for _, n in ipairs(self.notifies) do
        local play = by_index[n.play]
        if play and not play.handler_names[n.name] then
            local names = {}
            for _, h in ipairs(play.handlers) do names[#names + 1] = h.name or h.id end
            self:err(n.where, n.label .. ": notify names no handler '" .. tostring(n.name) .. "' of this play"
                .. util.did_you_mean(tostring(n.name), names))
        end
    end
    book.step_count = self.step_count
    book.expression_uses = self.uses
    if #self.errors > 0 then
        M.sort_errors(self.errors)
        return nil, self.errors
    end
    return book
end

return M
