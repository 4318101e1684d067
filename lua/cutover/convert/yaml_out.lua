-- convert.yaml_out: writes YAML for the converter, keeping the order
-- of mapping keys (M.map) so the result reads like its source.  Text
-- that YAML 1.1 would read as something else (yes, 0644, null, a
-- number) is quoted.
local yaml = require("cutover.core.yaml")

local M = {}

local OMap = {}
OMap.__index = OMap

-- An ordered mapping: m:put(k, v) appends (or replaces) a key.
function M.map()
    return setmetatable({ _keys = {}, _vals = {} }, OMap)
end

function OMap:put(k, v)
    if v == nil then return self end
    if self._vals[k] == nil then self._keys[#self._keys + 1] = k end
    self._vals[k] = v
    return self
end

function OMap:get(k) return self._vals[k] end

function M.is_map(t) return getmetatable(t) == OMap end

-- An empty mapping that is written as {} (an empty Lua table is a list)
function M.empty_map() return M.map() end

local SPECIAL = {}
for w in ([[y Y yes Yes YES n N no No NO true True TRUE false False FALSE on On ON
    off Off OFF null Null NULL ~ .inf .Inf .INF .nan .NaN .NAN]]):gmatch("%S+") do SPECIAL[w] = true end

local function plain_ok(s)
    if s == "" or SPECIAL[s] then return false end
    if not s:match("^[%w_/%.][%w_ /%.%-:=,@+]*$") then return false end
    if s:match("%s$") or s:find(": ", 1, true) or s:find(" #", 1, true) or s:match(":$") then return false end
    if s:match("^[%d%.%-+]") and (tonumber(s) or s:match("^[%d_:%.%-+eE]+$")) then return false end
    if s:match("^%.") and tonumber(s) then return false end
    return true
end

local function quote(s)
    return '"' .. s:gsub('[%c"\\\127]', function(c)
        local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
        return named[c] or string.format("\\x%02x", c:byte())
    end) .. '"'
end

local function scalar(v)
    local t = type(v)
    if v == nil or v == yaml.null then return "null" end
    if t == "boolean" then return tostring(v) end
    if t == "number" then
        if math.type(v) == "integer" then return tostring(v) end
        if v ~= v then return ".nan" end
        if v == math.huge then return ".inf" end
        if v == -math.huge then return "-.inf" end
        local s = string.format("%.17g", v)
        if not s:find("[%.e]") then s = s .. ".0" end
        return s
    end
    local s = tostring(v)
    if plain_ok(s) then return s end
    return quote(s)
end
M.scalar = scalar

local function block_text(s, indent)
    -- a literal block for multi-line text that round-trips exactly
    if not s:find("\n", 1, true) or s:find("[\r\t%z]") or s:match("^[ \n]") then return nil end
    if not s:match("\n$") or s:match("\n\n$") then return nil end
    for line in s:gmatch("([^\n]*)\n") do
        if line:match(" $") or line:find("[%c\127]") then return nil end
    end
    local pad = string.rep(" ", indent)
    local lines = {}
    for line in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = line == "" and "" or pad .. line end
    return "|\n" .. table.concat(lines, "\n")
end

local function key_text(k)
    if type(k) == "string" and k:match("^[%a_][%w_%-%.]*$") and not SPECIAL[k] then return k end
    return scalar(k)
end

local emit

local function is_empty(v)
    if M.is_map(v) then return #v._keys == 0 end
    return type(v) == "table" and v ~= yaml.null and next(v) == nil
end

-- Writes value v at indent into out (a list of lines).  `lead` is the
-- text that precedes it on its first line ("key:" or "-").
emit = function(out, lead, v, indent)
    local pad = string.rep(" ", indent)
    if M.is_map(v) then
        if #v._keys == 0 then out[#out + 1] = lead .. " {}"; return end
        if lead:match("^%s*%-$") then
            -- "- key: value" with the rest of the mapping aligned under it
            local first = true
            for _, k in ipairs(v._keys) do
                local l = first and (lead .. " " .. key_text(k) .. ":") or (pad .. key_text(k) .. ":")
                emit(out, l, v._vals[k], indent + 2)
                first = false
            end
            return
        end
        out[#out + 1] = lead
        for _, k in ipairs(v._keys) do
            emit(out, pad .. key_text(k) .. ":", v._vals[k], indent + 2)
        end
        return
    end
    if type(v) == "table" and v ~= yaml.null then
        if is_empty(v) then out[#out + 1] = lead .. " []"; return end
        out[#out + 1] = lead
        for _, x in ipairs(v) do
            emit(out, pad .. "-", x, indent + 2)
        end
        return
    end
    if type(v) == "string" then
        local b = block_text(v, indent)
        if b then out[#out + 1] = lead .. " " .. b; return end
    end
    out[#out + 1] = lead .. " " .. scalar(v)
end

-- A document: a list (of plays or steps) or a mapping (vars).
function M.dump(v, header)
    local out = {}
    if header then out[#out + 1] = header end
    if M.is_map(v) then
        if #v._keys == 0 then out[#out + 1] = "{}" end
        for _, k in ipairs(v._keys) do emit(out, key_text(k) .. ":", v._vals[k], 2) end
    elseif type(v) == "table" and next(v) == nil then
        out[#out + 1] = "[]"
    else
        for _, x in ipairs(v) do emit(out, "-", x, 2) end
    end
    return table.concat(out, "\n") .. "\n"
end

return M
