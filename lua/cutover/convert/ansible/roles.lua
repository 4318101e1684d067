-- convert.ansible.roles: tasks files (include/import) and roles, each
-- converted once into the file of the same path under the output.
-- Part of the converter in init.lua: these are its methods.
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local Y = require("cutover.convert.yaml_out")
local common = require("cutover.convert.ansible.common")
local bad, ordered_keys = common.bad, common.ordered_keys

local C = {}

-- A tasks file (include/import, a role's tasks/handlers): converted
-- once and written at the same path under the output folder.
function C:tasks_file(path, at, handler)
    local rel = self:rel(path)
    if not rel then error({ convert = "'" .. path .. "' is outside the playbook's folder" }, 0) end
    if self.files[rel] ~= nil then return rel end
    if not fs.stat(path) then bad(at .. ": file not found: " .. path) end
    self.files[rel] = false  -- in progress (a cycle ends here)
    local src = self:load(path, "tasks file")
    local saved = self.ids
    self.ids = {}
    local out_dir = rel:match("^(.*)/[^/]*$") or ""
    local ctx = { out_dir = out_dir, role_dir = path:match("^(.*/roles/[^/]+)/") or path:match("^(roles/[^/]+)/"),
                  handler = handler }
    local steps = self:steps(src, src.value, ctx)
    self.ids = saved
    self.files[rel] = Y.dump(steps, "# converted from Ansible by cutover convert ansible")
    return rel
end

function C:include(src, t, mkey, kind, ctx, step)
    local arg = t[mkey]
    local file = type(arg) == "table" and (arg.file or arg._raw_params) or arg
    if type(file) ~= "string" or file:find("{{", 1, true) then error({ convert = mkey ..
        " of a file name that is not written out" }, 0) end
    if type(arg) == "table" then
        for k in pairs(arg) do if k ~= "file" then error({ convert = mkey .. " '" .. k .. "'" }, 0) end end
    end
    local dir = src.path:match("^(.*)/[^/]*$") or "."
    local path = file:sub(1, 1) == "/" and file or util.join_path(dir, file)
    if ctx.role_dir and not fs.stat(path) then path = ctx.role_dir .. "/tasks/" .. file end
    local rel = self:tasks_file(path, self:at(src, t, mkey))
    step:put(kind, self:relative_to(rel, ctx.out_dir or ""))
end

-- A role: its folder converted once (tasks, handlers, defaults, vars,
-- meta dependencies, templates and files as its steps use them).
function C:role(name, src, t, key)
    if self.roles[name] then return end
    local dir = (src.path:match("^(.*)/[^/]*$") or ".")
    local found
    for _, d in ipairs({ dir .. "/roles/" .. name, self.base .. "/roles/" .. name }) do
        if fs.stat(d) then found = d; break end
    end
    if not found then bad(self:at(src, t, key) .. ": role '" .. name .. "' not found in " .. dir .. "/roles") end
    self.roles[name] = found
    local function yml(sub)
        for _, ext in ipairs({ "main.yml", "main.yaml" }) do
            local p = found .. "/" .. sub .. "/" .. ext
            if fs.stat(p) then return p end
        end
    end
    for _, sub in ipairs({ "defaults", "vars" }) do
        local p = yml(sub)
        if p then
            local vsrc = self:load(p, "vars file")
            self:note_types(vsrc.value)
            local rel = self:rel(p)
            if rel then self.files[rel] = Y.dump(self:vars(vsrc, vsrc.value),
                "# converted from Ansible by cutover convert ansible") end
        end
    end
    local meta = yml("meta")
    if meta then
        local msrc = self:load(meta, "role meta")
        local deps = type(msrc.value) == "table" and msrc.value.dependencies or nil
        local out = {}
        for _, d in ipairs(type(deps) == "table" and deps or {}) do
            local dname = type(d) == "table" and (d.role or d.name) or d
            if type(dname) ~= "string" then bad(self:at(msrc, d) .. ": a dependency without a role name") end
            self:role(dname, msrc, d)
            if type(d) == "table" and d.vars ~= nil then
                out[#out + 1] = Y.map():put("role", dname):put("vars", self:vars(msrc, d.vars))
            elseif type(d) == "table" then
                local vars = Y.map()
                for _, k in ipairs(ordered_keys(msrc, d)) do
                    if k ~= "role" and k ~= "name" then vars:put(k, self:value(msrc, d[k])) end
                end
                out[#out + 1] = #vars._keys > 0 and Y.map():put("role", dname):put("vars", vars) or dname
            else
                out[#out + 1] = dname
            end
        end
        local rel = self:rel(meta)
        if rel then self.files[rel] = Y.dump(Y.map():put("dependencies", out),
            "# converted from Ansible by cutover convert ansible") end
    end
    for _, sub in ipairs({ "handlers", "tasks" }) do
        local p = yml(sub)
        if p then self:tasks_file(p, self:at(src, t, key), sub == "handlers") end
    end
end

return { methods = C }
