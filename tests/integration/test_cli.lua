-- Integration: the command line of the cutover binary: exit codes, help,
-- lint/modules/doc, the JSON event stream, inventories and --limit.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local util = require("cutover.util")

local function q(s) return util.sh_quote(s) end

-- True when pid is gone (or a zombie nobody has reaped yet: it runs no
-- more code).  Waits up to 3 s for it.
local function dead(pid)
    local r = T.sh("i=0; while [ $i -lt 30 ]; do " ..
        "if ! kill -0 " .. pid .. " 2>/dev/null; then echo dead; exit; fi; " ..
        "if grep -q '^[0-9]* (.*) Z' /proc/" .. pid .. "/stat 2>/dev/null; " ..
        "then echo dead; exit; fi; sleep 0.1; i=$((i + 1)); done; echo alive")
    return r.stdout == "dead\n"
end

T.test("exit 0 when all ok, 1 when a host failed", function()
    local d = T.tmpdir()
    local ok = H.book(d, "- hosts: localhost\n  steps:\n    - debug: { msg: hi }\n", "ok.yml")
    local r = T.run({ "run", ok })
    T.eq(r.rc, 0)
    T.contains(r.stdout, "finished in ")
    T.contains(r.stdout, "exit code 0")
    local bad = H.book(d, "- hosts: localhost\n  steps:\n    - fail: stop\n", "bad.yml")
    r = T.run({ "run", bad })
    T.eq(r.rc, 1)
    T.contains(r.stdout, "exit code 1")
end)

T.test("exit 2 for a bad playbook or bad usage, and nothing ran", function()
    local d = T.tmpdir()
    local marker = d .. "/marker"
    local good = H.book(d, [[
- hosts: localhost
  steps:
    - shell: touch @T@/marker
]], "good.yml")
    local invalid = H.book(d, [[
- hosts: localhost
  steps:
    - shell: touch @T@/marker
    - name: broken
      coppy: { dest: /tmp/x, content: y }
]], "invalid.yml")
    local cases = {
        { { "run", invalid }, "invalid.yml:5:7: step 'broken': unknown keyword or action 'coppy' (did you mean 'copy'?)" },
        { { "run" }, "run needs exactly one PLAYBOOK" },
        { { "run", good, good }, "run needs exactly one PLAYBOOK" },
        { { "run", good, "--format", "xml" }, "--format must be text or json" },
        { { "run", good, "--chekc" }, "unknown option '--chekc' (did you mean '--check'?)" },
        { { "run", good, "-e" }, "option '-e' needs a value" },
        { { "run", good, "--check=yes" }, "option '--check' takes no value" },
        { { "run", d .. "/missing.yml" }, "missing.yml" },
        { { "run", good, "-i", d .. "/no-inventory.yml" }, "no-inventory.yml" },
        { { "run", good, "-e", "1x=2" }, "expected NAME=VALUE" },
        { { "run", good, "--limit", "nosuchhost" }, "--limit 'nosuchhost' matches no host" },
        { { "run", good, "--start-at", "nosuchstep" }, "--start-at 'nosuchstep' matches no step" },
    }
    for _, c in ipairs(cases) do
        local r = T.run(c[1])
        local what = table.concat(c[1], " ")
        T.eq(r.rc, 2, "exit code of " .. what)
        T.contains(r.stderr, c[2], "stderr of " .. what)
        T.ok(not H.exists(marker), "nothing ran for " .. what)
    end
    T.eq(T.run({ "run", good }).rc, 0)
    T.ok(H.exists(marker), "the marker step works")
end)

T.test("SIGINT: exit 130, the running command's processes are killed", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: long
      shell: "sleep 30 & echo $! > @T@/sleep.pid; echo $$ > @T@/sh.pid; wait"
      notify: h
      changed_when: true
    - id: after
      shell: touch @T@/after
  handlers:
    - { name: h, shell: touch @T@/handler }
]])
    for _, sig in ipairs({ "INT", "TERM" }) do
        T.sh("rm -f " .. d .. "/sleep.pid " .. d .. "/sh.pid")
        local r = T.sh(q(T.cutover) .. " run " .. q(book) .. " >" .. q(d .. "/out") ..
            " 2>" .. q(d .. "/err") .. " & pid=$!; i=0; " ..
            "while [ ! -s " .. q(d .. "/sleep.pid") .. " ] && [ $i -lt 100 ]; do " ..
            "sleep 0.1; i=$((i + 1)); done; sleep 0.2; kill -" .. sig .. " $pid; " ..
            "wait $pid; echo rc=$?")
        T.eq(r.stdout, "rc=130\n", "exit code after SIG" .. sig)
        local out = T.read(d .. "/out")
        T.match(out, "interrupted%s+localhost%s+long", "SIG" .. sig .. " output")
        T.contains(out, "interrupted at long")
        T.contains(out, "exit code 130")
        local sleep_pid = T.read(d .. "/sleep.pid"):match("%d+")
        local sh_pid = T.read(d .. "/sh.pid"):match("%d+")
        T.ok(dead(sleep_pid), "the step's sleep (pid " .. sleep_pid .. ") was killed")
        T.ok(dead(sh_pid), "the step's shell was killed")
        T.ok(not H.exists(d .. "/after"), "no step after the interrupt")
        T.ok(not H.exists(d .. "/handler"), "no handler after the interrupt")
    end
    -- JSON: the host_result says interrupted, run_end has the exit code
    T.sh("rm -f " .. d .. "/sleep.pid")
    T.sh(q(T.cutover) .. " run --format json " .. q(book) .. " >" .. q(d .. "/out") ..
        " 2>/dev/null & pid=$!; i=0; " ..
        "while [ ! -s " .. q(d .. "/sleep.pid") .. " ] && [ $i -lt 100 ]; do " ..
        "sleep 0.1; i=$((i + 1)); done; kill -INT $pid; wait $pid")
    local ev = T.events(T.read(d .. "/out"))
    local last = ev[#ev]
    T.eq(last.event, "run_end")
    T.eq(last.exit_code, 130)
    T.eq(last.hosts.localhost.interrupted_at, "long")
    local hr
    for _, e in ipairs(ev) do if e.event == "host_result" then hr = e end end
    T.eq(hr.status, "interrupted")
    T.eq(hr.step, "long")
end)

T.test("--help for every command; --version", function()
    local want = {
        run = { "usage: cutover run PLAYBOOK", "--inventory", "--extra-vars", "--check",
                "--diff", "--limit", "--tags", "--skip-tags", "--start-at", "--format",
                "--verbose", "Exit codes:" },
        lint = { "usage: cutover lint PLAYBOOK", "-i INVENTORY" },
        modules = { "usage: cutover modules" },
        doc = { "usage: cutover doc ACTION", "--all", "--format text|markdown" },
    }
    for cmd, needles in pairs(want) do
        for _, form in ipairs({ { cmd, "--help" }, { cmd, "-h" }, { "help", cmd } }) do
            local r = T.run(form)
            T.eq(r.rc, 0, table.concat(form, " "))
            for _, n in ipairs(needles) do T.contains(r.stdout, n, table.concat(form, " ")) end
        end
    end
    local r = T.run({ "--help" })
    T.eq(r.rc, 0)
    for _, c in ipairs({ "run PLAYBOOK", "lint PLAYBOOK", "modules", "doc ACTION", "--version" }) do
        T.contains(r.stdout, c)
    end
    local none = T.run({})
    T.eq(none.rc, 2, "no command")
    T.contains(none.stdout, "usage: cutover COMMAND")
    local v = T.run({ "--version" })
    T.eq(v.rc, 0)
    T.eq(v.stdout, "cutover 0.1.0\n")
end)

T.test("unknown command and option: did you mean, exit 2", function()
    local cases = {
        { { "rn" }, "unknown command 'rn' (did you mean 'run'?)" },
        { { "rnu" }, "unknown command 'rnu' (did you mean 'run'?)" },
        { { "lnt", "x.yml" }, "unknown command 'lnt' (did you mean 'lint'?)" },
        { { "frobnicate" }, "unknown command 'frobnicate'" },
        { { "run", "x.yml", "--tag", "a" }, "unknown option '--tag' (did you mean '--tags'?)" },
        { { "run", "x.yml", "--limt", "a" }, "(did you mean '--limit'?)" },
        { { "lint", "--inventroy", "x" }, "(did you mean '--inventory'?)" },
        { { "run", "x.yml", "-Z" }, "unknown option '-Z'" },
        { { "modules", "--all" }, "unknown option '--all'" },
        { { "doc", "copy", "--format", "html" }, "--format must be text or markdown" },
    }
    for _, c in ipairs(cases) do
        local r = T.run(c[1])
        local what = table.concat(c[1], " ")
        T.eq(r.rc, 2, what)
        T.contains(r.stderr, c[2], what)
        T.contains(r.stderr, "--help'", what)
        T.eq(r.stdout, "", "stdout of " .. what)
    end
end)

T.test("lint, modules, doc", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - debug: { msg: one }
    - command: echo two
- name: second
  hosts: localhost
  steps:
    - shell: touch @T@/never
]])
    local r = T.run({ "lint", book })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, book .. ": ok (2 plays, 3 steps)\n")
    T.ok(not H.exists(d .. "/never"), "lint runs nothing")
    local shipped = tests_dir .. "/../playbooks/local-upgrade-demo.yml"
    r = T.run({ "lint", shipped })
    T.eq(r.rc, 0)
    T.match(r.stdout, ": ok %(1 play, %d+ steps%)\n$")
    local badbook = H.book(d, "- hosts: localhost\n  steps:\n    - copy: { dest: x }\n", "bad.yml")
    r = T.run({ "lint", badbook })
    T.eq(r.rc, 2)
    T.contains(r.stderr, "bad.yml:3:")
    T.contains(r.stderr, "needs one of 'content', 'src'")

    r = T.run({ "modules" })
    T.eq(r.rc, 0)
    local names = {}
    for line in r.stdout:gmatch("[^\n]+") do names[#names + 1] = line:match("^(%S+)%s%s+%S") end
    T.eq(table.concat(names, " "),
         "apt assert blockinfile command copy dcpromo debug fail fetch file gather_facts get_url group lineinfile mail_login package pause reboot service set_fact setup shell stat sysctl systemd template unarchive uri user wait_for wait_for_connection win_eventlog win_facts win_reboot win_rights win_service win_user_right")

    r = T.run({ "doc", "copy" })
    T.eq(r.rc, 0)
    for _, n in ipairs({ "copy: Write a file", "Arguments:", "dest", "content", "src",
                         "mode", "Returns:", "checksum", "Check mode:",
                         "Exact: compares checksums" }) do
        T.contains(r.stdout, n, "doc copy")
    end
    r = T.run({ "doc", "copy", "--format", "markdown" })
    T.eq(r.rc, 0)
    T.contains(r.stdout, "## copy")
    T.contains(r.stdout, "| `dest` |")
    r = T.run({ "doc", "--all" })
    T.eq(r.rc, 0)
    local n = 0
    for _ in r.stdout:gmatch("\nCheck mode:\n") do n = n + 1 end
    T.eq(n, #names, "doc --all shows every action 'modules' lists")
    r = T.run({ "doc", "nope" })
    T.eq(r.rc, 2)
    T.contains(r.stderr, "no action 'nope'")
    T.eq(r.stdout, "")
    r = T.run({ "doc", "cpy" })
    T.eq(r.rc, 2)
    T.contains(r.stderr, "(did you mean 'copy'?)")
end)

T.test("--format json: the event stream", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- name: first play
  hosts: localhost
  steps:
    - { id: write, copy: { dest: "@T@/f", content: "x\n" } }
    - { id: say, debug: { msg: hello } }
    - { id: loop, debug: { msg: "{{ item }}" }, loop: [a, b] }
]])
    local r, ev, res = H.run_json({ "run", book, "--diff" })
    T.eq(r.rc, 0, r.stderr)
    local lines = 0
    for _ in r.stdout:gmatch("[^\n]+") do lines = lines + 1 end
    T.eq(lines, #ev, "every line is one event")
    local kinds = {}
    for _, e in ipairs(ev) do
        T.eq(e.v, 1, "v of " .. tostring(e.event))
        T.eq(type(e.time), "number", "time of " .. tostring(e.event))
        kinds[#kinds + 1] = e.event
    end
    T.eq(table.concat(kinds, " "), "run_start play_start step_start host_result " ..
         "step_start host_result step_start host_result host_result run_end")
    T.eq(ev[1].playbook, book)
    T.eq(ev[1].check, false)
    T.eq(ev[1].version, "0.1.0")
    T.eq(ev[2].play, "first play")
    T.eq(table.concat(ev[2].hosts, ","), "localhost")
    T.eq(ev[3].host, "localhost")
    T.eq(ev[3].step, "write")
    T.eq(#res, 4)
    for _, e in ipairs(res) do
        T.eq(e.host, "localhost")
        T.eq(type(e.step), "string")
        T.eq(type(e.changed), "boolean")
        T.eq(type(e.failed), "boolean")
        T.eq(type(e.duration), "number")
        T.ok(e.duration >= 0 and e.duration < 10, "duration")
        T.eq(type(e.result), "table")
    end
    local w = res[1]
    T.eq(w.action, "copy")
    T.eq(w.changed, true)
    T.eq(w.failed, false)
    T.eq(w.status, "changed")
    T.contains(w.diff, "+++ " .. d .. "/f")
    T.eq(w.result.checksum, require("cutover.core.crypto").sha256("x\n"))
    T.eq(res[2].diff, nil, "no diff for debug")
    T.eq(res[3].item, "a")
    T.eq(res[4].item, "b")
    local last = ev[#ev]
    T.eq(last.exit_code, 0)
    T.eq(last.hosts.localhost.changed, 1)
    T.eq(last.hosts.localhost.ok, 3)
    T.eq(type(last.duration), "number")
    -- nothing but JSON on stdout, even with warnings
    local nobody = H.book(d, "- hosts: nosuchgroup\n  steps:\n    - debug: { msg: x }\n", "nobody.yml")
    local r2, ev2 = H.run_json({ "run", nobody })
    T.eq(r2.rc, 0)
    T.eq(#ev2, 4, "run_start, 2 warnings, run_end")
    T.eq(ev2[2].event, "warning")
    T.eq(ev2[2].v, 1)
    T.eq(ev2[2].message, "play 'play 1': hosts pattern 'nosuchgroup' matched no host")
    T.eq(ev2[3].message, "play 'play 1': no hosts to run on")
    T.eq(ev2[4].event, "run_end")
end)

local INVENTORY = [[
all:
  vars:
    ansible_connection: local
    where: all
  children:
    web:
      hosts:
        web1: {}
        web2: {}
      vars:
        where: web
    db:
      hosts:
        db1: { where: db1-own }
]]

local PER_HOST = [[
- hosts: "{{ hosts }}"
  steps:
    - id: mark
      shell: "echo {{ inventory_hostname }}={{ where }} >> @T@/ran.log"
]]

local function ran_on(d)
    local s = T.read(d .. "/ran.log") or ""
    T.sh("rm -f " .. d .. "/ran.log")
    local lines = {}
    for l in s:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    return table.concat(lines, " ")
end

T.test("inventory: groups of local hosts, group and host vars", function()
    local d = T.tmpdir()
    local inv = T.write(d .. "/inv.yml", INVENTORY)
    local book = H.book(d, PER_HOST:gsub('"{{ hosts }}"', "all"))
    local r, ev = H.run_json({ "run", book, "-i", inv })
    T.eq(r.rc, 0, r.stderr)
    T.eq(ran_on(d), "db1=db1-own web1=web web2=web")
    T.eq(table.concat(ev[2].hosts, ","), "web1,web2,db1")
    local book2 = H.book(d, PER_HOST:gsub('"{{ hosts }}"', "web"), "web.yml")
    r = T.run({ "run", book2, "-i", inv })
    T.eq(r.rc, 0)
    T.eq(ran_on(d), "web1=web web2=web")
end)

T.test("--limit: group, glob, !exclusion, &intersection; nothing matched is exit 2", function()
    local d = T.tmpdir()
    local inv = T.write(d .. "/inv.yml", INVENTORY)
    local book = H.book(d, PER_HOST:gsub('"{{ hosts }}"', "all"))
    local cases = {
        { "web", "web1=web web2=web" },
        { "db", "db1=db1-own" },
        { "web*", "web1=web web2=web" },
        { "*1", "db1=db1-own web1=web" },
        { "all:!web2", "db1=db1-own web1=web" },
        { "all,!web", "db1=db1-own" },
        { "web:&*2", "web2=web" },
        { "db1,web2", "db1=db1-own web2=web" },
    }
    for _, c in ipairs(cases) do
        local r = T.run({ "run", book, "-i", inv, "--limit", c[1] })
        T.eq(r.rc, 0, "--limit " .. c[1] .. ": " .. r.stderr)
        T.eq(ran_on(d), c[2], "--limit " .. c[1])
    end
    for _, pat in ipairs({ "nosuch", "zz*", "web:!web*" }) do
        local r = T.run({ "run", book, "-i", inv, "--limit", pat })
        T.eq(r.rc, 2, "--limit " .. pat)
        T.contains(r.stderr, "--limit '" .. pat .. "' matches no host")
        T.eq(ran_on(d), "", "nothing ran for --limit " .. pat)
    end
end)

T.test("an unreachable ssh host fails as unreachable (exit 1); local hosts still run", function()
    local d = T.tmpdir()
    -- loopback only: a port nothing listens on, and a shell type not
    -- supported yet
    local port = H.closed_port()
    local inv = T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    local1: { ansible_connection: local }
    remote1: { ansible_connection: ssh, ansible_host: 127.0.0.1, ansible_port: %d }
    remote2: { ansible_connection: ssh, ansible_host: 127.0.0.1, ansible_shell_type: fish }
]], port))
    local book = H.book(d, [[
- hosts: all
  steps:
    - id: mark
      shell: "echo {{ inventory_hostname }} >> @T@/ran.log"
    - id: second
      shell: "echo {{ inventory_hostname }}-2 >> @T@/ran.log"
]])
    local r, ev, res = H.run_json({ "run", book, "-i", inv, "--known-hosts", d .. "/kh" })
    T.eq(r.rc, 1)
    T.eq(ran_on(d), "local1 local1-2")
    local k = H.by_key(res, true)
    T.eq(k["local1 mark"].status, "changed")
    T.eq(k["local1 second"].status, "changed")
    T.eq(k["remote1 mark"], nil, "remote1 never reaches a step")
    T.eq(k["remote1 connect"].status, "failed")
    T.eq(k["remote1 connect"].result.unreachable, true)
    T.eq(k["remote1 connect"].result.msg, "127.0.0.1:" .. port .. ": Connection refused")
    T.eq(ev[#ev].hosts.remote1.unreachable, true)
    T.eq(ev[#ev].hosts.remote1.failed_at, "connect")
    local e = k["remote2 mark"]
    T.eq(e.status, "failed")
    T.eq(e.result.unreachable, true)
    T.eq(e.result.msg, "host remote2: ansible_shell_type 'fish' is not supported " ..
         "(sh for POSIX hosts, cmd for Windows hosts)")
    T.eq(ev[#ev].hosts.remote2.unreachable, true)
    local t = T.run({ "run", book, "-i", inv, "--known-hosts", d .. "/kh" })
    T.eq(t.rc, 1)
    T.match(t.stdout, "remote1[^\n]*failed at connect%s+unreachable")
    T.match(t.stdout, "remote2[^\n]*failed at mark%s+unreachable")
end)

T.test("item 16: a bad ansible_port or ansible_timeout is an error naming the host, never port 22", function()
    local d = T.tmpdir()
    local book = H.book(d, "- hosts: all\n  steps:\n    - shell: echo hi\n")
    local cases = {
        { "notanumber", "'notanumber'" }, { "[22, 23]", "a list" }, { "70000", "70000" },
        { "0", "0" }, { "22.5", "22.5" }, { "-22", "-22" },
    }
    for _, c in ipairs(cases) do
        local inv = T.write(d .. "/inv.yml", "all:\n  hosts:\n    web1: { ansible_host: 127.0.0.1, ansible_port: " ..
                            c[1] .. " }\n")
        local r = T.run({ "run", book, "-i", inv, "--known-hosts", d .. "/kh" })
        T.eq(r.rc, 2, "exit code for ansible_port " .. c[1] .. " (stdout: " .. r.stdout .. ")")
        T.contains(r.stderr, "host 'web1': ansible_port must be a port number from 1 to 65535, got " .. c[2],
                   "message for " .. c[1])
        T.not_contains(r.stderr, "traceback", "no traceback")
    end
    -- from a group, and the ssh_ spelling, and in an INI inventory
    T.write(d .. "/inv.ini", "[web]\nweb2 ansible_host=127.0.0.1\n[web:vars]\nansible_ssh_port=http\n")
    local r = T.run({ "run", book, "-i", d .. "/inv.ini", "--known-hosts", d .. "/kh" })
    T.eq(r.rc, 2, "group var: exit code")
    T.contains(r.stderr, "group 'web': ansible_ssh_port must be a port number from 1 to 65535, got 'http'", "group var")
    local inv = T.write(d .. "/inv.yml", "all:\n  hosts:\n    web1: { ansible_host: 127.0.0.1, ansible_timeout: -1 }\n")
    r = T.run({ "run", book, "-i", inv, "--known-hosts", d .. "/kh" })
    T.eq(r.rc, 2, "ansible_timeout -1")
    T.contains(r.stderr, "host 'web1': ansible_timeout must be a number of seconds more than 0, got -1", "timeout")
    -- a template is not checked when loading; the host then fails with
    -- the same words instead of connecting to port 22
    inv = T.write(d .. "/inv.yml", "all:\n  hosts:\n    web1: { ansible_host: 127.0.0.1, ansible_port: '{{ p }}' }\n")
    local _, _, res = H.run_json({ "run", book, "-i", inv, "--known-hosts", d .. "/kh", "-e", "p=22" })
    T.eq(#res, 1, "one result")
    T.eq(res[1].status, "failed", "the host fails")
    T.contains(res[1].result.msg, "host web1: ansible_port must be a port number from 1 to 65535, got '{{ p }}'",
               "runtime message")
end)

T.test("item 16: a wrong vault passphrase exits 2 in every command, as documented", function()
    local d = T.tmpdir()
    local env = { CUTOVER_VAULT = d .. "/vault", CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass" }
    T.write(d .. "/pass", "the right one\n")
    local r = T.run({ "vault", "set", "k" }, { env = env, stdin = "v4lue\n" })
    T.eq(r.rc, 0, "vault set (stderr: " .. r.stderr .. ")")
    local book = H.book(d, "- hosts: localhost\n  steps:\n    - debug: { msg: \"{{ secret.k }}\" }\n")
    r = T.run({ "plan", book, "-o", d .. "/p.plan" }, { env = env })
    T.eq(r.rc, 0, "plan with the right passphrase (stderr: " .. r.stderr .. ")")
    T.write(d .. "/pass", "a wrong one\n")
    local cmds = {
        { "vault", "list" }, { "vault", "set", "k2" }, { "vault", "rm", "k" },
        { "run", book }, { "run", book, "--check" }, { "plan", book, "-o", d .. "/q.plan" },
        { "apply", d .. "/p.plan" },
    }
    for _, c in ipairs(cmds) do
        r = T.run(c, { env = env, stdin = "x\n" })
        local what = table.concat(c, " "):gsub(d, "D")
        T.eq(r.rc, 2, what .. ": exit code (stderr: " .. r.stderr .. ")")
        T.contains(r.stderr, "wrong vault passphrase (or a damaged vault file: " .. d .. "/vault)", what .. ": message")
    end
    T.ok(not H.exists(d .. "/q.plan"), "no plan written")
end)

T.test("SIGINT while an until loop waits to retry: no further attempt", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: poll
      shell: "echo x >> @T@/attempts; false"
      until: result.rc == 0
      retries: 5
      delay: 20
]])
    local t0 = os.time()
    local r = T.sh(q(T.cutover) .. " run --format json " .. q(book) .. " >" .. q(d .. "/out") ..
        " 2>/dev/null & pid=$!; i=0; " ..
        "while [ ! -s " .. q(d .. "/attempts") .. " ] && [ $i -lt 100 ]; do " ..
        "sleep 0.1; i=$((i + 1)); done; sleep 0.3; kill -INT $pid; wait $pid; echo rc=$?")
    T.eq(r.stdout, "rc=130\n")
    T.ok(os.time() - t0 < 10, "did not wait for the delay")
    T.eq(T.read(d .. "/attempts"), "x\n", "one attempt only")
    local hr
    for _, e in ipairs(T.events(T.read(d .. "/out"))) do
        if e.event == "host_result" then hr = e end
    end
    T.eq(hr.status, "interrupted")
    T.eq(hr.result.msg, "interrupted while waiting to retry (after 1 attempt)")
end)

T.test("item 14: terminal control sequences in remote output are escaped in text, verbatim in JSON", function()
    local d = T.tmpdir()
    -- ESC sequences (clear screen, window title ending in BEL), a lone
    -- CR, a backspace, DEL, the C1 CSI as UTF-8 (U+009B) and as a raw
    -- byte, next to text that must stay as it is (tab, UTF-8 letters)
    T.write(d .. "/noise", "ok\27[2Jcleared\27]0;pwned\7\rover\8x\127 \194\155" .. "1m \155" .. "2K caf\195\169\tend\n")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: noisy
      name: "noisy {{ 'n' }}"
      shell: cat @T@/noise; cat @T@/noise >&2; exit 3
]])
    local r = T.run({ "run", book, "-v" })
    T.eq(r.rc, 1, "the step fails (stderr: " .. r.stderr .. ")")
    -- no C0 control but newline and tab, no DEL, no C1, no stray byte
    local bad = r.stdout:find("[%z\1-\8\11-\31\127]") or r.stdout:find("\194[\128-\159]")
        or not utf8.len(r.stdout)
    T.ok(not bad, "no raw control character in the text output: " .. string.format("%q", r.stdout))
    T.contains(r.stdout, [[ok\x1b[2Jcleared\x1b]0;pwned\x07\x0dover\x08x\x7f \x9b1m \x9b2K caf]] .. "\195\169\tend",
               "escaped, UTF-8 and tab kept")
    T.contains(r.stdout, "stderr: ok\\x1b[2J", "stderr escaped too")
    -- and `cutover show` of a run whose stored message is remote output
    local book2 = H.book(d, [[
- hosts: localhost
  steps:
    - id: read
      shell: cat @T@/noise
      register: out
    - id: report
      fail: { msg: "{{ out.stdout }}" }
]], "show.yml")
    local r2 = T.run({ "run", book2 })
    T.eq(r2.rc, 1, "the fail step fails")
    local run_id = r2.stdout:match("%[run (%S+)%]")
    local sh = T.run({ "show", run_id })
    T.eq(sh.rc, 0, "show (stderr: " .. sh.stderr .. ")")
    T.ok(not (sh.stdout:find("[%z\1-\8\11-\31\127]") or sh.stdout:find("\194[\128-\159]") or not utf8.len(sh.stdout)),
         "no raw control character in show: " .. string.format("%q", sh.stdout))
    -- JSON keeps the bytes (its encoder escapes them as \u001b)
    local _, _, results = H.run_json({ "run", book })
    T.eq(#results, 1, "one result")
    T.contains(results[1].result.stdout, "ok\27[2Jcleared\27]0;pwned\7\rover\8x\127 \194\155", "verbatim in JSON")
end)

T.test("without a terminal a long step gets a progress line after 10 s, a short one none", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - name: short
      command: sleep 2
    - name: long
      command: sleep 11
]], "slow.yml")
    local r = T.run({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    T.ok(not r.stdout:find("short on localhost running for", 1, true), "no line for a 2 s step")
    local _, n = r.stdout:gsub("%.%.%. long on localhost running for 1%d", "")
    T.eq(n, 1, "one line for the 11 s step: " .. r.stdout)
end)

-- Issue 10 (lint gap): with an inventory, lint checks that every play's
-- hosts pattern matches, and every variable an expression reads exists.
T.test("lint -i: hosts that match nothing and undefined variables", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", [[
all:
  hosts:
    web1: { ansible_host: 127.0.0.1, app_port: 8080 }
  children:
    db:
      hosts:
        db1: { ansible_host: 127.0.0.2 }
      vars: { pg_version: 15 }
]])
    T.write(d .. "/p.yml", [[
- name: web
  hosts: web*
  vars:
    package: nginx
  steps:
    - name: install
      command: "apt-get install {{ pakage }}"
    - name: check
      command: "curl localhost:{{ app_port }}"
      register: out
    - name: verify
      assert:
        that:
          - out.rc == 0
          - pg_verison == 15
      when: defined("x") and check_mode == false
- name: mail
  hosts: mail
  steps:
    - debug: { msg: "{{ inventory_hostname }} {{ item }}" }
      loop: [1, 2]
]])
    local r = T.run({ "lint", d .. "/p.yml", "-i", d .. "/inv.yml" })
    T.eq(r.rc, 2, "lint fails")
    T.eq(r.stderr, d .. "/p.yml:7:7: step 'install': undefined variable 'pakage' (did you mean 'package'?)\n"
        .. d .. "/p.yml:13:9: step 'verify': undefined variable 'pg_verison' (did you mean 'pg_version'?)\n"
        .. d .. "/p.yml:18:3: play 'mail': hosts 'mail' matches no host of the inventory\n", "each named, in order")
    r = T.run({ "lint", d .. "/p.yml", "-i", d .. "/inv.yml", "-e", "pakage=x", "-e", "pg_verison=1" })
    T.eq(r.rc, 2, "-e defines names; the hosts pattern still matches nothing")
    T.not_contains(r.stderr, "undefined variable", "-e names are defined")
    r = T.run({ "lint", d .. "/p.yml" })
    T.eq(r.rc, 0, "without an inventory: only the playbook's own checks; " .. r.stderr)
end)

T.test("lint -i: the shipped playbooks are clean against their inventories", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", "all:\n  hosts:\n    localhost: { ansible_connection: local }\n")
    local r = T.run({ "lint", T.dir .. "/../playbooks/local-upgrade-demo.yml", "-i", d .. "/inv.yml" })
    T.eq(r.rc, 0, r.stderr)
end)

T.test("an ansible_* inventory variable cutover does not act on is a warning, once per run", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", [[
all:
  vars: { ansible_python_interpreter: /usr/bin/python3 }
  hosts:
    localhost: { ansible_connection: local, ansible_ssh_pipelining: true }
    other: { ansible_connection: local, ansible_ssh_pipelining: true, ansible_user: root }
]])
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - command: 'true'\n- hosts: all\n  steps:\n    - command: 'true'\n")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml" })
    T.eq(r.rc, 0, "exit")
    local _, n = r.stdout:gsub("warning: inventory variable ansible_ssh_pipelining ", "")
    T.eq(n, 1, "one warning for ansible_ssh_pipelining over two hosts and two plays")
    T.contains(r.stdout, "warning: inventory variable ansible_ssh_pipelining (on localhost and 1 more host(s)) is not honoured by cutover: cutover sends each step on one channel already", "names it and why")
    T.contains(r.stdout, "ansible_python_interpreter (on localhost and 1 more host(s)) is not honoured by cutover: cutover runs no Python on hosts", "group vars too")
    T.not_contains(r.stdout, "ansible_connection", "an honoured one is not named")
    T.not_contains(r.stdout, "ansible_user", "nor ansible_user")
    local j = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--format", "json" })
    local seen = 0
    for _, e in ipairs(T.events(j.stdout)) do
        if e.event == "warning" and e.message:find("ansible_ssh_pipelining ", 1, true) then seen = seen + 1 end
    end
    T.eq(seen, 1, "one JSON warning event")
end)

T.done()
