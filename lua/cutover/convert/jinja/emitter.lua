-- convert.jinja.emitter: a parsed Jinja expression as the text of a Lua
-- expression, as a value (emit) or a condition (cond) with Jinja's
-- truthiness; raises {convert = why} for what does not translate.
local common = require("cutover.convert.jinja.common")
local filters = require("cutover.convert.jinja.filters")
local LUA_KEYWORDS, RENAMED = common.LUA_KEYWORDS, common.RENAMED
local NO_EQUIVALENT, BOOL_FIELDS = common.NO_EQUIVALENT, common.BOOL_FIELDS
local fail, lua_string, simple_path = common.fail, common.lua_string, common.simple_path
local FILTERS, TESTS, METHODS = filters.FILTERS, filters.TESTS, filters.METHODS

local E = {}
E.__index = E

local function atomic(node) -- emitted text needs no parentheses as an operand
    local k = node.k
    return k == "name" or k == "attr" or k == "index" or k == "call" or k == "num" or k == "str"
        or k == "boolv" or k == "none" or k == "list" or k == "dict" or k == "paren" or k == "filter"
end

-- The node's value is known to be a boolean (or nil for "unknown").
function E:is_bool(node)
    local k = node.k
    if k == "cmp" or k == "in" or k == "not" or k == "boolv" or k == "test" then return true end
    if k == "bool" then return self:is_bool(node.a) and self:is_bool(node.b) end
    if k == "paren" then return self:is_bool(node.a) end
    if k == "filter" then return node.name == "bool" end
    if k == "attr" and BOOL_FIELDS[node.name] then return true end
    if k == "name" then return (self.ctx.bools or {})[node.v] == true or node.v == "ansible_check_mode" end
    return false
end

-- the object of .field, [index] or a method: a literal needs parentheses
-- in Lua ({a = 1}.a and 'x':upper() do not parse)
function E:object(node)
    local s = self:emit(node)
    local k = node.k
    if k == "name" or k == "attr" or k == "index" or k == "call" or k == "paren" then return s end
    return "(" .. s .. ")"
end

function E:operand(node)
    local s = self:emit(node)
    if atomic(node) then return s end
    return "(" .. s .. ")"
end

-- Jinja's truthiness (empty text, 0, empty list and none are false)
-- for a value that is not known to be a boolean.
function E:truth(node)
    if self:is_bool(node) then return self:emit(node) end
    if not simple_path(node) then
        fail("the truth value of '" .. self:emit(node) .. "' (Jinja's and Lua's differ for '', 0 and []): " ..
             "compare it explicitly or add '| bool' or '| length > 0'")
    end
    local x = self:emit(node)
    return string.format("(%s ~= false and %s ~= null and %s ~= 0 and %s ~= '' and not (type(%s) == 'table' and " ..
        "next(%s) == nil))",
        x, x, x, x, x, x)
end

function E:cond(node)
    if node.k == "bool" then
        return self:cond_operand(node.a) .. " " .. node.op .. " " .. self:cond_operand(node.b)
    end
    if node.k == "not" then return "not " .. self:not_operand(self:cond(node.a), node.a) end
    if node.k == "paren" then return "(" .. self:cond(node.a) .. ")" end
    return self:truth(node)
end

-- the operand of `not`, which binds tighter in Lua than == and the tests'
-- comparisons: parenthesised unless it is one value
local ONE_VALUE = { name = true, attr = true, index = true, call = true, paren = true, ["in"] = true,
                    filter = true, boolv = true, num = true, str = true, none = true, list = true, dict = true }
function E:not_operand(s, node)
    if ONE_VALUE[node.k] then return s end
    return "(" .. s .. ")"
end

-- an operand of and/or: comparisons, calls and `not` bind tighter in
-- Lua too; only a nested and/or needs parentheses
function E:cond_operand(node)
    local s = self:cond(node)
    if node.k == "bool" then return "(" .. s .. ")" end
    return s
end

function E:name(v)
    if RENAMED[v] then return RENAMED[v] end
    if NO_EQUIVALENT[v] then fail("'" .. v .. "' (Ansible has it, cutover does not)") end
    local fact = v:match("^ansible_(.+)$")
    if fact and require("cutover.facts").ANSIBLE_NAMES[fact] then return "facts." .. fact end
    if v == "ansible_facts" then return v end
    if fact then fail("'" .. v ..
        "' (an Ansible fact or magic variable cutover does not gather; its facts are in 'facts')") end
    if LUA_KEYWORDS[v] then fail("the variable name '" .. v .. "' (a Lua keyword)") end
    return v
end

local function int_literal(node)
    if node.k == "num" and node.v:match("^%d+$") then return tonumber(node.v) end
end

-- a dict literal: {name = v, [key] = v}
function E:emit_dict(node)
    local parts = {}
    for i, p in ipairs(node.pairs) do
        local key = p[1]
        if key.k == "str" and key.v:match("^[%a_][%w_]*$") and not LUA_KEYWORDS[key.v] then
            parts[i] = key.v .. " = " .. self:emit(p[2])
        else
            parts[i] = "[" .. self:emit(key) .. "] = " .. self:emit(p[2])
        end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
end

-- x[i]: a literal index (Jinja counts from 0, Lua from 1) or key
function E:emit_index(node)
    local obj = self:object(node.obj)
    local n = int_literal(node.key)
    if n then return obj .. "[" .. (n + 1) .. "]" end
    if node.key.k == "str" then
        if node.key.v:match("^[%a_][%w_]*$") and not LUA_KEYWORDS[node.key.v] then return obj .. "." ..
            node.key.v end
        return obj .. "[" .. lua_string(node.key.v) .. "]"
    end
    if node.key.k == "neg" then fail("a negative index") end
    fail("an index that is not a literal ('" .. obj .. "[...]': a list counts from 0 in Jinja, from 1 in Lua)")
end

-- a call: only the Python string methods that have a helper
function E:emit_call(node)
    if node.fn.k == "attr" and METHODS[node.fn.name] then
        return METHODS[node.fn.name](self, node.fn.obj, node.args)
    end
    if node.fn.k == "name" then self:name(node.fn.v) end
    -- what is called: a method, a name, or a literal (True(x) is Jinja
    -- syntax too); a parenthesised callee has no short name
    local fn, callee = node.fn, ""
    if fn.k == "attr" then callee = "." .. fn.name
    elseif fn.k == "none" then callee = "none"
    elseif fn.v ~= nil and type(fn.v) ~= "table" then callee = tostring(fn.v) end
    fail("the call '" .. callee .. "()'")
end

-- + - * / // %: '+' only where both sides are surely numbers
function E:emit_arith(node)
    if node.op == "+" then
        local function numeric(x) return x.k == "num" or (x.k == "filter" and (x.name == "int" or
            x.name == "float" or x.name == "length" or x.name == "count")) end
        if not (numeric(node.a) or numeric(node.b)) then
            fail("'+' between values of unknown type (numbers add, text and lists join in Jinja)")
        end
        if node.a.k == "str" or node.b.k == "str" then fail("'+' on text") end
    end
    return self:operand(node.a) .. " " .. node.op .. " " .. self:operand(node.b)
end

function E:emit(node)
    local k = node.k
    if k == "num" then return node.v end
    if k == "str" then return lua_string(node.v) end
    if k == "boolv" then return tostring(node.v) end
    if k == "none" then return "null" end
    if k == "paren" then return "(" .. self:emit(node.a) .. ")" end
    if k == "name" then return self:name(node.v) end
    if k == "list" then
        local parts = {}
        for i, x in ipairs(node.items) do parts[i] = self:emit(x) end
        return "{" .. table.concat(parts, ", ") .. "}"
    end
    if k == "dict" then return self:emit_dict(node) end
    if k == "attr" then
        local obj = self:object(node.obj)
        if node.name:match("^[%a_][%w_]*$") and not LUA_KEYWORDS[node.name] then return obj .. "." .. node.name end
        return obj .. "[" .. lua_string(node.name) .. "]"
    end
    if k == "index" then return self:emit_index(node) end
    if (k == "call" or k == "test") and node.args.kw then fail("keyword arguments") end
    if k == "call" then return self:emit_call(node) end
    if k == "filter" then
        local f = FILTERS[node.name]
        if not f then fail("the filter '| " .. node.name .. "'") end
        return f(self, node)
    end
    if k == "test" then
        local t = TESTS[node.name]
        if not t then fail("the test 'is " .. node.name .. "'") end
        local s = t(self, node)
        if node.neg then return "not (" .. s .. ")" end
        return s
    end
    if k == "cmp" then return self:operand(node.a) .. " " .. node.op .. " " .. self:operand(node.b) end
    if k == "in" then return "contains(" .. self:emit(node.b) .. ", " .. self:emit(node.a) .. ")" end
    if k == "not" then return "not " .. self:not_operand(self:cond(node.a), node.a) end
    if k == "bool" then
        if not (self:is_bool(node.a) and self:is_bool(node.b)) then
            -- in a condition, cond() handles it; as a value, Jinja gives
            -- an operand (a or 'x') whose truth Lua would judge otherwise
            fail("'" .. node.op .. "' on values that are not booleans (write default(x, d) for 'x or d')")
        end
        return self:bool_operand(node.a) .. " " .. node.op .. " " .. self:bool_operand(node.b)
    end
    if k == "neg" then return "-" .. self:operand(node.a) end
    if k == "concat" then
        return "tostring(" .. self:emit(node.a) .. ") .. tostring(" .. self:emit(node.b) .. ")"
    end
    if k == "arith" then return self:emit_arith(node) end
    fail("this expression")
end

function E:bool_operand(node)
    local s = self:cond(node)
    if node.k == "bool" or node.k == "cmp" then return "(" .. s .. ")" end
    return s
end

return E
