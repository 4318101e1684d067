-- expr_lists: the list helpers of playbook expressions (default, map,
-- filter, select, reject, find, any, all, count, values, sort, unique,
-- flatten, zip, sum, min, max, groupby); expr_helpers.lua builds them
-- into each sandbox's helper table (M.add) with the context they share.
local json = require("cutover.core.json")
local yaml_null = require("cutover.core.yaml").null

local L = {}

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

-- Adds the list helpers to H.  c: arg, thaw, list_arg, fn_arg
-- (expr_helpers.lua's context)
function L.add(H, c)
    add_default_map_filter(H, c)
    add_list_queries(H, c)
    add_ordering(H, c)
    add_list_shapes(H, c)
    add_numbers(H, c)
end

L.sorted_keys = sorted_keys

return L
