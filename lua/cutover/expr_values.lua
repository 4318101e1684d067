-- expr_values: the text, data, version and address helpers of playbook
-- expressions (regex_search, regex_replace, lower, upper, from_json,
-- to_yaml, b64encode, b64decode, basename, dirname, version_compare,
-- ipaddr); expr_helpers.lua builds them into each sandbox's helper table
-- (V.add).  Pattern matching goes through core/pattern.c, which charges
-- its steps to the sandbox's budget.
local pattern = require("cutover.core.pattern")
local json = require("cutover.core.json")
local vault = require("cutover.core.vault")
local yaml_null = require("cutover.core.yaml").null
local sorted_keys = require("cutover.expr_lists").sorted_keys

local V = {}

-- Regular-expression syntax Lua patterns do not have: raises a message
-- naming what to write instead (also used by lineinfile and blockinfile).
local REGEX_CLASSES = { d = "%d", D = "%D", w = "%w", W = "%W", s = "%s", S = "%S",
                        b = "%f[%w] (word start) or %f[%W] (word end)", n = "\\n", t = "\\t" }
function V.check_lua_pattern(fname, p)
    local i = 1
    while i <= #p do
        local c = p:sub(i, i)
        if c == "%" then
            i = i + 2
        elseif c == "\\" then
            local n = p:sub(i + 1, i + 1)
            local instead = REGEX_CLASSES[n] or ("%" .. n)
            error(fname .. ": '\\" .. n .. "' is regular-expression syntax; these are Lua patterns: write '" ..
                  instead .. "'", 0)
        elseif c == "|" then
            error(fname .. ": '|' (alternation) does not exist in Lua patterns: test each alternative " ..
                  "(any({...}, \"p -> regex_search(s, p)\")) or use a set such as '[ab]'", 0)
        elseif c == "(" and p:sub(i + 1, i + 1) == "?" then
            error(fname .. ": '(?' groups are regular-expression syntax; Lua patterns have plain captures '(...)'", 0)
        elseif c == "{" and p:sub(i):match("^{%d+,?%d*}") then
            error(fname .. ": the repeat count '" .. p:sub(i):match("^{%d+,?%d*}") ..
                  "' is regular-expression syntax; in a Lua pattern repeat the item ('%d%d%d' for '\\d{3}')", 0)
        elseif (c == "*" or c == "+") and p:sub(i + 1, i + 1) == "?" then
            error(fname .. ": '" .. c .. "?' (lazy repeat) is regular-expression syntax; write '-' " ..
                  "(as in '.-')", 0)
        elseif c == "[" then
            -- a set: skip to its ']' (a ']' first is literal)
            local j = i + 1
            if p:sub(j, j) == "^" then j = j + 1 end
            if p:sub(j, j) == "]" then j = j + 1 end
            while j <= #p and p:sub(j, j) ~= "]" do
                local d = p:sub(j, j)
                if d == "%" then j = j + 1
                elseif d == "\\" then
                    local n = p:sub(j + 1, j + 1)
                    error(fname .. ": '\\" .. n .. "' is regular-expression syntax; these are Lua patterns: write '" ..
                          (REGEX_CLASSES[n] or ("%" .. n)) .. "'", 0)
                end
                j = j + 1
            end
            i = j + 1
        else
            i = i + 1
        end
    end
end

local check_lua_pattern = V.check_lua_pattern

-- YAML text, block style, keys sorted; text is always quoted (JSON
-- quoting is valid YAML), so "no" or "1.0" stay text when read back.
local function yaml_text(v, indent, out, depth)
    if depth > 64 then error("to_yaml: nested more than 64 deep", 0) end
    local pad = string.rep("  ", indent)
    if type(v) == "table" and v ~= yaml_null then
        if next(v) == nil then out[#out + 1] = (#out > 0 and "" or "") .. "{}"; return end
        local n = #v
        local is_list = n > 0
        if is_list then for k in pairs(v) do if math.type(k) ~= "integer" or k < 1 or
            k > n then is_list = false end end end
        local items = {}
        if is_list then
            for i = 1, n do items[i] = { "- ", v[i] } end
        else
            for _, k in ipairs(sorted_keys(v)) do items[#items + 1] = { json.encode(tostring(k)) .. ":", v[k] } end
        end
        for _, it in ipairs(items) do
            local x = it[2]
            if type(x) == "table" and x ~= yaml_null and next(x) ~= nil then
                out[#out + 1] = pad .. it[1]:gsub(" $", "") .. "\n"
                yaml_text(x, indent + 1, out, depth + 1)
            else
                local sub = {}
                yaml_text(x, 0, sub, depth + 1)
                out[#out + 1] = pad .. it[1]:gsub(" $", "") .. " " .. table.concat(sub) .. "\n"
            end
        end
        return
    end
    if v == yaml_null or v == nil then out[#out + 1] = "null"
    elseif type(v) == "boolean" then out[#out + 1] = tostring(v)
    elseif type(v) == "number" then
        if v ~= v then out[#out + 1] = ".nan"
        elseif v == math.huge then out[#out + 1] = ".inf"
        elseif v == -math.huge then out[#out + 1] = "-.inf"
        else out[#out + 1] = json.encode(v) end
    elseif type(v) == "string" then out[#out + 1] = json.encode(v)
    else error("to_yaml: a " .. type(v) .. " is not data", 0) end
end

-- Debian version order (dpkg's): [epoch:]upstream[-revision]
-- (cutover.debversion, shared with the apt action).
local debversion = require("cutover.debversion")
local function parse_version(fname, v)
    if type(v) == "number" then v = tostring(v) end
    if type(v) ~= "string" then error(fname .. ": a version must be text, got " .. type(v), 0) end
    local ok, why = debversion.split(v)
    if not ok then error(fname .. ": " .. (why == "the version is empty" and why or ("bad version '" .. v ..
        "': " .. why)), 0) end
    return v
end
local OPS = {
    ["<"] = function(c) return c < 0 end, lt = function(c) return c < 0 end,
    ["<="] = function(c) return c <= 0 end, le = function(c) return c <= 0 end,
    ["=="] = function(c) return c == 0 end, eq = function(c) return c == 0 end,
    ["="] = function(c) return c == 0 end,
    ["~="] = function(c) return c ~= 0 end, ["!="] = function(c) return c ~= 0 end,
    ne = function(c) return c ~= 0 end,
    [">="] = function(c) return c >= 0 end, ge = function(c) return c >= 0 end,
    [">"] = function(c) return c > 0 end, gt = function(c) return c > 0 end,
}

-- IPv4 and IPv6 addresses, with an optional /prefix.
local function parse_ipv4(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then return nil end
    local bytes = {}
    for i, x in ipairs({ a, b, c, d }) do
        if #x > 3 or (#x > 1 and x:sub(1, 1) == "0") then return nil end
        local n = tonumber(x)
        if n > 255 then return nil end
        bytes[i] = n
    end
    return bytes
end
local function parse_ipv6(s)
    if s:find("[^%x:.]") or #s > 45 then return nil end
    local head, tail = s:match("^(.-)::(.*)$")
    local function groups(part)
        local out = {}
        if part == "" then return out end
        for g in (part .. ":"):gmatch("([^:]*):") do
            if g:find("%.") then
                local v4 = parse_ipv4(g)
                if not v4 then return nil end
                out[#out + 1] = v4[1] * 256 + v4[2]
                out[#out + 1] = v4[3] * 256 + v4[4]
            else
                if g == "" or #g > 4 then return nil end
                out[#out + 1] = tonumber(g, 16)
            end
        end
        return out
    end
    local words
    if head then
        if tail:find("::", 1, true) then return nil end
        local h, t = groups(head), groups(tail)
        if not h or not t or #h + #t > 7 then return nil end
        words = h
        for _ = 1, 8 - #h - #t do words[#words + 1] = 0 end
        for _, w in ipairs(t) do words[#words + 1] = w end
    else
        words = groups(s)
        if not words or #words ~= 8 then return nil end
    end
    local bytes = {}
    for i, w in ipairs(words) do bytes[2 * i - 1] = w // 256; bytes[2 * i] = w % 256 end
    return bytes
end
local function ip_text(bytes)
    if #bytes == 4 then return table.concat(bytes, ".") end
    local w = {}
    for i = 1, 8 do w[i] = bytes[2 * i - 1] * 256 + bytes[2 * i] end
    -- the longest run of two or more zero words becomes "::"
    local best, bestlen, i = nil, 1, 1
    while i <= 8 do
        if w[i] == 0 then
            local j = i
            while j <= 8 and w[j] == 0 do j = j + 1 end
            if j - i > bestlen then best, bestlen = i, j - i end
            i = j
        else i = i + 1 end
    end
    local parts = {}
    for k = 1, 8 do parts[k] = string.format("%x", w[k]) end
    if not best then return table.concat(parts, ":") end
    return table.concat(parts, ":", 1, best - 1) .. "::" .. table.concat(parts, ":", best + bestlen, 8)
end
local function masked(bytes, prefix)
    local out = {}
    for i, b in ipairs(bytes) do
        local bits = math.max(0, math.min(8, prefix - (i - 1) * 8))
        local keep = 256 - (1 << (8 - bits))
        out[i] = b & keep
    end
    return out
end
local IP_QUERIES = { address = true, prefix = true, network = true, netmask = true,
                     version = true, cidr = true }


-- regex_search, regex_replace, lower, upper, from_json
local function add_text(H, c)
    local arg = c.arg
    -- regex_search(s, p): the first match of Lua pattern p in s (its
    -- capture when p has one, a list of captures when several), or nil.
    function H.regex_search(s, p)
        arg("regex_search", 1, s, "text", "string", "number")
        arg("regex_search", 2, p, "a Lua pattern", "string")
        check_lua_pattern("regex_search", p)
        local r = { pcall(pattern.find, tostring(s), p) }
        if not r[1] then error("regex_search: " .. tostring(r[2]):gsub("^.-:%d+: ", ""), 0) end
        table.remove(r, 1)
        if r[1] == nil then return nil end
        if #r == 2 then return tostring(s):sub(r[1], r[2]) end
        if #r == 3 then return r[3] end
        return { table.unpack(r, 3) }
    end

    -- regex_replace(s, p, r [, n]): s with matches of p replaced by r
    -- (%1 is the first capture, %0 the whole match), at most n times.
    function H.regex_replace(s, p, r, n)
        arg("regex_replace", 1, s, "text", "string", "number")
        arg("regex_replace", 2, p, "a Lua pattern", "string")
        arg("regex_replace", 3, r, "text", "string", "number")
        if n ~= nil then arg("regex_replace", 4, n, "a number", "number") end
        check_lua_pattern("regex_replace", p)
        local bad = tostring(r):match("\\(%d)")
        if bad then
            error("regex_replace: '\\" .. bad .. "' in the replacement is regular-expression syntax; write '%" ..
                  bad .. "'", 0)
        end
        local ok, v = pcall(pattern.gsub, tostring(s), p, tostring(r), n)
        if not ok then error("regex_replace: " .. tostring(v):gsub("^.-:%d+: ", ""), 0) end
        return v
    end

    function H.lower(s)
        arg("lower", 1, s, "text", "string", "number")
        return tostring(s):lower()
    end
    function H.upper(s)
        arg("upper", 1, s, "text", "string", "number")
        return tostring(s):upper()
    end

    function H.from_json(s)
        arg("from_json", 1, s, "text", "string")
        local v, err = json.decode(s)
        if v == nil and err then error("from_json: not JSON (" .. err .. ")", 0) end
        return v
    end
end

-- to_yaml, b64encode, b64decode, basename, dirname
local function add_data(H, c)
    local arg, thaw = c.arg, c.thaw
    function H.to_yaml(v)
        local out = {}
        v = thaw(v)
        yaml_text(v, 0, out, 0)
        local s = table.concat(out)
        if s:sub(-1) ~= "\n" then s = s .. "\n" end
        return s
    end

    function H.b64encode(s)
        arg("b64encode", 1, s, "text", "string", "number")
        return vault.to_base64(tostring(s))
    end
    function H.b64decode(s)
        arg("b64decode", 1, s, "text", "string")
        local v = vault.from_base64((s:gsub("%s", "")))
        if v == nil then error("b64decode: not valid base64", 0) end
        return v
    end

    -- basename/dirname: '/' and '\' both separate (Windows paths too).
    function H.basename(p)
        arg("basename", 1, p, "a path", "string")
        return p:match("([^/\\]*)$")
    end
    function H.dirname(p)
        arg("dirname", 1, p, "a path", "string")
        local d = p:match("^(.*)[/\\][^/\\]*$")
        if d == nil then return "" end
        if d == "" then return p:sub(1, 1) end
        return d
    end
end

-- version_compare, ipaddr
local function add_versions_and_addresses(H)
    -- version_compare(a, b) -> -1 | 0 | 1; version_compare(a, op, b) -> bool
    function H.version_compare(a, op, b)
        if b == nil then b, op = op, nil end
        local c = debversion.compare(parse_version("version_compare", a), parse_version("version_compare", b))
        if op == nil then return c end
        local f = OPS[op]
        if not f then
            error("version_compare: unknown comparison '" .. tostring(op) ..
                  "' (use <, <=, ==, ~=, >=, > or lt, le, eq, ne, ge, gt)", 0)
        end
        return f(c)
    end

    -- ipaddr(v) -> v when it is an address (or address/prefix), else false;
    -- ipaddr(v, "address"|"prefix"|"network"|"netmask"|"version"|"cidr").
    function H.ipaddr(v, query)
        if query ~= nil and not IP_QUERIES[query] then
            error("ipaddr: unknown query '" .. tostring(query) ..
                  "' (address, prefix, network, netmask, version or cidr)", 0)
        end
        if type(v) ~= "string" then return false end
        local addr, plen = v:match("^([^/]+)/(%d+)$")
        if not addr then addr = v end
        local bytes = parse_ipv4(addr)
        local version = 4
        if not bytes then bytes, version = parse_ipv6(addr), 6 end
        if not bytes then return false end
        local max = #bytes * 8
        local prefix = plen and tonumber(plen) or max
        if prefix > max or (plen and #plen > 3) then return false end
        if query == nil then return v end
        if query == "address" then return ip_text(bytes) end
        if query == "prefix" then return prefix end
        if query == "version" then return version end
        if query == "network" then return ip_text(masked(bytes, prefix)) end
        if query == "cidr" then return ip_text(masked(bytes, prefix)) .. "/" .. prefix end
        local ones = {}
        for i = 1, #bytes do ones[i] = 255 end
        return ip_text(masked(ones, prefix))
    end
end

-- Adds the text, data, version and address helpers to H.  c: arg, thaw
-- (expr_helpers.lua's context)
function V.add(H, c)
    add_text(H, c)
    add_data(H, c)
    add_versions_and_addresses(H)
end

return V
