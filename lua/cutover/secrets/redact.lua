-- secrets.redact: masks secret values in everything cutover prints.
--
-- Every value read from the vault during a run is registered here
-- (cutover.secrets.vault does it when it decrypts).  Before any text reaches
-- stdout or stderr (output.lua, cli.lua), redact.text replaces each
-- occurrence of a registered value, and of the encodings cutover itself
-- produces of it, with "********":
--   the raw value; util.sh_quote(value); its cmd.exe command-line forms
--   (windows.cmdline.encodings); its JSON string escaping without the
--   quotes, once and twice (a JSON text inside a JSON string, such as a
--   loop item label); the JSON escaping of the quoted forms; and the
--   same for each line of a multi-line value (the text reporter indents
--   each line, and diffs prefix them), without a trailing "\r"; and its
--   base64 (the b64encode expression helper).
-- Occurrences that overlap are merged and masked as one.
--
-- Short values are masked too, even one character long: a leak is worse
-- than unreadable output, so a vault holding "a" makes every "a" in the
-- output "********".  Blank lines of a multi-line value are not
-- registered (they would match everywhere and hide nothing).
--
-- Cost: nothing when no secret is registered (one comparison); otherwise
-- one plain string.find per registered form and output line, in C, and
-- work proportional to the matches only when something matches.
local json = require("cutover.core.json")
local util = require("cutover.util")

local M = {}

M.MASK = "********"

local find, sub = string.find, string.sub

local registered = {}  -- value -> true
local needles = {}     -- forms to look for, longest first
local known = {}       -- needle -> true
local origin = {}      -- needle -> list of the registered values it is a form of
local count = 0
local current          -- the value whose forms add() is adding

local function json_inner(s)
    return sub(json.encode(s), 2, -2)
end

local function add(s)
    if s == "" then return end
    if not known[s] then
        known[s] = true
        needles[#needles + 1] = s
        origin[s] = {}
    end
    local o = origin[s]
    if o[#o] ~= current then o[#o + 1] = current end
end

local function add_forms(s)
    local quoted = util.sh_quote(s)
    local j = json_inner(s)
    add(s)
    add(quoted)
    add(j)
    add(json_inner(j))
    add(json_inner(quoted))
    -- what the b64encode expression helper gives (docs/expressions.md)
    local b64 = require("cutover.core.vault").to_base64(s)
    add(b64)
    add(json_inner(b64))
    -- the forms a cmd.exe command line gives it (windows.cmdline), and
    -- their JSON escaping
    for _, form in ipairs(require("cutover.windows.cmdline").encodings(s)) do
        add(form)
        add(json_inner(form))
    end
end

-- Registers a secret value (text; numbers are taken as their text).
function M.register(value)
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" or value == "" or registered[value] then return end
    registered[value] = true
    current = value
    add_forms(value)
    if find(value, "\n", 1, true) then
        for line in value:gmatch("[^\n]+") do
            local bare = line:gsub("\r$", "")
            if find(bare, "%S") then
                add_forms(bare)
                if bare ~= line then add_forms(line) end
            end
        end
    end
    table.sort(needles, function(a, b) return #a > #b end)
    count = #needles
end

-- True when at least one secret is registered.
function M.active() return count > 0 end

-- Forgets every registered value (tests).
function M.reset()
    registered, needles, known, origin, count = {}, {}, {}, {}, 0
end

-- The registered values that occur in s (in any of their forms), sorted:
-- what a sealed journal row must bring back for masking on resume.
function M.found_in(s)
    if count == 0 or type(s) ~= "string" then return {} end
    local set = {}
    for i = 1, count do
        local n = needles[i]
        if find(s, n, 1, true) then
            for _, v in ipairs(origin[n]) do set[v] = true end
        end
    end
    local out = {}
    for v in pairs(set) do out[#out + 1] = v end
    table.sort(out)
    return out
end

-- Spans sorted by start, overlapping or touching ones merged.
local function merge(list)
    table.sort(list, function(x, y) return x[1] < y[1] end)
    local merged = {}
    for _, span in ipairs(list) do
        local last = merged[#merged]
        if last and span[1] <= last[2] + 1 then
            if span[2] > last[2] then last[2] = span[2] end
        else
            merged[#merged + 1] = { span[1], span[2] }
        end
    end
    return merged
end

-- Every match of every needle in s: a list of { first, last }, or nil
-- when nothing matches.
local function matches(s)
    local list
    for i = 1, count do
        local n = needles[i]
        local a, b = find(s, n, 1, true)
        while a do
            list = list or {}
            list[#list + 1] = { a, b }
            a, b = find(s, n, a + 1, true)
        end
    end
    return list
end

local function apply(s, spans)
    local out, pos = {}, 1
    for _, span in ipairs(spans) do
        out[#out + 1] = sub(s, pos, span[1] - 1)
        out[#out + 1] = M.MASK
        pos = span[2] + 1
    end
    out[#out + 1] = sub(s, pos)
    return table.concat(out)
end

-- s with every registered secret (and encoding) masked.  Non-strings
-- are returned as they are.
function M.text(s)
    if count == 0 or type(s) ~= "string" then return s end
    local list = matches(s)
    if not list then return s end
    return apply(s, merge(list))
end

-- A copy of a value (for a JSON event) with every string, key and
-- number whose text holds a secret masked.  Metatables (__jsontype) are
-- kept.  Returns v itself when nothing is registered.
function M.value(v, depth)
    if count == 0 then return v end
    local tv = type(v)
    if tv == "string" then return M.text(v) end
    if tv == "number" then
        local s = tostring(v)
        if M.text(s) ~= s then return M.MASK end
        return v
    end
    depth = depth or 0
    if tv ~= "table" or depth > 64 then return v end
    local out = {}
    for k, x in pairs(v) do
        if type(k) == "string" then k = M.text(k) end
        out[k] = M.value(x, depth + 1)
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then setmetatable(out, mt) end
    return out
end

-- The string tokens of a compact JSON text: list of { first, last,
-- escapes } where first..last is the inside of the quotes and escapes
-- lists { start, finish } of each escape sequence in it.
local function json_strings(s)
    local strings, pos = {}, 1
    while true do
        local q = find(s, '"', pos, true)
        if not q then break end
        local escapes, j = {}, q + 1
        while true do
            local k = find(s, '["\\]', j)
            if not k then return strings end  -- unterminated: not ours
            if sub(s, k, k) == '"' then
                strings[#strings + 1] = { q + 1, k - 1, escapes }
                pos = k + 1
                break
            end
            local len = sub(s, k + 1, k + 1) == "u" and 6 or 2
            escapes[#escapes + 1] = { k, k + len - 1 }
            j = k + len
        end
    end
    return strings
end

-- A JSON text (one encoded event) with every secret masked inside its
-- strings, and always still valid JSON.  An encoded secret starts on a
-- character of the decoded text, so a match that starts inside an escape
-- sequence ("nb" in "\\nb") is not one and is left alone; a match that
-- ends inside one is widened to its end, and a match is kept to the
-- inside of one string.  A match in the structure is left alone too:
-- keys and numbers holding a secret were masked by M.value before
-- encoding.
function M.json_line(s)
    if count == 0 then return s end
    local list = matches(s)
    if not list then return s end
    local strings = json_strings(s)
    local kept = {}
    for _, span in ipairs(list) do
        for _, str in ipairs(strings) do
            local a, b = math.max(span[1], str[1]), math.min(span[2], str[2])
            local real = a <= b
            if real then
                for _, e in ipairs(str[3]) do
                    if a > e[1] and a <= e[2] then real = false; break end
                    if b >= e[1] and b < e[2] then b = e[2] end
                end
            end
            if real then kept[#kept + 1] = { a, b } end
        end
    end
    if #kept == 0 then return s end
    return apply(s, merge(kept))
end

return M
