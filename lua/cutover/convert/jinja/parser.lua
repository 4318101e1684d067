-- convert.jinja.parser: tokens as a tree of nodes { k = kind, ... };
-- raises {convert = why} for what it does not understand.
local common = require("cutover.convert.jinja.common")
local lex = require("cutover.convert.jinja.lexer")
local fail = common.fail

-- Jinja's precedence, lowest first: if/else, or, and, not, comparisons
-- and `in`, + -, ~, * / // %, unary -, then postfix (. [] ()), filters
-- and tests.

local P = {}
P.__index = P

function P:peek(k) return self.toks[self.i + (k or 0)] end
function P:next() local t = self.toks[self.i]; self.i = self.i + 1; return t end
function P:is(t, v)
    local tok = self.toks[self.i]
    return tok.t == t and (v == nil or tok.v == v)
end
function P:accept(t, v) if self:is(t, v) then return self:next() end end
function P:expect(t, v)
    if self:is(t, v) then return self:next() end
    fail("expected '" .. (v or t) .. "' but found '" .. tostring(self:peek().v) .. "'")
end

function P:expr()
    local e = self:or_()
    if self:is("name", "if") then fail("inline 'if ... else' expressions") end
    return e
end

function P:or_()
    local a = self:and_()
    while self:accept("name", "or") do a = { k = "bool", op = "or", a = a, b = self:and_() } end
    return a
end

function P:and_()
    local a = self:not_()
    while self:accept("name", "and") do a = { k = "bool", op = "and", a = a, b = self:not_() } end
    return a
end

function P:not_()
    if self:accept("name", "not") then return { k = "not", a = self:not_() } end
    return self:compare()
end

local CMP = { ["=="] = "==", ["!="] = "~=", ["<"] = "<", [">"] = ">", ["<="] = "<=", [">="] = ">=" }

function P:compare()
    local a = self:math1()
    local n = 0
    while true do
        local t = self:peek()
        local node
        if t.t == "op" and CMP[t.v] then
            self:next()
            node = { k = "cmp", op = CMP[t.v], a = a, b = self:math1() }
        elseif t.t == "name" and t.v == "in" then
            self:next()
            node = { k = "in", a = a, b = self:math1() }
        elseif t.t == "name" and t.v == "not" and self:peek(1).t == "name" and self:peek(1).v == "in" then
            self:next(); self:next()
            node = { k = "not", a = { k = "in", a = a, b = self:math1() } }
        else
            break
        end
        n = n + 1
        if n > 1 then fail("chained comparisons (a < b < c)") end
        a = node
    end
    return a
end

function P:math1()
    local a = self:concat()
    while self:is("op", "+") or self:is("op", "-") do
        local op = self:next().v
        a = { k = "arith", op = op, a = a, b = self:concat() }
    end
    return a
end

function P:concat()
    local a = self:math2()
    while self:accept("op", "~") do a = { k = "concat", a = a, b = self:math2() } end
    return a
end

function P:math2()
    local a = self:unary()
    while self:is("op", "*") or self:is("op", "/") or self:is("op", "//") or self:is("op", "%") do
        local op = self:next().v
        a = { k = "arith", op = op, a = a, b = self:unary() }
    end
    if self:is("op", "**") then fail("the '**' operator") end
    return a
end

function P:unary()
    if self:accept("op", "-") then return { k = "neg", a = self:unary() } end
    local e = self:postfix(self:primary())
    return self:filters(e)
end

function P:primary()
    local t = self:next()
    if t.t == "num" then return { k = "num", v = t.v } end
    if t.t == "str" then return { k = "str", v = t.v } end
    if t.t == "name" then
        local v = t.v
        if v == "true" or v == "True" then return { k = "boolv", v = true } end
        if v == "false" or v == "False" then return { k = "boolv", v = false } end
        if v == "none" or v == "None" then return { k = "none" } end
        if v == "and" or v == "or" or v == "not" or v == "in" or v == "is" or v == "if" or v == "else" then
            fail("'" .. v .. "' where a value was expected")
        end
        return { k = "name", v = v }
    end
    if t.t == "op" and t.v == "(" then
        local e = self:expr()
        if self:is("op", ",") then fail("tuples") end
        self:expect("op", ")")
        return { k = "paren", a = e }
    end
    if t.t == "op" and t.v == "[" then
        local items = {}
        if not self:accept("op", "]") then
            repeat
                if self:is("op", "]") then break end
                items[#items + 1] = self:expr()
            until not self:accept("op", ",")
            self:expect("op", "]")
        end
        return { k = "list", items = items }
    end
    if t.t == "op" and t.v == "{" then
        local pairs_ = {}
        if not self:accept("op", "}") then
            repeat
                if self:is("op", "}") then break end
                local key = self:expr()
                self:expect("op", ":")
                pairs_[#pairs_ + 1] = { key, self:expr() }
            until not self:accept("op", ",")
            self:expect("op", "}")
        end
        return { k = "dict", pairs = pairs_ }
    end
    fail("'" .. tostring(t.v) .. "' where a value was expected")
end

function P:args()
    local args = {}
    if self:accept("op", ")") then return args end
    repeat
        if self:is("name") and self:peek(1).t == "op" and self:peek(1).v == "=" then
            local name = self:next().v
            self:next()
            args.kw = args.kw or {}
            args.kw[name] = self:expr()
        else
            if args.kw then fail("a positional argument after a keyword argument") end
            args[#args + 1] = self:expr()
        end
    until not self:accept("op", ",")
    self:expect("op", ")")
    return args
end

function P:postfix(e)
    while true do
        if self:accept("op", ".") then
            local t = self:next()
            if t.t == "name" then
                e = { k = "attr", obj = e, name = t.v }
            elseif t.t == "num" and t.v:match("^%d+$") then
                e = { k = "index", obj = e, key = { k = "num", v = t.v } }
            else
                fail("'." .. tostring(t.v) .. "'")
            end
        elseif self:accept("op", "[") then
            if self:is("op", ":") then fail("slices ([a:b])") end
            local key = self:expr()
            if self:is("op", ":") then fail("slices ([a:b])") end
            self:expect("op", "]")
            e = { k = "index", obj = e, key = key }
        elseif self:accept("op", "(") then
            e = { k = "call", fn = e, args = self:args() }
        else
            return e
        end
    end
end

function P:filters(e)
    while true do
        if self:accept("op", "|") then
            local name = self:expect("name").v
            local args = {}
            if self:accept("op", "(") then args = self:args() end
            e = { k = "filter", name = name, obj = e, args = args }
        elseif self:accept("name", "is") then
            local neg = self:accept("name", "not") ~= nil
            local name = self:expect("name").v
            local args = {}
            if self:accept("op", "(") then
                args = self:args()
            elseif self:is("num") or self:is("str") or self:is("op", "[") or self:is("op", "{")
                or (self:is("name") and not ({ ["and"] = 1, ["or"] = 1, ["else"] = 1, ["if"] = 1,
                                               ["is"] = 1, ["in"] = 1, ["not"] = 1 })[self:peek().v]) then
                -- Jinja's `x is in list`, `x is divisibleby 3`: one argument
                args = { self:postfix(self:primary()) }
            end
            e = { k = "test", name = name, obj = e, args = args, neg = neg }
        else
            return e
        end
    end
end

local function parse(src)
    local toks, err = lex(src)
    if not toks then fail(err) end
    local p = setmetatable({ toks = toks, i = 1 }, P)
    local e = p:expr()
    if not p:is("eof") then fail("unexpected '" .. tostring(p:peek().v) .. "'") end
    return e
end

return parse
