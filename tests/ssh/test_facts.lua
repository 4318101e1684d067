-- Remote facts (issue 12, docs/facts.md) over a real sshd on loopback.
-- The SSH host IS this machine, so every gathered value is compared with
-- what this test reads here by itself (uname, /etc/os-release, /proc,
-- df, ip): a parser that misreads a field, or facts taken from the
-- controller's own process instead of the login, shows up as a mismatch.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")
S.install(T)

local srv = S.start(T)
srv:trust()

local function inventory(dir, extra)
    return T.write(dir .. "/inv.yml", string.format([[
all:
  hosts:
    web1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
%s]], srv.address, srv.port, srv.user, srv.key, extra or ""))
end

local function run(dir, book, extra_inv)
    local r, events, results = H.run_json({ "run", book, "-i", inventory(dir, extra_inv),
                                            "--known-hosts", srv.known_hosts },
                                          { env = { HOME = dir, SSH_AUTH_SOCK = "" }, timeout = 120 })
    local run_id
    for _, e in ipairs(events) do run_id = run_id or e.run end
    return r, H.by_key(results, true), run_id, results
end

local function sh(cmd)
    local r = assert(proc.run({ shell = cmd, timeout = 30 }))
    return (r.stdout:gsub("%s+$", ""))
end
local function rc(cmd) return assert(proc.run({ shell = cmd, timeout = 30 })).rc end

-- The journal's "facts" events of a run (through `cutover show`).
local function fact_events(run_id)
    local r = T.run({ "show", run_id, "--format", "json" })
    T.eq(r.rc, 0, "cutover show (stderr: " .. r.stderr .. ")")
    local out = {}
    for _, e in ipairs(json.decode(r.stdout).events or {}) do
        if e.kind == "facts" then out[#out + 1] = e end
    end
    return out, r.stdout
end

local function os_release()
    local t = {}
    for l in (fs.read("/etc/os-release") or fs.read("/usr/lib/os-release") or ""):gmatch("[^\n]+") do
        local k, v = l:match("^([%u%d_]+)=(.*)$")
        if k then t[k] = v:gsub('^"(.*)"$', "%1") end
    end
    return t
end

T.test("facts over SSH are the host's own, as it reads itself, one gathering per run", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: all
  steps:
    - id: show
      debug: { msg: "{{ to_json(facts) }}" }
    - id: same
      debug: { msg: "{{ ansible_facts.kernel == facts.kernel and ansible_facts.boot_id == facts.boot_id }}" }
    - id: when
      command: echo gated
      when: facts.os_family ~= nil and ansible_facts.distribution == facts.distribution
- hosts: all
  steps:
    - id: again
      debug: { msg: "{{ facts.boot_id }}" }
]])
    local up0 = math.floor(tonumber((fs.read("/proc/uptime") or ""):match("^[%d.]+")))
    local r, k, run_id = run(d, book)
    local up1 = math.floor(tonumber((fs.read("/proc/uptime") or ""):match("^[%d.]+")))
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    local f = assert(json.decode(k["web1 show"].result.msg), "facts as JSON")

    -- identity and kernel
    T.eq(f.nodename, sh("uname -n"), "nodename")
    T.eq(f.hostname, sh("uname -n"):match("^[^.]*"), "hostname")
    T.eq(f.system, sh("uname -s"), "system")
    T.eq(f.kernel, sh("uname -r"), "kernel")
    T.eq(f.kernel_version, sh("uname -v"), "kernel_version")
    T.eq(f.architecture, sh("uname -m"), "architecture")
    T.eq(f.fqdn, (sh("hostname -f 2>/dev/null") ~= "" and sh("hostname -f")) or sh("uname -n"), "fqdn")
    -- the login, not the controller's user (root runs this test)
    T.eq(f.user_id, S.USER, "user_id")
    T.eq(f.user_uid, tonumber(sh("id -u " .. S.USER)), "user_uid")
    T.eq(f.user_dir, sh("getent passwd " .. S.USER .. " | cut -d: -f6"), "user_dir")
    T.eq(f.user, srv.user, "the connection's user is kept")
    T.eq(f.address, srv.address, "address kept")
    T.eq(f.connection, "ssh", "connection kept")
    -- the OS
    local osr = os_release()
    T.eq(f.os_release.ID, osr.ID, "os_release.ID")
    T.eq(f.distribution_release, osr.VERSION_CODENAME, "distribution_release")
    T.eq(f.distribution_major_version, (osr.VERSION_ID or ""):match("^%d+"), "distribution_major_version")
    local known = { debian = "Debian", ubuntu = "Ubuntu" }
    if known[osr.ID] then
        T.eq(f.distribution, known[osr.ID], "distribution")
        T.eq(f.os_family, "Debian", "os_family")
    end
    if osr.ID == "debian" then
        T.eq(f.distribution_version, sh("cat /etc/debian_version"), "Debian's point release")
    end
    -- boot, init, packages
    T.eq(f.boot_id, sh("cat /proc/sys/kernel/random/boot_id"), "boot_id")
    T.ok(f.uptime_seconds >= up0 and f.uptime_seconds <= up1,
         "uptime " .. tostring(f.uptime_seconds) .. " within what was read before (" .. up0 .. ") and after (" .. up1 .. ")")
    local sd = rc("test -d /run/systemd/system")
    T.eq(f.service_mgr, sd == 0 and "systemd" or sh("cat /proc/1/comm"), "service_mgr")
    local apt = rc("command -v apt-get")
    if apt == 0 then T.eq(f.pkg_mgr, "apt", "pkg_mgr") end
    -- hardware
    T.eq(f.processor_vcpus, tonumber(sh("getconf _NPROCESSORS_ONLN")), "processor_vcpus")
    T.eq(f.memtotal_mb, tonumber(sh("sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo")) // 1024, "memtotal_mb")
    local root
    for _, m in ipairs(f.mounts) do if m.mount == "/" then root = m end end
    T.ok(root, "the root file system is among the mounts")
    T.eq(root.device, sh("df -P -k / | tail -n 1 | awk '{print $1}'"), "root device")
    T.eq(root.size_total, tonumber(sh("df -P -k / | tail -n 1 | awk '{print $2}'")) * 1024, "root size_total")
    T.eq(root.fstype, sh("awk '$2 == \"/\" {t=$3} END {print t}' /proc/mounts"), "root fstype")
    -- network
    local has_ip = rc("command -v ip")
    if has_ip == 0 then
        T.eq(f.lo.ipv4.address, "127.0.0.1", "lo's address")
        T.eq(f.lo.ipv4.netmask, "255.0.0.0", "lo's netmask")
        local dev = sh("ip -4 route show default | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -n 1")
        if dev ~= "" then
            T.eq(f.default_ipv4.interface, dev, "default_ipv4.interface")
            T.eq(f.default_ipv4.gateway, sh("ip -4 route show default | sed -n 's/.* via \\([^ ]*\\).*/\\1/p' | head -n 1"),
                 "default_ipv4.gateway")
            local addr = sh("ip -o -4 addr show dev " .. dev .. " | awk '{print $4}' | head -n 1"):match("^[^/]+")
            T.eq(f.default_ipv4.address, addr, "default_ipv4.address")
            T.eq(f[dev:gsub("[^%w_]", "_")].macaddress, sh("cat /sys/class/net/" .. dev .. "/address"), "its MAC")
        end
        local names = sh("ls /sys/class/net | sort | tr '\\n' ' '")
        local gathered = table.concat(f.interfaces, " ") .. " "
        for n in names:gmatch("%S+") do
            if sh("ip -o addr show dev " .. n .. " 2>/dev/null | head -n 1") ~= "" then
                T.contains(gathered, n .. " ", "interface " .. n)
            end
        end
    end

    T.eq(k["web1 same"].result.msg, "true", "ansible_facts is the same table")
    T.eq(k["web1 when"].status, "changed", "facts in a condition")
    T.eq(k["web1 again"].result.msg, f.boot_id, "the second play sees the facts")
    -- in the journal, once: the second play used what the first gathered
    local ev, shown = fact_events(run_id)
    T.eq(#ev, 1, "facts events in the journal: " .. shown)
    T.eq(ev[1].host, "web1", "event host")
    T.eq(json.decode(ev[1].detail).boot_id, f.boot_id, "the journal holds the facts")
    -- not in the operator's text view of the run
    local text = T.run({ "show", run_id })
    T.not_contains(text.stdout, "facts", "cutover show's event list")
end)

T.test("gather_facts: false gathers nothing; gather_subset narrows, a later play reads only what is missing", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: all
  gather_facts: false
  steps:
    - id: nogather
      debug: { msg: "{{ tostring(facts.kernel) }} {{ tostring(facts.boot_id) }}" }
- hosts: all
  gather_subset: min
  steps:
    - id: min
      debug: { msg: "{{ facts.kernel ~= nil }} {{ tostring(facts.mounts) }} {{ tostring(facts.default_ipv4) }}" }
- hosts: all
  gather_subset: [min]
  steps:
    - id: min_again
      debug: { msg: "{{ tostring(facts.mounts) }}" }
- hosts: all
  gather_subset: ["!network"]
  steps:
    - id: hw
      debug: { msg: "{{ type(facts.mounts) }} {{ tostring(facts.interfaces) }}" }
]])
    local r, k, run_id = run(d, book)
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    T.eq(k["web1 nogather"].result.msg, "nil nil", "nothing gathered")
    T.eq(k["web1 min"].result.msg, "true nil nil", "min only")
    T.eq(k["web1 min_again"].result.msg, "nil", "min again: the cached facts")
    T.eq(k["web1 hw"].result.msg, "table nil", "hardware read later, network still not")
    local ev = fact_events(run_id)
    T.eq(#ev, 2, "two gatherings (min, then hardware)")
    T.eq(table.concat(json.decode(ev[1].detail).gather_subset, ","), "min", "first")
    T.eq(table.concat(json.decode(ev[2].detail).gather_subset, ","), "min,hardware", "second")
end)

T.test("facts are read-only, nested tables too; ansible_facts cannot be set", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: all
  gather_subset: hardware
  steps:
    - id: nested
      set_fact: { x: "{{ (function() facts.mounts[1].mount = 'x' return 1 end)() }}" }
]])
    local r, k = run(d, book)
    T.eq(r.rc, 1, "exit code")
    T.eq(k["web1 nested"].status, "failed", "nested assignment fails")
    T.contains(k["web1 nested"].result.msg, "facts are read-only", "message")
    local book2 = H.book(d, "- hosts: all\n  steps:\n    - id: set\n      set_fact: { ansible_facts: {} }\n", "b2.yml")
    r, k = run(d, book2)
    T.eq(r.rc, 1, "exit code")
    T.contains(k["web1 set"].result.msg, "'ansible_facts' is set by cutover and cannot be changed", "set_fact")
end)

T.test("a host that does not answer like a POSIX shell fails clearly, before any step", function()
    local odd = S.start(T, { extra_config = "ForceCommand /bin/echo not a shell" })
    odd:trust()
    local d = T.tmpdir()
    local inv = T.write(d .. "/inv.yml", string.format(
        "all:\n  hosts:\n    odd1:\n      ansible_host: %s\n      ansible_port: %d\n      ansible_user: %s\n" ..
        "      ansible_ssh_private_key_file: %s\n", odd.address, odd.port, odd.user, odd.key))
    local book = H.book(d, "- hosts: all\n  steps:\n    - id: first\n      debug: { msg: hi }\n")
    local r, _, results = H.run_json({ "run", book, "-i", inv, "--known-hosts", odd.known_hosts },
                                     { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 120 })
    T.eq(r.rc, 1, "exit code (stderr: " .. r.stderr .. ")")
    local k = H.by_key(results)
    T.eq(k.gather_facts and k.gather_facts.status, "failed", "the gathering is reported failed")
    T.contains(k.gather_facts.result.msg, "odd1", "names the host")
    T.eq(k.first, nil, "no step ran")
    -- with gather_facts: false the same host runs its steps (the failure was the gathering)
    local book2 = H.book(d, "- hosts: all\n  gather_facts: false\n  steps:\n    - id: first\n      debug: { msg: hi }\n", "b2.yml")
    r = H.run_json({ "run", book2, "-i", inv, "--known-hosts", odd.known_hosts },
                   { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 120 })
    T.eq(r.rc, 0, "without gathering (stderr: " .. r.stderr .. ")")
end)

T.test("Ctrl-C while gathering: the host is interrupted (exit 130), no step runs", function()
    local d = S.target(T)
    -- every command on this server hangs: the gathering never answers
    local slow = S.start(T, { extra_config = "ForceCommand touch " .. d .. "/gathering; sleep 30" })
    slow:trust()
    T.write(d .. "/inv.yml", string.format(
        "all:\n  hosts:\n    h1: { ansible_host: %s, ansible_port: %d, ansible_user: %s, ansible_ssh_private_key_file: %s }\n",
        slow.address, slow.port, slow.user, slow.key))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - id: first\n      debug: { msg: hi }\n")
    local r = T.sh(string.format(
        "HOME=%s SSH_AUTH_SOCK= NO_COLOR=1 %s run %s/p.yml -i %s/inv.yml --known-hosts %s > %s/out 2>&1 & pid=$!; " ..
        "i=0; while [ ! -e %s/gathering ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; " ..
        "kill -INT $pid; wait $pid; echo rc=$?",
        d, T.cutover, d, d, slow.known_hosts, d, d))
    T.eq(r.stdout, "rc=130\n", "exit code")
    local out = T.read(d .. "/out")
    T.match(out, "interrupted%s+h1%s+gather facts", "the gathering is reported interrupted")
    T.not_contains(out, "first", "no step ran")
    slow:stop()
end)

T.test("the local connection gathers only when the play asks", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: default
      debug: { msg: "{{ tostring(facts.boot_id) }}" }
- hosts: localhost
  gather_facts: true
  steps:
    - id: asked
      debug: { msg: "{{ facts.boot_id }} {{ facts.user_id }}" }
]])
    local r, _, results = H.run_json({ "run", book })
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    local k = H.by_key(results)
    T.eq(k.default.result.msg, "nil", "not gathered by default")
    T.eq(k.asked.result.msg, sh("cat /proc/sys/kernel/random/boot_id") .. " " .. sh("id -un"), "gathered when asked")
end)

T.test("Ansible's injected names: ansible_distribution is ansible_facts.distribution; variables and connection settings win", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: web1
  vars:
    ansible_kernel: "set by the play"
  steps:
    - id: injected
      debug: { msg: "{{ ansible_distribution }}|{{ ansible_os_family }}|{{ ansible_hostname }}|{{ ansible_default_ipv4.address or '-' }}|{{ ansible_distribution_major_version }}" }
    - id: vars_win
      debug: { msg: "{{ ansible_kernel }}|{{ ansible_user }}|{{ ansible_port }}" }
    - { id: n1, debug: { msg: "{{ ansible_name }}" }, ignore_errors: true }
    - { id: n2, debug: { msg: "{{ ansible_connection }}" }, ignore_errors: true }
    - { id: n3, debug: { msg: "{{ ansible_address }}" }, ignore_errors: true }
    - { id: n4, debug: { msg: "{{ ansible_boot_id }}" }, ignore_errors: true }
    - { id: n5, debug: { msg: "{{ ansible_nothing_such }}" }, ignore_errors: true }
]])
    local r, k = run(d, book)
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    local osr = os_release()
    local want_dist = k["web1 injected"].result.msg:match("^([^|]*)")
    T.ok(want_dist ~= "" and want_dist ~= "nil", "ansible_distribution is defined: " .. k["web1 injected"].result.msg)
    T.eq(k["web1 injected"].result.msg:match("^[^|]*|[^|]*|([^|]*)"), sh("uname -n"):match("^[^.]*"), "ansible_hostname is the host's")
    T.eq(k["web1 injected"].result.msg:match("([^|]*)$"), (osr.VERSION_ID or ""):match("^%d+") or "", "ansible_distribution_major_version")
    T.eq(k["web1 vars_win"].result.msg, "set by the play|" .. srv.user .. "|" .. srv.port,
         "a variable of that name wins; ansible_user and ansible_port stay the inventory's")
    for i, n in ipairs({ "ansible_name", "ansible_connection", "ansible_address", "ansible_boot_id", "ansible_nothing_such" }) do
        T.contains(k["web1 n" .. i].result.msg, "undefined variable '" .. n .. "'",
                   "cutover-only facts and unknown names are not injected")
    end
end)

T.test("gather_facts (and setup) mid-play reads the host again: facts, ansible_X and the journal follow", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: web1
  steps:
    - id: first
      debug: { msg: "{{ facts.uptime_seconds }}" }
    - command: sleep 1.2
    - id: again
      gather_facts: { gather_subset: min }
      register: g
    - id: second
      debug: { msg: "{{ facts.uptime_seconds }} {{ ansible_uptime_seconds }} {{ facts.hostname }} {{ facts.memtotal_mb }}" }
    - id: alias
      setup: {}
]])
    local r, k, run_id = run(d, book)
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    local u1 = tonumber(k["web1 first"].result.msg)
    local u2, u3, hn, mem = k["web1 second"].result.msg:match("^(%S+) (%S+) (%S+) (%S+)$")
    T.ok(tonumber(mem), "facts of a subset not read again are kept: " .. k["web1 second"].result.msg)
    T.ok(u1 and tonumber(u2) and tonumber(u2) > u1, "facts.uptime_seconds was read again: " .. tostring(u1) .. " -> " .. tostring(u2))
    T.eq(u3, u2, "ansible_uptime_seconds follows")
    T.eq(hn, sh("uname -n"):match("^[^.]*"), "the rest is still the host's")
    local again = k["web1 again"]
    T.eq(again.status, "ok", "reading is never a change")
    T.eq(table.concat(again.result.gathered, ","), "min", "the subset asked")
    local names = " " .. table.concat(again.result.changed_facts, " ") .. " "
    T.contains(names, " uptime_seconds ", "uptime changed")
    T.ok(not names:find(" hostname ", 1, true) and not names:find(" memtotal_mb ", 1, true),
         "the hostname did not change; hardware facts were not read again: " .. names)
    T.eq(k["web1 alias"].status, "ok", "setup is the same action")
    local ev = fact_events(run_id)
    T.eq(#ev, 3, "three gatherings journaled (the play's, gather_facts, setup)")
    -- check mode reads too (it changes nothing on the host)
    local rc2, _, results = H.run_json({ "run", book, "--check", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
                                      { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 120 })
    T.eq(rc2.rc, 0, "check: " .. rc2.stderr)
    T.eq(H.by_key(results).again.status, "ok", "check mode gathers as well")
end)

T.test("gather_facts: a bad subset is refused at lint, naming the step; delegating it is refused", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: web1
  steps:
    - id: bad
      gather_facts: { gather_subset: [disks] }
]])
    local r = T.run({ "lint", book })
    T.eq(r.rc, 2, "lint refuses")
    T.contains(r.stdout .. r.stderr, "step 'bad'", "names the step")
    T.contains(r.stdout .. r.stderr, "unknown gather_subset 'disks'", "says what")
    book = H.book(d, [[
- hosts: web1
  steps:
    - id: del
      gather_facts: {}
      delegate_to: localhost
]])
    local rr, k = run(d, book)
    T.eq(rr.rc, 1, "fails")
    T.contains(k["web1 del"].result.msg, "cannot be delegated", "says why")
end)

T.done()
