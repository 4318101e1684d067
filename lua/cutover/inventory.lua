-- inventory: hosts, groups and their variables, and host patterns.
-- Reads Ansible's YAML inventory format (all / hosts / vars / children).
-- Without -i the inventory is one host, localhost, on the local connection.
local playbook = require("cutover.playbook")
local util = require("cutover.util")
local yaml_null = require("cutover.core.yaml").null

local Inventory = {}
Inventory.__index = Inventory

local M = {}

local function new()
    local inv = setmetatable({ hosts = {}, groups = {}, order = {} }, Inventory)
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

function M.localhost()
    local inv = new()
    inv:add_to_group("localhost", "ungrouped")
    inv.hosts.localhost.vars.ansible_connection = "local"
    inv.implicit = true
    return inv
end

local GROUP_KEYS = { hosts = true, vars = true, children = true }

function M.load(path)
    local src, err = playbook.read_yaml(path, "inventory")
    if not src then return nil, err end
    local inv = new()
    inv.path = path
    local errors = {}
    local function bad(t, k, msg) errors[#errors + 1] = src:at(t, k) .. ": " .. msg end

    -- keys of a mapping in file order, so hosts run in inventory order
    local function in_file_order(t)
        local names = util.sorted_keys(t)
        local kp = src.keypos[t] or {}
        table.sort(names, function(a, b) return (kp[a] or 0) < (kp[b] or 0) end)
        return names
    end

    local function read_group(name, body, parent_t, parent_k)
        local g = inv:group(name)
        if body == nil or body == yaml_null then return end
        if type(body) ~= "table" or (next(body) ~= nil and util.is_list(body)) then
            bad(parent_t, parent_k, "group '" .. name .. "' must be a mapping with hosts, vars or children")
            return
        end
        for _, k in ipairs(util.sorted_keys(body)) do
            if not GROUP_KEYS[k] then
                bad(body, k, "group '" .. name .. "': unknown key '" .. tostring(k) .. "' (expected hosts, vars or children)" ..
                    util.did_you_mean(tostring(k), { "hosts", "vars", "children" }))
            end
        end
        local hosts = body.hosts
        if hosts ~= nil and hosts ~= yaml_null then
            if type(hosts) ~= "table" or (next(hosts) ~= nil and util.is_list(hosts)) then
                bad(body, "hosts", "group '" .. name .. "': 'hosts' must be a mapping of host names")
            else
                -- keep file order: sort keys by their position
                local names = util.sorted_keys(hosts)
                local kp = src.keypos[hosts] or {}
                table.sort(names, function(a, b) return (kp[a] or 0) < (kp[b] or 0) end)
                for _, hn in ipairs(names) do
                    inv:add_to_group(hn, name)
                    local hv = hosts[hn]
                    if hv ~= nil and hv ~= yaml_null then
                        if type(hv) ~= "table" or (next(hv) ~= nil and util.is_list(hv)) then
                            bad(hosts, hn, "host '" .. hn .. "': its variables must be a mapping")
                        else
                            for k, v in pairs(hv) do inv.hosts[hn].vars[k] = v end
                        end
                    end
                end
            end
        end
        if body.vars ~= nil and body.vars ~= yaml_null then
            if type(body.vars) ~= "table" or (next(body.vars) ~= nil and util.is_list(body.vars)) then
                bad(body, "vars", "group '" .. name .. "': 'vars' must be a mapping")
            else
                for k, v in pairs(body.vars) do g.vars[k] = v end
            end
        end
        local children = body.children
        if children ~= nil and children ~= yaml_null then
            if type(children) ~= "table" or (next(children) ~= nil and util.is_list(children)) then
                bad(body, "children", "group '" .. name .. "': 'children' must be a mapping of groups")
            else
                for _, cn in ipairs(in_file_order(children)) do
                    inv:group(cn).parents[name] = true
                    g.children[cn] = true
                    read_group(cn, children[cn], children, cn)
                end
            end
        end
    end

    local doc = src.value
    if doc == yaml_null then return inv end
    if type(doc) ~= "table" or util.is_list(doc) then
        return nil, src:at(type(doc) == "table" and doc or nil) .. ": an inventory is a mapping of groups (usually 'all:')"
    end
    for _, gname in ipairs(in_file_order(doc)) do
        read_group(gname, doc[gname], doc, gname)
        if gname ~= "all" then
            inv.groups[gname].parents.all = true
            inv.groups.all.children[gname] = true
        end
    end
    -- hosts only in "all" are also "ungrouped"
    for _, hn in ipairs(inv.order) do
        local h = inv.hosts[hn]
        local other = false
        for g in pairs(h.groups) do if g ~= "all" and g ~= "ungrouped" then other = true end end
        if not other then inv:add_to_group(hn, "ungrouped") end
    end
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

local function glob_to_pattern(glob)
    return "^" .. glob:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
end

-- Hosts matching one term (a name, a group, a glob, "all").
function Inventory:match_term(term)
    local out = {}
    if term == "all" or term == "*" then
        for _, h in ipairs(self.order) do out[h] = true end
        return out
    end
    if self.groups[term] then
        for h in pairs(self.groups[term].hosts) do out[h] = true end
        local function down(g, seen)
            if seen[g] then return end
            seen[g] = true
            for hn in pairs(self.groups[g].hosts) do out[hn] = true end
            for c in pairs(self.groups[g].children) do down(c, seen) end
        end
        down(term, {})
        return out
    end
    if self.hosts[term] then out[term] = true; return out end
    if term == "localhost" then
        -- Implicit, as in Ansible: usable by name, not part of "all".
        local h = { name = "localhost", vars = { ansible_connection = "local" }, groups = {}, implicit = true }
        self.hosts.localhost = h
        out.localhost = true
        return out
    end
    if term:find("[%*%?]") then
        local pat = glob_to_pattern(term)
        for _, h in ipairs(self.order) do if h:match(pat) then out[h] = true end end
        for g in pairs(self.groups) do
            if g:match(pat) then for h in pairs(self:match_term(g)) do out[h] = true end end
        end
    end
    return out
end

-- "web:db:!web3", "all,&prod": union, intersection (&), exclusion (!).
-- Returns the host names in inventory order, and the terms that matched
-- nothing (for a warning).
function Inventory:select(pattern)
    local chosen, inter, unknown = {}, nil, {}
    local excluded = {}
    for term in tostring(pattern):gmatch("[^,:]+") do
        term = util.trim(term)
        if term ~= "" then
            local op = term:sub(1, 1)
            local name = (op == "!" or op == "&") and term:sub(2) or term
            local m = self:match_term(name)
            if next(m) == nil then unknown[#unknown + 1] = name end
            if op == "!" then for h in pairs(m) do excluded[h] = true end
            elseif op == "&" then
                inter = inter or {}
                inter[#inter + 1] = m
            else for h in pairs(m) do chosen[h] = true end end
        end
    end
    local out = {}
    local order = self.order
    if self.hosts.localhost and self.hosts.localhost.implicit then
        order = util.copy(order)
        order[#order + 1] = "localhost"
    end
    for _, h in ipairs(order) do
        local ok = chosen[h] and not excluded[h]
        for _, m in ipairs(inter or {}) do if not m[h] then ok = false end end
        if ok then out[#out + 1] = h end
    end
    return out, unknown
end

return M
