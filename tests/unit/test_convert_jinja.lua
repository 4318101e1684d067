-- Units of lua/cutover/convert/jinja.lua, differential: each Jinja
-- expression is evaluated by real Jinja with Ansible's own filters and
-- tests (python3 from ansible-core, which scripts/deps.sh installs), and
-- its translation by cutover's sandboxed expressions, on the same
-- variables; values must be equal, conditions must agree.  What the
-- translator does not understand must be refused with a reason.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local jinja = require("cutover.convert.jinja")
local expr = require("cutover.expr")
local vars = require("cutover.vars")
local json = require("cutover.core.json")
local proc = require("cutover.core.proc")

local VARS_JSON = [==[{
  "name": "alice", "count_text": "42", "flag": true, "off": false,
  "empty_text": "", "zero": 0, "empty_list": [], "one": 1,
  "words": ["b", "a", "c", "a"], "ports": [80, 443],
  "nested": [1, [2, [3]], [4]],
  "user": {"name": "alice", "uid": 1000},
  "users": [{"name": "alice", "admin": true}, {"name": "bob", "admin": false}, {"name": "carol", "admin": true}],
  "path": "/etc/nginx/nginx.conf",
  "result": {"failed": false, "changed": true, "skipped": false, "rc": 0},
  "bad": {"failed": true, "changed": false, "rc": 2},
  "yes_text": "yes", "no_text": "no", "on_text": "On", "y_text": "y", "t_text": "t", "true_text": "True"
}]==]

local VALUES = {
    "name", "user.name", "user['name']", "ports[0]", "ports[1] + 1", "ports | length",
    "words | length", "user | length", "name | length", "words | join(',')", "words | join",
    "name | upper", "'MiXed' | lower", "missing | default('x')", "user.missing | default(5)",
    "user.name | default('x')", "count_text | int", "count_text | int + 2", "'7.5' | float",
    "'7.9' | int", "3 | string", "yes_text | bool", "no_text | bool", "on_text | bool", "y_text | bool",
    "t_text | bool", "true_text | bool", "one | bool", "zero | bool", "flag | bool",
    "ports | first", "ports | last", "words | unique", "ports | sort", "words | sort", "ports | min",
    "ports | max", "ports | sum", "nested | flatten", "nested | flatten(1)",
    "users | map(attribute='name') | list", "users | selectattr('admin') | map(attribute='name') | list",
    "users | rejectattr('admin') | map(attribute='name') | list",
    "users | selectattr('name', 'equalto', 'bob') | list | length",
    "'a.b.c' | replace('.', '-')", "'100%' | replace('%', ' pct')", "path | basename", "path | dirname",
    "name.startswith('al')", "name.endswith('x')", "name.upper()", "' x '.strip()", "'a,b'.split(',')",
    "[1, 2] | length", "{'a': 1}['a']", "{'k': name}.k", "'abc' | upper", "-ports[0]", "5 // 2", "7 % 3",
    "2 * 3 - 1", "10 / 4", "'v' ~ ports[0]", "'x' ~ name", "[name, 'b']", "{'n': user.uid}",
    "ports[0] == 80", "name != 'bob'", "'a' in words", "'li' in name", "'z' not in words",
    "missing is defined", "name is defined", "user.nope is undefined", "user.uid is defined",
    "result is failed", "bad is failed", "result is succeeded", "result is changed", "bad is changed",
    "result is skipped", "user.uid is number", "name is string", "ports[0] is equalto 80",
    "'a' is in words", "words | map('upper') | list", "words | count",
}

local CONDITIONS = {
    "flag", "not flag", "off", "empty_text", "zero", "empty_list", "words", "name", "one",
    "name == 'alice'", "not name == 'bob'", "'a' in words and 'x' not in words",
    "ports[0] > 10 and ports | length == 2", "flag or empty_text", "(zero or flag) and not empty_list",
    "empty_text or zero or empty_list", "words | length > 3", "missing is not defined",
    "result.changed and not result.failed", "user.name", "user.nope is defined or flag",
    "yes_text | bool and not (no_text | bool)", "{{ flag }}", "result is changed and bad is failed",
}

-- must be refused, with this in the reason
local UNSUPPORTED = {
    { "'a' if flag else 'b'", "inline 'if" },
    { "lookup('env', 'HOME')", "'lookup'" },
    { "hostvars[name]", "'hostvars'" },
    { "ports[i]", "an index that is not a literal" },
    { "ports[-1]", "negative index" },
    { "ports[1:]", "slices" },
    { "name or 'd'", "not booleans" },
    { "a + b", "'+' between values of unknown type" },
    { "end", "Lua keyword" },
    { "name | regex_replace('a', 'b')", "'| regex_replace'" },
    { "ansible_local", "Ansible fact" },
    { "ansible_eth0.ipv4.address", "Ansible fact" },
    { "x is match('a')", "'is match'" },
    { "ports | default(1, true)", "default(x, true)" },
    { "1 < x < 3", "chained comparisons" },
    { "x ** 2", "'**'" },
    { "x.items()", "'.items()'" },
    { "'a\\d'", "string escape" },
    { "(ports | select('odd') | list)", "'| select'" },
    -- a call of something that is not a name or a method: refused, not a crash
    { "True(x)", "the call 'true()'" },
    { "None()", "the call 'none()'" },
    { "3(x)", "the call '3()'" },
    { "'s'(x)", "the call 's()'" },
    { "(f)(x)", "the call" },
}

local function canon(v)
    local t = type(v)
    if v == nil or v == require("cutover.core.yaml").null then return "null" end
    if t == "number" then
        if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", math.floor(v)) end
        return string.format("%.14g", v)
    end
    if t == "string" then return string.format("%q", v) end
    if t == "boolean" then return tostring(v) end
    if t == "table" then
        local n = 0
        for _ in pairs(v) do n = n + 1 end
        if n == #v then
            local parts = {}
            for i, x in ipairs(v) do parts[i] = canon(x) end
            return "[" .. table.concat(parts, ",") .. "]"
        end
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
        local parts = {}
        for i, k in ipairs(keys) do parts[i] = tostring(k) .. ":" .. canon(v[k]) end
        return "{" .. table.concat(parts, ",") .. "}"
    end
    return t
end

-- Jinja with Ansible's filters and tests: { {ok=, value=|err=} } per case
local PY = [[
import json, sys
import jinja2
from ansible.plugins.filter.core import FilterModule
from ansible.plugins.test.core import TestModule
env = jinja2.Environment()
env.filters.update(FilterModule().filters())
env.tests.update(TestModule().tests())
data = json.load(open(sys.argv[1]))
v = data["vars"]
out = []
for kind, src in data["cases"]:
    try:
        if kind == "value":
            val = env.compile_expression(src, undefined_to_none=False)(**v)
            out.append({"ok": True, "value": val})
        else:
            if src.startswith("{{"):
                src = src.strip()[2:-2]
            val = env.from_string("{% if " + src + " %}True{% else %}False{% endif %}").render(**v)
            out.append({"ok": True, "value": val == "True"})
    except Exception as e:
        out.append({"ok": False, "err": str(e)})
print(json.dumps(out, default=list))
]]

local function jinja_results(cases)
    local d = T.tmpdir()
    local list = {}
    for i, c in ipairs(cases) do list[i] = { c[1], c[2] } end
    T.write(d .. "/in.json", json.encode({ vars = json.decode(VARS_JSON), cases = list }))
    T.write(d .. "/eval.py", PY)
    local r = assert(proc.run({ argv = { "/usr/bin/python3", d .. "/eval.py", d .. "/in.json" }, timeout = 120 }))
    T.eq(r.rc, 0, "python3 with jinja2 and ansible (scripts/deps.sh installs ansible-core)\n" .. r.stderr)
    return json.decode(r.stdout)
end

local function scope()
    return vars.new({ inventory_hostname = "h" }, { { vars = json.decode(VARS_JSON), literal = true } })
end

T.test("values: Jinja (with Ansible's filters) and the translation agree", function()
    local cases = {}
    for _, s in ipairs(VALUES) do cases[#cases + 1] = { "value", s } end
    local want = jinja_results(cases)
    local S = scope()
    for i, s in ipairs(VALUES) do
        T.ok(want[i].ok, "Jinja evaluates '" .. s .. "': " .. tostring(want[i].err))
        local lua, err = jinja.expr(s)
        T.ok(lua ~= nil, "translates '" .. s .. "': " .. tostring(err))
        local ok, v = expr.eval(lua, S)
        T.ok(ok, "cutover evaluates '" .. lua .. "' (from '" .. s .. "'): " .. tostring(v))
        T.eq(canon(v), canon(want[i].value), "'" .. s .. "' -> '" .. lua .. "'")
    end
end)

T.test("conditions: Jinja's truth and the translation's agree", function()
    local cases = {}
    for _, s in ipairs(CONDITIONS) do cases[#cases + 1] = { "cond", s } end
    local want = jinja_results(cases)
    local S = scope()
    for i, s in ipairs(CONDITIONS) do
        T.ok(want[i].ok, "Jinja evaluates '" .. s .. "': " .. tostring(want[i].err))
        local lua, err = jinja.condition(s)
        T.ok(lua ~= nil, "translates '" .. s .. "': " .. tostring(err))
        local ok, v = expr.condition(lua, S)
        T.ok(ok, "cutover evaluates '" .. lua .. "': " .. tostring(v))
        T.eq(v and true or false, want[i].value, "'" .. s .. "' -> '" .. lua .. "'")
    end
end)

T.test("a boolean written into text is True/False, as Jinja writes it", function()
    local S = scope()
    local s = jinja.text("ok={{ ports[0] == 80 }} n={{ ports | length }}")
    T.eq(s, "ok={{ (ports[1] == 80) and 'True' or 'False' }} n={{ len(ports) }}", "translation")
    local ok, v = expr.render(s, S)
    T.ok(ok, tostring(v))
    T.eq(v, "ok=True n=2", "rendered")
    T.eq(jinja.text("{{ ports[0] == 80 }}"), "{{ ports[1] == 80 }}", "alone: the value itself")
end)

T.test("readable translations", function()
    T.eq(jinja.condition("name == 'alice' and not flag", { bools = { flag = true } }),
         "name == 'alice' and not flag", "plain")
    T.eq(jinja.condition("a == 1 and (b == 2 or c == 3)"), "a == 1 and (b == 2 or c == 3)", "nested or")
    T.eq(jinja.condition("not name == 'bob'"), "not (name == 'bob')", "Jinja's not binds loosest")
    T.eq(jinja.expr("x | default('1.0')"), "default(x, '1.0')", "default")
    T.eq(jinja.condition("x is not defined"), "not (defined('x'))", "is not defined")
    T.eq(jinja.expr("ansible_check_mode"), "check_mode", "renamed")
    T.eq(jinja.expr("ansible_distribution"), "facts.distribution", "a gathered fact")
    T.eq(jinja.expr("ansible_user_id"), "facts.user_id", "the login user, as gathered")
    T.eq(jinja.expr("ansible_default_ipv4.address"), "facts.default_ipv4.address", "a nested fact")
    T.eq(jinja.expr("ansible_facts.os_family"), "ansible_facts.os_family", "ansible_facts is the same table")
end)

T.test("what is not understood is refused with the reason, never guessed", function()
    for _, c in ipairs(UNSUPPORTED) do
        local lua, err = jinja.expr(c[1])
        if lua then lua, err = jinja.condition(c[1]) end
        T.eq(lua, nil, "'" .. c[1] .. "' is refused")
        T.contains(tostring(err), c[2], "'" .. c[1] .. "': the reason")
    end
end)

T.test("templates: the subset converts, the rest is reported with positions", function()
    local out, problems = jinja.template("{# c #}\n{% for u in users %}\n{% if u.admin == true %}\n{{ u.name | " ..
        "upper }}\n{% elif u.name == 'bob' %}\nbob\n{% else %}\n-\n{% endif %}\n{% endfor %}\n")
    T.eq(#problems, 0, "no problems")
    T.eq(out, "{# c #}\n{% for u in users %}\n{% if u.admin == true %}\n{{ upper(u.name) }}\n{% elif u.name == " ..
        "'bob' %}\nbob\n{% else %}\n-\n{% end %}\n{% end %}\n", "converted")
    local tree = assert(require("cutover.template").parse(out))
    local ok, text = require("cutover.template").render(tree, scope())
    T.ok(ok, tostring(text))
    T.eq(text, "ALICE\nbob\nCAROL\n", "rendered")
    local _, ps = jinja.template("a\n{% set x = 1 %}\n  {% if x %}\nb {% if y %}c{% endif %}\n{{ x | to_nice_yaml " ..
        "}}\n{% for k, v in d.items() %}{% endfor %}\n{% if z %}\n")
    local got = {}
    for _, p in ipairs(ps) do got[#got + 1] = p.line .. ":" .. p.col end
    T.eq(table.concat(got, " "), "2:1 3:3 4:14 5:1 6:1",
        "positions of set, indented tag, tag ending text, filter, items()")
    _, ps = jinja.template("{% if z %}\nx\n")
    T.eq(#ps, 1, "unclosed")
    T.contains(ps[1].msg, "never closed", "unclosed block")
end)

T.done()
