-- plan.read: a plan file read back, its shape checked field by field
-- before anything reads it.
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local util = require("cutover.util")
local common = require("cutover.plan.common")

local M = {}

-- The shape of a plan file: each field's type, checked before anything
-- reads it, so that an edited or damaged plan is refused as bad input
-- (exit 2) and never reaches the code as a number where a table was
-- expected.  "?" marks a field that may be absent.
local function is_array(v)
    if type(v) ~= "table" then return false end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n == #v
end

local SHAPE_FILE = { path = "string", sha256 = "string" }
local SHAPE_STEP = {
    ["play?"] = "number", id = "string", ["name?"] = "string", ["action?"] = "string", ["item?"] = "string",
    status = "string", ["changed?"] = "boolean", ["diff?"] = "string", ["msg?"] = "string",
    sha256 = "string", fields = { map = "string" }, ["at_apply?"] = "boolean",
}
local SHAPE = {
    v = "number", body_sha256 = "string", ["cutover?"] = "string", ["created?"] = "string", ["user?"] = "string",
    playbook = { fields = { path = "string", sha256 = "string" } },
    ["inventory?"] = { fields = { path = "string", sha256 = "string", files = { list = { fields = SHAPE_FILE } } } },
    extra_vars = { fields = { sha256 = "string", ["values?"] = { map = "any" }, ["args?"] = { list = "string" } } },
    ["options?"] = { fields = { ["limit?"] = "string", ["tags?"] = { list = "string" },
                                ["skip_tags?"] = { list = "string" } } },
    ["files?"] = { list = { fields = SHAPE_FILE } },
    ["check_exit_code?"] = "number",
    hosts = { list = { fields = {
        name = "string", facts_sha256 = "string", ["changes?"] = "number", ["at_apply?"] = "number",
        steps = { list = { fields = SHAPE_STEP } },
    } } },
    ["totals?"] = { map = "number" },
}

local function kind_of(shape)
    if type(shape) == "string" then return shape == "number" and "a number" or shape == "boolean"
        and "true or false" or shape == "any" and "a value" or "text" end
    if shape.list then return "a list" end
    return "a mapping"
end

-- Returns nil | the first problem ("'hosts[1].name' must be text").
local function check_shape(v, shape, where)
    if type(shape) == "string" then
        if shape == "any" or type(v) == shape then return nil end
        return "'" .. where .. "' must be " .. kind_of(shape)
    end
    if type(v) ~= "table" or (shape.list and not is_array(v))
            or (not shape.list and next(v) ~= nil and is_array(v)) then
        return "'" .. where .. "' must be " .. kind_of(shape)
    end
    if shape.list then
        for i, x in ipairs(v) do
            local e = check_shape(x, shape.list, where .. "[" .. i .. "]")
            if e then return e end
        end
    elseif shape.map then
        for _, k in ipairs(util.sorted_keys(v)) do
            if type(k) ~= "string" then return "'" .. where .. "' must be a mapping" end
            local e = check_shape(v[k], shape.map, where .. "." .. k)
            if e then return e end
        end
    else
        for _, spec in ipairs(util.sorted_keys(shape.fields)) do
            local name, optional = spec:gsub("%?$", "")
            local x = v[name]
            local path = where == "" and name or (where .. "." .. name)
            if x == nil then
                if optional == 0 then return "'" .. path .. "' must be " .. kind_of(shape.fields[spec]) end
            else
                local e = check_shape(x, shape.fields[spec], path)
                if e then return e end
            end
        end
    end
    return nil
end

-- Reads a plan file.  Returns plan, text | nil, message.
function M.read(path)
    local text, err = fs.read(path)
    if not text then return nil, err end
    local plan = json.decode(text)
    if type(plan) ~= "table" or type(plan.v) ~= "number" or type(plan.hosts) ~= "table"
        or type(plan.playbook) ~= "table" then
        return nil, path .. ": not a cutover plan"
    end
    if plan.v > common.FORMAT_VERSION then
        return nil, string.format("%s: plan format version %s is newer than this cutover understands (%d); " ..
            "use the cutover that wrote it (%s)", path, tostring(plan.v), common.FORMAT_VERSION, tostring(plan.cutover))
    end
    local bad = check_shape(plan, { fields = SHAPE }, "")
    if bad then return nil, path .. ": not a valid cutover plan: " .. bad end
    return plan, text
end

return M
