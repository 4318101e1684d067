-- Units of lua/cutover/lint.lua: the free names an expression reads.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local lint = require("cutover.lint")

local function names(code) return table.concat(lint.free_names(code), " ") end

T.test("free names: variables, not fields, keys, keywords or literals", function()
    T.eq(names("out.rc == 0 and not flag"), "out flag")
    T.eq(names("host.win.services[1].name:lower()"), "host")
    T.eq(names("{ a = x, b = y.z, ['c'] = w }"), "x y w")
    T.eq(names("'text with name' .. [[long x]] .. \"q\\\"uote\" .. v -- a comment x"), "v")
    T.eq(names("n >= 10 and n ~= 3.5e2 and 0x1F"), "n")
    T.eq(names("a == b"), "a b", "== is not a table key")
end)

T.test("free names: what the expression declares itself is not read", function()
    T.eq(names("(function(a, b) local z = a + b return z + c end)(1, 2)"), "c")
    T.eq(names("(function() local n, m = 0, 1 for k, v in pairs(t) do n = n + v end "
               .. "for i = 1, 3 do m = m + i end return n + m end)()"), "pairs t")
    T.eq(names("(function() local function f(x) return x + y end return f(1) end)()"), "y")
end)

T.test("free names: the first argument of default(x, d) may be undefined", function()
    T.eq(names("default(app_version, fallback)"), "default fallback")
    T.eq(names("default(a.b[c], d) .. e"), "default d e")
    T.eq(names("x.default(y, z)"), "x y z", "a field named default is not the helper")
    T.eq(names("default(f(p, q), r)"), "default r", "the whole first argument")
end)

T.done()
