-- load.checks: what the playbook loader's files (playbook.lua, play.lua,
-- step.lua, reuse.lua) share: the type checks of keyword values, a
-- step's label in messages, and pushing a block's vars and become
-- keywords down to its steps.
local yaml = require("cutover.core.yaml")
local expr = require("cutover.expr")
local util = require("cutover.util")
local actions = require("cutover.actions")

local C = {}

-- become keywords: on a play, a block (reaching its steps) or a step
C.BECOME_KEYS = { "become", "become_user", "become_method", "become_flags" }

-- Reuse: a step that brings in a steps file or a role (reuse.lua).
C.REUSE_KINDS = { "import_steps", "include_steps", "import_role", "include_role" }

function C.is_null(v) return v == yaml.null end

-- How messages name a step: by its name, its id, else its action.
function C.step_label(step)
    if type(step) ~= "table" then return "step" end
    local n = step.name
    if type(n) == "string" then return "step '" .. n .. "'" end
    if type(step.id) == "string" then return "step '" .. step.id .. "'" end
    for k in pairs(step) do
        if type(k) == "string" and actions.exists(k) then return "'" .. k .. "' step" end
    end
    return "step"
end

-- A keyword that takes one value or a list of them, as a list.
function C.as_list(v)
    if v == nil or C.is_null(v) then return {} end
    if type(v) == "table" then return v end
    return { v }
end

function C.is_str(v) return type(v) == "string" end
function C.is_bool(v) return type(v) == "boolean" end
function C.is_bool_or_expr(v) return type(v) == "boolean" or type(v) == "string" end
function C.is_count(v) return math.type(v) == "integer" and v >= 0 or expr.has_template(v) end
function C.is_delay(v) return type(v) == "number" and v >= 0 or expr.has_template(v) end
function C.is_name(v) return type(v) == "string" and v:match("^[%a_][%w_]*$") ~= nil end
function C.is_mapping(v) return type(v) == "table" and (not util.is_list(v) or next(v) == nil) end
function C.is_str_list(v)
    if type(v) == "string" then return true end
    if type(v) ~= "table" or not util.is_list(v) then return false end
    for _, x in ipairs(v) do if type(x) ~= "string" then return false end end
    return true
end

-- Merges vars into every action step under steps; a step's own values
-- win (a new table: the YAML as written, which the step digest hashes,
-- is not touched).  field: "vars" or "defaults".
function C.push_vars(steps, v, field)
    if not v or next(v) == nil then return end
    for _, s in ipairs(steps or {}) do
        if s.block then
            C.push_vars(s.block, v, field); C.push_vars(s.rescue, v, field); C.push_vars(s.always, v, field)
        else
            local merged = {}
            for k, x in pairs(v) do merged[k] = x end
            for k, x in pairs(s[field] or {}) do merged[k] = x end
            s[field] = merged
        end
    end
end

-- Gives every action step under steps the become keywords of the block
-- around it that it does not set itself.
function C.push_become(steps, from)
    for _, s in ipairs(steps or {}) do
        for _, k in ipairs(C.BECOME_KEYS) do
            if s[k] == nil then s[k] = from[k] end
        end
        if s.block then C.push_become(s.block, s); C.push_become(s.rescue, s); C.push_become(s.always, s) end
    end
end

return C
