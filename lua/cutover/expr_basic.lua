-- expr_basic: the basic helpers of playbook expressions (defined, var,
-- len, join, split, lines, contains, keys, trim, startswith, endswith,
-- to_json) and arg, the argument check every helper uses.  expr.lua puts
-- them in the sandbox's table of names looked up before variables.
local pattern = require("cutover.core.pattern")
local json = require("cutover.core.json")
local yaml_null = require("cutover.core.yaml").null

local M = {}

-- Raises "NAME: argument I must be WANT, got TYPE" unless type(v) is one
-- of the given types (numbers count as text where text is allowed).
local function arg(fname, i, v, want, ...)
    local tv = type(v)
    for _, t in ipairs({ ... }) do if tv == t then return end end
    if v == yaml_null then tv = "null" end
    error(fname .. ": argument " .. i .. " must be " .. want .. ", got " .. tv, 0)
end
M.arg = arg

-- The helpers that need no context.
local B = {}

function B.len(v)
    if v == yaml_null then return 0 end
    arg("len", 1, v, "text or a list", "table", "string", "number")
    if type(v) == "table" then
        local n = 0
        for _ in pairs(v) do n = n + 1 end
        return n
    end
    return #tostring(v)
end

function B.join(list, sep)
    arg("join", 1, list, "a list", "table")
    if sep ~= nil then arg("join", 2, sep, "text", "string", "number") end
    local parts = {}
    for i, v in ipairs(list) do parts[i] = tostring(v) end
    return table.concat(parts, sep or ",")
end

function B.split(s, sep)
    arg("split", 1, s, "text", "string", "number")
    if sep ~= nil then arg("split", 2, sep, "text", "string", "number") end
    if sep == "" then error("split: the separator is empty", 0) end
    s = tostring(s)
    local out = {}
    sep = sep or ","
    local start = 1
    while true do
        local i, j = s:find(sep, start, true)
        if not i then out[#out + 1] = s:sub(start); break end
        out[#out + 1] = s:sub(start, i - 1)
        start = j + 1
    end
    return out
end

function B.lines(s)
    arg("lines", 1, s, "text", "string", "number")
    return pattern.lines(tostring(s))
end

function B.contains(hay, needle)
    arg("contains", 1, hay, "text or a list", "table", "string")
    if type(hay) == "string" then return hay:find(needle, 1, true) ~= nil end
    for _, v in pairs(hay) do if v == needle then return true end end
    return false
end

function B.keys(t)
    arg("keys", 1, t, "a mapping", "table")
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
    return out
end

function B.trim(s)
    arg("trim", 1, s, "text", "string", "number")
    s = tostring(s)
    -- linear: "%s+$" alone would try every run of spaces to the end
    local first = s:find("%S")
    if not first then return "" end
    return s:sub(first, s:match("^.*()%S"))
end

function B.startswith(s, p)
    arg("startswith", 1, s, "text", "string")
    arg("startswith", 2, p, "text", "string")
    return s:sub(1, #p) == p
end
function B.endswith(s, p)
    arg("endswith", 1, s, "text", "string")
    arg("endswith", 2, p, "text", "string")
    return p == "" or s:sub(-#p) == p
end

-- Adds the helpers to table helpers.  c.scope() gives the scope of the
-- expression being evaluated, c.thaw(v) a plain copy of a read-only view.
function M.add(helpers, c)
    for k, f in pairs(B) do helpers[k] = f end

    -- defined("name") -> true when the variable exists
    function helpers.defined(name)
        local current = c.scope()
        local ok, v = pcall(current.get, current, name)
        return ok and v ~= nil
    end

    -- var("name", default) -> the variable, or default when it does not exist
    function helpers.var(name, default)
        local v = c.scope():get(name)
        if v == nil then return default end
        return v
    end

    function helpers.to_json(v) return json.encode(c.thaw(v)) end
end

return M
