-- inventory.render: `cutover inventory --list / --graph / --host`, in
-- the shapes ansible-inventory prints.  Methods of an inventory (init.lua
-- installs them).
local util = require("cutover.util")
local json = require("cutover.core.json")

local Methods = {}

-- The inventory in the JSON shape of `ansible-inventory --list`:
-- {"_meta": {"hostvars": {HOST: {...}}}, "all": {"children": [...]},
--  GROUP: {"hosts": [...], "vars": {...}, "children": [...]}}.
-- Host variables include what they get from their groups; a group's
-- entry also shows its own vars.  Empty keys are left out.
function Methods:list()
    local out = { _meta = { hostvars = {} } }
    for _, hn in ipairs(self.order) do
        if not self.hosts[hn].implicit then out._meta.hostvars[hn] = self:hostvars(hn) end
    end
    for name, g in pairs(self.groups) do
        local e = {}
        local hosts = {}
        for _, hn in ipairs(self.order) do
            if g.hosts[hn] and not self.hosts[hn].implicit then hosts[#hosts + 1] = hn end
        end
        if #hosts > 0 then e.hosts = hosts end
        local children = util.sorted_keys(g.children)
        if #children > 0 then e.children = children end
        if next(g.vars) then e.vars = g.vars end
        if next(e) or name == "all" then out[name] = e end
    end
    return out
end

function Methods:list_json()
    return json.encode(self:list(), true) .. "\n"
end

-- The group tree as `ansible-inventory --graph [GROUP]` draws it: groups
-- as @NAME:, child groups before hosts, both in name order.
function Methods:graph(root)
    root = root or "all"
    if not self.groups[root] then
        return nil, "no group '" .. root .. "'" .. util.did_you_mean(root, util.sorted_keys(self.groups))
    end
    local lines = {}
    local function entry(s, depth)
        lines[#lines + 1] = depth > 0 and (string.rep("  |", depth) .. "--" .. s) or s
    end
    local function walk(name, depth)
        local g = self.groups[name]
        entry("@" .. name .. ":", depth)
        for _, c in ipairs(util.sorted_keys(g.children)) do walk(c, depth + 1) end
        if name ~= "all" then
            for _, hn in ipairs(util.sorted_keys(g.hosts)) do entry(hn, depth + 1) end
        end
    end
    walk(root, 0)
    return table.concat(lines, "\n") .. "\n"
end

-- One host's variables as JSON (`--host HOST`).
function Methods:host_json(name)
    local h = self.hosts[name]
    if not h then
        return nil, "no host '" .. name .. "'" .. util.did_you_mean(name, self.order)
    end
    return json.encode(self:hostvars(name), true) .. "\n"
end

return Methods
