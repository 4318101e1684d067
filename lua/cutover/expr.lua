-- expr: playbook expressions.  `when:` and friends take a Lua expression;
-- strings interpolate {{ lua expression }}.  Both run in a sandbox: no io,
-- os, package, debug, load or require; library tables are read-only views;
-- an instruction and a memory budget (enforced in core/sandbox.c); a name
-- that is neither a helper nor a variable raises "undefined variable".
--
-- A variable whose value could not be known in check mode holds
-- expr.UNKNOWN_VALUE; reading it raises an error object
-- {unknowable = name} that the runner reports as "depends on NAME".
local sandbox = require("cutover.core.sandbox")
local pattern = require("cutover.core.pattern")
local json = require("cutover.core.json")
local yaml_null = require("cutover.core.yaml").null
local expr_helpers = require("cutover.expr_helpers")
local basic = require("cutover.expr_basic")

local M = {}

M.MAX_INSTRUCTIONS = 1000000
M.MAX_BYTES = 64 * 1024 * 1024

local unknown_mt = { __name = "unknowable" }
M.UNKNOWN_VALUE = setmetatable({}, unknown_mt)

function M.is_unknown(v)
    return getmetatable(v) == unknown_mt
end

local function readonly(lib, name)
    return setmetatable({}, {
        __index = lib,
        __newindex = function() error("'" .. name .. "' is read-only", 2) end,
        __metatable = false,
    })
end

-- Read-only views of data (facts): reads, pairs, # and to_json see the
-- data; an assignment raises.  frozen[view] is the data, so a value that
-- leaves an expression is turned back into a plain copy (see eval_data).
local frozen = setmetatable({}, { __mode = "k" })

function M.freeze(data, name)
    local view = setmetatable({}, {
        __index = data,
        __newindex = function(_, k)
            error(name .. " are read-only (cannot set '" .. tostring(k) ..
                  "'): use set_fact for your own variables", 2)
        end,
        __pairs = function() return next, data, nil end,
        __len = function() return #data end,
        __metatable = false,
    })
    frozen[view] = data
    return view
end

-- A plain copy of v with every read-only view replaced by its data.
local function thaw(v, seen)
    if type(v) ~= "table" then return v end
    if frozen[v] then v = frozen[v] end
    seen = seen or {}
    if seen[v] then return seen[v] end
    local out = {}
    seen[v] = out
    for k, x in pairs(v) do out[thaw(k, seen)] = thaw(x, seen) end
    local mt = getmetatable(v)
    if mt ~= nil and mt ~= false then setmetatable(out, mt) end
    return out
end

-- The current scope; expressions never yield, so one at a time.
local current

local helpers = {}
basic.add(helpers, { scope = function() return current end, thaw = thaw })

-- string's functions with pattern matching that charges the instruction
-- budget (core/pattern.c); string methods ("x:match(p)") use them too
-- during sandbox calls.
local safe_string = {}
for k, v in pairs(string) do safe_string[k] = v end
for _, k in ipairs({ "find", "match", "gmatch", "gsub" }) do safe_string[k] = pattern[k] end
sandbox.strings(safe_string)

local env, compile_lambda

-- The helpers of lua/cutover/expr_helpers.lua.  default is looked up
-- before variables (calls to it are rewritten at compile time); the
-- others after them, so a variable named like one (map, count) keeps
-- working as before.
local late = expr_helpers.make({ arg = basic.arg, thaw = thaw,
                                 lambda = function(src) return compile_lambda(src) end })
helpers.default = late.default
late.default = nil
-- select(n, ...) as in Lua; select(list, f) is filter
local lua_select, filter = select, late.filter
late.select = nil
function helpers.select(n, ...)
    if n == "#" or type(n) == "number" then return lua_select(n, ...) end
    return filter(n, ...)
end

local safe = {
    assert = assert, error = error, ipairs = ipairs, next = next,
    pairs = pairs, tonumber = tonumber,
    tostring = tostring, type = type,
    math = readonly(math, "math"), string = readonly(safe_string, "string"),
    table = readonly(table, "table"), utf8 = readonly(utf8, "utf8"),
    format = string.format,
    null = yaml_null,
}
for k, v in pairs(helpers) do safe[k] = v end
M.HELPERS = setmetatable({}, { __index = function(_, k) return safe[k] or late[k] end,
    __pairs = function()
        local all = {}
        for k, v in pairs(late) do all[k] = v end
        for k, v in pairs(safe) do all[k] = v end
        return next, all, nil
    end })

-- Standard Lua names left out on purpose; a variable may still use one.
local UNAVAILABLE = {}
for _, n in ipairs({ "io", "os", "package", "require", "debug", "load",
                     "loadstring", "dofile", "loadfile", "getmetatable",
                     "setmetatable", "rawget", "rawset", "rawequal",
                     "rawlen", "collectgarbage", "pcall", "xpcall",
                     "coroutine", "print", "_G" }) do
    UNAVAILABLE[n] = true
end

env = setmetatable({}, {
    __index = function(_, name)
        local v = safe[name]
        if v ~= nil then return v end
        v = current:get(name)
        if v == nil then v = late[name] end
        if v == nil and UNAVAILABLE[name] then
            error("'" .. name .. "' is not available in expressions", 0)
        end
        if v == nil then error("undefined variable '" .. tostring(name) .. "'", 0) end
        if getmetatable(v) == unknown_mt then
            error(setmetatable({ unknowable = name }, {
                __tostring = function() return "depends on '" .. name .. "', unknown in check mode" end,
            }), 0)
        end
        return v
    end,
    __newindex = function(_, name)
        error("cannot assign to '" .. tostring(name) .. "' in an expression", 0)
    end,
    __metatable = false,
})

local cache = {}

-- Lambdas ("s -> s.name") written as literals in some expression: only
-- these compile, so text that comes from data (a command's output, a
-- variable) is never run as code.
local literal_lambdas = {}
local function note_lambda(token)
    local chunk = load("return " .. token, "=literal", "t", {})
    if not chunk then return end
    local ok, v = pcall(chunk)
    if ok and type(v) == "string" then literal_lambdas[v] = true end
end
local function is_helper(n) return safe[n] ~= nil or late[n] ~= nil end

-- Lua's syntax error without the "expression:N:" prefix, and without
-- naming the ')' that compile() wraps around the source.
local function tidy_syntax_error(err, source)
    local line, msg = err:match("^expression:(%d+): (.*)$")
    if not line then return err end
    local last = select(2, source:gsub("\n", "")) + 1
    if tonumber(line) > last then
        -- reported at the wrapper's closing ')', after the source
        if msg:find("^<eof> expected") then return "unbalanced ')'" end
        if msg == "unexpected symbol near ')'" then
            return "unexpected end of expression"
        end
        msg = msg:gsub(" near '%)'$", " at the end"):gsub(" near <eof>$", " at the end")
        return msg
    end
    local tok = msg:match("^'%)' expected near '(.*)'$")
    if tok == "=" then return "unexpected '=' (compare with '==')" end
    if tok then return "unexpected '" .. tok .. "'" end
    return msg
end

-- Compiles an expression once; returns fn or nil, message.
function M.compile(source)
    local hit = cache[source]
    if hit then
        if hit.fn then return hit.fn end
        return nil, hit.err
    end
    local code, rerr = expr_helpers.rewrite(source, is_helper, note_lambda)
    if not code then
        cache[source] = { err = rerr }
        return nil, rerr
    end
    local fn, err = load("return (" .. code .. "\n)", "=expression", "t", env)
    if not fn then
        err = tidy_syntax_error(err, source)
        cache[source] = { err = err }
        return nil, err
    end
    cache[source] = { fn = fn }
    return fn
end

-- "a, b -> expr": a function of a and b, compiled once.
local lambda_cache = {}
compile_lambda = function(src)
    local hit = lambda_cache[src]
    if hit then return hit.fn, hit.err end
    if not literal_lambdas[src] then
        return nil, "the lambda '" .. src .. "' is not written in the expression: a lambda must be a " ..
            "literal there, never text from a variable or a result (that would run data as code)"
    end
    local params, body = src:match("^%s*([%a_][%w_%s,]-)%s*%->(.*)$")
    local err
    local bad = not params
    for name in ((params or "") .. ","):gmatch("([^,]*),") do
        if not name:match("^%s*[%a_][%w_]*%s*$") then bad = true end
    end
    if bad then
        err = "bad lambda '" .. src .. "': write \"name -> expression\" or \"a, b -> expression\""
    else
        local fn = M.compile(body)
        local code
        if fn then
            code = expr_helpers.rewrite(body, is_helper, note_lambda)
            local chunk
            chunk, err = load("return function(" .. params .. ") return (" .. code .. "\n) end", "=lambda", "t", env)
            if chunk then hit = { fn = chunk() } end
        else
            err = select(2, M.compile(body))
        end
        if err then err = "bad lambda '" .. src .. "': " .. tostring(err):gsub("^lambda:%d+: ", "") end
    end
    hit = hit or { err = err }
    lambda_cache[src] = hit
    return hit.fn, hit.err
end

-- Turns an error value into (message, unknowable-name-or-nil).
local function describe(err)
    -- getmetatable: expressions cannot set one, so cannot forge this
    if type(err) == "table" and err.unknowable and getmetatable(err) then
        return tostring(err), err.unknowable
    end
    err = tostring(err)
    -- "expression:1: ", "lambda:1: ", or a helper's file when the budget ran out there
    err = err:gsub("^[%w_%./-]+:%d+: ", "")
    if err == "not enough memory" then err = "memory limit exceeded" end
    return err
end

-- Evaluates an expression in scope.
-- Returns true, value | false, message, unknowable_name
function M.eval(source, scope)
    local fn, err = M.compile(source)
    if not fn then return false, "bad expression '" .. source .. "': " .. err end
    local saved = current
    current = scope
    local ok, v = sandbox.call(fn, M.MAX_INSTRUCTIONS, M.MAX_BYTES)
    current = saved
    if not ok then
        local msg, unknown = describe(v)
        return false, "'" .. source .. "': " .. msg, unknown
    end
    return true, v
end

function M.has_template(s)
    return type(s) == "string" and s:find("{{", 1, true) ~= nil
end

-- Splits "a {{ x }} b" into parts; returns nil, message on an open {{.
local function parse_template(s)
    local parts, pos = {}, 1
    while true do
        local i = s:find("{{", pos, true)
        if not i then
            if pos <= #s then parts[#parts + 1] = { text = s:sub(pos) } end
            return parts
        end
        local j = s:find("}}", i + 2, true)
        if not j then return nil, "'{{' without a closing '}}'" end
        -- "{{ {a=1} }}": extend to the last "}}" of a run of braces
        while s:sub(j + 2, j + 2) == "}" do j = j + 1 end
        if i > pos then parts[#parts + 1] = { text = s:sub(pos, i - 1) } end
        local code = s:sub(i + 2, j - 1):match("^%s*(.-)%s*$")
        if code == "" then return nil, "empty '{{ }}'" end
        parts[#parts + 1] = { code = code }
        pos = j + 2
    end
end

local template_cache = {}

-- The code of every {{ }} in a template (lint's variable check); {} when
-- the template does not parse (its error is the loader's).
function M.template_codes(s)
    local out = {}
    for _, p in ipairs(parse_template(s) or {}) do
        if p.code then out[#out + 1] = p.code end
    end
    return out
end

-- Checks a template's syntax without evaluating it (lint).
function M.check_template(s)
    local parts, err = parse_template(s)
    if not parts then return false, err end
    for _, p in ipairs(parts) do
        if p.code then
            local _, cerr = M.compile(p.code)
            if cerr then return false, "bad expression '" .. p.code .. "': " .. cerr end
        end
    end
    return true
end

-- A value an expression gives must be plain data (text, numbers,
-- booleans, null, and tables of them), as variables, results, the journal
-- and JSON output hold: a table that contains itself, a function or a
-- coroutine is refused here with a clear message instead of failing later
-- inside an encoder.  The same table twice (not a cycle) is fine.
-- Returns nil | message.
local function not_data(v, open, depth)
    local t = type(v)
    if t == "string" or t == "number" or t == "boolean" or t == "nil" or v == yaml_null then return nil end
    if t ~= "table" then return "gives " .. (t == "function" and "a function" or ("a " .. t)) ..
        ", not data (text, a number, a list or a mapping)" end
    if getmetatable(v) == unknown_mt then return nil end
    if frozen[v] then open.frozen_found = true end
    if open[v] then return "gives a table that contains itself (a cycle): variables hold plain data only" end
    if depth >= 64 then return "gives a value nested more than 64 deep" end
    open[v] = true
    for k, x in pairs(v) do
        local e = not_data(k, open, depth + 1) or not_data(x, open, depth + 1)
        if e then return e end
    end
    open[v] = nil
    return nil
end

-- Evaluates an expression whose value is kept or shown (a template, a
-- debug var): as eval, and the value must be plain data.
local function eval_data(code, scope)
    local ok, v, unknown = M.eval(code, scope)
    if not ok then return false, v, unknown end
    local open = {}
    local e = not_data(v, open, 0)
    local has_frozen = open.frozen_found
    if e then return false, "'" .. code .. "' " .. e end
    if has_frozen then v = thaw(v) end
    return true, v
end
M.eval_data = eval_data

-- Renders a string.  A string that is exactly one {{ expr }} gives the
-- expression's value as is (a list stays a list).
-- Returns true, value | false, message, unknowable_name
function M.render(s, scope)
    if not M.has_template(s) then return true, s end
    local parts = template_cache[s]
    if not parts then
        local err
        parts, err = parse_template(s)
        if not parts then return false, err end
        template_cache[s] = parts
    end
    if #parts == 1 and parts[1].code then
        return eval_data(parts[1].code, scope)
    end
    local out = {}
    for i, p in ipairs(parts) do
        if p.text then
            out[i] = p.text
        else
            local ok, v, unknown = eval_data(p.code, scope)
            if not ok then return false, v, unknown end
            if v == nil then return false, "'" .. p.code .. "' is nil" end
            if v == yaml_null then v = "" end
            out[i] = type(v) == "table" and json.encode(v) or tostring(v)
        end
    end
    return true, table.concat(out)
end

-- Whether render_value could change v: a template anywhere in it.  A
-- value nested deeper than render_value goes counts as templated.
function M.value_has_template(v, depth)
    depth = depth or 0
    if type(v) == "string" then return M.has_template(v) end
    if type(v) ~= "table" then return false end
    if depth > 32 then return true end
    for _, x in pairs(v) do
        if M.value_has_template(x, depth + 1) then return true end
    end
    return false
end

-- Renders every string inside a value (tables are copied, not changed).
function M.render_value(v, scope, depth)
    depth = depth or 0
    if depth > 32 then return false, "value nested too deeply" end
    if type(v) == "string" then return M.render(v, scope) end
    if type(v) ~= "table" or getmetatable(v) == unknown_mt then return true, v end
    local out = {}
    for k, x in pairs(v) do
        local ok, r, unknown = M.render_value(x, scope, depth + 1)
        if not ok then return false, r, unknown end
        out[k] = r
    end
    return true, out
end

-- A condition: a Lua expression, a boolean, or a list of conditions (all
-- must hold).  A condition written as "{{ expr }}" is taken as expr.
function M.condition(c, scope)
    if type(c) == "boolean" then return true, c end
    if type(c) == "table" then
        for _, one in ipairs(c) do
            local ok, v, unknown = M.condition(one, scope)
            if not ok or not v then return ok, v, unknown end
        end
        return true, true
    end
    local src = tostring(c)
    local inner = src:match("^%s*{{(.-)}}%s*$")
    if inner then src = inner end
    local ok, v, unknown = M.eval(src, scope)
    if not ok then return false, v, unknown end
    return true, v ~= nil and v ~= false and v ~= yaml_null
end

-- Lint helper: syntax of a condition without running it.
function M.check_condition(c)
    if type(c) == "boolean" then return true end
    if type(c) == "table" then
        for _, one in ipairs(c) do
            local ok, err = M.check_condition(one)
            if not ok then return ok, err end
        end
        return true
    end
    if type(c) ~= "string" then return false, "a condition must be an expression or a list of them" end
    local inner = c:match("^%s*{{(.-)}}%s*$") or c
    local _, err = M.compile(inner)
    if err then return false, "bad expression '" .. inner .. "': " .. err end
    return true
end

return M
