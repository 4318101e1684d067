-- expr_helpers: the list, text, data, version and address helpers of
-- playbook expressions (docs/expressions.md).  They run inside the
-- sandbox (lua/cutover/expr.lua) and spend its budget like any Lua code;
-- pattern matching goes through core/pattern.c, which charges its steps.
--
-- A function argument ("f") is a Lua function, a helper, a short lambda
-- "s -> s.name" (compiled once, by expr.lua's compile_lambda) or the name
-- of a field ("name" means s.name).
local pattern = require("cutover.core.pattern")
local json = require("cutover.core.json")
local vault = require("cutover.core.vault")
local yaml_null = require("cutover.core.yaml").null

local M = {}

-- Regular-expression syntax Lua patterns do not have: raises a message
-- naming what to write instead (also used by lineinfile and blockinfile).
local REGEX_CLASSES = { d = "%d", D = "%D", w = "%w", W = "%W", s = "%s", S = "%S",
                        b = "%f[%w] (word start) or %f[%W] (word end)", n = "\\n", t = "\\t" }
function M.check_lua_pattern(fname, p)
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

-- The helpers' own parts that need no context

local check_lua_pattern = M.check_lua_pattern

local function truthy(v) return v ~= nil and v ~= false and v ~= yaml_null end

local function sorted_keys(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks, function(a, b)
        if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
        return type(a) == "number"
    end)
    return ks
end

-- Raises unless every key is a number, or every key is text.
local function comparable(fname, ks)
    local kind
    for _, k in ipairs(ks) do
        local t = type(k)
        if t ~= "number" and t ~= "string" then
            error(fname .. ": cannot order " .. (k == yaml_null and "null" or t) .. " values", 0)
        end
        if kind and kind ~= t then error(fname .. ": cannot order a number against text", 0) end
        kind = t
    end
end

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

-- ctx's checks, and the two argument conversions every group uses
local function context(ctx)
    local arg = ctx.arg

    local function list_arg(fname, i, v)
        if v == yaml_null then return {} end
        arg(fname, i, v, "a list", "table")
        return v
    end

    -- f as a function: a function, a lambda "a -> ...", or a field name.
    local function fn_arg(fname, i, f)
        if type(f) == "function" then return f end
        if type(f) == "string" then
            if f:find("->", 1, true) then
                local fn, err = ctx.lambda(f)
                if not fn then error(fname .. ": argument " .. i .. ": " .. err, 0) end
                return fn
            end
            if f:match("^[%a_][%w_]*$") then
                return function(x)
                    if type(x) ~= "table" then
                        error(fname .. ": an item is " .. type(x) .. ", which has no field '" .. f .. "'", 0)
                    end
                    return x[f]
                end
            end
        end
        error(fname .. ": argument " .. i .. " must be a function, a lambda such as \"s -> s.name\" " ..
              "or a field name, got " .. (type(f) == "string" and ("'" .. f .. "'") or type(f)), 0)
    end
    return { arg = arg, thaw = ctx.thaw, list_arg = list_arg, fn_arg = fn_arg }
end

-- default, map, filter (select), reject
local function add_default_map_filter(H, c)
    local list_arg, fn_arg = c.list_arg, c.fn_arg
    -- default(x, d): expr.lua rewrites the call so x arrives as a function
    -- returning it; an undefined variable, a field of nothing, nil or null
    -- give d.  Other errors (and "unknown in check mode") go on.
    function H.default(thunk, d)
        local v = thunk
        if type(thunk) == "function" then
            local ok, r = pcall(thunk)
            if not ok then
                if type(r) == "string" and (r:find("^undefined variable '") or
                        r:find("attempt to index a nil value") or
                        r:find("attempt to index a userdata value")) then
                    return d
                end
                error(r, 0)
            end
            v = r
        end
        if v == nil or v == yaml_null then return d end
        return v
    end

    function H.map(list, f)
        list = list_arg("map", 1, list)
        f = fn_arg("map", 2, f)
        local out = {}
        for i, x in ipairs(list) do
            local v = f(x)
            if v == nil then v = yaml_null end
            out[i] = v
        end
        return out
    end

    function H.filter(list, f)
        list = list_arg("filter", 1, list)
        f = f == nil and truthy or fn_arg("filter", 2, f)
        local out = {}
        for _, x in ipairs(list) do if truthy(f(x)) then out[#out + 1] = x end end
        return out
    end
    H.select = H.filter

    function H.reject(list, f)
        list = list_arg("reject", 1, list)
        f = f == nil and truthy or fn_arg("reject", 2, f)
        local out = {}
        for _, x in ipairs(list) do if not truthy(f(x)) then out[#out + 1] = x end end
        return out
    end
end

-- find, any, all, count
local function add_list_queries(H, c)
    local list_arg, fn_arg = c.list_arg, c.fn_arg
    function H.find(list, f)
        list = list_arg("find", 1, list)
        f = fn_arg("find", 2, f)
        for _, x in ipairs(list) do if truthy(f(x)) then return x end end
        return nil
    end

    function H.any(list, f)
        list = list_arg("any", 1, list)
        f = f == nil and truthy or fn_arg("any", 2, f)
        for _, x in ipairs(list) do if truthy(f(x)) then return true end end
        return false
    end

    function H.all(list, f)
        list = list_arg("all", 1, list)
        f = f == nil and truthy or fn_arg("all", 2, f)
        for _, x in ipairs(list) do if not truthy(f(x)) then return false end end
        return true
    end

    function H.count(list, f)
        list = list_arg("count", 1, list)
        if f == nil then return #list end
        f = fn_arg("count", 2, f)
        local n = 0
        for _, x in ipairs(list) do if truthy(f(x)) then n = n + 1 end end
        return n
    end
end

-- values, sort
local function add_ordering(H, c)
    local arg, list_arg, fn_arg = c.arg, c.list_arg, c.fn_arg
    function H.values(t)
        arg("values", 1, t, "a mapping", "table")
        local out = {}
        for i, k in ipairs(sorted_keys(t)) do out[i] = t[k] end
        return out
    end

    -- sort(list [, f]): a sorted copy; f gives each item's sort key.
    -- Stable: equal keys keep their order.
    function H.sort(list, f)
        list = list_arg("sort", 1, list)
        f = f ~= nil and fn_arg("sort", 2, f) or nil
        local ks, idx = {}, {}
        for i, x in ipairs(list) do
            local k = x
            if f then k = f(x) end
            ks[i], idx[i] = k, i
        end
        comparable("sort", ks)
        table.sort(idx, function(a, b)
            if ks[a] ~= ks[b] then return ks[a] < ks[b] end
            return a < b
        end)
        local out = {}
        for i, j in ipairs(idx) do out[i] = list[j] end
        return out
    end
end

-- unique, flatten, zip
local function add_list_shapes(H, c)
    local arg, thaw, list_arg = c.arg, c.thaw, c.list_arg
    -- The identity of a value for unique/groupby: scalars as themselves,
    -- tables by their JSON text.
    local function ident(v)
        if type(v) == "table" and v ~= yaml_null then return "\0" .. json.encode(thaw(v)) end
        return v
    end

    function H.unique(list)
        list = list_arg("unique", 1, list)
        local seen, out = {}, {}
        for _, x in ipairs(list) do
            local id = ident(x)
            if not seen[id] then seen[id] = true; out[#out + 1] = x end
        end
        return out
    end

    -- flatten(list [, depth]): lists inside lists, to depth levels (all).
    function H.flatten(list, depth)
        list = list_arg("flatten", 1, list)
        if depth ~= nil then arg("flatten", 2, depth, "a number", "number") end
        local out = {}
        local function walk(l, d)
            if d > 64 then error("flatten: lists nested more than 64 deep", 0) end
            for _, x in ipairs(l) do
                if type(x) == "table" and x ~= yaml_null and #x > 0 and (depth == nil or d < depth) then
                    walk(x, d + 1)
                elseif not (type(x) == "table" and x ~= yaml_null and next(x) == nil and (depth == nil or
                    d < depth)) then
                    out[#out + 1] = x
                end
            end
        end
        walk(list, 0)
        return out
    end

    -- zip(a, b, ...): {{a[1], b[1]}, ...}, as long as the shortest list.
    function H.zip(...)
        local lists = { ... }
        if #lists < 2 then error("zip: needs at least two lists", 0) end
        local n = math.huge
        for i, l in ipairs(lists) do
            lists[i] = list_arg("zip", i, l)
            if #lists[i] < n then n = #lists[i] end
        end
        local out = {}
        for i = 1, n do
            local row = {}
            for j, l in ipairs(lists) do row[j] = l[i] end
            out[i] = row
        end
        return out
    end
end

-- sum, min, max, groupby
local function add_numbers(H, c)
    local list_arg, fn_arg = c.list_arg, c.fn_arg
    local function numbers(fname, list, f)
        list = list_arg(fname, 1, list)
        f = f ~= nil and fn_arg(fname, 2, f) or nil
        local out = {}
        for i, x in ipairs(list) do
            local v = x
            if f then v = f(x) end
            if type(v) ~= "number" then
                error(fname .. ": item " .. i .. " is " .. (v == yaml_null and "null" or type(v)) ..
                    ", not a number", 0)
            end
            out[i] = v
        end
        return out, list
    end

    function H.sum(list, f)
        local total = 0
        for _, v in ipairs((numbers("sum", list, f))) do total = total + v end
        return total
    end

    local function extreme(fname, list, f, better)
        local list_ = list_arg(fname, 1, list)
        local ks
        if f ~= nil then
            local fn = fn_arg(fname, 2, f)
            ks = {}
            for i, x in ipairs(list_) do ks[i] = fn(x) end
        else
            ks = list_
        end
        if #ks == 0 then error(fname .. ": the list is empty", 0) end
        comparable(fname, ks)
        local best = 1
        for i = 2, #ks do if better(ks[i], ks[best]) then best = i end end
        return list_[best]
    end
    -- min(list [, f]) / max(list [, f]): the item with the least / greatest
    -- key; min(a, b, ...) with numbers compares them, as math.min does.
    function H.min(list, f, ...)
        if type(list) == "number" then return math.min(list, f, ...) end
        return extreme("min", list, f, function(a, b) return a < b end)
    end
    function H.max(list, f, ...)
        if type(list) == "number" then return math.max(list, f, ...) end
        return extreme("max", list, f, function(a, b) return a > b end)
    end

    -- groupby(list, f): a mapping from each key to the items that have it,
    -- in their order.
    function H.groupby(list, f)
        list = list_arg("groupby", 1, list)
        f = fn_arg("groupby", 2, f)
        local out = {}
        for i, x in ipairs(list) do
            local k = f(x)
            if type(k) ~= "string" and type(k) ~= "number" and type(k) ~= "boolean" then
                error("groupby: the key of item " .. i .. " is " .. (k == yaml_null and "null" or type(k)) ..
                      ", not text, a number or a boolean", 0)
            end
            local g = out[k]
            if not g then g = {}; out[k] = g end
            g[#g + 1] = x
        end
        return out
    end
end

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

-- ctx: arg (type check), thaw (view -> plain data), lambda (source -> fn)
function M.make(ctx)
    local c = context(ctx)
    local H = {}
    add_default_map_filter(H, c)
    add_list_queries(H, c)
    add_ordering(H, c)
    add_list_shapes(H, c)
    add_numbers(H, c)
    add_text(H, c)
    add_data(H, c)
    add_versions_and_addresses(H)
    return H
end

-- Jinja filters people write from habit, and the helper to call instead.
local JINJA_FILTERS = {
    length = "len(x)", d = "default(x, d)", int = "tonumber(x)", float = "tonumber(x)",
    string = "tostring(x)", first = "x[1]", last = "x[#x]", selectattr = "filter(list, f)",
    rejectattr = "reject(list, f)", replace = "regex_replace(s, p, r)", bool = "x == true",
    list = "a list literal {...}", dict2items = "keys(t) / values(t)", combine = "a table literal",
    regex_findall = "regex_search(s, p)", quote = "format('%q', s)", abs = "math.abs(x)",
    round = "math.floor(x + 0.5)", difference = "reject(a, \"x -> contains(b, x)\")",
    intersect = "filter(a, \"x -> contains(b, x)\")", union = "unique(flatten({a, b}))",
}

-- Rewrites an expression's source before it is compiled:
--   default(x, d)  ->  default(function() return x end, d)
-- so x is evaluated by default itself (an undefined x gives d), and
-- refuses Jinja's filter syntax "x | name" when name is a helper or a
-- Jinja filter.  Strings and comments are copied untouched.
-- is_helper(name) -> true when name is a helper; on_lambda(token) is
-- called with each string literal that holds "->" (a lambda written in
-- the expression).  Returns code | nil, err.
function M.rewrite(src, is_helper, on_lambda)
    if not src:find("default", 1, true) and not src:find("|", 1, true) and
            not src:find("->", 1, true) then
        return src
    end
    local out, i, n = {}, 1, #src
    local depth = 0
    local frames = {}   -- open default( calls: the depth inside their '('
    local last_sig = ""   -- the last significant character copied
    while i <= n do
        local c = src:sub(i, i)
        local long = src:match("^%[(=*)%[", i)
        if c == "-" and src:sub(i + 1, i + 1) == "-" then
            -- a comment: long or to the end of the line
            local eq = src:match("^%-%-%[(=*)%[", i)
            local j
            if eq then
                local _, e = src:find("]" .. eq .. "]", i, true)
                j = e or n
            else
                j = src:find("\n", i, true) or n
            end
            out[#out + 1] = src:sub(i, j)
            i = j + 1
        elseif long then
            local _, e = src:find("]" .. long .. "]", i, true)
            e = e or n
            out[#out + 1] = src:sub(i, e)
            if on_lambda and out[#out]:find("->", 1, true) then on_lambda(out[#out]) end
            i = e + 1
            last_sig = "s"
        elseif c == "'" or c == '"' then
            local j = i + 1
            while j <= n do
                local d = src:sub(j, j)
                if d == "\\" then j = j + 2
                elseif d == c or d == "\n" then break
                else j = j + 1 end
            end
            out[#out + 1] = src:sub(i, j)
            if on_lambda and out[#out]:find("->", 1, true) then on_lambda(out[#out]) end
            i = j + 1
            last_sig = "s"
        elseif c:match("[%a_]") then
            local word = src:match("^[%a_][%w_]*", i)
            local after = src:match("^%s*()", i + #word)
            if word == "default" and last_sig ~= "." and last_sig ~= ":" and src:sub(after, after) == "(" then
                out[#out + 1] = "default(function() return "
                depth = depth + 1
                frames[#frames + 1] = depth
                i = after + 1
                last_sig = "("
            else
                out[#out + 1] = word
                i = i + #word
                last_sig = "w"
            end
        elseif c == "(" or c == "{" or c == "[" then
            depth = depth + 1
            out[#out + 1] = c
            i = i + 1
            last_sig = c
        elseif c == ")" or c == "}" or c == "]" then
            if frames[#frames] == depth then
                return nil, "default(x, d) needs two arguments: the value and what to give when it is undefined"
            end
            depth = depth - 1
            out[#out + 1] = c
            i = i + 1
            last_sig = c
        elseif c == "," and frames[#frames] == depth then
            frames[#frames] = nil
            out[#out + 1] = " end,"
            i = i + 1
            last_sig = ","
        elseif c == "|" then
            local name = src:match("^|%s*([%a_][%w_]*)", i)
            if name and (is_helper(name) or JINJA_FILTERS[name]) then
                local instead = JINJA_FILTERS[name] or (name .. "(x, ...)")
                if name == "default" then instead = "default(x, d)" end
                if is_helper(name) and name ~= "default" then instead = name .. "(x" ..
                    (src:match("^|%s*[%a_][%w_]*%s*%(", i) and ", ...)" or ")") end
                return nil, "'| " .. name .. "' is Jinja filter syntax, which expressions do not have: write " ..
                    instead .. " instead"
            end
            out[#out + 1] = c
            i = i + 1
            last_sig = c
        else
            out[#out + 1] = c
            if not c:match("%s") then last_sig = c end
            i = i + 1
        end
    end
    return table.concat(out)
end

return M
