-- Units of core/yaml.c: yaml.load(text, name [, opts]) and yaml.unpack.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local yaml = require("cutover.core.yaml")

-- Loads text that must be valid; returns value, pos, keypos.
local function load_ok(text, opts)
    local v, pos, keypos = yaml.load(text, "t.yml", opts)
    if v == nil then error("load failed: " .. tostring(pos), 2) end
    return v, pos, keypos
end

-- Loads text that must fail; returns the message after checking the
-- (nil, message) shape.
local function load_err(text, opts)
    local v, err, extra = yaml.load(text, "t.yml", opts)
    T.eq(v, nil, "value of a failed load")
    T.eq(type(err), "string", "type of the message")
    T.eq(extra, nil, "nothing after the message")
    return err
end

-- "line:col" of a packed position.
local function at(packed)
    if packed == nil then return nil end
    local line, col = yaml.unpack(packed)
    return line .. ":" .. col
end

local function count(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n
end

T.test("null: ~, null forms, empty value and key: are yaml.null", function()
    local v = load_ok("a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: ''\ng: nil\n")
    for _, k in ipairs({ "a", "b", "c", "d", "e" }) do
        T.eq(v[k], yaml.null, k)
    end
    T.eq(v.f, "", "quoted empty string stays a string")
    T.eq(v.g, "nil", "'nil' is not a YAML null")
    T.eq(type(yaml.null), "userdata", "yaml.null type")
    T.eq(count(v), 7, "a key without a value still exists")
end)

T.test("empty document: yaml.null, with empty position tables", function()
    local v, pos, keypos = load_ok("")
    T.eq(v, yaml.null, "empty text")
    T.eq(next(pos), nil, "no positions")
    T.eq(next(keypos), nil, "no key positions")
    T.eq((load_ok("# only a comment\n")), yaml.null, "comment only")
    T.eq((load_ok("~\n")), yaml.null, "a lone ~")
end)

T.test("booleans: YAML 1.1 yes/no/on/off in three cases", function()
    local v = load_ok([[
t1: true
t2: True
t3: TRUE
t4: yes
t5: Yes
t6: YES
t7: on
t8: On
t9: ON
f1: false
f2: False
f3: FALSE
f4: no
f5: No
f6: NO
f7: off
f8: Off
f9: OFF
s1: yEs
s2: y
s3: n
]])
    for i = 1, 9 do
        T.eq(v["t" .. i], true, "t" .. i)
        T.eq(v["f" .. i], false, "f" .. i)
    end
    T.eq(v.s1, "yEs", "mixed case is text")
    T.eq(v.s2, "y", "y is text")
    T.eq(v.s3, "n", "n is text")
end)

T.test("integers: decimal, signs, 0644 octal, 0o17, 0x1F", function()
    local v = load_ok([[
zero: 0
dec: 42
neg: -12
plus: +12
mode: 0644
octal: 0o17
hex: 0x1F
hexlow: 0xff
max: 9223372036854775807
min: -9223372036854775808
]])
    local want = { zero = 0, dec = 42, neg = -12, plus = 12, mode = 420,
                   octal = 15, hex = 31, hexlow = 255,
                   max = math.maxinteger, min = math.mininteger }
    for k, x in pairs(want) do
        T.eq(math.type(v[k]), "integer", k .. " is an integer")
        T.eq(v[k], x, k)
    end
end)

T.test("integers: overflow and non-numbers stay strings", function()
    local v = load_ok([[
big: 99999999999999999999
over: 9223372036854775808
under: -9223372036854775809
bad_octal: 09
bad_hex: 0xZZ
under_score: 1_000
version: 1.2.3
]])
    T.eq(v.big, "99999999999999999999", "big")
    T.eq(v.over, "9223372036854775808", "maxinteger + 1")
    T.eq(v.under, "-9223372036854775809", "mininteger - 1")
    T.eq(v.bad_octal, "09", "09 is not octal")
    T.eq(v.bad_hex, "0xZZ", "0xZZ")
    T.eq(v.under_score, "1_000", "underscores are not read")
    T.eq(v.version, "1.2.3", "a version number")
end)

T.test("floats: fraction, exponent, .inf, -.inf, .nan", function()
    local v = load_ok("a: 1.5\nb: -0.25\nc: 1e3\nd: 2.5E-1\ne: .inf\nf: -.Inf\ng: +.INF\nh: .nan\ni: .5\n")
    T.eq(math.type(v.a), "float", "1.5 is a float")
    T.eq(v.a, 1.5, "a")
    T.eq(v.b, -0.25, "b")
    T.eq(math.type(v.c), "float", "1e3 is a float")
    T.eq(v.c, 1000.0, "c")
    T.eq(v.d, 0.25, "d")
    T.eq(v.e, math.huge, ".inf")
    T.eq(v.f, -math.huge, "-.Inf")
    T.eq(v.g, math.huge, "+.INF")
    T.ok(v.h ~= v.h, ".nan is NaN")
    T.eq(v.i, 0.5, ".5")
    local s = load_ok("a: inf\nb: nan\nc: 0x1p3\nd: 1e\n")
    T.eq(s.a, "inf", "inf without the dot is text")
    T.eq(s.b, "nan", "nan without the dot is text")
    T.eq(s.c, "0x1p3", "C hex floats are text")
    T.eq(s.d, "1e", "an exponent without digits is text")
end)

T.test("quoted scalars and !!str always stay strings", function()
    local v = load_ok([[
a: "yes"
b: 'no'
c: "12"
d: '0644'
e: !!str 12
f: !!str yes
g: !!str
h: "~"
i: |
  yes
j: >-
  12
]])
    T.eq(v.a, "yes", "double-quoted yes")
    T.eq(v.b, "no", "single-quoted no")
    T.eq(v.c, "12", "quoted number")
    T.eq(v.d, "0644", "quoted mode")
    T.eq(v.e, "12", "!!str 12")
    T.eq(v.f, "yes", "!!str yes")
    T.eq(v.g, "", "!!str with no value")
    T.eq(v.h, "~", "quoted ~")
    T.eq(v.i, "yes\n", "literal block")
    T.eq(v.j, "12", "folded block")
end)

T.test("keys are always strings, as written", function()
    local v = load_ok("1: a\n0x10: b\ntrue: c\nno: d\n~: e\n1.5: f\nnull: g\n\"k\": h\n010: i\n01: j\n")
    T.eq(v["1"], "a", "integer key")
    T.eq(v[1], nil, "no integer key")
    T.eq(v["0x10"], "b", "hex key keeps its text")
    T.eq(v["true"], "c", "true key")
    T.eq(v[true], nil, "no boolean key")
    T.eq(v["no"], "d", "no key")
    T.eq(v["~"], "e", "~ key")
    T.eq(v["1.5"], "f", "float key")
    T.eq(v["null"], "g", "null key")
    T.eq(v.k, "h", "quoted key")
    T.eq(v["010"], "i", "octal-looking key keeps its text (a host name, say)")
    T.eq(v["8"], nil, "not its value")
    T.eq(v["01"], "j", "01 and 1 are different keys")
    for k in pairs(v) do T.eq(type(k), "string", "type of key " .. tostring(k)) end
end)

T.test("positions: pos of tables, keypos of keys, exact line and column", function()
    local text = table.concat({
        "# comment",            -- 1
        "- name: first",        -- 2
        "  hosts: all",         -- 3
        "  steps:",             -- 4
        "    - command: x",     -- 5
        "      when:   true",   -- 6
        "- name: second",       -- 7
        "  vars: {a: 1,  b: 2}", -- 8
    }, "\n") .. "\n"
    local v, pos, keypos = load_ok(text)
    T.eq(at(pos[v]), "2:1", "root sequence")
    T.eq(at(keypos[v][1]), "2:3", "item 1")
    T.eq(at(keypos[v][2]), "7:3", "item 2")
    local p1 = v[1]
    T.eq(at(pos[p1]), "2:3", "play 1 mapping")
    T.eq(at(keypos[p1].name), "2:3", "key name")
    T.eq(at(keypos[p1].hosts), "3:3", "key hosts")
    T.eq(at(keypos[p1].steps), "4:3", "key steps")
    local steps = p1.steps
    T.eq(at(pos[steps]), "5:5", "steps sequence")
    T.eq(at(keypos[steps][1]), "5:7", "step 1 item")
    T.eq(at(keypos[steps[1]].command), "5:7", "key command")
    T.eq(at(keypos[steps[1]].when), "6:7", "key when")
    local vars = v[2].vars
    T.eq(at(pos[vars]), "8:9", "flow mapping")
    T.eq(at(keypos[vars].a), "8:10", "flow key a")
    T.eq(at(keypos[vars].b), "8:17", "flow key b")
    T.eq(pos["first"], nil, "scalars have no pos")
end)

T.test("positions: sequence items, including nested and flow ones", function()
    local v, pos, keypos = load_ok("list:\n  - a\n  -   b\n  - [x, y]\nflow: [1,  2]\n")
    T.eq(at(keypos[v.list][1]), "2:5", "item a")
    T.eq(at(keypos[v.list][2]), "3:7", "item b")
    T.eq(at(keypos[v.list][3]), "4:5", "nested flow item")
    T.eq(at(pos[v.list[3]]), "4:5", "nested flow sequence")
    T.eq(at(keypos[v.list[3]][2]), "4:9", "y")
    T.eq(at(keypos[v.flow][1]), "5:8", "flow item 1")
    T.eq(at(keypos[v.flow][2]), "5:12", "flow item 2")
end)

T.test("unpack: line << 20 | column", function()
    local l, c = yaml.unpack((7 << 20) | 13)
    T.eq(l, 7, "line")
    T.eq(c, 13, "column")
end)

T.test("anchors and aliases share the table", function()
    local v = load_ok("base: &b {x: 1, y: [1, 2]}\nother: *b\nlist: &l [a, b]\nagain: *l\nscalar: &s hello\ncopy: *s\n")
    T.ok(v.other == v.base, "mapping alias is the same table")
    T.ok(v.again == v.list, "sequence alias is the same table")
    T.eq(v.other.y[2], 2, "content through the alias")
    T.eq(v.copy, "hello", "scalar alias")
end)

T.test("merge keys: <<: *base, explicit keys win, lists of merges", function()
    local v, _, keypos = load_ok([[
base: &base {a: 1, b: 2, c: 3}
more: &more {c: 30, d: 40}
one:
  b: 20
  <<: *base
two:
  <<: [*more, *base]
  a: 100
inline:
  <<: {z: 26}
]])
    T.eq(v.one.a, 1, "merged a")
    T.eq(v.one.b, 20, "explicit b wins even though written before <<")
    T.eq(v.one.c, 3, "merged c")
    T.eq(v.one["<<"], nil, "no '<<' key left")
    T.eq(count(v.one), 3, "keys of one")
    T.eq(v.two.a, 100, "explicit a wins")
    T.eq(v.two.c, 30, "the first merge in the list wins")
    T.eq(v.two.d, 40, "d from more")
    T.eq(v.two.b, 2, "b from base")
    T.eq(count(v.two), 4, "keys of two")
    T.eq(v.base.b, 2, "the anchored mapping is not changed")
    T.eq(v.inline.z, 26, "inline merge")
    T.eq(keypos[v.one].a, nil, "a merged key has no position of its own")
    T.ok(keypos[v.one].b ~= nil, "an explicit key has one")
end)

T.test("merge key with a scalar is an error", function()
    T.eq(load_err("a: 1\n<<: 5\n"), "t.yml:3:1: a merge key '<<' needs a mapping or a list of mappings", "message")
end)

T.test("duplicate key: error with both positions", function()
    T.eq(load_err("a: 1\nb: 2\na: 3\n"), "t.yml:3:1: duplicate key 'a' (first at line 1)", "block mapping")
    T.eq(load_err("x:\n  - {k: 1,  k: 2}\n"), "t.yml:2:13: duplicate key 'k' (first at line 2)", "flow mapping")
end)

T.test("depth limit: opts.max_depth, default 64", function()
    T.eq(load_err("[[[[1]]]]", { max_depth = 3 }), "t.yml:1:4: nesting deeper than 3 levels", "max_depth 3")
    local v = load_ok("[[[1]]]", { max_depth = 3 })
    T.eq(v[1][1][1], 1, "exactly 3 levels load")
    local ok_text = string.rep("[", 64) .. string.rep("]", 64)
    T.eq(type((load_ok(ok_text))), "table", "64 levels by default")
    local deep = string.rep("[", 65) .. string.rep("]", 65)
    T.eq(load_err(deep), "t.yml:1:65: nesting deeper than 64 levels", "65 levels")
    local ok, err = pcall(yaml.load, "[]", "t.yml", { max_depth = 0 })
    T.eq(ok, false, "max_depth 0 is refused")
    T.contains(err, "max_depth out of range", "message")
    ok = pcall(yaml.load, "[]", "t.yml", { max_depth = 100000 })
    T.eq(ok, false, "a huge max_depth is refused")
end)

T.test("node limit: opts.max_nodes counts aliases expanded", function()
    T.eq(#load_ok("[1, 2, 3, 4]", { max_nodes = 5 }), 4, "5 nodes fit in 5")
    T.eq(load_err("[1, 2, 3, 4, 5]", { max_nodes = 5 }),
         "t.yml:1:14: document too large: more than 5 nodes with aliases expanded (alias expansion limit)", "6 nodes")
    -- a: 4 nodes; b: 1 + 3 * 4; root and keys: 1 + 2 keys
    local text = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n"
    T.eq(type((load_ok(text, { max_nodes = 20 }))), "table", "20 is enough")
    T.eq(load_err(text, { max_nodes = 19 }),
         "t.yml:2:13: document too large: more than 19 nodes with aliases expanded (alias expansion limit)",
             "19 is not")
end)

T.test("errors: syntax errors are nil, 'NAME:L:C: message'", function()
    T.eq(load_err("a: [1, 2\n", nil),
         "t.yml:2:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence that " ..
             "starts at line 1",
         "unclosed flow sequence")
    T.eq(load_err("a: 'x\n"),
         "t.yml:2:1: YAML syntax error: found unexpected end of stream while scanning a quoted scalar that starts " ..
             "at line 1",
         "unclosed quote")
    T.eq(load_err("a:\n\t- 1\n"),
         "t.yml:2:1: YAML syntax error: a tab cannot start a token here (indent YAML with spaces)", "tab")
    T.eq(load_err("a: b: c\n"),
         "t.yml:1:5: YAML syntax error: mapping values are not allowed in this context", "a: b: c")
    T.eq(load_err("a: \"\xff\"\n"), "t.yml:1:5: the file is not valid UTF-8 (invalid leading UTF-8 octet)",
         "bad leading byte")
    T.eq(load_err("# caf\xc3\xa9\nb: \xe9t\xe9\n"),
         "t.yml:2:4: the file is not valid UTF-8 (invalid trailing UTF-8 octet)",
         "Latin-1 text: the column counts characters")
    T.eq(load_err("a: \1\n"), "t.yml:1:4: YAML syntax error: control characters are not allowed", "control byte")
    T.eq(load_err("a: *nope\n"), "t.yml:1:4: unknown alias '*nope'", "unknown alias")
    T.eq(load_err("a: !vault x\n"), "t.yml:1:4: unsupported YAML tag '!vault'", "custom tag on a scalar")
    T.eq(load_err("a: !thing {b: 1}\n"), "t.yml:1:4: unsupported YAML tag '!thing'", "custom tag on a mapping")
    T.eq(load_err("? [a]\n: 1\n"), "t.yml:1:3: complex mapping keys are not supported", "complex key")
    T.eq(select(2, yaml.load("[", "/some/path.yml")):sub(1, 16), "/some/path.yml:2", "the name is used as given")
end)

T.test("multiple documents are refused; one explicit document is fine", function()
    T.eq(load_err("a: 1\n---\nb: 2\n"), "t.yml:2:1: only one YAML document per file is supported", "two documents")
    T.eq(load_err("---\na: 1\n---\n"), "t.yml:3:1: only one YAML document per file is supported",
        "empty second document")
    local v = load_ok("---\na: 1\n...\n")
    T.eq(v.a, 1, "--- a ... is one document")
end)

T.test("text with NUL bytes and the max_bytes constant", function()
    T.eq(yaml.max_bytes, 8 * 1024 * 1024, "max_bytes")
    T.eq(load_err("a: 1\0b: 2\n"), "t.yml:1:5: YAML syntax error: control characters are not allowed", "NUL byte")
end)

T.done()
