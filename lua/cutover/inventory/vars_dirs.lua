-- inventory.vars_dirs: group_vars/NAME and host_vars/NAME beside the
-- inventory (a YAML file, NAME.yml, NAME.yaml, NAME.json, or a folder of
-- them), and which files an inventory folder leaves out.
local source = require("cutover.load.source")
local util = require("cutover.util")
local fs = require("cutover.core.fs")
local yaml_null = require("cutover.core.yaml").null
local is_mapping = require("cutover.inventory.yaml").is_mapping

local M = {}

-- What a folder inventory leaves out (as Ansible's defaults).
local IGNORED_NAMES = { group_vars = true, host_vars = true, vars_plugins = true }
local IGNORED_ENDINGS = { "~", ".orig", ".bak", ".retry", ".swp", ".pyc", ".pyo", ".cfg", ".md", ".txt", ".rst", ".rpm" }

function M.ignored(name)
    if name:sub(1, 1) == "." or IGNORED_NAMES[name] then return true end
    for _, e in ipairs(IGNORED_ENDINGS) do
        if name:sub(-#e) == e then return true end
    end
    return false
end

local VAR_EXTS = { "", ".yml", ".yaml", ".json" }

local function vars_file_ok(name)
    return not name:find(".", 1, true) or name:match("%.ya?ml$") or name:match("%.json$")
end

local function dir_vars_files(dir, out)
    for _, n in ipairs(fs.list(dir) or {}) do
        if n:sub(1, 1) ~= "." and not M.ignored(n) then
            local p = dir .. "/" .. n
            local st = fs.stat(p, true)
            if st and st.type == "directory" then dir_vars_files(p, out)
            elseif st and st.type == "file" and vars_file_ok(n) then out[#out + 1] = p end
        end
    end
    return out
end

-- As Ansible: the first of NAME, NAME.yml, NAME.yaml, NAME.json that
-- exists; a folder gives all its files, in name order.
local function vars_files(dir, name)
    for _, ext in ipairs(VAR_EXTS) do
        local p = dir .. "/" .. name .. ext
        local st = fs.stat(p, true)
        if st and st.type == "directory" then return dir_vars_files(p, {}) end
        if st then return { p } end
    end
    return {}
end

local function merge_vars_files(files, target, what, errors, read)
    for _, p in ipairs(files) do
        if read then read[#read + 1] = p end
        local src, err = source.read(p, what)
        if not src then
            errors[#errors + 1] = err
        elseif src.value ~= yaml_null then
            if not is_mapping(src.value) then
                errors[#errors + 1] = src:at(type(src.value) == "table" and src.value or nil) ..
                    ": " .. what .. " must be a mapping of variable names to values"
            else
                for k, v in pairs(src.value) do target[k] = v end
            end
        end
    end
end

-- Adds basedir/group_vars/* and basedir/host_vars/* to the groups and
-- hosts they name (over the inventory's own values).  Returns true |
-- nil, messages.  (The inventory's method load_vars_dirs.)
function M.load(self, basedir)
    local errors = {}
    local gdir, hdir = basedir .. "/group_vars", basedir .. "/host_vars"
    local gst, hst = fs.stat(gdir, true), fs.stat(hdir, true)
    if gst and gst.type == "directory" then
        for _, name in ipairs(util.sorted_keys(self.groups)) do
            merge_vars_files(vars_files(gdir, name), self.groups[name].vars, "group_vars file", errors,
                             self.files_read)
        end
    end
    if hst and hst.type == "directory" then
        for _, name in ipairs(self.order) do
            if not self.hosts[name].implicit then
                merge_vars_files(vars_files(hdir, name), self.hosts[name].vars, "host_vars file", errors,
                                 self.files_read)
            end
        end
    end
    if #errors > 0 then return nil, table.concat(errors, "\n") end
    return true
end

return M
