-- docs: renders an action's own description (the same source for
-- `cutover doc` and docs/actions.md).
local actions = require("cutover.actions")
local util = require("cutover.util")

local M = {}

local function arg_line(name, spec)
    local bits = { spec.type or "any" }
    if spec.required then bits[#bits + 1] = "required" end
    if spec.default ~= nil then
        local d = spec.default
        if type(d) == "table" then d = table.concat(d, ", ") end
        bits[#bits + 1] = "default " .. tostring(d)
    end
    if spec.choices then bits[#bits + 1] = "one of " .. table.concat(spec.choices, "/") end
    return name, table.concat(bits, ", "), spec.doc or ""
end

function M.action(name, fmt)
    local a = actions.get(name)
    local out = {}
    local function add(s) out[#out + 1] = s end
    local desc = util.trim(a.description or "")
    if fmt == "markdown" then
        add("## " .. name .. "\n\n" .. a.summary .. ".\n\n" .. desc .. "\n")
        if a.free_form then add("\nText form: `" .. name .. ": TEXT` sets `" .. a.free_form .. "`.\n") end
        if a.one_of then
            for _, g in ipairs(a.one_of) do add("\nExactly one of `" .. table.concat(g, "`, `") .. "`.\n") end
        end
        add("\n| argument | type | meaning |\n|---|---|---|\n")
        for _, k in ipairs(util.sorted_keys(a.args or {})) do
            local n, t, d = arg_line(k, a.args[k])
            add("| `" .. n .. "` | " .. t .. " | " .. d .. " |\n")
        end
        if a.any_args then add("| *any name* | any | a variable to set |\n") end
        add("\nReturns:\n\n")
        for _, k in ipairs(util.sorted_keys(a.returns or {})) do
            add("- `" .. k .. "`: " .. a.returns[k] .. "\n")
        end
        add("\nCheck mode: " .. a.check_mode .. "\n")
        return table.concat(out)
    end
    add(name .. ": " .. a.summary .. "\n\n" .. desc .. "\n")
    if a.free_form then add("\nText form: '" .. name .. ": TEXT' sets '" .. a.free_form .. "'.\n") end
    for _, g in ipairs(a.one_of or {}) do add("Exactly one of: " .. table.concat(g, ", ") .. ".\n") end
    add("\nArguments:\n")
    for _, k in ipairs(util.sorted_keys(a.args or {})) do
        local n, t, d = arg_line(k, a.args[k])
        add(string.format("  %-10s %s\n  %-10s   %s\n", n, d, "", t))
    end
    if a.any_args then add("  (any name)  a variable to set\n") end
    add("\nReturns:\n")
    for _, k in ipairs(util.sorted_keys(a.returns or {})) do
        add(string.format("  %-16s %s\n", k, a.returns[k]))
    end
    add("\nCheck mode:\n  " .. a.check_mode .. "\n")
    return table.concat(out)
end

return M
