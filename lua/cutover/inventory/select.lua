-- inventory.select: host patterns ("web:db:!web3", "all,&prod", globs)
-- and --limit (@FILE included).  Methods of an inventory (init.lua
-- installs them).
local source = require("cutover.load.source")
local util = require("cutover.util")
local fs = require("cutover.core.fs")

local M = {}
local Methods = {}
M.methods = Methods

local glob_match = util.glob_match

-- Hosts matching one term (a name, a group, a glob, "all").
function Methods:match_term(term)
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
        for _, h in ipairs(self.order) do if glob_match(term, h) then out[h] = true end end
        for g in pairs(self.groups) do
            if glob_match(term, g) then for h in pairs(self:match_term(g)) do out[h] = true end end
        end
    end
    return out
end

-- "web:db:!web3", "all,&prod": union, intersection (&), exclusion (!).
-- Returns the host names in inventory order, and the terms that matched
-- nothing (for a warning).
function Methods:select(pattern)
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

-- --limit @FILE: one host name or pattern per line (# comments) -> the
-- pattern "a,b,c".  Any other value is returned as it is.
function M.limit_pattern(limit)
    if type(limit) ~= "string" or limit:sub(1, 1) ~= "@" then return limit end
    local path = limit:sub(2)
    local text, err = fs.read(path, source.MAX_BYTES)
    if not text then return nil, "--limit " .. err end
    local terms = {}
    for line in text:gmatch("[^\n]+") do
        local l = util.trim(line)
        if l ~= "" and l:sub(1, 1) ~= "#" then terms[#terms + 1] = l end
    end
    if #terms == 0 then return nil, "--limit " .. path .. ": the file names no host" end
    return table.concat(terms, ",")
end

return M
