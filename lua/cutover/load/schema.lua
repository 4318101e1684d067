-- load.schema: checks an action's arguments against the spec the action
-- declares (args, free_form, any_args, one_of).  normalize() runs at lint
-- time on the raw YAML value and skips values that are templates;
-- check() runs again on the rendered values just before the action.
local util = require("cutover.util")
local yaml_null = require("cutover.core.yaml").null

local M = {}

local function templated(v)
    return type(v) == "string" and v:find("{{", 1, true) ~= nil
end

local BOOL_WORDS = { ["true"] = true, yes = true, on = true,
                     ["false"] = false, no = false, off = false }

-- Returns the coerced value or nil, reason.
local function coerce(spec, v)
    local t = spec.type or "any"
    if t == "any" then return v end
    if t == "string" or t == "path" then
        if type(v) == "number" then v = tostring(v) end
        if type(v) ~= "string" then return nil, "must be text" end
        if t == "path" and v == "" then return nil, "must be a non-empty path" end
    elseif t == "int" then
        if type(v) == "string" and v:match("^%-?%d+$") then v = math.tointeger(tonumber(v)) end
        if math.type(v) ~= "integer" then return nil, "must be a whole number" end
    elseif t == "number" then
        -- every number argument is a count of seconds: NaN, infinity or
        -- a negative value would silently mean "no limit" or "no wait"
        if type(v) == "string" then v = tonumber(v) end
        if type(v) ~= "number" then return nil, "must be a number" end
        if v ~= v or v == math.huge or v == -math.huge then return nil, "must be a finite number" end
        if spec.positive and v <= 0 then return nil, "must be more than 0 seconds" end
        if v < 0 then return nil, "must be 0 or more" end
    elseif t == "bool" then
        if type(v) == "string" and BOOL_WORDS[v:lower()] ~= nil then v = BOOL_WORDS[v:lower()] end
        if type(v) ~= "boolean" then return nil, "must be true or false" end
    elseif t == "mode" then
        local m, err = util.parse_mode(v)
        if not m then return nil, (err:gsub("^mode ", "")) end
        v = m
    elseif t == "list" then
        if type(v) ~= "table" then
            if spec.scalar_ok and (type(v) == "string" or type(v) == "number" or type(v) == "boolean") then
                v = { v }
            else
                return nil, "must be a list"
            end
        elseif not util.is_list(v) then
            return nil, "must be a list"
        end
    elseif t == "dict" then
        if type(v) ~= "table" or (next(v) ~= nil and util.is_list(v)) then return nil, "must be a mapping" end
    end
    if spec.choices then
        local ok = false
        for _, c in ipairs(spec.choices) do if c == v then ok = true end end
        if not ok then
            return nil, "must be one of " .. table.concat(spec.choices, ", ") ..
                util.did_you_mean(tostring(v), spec.choices)
        end
    end
    return v
end

local function walk(action, raw, at_lint)
    local errs = {}
    local args = {}
    -- keys[i]: the argument errs[i] is about; suggested: names offered
    -- by "did you mean", which are then not reported missing as well
    local keys, suggested = {}, {}
    if raw == nil or raw == yaml_null then
        raw = {}
    elseif type(raw) ~= "table" then
        if action.free_form and (type(raw) == "string" or type(raw) == "number") then
            raw = { [action.free_form] = tostring(raw) }
        else
            return {}, { action.free_form and "takes text or a mapping of arguments"
                         or "takes a mapping of arguments" }
        end
    elseif next(raw) ~= nil and util.is_list(raw) then
        return {}, { "takes a mapping of arguments, not a list" }
    end
    local names = action.arg_names
    if not names then
        names = util.sorted_keys(action.args or {})
        action.arg_names = names
    end
    for k, v in pairs(raw) do
        local spec = action.args and action.args[k]
        if spec == nil and not action.any_args then
            local hint = util.did_you_mean(tostring(k), names)
            errs[#errs + 1] = "unknown argument '" .. tostring(k) .. "'" .. hint
            keys[#errs] = k
            local meant = hint:match("'(.-)'")
            if meant then suggested[meant] = true end
        elseif spec == nil then
            args[k] = v
        elseif v == yaml_null then
            -- `key:` with no value: as if absent
        elseif at_lint and templated(v) then
            args[k] = v
        else
            local c, why = coerce(spec, v)
            if c == nil and why then
                errs[#errs + 1] = "argument '" .. k .. "' " .. why
                keys[#errs] = k
            else
                args[k] = c
            end
        end
    end
    for _, k in ipairs(names) do
        local spec = action.args[k]
        if spec.required and args[k] == nil and not suggested[k] then
            errs[#errs + 1] = "missing required argument '" .. k .. "'"
        end
        if not at_lint and args[k] == nil and spec.default ~= nil then
            args[k] = spec.default
        end
    end
    for _, group in ipairs(action.one_of or {}) do
        local present = {}
        for _, k in ipairs(group) do if raw[k] ~= nil and raw[k] ~= yaml_null then present[#present + 1] = k end end
        local meant = false
        for _, k in ipairs(group) do meant = meant or suggested[k] == true end
        if #present == 0 and not meant then
            errs[#errs + 1] = "needs one of '" .. table.concat(group, "', '") .. "'"
        elseif #present > 1 then
            errs[#errs + 1] = "takes only one of '" .. table.concat(present, "' and '") .. "'"
        end
    end
    -- at lint, only when no value is a template (defaults are not applied
    -- there: validate must read a missing argument as its default)
    local has_template = false
    for _, v in pairs(args) do has_template = has_template or templated(v) end
    if action.validate and #errs == 0 and not (at_lint and has_template) then
        local e = action.validate(args)
        if e then errs[#errs + 1] = e end
    end
    return args, errs, keys
end

function M.normalize(action, raw) return walk(action, raw, true) end
function M.check(action, raw) return walk(action, raw, false) end

return M
