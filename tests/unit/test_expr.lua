-- Units of lua/cutover/expr.lua with scopes from lua/cutover/vars.lua:
-- evaluation, templates, conditions, variables, helpers and the sandbox.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local expr = require("cutover.expr")
local vars = require("cutover.vars")
local yaml = require("cutover.core.yaml")
local loop = require("cutover.core.loop")

-- A scope like the runner's: loop vars, extra vars, registered, play
-- vars (templates allowed), host vars.
local function scope(layers)
    local l = layers or {}
    return vars.new({ inventory_hostname = "web1" }, {
        { vars = l.loop or {}, literal = true },
        { vars = l.extra or {} },
        { vars = l.registered or {}, literal = true, writable = true },
        { vars = l.play or {} },
        { vars = l.host or {} },
    })
end

local S = scope({
    play = {
        n = 3, name = "app", list = { "a", "b", "c" }, map = { x = 1, y = 2 },
        empty = yaml.null, flag = false, text = "  padded  ",
        greeting = "hello {{ name }}", count2 = "{{ n * 2 }}",
        whole = "{{ list }}",
    },
})

-- eval that must succeed
local function ev(src, sc)
    local ok, v, unknown = expr.eval(src, sc or S)
    if not ok then error("eval '" .. src .. "' failed: " .. tostring(v), 2) end
    T.eq(unknown, nil, "no unknowable name")
    return v
end

-- eval that must fail; returns the message
local function ev_err(src, sc)
    local ok, msg, unknown = expr.eval(src, sc or S)
    T.eq(ok, false, "'" .. src .. "' fails")
    T.eq(type(msg), "string", "message type")
    return msg, unknown
end

T.test("eval: values, arithmetic, comparisons, strings", function()
    T.eq(ev("1 + 2"), 3, "sum")
    T.eq(math.type(ev("7 // 2")), "integer", "integer division")
    T.eq(ev("n * 2"), 6, "variable")
    T.eq(ev("name .. '-1'"), "app-1", "concatenation")
    T.eq(ev("list[2]"), "b", "index")
    T.eq(ev("map.y"), 2, "field")
    T.eq(ev("n > 2 and name == 'app'"), true, "logic")
    T.eq(ev("flag"), false, "false variable")
    T.eq(ev("empty"), yaml.null, "null variable")
    T.eq(ev("empty == null"), true, "null helper")
    T.eq(ev("inventory_hostname"), "web1", "special")
    T.eq(ev("string.upper(name)"), "APP", "string library")
    T.eq(ev("('x'):rep(3)"), "xxx", "string method")
    T.eq(ev("math.max(1, 5, 2)"), 5, "math library")
    T.eq(ev("format('%03d', 7)"), "007", "format")
    T.eq(ev("#list"), 3, "length")
    T.eq(ev("(function(a) return a + 1 end)(1)"), 2, "a function in an expression")
    T.eq(ev("select('#', 1, 2)"), 2, "select")
    T.eq(ev("tonumber('0x10')"), 16, "tonumber")
end)

T.test("eval: syntax errors name the expression", function()
    T.eq(ev_err("n +"), "bad expression 'n +': unexpected end of expression", "incomplete")
    T.eq(ev_err("n = 1"), "bad expression 'n = 1': unexpected '=' (compare with '==')", "assignment")
    T.eq(ev_err("n)"), "bad expression 'n)': unbalanced ')'", "unbalanced")
    T.eq(ev_err("(n"), "bad expression '(n': ')' expected (to close '(' at line 1) at the end", "unclosed (")
    T.eq(ev_err("n m"), "bad expression 'n m': unexpected 'm'", "two names")
    T.eq(ev_err("'abc"), "bad expression ''abc': unfinished string near ''abc'", "unfinished string")
    local fn, err = expr.compile("1 +")
    T.eq(fn, nil, "compile fails")
    T.eq(err, "unexpected end of expression", "compile message")
    T.eq(type(expr.compile("1 + 1")), "function", "compile ok")
end)

T.test("undefined variable: the error names it", function()
    T.eq(ev_err("nope"), "'nope': undefined variable 'nope'", "bare")
    T.eq(ev_err("n + missing_var"), "'n + missing_var': undefined variable 'missing_var'", "inside")
    T.eq(ev_err("map.z.w"), "'map.z.w': attempt to index a nil value (field 'z')", "nil field is a Lua error")
end)

T.test("render: one {{ }} gives the raw value; mixed text concatenates", function()
    local ok, v = expr.render("{{ list }}", S)
    T.eq(ok, true, "ok")
    T.ok(type(v) == "table" and v[3] == "c", "a table stays a table")
    ok, v = expr.render("{{ n }}", S)
    T.eq(math.type(v), "integer", "a number stays a number")
    T.eq(v, 3, "number")
    ok, v = expr.render("  {{ n + 1 }}  ", S)
    T.eq(v, "  4  ", "with spaces around it is text")
    ok, v = expr.render("{{ name }}-{{ n }}/{{ flag }}", S)
    T.eq(v, "app-3/false", "mixed")
    ok, v = expr.render("list={{ list }} map={{ map }}", S)
    T.eq(v, 'list=["a","b","c"] map={"x":1,"y":2}', "tables as JSON in text")
    ok, v = expr.render("[{{ empty }}]", S)
    T.eq(v, "[]", "null renders as empty text")
    ok, v = expr.render("no template", S)
    T.eq(v, "no template", "plain text")
    ok, v = expr.render("{{ {1, 2} }}", S)
    T.eq(#v, 2, "table constructor: '}}}' closes after the table")
end)

T.test("render: nil in text is an error; errors name the expression", function()
    local ok, msg = expr.render("a {{ var('zz') }} b", S)
    T.eq(ok, false, "nil in text fails")
    T.eq(msg, "'var('zz')' is nil", "message")
    ok, msg = expr.render("x {{ nope }}", S)
    T.eq(ok, false, "undefined fails")
    T.eq(msg, "'nope': undefined variable 'nope'", "message")
    ok, msg = expr.render("x {{ n", S)
    T.eq(ok, false, "open {{ fails")
    T.eq(msg, "'{{' without a closing '}}'", "message")
    ok, msg = expr.render("x {{  }}", S)
    T.eq(msg, "empty '{{ }}'", "empty template")
    T.eq(expr.check_template("a {{ n + }}"), false, "check_template: bad")
    T.eq(select(2, expr.check_template("a {{ n + }}")), "bad expression 'n +': unexpected end of expression",
        "check_template message")
    T.eq(expr.check_template("a {{ n + 1 }} {{ name }}"), true, "check_template: good")
end)

T.test("render_value: every string inside, tables copied", function()
    local input = { a = "{{ n }}", b = { "{{ name }}!", 5 } }
    local ok, v = expr.render_value(input, S)
    T.eq(ok, true, "ok")
    T.eq(v.a, 3, "a")
    T.eq(v.b[1], "app!", "b[1]")
    T.eq(v.b[2], 5, "b[2]")
    T.eq(input.a, "{{ n }}", "input unchanged")
end)

T.test("condition: expressions, booleans, lists mean all, {{ }} accepted", function()
    local function cond(c)
        local ok, v = expr.condition(c, S)
        if not ok then error("condition failed: " .. tostring(v), 2) end
        return v
    end
    T.eq(cond(true), true, "true")
    T.eq(cond(false), false, "false")
    T.eq(cond("n == 3"), true, "expression")
    T.eq(cond("n"), true, "a number is true")
    T.eq(cond("flag"), false, "false variable")
    T.eq(cond("empty"), false, "null is false")
    T.eq(cond("var('zz')"), false, "nil is false")
    T.eq(cond("0"), true, "0 is true (Lua)")
    T.eq(cond({ "n == 3", "name == 'app'" }), true, "all hold")
    T.eq(cond({ "n == 3", "name == 'db'", "nope" }), false, "one fails: false, the rest not evaluated")
    T.eq(cond({}), true, "empty list")
    T.eq(cond({ true, "n > 1" }), true, "booleans in a list")
    T.eq(cond("{{ n == 3 }}"), true, "{{ }} around a condition")
    local ok, msg = expr.condition({ "n == 3", "nope" }, S)
    T.eq(ok, false, "an error in a list")
    T.eq(msg, "'nope': undefined variable 'nope'", "message")
    T.eq(expr.check_condition({ "n ==", "x" }), false, "check_condition: bad")
    T.eq(select(2, expr.check_condition("n ==")), "bad expression 'n ==': unexpected end of expression",
        "check_condition message")
    T.eq(select(2, expr.check_condition(5)), "a condition must be an expression or a list of them", "a number")
end)

T.test("variables: template values are rendered lazily, in the reader's scope", function()
    T.eq(ev("greeting"), "hello app", "greeting")
    T.eq(ev("count2"), 6, "single {{ }} keeps the number")
    T.eq(ev("whole")[2], "b", "single {{ }} keeps the table")
    -- a loop variable seen through a play var
    local sc = scope({ loop = { item = "x" }, play = { path = "/srv/{{ item }}" } })
    T.eq(ev("path", sc), "/srv/x", "rendered with the loop variable")
    local sc2 = scope({ loop = { item = "y" }, play = { path = "/srv/{{ item }}" } })
    T.eq(ev("path", sc2), "/srv/y", "each read renders again")
    -- an error inside a variable's template is not raised when unused
    local sc3 = scope({ play = { broken = "{{ nope }}", fine = 1 } })
    T.eq(ev("fine", sc3), 1, "unused broken variable")
    T.eq(ev_err("broken", sc3), "'broken': in variable 'broken': 'nope': undefined variable 'nope'",
        "used broken variable")
    -- registered values are literal: never rendered
    local sc4 = scope({ registered = { out = { stdout = "{{ n }}" } }, play = { n = 1 } })
    T.eq(ev("out.stdout", sc4), "{{ n }}", "registered output is data")
end)

T.test("variables: self reference and cycles are errors, not a hang", function()
    local sc = scope({ play = { me = "{{ me }}", a = "x{{ b }}", b = "{{ a }}" } })
    T.eq(ev_err("me", sc), "'me': in variable 'me': 'me': variable 'me' refers to itself", "self")
    T.eq(ev_err("a", sc), "'a': in variable 'a': 'b': in variable 'b': 'a': variable 'a' refers to itself", "cycle")
    -- and the scope still works afterwards
    local sc2 = scope({ play = { me = "{{ me }}", ok = "{{ 1 }}" } })
    ev_err("me", sc2)
    T.eq(ev("ok", sc2), 1, "after the cycle")
    ev_err("me", sc2)
    T.eq(ev_err("me", sc2), "'me': in variable 'me': 'me': variable 'me' refers to itself", "same message again")
end)

T.test("variables: precedence of layers, specials first", function()
    local sc = scope({
        loop = { v = "loop" },
        extra = { v = "extra", w = "extra", inventory_hostname = "spoof" },
        registered = { v = "reg", w = "reg", r = "reg" },
        play = { v = "play", w = "play", r = "play", p = "play" },
        host = { v = "host", w = "host", r = "host", p = "host", h = "host" },
    })
    T.eq(ev("v", sc), "loop", "loop vars first")
    T.eq(ev("w", sc), "extra", "then extra vars")
    T.eq(ev("r", sc), "reg", "then registered")
    T.eq(ev("p", sc), "play", "then play vars")
    T.eq(ev("h", sc), "host", "then host vars")
    T.eq(ev("inventory_hostname", sc), "web1", "specials win")
    local with = sc:with({ v = "inner" })
    T.eq(ev("v", with), "inner", "scope:with adds a layer on top")
    T.eq(ev("v", sc), "loop", "the original scope is unchanged")
    sc:set("r", "new")
    T.eq(ev("r", sc), "new", "set writes the writable layer")
    T.eq(ev("p", sc), "play", "other layers untouched")
end)

T.test("variables: a variable may be called like a blocked global", function()
    local sc = scope({ play = { os = "debian", print = "yes" } })
    T.eq(ev("os", sc), "debian", "a variable named os")
    T.eq(ev("os == 'debian' and print", sc), "yes", "a variable named print")
end)

T.test("helpers: defined, var", function()
    T.eq(ev("defined('n')"), true, "defined")
    T.eq(ev("defined('nope')"), false, "not defined")
    T.eq(ev("defined('empty')"), true, "a null variable is defined")
    T.eq(ev("var('nope', 5)"), 5, "default")
    T.eq(ev("var('n', 5)"), 3, "existing")
    T.eq(ev("var('nope')"), nil, "no default: nil")
end)

T.test("helpers: len, join, split, lines", function()
    T.eq(ev("len('abc')"), 3, "len text")
    T.eq(ev("len(list)"), 3, "len list")
    T.eq(ev("len(map)"), 2, "len mapping")
    T.eq(ev("len(12345)"), 5, "len number")
    T.eq(ev("len(empty)"), 0, "len null")
    T.eq(ev_err("len(nil)"), "'len(nil)': len: argument 1 must be text or a list, got nil", "len nil")
    T.eq(ev("join(list)"), "a,b,c", "join default")
    T.eq(ev("join(list, ' - ')"), "a - b - c", "join sep")
    T.eq(ev("join({1, true})"), "1,true", "join non-strings")
    T.eq(ev_err("join('abc')"), "'join('abc')': join: argument 1 must be a list, got string", "join text")
    local parts = ev("split('a,b,,c')")
    T.eq(#parts, 4, "split count")
    T.eq(parts[3], "", "empty field kept")
    T.eq(ev("split('a.b', '.')")[2], "b", "split separator is plain, not a pattern")
    T.eq(ev("join(split('a::b::c', '::'), '|')"), "a|b|c", "multi-char separator")
    T.eq(#ev("split('')"), 1, "split empty text: one empty field")
    T.eq(ev_err("split('abc', '')"), "'split('abc', '')': split: the separator is empty", "empty separator")
    T.eq(ev_err("split(empty)"), "'split(empty)': split: argument 1 must be text, got null", "split null")
    local l = ev("lines('one\\r\\ntwo\\nthree\\n')")
    T.eq(#l, 3, "lines count")
    T.eq(l[1], "one", "CRLF stripped")
    T.eq(l[3], "three", "last line")
    T.eq(#ev("lines('')"), 0, "no lines")
    T.eq(#ev("lines('a\\n\\nb')"), 3, "empty line in the middle kept")
end)

T.test("helpers: contains, keys, trim, startswith, endswith, to_json", function()
    T.eq(ev("contains('hello', 'ell')"), true, "substring")
    T.eq(ev("contains('a.c', '.')"), true, "plain, not a pattern")
    T.eq(ev("contains('abc', '.')"), false, "no dot")
    T.eq(ev("contains(list, 'b')"), true, "list item")
    T.eq(ev("contains(list, 'z')"), false, "no list item")
    T.eq(ev("contains(map, 2)"), true, "mapping value")
    T.eq(ev_err("contains(nil, 1)"), "'contains(nil, 1)': contains: argument 1 must be text or a list, got nil",
        "contains nil")
    T.eq(ev("join(keys({b = 1, a = 2, c = 3}))"), "a,b,c", "keys sorted")
    T.eq(ev_err("keys(5)"), "'keys(5)': keys: argument 1 must be a mapping, got number", "keys number")
    T.eq(ev("trim(text)"), "padded", "trim")
    T.eq(ev("trim('\\t x \\n')"), "x", "trim tabs and newlines")
    T.eq(ev_err("trim(nil)"), "'trim(nil)': trim: argument 1 must be text, got nil", "trim nil")
    T.eq(ev("startswith('foobar', 'foo')"), true, "startswith")
    T.eq(ev("startswith('foobar', 'bar')"), false, "not startswith")
    T.eq(ev("startswith('foo', '')"), true, "empty prefix")
    T.eq(ev("endswith('foobar', 'bar')"), true, "endswith")
    T.eq(ev("endswith('foobar', 'foo')"), false, "not endswith")
    T.eq(ev("endswith('foo', '')"), true, "empty suffix")
    T.eq(ev("endswith('ar', 'bar')"), false, "suffix longer than text")
    T.eq(ev_err("startswith(5, 'a')"), "'startswith(5, 'a')': startswith: argument 1 must be text, got number",
        "startswith number")
    T.eq(ev("to_json(map)"), '{"x":1,"y":2}', "to_json")
end)

-- Sandbox: every escape attempt fails with a clear message.
local function refused(src, want)
    local msg = ev_err(src)
    T.eq(msg, "'" .. src .. "': " .. want, src)
end

T.test("sandbox: dangerous globals are not available", function()
    for _, name in ipairs({ "io", "os", "package", "require", "debug", "load",
                            "loadstring", "dofile", "loadfile", "getmetatable",
                            "setmetatable", "rawget", "rawset", "rawequal",
                            "collectgarbage", "pcall", "coroutine", "print", "_G" }) do
        refused(name, "'" .. name .. "' is not available in expressions")
    end
    refused("os.execute('touch /tmp/cutover-sandbox-escape')", "'os' is not available in expressions")
    refused("io.open('/etc/passwd')", "'io' is not available in expressions")
    refused("require('cutover.core.proc')", "'require' is not available in expressions")
    refused("load('return 1')()", "'load' is not available in expressions")
    refused("rawset(_ENV, 'x', 1)", "'rawset' is not available in expressions")
    refused("getmetatable('').__index", "'getmetatable' is not available in expressions")
    refused("debug.getregistry()", "'debug' is not available in expressions")
    refused("collectgarbage('count')", "'collectgarbage' is not available in expressions")
end)

T.test("sandbox: string.dump is gone, also through a string's methods", function()
    refused("string.dump(function() end)", "attempt to call a nil value (field 'dump')")
    refused("('x').dump(function() end)", "attempt to call a nil value (field 'dump')")
    refused("('x'):dump()", "attempt to call a nil value (method 'dump')")
end)

T.test("sandbox: no assignments to globals or to the libraries", function()
    refused("(function() x = 1 end)()", "cannot assign to 'x' in an expression")
    refused("(function() n = 1 end)()", "cannot assign to 'n' in an expression")
    refused("(function() _ENV.y = 1 end)()", "cannot assign to 'y' in an expression")
    refused("(function() string.rep = nil end)()", "'string' is read-only")
    refused("(function() math.pi = 3 end)()", "'math' is read-only")
    refused("(function() table.insert = 1 end)()", "'table' is read-only")
    refused("(function() utf8.x = 1 end)()", "'utf8' is read-only")
    -- still intact
    T.eq(ev("string.rep('ab', 2)"), "abab", "string.rep works")
    T.eq(ev("math.pi > 3.14"), true, "math.pi intact")
end)

T.test("sandbox: _ENV and _G lead nowhere", function()
    refused("_G.io", "'_G' is not available in expressions")
    refused("_ENV.io", "'io' is not available in expressions")
    refused("_ENV.os.exit()", "'os' is not available in expressions")
    refused("(function() local e = _ENV; return e.require end)()", "'require' is not available in expressions")
    T.eq(ev("next(_ENV)"), nil, "the environment table itself is empty")
    T.eq(ev("next(string)"), nil, "so is a library view")
    T.eq(ev("type(string.rep)"), "function", "which still reads through")
end)

T.test("sandbox: an endless loop stops at the instruction limit, quickly", function()
    -- a hang would end at ctest's bound, failing the test
    refused("(function() while true do end end)()", "instruction limit exceeded")
    refused("(function() local function f() return f() end return f() end)()", "instruction limit exceeded")
    T.eq(ev("1 + 1"), 2, "the next expression works")
end)

T.test("sandbox: memory limit, and the host keeps working", function()
    refused("string.rep('x', 1e9)", "memory limit exceeded")
    refused("#('x'):rep(2^27)", "memory limit exceeded")
    T.eq(ev("#string.rep('x', 1000)"), 1000, "a later expression works")
    -- the host itself can still allocate freely
    local big = string.rep("y", 100 * 1024 * 1024)
    T.eq(#big, 100 * 1024 * 1024, "the host allocates 100 MiB afterwards")
    big = nil
    collectgarbage()
    T.eq(ev("greeting"), "hello app", "variables still render")
end)

T.test("sandbox: a huge table build hits a limit", function()
    local msg = ev_err("(function() local t = {} for i = 1, 1e9 do t[i] = i end return #t end)()")
    T.ok(msg:find("instruction limit exceeded", 1, true) or msg:find("memory limit exceeded", 1, true),
         "a limit: " .. msg)
    msg = ev_err("(function() local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(64) .. i end return #t end)()")
    T.ok(msg:find("instruction limit exceeded", 1, true) or msg:find("memory limit exceeded", 1, true),
         "a limit: " .. msg)
    T.eq(ev("n"), 3, "works afterwards")
end)

T.test("sandbox: a limit inside a variable's template is reported and recovers", function()
    local sc = scope({ play = { hog = "{{ string.rep('x', 1e9) }}", spin =
        "{{ (function() while true do end end)() }}" } })
    T.eq(ev_err("hog", sc), "'hog': in variable 'hog': 'string.rep('x', 1e9)': memory limit exceeded", "memory")
    T.eq(ev_err("spin", sc), "'spin': in variable 'spin': '(function() while true do end end)()': instruction " ..
        "limit exceeded", "instructions")
    T.eq(ev_err("hog", sc), "'hog': in variable 'hog': 'string.rep('x', 1e9)': memory limit exceeded",
        "same again, no false cycle")
end)

-- Issue 10, item 4: one budget per top-level evaluation, charged across
-- the nested evaluations of variables that are templates themselves.
T.test("item4: nested evaluations cannot reset the instruction budget", function()
    local sc = scope({ play = { x = "{{ 1 }}" } })
    -- each x is a nested sandbox call that used to re-arm the count hook,
    -- so the outer loop's instructions were never charged
    local msg = ev_err("(function() local n = 0 for i = 1, 3e7 do n = n + x end return true end)()", sc)
    T.contains(msg, "instruction limit exceeded", "a loop over a templated variable stops")
    msg = ev_err("(function() local n = 0 while true do n = n + var('x') end end)()", sc)
    T.contains(msg, "instruction limit exceeded", "an endless loop through var() stops")
    T.eq(ev("x + 1", sc), 2, "the next expression works")
end)

T.test("item4: variables that template each other cannot grow without bound", function()
    local play = { v1 = "ab" }
    for i = 2, 60 do play["v" .. i] = "{{ v" .. (i - 1) .. " }}{{ v" .. (i - 1) .. " }}" end
    local sc = scope({ play = play })
    local msg = ev_err("#v60", sc)
    T.ok(msg:find("instruction limit exceeded", 1, true) or msg:find("memory limit exceeded", 1, true),
         "a limit: " .. msg)
    T.eq(ev("#v10", sc), 1024, "a short chain still renders")
end)

T.test("unknowable values: the third return names the variable", function()
    local sc = scope({ registered = { out = expr.UNKNOWN_VALUE }, play = { uses = "{{ out.stdout }}" } })
    T.eq(expr.is_unknown(expr.UNKNOWN_VALUE), true, "is_unknown")
    T.eq(expr.is_unknown({}), false, "a plain table is known")
    local msg, unknown = ev_err("out.rc == 0", sc)
    T.eq(msg, "'out.rc == 0': depends on 'out', unknown in check mode", "message")
    T.eq(unknown, "out", "third return")
    msg, unknown = ev_err("uses", sc)
    T.eq(msg, "'uses': depends on 'out', unknown in check mode", "through a lazy variable")
    T.eq(unknown, "out", "the root cause is named")
    local ok, rmsg, runknown = expr.render("x {{ out.stdout }}", sc)
    T.eq(ok, false, "render fails")
    T.eq(rmsg, "'out.stdout': depends on 'out', unknown in check mode", "render message")
    T.eq(runknown, "out", "render third return")
    local cok, _, cunknown = expr.condition({ "true", "out.rc == 0" }, sc)
    T.eq(cok, false, "condition fails")
    T.eq(cunknown, "out", "condition third return")
    T.eq(ev("defined('out')", sc), true, "defined() does not raise")
end)

T.test("unknowable values cannot be forged by an expression", function()
    local msg, unknown = ev_err("error({unknowable = 'n'})")
    T.eq(unknown, nil, "no unknowable name")
    T.match(msg, "^'error%({unknowable = 'n'}%)': table: ", "a plain error")
end)

T.test("item4: SIGTERM stops a long evaluation", function()
    local sandbox = require("cutover.core.sandbox")
    local sys = require("cutover.core.sys")
    -- a helper process signals this one while it is inside a sandbox call
    -- whose budget would let it run for minutes (last test: the signal
    -- stays counted)
    local before = loop.interrupts()
    local helper = io.popen("sh -c 'sleep 1; kill -TERM " .. sys.getpid() .. "' &")
    helper:close()
    local ok, err = sandbox.call(function()
        local n = 0
        for i = 1, 2e10 do n = n + i end
        return n
    end, 1 << 50, 1 << 20)
    T.eq(ok, false, "the evaluation was stopped")
    T.contains(tostring(err), "interrupted", "by the signal, not the budget")
    T.ok(loop.interrupts() > before, "the signal was seen")
end)

T.done()
