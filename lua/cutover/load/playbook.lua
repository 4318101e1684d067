-- load.playbook: loads a playbook file and validates it completely before
-- anything runs.  Every problem is reported as FILE:LINE:COL: message,
-- naming the play or step; all problems are collected, not just the first.
local yaml = require("cutover.core.yaml")
local fs = require("cutover.core.fs")
local expr = require("cutover.expr")
local util = require("cutover.util")
local actions = require("cutover.actions")
local schema = require("cutover.load.schema")
local source = require("cutover.load.source")

local M = {}

local PLAY_KEYS = { "name", "hosts", "vars", "steps", "handlers", "tags",
                    "serial", "max_fail_percentage", "any_errors_fatal", "order",
                    "vars_prompt", "vars_files", "roles", "gather_facts", "gather_subset",
                    "become", "become_user", "become_method", "become_flags" }

-- become keywords: on a play, a block (reaching its steps) or a step
local BECOME_KEYS = { "become", "become_user", "become_method", "become_flags" }
local BECOME_METHODS = { sudo = true, su = true }

-- Reuse: a step that brings in a steps file or a role.  Import is
-- expanded in place (when/vars/tags apply to it as a block); include may
-- also loop.  Both are read and checked when the playbook loads, so lint
-- sees every error and the journal knows every file before anything runs.
local REUSE_KINDS = { "import_steps", "include_steps", "import_role", "include_role" }
local REUSE_KIND_SET = {}
for _, k in ipairs(REUSE_KINDS) do REUSE_KIND_SET[k] = true end
local REUSE_KEYS = { "name", "id", "tags", "vars", "when" }
local INCLUDE_KEYS = { "loop", "loop_var" }
local MAX_IMPORT_DEPTH = 16
-- include_role/import_role NAME_from: the role's folders looked in
local ROLE_FROM = { tasks = { "steps", "tasks" }, vars = { "vars" }, defaults = { "defaults" },
                    handlers = { "handlers" } }

local ORDERS = { "inventory", "reverse_inventory", "sorted", "reverse_sorted", "shuffle" }

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

-- An error inside an imported file also names the chain that imported it.
function Loader:err(where, msg)
    self.errors[#self.errors + 1] = where .. ": " .. msg .. self:chain_text()
end

function Loader:chain_text()
    if #self.chain == 0 then return "" end
    local parts = {}
    for i = #self.chain, 1, -1 do
        parts[#parts + 1] = self.chain[i].how .. " at " .. self.chain[i].where
    end
    return " (" .. table.concat(parts, ", ") .. ")"
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
    -- steps of an imported file or a role: under the import's id, so one
    -- file brought in twice keeps its ids unique (and stable)
    id = self.prefix .. id
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

-- Merges vars into every action step under steps; a step's own values
-- win (a new table: the YAML as written, which the step digest hashes,
-- is not touched).  field: "vars" or "defaults".
local function push_vars(steps, v, field)
    if not v or next(v) == nil then return end
    for _, s in ipairs(steps or {}) do
        if s.block then
            push_vars(s.block, v, field); push_vars(s.rescue, v, field); push_vars(s.always, v, field)
        else
            local merged = {}
            for k, x in pairs(v) do merged[k] = x end
            for k, x in pairs(s[field] or {}) do merged[k] = x end
            s[field] = merged
        end
    end
end

-- Gives every action step under steps the become keywords of the block
-- around it that it does not set itself.
local function push_become(steps, from)
    for _, s in ipairs(steps or {}) do
        for _, k in ipairs(BECOME_KEYS) do
            if s[k] == nil then s[k] = from[k] end
        end
        if s.block then push_become(s.block, s); push_become(s.rescue, s); push_become(s.always, s) end
    end
end

-- Reads the become keywords of t into into (a step or a play).
function Loader:become_keys(src, t, into, label)
    if t.become ~= nil then
        if type(t.become) == "boolean" or (type(t.become) == "string" and expr.has_template(t.become)) then
            into.become = t.become
        else
            self:err(src:at(t, "become"), label .. ": 'become' must be true, false or a '{{ }}' expression")
        end
    end
    for _, k in ipairs({ "become_user", "become_flags" }) do
        if t[k] ~= nil then
            if type(t[k]) == "string" and t[k] ~= "" then into[k] = t[k]
            else self:err(src:at(t, k), label .. ": '" .. k .. "' must be text") end
        end
    end
    if t.become_method ~= nil then
        if BECOME_METHODS[t.become_method] or (type(t.become_method) == "string" and expr.has_template(t.become_method)) then
            into.become_method = t.become_method
        else
            self:err(src:at(t, "become_method"), label .. ": 'become_method' must be sudo or su" ..
                util.did_you_mean(tostring(t.become_method), { "sudo", "su" }))
        end
    end
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
    for _, kind in ipairs(REUSE_KINDS) do
        if t[kind] ~= nil then return self:reuse_step(src, t, inherited_tags, in_handlers, where) end
    end
    if t.meta ~= nil then return self:meta_step(src, t, inherited_tags, where) end
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
    self:become_keys(src, t, step, label)
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
            -- under the import's prefix, like a step id: one file or role
            -- brought in twice has two gates, approved one at a time
            local g = self.prefix .. t.pause.gate
            if self.gates[g] then
                self:err(src:at(t.pause, "gate"), label .. ": gate '" .. g .. "' is already used at " .. self.gates[g])
            else
                self.gates[g] = src:at(t.pause, "gate")
            end
            step.gate_id = g
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

-- Every file the playbook is built from (imports, roles, vars files),
-- once each, with the sha256 of the text that was parsed.
function Loader:read(path, what)
    local src, err = source.read(path, what)
    if not src then return nil, err end
    local ok, abs = pcall(fs.realpath, path)
    abs = ok and abs or path
    if not self.file_seen[abs] then
        self.file_seen[abs] = true
        self.files[#self.files + 1] = { path = path, abs = abs, digest = src.digest }
        self.sources[#self.sources + 1] = src
    end
    src.abs = abs
    return src
end

-- An Ansible Vault file or value is refused with what to do instead.
local function vault_hint(text_or_err)
    -- (a whole encrypted file starts with its header; a !vault value is
    -- refused by the YAML reader as an unknown tag)
    if type(text_or_err) == "string" and (text_or_err:match("^%s*%$ANSIBLE_VAULT;")
            or text_or_err:find("unsupported YAML tag '!vault'", 1, true)) then
        return "holds an Ansible Vault value, which cutover does not read: put the secret in cutover's " ..
               "vault ('cutover vault set NAME') and write {{ secret.NAME }} where it is used"
    end
end

-- A YAML file of variables (vars_files, a role's defaults/ and vars/):
-- a mapping, or nothing.  Returns the table or nil (error reported).
function Loader:vars_file(path, where, label)
    local text = fs.read(path, source.MAX_BYTES)
    local hint = vault_hint(text)
    if hint then self:err(where, label .. ": " .. path .. " " .. hint); return nil end
    local src, err = self:read(path, "vars file")
    if not src then
        self:err(where, label .. ": " .. (vault_hint(err) and (path .. " " .. vault_hint(err)) or err))
        return nil
    end
    if is_null(src.value) then return {} end
    local pushed = self:enter(src.path, where, "read")
    if not is_mapping(src.value) then
        self:err(src:at(src.value), "a vars file is a mapping of variable names to values")
        self:leave(pushed)
        return nil
    end
    self:check_templates(src, src.value, nil, nil, "vars file " .. path)
    for k in pairs(src.value) do self.defined[k] = true end
    self:leave(pushed)
    return src.value
end

-- The chain of imports: entering a file refuses a cycle and a depth
-- beyond the cap.  Returns true when entered.
function Loader:enter(path, where, how, label)
    local ok, abs = pcall(fs.realpath, path)
    abs = ok and abs or path
    if abs == self.root_abs and how ~= "read" then
        self:err(where, (label or "step") .. ": " .. path .. " imports itself (it is the playbook)")
        return nil
    end
    for _, c in ipairs(self.chain) do
        if c.abs == abs and how ~= "read" then
            self:err(where, (label or "step") .. ": " .. path .. " imports itself")
            return nil
        end
    end
    if #self.chain >= MAX_IMPORT_DEPTH then
        self:err(where, (label or "step") .. ": imports nested deeper than " .. MAX_IMPORT_DEPTH .. " levels")
        return nil
    end
    self.chain[#self.chain + 1] = { abs = abs, where = where, how = how }
    return true
end

function Loader:leave(entered)
    if entered then self.chain[#self.chain] = nil end
end

-- The steps of a file (a list of steps, or nothing).
function Loader:steps_file(path, where, how, label, tags, in_handlers)
    local src, err = self:read(path, "steps file")
    if not src then
        self:err(where, label .. ": " .. err)
        return nil
    end
    if not self:enter(path, where, how, label) then return nil end
    local out = {}
    local doc = src.value
    if not is_null(doc) then
        if type(doc) ~= "table" or not util.is_list(doc) then
            self:err(src:at(doc), "a steps file is a list of steps")
        elseif type(doc[1]) == "table" and doc[1].hosts ~= nil and (doc[1].steps ~= nil or doc[1].roles ~= nil) then
            -- not a pile of unknown-keyword errors for each play
            self:err(src:at(doc), "this is a playbook (its entries have 'hosts'), not a list of steps: " ..
                "bring it in with '- import_playbook: PATH' among the plays")
        else
            for i, t in ipairs(doc) do
                local s = self:step(src, t, tags, in_handlers, doc, i)
                if s then out[#out + 1] = s end
            end
        end
    end
    self:leave(true)
    return out
end

-- Where a role lives: a path (with '/') from the playbook's folder, or a
-- name looked up in roles/ beside the playbook, then in each folder of
-- CUTOVER_ROLES_PATH (':'-separated).
function Loader:find_role(name, base)
    local tried = {}
    local candidates = {}
    if name:find("/", 1, true) then
        candidates[1] = util.join_path(base or self.dir, name)
    else
        -- an imported playbook's own roles/ first
        if base and base ~= self.dir then candidates[#candidates + 1] = util.join_path(base, "roles/" .. name) end
        candidates[#candidates + 1] = util.join_path(self.dir, "roles/" .. name)
        for d in (os.getenv("CUTOVER_ROLES_PATH") or ""):gmatch("[^:]+") do
            candidates[#candidates + 1] = d .. "/" .. name
        end
    end
    for _, c in ipairs(candidates) do
        local st = fs.stat(c)
        if type(st) == "table" and st.type == "directory" then return c end
        tried[#tried + 1] = c
    end
    return nil, tried
end

local function exists(path)
    local st = fs.stat(path)
    return type(st) == "table" and st.type == "file"
end

-- The steps of role `name`: its dependencies (meta/main.yml, each once a
-- play), then steps/main.yml (or Ansible's tasks/main.yml) with the
-- role's defaults and vars; its handlers join the play's.  Ids are under
-- the current prefix.  Returns a list of steps or nil.
function Loader:role_steps(name, where, label, tags, how, params, base, from)
    local dir, tried = self:find_role(name, base)
    if not dir then
        self:err(where, label .. ": role '" .. name .. "' not found (looked in " .. table.concat(tried, ", ") ..
            "; set CUTOVER_ROLES_PATH for other folders)")
        return nil
    end
    local ok, abs = pcall(fs.realpath, dir)
    abs = ok and abs or dir
    for _, c in ipairs(self.role_chain) do
        if c == abs then
            self:err(where, label .. ": role '" .. name .. "' depends on itself")
            return nil
        end
    end
    self.role_chain[#self.role_chain + 1] = abs
    local out = {}
    -- dependencies first
    local meta_path = dir .. "/meta/main.yml"
    if exists(meta_path) then
        local msrc, merr = self:read(meta_path, "role meta file")
        if msrc then msrc.role_meta = true end
        if not msrc then
            self:err(where, label .. ": " .. merr)
        elseif not is_null(msrc.value) then
            local m = msrc.value
            local deps = is_mapping(m) and m.dependencies
            if not is_mapping(m) or (deps ~= nil and not is_null(deps) and
                    (type(deps) ~= "table" or not util.is_list(deps))) then
                self:err(is_mapping(m) and msrc:at(m, "dependencies") or msrc:at(m), "role meta: 'dependencies' must be a list of role names")
            else
                for i, d in ipairs(is_null(deps) and {} or deps or {}) do
                    local dname = type(d) == "string" and d or (type(d) == "table" and (d.role or d.name))
                    local dwhere = msrc:at(deps, i)
                    if type(dname) ~= "string" then
                        self:err(dwhere, "role meta: a dependency is a role name or {role: NAME, vars: {...}}")
                    else
                        local dvars = type(d) == "table" and is_mapping(d.vars) and d.vars or nil
                        local b = self:role_block(msrc, dname, nil, dwhere, "role '" .. name .. "'", tags, dvars, "needed by role '" .. name .. "'")
                        if b then out[#out + 1] = b end
                    end
                end
            end
        end
    end
    -- main.yml, or the file a *_from names (which must then exist)
    local function role_file(what)
        local given = from and from[what]
        local file = given or "main.yml"
        if given and not file:match("%.ya?ml$") then file = file .. ".yml" end
        local tried = {}
        for _, sub in ipairs(ROLE_FROM[what]) do
            local p = dir .. "/" .. sub .. "/" .. file
            if exists(p) then return p end
            tried[#tried + 1] = p
        end
        if given then
            self:err(where, label .. ": role '" .. name .. "': " .. what .. "_from '" .. given ..
                "': no such file (looked for " .. table.concat(tried, ", ") .. ")")
        end
        return nil
    end
    local defaults_path, vars_path = role_file("defaults"), role_file("vars")
    local steps_path, handlers_path = role_file("tasks"), role_file("handlers")
    local defaults = defaults_path and self:vars_file(defaults_path, where, label) or nil
    local rvars = vars_path and self:vars_file(vars_path, where, label) or nil
    local own = steps_path and self:steps_file(steps_path, where, how, label, tags, false) or {}
    local function mark(list)
        for _, s in ipairs(list) do
            s.role_dir = s.role_dir or dir
            if s.block then mark(s.block); mark(s.rescue); mark(s.always) end
        end
    end
    mark(own)
    -- nearest wins: the step's own vars, the vars the role was given,
    -- the role's vars/, then (pushed later) the imports around it
    push_vars(own, params, "vars")
    push_vars(own, rvars, "vars")
    push_vars(own, defaults, "defaults")
    if handlers_path and self.play_handlers then
        local hs = self:steps_file(handlers_path, where, how, label, tags, true) or {}
        mark(hs)
        push_vars(hs, params, "vars")
        push_vars(hs, rvars, "vars")
        push_vars(hs, defaults, "defaults")
        for _, h in ipairs(hs) do self.play_handlers[#self.play_handlers + 1] = h end
    end
    self.role_chain[#self.role_chain] = nil
    for _, s in ipairs(own) do out[#out + 1] = s end
    return out
end

-- One use of a role as a block step (roles:, a dependency, or
-- import_role/include_role).  t: the YAML that asked for it (or nil).
-- A role already applied in this play with the same vars is not applied
-- again (as `roles:` and dependencies do in Ansible).
function Loader:role_block(src, name, t, where, label, tags, params, how, id, explicit, from_name, dedup, from)
    if dedup ~= false then
        local key = name .. "\0" .. require("cutover.core.json").encode(params or {})
        if self.play_roles[key] then return nil end
        self.play_roles[key] = true
    end
    local claimed = self:claim_id(id or util.slug(name), explicit, function() return where end, label, from_name)
    local saved = self.prefix
    self.prefix = claimed .. "."
    -- looked up beside the file naming it (a dependency: beside the playbook)
    local base = src and not src.role_meta and util.dirname(src.path) or nil
    local steps = self:role_steps(name, where, label, tags, how, params, base, from)
    self.prefix = saved
    if not steps then return nil end
    return { raw = t or { role = name, vars = params }, source = src, id = claimed, name = "role " .. name,
             label = label, block = steps, rescue = {}, always = {}, tags = tags, reuse = "role", role = name }
end

-- import_steps / include_steps / import_role / include_role.
function Loader:reuse_step(src, t, inherited_tags, in_handlers, where)
    local kind
    for _, k in ipairs(REUSE_KINDS) do
        if t[k] ~= nil then
            if kind then
                self:err(src:at(t, k), "step: '" .. kind .. "' and '" .. k .. "' cannot be in one step")
            else
                kind = k
            end
        end
    end
    local target = t[kind]
    local is_role = kind:find("role", 1, true) ~= nil
    local is_include = kind:sub(1, 8) == "include_"
    local label
    if type(t.name) == "string" then label = "step '" .. t.name .. "'"
    elseif type(t.id) == "string" then label = "step '" .. t.id .. "'"
    else label = "'" .. kind .. "' step" end
    local role_name, params
    local from
    if is_role and type(target) == "table" and is_mapping(target) then
        role_name = target.name
        for k, v in pairs(target) do
            local what = type(k) == "string" and k:match("^(%a+)_from$")
            if what and ROLE_FROM[what] then
                -- a file of the role's own folder, read when the playbook loads
                if type(v) ~= "string" or v == "" or v:find("/", 1, true) or expr.has_template(v) or v:match("^%.") then
                    self:err(src:at(target, k), label .. ": " .. kind .. ": " .. k ..
                        " must be a file name of the role (no '/', no {{ }})")
                else
                    from = from or {}
                    from[what] = v
                end
            elseif k ~= "name" then
                self:err(src:at(target, k), label .. ": " .. kind .. ": unknown key '" .. tostring(k) ..
                    "' (give 'name', 'tasks_from', 'vars_from', 'defaults_from', 'handlers_from'; and 'vars' on the step)" ..
                    util.did_you_mean(tostring(k), { "name", "tasks_from", "vars_from", "defaults_from", "handlers_from" }))
            end
        end
    elseif is_role then
        role_name = target
    end
    local allowed = {}
    for _, k in ipairs(REUSE_KEYS) do allowed[k] = true end
    if is_include then for _, k in ipairs(INCLUDE_KEYS) do allowed[k] = true end end
    allowed[kind] = true
    for k in pairs(t) do
        if type(k) == "string" and not allowed[k] and not REUSE_KIND_SET[k] then
            local hint = ""
            if (k == "loop" or k == "loop_var" or k == "with_items") and not is_include then
                hint = " ('" .. kind .. "' is expanded when the playbook loads: use '" ..
                       kind:gsub("^import_", "include_") .. "' to loop)"
            else
                local all = util.copy(REUSE_KEYS)
                if is_include then for _, x in ipairs(INCLUDE_KEYS) do all[#all + 1] = x end end
                hint = util.did_you_mean(k, all)
            end
            self:err(src:at(t, k), label .. ": '" .. k .. "' does not apply to " .. kind .. hint)
        end
    end
    local file
    if is_role then
        if type(role_name) ~= "string" or role_name == "" then
            self:err(src:at(t, kind), label .. ": " .. kind .. " takes a role name (or {name: ROLE})")
            return nil
        end
        if expr.has_template(role_name) then
            self:err(src:at(t, kind), label .. ": " .. kind .. ": the role name must be written out ({{ }} is not allowed: roles are read when the playbook loads)")
            return nil
        end
    else
        if type(target) ~= "string" or target == "" then
            self:err(src:at(t, kind), label .. ": " .. kind .. " takes a file name")
            return nil
        end
        if expr.has_template(target) and not is_include then
            self:err(src:at(t, kind), label .. ": " .. kind .. ": the file name must be written out ({{ }} is not allowed: " ..
                "import_steps reads its file when the playbook loads; include_steps may name it with {{ }})")
            return nil
        end
        if expr.has_template(target) then
            -- dynamic: the name is rendered per host when the step runs
            self:check_templates(src, target, t, kind, label)
        else
            file = util.join_path(util.dirname(src.path), target)
        end
    end
    local step = { raw = t, source = src, rescue = {}, always = {}, reuse = kind, file = file, role = role_name,
                   label = label }
    step.name = type(t.name) == "string" and t.name or nil
    if t.name ~= nil and type(t.name) ~= "string" then self:err(src:at(t, "name"), label .. ": 'name' must be text") end
    if t.vars ~= nil and not is_mapping(t.vars) then
        self:err(src:at(t, "vars"), label .. ": 'vars' must be a mapping")
    elseif t.vars ~= nil then
        params = t.vars
        step.vars = params  -- for its own when (its steps get them pushed)
        self:check_templates(src, t.vars, t, "vars", label)
    end
    local tags = as_list(t.tags)
    if not is_str_list(t.tags or {}) then
        self:err(src:at(t, "tags"), label .. ": 'tags' must be a tag or a list of tags")
        tags = {}
    end
    step.tags = {}
    for tag in pairs(inherited_tags) do step.tags[tag] = true end
    for _, tag in ipairs(tags) do step.tags[tag] = true end
    if t.when ~= nil then
        if not (type(t.when) == "string" or type(t.when) == "boolean" or util.is_list(t.when)) then
            self:err(src:at(t, "when"), label .. ": 'when' must be an expression or a list of them")
        else
            self:check_condition(src, t, "when", label)
            step.when = t.when
        end
    end
    if t.loop ~= nil and is_include then
        if type(t.loop) == "table" or type(t.loop) == "string" and expr.has_template(t.loop) then
            step.include_loop = t.loop
            if type(t.loop) == "table" then self:check_templates(src, t.loop, t, "loop", label) end
        else
            self:err(src:at(t, "loop"), label .. ": 'loop' must be a list or a '{{ }}' expression giving one")
        end
    end
    if t.loop_var ~= nil and is_include then
        if not is_name(t.loop_var) then
            self:err(src:at(t, "loop_var"), label .. ": 'loop_var' must be a variable name")
        elseif t.loop == nil then
            self:err(src:at(t, "loop_var"), label .. ": 'loop_var' needs 'loop'")
        else
            step.loop_var = t.loop_var
        end
    end
    local id, explicit, from_name = self:step_id(t, label, src, t)
    if not id then id, explicit = util.slug(kind .. " " .. (role_name or target)), false end
    local how = (is_include and "included" or "imported") .. (is_role and " as a role" or "")
    local at = src:at(t, kind)
    if is_role then
        if t.id == nil and t.name == nil then id = util.slug(role_name) end
        local b = self:role_block(src, role_name, t, at, label, step.tags, params, how, id, explicit, from_name, false, from)
        if not b then return nil end
        step.id, step.block = b.id, b.block
    elseif not file then
        -- read when it runs (Runner:dynamic_steps, M.load_steps): what
        -- it needs from here is kept on the step
        step.id = self:claim_id(id, explicit, function() return at end, label, from_name)
        step.dynamic_file, step.dynamic_base, step.in_handlers = target, util.dirname(src.path), in_handlers
        step.dynamic_where, step.dynamic_chain = at, util.copy(self.chain)
        step.vars = params and util.copy(params) or nil
    else
        step.id = self:claim_id(id, explicit, function() return at end, label, from_name)
        local saved = self.prefix
        self.prefix = (step.id or "step") .. "."
        step.block = self:steps_file(file, at, how, label, step.tags, in_handlers)
        self.prefix = saved
        if not step.block then return nil end
        push_vars(step.block, params, "vars")
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
            self:err(src:at(t, k), label .. ": '" .. k .. "' must be an entry of its own (- import_playbook: PATH), " ..
                "not a keyword of a play" .. (k == "include_playbook" and " (cutover imports playbooks when it loads: write import_playbook)" or ""))
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
    self:become_keys(src, t, play, label)
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
    -- remote facts (facts.lua): gather_facts true/false, gather_subset a
    -- name or a list of names
    if t.gather_facts ~= nil then
        if type(t.gather_facts) ~= "boolean" then
            self:err(src:at(t, "gather_facts"), label .. ": 'gather_facts' must be true or false")
        else
            play.gather_facts = t.gather_facts
        end
    end
    if t.gather_subset ~= nil then
        local list = type(t.gather_subset) == "string" and { t.gather_subset } or t.gather_subset
        if type(list) ~= "table" or not util.is_list(list) or not is_str_list(list) or #list == 0 then
            self:err(src:at(t, "gather_subset"), label .. ": 'gather_subset' must be a subset name or a list of them (" ..
                table.concat(require("cutover.facts").SUBSETS, ", ") .. ")")
        else
            local _, serr = require("cutover.facts").resolve_subset(list)
            if serr then
                self:err(src:at(t, "gather_subset"), label .. ": " .. serr)
            else
                play.gather_subset = list
            end
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
    if t.steps == nil and t.tasks == nil and t.roles == nil and not suggested.steps then
        self:err(play.where, label .. ": 'steps' is required")
    end
    self.play_index = index
    self.play_handlers, self.play_roles = {}, {}
    -- vars_files: read in order, each over the play's vars and the files
    -- before it
    if t.vars_files ~= nil and not is_null(t.vars_files) then
        local list = t.vars_files
        if type(list) == "string" then list = { list } end
        if type(list) ~= "table" or not util.is_list(list) then
            self:err(src:at(t, "vars_files"), label .. ": 'vars_files' must be a file name or a list of them")
        else
            local merged = util.copy(play.vars)
            for i, f in ipairs(list) do
                local at = type(t.vars_files) == "string" and src:at(t, "vars_files") or src:at(list, i)
                if type(f) ~= "string" or f == "" then
                    self:err(at, label .. ": vars_files: each entry is a file name")
                elseif expr.has_template(f) then
                    self:err(at, label .. ": vars_files: the file name must be written out ({{ }} is not allowed: " ..
                        "vars files are read when the playbook loads)")
                else
                    local v = self:vars_file(util.join_path(util.dirname(src.path), f), at, label)
                    for k, x in pairs(v or {}) do merged[k] = x end
                end
            end
            play.vars = merged
        end
    end
    -- roles: applied before the play's steps, each once
    local role_steps = {}
    if t.roles ~= nil and not is_null(t.roles) then
        local list = t.roles
        if type(list) ~= "table" or not util.is_list(list) then
            self:err(src:at(t, "roles"), label .. ": 'roles' must be a list of role names")
        else
            for i, r in ipairs(list) do
                local at = src:at(list, i)
                local name, params, rtags, when, rid = r, nil, {}, nil, nil
                if type(r) == "table" and is_mapping(r) then
                    name = r.role or r.name
                    for k in pairs(r) do
                        if not ({ role = 1, name = 1, vars = 1, tags = 1, when = 1, id = 1 })[k] then
                            self:err(src:at(r, k), label .. ": roles: unknown key '" .. tostring(k) .. "'" ..
                                util.did_you_mean(tostring(k), { "role", "vars", "tags", "when", "id" }))
                        end
                    end
                    if r.vars ~= nil and not is_mapping(r.vars) then
                        self:err(src:at(r, "vars"), label .. ": roles: 'vars' must be a mapping")
                    elseif r.vars ~= nil then
                        params = r.vars
                        self:check_templates(src, r.vars, r, "vars", label)
                    end
                    if r.when ~= nil then self:check_condition(src, r, "when", label); when = r.when end
                    if r.id ~= nil then rid = self:step_id(r, label, src, r) end
                    rtags = is_str_list(r.tags or {}) and as_list(r.tags) or {}
                end
                if type(name) ~= "string" or name == "" or expr.has_template(name) then
                    self:err(at, label .. ": roles: each entry is a role name or {role: NAME, vars: {...}}")
                else
                    local tg = util.copy(tags)
                    for _, x in ipairs(rtags) do tg[x] = true end
                    local b = self:role_block(src, name, r, at, label, tg, params,
                                              "imported as a role", rid, rid ~= nil)
                    if b then
                        b.when, b.vars = when, params
                        role_steps[#role_steps + 1] = b
                    end
                end
            end
        end
    end
    play.steps = self:steps(src, t, "steps", tags, false, label)
    for i = #role_steps, 1, -1 do table.insert(play.steps, 1, role_steps[i]) end
    local role_handlers = self.play_handlers
    self.play_handlers = nil
    play.handlers = self:steps(src, t, "handlers", tags, true, label)
    for _, h in ipairs(role_handlers) do play.handlers[#play.handlers + 1] = h end
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

-- The plays of a playbook file; `- import_playbook: FILE` entries bring
-- in another playbook's plays in place (its step ids under the entry's
-- id: given, or the file's name).
function Loader:plays(src, doc, book)
    for i, t in ipairs(doc) do
        if type(t) == "table" and t.import_playbook ~= nil then
            local at = src:at(t, "import_playbook")
            local f = t.import_playbook
            for k in pairs(t) do
                if k ~= "import_playbook" and k ~= "id" and k ~= "name" then
                    self:err(src:at(t, k), "import_playbook: '" .. tostring(k) .. "' does not apply " ..
                        "(an imported playbook's plays keep their own hosts and vars)")
                end
            end
            if type(f) ~= "string" or f == "" or expr.has_template(f) then
                self:err(at, "import_playbook takes a file name, written out")
            else
                local path = util.join_path(util.dirname(src.path), f)
                local isrc, ierr = self:read(path, "playbook")
                if not isrc then
                    self:err(at, "import_playbook: " .. ierr)
                elseif self:enter(path, at, "imported", "import_playbook") then
                    local idoc = isrc.value
                    if type(idoc) ~= "table" or not util.is_list(idoc) or next(idoc) == nil then
                        self:err(is_null(idoc) and (path .. ":1:1") or isrc:at(idoc),
                            "a playbook is a list of plays (each with 'hosts' and 'steps')")
                    else
                        local id = type(t.id) == "string" and t.id or util.slug((f:match("([^/]+)$") or f):gsub("%.ya?ml$", ""))
                        local claimed = self:claim_id(id, type(t.id) == "string", function() return at end, "import_playbook")
                        local saved = self.prefix
                        self.prefix = claimed .. "."
                        self:plays(isrc, idoc, book)
                        self.prefix = saved
                    end
                    self:leave(true)
                end
            end
        else
            self.play_count = self.play_count + 1
            local play = self:play(src, t, self.play_count)
            if play then book.plays[#book.plays + 1] = play end
        end
    end
end

-- The steps of a file an include_steps names with {{ }}, read when the
-- step runs (on one host).  step: the include step (its id prefixes the
-- ids; its chain names where it was included); book: the playbook;
-- handler_names: its play's handlers (notify is checked against them).
-- Returns steps, files ({path, abs, digest} of every file read) or
-- nil, {messages}.
function M.load_steps(path, step, book, handler_names)
    local self = setmetatable({ errors = {}, ids = {}, notifies = {}, gates = {}, step_count = 0,
                                uses = {}, chain = util.copy(step.dynamic_chain or {}),
                                prefix = step.id .. ".", files = {}, file_seen = {}, defined = {},
                                role_chain = {}, play_count = 0, sources = {}, dir = book.dir,
                                play_roles = {}, play_handlers = {} }, Loader)
    do
        local ok, abs = pcall(fs.realpath, book.path)
        self.root_abs = ok and abs or book.path
    end
    local steps = self:steps_file(path, step.dynamic_where, "included", step.label, step.tags or {},
                                  step.in_handlers) or {}
    if #self.play_handlers > 0 then
        self:err(step.dynamic_where, step.label .. ": " .. path .. " uses a role with handlers: a file " ..
            "included by a {{ }} name cannot add handlers to the play (import the role in the play instead)")
    end
    for _, n in ipairs(self.notifies) do
        if not (handler_names or {})[n.name] then
            self:err(n.where, n.label .. ": notify names no handler '" .. tostring(n.name) .. "' of this play")
        end
    end
    if #self.errors > 0 then return nil, M.sort_errors(self.errors) end
    return steps, self.files
end

-- Loads and validates.  Returns playbook | nil, {messages}
function M.load(path)
    local src, err = source.read(path, "playbook")
    if not src then return nil, { err } end
    local self = setmetatable({ errors = {}, ids = {}, notifies = {}, gates = {}, step_count = 0,
                                uses = {}, chain = {}, prefix = "", files = {}, file_seen = {},
                                defined = {}, role_chain = {}, play_count = 0, sources = { src } }, Loader)
    do
        local ok, abs = pcall(fs.realpath, path)
        self.root_abs = ok and abs or path
        self.file_seen[self.root_abs] = true
    end
    local doc = src.value
    local book = { path = path, dir = util.dirname(path), plays = {}, source = src }
    if is_null(doc) then
        return nil, { path .. ":1:1: the playbook is empty (expected a list of plays)" }
    end
    if type(doc) ~= "table" or not util.is_list(doc) or next(doc) == nil then
        local at = type(doc) == "table" and src:at(doc) or path .. ":1:1"
        return nil, { at .. ": a playbook is a list of plays (each with 'hosts' and 'steps')" }
    end
    self.dir = book.dir
    self:plays(src, doc, book)
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
    -- every other file the playbook is built from (journal, resume, lint)
    book.files = self.files
    book.defined_names = self.defined
    book.sources = self.sources
    if #self.errors > 0 then
        M.sort_errors(self.errors)
        return nil, self.errors
    end
    return book
end

return M
