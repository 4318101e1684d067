-- inventory: hosts, groups and their variables, and host patterns.
--
-- Sources (-i): Ansible's YAML format (all / hosts / vars / children),
-- Ansible's INI format ([group], [group:vars], [group:children]), a
-- folder of such files (merged in name order), or a host list "h1,h2,".
-- Beside the inventory, group_vars/NAME and host_vars/NAME (a YAML file,
-- NAME.yml, NAME.yaml, NAME.json, or a folder of them) add variables that
-- win over the ones written in the inventory itself.
-- Without -i the inventory is one host, localhost, on the local connection.
-- Every error names FILE:LINE (INI) or FILE:LINE:COL (YAML).
--
-- The files: init.lua (the model and load), names.lua (host ranges),
-- yaml.lua and ini.lua (the two formats), vars_dirs.lua (group_vars/,
-- host_vars/), select.lua (host patterns, --limit), render.lua (--list,
-- --graph, --host).
local source = require("cutover.load.source")
local util = require("cutover.util")
local fs = require("cutover.core.fs")
local yaml_null = require("cutover.core.yaml").null
local hostnames = require("cutover.inventory.names")
local yaml_inventory = require("cutover.inventory.yaml")
local ini = require("cutover.inventory.ini")
local vars_dirs = require("cutover.inventory.vars_dirs")
local selection = require("cutover.inventory.select")
local render = require("cutover.inventory.render")

local Inventory = {}
Inventory.__index = Inventory

local M = {}

local function new()
    -- files_read: every file the inventory was built from, in the order
    -- read (inventory files, group_vars, host_vars; saved plans digest them)
    local inv = setmetatable({ hosts = {}, groups = {}, order = {}, link_where = {}, files_read = {} }, Inventory)
    inv:group("all")
    inv:group("ungrouped")
    inv.groups.all.children.ungrouped = true
    inv.groups.ungrouped.parents.all = true
    return inv
end

function Inventory:group(name)
    local g = self.groups[name]
    if not g then
        g = { name = name, vars = {}, hosts = {}, children = {}, parents = {} }
        self.groups[name] = g
    end
    return g
end

function Inventory:host(name)
    local h = self.hosts[name]
    if not h then
        h = { name = name, vars = {}, groups = {} }
        self.hosts[name] = h
        self.order[#self.order + 1] = name
    end
    return h
end

function Inventory:add_to_group(hostname, groupname)
    local h = self:host(hostname)
    self:group(groupname).hosts[hostname] = true
    h.groups[groupname] = true
end

-- child becomes a child group of parent; where: "FILE:LINE" for errors.
function Inventory:link(parent, child, where)
    self:group(parent).children[child] = true
    self:group(child).parents[parent] = true
    local key = parent .. "\0" .. child
    if where and not self.link_where[key] then self.link_where[key] = where end
end

function M.localhost()
    local inv = new()
    inv:add_to_group("localhost", "ungrouped")
    inv.hosts.localhost.vars.ansible_connection = "local"
    inv.implicit = true
    return inv
end

Inventory.load_vars_dirs = vars_dirs.load
for k, f in pairs(selection.methods) do Inventory[k] = f end
for k, f in pairs(render) do Inventory[k] = f end

-- Parts other modules and the tests use by these names.
M.MAX_RANGE_HOSTS = hostnames.MAX_RANGE_HOSTS
M.expand_ranges = hostnames.expand_ranges
M.host_entry = hostnames.host_entry
M.ini_value = ini.value
M.looks_ini = ini.looks
M.limit_pattern = selection.limit_pattern

-- Sources -------------------------------------------------------------------

local function load_file(inv, path, errors)
    inv.files_read[#inv.files_read + 1] = path
    local text, err = source.read_text(path, "inventory")
    if not text then
        errors[#errors + 1] = err
        return
    end
    if text:sub(1, 2) == "#!" then
        errors[#errors + 1] = path .. ":1: inventory scripts are not supported (give a YAML or INI file)"
        return
    end
    if ini.looks(path, text) then ini.load(inv, path, text, errors)
    else yaml_inventory.load(inv, path, errors) end
end

local function load_dir(inv, dir, errors, depth)
    if depth > 16 then errors[#errors + 1] = dir .. ": inventory folders nested too deep"; return end
    local names, err = fs.list(dir)
    if not names then errors[#errors + 1] = err; return end
    for _, n in ipairs(names) do
        if not vars_dirs.ignored(n) then
            local p = dir .. "/" .. n
            local st = fs.stat(p, true)
            if st and st.type == "directory" then load_dir(inv, p, errors, depth + 1)
            elseif st and st.type == "file" then load_file(inv, p, errors) end
        end
    end
end

local function load_host_list(inv, list, errors)
    for item in list:gmatch("[^,]+") do
        item = util.trim(item)
        if item ~= "" then
            local names, port = hostnames.host_entry(item)
            if not names then
                errors[#errors + 1] = "host list '" .. list .. "': " .. port
            else
                for _, hn in ipairs(names) do
                    inv:add_to_group(hn, "ungrouped")
                    if port then inv.hosts[hn].vars.ansible_port = port end
                end
            end
        end
    end
end

-- After all sources: top groups under "all", "ungrouped" exactly the hosts
-- in no other group, and no group its own ancestor.
local function finish(inv, errors)
    for hn in pairs(inv.groups.all.hosts) do inv.hosts[hn].groups.all = nil end
    inv.groups.all.hosts = {}
    for name, g in pairs(inv.groups) do
        if name ~= "all" and next(g.parents) == nil then inv:link("all", name) end
    end
    for _, hn in ipairs(inv.order) do
        local h = inv.hosts[hn]
        local other = false
        for g in pairs(h.groups) do if g ~= "ungrouped" then other = true end end
        if other then
            h.groups.ungrouped = nil
            inv.groups.ungrouped.hosts[hn] = nil
        else
            inv:add_to_group(hn, "ungrouped")
        end
    end
    local state = {}
    local function visit(name, path)
        state[name] = "open"
        path[#path + 1] = name
        for _, c in ipairs(util.sorted_keys(inv.groups[name].children)) do
            if state[c] == "open" then
                local from
                for i, p in ipairs(path) do if p == c then from = i end end
                local loop = {}
                for i = from, #path do loop[#loop + 1] = path[i] end
                loop[#loop + 1] = c
                local where = inv.link_where[name .. "\0" .. c]
                errors[#errors + 1] = (where and where .. ": " or "") .. "group '" .. c .. "' is its own ancestor (" ..
                    table.concat(loop, " > ") .. ")"
                return false
            elseif not state[c] then
                if not visit(c, path) then return false end
            end
        end
        path[#path] = nil
        state[name] = "done"
        return true
    end
    for _, name in ipairs(util.sorted_keys(inv.groups)) do
        if not state[name] and not visit(name, {}) then break end
    end
end

-- Connection variables whose bad value would otherwise fall back to a
-- default (port 22, a 30 s timeout): checked once everything is loaded,
-- unless the value is a template (checked when the host connects).
local CHECKED_VARS = {
    ansible_port = util.port_number, ansible_ssh_port = util.port_number,
    ansible_timeout = util.seconds, ansible_ssh_timeout = util.seconds,
}

local function check_values(inv, errors)
    local function check(what, vars)
        for _, k in ipairs(util.sorted_keys(CHECKED_VARS)) do
            local v = vars[k]
            if v ~= nil and v ~= yaml_null and not (type(v) == "string" and v:find("{{", 1, true)) then
                local ok, err = CHECKED_VARS[k](k, v)
                if not ok then errors[#errors + 1] = inv.path .. ": " .. what .. ": " .. err end
            end
        end
    end
    for _, g in ipairs(util.sorted_keys(inv.groups)) do check("group '" .. g .. "'", inv.groups[g].vars) end
    for _, h in ipairs(inv.order) do check("host '" .. h .. "'", inv.hosts[h].vars) end
end

-- path: a YAML or INI file, a folder of them, or "h1,h2," (a text with a
-- comma that is not a file).  Returns the inventory | nil, message(s).
function M.load(path)
    local inv = new()
    inv.path = path
    local errors = {}
    local st = fs.stat(path, true)
    local basedir
    if not st and path:find(",", 1, true) then
        load_host_list(inv, path, errors)
    elseif st and st.type == "directory" then
        load_dir(inv, path, errors, 1)
        basedir = path
    else
        load_file(inv, path, errors)
        basedir = path:match("^(.*)/[^/]*$") or "."
        if basedir == "" then basedir = "/" end
    end
    if #errors == 0 then finish(inv, errors) end
    if #errors == 0 and basedir then
        local ok, err = inv:load_vars_dirs(basedir)
        if not ok then errors[#errors + 1] = err end
    end
    if #errors == 0 then check_values(inv, errors) end
    if #errors > 0 then return nil, table.concat(errors, "\n") end
    return inv
end

-- Every group a host belongs to, directly or through children.
function Inventory:groups_of(hostname)
    local out = {}
    local function up(gname)
        if out[gname] then return end
        out[gname] = true
        for p in pairs(self.groups[gname].parents) do up(p) end
    end
    for g in pairs(self.hosts[hostname].groups) do up(g) end
    if not self.hosts[hostname].implicit then out.all = true end
    return out
end

local function depth(self, gname, seen)
    seen = seen or {}
    if gname == "all" or seen[gname] then return 0 end
    seen[gname] = true
    local d = 0
    for p in pairs(self.groups[gname].parents) do d = math.max(d, depth(self, p, seen) + 1) end
    return d
end

-- Group variable layers for a host, highest precedence first: deeper
-- groups (children) above their parents, ties by name (later wins).
function Inventory:group_layers(hostname)
    local groups = {}
    for g in pairs(self:groups_of(hostname)) do groups[#groups + 1] = g end
    table.sort(groups, function(a, b)
        local da, db = depth(self, a), depth(self, b)
        if da ~= db then return da > db end
        return a > b
    end)
    local layers = {}
    for _, g in ipairs(groups) do
        if next(self.groups[g].vars) then layers[#layers + 1] = { vars = self.groups[g].vars } end
    end
    return layers
end

-- A host's variables from the inventory: its groups' (parents first,
-- children over parents) and then its own.
function Inventory:hostvars(name)
    local out = {}
    local h = self.hosts[name]
    if not h.implicit then
        local layers = self:group_layers(name)
        for i = #layers, 1, -1 do
            for k, v in pairs(layers[i].vars) do out[k] = v end
        end
    end
    for k, v in pairs(h.vars) do out[k] = v end
    return out
end

return M
