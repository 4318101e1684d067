-- load.play: one play of a playbook, checked and normalised (hosts,
-- vars, vars_prompt, vars_files, rollout, facts, roles, its steps and
-- handlers).  Part of the loader in playbook.lua: these are its methods.
local yaml = require("cutover.core.yaml")
local expr = require("cutover.expr")
local util = require("cutover.util")
local checks = require("cutover.load.checks")

local is_null, as_list, is_mapping, is_str_list = checks.is_null, checks.as_list, checks.is_mapping, checks.is_str_list

local PLAY_KEYS = { "name", "hosts", "vars", "steps", "handlers", "tags",
                    "serial", "max_fail_percentage", "any_errors_fatal", "order",
                    "vars_prompt", "vars_files", "roles", "gather_facts", "gather_subset",
                    "become", "become_user", "become_method", "become_flags" }

local ORDERS = { "inventory", "reverse_inventory", "sorted", "reverse_sorted", "shuffle" }

local Loader = {}

-- Unknown play keywords, with what was meant.  Returns the keywords
-- suggested, which are then not also reported missing.
function Loader:play_unknown_keys(src, t, label)
    local suggested = {}
    for _, k in ipairs(util.sorted_keys(t)) do
        local found = false
        for _, pk in ipairs(PLAY_KEYS) do if pk == k then found = true end end
        if not found and (k == "import_playbook" or k == "include_playbook") then
            -- not a play at all: 'hosts' and 'steps' are not missing
            suggested.hosts, suggested.steps = true, true
            self:err(src:at(t, k), label .. ": '" .. k .. "' must be an entry of its own (- import_playbook: PATH), " ..
                "not a keyword of a play" .. (k == "include_playbook" and
                    " (cutover imports playbooks when it loads: write import_playbook)" or ""))
        elseif not found then
            local hint = util.did_you_mean(tostring(k), PLAY_KEYS)
            if k == "tasks" then hint = " (cutover calls them 'steps')" end
            -- what was meant is not also reported missing
            suggested[hint:match("'(.-)'") or ""] = true
            self:err(src:at(t, k), label .. ": unknown play keyword '" .. tostring(k) .. "'" .. hint)
        end
    end
    return suggested
end

-- hosts (a pattern or a list of them) and vars.
function Loader:play_hosts_and_vars(src, t, play, label, suggested)
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
end

-- vars_prompt: asked once at start; private (the default) means no
-- echo and masked everywhere
function Loader:play_vars_prompt(src, t, play, label)
    if t.vars_prompt == nil or is_null(t.vars_prompt) then return end
    local list = t.vars_prompt
    if type(list) ~= "table" or not util.is_list(list) then
        self:err(src:at(t, "vars_prompt"), label ..
            ": 'vars_prompt' must be a list of {name, prompt, private, default}")
        return
    end
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

-- The rollout: serial, max_fail_percentage, any_errors_fatal.
function Loader:play_rollout(src, t, play, label)
    -- serial is a count, "N%", or a list of them (batch sizes; the last
    -- repeats)
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
            self:err(src:at(t, "serial"), label ..
                ": 'serial' must be a host count, a percentage such as '25%', or a list of them")
        end
    end
    if t.max_fail_percentage ~= nil then
        local v = t.max_fail_percentage
        if type(v) == "string" then v = tonumber((v:gsub("%%$", ""))) end
        if type(v) ~= "number" or v < 0 or v > 100 then
            self:err(src:at(t, "max_fail_percentage"), label ..
                ": 'max_fail_percentage' must be a number from 0 to 100")
        else
            play.max_fail_percentage = v
        end
    end
    self:play_boolean(src, t, play, label, "any_errors_fatal")
end

-- A play keyword that takes true or false: copied to play, or an error.
function Loader:play_boolean(src, t, play, label, key)
    if t[key] == nil then return end
    if type(t[key]) ~= "boolean" then
        self:err(src:at(t, key), label .. ": '" .. key .. "' must be true or false")
    else
        play[key] = t[key]
    end
end

-- remote facts (facts.lua): gather_facts true/false, gather_subset a
-- name or a list of names; and the hosts' order.
function Loader:play_facts_and_order(src, t, play, label)
    self:play_boolean(src, t, play, label, "gather_facts")
    if t.gather_subset ~= nil then
        local list = type(t.gather_subset) == "string" and { t.gather_subset } or t.gather_subset
        if type(list) ~= "table" or not util.is_list(list) or not is_str_list(list) or #list == 0 then
            self:err(src:at(t, "gather_subset"), label ..
                ": 'gather_subset' must be a subset name or a list of them (" ..
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
end

-- vars_files: read in order, each over the play's vars and the files
-- before it
function Loader:play_vars_files(src, t, play, label)
    if t.vars_files == nil or is_null(t.vars_files) then return end
    local list = t.vars_files
    if type(list) == "string" then list = { list } end
    if type(list) ~= "table" or not util.is_list(list) then
        self:err(src:at(t, "vars_files"), label .. ": 'vars_files' must be a file name or a list of them")
        return
    end
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

-- One entry of a play's roles: (a name, or {role:, vars:, tags:, when:,
-- id:}) as a role block, or nil.
function Loader:play_role_entry(src, r, at, label, tags)
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
        return nil
    end
    local tg = util.copy(tags)
    for _, x in ipairs(rtags) do tg[x] = true end
    local b = self:role_block(src, name, r, at, label, tg, params, "imported as a role", rid, rid ~= nil)
    if b then b.when, b.vars = when, params end
    return b
end

-- roles: applied before the play's steps, each once.  Returns their
-- blocks.
function Loader:play_role_blocks(src, t, label, tags)
    local role_steps = {}
    if t.roles == nil or is_null(t.roles) then return role_steps end
    local list = t.roles
    if type(list) ~= "table" or not util.is_list(list) then
        self:err(src:at(t, "roles"), label .. ": 'roles' must be a list of role names")
        return role_steps
    end
    for i, r in ipairs(list) do
        local b = self:play_role_entry(src, r, src:at(list, i), label, tags)
        if b then role_steps[#role_steps + 1] = b end
    end
    return role_steps
end

-- One play (t: its YAML mapping, index: its number among the plays):
-- the play, or nil.
function Loader:play(src, t, index)
    if type(t) ~= "table" or (util.is_list(t) and next(t) ~= nil) then
        self:err(src:at(src.value, index), "play " .. index .. " must be a mapping with 'hosts' and 'steps'")
        return nil
    end
    local label = type(t.name) == "string" and ("play '" .. t.name .. "'") or ("play " .. index)
    local play = { index = index, where = src:at(t) }
    local suggested = self:play_unknown_keys(src, t, label)
    play.name = type(t.name) == "string" and t.name or ("play " .. index)
    self:play_hosts_and_vars(src, t, play, label, suggested)
    self:become_keys(src, t, play, label)
    self:play_vars_prompt(src, t, play, label)
    self:play_rollout(src, t, play, label)
    self:play_facts_and_order(src, t, play, label)
    local tags = {}
    for _, tag in ipairs(as_list(t.tags)) do tags[tag] = true end
    if t.steps == nil and t.tasks == nil and t.roles == nil and not suggested.steps then
        self:err(play.where, label .. ": 'steps' is required")
    end
    self.play_index = index
    self.play_handlers, self.play_roles = {}, {}
    self:play_vars_files(src, t, play, label)
    local role_steps = self:play_role_blocks(src, t, label, tags)
    play.steps = self:steps(src, t, "steps", tags, false, label)
    for i = #role_steps, 1, -1 do table.insert(play.steps, 1, role_steps[i]) end
    local role_handlers = self.play_handlers
    self.play_handlers = nil
    play.handlers = self:steps(src, t, "handlers", tags, true, label)
    for _, h in ipairs(role_handlers) do play.handlers[#play.handlers + 1] = h end
    return play
end

return { methods = Loader }
