-- convert.ansible.play: a playbook's plays (import_playbook, vars,
-- vars_files, vars_prompt, roles, the steps with handler flushes, play
-- keywords cutover does not have).
-- Part of the converter in init.lua: these are its methods.
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local jinja = require("cutover.convert.jinja")
local Y = require("cutover.convert.yaml_out")
local common = require("cutover.convert.ansible.common")
local bad, ordered_keys, is_map_value = common.bad, common.ordered_keys, common.is_map_value
local cond_value = common.cond_value

local C = {}

local PLAY_SAME = { "name", "hosts", "tags", "serial", "max_fail_percentage", "any_errors_fatal", "order" }

function C:vars_file(path, at)
    local rel = self:rel(path)
    if not fs.stat(path) then bad(at .. ": vars file not found: " .. path) end
    local vsrc = self:load(path, "vars file")
    self:note_types(vsrc.value)
    if rel and self.files[rel] == nil then
        self.files[rel] = Y.dump(self:vars(vsrc, vsrc.value), "# converted from Ansible by cutover convert ansible")
    end
    return rel
end

-- import_playbook: the imported file converted too (once) -> the play
-- that imports it, or nil when it is left out
function C:import_playbook_play(src, p, out)
    local f = p.import_playbook
    if type(f) ~= "string" then bad(self:at(src, p, "import_playbook") .. ": import_playbook needs a file name") end
    if f:find("{{", 1, true) then
        self:report(self:at(src, p, "import_playbook"),
            "import_playbook of a file name that is not written out: left out")
        return nil
    end
    local dir = src.path:match("^(.*)/[^/]*$") or "."
    local path = util.join_path(dir, f)
    local rel = self:rel(path)
    if not rel then
        self:report(self:at(src, p, "import_playbook"), "import_playbook '" .. f ..
            "' is outside the playbook's folder: left out")
        return nil
    end
    if self.files[rel] == nil then
        if not fs.stat(path) then bad(self:at(src, p, "import_playbook") .. ": file not found: " .. path) end
        self.files[rel] = false
        self.files[rel] = self:playbook_text(path)
    end
    out:put("import_playbook", self:relative_to(rel, (src.path == self.path) and "" or
        (self:rel(src.path):match("^(.*)/") or "")))
    return out
end

-- A play's vars_files (first: their names' types help the translation),
-- vars and vars_prompt into out
function C:play_vars(src, p, out)
    local vfiles = {}
    for _, f in ipairs(type(p.vars_files) == "table" and p.vars_files or (p.vars_files and { p.vars_files } or {})) do
        if type(f) ~= "string" or f:find("{{", 1, true) then
            self:report(self:at(src, p, "vars_files"), "vars_files entry that is not a written-out file name: left out")
        else
            local path = util.join_path(src.path:match("^(.*)/[^/]*$") or ".", f)
            local rel = self:vars_file(path, self:at(src, p, "vars_files"))
            if rel then vfiles[#vfiles + 1] = rel
            else self:report(self:at(src, p, "vars_files"), "vars file '" .. f ..
                "' is outside the playbook's folder: left out") end
        end
    end
    if p.vars ~= nil then
        if type(p.vars) ~= "table" or not is_map_value(src, p.vars) then bad(self:at(src, p, "vars") ..
            ": vars must be a mapping") end
        out:put("vars", self:vars(src, p.vars))
    end
    if #vfiles > 0 then out:put("vars_files", vfiles) end
    if p.vars_prompt ~= nil then
        local list = {}
        for _, q in ipairs(type(p.vars_prompt) == "table" and p.vars_prompt or {}) do
            if type(q) ~= "table" or not is_map_value(src, q) then bad(self:at(src, p, "vars_prompt") ..
                ": a vars_prompt entry must be a mapping") end
            local m = Y.map()
            for _, k in ipairs(ordered_keys(src, q)) do
                if k == "name" or k == "prompt" or k == "private" or k == "default" then m:put(k, self:value(src, q[k]))
                else self:report(self:at(src, q, k), "vars_prompt '" .. k .. "': left out") end
            end
            list[#list + 1] = m
        end
        out:put("vars_prompt", list)
    end
end

-- Play keywords cutover does not have: { position, what } each
function C:play_blockers(src, p)
    local blockers = {}
    local conn = p.connection
    if conn ~= nil then
        local h = p.hosts
        if not (conn == "local" and (h == "localhost" or h == "127.0.0.1")) then
            blockers[#blockers + 1] = { self:at(src, p, "connection"), "connection: " .. tostring(conn) }
        end
    end
    for _, k in ipairs({ "environment", "remote_user", "strategy", "module_defaults", "port", "check_mode" }) do
        if p[k] ~= nil then
            blockers[#blockers + 1] = { self:at(src, p, k), "play '" .. k .. "'" }
        end
    end
    return blockers
end

-- A play's roles: the references for roles: (a name, or a map with
-- vars, tags, when), a failing step added to steps for a role whose when
-- does not convert -> the references, whether they must become
-- import_role steps
function C:play_roles(src, p, steps, roles_as_steps)
    local role_refs = {}
    for _, r in ipairs(type(p.roles) == "table" and p.roles or {}) do
        local name = type(r) == "table" and (r.role or r.name) or r
        if type(name) ~= "string" or name:find("{{", 1, true) then bad(self:at(src, r) ..
            ": a role without a plain name") end
        self:role(name, src, type(r) == "table" and r or p, type(r) == "table" and "role" or "roles")
        local ref, skip = name, false
        if type(r) == "table" then
            local m = Y.map():put("role", name)
            local vars = Y.map()
            for _, k in ipairs(ordered_keys(src, r)) do
                if k == "vars" then
                    local rv = self:vars(src, r.vars)
                    for _, vk in ipairs(rv._keys) do vars:put(vk, rv:get(vk)) end
                elseif k == "tags" then m:put("tags", self:value(src, r.tags))
                elseif k == "when" then
                    -- an import_role step may carry when (roles: may not)
                    local ok, c = self:try(function() return cond_value(self, r.when) end)
                    roles_as_steps = true
                    if ok then m:put("when", c) else
                        self:report(self:at(src, r, k), "role '" .. name .. "': " .. c .. ": the step fails instead")
                        steps[#steps + 1] = self:fail_step(src, r, c)
                        skip = true
                    end
                elseif k ~= "role" and k ~= "name" then vars:put(k, self:value(src, r[k])) end
            end
            if #vars._keys > 0 then m:put("vars", vars) end
            if m._keys[2] then ref = m end
        end
        if not skip then role_refs[#role_refs + 1] = ref end
    end
    return role_refs, roles_as_steps
end

-- The play's steps: pre_tasks, roles, tasks, post_tasks, with the handler
-- flushes Ansible does between them, into out (steps, roles, handlers)
function C:play_steps(src, p, out, steps, role_refs, roles_as_steps)
    local ctx = { out_dir = "" }
    local handlers = self:steps(src, p.handlers, { out_dir = "", handler = true }, p, "handlers")
    local pre = self:steps(src, p.pre_tasks, ctx, p, "pre_tasks")
    local tasks = self:steps(src, p.tasks, ctx, p, "tasks")
    local post = self:steps(src, p.post_tasks, ctx, p, "post_tasks")
    for _, s in ipairs(pre) do steps[#steps + 1] = s end
    if #pre > 0 then steps[#steps + 1] = Y.map():put("meta", "flush_handlers") end
    if #pre > 0 or roles_as_steps then
        for _, ref in ipairs(role_refs) do
            local m = Y.map()
            if type(ref) == "string" then m:put("import_role", ref) else
                m:put("import_role", ref:get("role"))
                for _, k in ipairs({ "vars", "tags", "when" }) do
                    if ref:get(k) ~= nil then m:put(k, ref:get(k)) end
                end
            end
            steps[#steps + 1] = m
        end
        role_refs = {}
    end
    for _, s in ipairs(tasks) do steps[#steps + 1] = s end
    if #post > 0 then
        steps[#steps + 1] = Y.map():put("meta", "flush_handlers")
        for _, s in ipairs(post) do steps[#steps + 1] = s end
    end
    if #role_refs > 0 then out:put("roles", role_refs) end
    out:put("steps", steps)
    if #handlers > 0 then out:put("handlers", handlers) end
end

local PLAY_KNOWN = { hosts = 1, name = 1, tags = 1, serial = 1, max_fail_percentage = 1, any_errors_fatal = 1,
                     order = 1, vars = 1, vars_files = 1, vars_prompt = 1, roles = 1, tasks = 1, pre_tasks = 1,
                     post_tasks = 1, handlers = 1, gather_facts = 1, become = 1, become_user = 1,
                     become_method = 1, become_flags = 1, connection = 1, environment = 1, remote_user = 1,
                     strategy = 1, module_defaults = 1, port = 1, collections = 1, fact_path = 1,
                     gather_subset = 1, gather_timeout = 1, no_log = 1, check_mode = 1, diff = 1 }

-- Play keywords left out, reported
function C:unknown_play_keys(src, p)
    for _, k in ipairs(ordered_keys(src, p)) do
        if not PLAY_KNOWN[k] then
            self:report(self:at(src, p, k), "play keyword '" .. tostring(k) .. "': left out")
        elseif k == "collections" or k == "fact_path" or k == "gather_subset" or k == "gather_timeout"
            or k == "no_log" or k == "diff" then
            self:report(self:at(src, p, k), "play keyword '" .. k .. "': left out")
        end
    end
end

function C:play(src, p, index)
    if type(p) ~= "table" or not is_map_value(src, p) then
        bad(self:at(src, type(p) == "table" and p or src.value) .. ": play " .. index .. " must be a mapping")
    end
    local out = Y.map()
    if p.import_playbook ~= nil then return self:import_playbook_play(src, p, out) end
    for _, k in ipairs(PLAY_SAME) do
        if p[k] ~= nil then out:put(k, self:value(src, p[k])) end
    end
    if out:get("hosts") == nil then bad(self:at(src, p) .. ": play without hosts") end
    self:note_types(p.vars)
    self:play_vars(src, p, out)
    -- play keywords cutover does not have
    self:become(src, p, out)
    local blockers = self:play_blockers(src, p)
    local steps = {}
    for _, b in ipairs(blockers) do
        self:report(b[1], b[2] .. ": not converted: the play fails at its start instead")
        local m = Y.map():put("name", jinja.literal("NOT CONVERTED: " .. b[2]))
        self:claim_name(m)
        m:put("fail", Y.map():put("msg", jinja.literal("not converted from Ansible: " .. b[1] .. ": " .. b[2])))
        steps[#steps + 1] = m
    end
    -- Ansible applies roles after pre_tasks; cutover's roles: run before
    -- the steps, so roles become import_role steps when something must
    -- come first (pre_tasks, a blocker's fail step) or a role has when
    local role_refs, roles_as_steps = self:play_roles(src, p, steps, #steps > 0)
    self:play_steps(src, p, out, steps, role_refs, roles_as_steps)
    self:unknown_play_keys(src, p)
    return out
end

function C:playbook_text(path)
    local src = self:load(path, "playbook")
    if type(src.value) ~= "table" or is_map_value(src, src.value) or #src.value == 0 then
        bad(path .. ": a playbook must be a list of plays")
    end
    local saved = self.ids
    self.ids = {}
    local plays = {}
    for i, p in ipairs(src.value) do
        local out = self:play(src, p, i)
        if out then plays[#plays + 1] = out end
    end
    self.ids = saved
    return Y.dump(plays, "# converted from Ansible by cutover convert ansible")
end

return { methods = C }
