-- convert.ansible.common: small helpers the converter's parts share
-- (bad input, key order as written, mappings, module names, conditions).
local yaml = require("cutover.core.yaml")
local jinja = require("cutover.convert.jinja")

local M = {}

local function basename(p) return p:match("([^/]+)$") or p end
local function strip_fqcn(k)
    if type(k) ~= "string" then return k end
    return k:match("^ansible%.builtin%.(.+)$") or k:match("^ansible%.legacy%.(.+)$") or k
end

local function bad(msg) error({ bad_input = msg }, 0) end

local function pattern_lines(text)
    local lines = {}
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    return lines
end

-- The key order of mapping t as written in src.
local function ordered_keys(src, t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    local kp = src.keypos[t] or {}
    table.sort(keys, function(a, b)
        local pa, pb = kp[a] or 0, kp[b] or 0
        if pa ~= pb then return pa < pb end
        return tostring(a) < tostring(b)
    end)
    return keys
end

local function is_map_value(src, t)
    if type(t) ~= "table" or t == yaml.null then return false end
    if next(t) ~= nil then return t[1] == nil end
    local packed = src.pos[t]
    if not packed then return false end
    local line, col = yaml.unpack(packed)
    src.lines = src.lines or pattern_lines(src.text)
    local l = src.lines[line] or ""
    return l:sub(col, col) == "{"
end

local function cond_value(self, v)
    if type(v) == "boolean" then return v end
    if type(v) == "table" and v ~= yaml.null then
        local out = {}
        for i, c in ipairs(v) do out[i] = cond_value(self, c) end
        return out
    end
    local lua, err = jinja.condition(tostring(v), self.jctx)
    if not lua then error({ convert = err .. " in '" .. tostring(v) .. "'" }, 0) end
    return lua
end

M.basename, M.strip_fqcn, M.bad, M.pattern_lines = basename, strip_fqcn, bad, pattern_lines
M.ordered_keys, M.is_map_value, M.cond_value = ordered_keys, is_map_value, cond_value

return M
