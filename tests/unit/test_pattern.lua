-- Units of core/pattern.c, the bounded pattern matcher the expression
-- sandbox uses for find, match, gmatch and gsub: it must agree with Lua's
-- string library on every input (compared on generated patterns and
-- subjects), and a pathological pattern must stop at the instruction
-- limit instead of holding the controller.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local pattern = require("cutover.core.pattern")
local expr = require("cutover.expr")
local vars = require("cutover.vars")

-- Lua's messages that name the same fault in other words, or that this
-- matcher gives at another depth ("too complex" depends on how deep
-- each implementation recurses, so those cases are not compared).
local function same_error(a, b)
    local function norm(m)
        return (tostring(m):gsub(" in pattern", ""):gsub(" in replacement string", "")
            :gsub("'string%.(%w+)'", "'%1'"):gsub("'cutover%.core%.pattern%.(%w+)'", "'%1'"))
    end
    return norm(a) == norm(b)
end

local function pack_call(f, ...)
    return table.pack(pcall(f, ...))
end

local function show(p)
    local parts = {}
    for i = 1, p.n do parts[i] = string.format("%q", tostring(p[i])):gsub("\\\n", "\\n") end
    return table.concat(parts, ", ")
end

local function same(a, b)
    if a[1] ~= b[1] then return false end
    if not a[1] then return same_error(a[2], b[2]) end
    if a.n ~= b.n then return false end
    for i = 2, a.n do
        if a[i] ~= b[i] or math.type(a[i]) ~= math.type(b[i]) then return false end
    end
    return true
end

local function gmatch_all(gm, s, p, init)
    local out = {}
    for a, b in gm(s, p, init) do
        out[#out + 1] = tostring(a) .. "|" .. tostring(b)
        if #out > 40 then break end
    end
    return table.concat(out, ";")
end

local complex_skipped = 0
local function compare(what, f_lua, f_ours, ...)
    local a, b = pack_call(f_lua, ...), pack_call(f_ours, ...)
    if (not a[1] and tostring(a[2]):find("too complex", 1, true)) or
       (not b[1] and tostring(b[2]):find("too complex", 1, true)) then
        complex_skipped = complex_skipped + 1
        return
    end
    if not same(a, b) then
        local args = table.pack(...)
        error(string.format("%s(%s): string.%s gives %s; pattern.%s gives %s",
            what, show(args), what, show(a), what, show(b)), 2)
    end
end

-- A small fixed generator (xorshift), so that a failure is reproducible.
local seed = 0x2545F491
local function rand(n)
    seed = seed ~ ((seed << 13) & 0xffffffff)
    seed = seed ~ (seed >> 17)
    seed = seed ~ ((seed << 5) & 0xffffffff)
    return seed % n + 1
end
local PIECES = { "a", "b", "a", "b", ".", "%a", "%d", "%s", "%S", "%W", "%%", "%(", "%.", "[ab]", "[^a]",
                 "[a-c]", "[%d_]", "[]a]", "[^]]", "[", "]", "%b()", "%bab", "%f[%w]", "%f[%W]", "%1", "%2",
                 "(", ")", "()", "^", "$", "*", "+", "-", "?", "*", "+", "-", "?", "%", "x", "1", " " }
local CHARS = { "a", "b", "a", "b", "1", "2", " ", "(", ")", "_", "x", "^", "$", "%", "]", "\0", "\255" }
local function gen(pieces, max)
    local out = {}
    for i = 1, rand(max + 1) - 1 do out[i] = pieces[rand(#pieces)] end
    return table.concat(out)
end

local CASES = T.scale(4000, 800)
T.test("find, match, gmatch and gsub agree with string.* on " .. CASES .. " generated cases", function()
    local repl_table = { a = "<A>", b = false, ["1"] = 7, ab = "<AB>" }
    local function repl_fn(x, y) if x == "b" then return nil end return "[" .. tostring(x) .. tostring(y) .. "]" end
    for _ = 1, CASES do
        local p, s = gen(PIECES, 6), gen(CHARS, 12)
        local init = rand(17) - 4
        compare("find", string.find, pattern.find, s, p)
        compare("find", string.find, pattern.find, s, p, init)
        compare("find", string.find, pattern.find, s, p, init, true)
        compare("match", string.match, pattern.match, s, p)
        compare("match", string.match, pattern.match, s, p, init)
        compare("gmatch", function(...) return gmatch_all(string.gmatch, ...) end,
                function(...) return gmatch_all(pattern.gmatch, ...) end, s, p, init)
        compare("gsub", string.gsub, pattern.gsub, s, p, "<%0>")
        compare("gsub", string.gsub, pattern.gsub, s, p, "%1-%%", rand(4) - 1)
        compare("gsub", string.gsub, pattern.gsub, s, p, repl_table)
        compare("gsub", string.gsub, pattern.gsub, s, p, repl_fn)
    end
    T.ok(complex_skipped < 400, "few cases skipped as too complex: " .. complex_skipped)
end)

T.test("the cases the generator may miss: arguments, captures, anchors, replacements", function()
    local cases = {
        { "find", "hello world", "o w" }, { "find", "hello", "l+" }, { "find", "hello", "" },
        { "find", "", "" }, { "find", "abc", "", 10 }, { "find", "abc", "", 4 }, { "find", "abc", "c", -1 },
        { "find", "abc", "a", -10 }, { "find", "a.c", ".", 1, true }, { "find", "abc", "(b)(c)" },
        { "find", "abc", "()b()" }, { "match", "key = value", "^(%w+)%s*=%s*(%w+)$" },
        { "match", "  x  ", "^%s*(.-)%s*$" }, { "match", "THE (quick) fox", "%((%a+)%)" },
        { "match", "f(a(b)c)d", "%b()" }, { "match", "hello", "(h)(e)(l)(l)(o)" },
        { "match", "abab", "(ab)%1" }, { "match", "THE END", "%f[%a]%a+" }, { "match", "x", "%f[%z]" },
        { "match", "2001-05-18", "(%d+)-(%d+)-(%d+)" }, { "match", "a\0b", "%z" }, { "match", "a\0b", "a%zb" },
        { "match", "a+b", "a+b" }, { "match", "a$b", "a$b" }, { "match", "^a", "^^a" },
        { "gsub", "hello world", "o", "0" }, { "gsub", "hello world", "(%w+)", "<%1>" },
        { "gsub", "abc", "", "-" }, { "gsub", "abc", "b*", "-" }, { "gsub", "hello", "l", "L", 1 },
        { "gsub", "abc", "^a", "x" }, { "gsub", "abc", "%w", "%2" }, { "gsub", "abc", "%w", "%" },
        { "gsub", "abc", "%w", "%x" }, { "gsub", "abc", "%w", 5 }, { "gsub", "abc", "(%w)", "%0%1" },
        { "gsub", "abc", "()", "%1" }, { "gsub", "abc", "%w", true }, { "gsub", "abc", "(", "x" },
        { "gsub", "abc", "%", "x" }, { "gsub", "abc", "[a", "x" }, { "gsub", "abc", "%f", "x" },
        { "gsub", "abc", "%b", "x" }, { "gsub", "abc", "(()", "x" }, { "gsub", "abc", "a)", "x" },
        { "match", string.rep("a", 40), string.rep("(a)", 33) }, { "find", 12345, 3 }, { "match", 12345, "%d%d" },
    }
    for _, c in ipairs(cases) do
        compare(c[1], string[c[1]], pattern[c[1]], table.unpack(c, 2))
    end
    local nested = string.rep("(", 250) .. "a" .. string.rep(")", 250)
    local ok, err = pcall(pattern.match, "a", nested)
    T.eq(ok, false, "deep nesting fails")
    T.contains(err, "too", "with a message: " .. tostring(err))
    compare("gmatch", function(...) return gmatch_all(string.gmatch, ...) end,
            function(...) return gmatch_all(pattern.gmatch, ...) end, "one two  three", "%a+")
    compare("gmatch", function(...) return gmatch_all(string.gmatch, ...) end,
            function(...) return gmatch_all(pattern.gmatch, ...) end, "k=v, a=b", "(%w+)=(%w+)")
    compare("gmatch", function(...) return gmatch_all(string.gmatch, ...) end,
            function(...) return gmatch_all(pattern.gmatch, ...) end, "abc", "", 10)
end)

-- Expressions: the sandbox uses this matcher for string.* and methods.
local S = vars.new({ inventory_hostname = "web1" }, {
    { vars = { big = string.rep("x", 1024 * 1024) .. "Version 5.5.2650\n",
               spaces = string.rep(" ", 200000) .. "x" .. string.rep(" ", 200000),
               text = string.rep("line\r\n", 50000) } },
})
local function ev(src)
    local ok, v = expr.eval(src, S)
    return ok, v
end

T.test("in expressions a pathological pattern stops at the instruction limit, by every route", function()
    -- string.* would backtrack here for longer than anyone waits: (4000^8
    -- ways to split the a's before the missing b)
    local subject = "string.rep('a', 4000)"
    local pat = "string.rep('a*', 8) .. 'b'"
    -- each route runs up to the whole budget (3 s under valgrind); memcheck
    -- runs the first two (T.scale), the other builds all six
    local routes = {
        subject .. ":match(" .. pat .. ")",
        "string.match(" .. subject .. ", " .. pat .. ")",
        "string.find(" .. subject .. ", " .. pat .. ")",
        "(" .. subject .. "):gsub(" .. pat .. ", '')",
        "(function() for m in (" .. subject .. "):gmatch(" .. pat .. ") do end end)()",
        "(" .. subject .. "):find('.-.-.-.-.-.-b')",
    }
    for i = 1, T.scale(#routes, 2) do
        local src = routes[i]
        local ok, msg = ev(src)   -- a hang would end at ctest's bound
        T.eq(ok, false, src .. " fails")
        T.contains(msg, "instruction limit exceeded", src)
    end
end)

T.test("in expressions ordinary patterns on a megabyte of output stay within the budget", function()
    local ok, v = ev("big:match('Version (%d+%.%d+%.%d+)')")
    T.ok(ok, "match: " .. tostring(v))
    T.eq(v, "5.5.2650", "the version at the end of 1 MiB")
    ok, v = ev("select(2, big:gsub('x', 'y'))")
    T.eq(v, 1024 * 1024, "gsub replaced every x: " .. tostring(v))
    ok, v = ev("#lines(text)")
    T.eq(v, 50000, "lines(): " .. tostring(v))
    ok, v = ev("trim(spaces)")
    T.ok(ok, "trim of 400,000 spaces is linear: " .. tostring(v))
    T.eq(v, "x", "trim")
    ok, v = ev("big:find('Version', 1, true)")
    T.eq(v, 1024 * 1024 + 1, "plain find")
end)

T.test("string methods are the ordinary ones again outside the sandbox", function()
    T.ok(getmetatable("").__index == string, "before")
    local ok = ev("('abc'):match('b')")
    T.ok(ok, "an expression with a method")
    T.ok(getmetatable("").__index == string, "after a call")
    ev("(function() while true do end end)()")
    T.ok(getmetatable("").__index == string, "after a call that failed")
    local sc = vars.new({}, { { vars = { inner = "{{ ('x'):rep(3):match('x+') }}" } } })
    ok = expr.eval("inner:match('x+')", sc)
    T.ok(ok, "nested sandbox calls")
    T.ok(getmetatable("").__index == string, "after nested calls")
end)

T.done()
