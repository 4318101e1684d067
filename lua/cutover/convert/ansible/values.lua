-- convert.ansible.values: values with their Jinja strings translated,
-- vars mappings, and the variables known to be booleans.
-- Part of the converter in init.lua: these are its methods.
local yaml = require("cutover.core.yaml")
local jinja = require("cutover.convert.jinja")
local Y = require("cutover.convert.yaml_out")
local common = require("cutover.convert.ansible.common")
local bad, ordered_keys, is_map_value = common.bad, common.ordered_keys, common.is_map_value

local C = {}

-- Jinja strings in a value translated.  Raises {convert = msg} for the
-- first part that cannot be; returns the ordered value.
function C:value(src, v)
    if type(v) == "string" then
        local out, err = jinja.text(v, self.jctx)
        if not out then error({ convert = err }, 0) end
        return out
    end
    if type(v) == "number" and math.type(v) == "float" then return v end
    if type(v) ~= "table" or v == yaml.null then return v end
    if is_map_value(src, v) then
        local m = Y.map()
        for _, k in ipairs(ordered_keys(src, v)) do m:put(k, self:value(src, v[k])) end
        return m
    end
    local l = {}
    for i, x in ipairs(v) do l[i] = self:value(src, x) end
    return l
end

-- Like value, but reports a problem (at `where`) instead of raising.
function C:try(fn, ...)
    local ok, out = pcall(fn, ...)
    if ok then return true, out end
    if type(out) == "table" and out.convert then return false, out.convert end
    error(out, 0)
end

-- A vars mapping: every value that converts is kept; one that does not
-- is left out and reported.
function C:vars(src, t, what)
    local m = Y.map()
    if t == nil or t == yaml.null then return m end
    if type(t) ~= "table" or not is_map_value(src, t) then bad(self:at(src, t) .. ": " .. (what or "vars") ..
        " must be a mapping") end
    for _, k in ipairs(ordered_keys(src, t)) do
        local v = t[k]
        if type(v) == "string" and v:match("^%$ANSIBLE_VAULT") or (type(v) == "table" and v.__ansible_vault) then
            self:report(self:at(src, t, k), "variable '" .. k ..
                "' is Ansible Vault data: left out (put it in cutover's vault)")
        else
            local ok, out = self:try(function() return self:value(src, v) end)
            if ok then m:put(k, out) else
                self:report(self:at(src, t, k), (what or "variable") .. " '" .. tostring(k) .. "': " .. out ..
                    ": left out")
            end
        end
    end
    return m
end

-- Names of variables whose every value in vars files and vars is a
-- boolean (for translating `when: flag` without a truthiness test).
function C:note_types(t)
    if type(t) ~= "table" then return end
    for k, v in pairs(t) do
        if type(k) == "string" then
            local b = type(v) == "boolean"
            if self.jctx.bools[k] == nil then self.jctx.bools[k] = b
            elseif not b then self.jctx.bools[k] = false end
        end
    end
end

return { methods = C }
