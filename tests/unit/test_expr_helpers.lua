-- Units of lua/cutover/expr_helpers.lua through expr.eval: every helper
-- with examples and bad input, default's unevaluated first argument,
-- lambdas, Jinja filter syntax refused, and the sandbox budget.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local expr = require("cutover.expr")
local vars = require("cutover.vars")
local yaml = require("cutover.core.yaml")
local json = require("cutover.core.json")

local function scope(v)
    return vars.new({ inventory_hostname = "web1" }, { { vars = v or {}, literal = true } })
end

local S = scope({
    hosts = {
        { name = "web1", role = "web", port = 80, up = true },
        { name = "db1", role = "db", port = 5432, up = false },
        { name = "web2", role = "web", port = 8080, up = true },
    },
    nums = { 3, 1, 2 }, words = { "b", "a", "c", "a" },
    nested = { 1, { 2, { 3, { 4 } } }, {} },
    m = { y = 2, x = 1 }, empty = yaml.null, text = "Hello World",
})

local function ev(src, sc)
    local ok, v, unknown = expr.eval(src, sc or S)
    if not ok then error("eval '" .. src .. "' failed: " .. tostring(v), 2) end
    T.eq(unknown, nil, "no unknowable name")
    return v
end
local function err(src, sc)
    local ok, msg = expr.eval(src, sc or S)
    T.eq(ok, false, "'" .. src .. "' fails")
    T.eq(type(msg), "string", "message")
    T.not_contains(msg, "traceback", "no traceback")
    T.not_contains(msg, ".lua:", "no Lua source position")
    return msg
end
local function js(v) return json.encode(v) end

T.test("default: an undefined first argument gives the second", function()
    T.eq(ev("default(x, '1.0')"), "1.0", "undefined variable")
    T.eq(ev("default(text, 'x')"), "Hello World", "defined")
    T.eq(ev("default(empty, 5)"), 5, "null")
    T.eq(ev("default(m.z, 'none')"), "none", "missing field")
    T.eq(ev("default(nope.a.b, 0)"), 0, "field of an undefined variable")
    T.eq(ev("default(default(a, b), 'c')"), "c", "nested")
    T.eq(ev("default(m . x, 9)"), 1, "spaced field")
    T.eq(ev("default(x, 'a, b')"), "a, b", "comma in a string")
    T.eq(ev("default({1,2}, 3)[2]"), 2, "a table literal")
    T.eq(ev("default(f(x), 4)"), 4, "a call of an undefined function")
    local ok, v = expr.render("v{{ default(version, '1.0') }}", S)
    T.eq(ok, true, "template renders")
    T.eq(v, "v1.0", "in a template")
    T.contains(err("default(x)"), "default(x, d) needs two arguments", "one argument")
    T.contains(err("default(1 + {}, 2)"), "arithmetic", "other errors go on")
    -- a value unknown in check mode stays unknown
    local U = scope({ r = expr.UNKNOWN_VALUE })
    local ok2, msg, unknown = expr.eval("default(r.rc, 0)", U)
    T.eq(ok2, false, "unknown fails")
    T.eq(unknown, "r", "names the unknown variable")
    T.contains(msg, "depends on 'r'", "message")
end)

T.test("Jinja filter syntax is refused, naming the helper", function()
    T.contains(err("x | default('1.0')"), "'| default' is Jinja filter syntax, which expressions do not have: write default(x, d) instead", "default")
    T.contains(err("text | lower"), "write lower(x) instead", "lower")
    T.contains(err("words | join(', ')"), "write join(x, ...) instead", "join")
    T.contains(err("words | length"), "write len(x) instead", "length")
    local ok, msg = expr.render("{{ x | default('1.0') }}", S)
    T.eq(ok, false, "template refused")
    T.contains(msg, "Jinja filter syntax", "template message")
    T.eq(ev("5 | 2"), 7, "bitwise or still works")
    T.eq(ev("'a | lower'"), "a | lower", "inside a string")
end)

T.test("lambdas, functions and field names", function()
    T.eq(js(ev("map(hosts, 's -> s.name')")), '["web1","db1","web2"]', "lambda")
    T.eq(js(ev("map(hosts, 'name')")), '["web1","db1","web2"]', "field name")
    T.eq(js(ev("map(hosts, function(s) return s.port end)")), '[80,5432,8080]', "function")
    T.eq(js(ev("map(words, upper)")), '["B","A","C","A"]', "helper")
    T.eq(js(ev("map(zip(nums, words), 'p -> p[1] .. p[2]')")), '["3b","1a","2c"]', "zip then lambda")
    T.eq(js(ev("map(nums, 'a -> default(q, a)')")), '[3,1,2]', "default inside a lambda")
    T.contains(err("map(nums, 'a -> a +')"), "bad lambda 'a -> a +'", "bad body")
    T.contains(err("map(nums, '1 -> a')"), "map: argument 2", "bad parameter")
    T.contains(err("map(nums, 'a -> b')"), "undefined variable 'b'", "undefined in a lambda")
    T.eq(err("map(nums, 'a -> a.b.c')"), "'map(nums, 'a -> a.b.c')': attempt to index a number value (local 'a')", "a run-time error in a lambda has no chunk position")
    T.contains(err("map(nums, 3)"), "map: argument 2 must be a function", "not a function")
    T.contains(err("map(nums, 'name')"), "map: an item is number, which has no field 'name'", "field of a number")
    T.contains(err("map(3, 'name')"), "map: argument 1 must be a list, got number", "not a list")
    T.contains(err("map(nums, 'a -> os.exit()')"), "'os' is not available", "sandboxed")
    -- a lambda is code: text from a variable or a result is never compiled
    local D = scope({ nums = { 1, 2 }, f = "q -> q * 7", r = { stdout = "q -> secret" } })
    T.contains(err("map(nums, f)", D), "the lambda 'q -> q * 7' is not written in the expression", "from a variable")
    T.contains(err("map(nums, r.stdout)", D), "never text from a variable or a result", "from a result")
    T.eq(js(ev("map(nums, 'q -> q * 7')", D)), "[7,14]", "the same text written as a literal")
end)

T.test("filter, select, reject, find, any, all, count", function()
    T.eq(js(ev("map(filter(hosts, 'h -> h.up'), 'name')")), '["web1","web2"]', "filter")
    T.eq(js(ev("map(select(hosts, 'h -> h.role == \"db\"'), 'name')")), '["db1"]', "select")
    T.eq(ev("select('#', 1, 2)"), 2, "Lua's select stays")
    T.eq(ev("select(2, 'a', 'b')"), "b", "Lua's select by index")
    T.eq(js(ev("map(reject(hosts, 'up'), 'name')")), '["db1"]', "reject by field")
    T.eq(ev("find(hosts, 'h -> h.port > 1000').name"), "db1", "find")
    T.eq(ev("find(hosts, 'h -> h.port > 9000')"), nil, "find nothing")
    T.eq(ev("any(hosts, 'h -> not h.up')"), true, "any")
    T.eq(ev("all(hosts, 'up')"), false, "all")
    T.eq(ev("all({}, 'up')"), true, "all of nothing")
    T.eq(ev("any({false, null})"), false, "any without f")
    T.eq(ev("count(hosts, 'up')"), 2, "count with f")
    T.eq(ev("count(words)"), 4, "count")
    T.contains(err("filter('abc', 'up')"), "filter: argument 1 must be a list, got string", "bad list")
    T.contains(err("any(hosts, {})"), "any: argument 2 must be a function", "bad f")
end)

T.test("a variable named like a helper keeps its value", function()
    local C = scope({ count = 7, map = { x = 1 }, m = { b = 1, a = 2 } })
    T.eq(ev("count + 1", C), 8, "variable count")
    T.eq(ev("map.x", C), 1, "variable map")
    T.eq(ev("keys(m)[1]", C), "a", "helper still there")
    T.eq(ev("sum(values(m))", C), 3, "other helpers still there")
end)

T.test("keys, values, sort, unique, flatten, zip", function()
    T.eq(js(ev("values(m)")), "[1,2]", "values in key order")
    T.eq(js(ev("sort(nums)")), "[1,2,3]", "sort")
    T.eq(js(ev("sort(words)")), '["a","a","b","c"]', "sort text")
    T.eq(js(ev("map(sort(hosts, 'h -> -h.port'), 'name')")), '["web2","db1","web1"]', "sort by key")
    T.eq(js(ev("map(sort(hosts, 'role'), 'name')")), '["db1","web1","web2"]', "stable")
    T.eq(js(ev("nums")), "[3,1,2]", "the list itself is unchanged")
    T.contains(err("sort({1, 'a'})"), "sort: cannot order a number against text", "mixed")
    T.contains(err("sort({{}, {}})"), "sort: cannot order table values", "tables")
    T.eq(js(ev("unique(words)")), '["b","a","c"]', "unique keeps order")
    T.eq(js(ev("unique({{a=1}, {a=1}, {a=2}})")), '[{"a":1},{"a":2}]', "unique tables")
    T.eq(js(ev("flatten(nested)")), "[1,2,3,4]", "flatten all")
    T.eq(js(ev("flatten(nested, 1)")), "[1,2,[3,[4]]]", "flatten one level")
    T.eq(js(ev("zip({1,2,3}, {'a','b'})")), '[[1,"a"],[2,"b"]]', "zip shortest")
    T.contains(err("zip({1})"), "zip: needs at least two lists", "zip one list")
    T.contains(err("values(3)"), "values: argument 1 must be a mapping", "values of a number")
end)

T.test("sum, min, max, groupby", function()
    T.eq(ev("sum(nums)"), 6, "sum")
    T.eq(ev("sum(hosts, 'port')"), 80 + 5432 + 8080, "sum by key")
    T.eq(ev("sum({})"), 0, "empty sum")
    T.contains(err("sum(words)"), "sum: item 1 is string, not a number", "sum of text")
    T.eq(ev("min(nums)"), 1, "min")
    T.eq(ev("max(words)"), "c", "max text")
    T.eq(ev("max(hosts, 'port').name"), "web2", "max by key gives the item")
    T.eq(ev("min(4, 2, 9)"), 2, "min of numbers")
    T.contains(err("min({})"), "min: the list is empty", "empty min")
    local g = ev("groupby(hosts, 'role')")
    T.eq(#g.web, 2, "two web")
    T.eq(g.db[1].name, "db1", "one db")
    T.eq(g.web[2].name, "web2", "order kept")
    T.contains(err("groupby(hosts, 'h -> {}')"), "groupby: the key of item 1 is table", "bad key")
end)

T.test("regex_search and regex_replace use Lua patterns", function()
    T.eq(ev("regex_search('kernel 5.10.0-21', '%d+%.%d+')"), "5.10", "match")
    T.eq(ev("regex_search('v=42', 'v=(%d+)')"), "42", "one capture")
    T.eq(js(ev("regex_search('a=1 b=2', '(%a)=(%d)')")), '["a","1"]', "captures")
    T.eq(ev("regex_search('abc', '%d')"), nil, "no match")
    T.eq(ev("regex_replace('a-b-c', '%-', '_')"), "a_b_c", "replace")
    T.eq(ev("regex_replace('k=v', '(%w)=(%w)', '%2=%1')"), "v=k", "captures")
    T.eq(ev("regex_replace('aaa', 'a', 'b', 2)"), "bba", "count")
    T.contains(err("regex_search('a1', '\\\\d+')"), "'\\d' is regular-expression syntax; these are Lua patterns: write '%d'", "\\d")
    T.contains(err("regex_search('a1', '[\\\\w]')"), "write '%w'", "\\w in a set")
    T.contains(err("regex_search('ab', 'a|b')"), "'|' (alternation) does not exist in Lua patterns", "alternation")
    T.contains(err("regex_search('ab', '(?:a)')"), "'(?' groups", "non-capturing group")
    T.contains(err("regex_search('aaa', 'a{2}')"), "repeat count '{2}'", "repeat count")
    T.contains(err("regex_search('aaa', 'a.*?')"), "write '-'", "lazy")
    T.contains(err("regex_replace('ab', '(a)', '\\\\1')"), "write '%1'", "backreference")
    T.eq(ev("regex_search('a|b', '%|')"), "|", "an escaped | is fine")
    T.eq(ev("regex_search('x{2}', '[{]2')"), "{2", "braces in a set are fine")
    T.contains(err("regex_search('abc', '[a')"), "missing ']'", "bad pattern")
    T.contains(err("regex_search(nil, 'a')"), "regex_search: argument 1 must be text, got nil", "nil subject")
end)

T.test("text helpers", function()
    T.eq(ev("lower(text)"), "hello world", "lower")
    T.eq(ev("upper('a1')"), "A1", "upper")
    T.contains(err("lower({})"), "lower: argument 1 must be text, got table", "lower of a table")
    T.eq(js(ev("split('a,b', ',')")), '["a","b"]', "split")
    T.eq(ev("join(split('a b c', ' '), '-')"), "a-b-c", "join")
    T.eq(ev("startswith(text, 'Hell')"), true, "startswith")
    T.eq(ev("endswith(text, 'x')"), false, "endswith")
    T.eq(ev("basename('/etc/ssh/sshd_config')"), "sshd_config", "basename")
    T.eq(ev("basename([[D:\\ENG\\UPDATE.EXE]])"), "UPDATE.EXE", "Windows basename")
    T.eq(ev("dirname('/etc/ssh/sshd_config')"), "/etc/ssh", "dirname")
    T.eq(ev("dirname('/etc')"), "/", "dirname of a top folder")
    T.eq(ev("dirname('file')"), "", "dirname without a folder")
    T.eq(ev("dirname([[D:\\ENG\\UPDATE.EXE]])"), "D:\\ENG", "Windows dirname")
    T.contains(err("basename(3)"), "basename: argument 1 must be a path", "basename of a number")
end)

T.test("to_json, from_json, to_yaml, b64encode, b64decode", function()
    T.eq(ev("to_json({a = {1, 2}})"), '{"a":[1,2]}', "to_json")
    T.eq(ev("from_json('{\"a\":[1,2]}').a[2]"), 2, "from_json")
    T.contains(err("from_json('{')"), "from_json: not JSON", "bad JSON")
    local y = ev("to_yaml({name = 'web', ports = {80, 443}, opts = {}, off = 'no'})")
    T.eq(y, '"name": "web"\n"off": "no"\n"opts": {}\n"ports":\n  - 80\n  - 443\n', "to_yaml text")
    local back = yaml.load(y, "to_yaml")
    T.eq(back.off, "no", "'no' stays text when read back")
    T.eq(back.ports[2], 443, "list read back")
    T.eq(ev("b64encode('hello')"), "aGVsbG8=", "b64encode")
    T.eq(ev("b64decode('aGVsbG8=')"), "hello", "b64decode")
    T.contains(err("b64decode('@@@')"), "b64decode: not valid base64", "bad base64")
end)

T.test("version_compare: Debian order", function()
    T.eq(ev("version_compare('1.0', '1.0~rc1')"), 1, "tilde sorts before")
    T.eq(ev("version_compare('1:1.0', '2.0')"), 1, "epoch")
    T.eq(ev("version_compare('1.0-1', '<', '1.0-2')"), true, "revision")
    T.eq(ev("version_compare('1.01', 'eq', '1.1')"), true, "leading zeros")
    T.eq(ev("version_compare('7.4', '>=', '7.10')"), false, "numeric parts")
    T.contains(err("version_compare('a1', '1')"), "the upstream version must start with a digit", "bad version")
    T.contains(err("version_compare('x:1', '1')"), "the epoch before ':' must be a number", "bad epoch")
    T.contains(err("version_compare('1', 'like', '2')"), "unknown comparison 'like'", "bad operator")
    T.contains(err("version_compare({}, '1')"), "a version must be text, got table", "not text")
end)

T.test("version_compare agrees with dpkg --compare-versions", function()
    local parts = { "0", "1", "1.0", "1.00", "1.0~rc1", "1.0~~", "1.0~", "1.0+dfsg", "1.0a", "1.0.1",
                    "2", "10", "1a", "1.a", "1+b1", "9.9", "1.2.3~beta2", "2.6.32", "0.9.8zh", "3.0.2" }
    local revs = { "", "-1", "-1ubuntu1", "-0.1", "-2~bpo1", "-10", "-1.1", "-1+deb11u2" }
    local epochs = { "", "", "", "1:", "0:" }
    math.randomseed(20261205)
    local function pick(t) return t[math.random(#t)] end
    local pairs_ = {}
    for i = 1, 400 do
        pairs_[i] = { pick(epochs) .. pick(parts) .. pick(revs), pick(epochs) .. pick(parts) .. pick(revs) }
    end
    -- equal pairs and near misses
    pairs_[#pairs_ + 1] = { "1.0", "1.0" }
    pairs_[#pairs_ + 1] = { "1.0-0", "1.0" }
    pairs_[#pairs_ + 1] = { "0:1.0", "1.0" }
    local lines = {}
    for _, p in ipairs(pairs_) do lines[#lines + 1] = p[1] .. " " .. p[2] end
    local dir = T.tmpdir()
    T.write(dir .. "/pairs", table.concat(lines, "\n") .. "\n")
    local r = T.sh("while read a b; do if dpkg --compare-versions \"$a\" lt \"$b\"; then echo -1; " ..
                   "elif dpkg --compare-versions \"$a\" eq \"$b\"; then echo 0; else echo 1; fi; done < " ..
                   dir .. "/pairs")
    local want = {}
    for l in r.stdout:gmatch("[^\n]+") do want[#want + 1] = tonumber(l) end
    T.eq(#want, #pairs_, "dpkg answered every pair")
    local differ = 0
    for i, p in ipairs(pairs_) do
        local got = ev("version_compare(a, b)", scope({ a = p[1], b = p[2] }))
        if got ~= want[i] then
            differ = differ + 1
            print("  differs: " .. p[1] .. " vs " .. p[2] .. ": dpkg " .. want[i] .. ", got " .. got)
        end
    end
    T.eq(differ, 0, "pairs that differ from dpkg")
end)

T.test("ipaddr basics", function()
    T.eq(ev("ipaddr('192.168.1.10')"), "192.168.1.10", "an IPv4 address")
    T.eq(ev("ipaddr('192.168.1.300')"), false, "out of range")
    T.eq(ev("ipaddr('01.2.3.4')"), false, "leading zero")
    T.eq(ev("ipaddr('web1')"), false, "a name")
    T.eq(ev("ipaddr(42)"), false, "a number")
    T.eq(ev("ipaddr('10.1.2.3/8', 'network')"), "10.0.0.0", "network")
    T.eq(ev("ipaddr('10.1.2.3/20', 'netmask')"), "255.255.240.0", "netmask")
    T.eq(ev("ipaddr('10.1.2.3/20', 'cidr')"), "10.1.0.0/20", "cidr")
    T.eq(ev("ipaddr('10.1.2.3/20', 'prefix')"), 20, "prefix")
    T.eq(ev("ipaddr('10.1.2.3/33')"), false, "prefix too long")
    T.eq(ev("ipaddr('2001:db8::1', 'version')"), 6, "IPv6")
    T.eq(ev("ipaddr('2001:0db8:0:0:0:0:0:1', 'address')"), "2001:db8::1", "IPv6 shortened")
    T.eq(ev("ipaddr('2001:db8::1/32', 'network')"), "2001:db8::", "IPv6 network")
    T.eq(ev("ipaddr('::ffff:10.0.0.1', 'address')"), "::ffff:a00:1", "mapped")
    T.eq(ev("ipaddr('1::2::3')"), false, "two ::")
    T.eq(ev("ipaddr('1:2:3:4:5:6:7:8:9')"), false, "nine groups")
    T.contains(err("ipaddr('10.0.0.1', 'host')"), "ipaddr: unknown query 'host'", "bad query")
end)

T.test("b64encode of a secret is masked in output like the secret", function()
    local redact = require("cutover.secrets.redact")
    redact.reset()
    redact.register("hunter2-pw")
    local b64 = ev("b64encode(pw)", scope({ pw = "hunter2-pw" }))
    T.eq(b64, "aHVudGVyMi1wdw==", "encoded")
    T.eq(redact.text("token " .. b64 .. " end"), "token ******** end", "masked")
    T.eq(redact.text(require("cutover.core.json").encode({ msg = b64 })), '{"msg":"********"}', "masked in JSON")
    redact.reset()
end)

T.test("helpers spend the one budget of the evaluation", function()
    local big = {}
    for i = 1, 200000 do big[i] = i end
    local B = scope({ big = big })
    local msg = err("map(big, 'x -> x') and map(big, 'x -> x') and map(big, 'x -> x') and " ..
                    "map(big, 'x -> x') and map(big, 'x -> x') and map(big, 'x -> x')", B)
    T.contains(msg, "instruction limit exceeded", "map over a long list")
    T.contains(err("count(big, 'x -> regex_search(string.rep(\"a\", 40) .. \"b\", \"a*a*a*a*c\")')", B),
               "instruction limit exceeded", "patterns inside a lambda")
    local small = {}
    for i = 1, 20000 do small[i] = i end
    T.eq(ev("sum(map(small, 'x -> 1'))", scope({ small = small })), 20000, "within the budget")
end)

T.done()
