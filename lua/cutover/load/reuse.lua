-- load.reuse: steps brought in from elsewhere: import_steps and
-- include_steps (a steps file), import_role and include_role, a play's
-- roles: and their dependencies.  Part of the loader in playbook.lua:
-- these are its methods.
local fs = require("cutover.core.fs")
local expr = require("cutover.expr")
local util = require("cutover.util")
local checks = require("cutover.load.checks")

local is_null, as_list, is_mapping = checks.is_null, checks.as_list, checks.is_mapping
local is_name, is_str_list, push_vars = checks.is_name, checks.is_str_list, checks.push_vars

-- Import is expanded in place (when/vars/tags apply to it as a block);
-- include may also loop.  Both are read and checked when the playbook
-- loads, so lint sees every error and the journal knows every file
-- before anything runs.
local REUSE_KINDS = checks.REUSE_KINDS
local REUSE_KIND_SET = {}
for _, k in ipairs(REUSE_KINDS) do REUSE_KIND_SET[k] = true end
local REUSE_KEYS = { "name", "id", "tags", "vars", "when" }
local INCLUDE_KEYS = { "loop", "loop_var" }
-- include_role/import_role NAME_from: the role's folders looked in
local ROLE_FROM = { tasks = { "steps", "tasks" }, vars = { "vars" }, defaults = { "defaults" },
                    handlers = { "handlers" } }

local Loader = {}

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

-- A role's dependencies (its meta/main.yml), each as a role block
-- appended to out.
function Loader:role_dependencies(dir, name, where, label, tags, out)
    local meta_path = dir .. "/meta/main.yml"
    if not exists(meta_path) then return end
    local msrc, merr = self:read(meta_path, "role meta file")
    if msrc then msrc.role_meta = true end
    if not msrc then
        self:err(where, label .. ": " .. merr)
        return
    elseif is_null(msrc.value) then
        return
    end
    local m = msrc.value
    local deps = is_mapping(m) and m.dependencies
    if not is_mapping(m) or (deps ~= nil and not is_null(deps) and
            (type(deps) ~= "table" or not util.is_list(deps))) then
        self:err(is_mapping(m) and msrc:at(m, "dependencies") or msrc:at(m),
            "role meta: 'dependencies' must be a list of role names")
        return
    end
    for i, d in ipairs(is_null(deps) and {} or deps or {}) do
        local dname = type(d) == "string" and d or (type(d) == "table" and (d.role or d.name))
        local dwhere = msrc:at(deps, i)
        if type(dname) ~= "string" then
            self:err(dwhere, "role meta: a dependency is a role name or {role: NAME, vars: {...}}")
        else
            local dvars = type(d) == "table" and is_mapping(d.vars) and d.vars or nil
            local b = self:role_block(msrc, dname, nil, dwhere, "role '" .. name .. "'", tags, dvars,
                "needed by role '" .. name .. "'")
            if b then out[#out + 1] = b end
        end
    end
end

-- A role's file of one kind (tasks, vars, defaults, handlers): main.yml,
-- or the file a *_from names (which must then exist).  nil when none.
function Loader:role_file(dir, name, where, label, from, what)
    local given = from and from[what]
    local file = given or "main.yml"
    if given and not file:match("%.ya?ml$") then file = file .. ".yml" end
    local looked = {}
    for _, sub in ipairs(ROLE_FROM[what]) do
        local p = dir .. "/" .. sub .. "/" .. file
        if exists(p) then return p end
        looked[#looked + 1] = p
    end
    if given then
        self:err(where, label .. ": role '" .. name .. "': " .. what .. "_from '" .. given ..
            "': no such file (looked for " .. table.concat(looked, ", ") .. ")")
    end
    return nil
end

-- Marks every step under list as the role's (where its files are found).
local function mark_role_dir(list, dir)
    for _, s in ipairs(list) do
        s.role_dir = s.role_dir or dir
        if s.block then mark_role_dir(s.block, dir); mark_role_dir(s.rescue, dir); mark_role_dir(s.always, dir) end
    end
end

-- nearest wins: the step's own vars, the vars the role was given, the
-- role's vars/, then (pushed later) the imports around it
local function push_role_vars(steps, params, rvars, defaults)
    push_vars(steps, params, "vars")
    push_vars(steps, rvars, "vars")
    push_vars(steps, defaults, "defaults")
end

-- The role's folder, unless the role depends on itself (error reported).
function Loader:role_dir(name, where, label, base)
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
    return dir, abs
end

-- The steps of role `name`: its dependencies (meta/main.yml, each once a
-- play), then steps/main.yml (or Ansible's tasks/main.yml) with the
-- role's defaults and vars; its handlers join the play's.  Ids are under
-- the current prefix.  Returns a list of steps or nil.
function Loader:role_steps(name, where, label, tags, how, params, base, from)
    local dir, abs = self:role_dir(name, where, label, base)
    if not dir then return nil end
    self.role_chain[#self.role_chain + 1] = abs
    local out = {}
    -- dependencies first
    self:role_dependencies(dir, name, where, label, tags, out)
    local defaults_path = self:role_file(dir, name, where, label, from, "defaults")
    local vars_path = self:role_file(dir, name, where, label, from, "vars")
    local steps_path = self:role_file(dir, name, where, label, from, "tasks")
    local handlers_path = self:role_file(dir, name, where, label, from, "handlers")
    local defaults = defaults_path and self:vars_file(defaults_path, where, label) or nil
    local rvars = vars_path and self:vars_file(vars_path, where, label) or nil
    local own = steps_path and self:steps_file(steps_path, where, how, label, tags, false) or {}
    mark_role_dir(own, dir)
    push_role_vars(own, params, rvars, defaults)
    if handlers_path and self.play_handlers then
        local hs = self:steps_file(handlers_path, where, how, label, tags, true) or {}
        mark_role_dir(hs, dir)
        push_role_vars(hs, params, rvars, defaults)
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

-- Which reuse keyword the step has (two in one step: an error).
function Loader:reuse_kind(src, t)
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
    return kind
end

-- import_role/include_role's {name: ROLE, tasks_from: FILE, ...} form.
-- Returns the role's name and the *_from files (nil when none).
function Loader:role_target(src, target, kind, label)
    local from
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
                "' (give 'name', 'tasks_from', 'vars_from', 'defaults_from', 'handlers_from'; and 'vars' on " ..
                    "the step)" ..
                util.did_you_mean(tostring(k), { "name", "tasks_from", "vars_from", "defaults_from",
                    "handlers_from" }))
        end
    end
    return target.name, from
end

-- Keys a reuse step may not have (loop on an import: use include).
function Loader:reuse_keys(src, t, kind, is_include, label)
    local allowed = {}
    for _, k in ipairs(REUSE_KEYS) do allowed[k] = true end
    if is_include then for _, k in ipairs(INCLUDE_KEYS) do allowed[k] = true end end
    allowed[kind] = true
    for k in pairs(t) do
        if type(k) == "string" and not allowed[k] and not REUSE_KIND_SET[k] then
            local hint
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
end

-- What the reuse step names: a role written out, or a file (written
-- out, or with {{ }} for include_steps, read when it runs).  Returns
-- true and the file's path (nil for a role or a {{ }} name), or false.
function Loader:reuse_target(src, t, kind, target, role_name, is_role, is_include, label)
    if is_role then
        if type(role_name) ~= "string" or role_name == "" then
            self:err(src:at(t, kind), label .. ": " .. kind .. " takes a role name (or {name: ROLE})")
            return false
        end
        if expr.has_template(role_name) then
            self:err(src:at(t, kind), label .. ": " .. kind ..
                ": the role name must be written out ({{ }} is not allowed: roles are read when the playbook loads)")
            return false
        end
        return true
    end
    if type(target) ~= "string" or target == "" then
        self:err(src:at(t, kind), label .. ": " .. kind .. " takes a file name")
        return false
    end
    if expr.has_template(target) and not is_include then
        self:err(src:at(t, kind), label .. ": " .. kind ..
            ": the file name must be written out ({{ }} is not allowed: " ..
            "import_steps reads its file when the playbook loads; include_steps may name it with {{ }})")
        return false
    end
    if expr.has_template(target) then
        -- dynamic: the name is rendered per host when the step runs
        self:check_templates(src, target, t, kind, label)
        return true
    end
    return true, util.join_path(util.dirname(src.path), target)
end

-- name, vars, tags and when of a reuse step.  Returns the vars it gives
-- (nil when none).
function Loader:reuse_keywords(src, t, step, inherited_tags, label)
    local params
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
    return params
end

-- loop and loop_var of an include.
function Loader:include_loop(src, t, step, label)
    if t.loop ~= nil then
        if type(t.loop) == "table" or type(t.loop) == "string" and expr.has_template(t.loop) then
            step.include_loop = t.loop
            if type(t.loop) == "table" then self:check_templates(src, t.loop, t, "loop", label) end
        else
            self:err(src:at(t, "loop"), label .. ": 'loop' must be a list or a '{{ }}' expression giving one")
        end
    end
    if t.loop_var ~= nil then
        if not is_name(t.loop_var) then
            self:err(src:at(t, "loop_var"), label .. ": 'loop_var' must be a variable name")
        elseif t.loop == nil then
            self:err(src:at(t, "loop_var"), label .. ": 'loop_var' needs 'loop'")
        else
            step.loop_var = t.loop_var
        end
    end
end

-- The reuse step's contents: the role's steps, the file's steps, or
-- (a {{ }} name) what the runner needs to read the file when it runs.
-- Returns false when they could not be read.
function Loader:reuse_contents(src, t, step, r)
    local id, explicit, from_name = self:step_id(t, r.label, src, t)
    if not id then id, explicit = util.slug(r.kind .. " " .. (r.role_name or r.target)), false end
    local how = (r.is_include and "included" or "imported") .. (r.is_role and " as a role" or "")
    local at = src:at(t, r.kind)
    if r.is_role then
        if t.id == nil and t.name == nil then id = util.slug(r.role_name) end
        local b = self:role_block(src, r.role_name, t, at, r.label, step.tags, r.params, how, id, explicit,
            from_name, false, r.from)
        if not b then return false end
        step.id, step.block = b.id, b.block
    elseif not step.file then
        -- read when it runs (Runner:dynamic_steps, M.load_steps): what
        -- it needs from here is kept on the step
        step.id = self:claim_id(id, explicit, function() return at end, r.label, from_name)
        step.dynamic_file, step.dynamic_base, step.in_handlers = r.target, util.dirname(src.path), r.in_handlers
        step.dynamic_where, step.dynamic_chain = at, util.copy(self.chain)
        step.vars = r.params and util.copy(r.params) or nil
    else
        step.id = self:claim_id(id, explicit, function() return at end, r.label, from_name)
        local saved = self.prefix
        self.prefix = (step.id or "step") .. "."
        step.block = self:steps_file(step.file, at, how, r.label, step.tags, r.in_handlers)
        self.prefix = saved
        if not step.block then return false end
        push_vars(step.block, r.params, "vars")
    end
    return true
end

-- import_steps / include_steps / import_role / include_role.
function Loader:reuse_step(src, t, inherited_tags, in_handlers)
    local kind = self:reuse_kind(src, t)
    local target = t[kind]
    local r = { kind = kind, target = target, in_handlers = in_handlers,
                is_role = kind:find("role", 1, true) ~= nil, is_include = kind:sub(1, 8) == "include_" }
    if type(t.name) == "string" then r.label = "step '" .. t.name .. "'"
    elseif type(t.id) == "string" then r.label = "step '" .. t.id .. "'"
    else r.label = "'" .. kind .. "' step" end
    if r.is_role and type(target) == "table" and is_mapping(target) then
        r.role_name, r.from = self:role_target(src, target, kind, r.label)
    elseif r.is_role then
        r.role_name = target
    end
    self:reuse_keys(src, t, kind, r.is_include, r.label)
    local ok, file = self:reuse_target(src, t, kind, target, r.role_name, r.is_role, r.is_include, r.label)
    if not ok then return nil end
    local step = { raw = t, source = src, rescue = {}, always = {}, reuse = kind, file = file, role = r.role_name,
                   label = r.label }
    r.params = self:reuse_keywords(src, t, step, inherited_tags, r.label)
    if r.is_include then self:include_loop(src, t, step, r.label) end
    if not self:reuse_contents(src, t, step, r) then return nil end
    self.step_count = self.step_count + 1
    return step
end

return { methods = Loader }
