-- Units of lua/cutover/convert/yaml_out.lua (what the converter writes
-- reads back as the same value through cutover's YAML loader, keys in
-- the order given) and of jinja.literal (text shown as written, never
-- rendered as an expression).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local Y = require("cutover.convert.yaml_out")
local jinja = require("cutover.convert.jinja")
local yaml = require("cutover.core.yaml")
local expr = require("cutover.expr")
local vars = require("cutover.vars")

local TRICKY = {
    "", " ", "yes", "No", "on", "OFF", "y", "n", "true", "False", "null", "~", "NULL",
    "0644", "0x1F", "1e3", "1_000", "12:30", "-1", "+1", ".5", ".inf", "-.inf", ".nan",
    "- item", "? key", ": value", "key: value", "a #comment", "#hash", "a:", "@at", "`tick`",
    "!tag", "&anchor", "*alias", "%percent", "|pipe", ">fold", "'single'", '"double"',
    "{{ x }}", "{% if %}", "[list]", "{map}", "trailing ", "tab\there", "line\nbreak\n",
    "two\n\nblank lines\n", "no final newline\nhere", "  leading spaces\n", "crlf\r\n",
    "ünïcödé", "back\\slash", "nul\0byte", "del\127", "=", "a=b", "/etc/x.conf", "C:\\dir",
}

T.test("every tricky text reads back the same, as a value and as a key", function()
    for _, s in ipairs(TRICKY) do
        local doc = Y.dump(Y.map():put("v", s):put("l", { s, 1 }))
        local v = yaml.load(doc, "t.yml")
        T.ok(v ~= nil, "loads: " .. doc)
        T.eq(v.v, s, "value " .. string.format("%q", s) .. " written as " .. doc)
        T.eq(v.l[1], s, "list item " .. string.format("%q", s))
        if s ~= "" and not s:find("%z") then
            local kd = Y.dump(Y.map():put(s, 1))
            local kv = yaml.load(kd, "t.yml")
            T.ok(kv ~= nil and kv[s] == 1, "key " .. string.format("%q", s) .. " written as " .. kd)
        end
    end
end)

T.test("scalars keep their type; nesting and order are kept", function()
    local m = Y.map():put("z", 1):put("a", 2.5):put("m", true):put("n", yaml.null)
        :put("list", { Y.map():put("b", 1):put("a", { "x", {} }), {} }):put("empty", Y.map())
    local doc = Y.dump(m)
    T.eq(doc, "z: 1\na: 2.5\nm: true\n\"n\": null\nlist:\n  - b: 1\n    a:\n      - x\n      - []\n  - []\nempty: " ..
        "{}\n", "text")
    local v = yaml.load(doc, "t.yml")
    T.eq(v.z, 1, "int"); T.eq(math.type(v.z), "integer", "integer")
    T.eq(v.a, 2.5, "float"); T.eq(v.m, true, "bool"); T.eq(v.n, yaml.null, "null")
    T.eq(v.list[1].a[1], "x", "nested")
end)

T.test("jinja.literal text renders as itself", function()
    local S = vars.new({ inventory_hostname = "h" }, { { vars = {}, literal = true } })
    for _, s in ipairs({ "{{ x | upper }}", "a {% if y %} b {# c #}", "}} {{", "{{ '{{' }}", "plain" }) do
        local lit = jinja.literal(s)
        local ok, out = expr.render(lit, S)
        T.ok(ok, tostring(out))
        T.eq(out, s, "literal of " .. s)
    end
end)

T.done()
