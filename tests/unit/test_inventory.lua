-- Unit: inventories: YAML and INI, ranges, group_vars/host_vars, folders,
-- host lists, host patterns and --limit @FILE, exact errors, and the
-- `cutover inventory` command (--list JSON, --graph, --host).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local inventory = require("cutover.inventory")
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")

local function join(list) return table.concat(list, " ") end

local function mkdirs(path)
    local p = ""
    for part in path:gmatch("[^/]+") do
        p = p .. "/" .. part
        if not fs.stat(p) then assert(fs.mkdir(p, 448)) end
    end
end

local function write(path, text)
    mkdirs(path:match("^(.*)/[^/]*$"))
    return T.write(path, text)
end

local function load(path)
    local inv, err = inventory.load(path)
    if not inv then error("load " .. path .. ": " .. tostring(err), 2) end
    return inv
end

-- key=value list of a table, sorted, values shown with their type
local function flat(t)
    local out = {}
    for k, v in pairs(t) do
        local s
        if type(v) == "string" then s = string.format("%q", v)
        elseif type(v) == "table" then s = json.encode(v)
        else s = tostring(v) end
        out[#out + 1] = k .. "=" .. s
    end
    table.sort(out)
    return table.concat(out, " ")
end

local SAME_YAML = [[
all:
  hosts:
    jump1:
      ansible_host: 192.0.2.10
  vars:
    ansible_user: deploy
    region: eu
  children:
    prod:
      children:
        web:
        db:
      vars:
        tier: prod
web:
  hosts:
    web[01:03]:
      ansible_port: 2222
      note: "two words"
  vars:
    role: frontend
    workers: 4
db:
  hosts:
    "db-[a:b]:2200":
    db-c:
      ansible_become: true
]]

local SAME_INI = [[
# the same inventory, in INI
jump1 ansible_host=192.0.2.10

[web]
web[01:03] ansible_port=2222 note="two words"

[web:vars]
role = frontend
workers=4   # a comment

; another comment
[db]
db-[a:b]:2200
db-c ansible_become=true

[prod:children]
web
db

[prod:vars]
tier=prod

[all:vars]
ansible_user=deploy
region='eu'
]]

local SAME_LIST = [[
{
  "_meta": {
    "hostvars": {
      "db-a": {
        "ansible_port": 2200,
        "ansible_user": "deploy",
        "region": "eu",
        "tier": "prod"
      },
      "db-b": {
        "ansible_port": 2200,
        "ansible_user": "deploy",
        "region": "eu",
        "tier": "prod"
      },
      "db-c": {
        "ansible_become": true,
        "ansible_user": "deploy",
        "region": "eu",
        "tier": "prod"
      },
      "jump1": {
        "ansible_host": "192.0.2.10",
        "ansible_user": "deploy",
        "region": "eu"
      },
      "web01": {
        "ansible_port": 2222,
        "ansible_user": "deploy",
        "note": "two words",
        "region": "eu",
        "role": "frontend",
        "tier": "prod",
        "workers": 4
      },
      "web02": {
        "ansible_port": 2222,
        "ansible_user": "deploy",
        "note": "two words",
        "region": "eu",
        "role": "frontend",
        "tier": "prod",
        "workers": 4
      },
      "web03": {
        "ansible_port": 2222,
        "ansible_user": "deploy",
        "note": "two words",
        "region": "eu",
        "role": "frontend",
        "tier": "prod",
        "workers": 4
      }
    }
  },
  "all": {
    "children": [
      "prod",
      "ungrouped"
    ],
    "vars": {
      "ansible_user": "deploy",
      "region": "eu"
    }
  },
  "db": {
    "hosts": [
      "db-a",
      "db-b",
      "db-c"
    ]
  },
  "prod": {
    "children": [
      "db",
      "web"
    ],
    "vars": {
      "tier": "prod"
    }
  },
  "ungrouped": {
    "hosts": [
      "jump1"
    ]
  },
  "web": {
    "hosts": [
      "web01",
      "web02",
      "web03"
    ],
    "vars": {
      "role": "frontend",
      "workers": 4
    }
  }
}
]]

local SAME_GRAPH = [[
@all:
  |--@prod:
  |  |--@db:
  |  |  |--db-a
  |  |  |--db-b
  |  |  |--db-c
  |  |--@web:
  |  |  |--web01
  |  |  |--web02
  |  |  |--web03
  |--@ungrouped:
  |  |--jump1
]]

T.test("YAML and INI forms of one inventory give identical results", function()
    local d = T.tmpdir()
    local y = load(T.write(d .. "/inv.yml", SAME_YAML))
    local i = load(T.write(d .. "/inv.ini", SAME_INI))
    T.eq(y:list_json(), SAME_LIST, "YAML --list")
    T.eq(i:list_json(), SAME_LIST, "INI --list")
    T.eq(y:graph(), SAME_GRAPH, "YAML --graph")
    T.eq(i:graph(), SAME_GRAPH, "INI --graph")
    T.eq(join(y.order), "jump1 web01 web02 web03 db-a db-b db-c", "YAML host order")
    T.eq(join(i.order), "jump1 web01 web02 web03 db-a db-b db-c", "INI host order")
    for _, inv in ipairs({ y, i }) do
        T.eq(join(inv:select("prod:!db-c")), "web01 web02 web03 db-a db-b")
        T.eq(math.type(inv:hostvars("web02").ansible_port), "integer")
    end
end)

T.test("an INI file is recognised by .ini or by its first line", function()
    T.eq(inventory.looks_ini("x.ini", "all:\n"), true)
    T.eq(inventory.looks_ini("x.yml", "[web]\n"), false)
    T.eq(inventory.looks_ini("x.yaml", "web1\n"), false)
    T.eq(inventory.looks_ini("hosts", "# c\n; c\n\n[web]\nw1\n"), true)
    T.eq(inventory.looks_ini("hosts", "web1 ansible_host=10.0.0.1\n"), true)
    T.eq(inventory.looks_ini("hosts", "web1\n"), true)
    T.eq(inventory.looks_ini("hosts", "web1:2222\n"), true)
    T.eq(inventory.looks_ini("hosts", "# c\nall:\n  hosts:\n"), false)
    T.eq(inventory.looks_ini("hosts", "all: { hosts: { a: } }\n"), false)
    T.eq(inventory.looks_ini("hosts", "---\nall:\n"), false)
    T.eq(inventory.looks_ini("hosts", ""), false)
    local d = T.tmpdir()
    local inv = load(T.write(d .. "/hosts", "[web]\nw1 a=1\n"))
    T.eq(join(inv:select("web")), "w1")
    inv = load(T.write(d .. "/hosts2", "all:\n  hosts:\n    y1:\n"))
    T.eq(join(inv:select("all")), "y1")
end)

T.test("host ranges: numbers with padding, steps, letters, several; ports", function()
    local cases = {
        { "web[01:03]", "web01 web02 web03" },
        { "web[1:3].example.com", "web1.example.com web2.example.com web3.example.com" },
        { "h[8:11]", "h8 h9 h10 h11" },
        { "h[08:11]", "h08 h09 h10 h11" },
        { "h[1:10:4]", "h1 h5 h9" },
        { "h[:2]", "h0 h1 h2" },
        { "db-[a:c]", "db-a db-b db-c" },
        { "[y:B]", "y z A B" },
        { "r[1:2]-[a:b]", "r1-a r1-b r2-a r2-b" },
        { "plain", "plain" },
    }
    for _, c in ipairs(cases) do
        T.eq(join(assert(inventory.expand_ranges(c[1]))), c[2], c[1])
    end
    local bad = {
        { "web[01:03", "unclosed range in 'web[01:03' (expected [START:END])" },
        { "web[01:3]", "bad range [01:3] in 'web[01:3]': a zero-padded START and END must have the same number of " ..
            "digits" },
        { "web[3:1]", "bad range [3:1] in 'web[3:1]': START is after END" },
        { "web[1:]", "bad range [1:] in 'web[1:]': no END" },
        { "web[1]", "bad range [1] in 'web[1]' (expected [START:END] or [START:END:STEP])" },
        { "web[1:5:0]", "bad range [1:5:0] in 'web[1:5:0]': STEP must be a whole number of at least 1" },
        { "web[a:3]", "bad range [a:3] in 'web[a:3]' (expected numbers like [01:20] or letters like [a:f])" },
        { "web[1:200000]", "range [1:200000] in 'web[1:200000]' expands to more than 100000 hosts" },
    }
    for _, c in ipairs(bad) do
        local names, err = inventory.expand_ranges(c[1])
        T.eq(names, nil, c[1])
        T.eq(err, c[2], c[1])
    end
    local entries = {
        { "web1", "web1", nil },
        { "web1:2222", "web1", 2222 },
        { "web[1:2]:22", "web1 web2", 22 },
        { "[2001:db8::1]:2200", "2001:db8::1", 2200 },
        { "[2001:db8::1]", "2001:db8::1", nil },
        { "fe80::1", "fe80::1", nil },
        { "10.0.0.1:22", "10.0.0.1", 22 },
    }
    for _, c in ipairs(entries) do
        local names, port = inventory.host_entry(c[1])
        T.eq(join(names), c[2], c[1])
        T.eq(port, c[3], c[1] .. " port")
    end
    local names, err = inventory.host_entry("web1:70000")
    T.eq(names, nil)
    T.eq(err, "bad port in 'web1'")
end)

T.test("INI values: quotes, integers, booleans for ansible_* and cutover_*", function()
    local d = T.tmpdir()
    local inv = load(T.write(d .. "/v.ini", [[
h1 ansible_port=2222 n=-5 z=0 octal=0644 big=99999999999999999999 q='2222' dq="yes" ansible_become=yes cutover_ssh_agent=False other=yes t=True path=/a=b esc=a\ b empty=
[g]
h1
[g:vars]
ansible_ssh_pipelining = No
text = hello world  # trailing comment
hash = a#b
quoted = "x # not a comment"
single = ' spaced '
number = 42
neg = -7
word = true
]]))
    T.eq(flat(inv.hosts.h1.vars), 'ansible_become=true ansible_port=2222 big="99999999999999999999" ' ..
        'cutover_ssh_agent=false dq="yes" empty="" esc="a b" n=-5 octal="0644" other="yes" path="/a=b" ' ..
        'q="2222" t=true z=0')
    T.eq(flat(inv.groups.g.vars), 'ansible_ssh_pipelining=false hash="a#b" neg=-7 number=42 ' ..
        'quoted="x # not a comment" single=" spaced " text="hello world" word="true"')
    T.eq(math.type(inv.hosts.h1.vars.ansible_port), "integer")
end)

T.test("group_vars and host_vars: files, extension order, folders, precedence", function()
    local d = T.tmpdir()
    local inv_path = write(d .. "/inv/hosts.ini", [[
[web]
web1 own=inline shared=host-inline
web2
[web:vars]
from=inline
kept=inline
[db]
db1
]])
    write(d .. "/inv/group_vars/all.yml", "from: all-file\nlevel: all\n")
    -- a folder: files in name order, later wins; hidden and other files skipped
    write(d .. "/inv/group_vars/web/10-base.yml", "from: web-10\nlevel: web\nport: 80\n")
    write(d .. "/inv/group_vars/web/20-more.yaml", "port: 8080\n")
    write(d .. "/inv/group_vars/web/30-plain", "plain: yes\n")
    write(d .. "/inv/group_vars/web/sub/40.json", "{\"json\": 1}\n")
    write(d .. "/inv/group_vars/web/.hidden.yml", "port: 1\n")
    write(d .. "/inv/group_vars/web/notes.md", "port: 2\n")
    write(d .. "/inv/group_vars/web/old.yml.bak", "port: 3\n")
    -- the first of NAME, NAME.yml, NAME.yaml, NAME.json is read
    write(d .. "/inv/group_vars/db", "pick: no-extension\n")
    write(d .. "/inv/group_vars/db.yml", "pick: yml\n")
    write(d .. "/inv/host_vars/web1.yaml", "own: file\n")
    write(d .. "/inv/host_vars/web1.json", "{\"own\": \"json\"}\n")
    write(d .. "/inv/host_vars/web2.yml", "")
    write(d .. "/inv/host_vars/nohost.yml", "x: 1\n")
    write(d .. "/inv/group_vars/nogroup.yml", "x: 1\n")
    local inv = load(inv_path)
    T.eq(flat(inv.groups.all.vars), 'from="all-file" level="all"')
    T.eq(flat(inv.groups.web.vars), 'from="web-10" json=1 kept="inline" level="web" plain=true port=8080')
    T.eq(flat(inv.groups.db.vars), 'pick="no-extension"')
    T.eq(flat(inv.hosts.web1.vars), 'own="file" shared="host-inline"')
    T.eq(flat(inv:hostvars("web1")), 'from="web-10" json=1 kept="inline" level="web" own="file" ' ..
        'plain=true port=8080 shared="host-inline"')
    T.eq(flat(inv:hostvars("db1")), 'from="all-file" level="all" pick="no-extension"')
    T.eq(inv.hosts.nohost, nil)
    T.eq(inv.groups.nogroup, nil)
    -- beside a YAML inventory too
    local y = write(d .. "/y/inv.yml", "web:\n  hosts:\n    w1: { a: inline }\n")
    write(d .. "/y/host_vars/w1", "a: file\n")
    T.eq(flat(load(y):hostvars("w1")), 'a="file"')
end)

T.test("group_vars errors name FILE:LINE:COL", function()
    local d = T.tmpdir()
    local inv = write(d .. "/hosts.ini", "[web]\nw1\n")
    write(d .. "/group_vars/web.yml", "- a\n- b\n")
    local _, err = inventory.load(inv)
    T.eq(err, d .. "/group_vars/web.yml:1:1: group_vars file must be a mapping of variable names to values")
    write(d .. "/group_vars/web.yml", "ok: 1\n")
    write(d .. "/host_vars/w1.yml", "x: 1\nx: 2\n")
    _, err = inventory.load(inv)
    T.match(err, "^" .. d:gsub("%p", "%%%0") .. "/host_vars/w1%.yml:2:1: ", "host_vars error position")
    local r = T.run({ "inventory", "-i", inv, "--list" })
    T.eq(r.rc, 2)
    T.eq(r.stdout, "")
    T.eq(r.stderr, err .. "\n")
end)

T.test("a folder inventory: files merged in name order, junk skipped", function()
    local d = T.tmpdir()
    write(d .. "/inv/01-hosts.ini", "[web]\nweb1\n[web:vars]\nsrc=ini\n")
    write(d .. "/inv/02-more.yml", "web:\n  hosts:\n    web2:\n  vars:\n    src: yml\ndb:\n  hosts:\n    db1:\n")
    write(d .. "/inv/03-children", "[prod:children]\nweb\ndb\n")
    write(d .. "/inv/sub/04.ini", "[extra]\nx1\n")
    for _, junk in ipairs({ "hosts~", "hosts.orig", "hosts.bak", "site.retry", ".hidden", "README.md" }) do
        write(d .. "/inv/" .. junk, "[broken\n")
    end
    write(d .. "/inv/group_vars/prod.yml", "tier: prod\n")
    write(d .. "/inv/host_vars/db1.yml", "role: db\n")
    local inv = load(d .. "/inv")
    T.eq(inv:graph(), [[
@all:
  |--@extra:
  |  |--x1
  |--@prod:
  |  |--@db:
  |  |  |--db1
  |  |--@web:
  |  |  |--web1
  |  |  |--web2
  |--@ungrouped:
]])
    T.eq(flat(inv.groups.web.vars), 'src="yml"')
    T.eq(flat(inv:hostvars("db1")), 'role="db" tier="prod"')
    -- an error in one file of the folder
    write(d .. "/inv/05-bad.ini", "[web:varz]\n")
    local _, err = inventory.load(d .. "/inv")
    T.eq(err, d .. "/inv/05-bad.ini:1: section [web:varz]: unknown type 'varz' (expected children or vars) (did " ..
        "you mean 'vars'?)")
end)

T.test("a host list: -i 'h1,h2,' with ports", function()
    local inv = load("h1,h2:2222, h3 ,")
    T.eq(join(inv.order), "h1 h2 h3")
    T.eq(inv.hosts.h2.vars.ansible_port, 2222)
    T.eq(inv:graph(), "@all:\n  |--@ungrouped:\n  |  |--h1\n  |  |--h2\n  |  |--h3\n")
    inv = load("single,")
    T.eq(join(inv:select("all")), "single")
    local _, err = inventory.load("a,web[1:,")
    T.eq(err, "host list 'a,web[1:,': unclosed range in 'web[1:' (expected [START:END])")
    local r = T.run({ "inventory", "-i", "x1,x2,", "--graph" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, "@all:\n  |--@ungrouped:\n  |  |--x1\n  |  |--x2\n")
end)

T.test("host patterns and --limit @FILE", function()
    local d = T.tmpdir()
    local inv = load(T.write(d .. "/inv.ini", SAME_INI))
    local cases = {
        { "all", "jump1 web01 web02 web03 db-a db-b db-c" },
        { "web", "web01 web02 web03" },
        { "prod:!web02", "web01 web03 db-a db-b db-c" },
        { "web*,db-?", "web01 web02 web03 db-a db-b db-c" },
        { "prod:&*0?:!web02", "web01 web03" },
        { "ungrouped,db-c", "jump1 db-c" },
        { "nosuch", "" },
    }
    for _, c in ipairs(cases) do T.eq(join(inv:select(c[1])), c[2], c[1]) end
    local lf = T.write(d .. "/limit.txt", "# retry file\nweb01\n\n  db-a  \nweb0*:!web01\n")
    T.eq(inventory.limit_pattern("@" .. lf), "web01,db-a,web0*:!web01")
    T.eq(join(inv:select(inventory.limit_pattern("@" .. lf))), "web02 web03 db-a")
    T.eq(inventory.limit_pattern("web"), "web")
    T.eq(inventory.limit_pattern(nil), nil)
    local _, err = inventory.limit_pattern("@" .. d .. "/missing")
    T.eq(err, "--limit " .. d .. "/missing: No such file or directory")
    T.write(d .. "/empty.txt", "# nothing\n\n")
    _, err = inventory.limit_pattern("@" .. d .. "/empty.txt")
    T.eq(err, "--limit " .. d .. "/empty.txt: the file names no host")
end)

T.test("cutover run: an INI inventory of local hosts, --limit @FILE", function()
    local d = T.tmpdir()
    local inv = T.write(d .. "/hosts", [[
[web]
web[1:3] ansible_connection=local
[web:vars]
where=web
]])
    write(d .. "/host_vars/web2.yml", "where: own\n")
    local book = T.write(d .. "/p.yml", ([[
- hosts: web
  steps:
    - shell: "echo {{ inventory_hostname }}={{ where }} >> @T@/ran.log"
]]):gsub("@T@", d))
    local lf = T.write(d .. "/limit", "web2\nweb3\n")
    local r = T.run({ "run", book, "-i", inv, "--limit", "@" .. lf })
    T.eq(r.rc, 0, r.stderr)
    local function ran()
        local lines = {}
        for l in (T.read(d .. "/ran.log") or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
        table.sort(lines)
        return table.concat(lines, " ")
    end
    T.eq(ran(), "web2=own web3=web")
    r = T.run({ "run", book, "-i", inv, "--limit", "@" .. d .. "/nolimit" })
    T.eq(r.rc, 2)
    T.eq(r.stderr, "--limit " .. d .. "/nolimit: No such file or directory\n")
    T.eq(ran(), "web2=own web3=web", "nothing more ran")
end)

T.test("INI errors: exact FILE:LINE messages, exit 2, nothing runs", function()
    local d = T.tmpdir()
    local cases = {
        { "[web]\nweb[01:03\n", "2: unclosed range in 'web[01:03' (expected [START:END])" },
        { "[web:varz]\nx=1\n", "1: section [web:varz]: unknown type 'varz' (expected children or vars) (did you " ..
            "mean 'vars'?)" },
        { "[web]\nw1\n[web:vars]\n# c\nnovalue\n", "5: [web:vars]: expected NAME=VALUE, got 'novalue'" },
        { "[web]\nw1\n[web:vars]\n1x=2\n", "4: [web:vars]: bad variable name '1x' in '1x=2'" },
        { "[web]\nw1\n[web:vars]\na='open\n", "4: [web:vars]: unclosed quote ' in 'a='open'" },
        { "[web]\nw1\n[web:vars]\na='x' y\n", "4: [web:vars]: text after the closing quote in 'a='x' y'" },
        { "[web]\nw1 port\n", "2: expected NAME=VALUE after the host name, got 'port'" },
        { "[web]\nw1 a=\"open\n", "2: unclosed quote \"" },
        { "[web]\nw1 a-b=1\n", "2: bad variable name 'a-b'" },
        { "[web]\nw1:99999\n", "2: bad port in 'w1'" },
        { "[web\nw1\n", "1: bad section header '[web' (expected [GROUP], [GROUP:vars] or [GROUP:children])" },
        { "[web] x\n", "1: bad section header '[web] x' (expected [GROUP], [GROUP:vars] or [GROUP:children])" },
        { "[a b]\n", "1: bad section header '[a b]' (expected [GROUP], [GROUP:vars] or [GROUP:children])" },
        { "[web]\nw1\n[app:vars]\nx=1\n",
            "3: section [app:vars]: group 'app' is not defined (no [app] or [app:children] section)" },
        { "[prod:children]\nweb\ndb\n[web]\nw1\n",
            "3: [prod:children]: group 'db' is not defined (no [db] or [db:children] section)" },
        { "[prod:children]\nweb db\n", "2: [prod:children]: expected one group name per line, got 'web db'" },
        { "[a:children]\nb\n[b:children]\na\n", "4: group 'a' is its own ancestor (a > b > a)" },
        { "[a:children]\na\n", "2: [a:children]: a group cannot be its own child" },
        { "#!/usr/bin/env python3\nprint('{}')\n", "1: inventory scripts are not supported (give a YAML or INI file)" },
    }
    local book = T.write(d .. "/p.yml", ("- hosts: all\n  steps:\n    - shell: touch @T@/marker\n"):gsub("@T@", d))
    for n, c in ipairs(cases) do
        local f = T.write(d .. "/bad" .. n .. ".ini", c[1])
        local want = f .. ":" .. c[2]
        local _, err = inventory.load(f)
        T.eq(err, want, "case " .. n)
        local r = T.run({ "inventory", "-i", f, "--list" })
        T.eq(r.rc, 2, "inventory exit code, case " .. n)
        T.eq(r.stderr, want .. "\n", "inventory stderr, case " .. n)
        r = T.run({ "run", book, "-i", f })
        T.eq(r.rc, 2, "run exit code, case " .. n)
        T.eq(r.stderr, want .. "\n", "run stderr, case " .. n)
        T.ok(not fs.stat(d .. "/marker"), "nothing ran, case " .. n)
    end
    -- several errors: all reported, in line order
    local f = T.write(d .. "/many.ini", "[web]\nw1 x\n[web:varz]\n[web:vars]\nnovalue\n[app:vars]\n")
    local _, err = inventory.load(f)
    T.eq(err, table.concat({
        f .. ":2: expected NAME=VALUE after the host name, got 'x'",
        f .. ":3: section [web:varz]: unknown type 'varz' (expected children or vars) (did you mean 'vars'?)",
        f .. ":5: [web:vars]: expected NAME=VALUE, got 'novalue'",
        f .. ":6: section [app:vars]: group 'app' is not defined (no [app] or [app:children] section)",
    }, "\n"))
end)

T.test("YAML errors: ranges, cycles, positions", function()
    local d = T.tmpdir()
    local f = T.write(d .. "/a.yml", "web:\n  hosts:\n    \"web[1:3\":\n")
    local _, err = inventory.load(f)
    T.eq(err, f .. ":3:5: group 'web': unclosed range in 'web[1:3' (expected [START:END])")
    f = T.write(d .. "/b.yml",
        "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n")
    _, err = inventory.load(f)
    T.eq(err, f .. ":7:13: group 'a' is its own ancestor (a > b > a)")
    f = T.write(d .. "/c.yml", "web:\n  hostz:\n    w1:\n")
    _, err = inventory.load(f)
    T.eq(err, f .. ":2:3: group 'web': unknown key 'hostz' (expected hosts, vars or children) (did you mean 'hosts'?)")
    _, err = inventory.load(d .. "/missing.yml")
    T.eq(err, d .. "/missing.yml: No such file or directory")
end)

T.test("cutover inventory --list, --graph, --host through the binary", function()
    local d = T.tmpdir()
    local inv = T.write(d .. "/hosts.ini", SAME_INI)
    local r = T.run({ "inventory", "-i", inv, "--list" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, SAME_LIST)
    T.eq(r.stderr, "")
    local decoded = assert(json.decode(r.stdout))
    T.eq(decoded._meta.hostvars["web01"].ansible_port, 2222)
    r = T.run({ "inventory", "--graph", "-i", inv })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, SAME_GRAPH)
    r = T.run({ "inventory", "-i", inv, "--graph", "prod" })
    T.eq(r.stdout, [[
@prod:
  |--@db:
  |  |--db-a
  |  |--db-b
  |  |--db-c
  |--@web:
  |  |--web01
  |  |--web02
  |  |--web03
]])
    r = T.run({ "inventory", "-i", inv, "--host", "db-c" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, [[
{
  "ansible_become": true,
  "ansible_user": "deploy",
  "region": "eu",
  "tier": "prod"
}
]])
    r = T.run({ "inventory" , "--list" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, [[
{
  "_meta": {
    "hostvars": {
      "localhost": {
        "ansible_connection": "local"
      }
    }
  },
  "all": {
    "children": [
      "ungrouped"
    ]
  },
  "ungrouped": {
    "hosts": [
      "localhost"
    ]
  }
}
]])
    local usage = {
        { { "inventory", "-i", inv }, "cutover: inventory needs one of --list, --graph [GROUP] or --host HOST\n" },
        { { "inventory", "-i", inv, "--list", "--graph" },
            "cutover: inventory needs one of --list, --graph [GROUP] or --host HOST\n" },
        { { "inventory", "-i", inv, "--list", "extra" }, "cutover: unexpected argument 'extra'\n" },
        { { "inventory", "-i", inv, "--graph", "prd" }, "cutover: no group 'prd' (did you mean 'prod'?)\n" },
        { { "inventory", "-i", inv, "--host", "web1" }, "cutover: no host 'web1' (did you mean 'web01'?)\n" },
        { { "inventory", "--lst" }, "cutover: unknown option '--lst' (did you mean '--list'?)\n" },
    }
    for _, c in ipairs(usage) do
        r = T.run(c[1])
        T.eq(r.rc, 2, table.concat(c[1], " "))
        T.eq(r.stdout, "")
        T.eq(r.stderr, c[2] .. "Try 'cutover inventory --help'.\n", table.concat(c[1], " "))
    end
    r = T.run({ "inventory", "--help" })
    T.eq(r.rc, 0)
    T.contains(r.stdout, "usage: cutover inventory [-i INVENTORY] --list\n")
    r = T.run({ "--help" })
    T.contains(r.stdout, "  inventory          show an inventory: --list (JSON), --graph, --host HOST\n")
    r = T.run({ "lint", T.write(d .. "/p.yml", "- hosts: web\n  steps:\n    - debug: { msg: hi }\n"), "-i", inv })
    T.eq(r.rc, 0, r.stderr)
end)

T.done()
