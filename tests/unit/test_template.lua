-- Units of lua/cutover/template.lua: control flow, nesting, comments,
-- whitespace control, errors with line and column, Jinja-only syntax
-- refused, one sandbox budget per file.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local template = require("cutover.template")
local vars = require("cutover.vars")
local expr = require("cutover.expr")
local yaml = require("cutover.core.yaml")

local function scope(v)
    return vars.new({ inventory_hostname = "web1" }, { { vars = v or {}, literal = true } })
end
local S = scope({
    env = "prod", n = 3, users = { "ann", "bob" }, none = yaml.null,
    ports = { http = 80, https = 443 },
    groups = { { name = "web", hosts = { "w1", "w2" } }, { name = "db", hosts = {} } },
})

local function render(text, sc)
    local ok, v, line = template.render(text, sc or S)
    if not ok then error("render failed: " .. tostring(line) .. ": " .. tostring(v), 2) end
    return v
end
-- a parse error: message, line, column
local function perr(text)
    local tree, msg, line, col = template.parse(text)
    T.eq(tree, nil, "parse of " .. text .. " fails")
    return msg, line, col
end

T.test("if / elif / else / end", function()
    local t = "{% if env == 'dev' %}D{% elif env == 'prod' %}P{% else %}O{% end %}"
    T.eq(render(t), "P", "elif")
    T.eq(render(t, scope({ env = "dev" })), "D", "if")
    T.eq(render(t, scope({ env = "qa" })), "O", "else")
    T.eq(render("{% if none %}x{% endif %}"), "", "null is false; endif accepted")
    T.eq(render("{% if n > 2 %}{{ n }} big{% end %}"), "3 big", "expression inside")
end)

T.test("for over lists and mappings, nested", function()
    T.eq(render("{% for u in users %}[{{ u }}]{% end %}"), "[ann][bob]", "list")
    T.eq(render("{% for i, u in ipairs(users) %}{{ i }}={{ u }} {% endfor %}"), "1=ann 2=bob ", "ipairs")
    T.eq(render("{% for k, v in pairs(ports) %}{{ k }}:{{ v }};{% end %}"), "http:80;https:443;", "pairs sorted")
    T.eq(render("{% for k in pairs(ports) %}{{ k }} {% end %}"), "http https ", "keys")
    T.eq(render("{% for g in groups %}{{ g.name }}:{% for h in g.hosts %}{% if h == 'w2' %}*{% end %}{{ h }},{% " ..
        "end %};{% end %}"),
         "web:w1,*w2,;db:;", "nested for and if")
    T.eq(render("{% for u in none %}x{% end %}"), "", "null: no iteration")
    T.eq(render("{% for u in users %}{% end %}{{ users[1] }}"), "ann", "the loop variable does not leak")
    local ok, msg = template.render("{% for u in users %}{% end %}{{ u }}", S)
    T.eq(ok, false, "u is undefined after the loop")
    T.contains(msg, "undefined variable 'u'", "message")
    local ok2, msg2, line2 = template.render("a\n{% for x in ports %}{% end %}", S)
    T.eq(ok2, false, "a mapping in a one-variable for")
    T.contains(msg2, "write 'for k, v in pairs(ports)'", "hint")
    T.eq(line2, 2, "line")
    local ok3, msg3 = template.render("{% for x in env %}{% end %}", S)
    T.eq(ok3, false, "text is not a list")
    T.contains(msg3, "gives string, not a list", "message")
end)

T.test("comments and whitespace control", function()
    T.eq(render("a{# note #}b"), "ab", "comment")
    T.eq(render("a{# {{ nosuch }} {% if %} #}b"), "ab", "a comment is not evaluated")
    T.eq(render("a  \n  {{- n -}}  \n b"), "a3b", "{{- -}}")
    T.eq(render("x\n{% if true %}\ny\n{% end %}\nz\n"), "x\ny\nz\n", "a tag on its own line leaves no line")
    T.eq(render("{% for u in users -%}\n   {{ u }}\n{%- end %}"), "annbob", "{%- -%}")
    T.eq(render("a {#- c -#} b"), "ab", "{#- -#}")
    T.eq(render("{{ '{%' }} raw"), "{% raw", "a literal {% through an expression")
    T.eq(render("a\n  {% for u in users %}\n    {% if u == 'bob' %}\n  - {{ u }}\n    {% end %}\n  {% end %}\nb\n"),
         "a\n  - bob\nb\n", "indented tag lines leave nothing")
    T.eq(render("{% if true %}x{% end %}\ny"), "x\ny", "a tag with text on its line keeps the newline")
end)

T.test("errors name the line and column", function()
    local msg, line, col = perr("a\nb {% if n %}\nc\n")
    T.eq(msg, "'{% if %}' is never closed (add '{% end %}')", "unclosed if")
    T.eq(line, 2, "line"); T.eq(col, 3, "column")
    msg, line, col = perr("{% for u in users %}\n  {% if x %}\n{% end %}")
    T.eq(msg, "'{% for %}' is never closed (add '{% end %}')", "unclosed for")
    T.eq(line, 1, "line"); T.eq(col, 1, "column")
    msg, line, col = perr("x\n  {% end %}")
    T.contains(msg, "without an open", "stray end"); T.eq(line, 2, "line"); T.eq(col, 3, "column")
    msg = perr("{% if a %}{% endfor %}")
    T.contains(msg, "'{% endfor %}' closes the '{% if %}' of line 1", "wrong end")
    msg = perr("{% else %}")
    T.contains(msg, "outside an '{% if %}'", "stray else")
    msg = perr("{% if a %}{% else %}{% elif b %}{% end %}")
    T.contains(msg, "after '{% else %}'", "elif after else")
    msg, line, col = perr("ok\n{{ n +  }}")
    T.contains(msg, "bad expression 'n +'", "bad expression"); T.eq(line, 2, "line"); T.eq(col, 1, "column")
    msg = perr("{% if n = 1 %}{% end %}")
    T.contains(msg, "compare with '=='", "bad condition")
    msg, line, col = perr("a {{ n")
    T.eq(msg, "'{{' without a closing '}}'", "open {{"); T.eq(col, 3, "column")
    T.eq(perr("{# x"), "'{#' without a closing '#}'", "open comment")
    T.eq(perr("{% for in users %}{% end %}"), "'{% for %}' must be 'for x in list' or 'for k, v in pairs(t)'",
        "bad for")
    T.contains(perr("{% frobnicate %}"), "unknown tag '{% frobnicate %}'", "unknown tag")
    local deep = string.rep("{% if true %}", 70) .. string.rep("{% end %}", 70)
    T.contains(perr(deep), "nested more than 64 deep", "depth")
end)

T.test("Jinja-only syntax is an error naming it", function()
    T.contains(perr("{% macro f() %}x{% endmacro %}"),
        "'{% macro %}' is Jinja syntax that cutover templates do not have", "macro")
    T.contains(perr("{% include 'x.j2' %}"), "'{% include %}' is Jinja syntax", "include")
    T.contains(perr("{% block body %}{% endblock %}"), "'{% block %}' is Jinja syntax", "block")
    T.contains(perr("{% set x = 1 %}"), "'{% set %}' is Jinja syntax", "set")
    T.contains(perr("{{ env | upper }}"), "write upper(x) instead", "filter in {{ }}")
    T.contains(perr("{% if env | length %}{% end %}"), "write len(x) instead", "filter in a condition")
end)

T.test("a run-time error names the line; unknown values stay unknown", function()
    local ok, msg, line = template.render("a\nb\n{% if nosuch %}x{% end %}", S)
    T.eq(ok, false, "fails")
    T.contains(msg, "undefined variable 'nosuch'", "message")
    T.eq(line, 3, "line")
    local ok2, msg2, line2, unknown = template.render("{% for x in r.lines %}{{ x }}{% end %}",
                                                      scope({ r = expr.UNKNOWN_VALUE }))
    T.eq(ok2, false, "unknown")
    T.eq(unknown, "r", "names the variable")
    T.eq(line2, 1, "line")
    T.contains(msg2, "depends on 'r'", "message")
end)

T.test("one budget for the whole file", function()
    local big = {}
    for i = 1, 100000 do big[i] = i end
    local B = scope({ big = big })
    -- each {{ }} alone is cheap; all of them together exceed the budget
    local ok, msg = template.render("{% for i in big %}{% for j in big %}{{ j }}{% end %}{% end %}", B)
    T.eq(ok, false, "stopped")
    T.contains(msg, "instruction limit exceeded", "message")
    local small = {}
    for i = 1, 50 do small[i] = i end
    T.eq(#render("{% for i in small %}{{ i }},{% end %}", scope({ small = small })) > 0, true, "small is fine")
end)

T.done()
