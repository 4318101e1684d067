-- Integration: `cutover convert ansible` on the real-world-shaped Ansible
-- playbooks of tests/convert/NAME/ (site.yml, with roles, task files,
-- vars files and templates beside it).  For each: the conversion exits
-- as expected, its report is exactly the lines of expect.txt (FILE is
-- relative to the fixture's folder), and `cutover lint` accepts the
-- output.  The twins also run: ansible-playbook (local connection) on
-- one temporary folder, the converted playbook with cutover on another,
-- and the two trees must be the same (paths, types, modes, contents).
-- ansible-playbook missing is a failure, never a skip (scripts/deps.sh
-- installs ansible-core).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")

local FIXTURES = {
    { name = "webserver", twin = true },
    { name = "role_layout", twin = true },
    { name = "vars_files", twin = true },
    { name = "block_rescue", twin = true },
    { name = "loops", twin = true },
    { name = "register_chain", twin = true },
    { name = "database_user" },
    { name = "users_keys" },
    { name = "sysctl_tuning" },
    { name = "rolling_restart" },
    { name = "nginx_install" },
    { name = "unsupported_jinja" },
    { name = "http_checks" },
    { name = "ssh_site" },  -- its twin runs over SSH: tests/ssh/test_convert_twin.lua
}

local function lines_of(text)
    local out = {}
    for l in (text or ""):gmatch("[^\n]+") do out[#out + 1] = l end
    return out
end

-- Converts fixture `name` into a fresh folder; returns the result, the
-- output playbook path and the report lines (fixture folder removed).
local function convert(name)
    local dir = tests_dir .. "/convert/" .. name
    local out = T.tmpdir() .. "/out/site.yml"
    local r = T.run({ "convert", "ansible", dir .. "/site.yml", "-o", out })
    local report = {}
    for _, l in ipairs(lines_of(r.stderr)) do
        if not l:match("^%d+ constructs? not converted") then
            if l:sub(1, #dir + 1) == dir .. "/" then l = l:sub(#dir + 2) end
            report[#report + 1] = l
        end
    end
    return r, out, report, dir
end

-- path -> "type mode sha256" of every entry under dir, with the root
-- folder's own path written as ROOT in contents.
local function tree(dir)
    local out = {}
    local function walk(p, rel)
        local st = assert(fs.stat(p))
        if st.type == "directory" then
            if rel ~= "" then out[rel] = string.format("dir %o", st.mode) end
            for _, n in ipairs(fs.list(p)) do walk(p .. "/" .. n, rel == "" and n or rel .. "/" .. n) end
        elseif st.type == "file" then
            local data = assert(fs.read(p))
            local parts, i = {}, 1
            while true do
                local a, b = data:find(dir, i, true)
                if not a then parts[#parts + 1] = data:sub(i); break end
                parts[#parts + 1] = data:sub(i, a - 1) .. "ROOT"
                i = b + 1
            end
            out[rel] = string.format("file %o %s", st.mode, table.concat(parts))
        else
            out[rel] = st.type
        end
    end
    walk(dir, "")
    return out
end

local function same_tree(a, b, what)
    local keys = {}
    for k in pairs(a) do keys[#keys + 1] = k end
    for k in pairs(b) do if a[k] == nil then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do
        T.eq(b[k], a[k], what .. ": " .. k .. " (ansible's, then cutover's)")
    end
    return #keys
end

T.test("every fixture converts, reports exactly what it could not, and lints", function()
    T.ok(#FIXTURES >= 10, "at least 10 playbooks")
    for _, f in ipairs(FIXTURES) do
        local r, out, report, dir = convert(f.name)
        local want = lines_of(T.read(dir .. "/expect.txt") or "")
        T.eq(r.rc, #want == 0 and 0 or 1, f.name .. ": exit code\n" .. r.stderr)
        T.eq(table.concat(report, "\n"), table.concat(want, "\n"), f.name .. ": the report")
        if #want > 0 then
            T.contains(r.stderr, #want .. " construct" .. (#want == 1 and "" or "s") .. " not converted",
                       f.name .. ": the count")
        end
        local l = T.run({ "lint", out })
        T.eq(l.rc, 0, f.name .. ": lint of the output\n" .. l.stdout .. l.stderr)
        -- every unconverted task is a fail step with its original text
        local text = T.read(out)
        for _, w in ipairs(want) do
            if w:match(": the step fails instead$") then
                local file, line = w:match("^([^:]+):(%d+):")
                local body = ""
                local function add(p)
                    local t = T.read(p)
                    if t then body = body .. t end
                end
                add(out)
                for _, p in ipairs(lines_of(proc.run({ argv = { "find", out:match("^(.*)/"), "-name",
                    "*.yml" } }).stdout)) do add(p) end
                T.contains(body, file .. ":" .. line, f.name .. ": a fail step names " .. file .. ":" .. line)
            end
        end
        T.ok(text:find("# converted from Ansible", 1, true) ~= nil, f.name .. ": output written")
    end
end)

T.test("the twins end in the same state under ansible-playbook and cutover", function()
    local which = proc.run({ shell = "command -v ansible-playbook" })
    T.eq(which.rc, 0, "ansible-playbook is installed (scripts/deps.sh installs ansible-core)")
    local ansible = which.stdout:gsub("%s+$", "")
    -- one ansible-playbook run for all twins (its start-up is slow),
    -- each playbook acting in its own folder of A; cutover's in B
    local A, B, home = T.tmpdir(), T.tmpdir(), T.tmpdir()
    local all, twins = {}, {}
    for _, f in ipairs(FIXTURES) do
        if f.twin then
            local r, out, _, dir = convert(f.name)
            T.eq(r.rc, 0, f.name .. ": converts completely\n" .. r.stderr)
            twins[#twins + 1] = { name = f.name, out = out }
            all[#all + 1] = "- import_playbook: " .. dir .. "/site.yml\n  vars: { root: " .. A .. "/" .. f.name ..
                " }\n"
            T.ok(fs.mkdir(A .. "/" .. f.name, 493) and fs.mkdir(B .. "/" .. f.name, 493), "folders")
        end
    end
    T.ok(#twins >= 3, "at least 3 twins")
    T.write(home .. "/all.yml", table.concat(all))
    if T.sanitize then
        -- (ansible-playbook's half runs in the normal build; here each
        -- twin's cutover run must work and make files)
        print("# sanitizer build: ansible-playbook not run; cutover's runs checked alone")
        for _, t in ipairs(twins) do
            local b = B .. "/" .. t.name
            local cr = T.run({ "run", t.out, "-e", "root=" .. b, "--no-journal" })
            T.eq(cr.rc, 0, t.name .. ": cutover run\n" .. cr.stdout .. cr.stderr)
            local count = same_tree(tree(b), tree(b), t.name)
            T.ok(count >= 3, t.name .. ": the playbook made files (" .. count .. ")")
        end
        return
    end
    local ar = assert(proc.run({
        argv = { ansible, "-i", "localhost,", "-c", "local",
                 "-e", "ansible_python_interpreter=/usr/bin/python3", home .. "/all.yml" },
        env = { HOME = home, ANSIBLE_LOCAL_TEMP = home .. "/tmp", ANSIBLE_NOCOLOR = "1",
                ANSIBLE_RETRY_FILES_ENABLED = "0", ANSIBLE_HOST_KEY_CHECKING = "0" },
        timeout = 240 }))
    T.eq(ar.rc, 0, "ansible-playbook\n" .. ar.stdout .. ar.stderr)
    for _, t in ipairs(twins) do
        local a, b = A .. "/" .. t.name, B .. "/" .. t.name
        local cr = T.run({ "run", t.out, "-e", "root=" .. b, "--no-journal" })
        T.eq(cr.rc, 0, t.name .. ": cutover run\n" .. cr.stdout .. cr.stderr)
        local count = same_tree(tree(a), tree(b), t.name)
        T.ok(count >= 3, t.name .. ": the playbook made files (" .. count .. ")")
    end
end)

T.test("bad input: a missing playbook, invalid YAML, OUT beside the playbook", function()
    local d = T.tmpdir()
    local r = T.run({ "convert", "ansible", d .. "/nope.yml" })
    T.eq(r.rc, 2, "missing file")
    T.contains(r.stderr, d .. "/nope.yml", "names the file")
    T.write(d .. "/bad.yml", "- hosts: all\n  tasks:\n    - name: x\n     command: y\n")
    r = T.run({ "convert", "ansible", d .. "/bad.yml" })
    T.eq(r.rc, 2, "invalid YAML")
    T.match(r.stderr, "bad%.yml:4:%d+", "names file and line")
    T.not_contains(r.stderr, "traceback", "no traceback")
    T.write(d .. "/ok.yml", "- hosts: all\n  tasks:\n    - command: id\n")
    r = T.run({ "convert", "ansible", d .. "/ok.yml", "-o", d .. "/out.yml" })
    T.eq(r.rc, 2, "OUT in the playbook's folder is refused")
    T.contains(r.stderr, "another folder", "says why")
    T.ok(T.read(d .. "/out.yml") == nil, "nothing written")
    r = T.run({ "convert", "ansible", d .. "/ok.yml" })
    T.eq(r.rc, 0, r.stderr)
    T.contains(r.stdout, "cmd: id", "printed without -o")
    r = T.run({ "convert", "yaml", d .. "/ok.yml" })
    T.eq(r.rc, 2, "unknown source format")
end)

T.test("a playbook named relative to the working folder converts the same", function()
    for _, name in ipairs({ "vars_files", "role_layout" }) do
        local dir = tests_dir .. "/convert/" .. name
        local a, b = T.tmpdir(), T.tmpdir()
        local r1 = T.run({ "convert", "ansible", dir .. "/site.yml", "-o", a .. "/site.yml" })
        local r2 = T.run({ "convert", "ansible", "site.yml", "-o", b .. "/site.yml" }, { cwd = dir })
        T.eq(r2.rc, r1.rc, name .. ": same exit\n" .. r2.stderr)
        T.eq(r2.rc, 0, name .. ": converts completely\n" .. r2.stderr)
        local ta, tb = tree(a), tree(b)
        T.ok(same_tree(ta, tb, name) >= 4, name .. ": files written")
    end
end)

T.test("malformed playbooks: exit 2 with the position, or a fail step; never a traceback", function()
    local d = T.tmpdir()
    local cases = {
        { "- 5\n", 2, "p.yml:1:1: play 1 must be a mapping" },
        { "x: 1\n", 2, "p.yml: a playbook must be a list of plays" },
        { "- hosts: all\n  tasks: hello\n", 2, "p.yml:2:3: 'tasks' must be a list of tasks" },
        { "- hosts: all\n  tasks:\n    - block: [x]\n", 2, "p.yml:3:14: item 1 of 'block' must be a task (a mapping)" },
        { "- hosts: all\n  vars: [1, 2]\n  tasks: []\n", 2, "p.yml:2:3: vars must be a mapping" },
        { "- hosts: all\n  vars_prompt: [5]\n", 2, "p.yml:2:3: a vars_prompt entry must be a mapping" },
        { "- import_playbook: 5\n", 2, "p.yml:1:3: import_playbook needs a file name" },
        { "- hosts: all\n  roles: [nope]\n", 2, "role 'nope' not found" },
        { "- hosts: all\n  tasks:\n    - include_tasks: missing.yml\n", 2, "p.yml:3:7: file not found" },
        { "- hosts: all\n  tasks:\n    - command: x\n      notify: [1]\n", 1,
            "p.yml:3:7: task: notify of something that is not a handler name: the step fails instead" },
        { "- hosts: all\n  tasks:\n    - command: [a]\n", 1,
            "p.yml:3:7: task: module arguments that are not a mapping" },
        { "- hosts: all\n  tasks:\n    - name: [a]\n      command: x\n", 1, "a name that is not text" },
        { "- hosts: all\n  tasks:\n    - copy: 7\n", 1, "module arguments that are not a mapping" },
        { "- hosts: all\n  tasks:\n    - file: path=/x mode=u+rw\n", 1, "mode 'u+rw' (only octal modes convert)" },
        { "- hosts: all\n  tasks:\n    - command: x\n      loop: 5\n", 1, "a loop over number" },
        { "- hosts: all\n  tasks:\n    - name: 123\n      debug: msg=hi\n", 0, nil },
    }
    for i, c in ipairs(cases) do
        local sub = d .. "/" .. i
        assert(fs.mkdir(sub, 493))
        T.write(sub .. "/p.yml", c[1])
        local r = T.run({ "convert", "ansible", sub .. "/p.yml", "-o", sub .. "/out/p.yml" })
        T.eq(r.rc, c[2], c[1] .. "\n" .. r.stderr)
        if c[3] then T.contains(r.stderr, c[3], c[1]) end
        T.not_contains(r.stderr, "traceback", c[1])
        if c[2] ~= 2 then
            local l = T.run({ "lint", sub .. "/out/p.yml" })
            T.eq(l.rc, 0, c[1] .. ": the output lints\n" .. l.stderr)
        end
    end
end)

T.test("nothing is read from or written outside the folders, nor over the Ansible files", function()
    local d = T.tmpdir()
    assert(fs.mkdir(d .. "/ans", 493)); assert(fs.mkdir(d .. "/ans/sub", 493)); assert(fs.mkdir(d .. "/out", 493))
    T.write(d .. "/outside.yml", "a: 1\n")
    T.write(d .. "/ans/sub/v.yml", "b: 2\n")
    T.write(d .. "/ans/site.yml", table.concat({
        "- hosts: localhost",
        "  vars_files: [../outside.yml, sub/v.yml]",
        "  tasks:",
        "    - include_tasks: ../../etc/passwd",
        "    - copy: { src: ../../../etc/hostname, dest: /tmp/x }",
        "" }, "\n"))
    -- a symlink in OUT's folder pointing into the Ansible tree
    T.eq(proc.run({ argv = { "ln", "-s", d .. "/ans/sub", d .. "/out/sub" } }).rc, 0, "symlink")
    local r = T.run({ "convert", "ansible", d .. "/ans/site.yml", "-o", d .. "/out/site.yml" })
    T.eq(r.rc, 2, "refused: it would write through the link over an input\n" .. r.stderr)
    T.contains(r.stderr, "would overwrite " .. d .. "/ans/sub/v.yml", "names the file")
    T.eq(T.read(d .. "/ans/sub/v.yml"), "b: 2\n", "the input is untouched")
    T.ok(T.read(d .. "/out/site.yml") == nil, "nothing written")
    assert(fs.remove(d .. "/out/sub"))
    r = T.run({ "convert", "ansible", d .. "/ans/site.yml", "-o", d .. "/out/site.yml" })
    T.eq(r.rc, 1, r.stderr)
    local p = d .. "/ans/site.yml"
    T.contains(r.stderr, p .. ":2:3: vars file '../outside.yml' is outside the playbook's folder: left out",
        "vars file")
    T.contains(r.stderr, p .. ":4:7: task: '" .. d ..
        "/ans/../../etc/passwd' is outside the playbook's folder: the step fails instead", "include")
    T.contains(r.stderr, p ..
        ":5:7: task: source '../../../etc/hostname' is outside the playbook's folder: the step fails instead",
        "copy src")
    local files = proc.run({ argv = { "find", d, "-type", "f" } }).stdout
    local list = {}
    for f in files:gmatch("[^\n]+") do list[#list + 1] = f:sub(#d + 2) end
    table.sort(list)
    T.eq(table.concat(list, " "), "ans/site.yml ans/sub/v.yml out/site.yml out/sub/v.yml outside.yml", "files written")
    T.eq(T.run({ "lint", d .. "/out/site.yml" }).rc, 0, "lints")
end)

T.done()
