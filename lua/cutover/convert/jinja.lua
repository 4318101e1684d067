-- convert.jinja: translates the common subset of Ansible's Jinja
-- expressions into cutover's sandboxed Lua expressions (docs/convert.md).
-- What it does not understand is an error naming the construct, never a
-- guess: the caller reports it.
--
--   M.expr(src, ctx)       a Jinja expression -> Lua text | nil, why
--   M.condition(src, ctx)  the same, for a boolean context (when:, if)
--   M.text(s, ctx)         a string with {{ }} parts -> cutover text | nil, why
--   M.template(text, ctx)  a .j2 file -> cutover template text, problems
--
-- ctx.bools: names whose every known value is a boolean (so `when: flag`
-- needs no truthiness test).
local M = {}

local LUA_KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
    local nil not or repeat return then true until while]]):gmatch("%a+") do
    LUA_KEYWORDS[w] = true
end

-- Ansible names with a cutover equivalent, and those with none.
local RENAMED = {
    ansible_check_mode = "check_mode",
    ansible_hostname = "facts.hostname",
    ansible_system = "facts.system",
    ansible_kernel = "facts.kernel",
    ansible_architecture = "facts.architecture",
    ansible_managed = "'Ansible managed'",  -- Ansible's default text
}
local NO_EQUIVALENT = {
    hostvars = true, groups = true, group_names = true, play_hosts = true,
    omit = true, lookup = true, query = true, q = true, range = true,
    loop = true, environment = true, vars = true,
    now = true, undef = true, namespace = true, lipsum = true, dict = true,
    cycler = true, joiner = true,
}

-- Result fields that are booleans (registered results, stat).
local BOOL_FIELDS = {
    changed = true, failed = true, skipped = true, exists = true,
    isdir = true, isreg = true, islnk = true, rebooted = true,
    timed_out = true, check_mode = true,
}

---------------------------------------------------------------- lexer

local function lex(src)
    local toks, i, n = {}, 1, #src
    while i <= n do
        local c = src:sub(i, i)
        if c:match("%s") then
            i = i + 1
        elseif c:match("[%a_]") then
            local w = src:match("^[%w_]+", i)
            toks[#toks + 1] = { t = "name", v = w }
            i = i + #w
        elseif c:match("%d") then
            local num = src:match("^%d+%.%d+", i) or src:match("^%d+", i)
            toks[#toks + 1] = { t = "num", v = num }
            i = i + #num
        elseif c == "'" or c == '"' then
            local j, out = i + 1, {}
            while true do
                local d = src:sub(j, j)
                if d == "" then return nil, "unterminated string" end
                if d == c then break end
                if d == "\\" then
                    local e = src:sub(j + 1, j + 1)
                    local map = { n = "\n", t = "\t", ["\\"] = "\\", ["'"] = "'", ['"'] = '"' }
                    if not map[e] then return nil, "string escape '\\" .. e .. "'" end
                    out[#out + 1] = map[e]
                    j = j + 2
                else
                    out[#out + 1] = d
                    j = j + 1
                end
            end
            toks[#toks + 1] = { t = "str", v = table.concat(out) }
            i = j + 1
        else
            local op = src:match("^//", i) or src:match("^[=!<>]=", i) or src:match("^%*%*", i)
                or src:match("^[%+%-%*/%%~%(%)%[%]{}:,%.|<>=]", i)
            if not op then return nil, "character '" .. c .. "'" end
            toks[#toks + 1] = { t = "op", v = op }
            i = i + #op
        end
    end
    toks[#toks + 1] = { t = "eof", v = "end of expression" }
    return toks
end

---------------------------------------------------------------- parser
-- Jinja's precedence, lowest first: if/else, or, and, not, comparisons
-- and `in`, + -, ~, * / // %, unary -, then postfix (. [] ()), filters
-- and tests.

local P = {}
P.__index = P

local function fail(msg) error({ convert = msg }, 0) end

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

---------------------------------------------------------------- emitter

local function lua_string(s)
    return "'" .. s:gsub("[\\'\n\r\t%z]", function(c)
        return ({ ["\\"] = "\\\\", ["'"] = "\\'", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\0"] = "\\0" })[c]
    end) .. "'"
end
M.lua_string = lua_string

-- Lua pattern for a plain text (magic characters escaped)
local function pattern_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local E = {}
E.__index = E

local function atomic(node) -- emitted text needs no parentheses as an operand
    local k = node.k
    return k == "name" or k == "attr" or k == "index" or k == "call" or k == "num" or k == "str"
        or k == "boolv" or k == "none" or k == "list" or k == "dict" or k == "paren" or k == "filter"
end

-- a name, attribute or constant index chain: safe to write twice
local function simple_path(node)
    if node.k == "name" then return true end
    if node.k == "attr" then return simple_path(node.obj) end
    if node.k == "index" then return (node.key.k == "num" or node.key.k == "str") and simple_path(node.obj) end
    if node.k == "paren" then return simple_path(node.a) end
    return false
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
    return string.format("(%s ~= false and %s ~= null and %s ~= 0 and %s ~= '' and not (type(%s) == 'table' and next(%s) == nil))",
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
    if fact then fail("'" .. v .. "' (an Ansible fact or magic variable cutover does not gather; its facts are in 'facts')") end
    if LUA_KEYWORDS[v] then fail("the variable name '" .. v .. "' (a Lua keyword)") end
    return v
end

local function int_literal(node)
    if node.k == "num" and node.v:match("^%d+$") then return tonumber(node.v) end
end

-- Filters: name -> function(emitter, node) giving Lua text.  One row each.
local FILTERS = {}
local function arity(node, lo, hi)
    if node.args.kw then fail("'| " .. node.name .. "' with keyword arguments") end
    if #node.args < lo or #node.args > hi then
        fail("'| " .. node.name .. "' with " .. #node.args .. " argument(s)")
    end
end
local function call1(helper)
    return function(e, node) arity(node, 0, 0); return helper .. "(" .. e:emit(node.obj) .. ")" end
end
FILTERS.default = function(e, node)
    arity(node, 0, 2)
    if node.args[2] then fail("'| default(x, true)' (a default for empty values)") end
    local d = node.args[1] and e:emit(node.args[1]) or "''"
    return "default(" .. e:emit(node.obj) .. ", " .. d .. ")"
end
FILTERS.d = FILTERS.default
FILTERS.length = function(e, node) arity(node, 0, 0); return "len(" .. e:emit(node.obj) .. ")" end
FILTERS.count = FILTERS.length
FILTERS.lower = call1("lower")
FILTERS.upper = call1("upper")
FILTERS.trim = call1("trim")
FILTERS.unique = call1("unique")
FILTERS.sort = call1("sort")
FILTERS.min = call1("min")
FILTERS.max = call1("max")
FILTERS.sum = call1("sum")
FILTERS.to_json = call1("to_json")
FILTERS.from_json = call1("from_json")
FILTERS.b64encode = call1("b64encode")
FILTERS.b64decode = call1("b64decode")
FILTERS.basename = call1("basename")
FILTERS.dirname = call1("dirname")
FILTERS.join = function(e, node)
    arity(node, 0, 1)
    return "join(" .. e:emit(node.obj) .. ", " .. (node.args[1] and e:emit(node.args[1]) or "''") .. ")"
end
FILTERS.bool = function(e, node)
    arity(node, 0, 0)
    -- Ansible's bool filter: these texts (any case), 1 and true
    return "contains({'1', 'true', 'yes', 'on'}, lower(tostring(" .. e:emit(node.obj) .. ")))"
end
FILTERS.int = function(e, node)
    arity(node, 0, 0)
    return "math.floor(tonumber(" .. e:emit(node.obj) .. ") or 0)"
end
FILTERS.float = function(e, node)
    arity(node, 0, 0)
    return "(tonumber(" .. e:emit(node.obj) .. ") or 0.0)"
end
FILTERS.string = function(e, node) arity(node, 0, 0); return "tostring(" .. e:emit(node.obj) .. ")" end
FILTERS.list = function(e, node) arity(node, 0, 0); return e:emit(node.obj) end
FILTERS.mandatory = FILTERS.list
FILTERS.first = function(e, node) arity(node, 0, 0); return e:object(node.obj) .. "[1]" end
FILTERS.last = function(e, node)
    arity(node, 0, 0)
    if not simple_path(node.obj) then fail("'| last' of a computed value") end
    local x = e:object(node.obj)
    return x .. "[#" .. x .. "]"
end
FILTERS.flatten = function(e, node)
    arity(node, 0, 1)
    local x = e:emit(node.obj)
    if node.args[1] then return "flatten(" .. x .. ", " .. e:emit(node.args[1]) .. ")" end
    return "flatten(" .. x .. ")"
end
FILTERS.abs = function(e, node) arity(node, 0, 0); return "math.abs(" .. e:emit(node.obj) .. ")" end
FILTERS.replace = function(e, node)
    arity(node, 2, 2)
    local a, b = node.args[1], node.args[2]
    if a.k ~= "str" or b.k ~= "str" or a.v == "" then fail("'| replace' with computed arguments") end
    return "regex_replace(" .. e:emit(node.obj) .. ", " .. lua_string(pattern_escape(a.v)) .. ", " ..
        lua_string((b.v:gsub("%%", "%%%%"))) .. ")"
end
FILTERS.map = function(e, node)
    local a = node.args
    if a.kw then
        local attr = a.kw.attribute
        local n = 0
        for _ in pairs(a.kw) do n = n + 1 end
        if n == 1 and #a == 0 and attr and attr.k == "str" and attr.v:match("^[%a_][%w_]*$") and not LUA_KEYWORDS[attr.v] then
            return "map(" .. e:emit(node.obj) .. ", " .. lua_string(attr.v) .. ")"
        end
        fail("'| map' with these keyword arguments")
    end
    if #a == 2 and a[1].k == "str" and a[1].v == "attribute" and a[2].k == "str" and a[2].v:match("^[%a_][%w_]*$")
        and not LUA_KEYWORDS[a[2].v] then
        return "map(" .. e:emit(node.obj) .. ", " .. lua_string(a[2].v) .. ")"
    end
    if #a == 1 and a[1].k == "str" and (a[1].v == "lower" or a[1].v == "upper" or a[1].v == "trim") then
        return "map(" .. e:emit(node.obj) .. ", " .. a[1].v .. ")"
    end
    fail("'| map' other than map('attribute', 'name') or map('lower'/'upper'/'trim')")
end

-- selectattr / rejectattr: a filter with a lambda on the item's field
local function attr_filter(helper)
    return function(e, node)
        local a = node.args
        if a.kw or #a < 1 or a[1].k ~= "str" then fail("'| " .. node.name .. "' without an attribute name") end
        local path = { k = "name", v = "x_" }
        for part in a[1].v:gmatch("[^%.]+") do
            if not part:match("^[%a_][%w_]*$") or LUA_KEYWORDS[part] then fail("'| " .. node.name .. "' of '" .. a[1].v .. "'") end
            path = { k = "attr", obj = path, name = part }
        end
        local body
        if #a == 1 then
            body = e:truth(path)
        elseif #a == 2 and a[2].k == "str" and a[2].v == "defined" then
            body = "default(" .. e:emit(path) .. ", nil) ~= nil"
        elseif #a == 3 and a[2].k == "str" and (a[2].v == "equalto" or a[2].v == "==" or a[2].v == "eq")
            and (a[3].k == "str" or a[3].k == "num" or a[3].k == "boolv") then
            body = e:emit(path) .. " == " .. e:emit(a[3])
        else
            fail("'| " .. node.name .. "' with this test")
        end
        return helper .. "(" .. e:emit(node.obj) .. ", " .. lua_string("x_ -> " .. body) .. ")"
    end
end
FILTERS.selectattr = attr_filter("filter")
FILTERS.rejectattr = attr_filter("reject")

-- Tests (`x is NAME`): name -> function(emitter, node) giving Lua text.
local TESTS = {}
TESTS.defined = function(e, node)
    if node.obj.k == "name" then return "defined(" .. lua_string(e:name(node.obj.v)) .. ")" end
    return "default(" .. e:emit(node.obj) .. ", nil) ~= nil"
end
TESTS.undefined = function(e, node) return "not (" .. TESTS.defined(e, node) .. ")" end
TESTS.none = function(e, node) return e:operand(node.obj) .. " == null" end
local function result_field(field, want)
    return function(e, node)
        return "default(" .. e:operand(node.obj) .. "." .. field .. ", false) " .. (want and "==" or "~=") .. " true"
    end
end
TESTS.failed = result_field("failed", true)
TESTS.failure = TESTS.failed
TESTS.succeeded = result_field("failed", false)
TESTS.success = TESTS.succeeded
TESTS.successful = TESTS.succeeded
TESTS.changed = result_field("changed", true)
TESTS.change = TESTS.changed
TESTS.skipped = result_field("skipped", true)
TESTS.skip = TESTS.skipped
TESTS.string = function(e, node) return "type(" .. e:emit(node.obj) .. ") == 'string'" end
TESTS.number = function(e, node) return "type(" .. e:emit(node.obj) .. ") == 'number'" end
TESTS.equalto = function(e, node)
    if #node.args ~= 1 then fail("'is equalto' without one argument") end
    return e:operand(node.obj) .. " == " .. e:operand(node.args[1])
end
TESTS.eq = TESTS.equalto
TESTS["in"] = function(e, node)
    if #node.args ~= 1 then fail("'is in' without one argument") end
    return "contains(" .. e:emit(node.args[1]) .. ", " .. e:emit(node.obj) .. ")"
end

-- Python string methods with a helper: name -> function(emitter, obj, args)
local METHODS = {
    startswith = function(e, obj, a) if #a ~= 1 then fail("startswith() arguments") end
        return "startswith(" .. e:emit(obj) .. ", " .. e:emit(a[1]) .. ")" end,
    endswith = function(e, obj, a) if #a ~= 1 then fail("endswith() arguments") end
        return "endswith(" .. e:emit(obj) .. ", " .. e:emit(a[1]) .. ")" end,
    lower = function(e, obj, a) if #a ~= 0 then fail("lower() arguments") end return "lower(" .. e:emit(obj) .. ")" end,
    upper = function(e, obj, a) if #a ~= 0 then fail("upper() arguments") end return "upper(" .. e:emit(obj) .. ")" end,
    strip = function(e, obj, a) if #a ~= 0 then fail("strip() with arguments") end return "trim(" .. e:emit(obj) .. ")" end,
    split = function(e, obj, a)
        if #a ~= 1 then fail("split() without a separator (Python splits on white space)") end
        return "split(" .. e:emit(obj) .. ", " .. e:emit(a[1]) .. ")"
    end,
}

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
    if k == "dict" then
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
    if k == "attr" then
        local obj = self:object(node.obj)
        if node.name:match("^[%a_][%w_]*$") and not LUA_KEYWORDS[node.name] then return obj .. "." .. node.name end
        return obj .. "[" .. lua_string(node.name) .. "]"
    end
    if k == "index" then
        local obj = self:object(node.obj)
        local n = int_literal(node.key)
        if n then return obj .. "[" .. (n + 1) .. "]" end
        if node.key.k == "str" then
            if node.key.v:match("^[%a_][%w_]*$") and not LUA_KEYWORDS[node.key.v] then return obj .. "." .. node.key.v end
            return obj .. "[" .. lua_string(node.key.v) .. "]"
        end
        if node.key.k == "neg" then fail("a negative index") end
        fail("an index that is not a literal ('" .. obj .. "[...]': a list counts from 0 in Jinja, from 1 in Lua)")
    end
    if (k == "call" or k == "test") and node.args.kw then fail("keyword arguments") end
    if k == "call" then
        if node.fn.k == "attr" and METHODS[node.fn.name] then
            return METHODS[node.fn.name](self, node.fn.obj, node.args)
        end
        if node.fn.k == "name" then self:name(node.fn.v) end
        fail("the call '" .. (node.fn.k == "attr" and ("." .. node.fn.name) or (node.fn.v or "")) .. "()'")
    end
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
    if k == "arith" then
        if node.op == "+" then
            local function numeric(x) return x.k == "num" or (x.k == "filter" and (x.name == "int" or x.name == "float" or x.name == "length" or x.name == "count")) end
            if not (numeric(node.a) or numeric(node.b)) then
                fail("'+' between values of unknown type (numbers add, text and lists join in Jinja)")
            end
            if node.a.k == "str" or node.b.k == "str" then fail("'+' on text") end
        end
        return self:operand(node.a) .. " " .. node.op .. " " .. self:operand(node.b)
    end
    fail("this expression")
end

function E:bool_operand(node)
    local s = self:cond(node)
    if node.k == "bool" or node.k == "cmp" then return "(" .. s .. ")" end
    return s
end

-- mode: "value", "condition", or "text" (rendered into text: Jinja
-- writes a boolean as True/False, Lua as true/false)
local function run(src, ctx, mode)
    local ok, out = pcall(function()
        local tree = parse(src)
        local e = setmetatable({ ctx = ctx or {} }, E)
        if mode == "condition" then return e:cond(tree) end
        if mode == "text" and e:is_bool(tree) then
            return "(" .. e:emit(tree) .. ") and 'True' or 'False'"
        end
        return e:emit(tree)
    end)
    if ok then return out end
    if type(out) == "table" and out.convert then return nil, out.convert end
    error(out, 0)
end

function M.expr(src, ctx) return run(src, ctx, "value") end
function M.text_expr(src, ctx) return run(src, ctx, "text") end
function M.condition(src, ctx)
    local inner = src:match("^%s*{{(.*)}}%s*$")
    if inner and not inner:find("{{", 1, true) then src = inner end
    return run(src, ctx, "condition")
end

-- Escapes text so that cutover shows it literally (no {{ }} rendering).
function M.literal(s)
    return (s:gsub("{([{%%#])", "{{ '{%1' }}"))
end

-- A string with {{ }} parts: each part translated; the text between is
-- kept (with any '{%' or '{#' written so cutover shows it literally).
function M.text(s, ctx)
    if not s:find("{[{%%#]") then return s end
    -- one {{ }} and nothing else gives the value itself (a list, a boolean)
    local whole = s:match("^{{(.*)}}$")
    local alone = whole and not whole:find("{{", 1, true) and not whole:find("}}", 1, true)
    local out, i = {}, 1
    while true do
        local a = s:find("{[{%%#]", i)
        if not a then out[#out + 1] = s:sub(i); break end
        local mark = s:sub(a + 1, a + 1)
        if mark ~= "{" then
            return nil, "'{" .. mark .. "' in a string (Jinja statements and comments belong in template files)"
        end
        out[#out + 1] = s:sub(i, a - 1)
        local b = s:find("}}", a + 2, true)
        if not b then return nil, "'{{' without '}}'" end
        local inner = s:sub(a + 2, b - 1)
        if inner:sub(1, 1) == "-" or inner:sub(-1) == "-" then return nil, "whitespace control ('{{-') in a string" end
        local lua, err = (alone and M.expr or M.text_expr)(inner, ctx)
        if not lua then return nil, err .. " in '{{" .. inner .. "}}'" end
        out[#out + 1] = "{{ " .. lua .. " }}"
        i = b + 2
    end
    return table.concat(out)
end

---------------------------------------------------------------- templates

-- line and column of byte i of s
local function where(s, i)
    local line, last = 1, 0
    for nl in s:sub(1, i - 1):gmatch("()\n") do line = line + 1; last = nl end
    return line, i - last
end

-- Converts a .j2 file to a cutover template.  Returns the text and a
-- list of problems { line =, col =, msg = } (the text is only
-- meaningful when the list is empty).
function M.template(text, ctx)
    local out, problems, i = {}, {}, 1
    local stack = {}
    local function problem(at, msg)
        local line, col = where(text, at)
        problems[#problems + 1] = { line = line, col = col, msg = msg }
    end
    while true do
        local a = text:find("{[{%%#]", i)
        if not a then out[#out + 1] = text:sub(i); break end
        out[#out + 1] = text:sub(i, a - 1)
        local mark = text:sub(a + 1, a + 1)
        local close = ({ ["{"] = "}}", ["%"] = "%}", ["#"] = "#}" })[mark]
        local b = text:find(close, a + 2, true)
        if not b then
            problem(a, "'{" .. mark .. "' is never closed")
            break
        end
        local inner = text:sub(a + 2, b - 1)
        local lstrip, rstrip = inner:sub(1, 1) == "-", inner:sub(-1) == "-"
        if lstrip then inner = inner:sub(2) end
        if rstrip then inner = inner:sub(1, -2) end
        if inner:sub(1, 1) == "+" or inner:sub(-1) == "+" then problem(a, "'+' whitespace control") end
        local open_mark = "{" .. mark .. (lstrip and "-" or "")
        local close_mark = (rstrip and "-" or "") .. close
        if mark == "#" then
            out[#out + 1] = open_mark .. inner .. close_mark
        elseif mark == "{" then
            local lua, err = M.text_expr(inner, ctx)
            if lua then out[#out + 1] = open_mark .. " " .. lua .. " " .. close_mark
            else problem(a, err .. " in '{{" .. inner .. "}}'") end
        else
            -- Ansible renders with trim_blocks (the newline after a tag
            -- goes) and without lstrip_blocks (the indentation before it
            -- stays); cutover drops a tag-only line whole.  They agree
            -- only for a tag at the start of its own line.
            local line_start = text:sub(1, a - 1):match("()[^\n]*$")
            local line_end = (text:find("\n", a, true) or (#text + 1)) - 1
            local line_text = text:sub(line_start, line_end)
            local only_tags = line_text:gsub("{%%.-%%}", ""):gsub("{#.-#}", ""):match("^%s*$") ~= nil
            if only_tags then
                local first = line_text:find("{[%%#]")
                if line_start + first - 1 == a and first > 1 and line_text:sub(first + 2, first + 2) ~= "-" then
                    problem(a, "an indented '{% %}' tag (Ansible keeps the indentation, cutover drops the line): move it to the start of the line or write '{%-'")
                end
            elseif text:sub(b + 2, b + 2) == "\n" and not rstrip then
                problem(a, "a '{% %}' tag ending a line of text (Ansible drops the newline after it, cutover keeps it): write '-%}' or put the tag on its own line")
            end
            local word, rest = inner:match("^%s*([%a_]+)%s*(.-)%s*$")
            local emitted
            if word == "if" or word == "elif" then
                local lua, err = M.condition(rest, ctx)
                if lua then emitted = word .. " " .. lua else problem(a, err .. " in '{% " .. word .. " " .. rest .. " %}'") end
                if word == "if" then stack[#stack + 1] = "if" end
            elseif word == "else" and rest == "" then
                if stack[#stack] ~= "if" then problem(a, "'{% else %}' of a for loop (runs when the list is empty)") end
                emitted = "else"
            elseif word == "endif" or word == "endfor" then
                if stack[#stack] ~= word:sub(4) then problem(a, "'{% " .. word .. " %}' without its opening tag") end
                stack[#stack] = nil
                emitted = "end"
            elseif word == "for" then
                stack[#stack + 1] = "for"
                local vars, list = rest:match("^([%a_][%w_]*)%s+in%s+(.+)$")
                if not vars then
                    problem(a, "'{% for " .. rest .. " %}' (only 'for x in list')")
                elseif list:match("%sif%s") or list:match("%srecursive$") then
                    problem(a, "a filtered or recursive for loop")
                elseif LUA_KEYWORDS[vars] then
                    problem(a, "the loop variable name '" .. vars .. "' (a Lua keyword)")
                else
                    local lua, err = M.expr(list, ctx)
                    if lua then emitted = "for " .. vars .. " in " .. lua
                    else problem(a, err .. " in '{% for " .. rest .. " %}'") end
                end
            else
                problem(a, "'{% " .. tostring(word or inner) .. " %}' has no cutover equivalent")
            end
            out[#out + 1] = open_mark .. " " .. (emitted or "") .. " " .. close_mark
        end
        i = b + 2
    end
    if #stack > 0 and #problems == 0 then problem(#text, "'{% " .. stack[#stack] .. " %}' is never closed") end
    return table.concat(out), problems
end

return M
