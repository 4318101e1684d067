-- Multi-host runs over SSH: batches, failure thresholds, forks, dropped
-- connections, reboots, delegate_to, run_once.  Several inventory hosts
-- may point at one sshd; each host writes under its own folder.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local loop = require("cutover.core.loop")
local proc = require("cutover.core.proc")
S.install(T)

local srv = S.start(T)
srv:trust()

-- An inventory of n hosts h1..hn on srv (extra: more YAML per host).
local function inventory(dir, n, extra)
    local lines = { "all:", "  vars:", "    ansible_host: " .. srv.address,
                    "    ansible_port: " .. srv.port, "    ansible_user: " .. srv.user,
                    "    ansible_ssh_private_key_file: " .. srv.key, "  hosts:" }
    for i = 1, n do
        lines[#lines + 1] = "    h" .. i .. ":" .. ((extra and extra[i]) and (" " .. extra[i]) or " {}")
    end
    return T.write(dir .. "/inv.yml", table.concat(lines, "\n") .. "\n")
end

local function run(dir, args, opts)
    local all = { "run", dir .. "/p.yml", "-i", dir .. "/inv.yml", "--known-hosts", srv.known_hosts }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    opts = opts or {}
    opts.env = opts.env or {}
    opts.env.HOME = dir
    opts.env.SSH_AUTH_SOCK = ""
    return T.run(all, opts)
end

local function lines_of(path)
    local out = {}
    for l in (T.read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
    return out
end

T.test("rolling batches: a failing host crosses max_fail_percentage, later batches never start", function()
    local d = S.target(T)
    inventory(d, 6)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  serial: 2
  max_fail_percentage: 0
  steps:
    - id: mark
      shell: "echo {{ inventory_hostname }} >> %s/ran"
    - id: break-h3
      fail: { msg: "h3 is broken" }
      when: inventory_hostname == "h3"
    - id: after
      shell: "echo {{ inventory_hostname }} >> %s/after"
]], d, d))
    local r, ev, _ = H.run_json({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
                                  { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 1, "exit code")
    local ran = lines_of(d .. "/ran")
    table.sort(ran)
    T.eq(table.concat(ran, " "), "h1 h2 h3 h4", "batches 1 and 2 ran")
    local after = lines_of(d .. "/after")
    table.sort(after)
    T.eq(table.concat(after, " "), "h1 h2 h4", "h3 stopped at its failure")
    local hosts = ev[#ev].hosts
    T.eq(hosts.h3.failed_at, "break-h3", "h3 failed at")
    T.contains(hosts.h5.never_started or "", "max_fail_percentage", "h5 never started")
    T.contains(hosts.h6.never_started or "", "max_fail_percentage", "h6 never started")
    local t = run(d)
    T.match(t.stdout, "h3[^\n]*failed at break%-h3", "text recap: h3")
    T.match(t.stdout, "h5[^\n]*never started %(stopped: 1 of 2 hosts failed in batch 2", "text recap: h5")
end)

T.test("serial as a percentage and a list; order: reverse_inventory", function()
    local d = S.target(T)
    inventory(d, 5)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  serial: [1, "50%%"]
  order: reverse_inventory
  steps:
    - shell: "echo {{ inventory_hostname }} >> %s/ran"
]], d))
    local r = run(d)
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.contains(r.stdout, "batch 1 of 3: h5\n", "first batch: one host")
    T.contains(r.stdout, "batch 2 of 3: h4, h3\n", "then 50% of 5 = 2")
    T.contains(r.stdout, "batch 3 of 3: h2, h1\n", "the rest")
end)

T.test("rolling batches close their sessions: the controller's sockets do not grow", function()
    local d = S.target(T)
    inventory(d, 5)
    -- each host counts, from the controller, the sockets cutover holds
    -- while its own batch runs ($PPID of the local shell is cutover)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  serial: 1
  steps:
    - shell: "echo first-{{ inventory_hostname }}"
      register: first
    - id: count
      delegate_to: localhost
      shell: "echo {{ inventory_hostname }} $(ls -l /proc/$PPID/fd | grep -c 'socket:') >> %s/sockets"
# a later play reconnects, and still has the first play's registered values
- hosts: all
  serial: 2
  steps:
    - shell: "echo {{ first.stdout }} >> %s/second"
]], d, d))
    local r, ev = H.run_json({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
                             { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    local counts = {}
    for _, l in ipairs(lines_of(d .. "/sockets")) do
        local host, n = l:match("^(h%d) (%d+)$")
        T.ok(host, "line: " .. l)
        counts[#counts + 1] = tonumber(n)
    end
    T.eq(#counts, 5, "every host counted")
    T.ok(counts[1] >= 1, "batch 1 holds its host's socket: " .. counts[1])
    for i = 2, 5 do
        T.eq(counts[i], counts[1], "sockets during batch " .. i .. " (batch 1: " .. counts[1] .. ")")
    end
    local starts, ends = {}, {}
    for _, e in ipairs(ev) do
        if e.event == "batch_start" then starts[#starts + 1] = e end
        if e.event == "batch_end" then ends[#ends + 1] = e end
    end
    local second = lines_of(d .. "/second")
    table.sort(second)
    T.eq(table.concat(second, " "), "first-h1 first-h2 first-h3 first-h4 first-h5", "second play ran on every host")
    T.eq(#starts, 8, "batch_start events (5 + 3)")
    T.eq(#ends, 8, "batch_end events")
    T.eq(starts[3].batch, 3, "batch number")
    T.eq(starts[3].batches, 5, "batch count")
    T.eq(table.concat(starts[3].hosts, ","), "h3", "batch 3's hosts")
    T.eq(ends[5].failed, 0, "no failure in the last batch")
end)

T.test("--forks caps hosts running at once", function()
    local d = S.target(T)
    inventory(d, 6)
    -- each host waits (bounded) until N hosts have run at once, seen by
    -- any of them (the 'reached' marker): with the cap working the peak
    -- is exactly N whatever the machine's load, and once it was seen no
    -- host left alone at the end waits out the bound
    local function book(n)
        fs.remove(d .. "/reached")
        T.write(d .. "/p.yml", string.format([[
- hosts: all
  gather_facts: false
  steps:
    - shell: "echo start >> %s/log; i=0; while [ $i -lt 400 ]; do s=$(grep -c start %s/log); e=$(grep -c end %s/log); [ $((s - e)) -ge %d ] && touch %s/reached; [ -e %s/reached ] && break; sleep 0.05; i=$((i + 1)); done; echo end >> %s/log"
]], d, d, d, n, d, d, d))
    end
    book(2)
    local r = run(d, { "--forks", "2" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local running, peak = 0, 0
    for _, l in ipairs(lines_of(d .. "/log")) do
        running = running + (l == "start" and 1 or -1)
        peak = math.max(peak, running)
    end
    T.eq(peak, 2, "at most 2 at once, and 2 used")
    fs.remove(d .. "/log")
    book(6)
    r = run(d, { "--forks", "6" })
    T.eq(r.rc, 0, "exit code")
    running, peak = 0, 0
    for _, l in ipairs(lines_of(d .. "/log")) do
        running = running + (l == "start" and 1 or -1)
        peak = math.max(peak, running)
    end
    T.eq(peak, 6, "six hosts at once")
end)

T.test("any_errors_fatal: the other hosts stop at the next step", function()
    -- h2 fails once h1 and h3 are in their first step (a host still
    -- connecting when it fails stops before its first step instead)
    local d = S.target(T)
    inventory(d, 3)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  any_errors_fatal: true
  gather_facts: false
  steps:
    - id: first
      shell: "if [ {{ inventory_hostname }} = h2 ]; then i=0; while [ $i -lt 300 ] && ! [ -e %s/h1 -a -e %s/h3 ];
        do sleep 0.1; i=$((i+1)); done; exit 1; fi; touch %s/{{ inventory_hostname }}; sleep 3"
    - id: second
      shell: "echo {{ inventory_hostname }} >> %s/second"
]], d, d, d, d))
    local r = run(d)
    T.eq(r.rc, 1, "exit code")
    T.eq(T.read(d .. "/second"), nil, "no host reached the second step")
    T.match(r.stdout, "h1[^\n]*stopped at second %(any_errors_fatal: h2 failed%)", "recap")
end)

T.test("the connection drops between steps: re-established transparently", function()
    local d = S.target(T)
    inventory(d, 1)
    local marker = d .. "/killed"
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - shell: "echo one >> %s/log"
    - id: wait-for-the-kill
      wait_for: { path: "%s", timeout: 20, sleep: 0.05 }
      delegate_to: localhost
    - shell: "echo two >> %s/log"
]], d, marker, d))
    -- once step 1 has run, kill the session's sshd; step 2 waits on the
    -- controller for that, so step 3 finds the session dead
    proc.run({ shell = string.format(
        "(while ! grep -q one %s/log 2>/dev/null; do sleep 0.05; done; " ..
        "%s; touch %s) >/dev/null 2>&1 &", d, srv:kill_sessions_sh(), marker) })
    local r = run(d)
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.eq(table.concat(lines_of(d .. "/log"), " "), "one two", "every step ran once")
end)

T.test("the connection drops in the middle of a step's output: failure naming host and step, journal opens, " ..
    "resume finishes", function()
    local d = S.target(T)
    inventory(d, 1)
    -- the step streams output until the test "repairs" the host
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: long
      shell: "touch %s/started; if [ -e %s/repaired ]; then echo fine; else while :; do echo output-line; sleep 0.01; done; fi"
    - id: never
      shell: "touch %s/never"
]], d, d, d))
    proc.run({ shell = string.format(
        "(while [ ! -e %s/started ]; do sleep 0.05; done; sleep 0.3; %s; touch %s/killed) >/dev/null 2>&1 &",
        d, srv:kill_sessions_sh(), d) })
    -- the command never ends: had cutover waited, the harness's bound ends the run
    local r = run(d, {}, { timeout = 60 })
    T.eq(r.rc, 1, "exit code (killer ran: " .. tostring(fs.stat(d .. "/killed") ~= nil) ..
         "; listener " .. tostring(srv.pid) .. "): " .. r.stdout)
    T.match(r.stdout, "failed%s+h1%s+long", "the step failed")
    -- the session's processes die with it: the client sees either the
    -- connection drop or the channel close without a status
    T.contains(r.stdout, "it may or may not have taken effect", "says why")
    T.eq(fs.stat(d .. "/never"), nil, "no later step ran")
    T.match(r.stdout, "h1[^\n]*failed at long", "recap")
    local env = { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 60 }
    local h = T.run({ "history" }, env)
    T.eq(h.rc, 0, "the journal opens: " .. h.stderr)
    T.match(h.stdout, "failed", "the run is recorded as failed")
    T.write(d .. "/repaired", "")
    local again = T.run({ "resume" }, env)
    T.eq(again.rc, 0, "resume finishes: " .. again.stdout .. again.stderr)
    T.ok(fs.stat(d .. "/never") ~= nil, "the later step ran on resume")
end)

T.test("reboot: waits for the host to go down and come back with a new boot id", function()
    local d = S.target(T)
    inventory(d, 1)
    T.write(d .. "/boot_id", "boot-1\n")
    S.sh("chmod 644 " .. d .. "/boot_id")
    -- a root helper plays the machine: on request it drops sshd for 2 s,
    -- then comes back with a new boot id
    local req = d .. "/reboot-request"
    proc.run({ shell = string.format(
        "(while [ ! -e %s ]; do sleep 0.05; done; %s; kill %s; sleep 2; " ..
        "echo boot-2 > %s/boot_id; /usr/sbin/sshd -f %s -E %s/sshd.log) >/dev/null 2>&1 &",
        req, srv:kill_sessions_sh(), srv.pid, d, srv.config, srv.dir) })
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: restart
      reboot:
        reboot_command: "touch %s"
        boot_id_command: "cat %s/boot_id"
        reboot_timeout: 30
        sleep: 0.2
      register: rb
    - assert:
        that:
          - rb.boot_id_before == "boot-1"
          - rb.boot_id_after == "boot-2"
          - rb.elapsed >= 2
]], req, d))
    local r = run(d, {}, { timeout = 90 })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "changed%s+h1%s+restart", "reboot changed")
    -- sshd was restarted by the helper: record its new pid for cleanup
    srv.pid = (T.read(srv.dir .. "/sshd.pid") or ""):match("%d+")
end)

T.test("reboot that never happens: fails saying the host did not go down", function()
    local d = S.target(T)
    inventory(d, 1)
    T.write(d .. "/p.yml", [[
- hosts: all
  steps:
    - reboot:
        reboot_command: "true"
        boot_id_command: "echo same"
        reboot_timeout: 2
        sleep: 0.2
]])
    local r = run(d)
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "the host did not go down within 2s (boot identity still same)", "message")
end)

T.test("delegate_to localhost and to another host; run_once", function()
    local d = S.target(T)
    inventory(d, 3)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: on-controller
      shell: "echo {{ inventory_hostname }} >> %s/controller"
      delegate_to: localhost
    - id: on-h1
      shell: "echo from-{{ inventory_hostname }} >> %s/h1-log"
      delegate_to: h1
    - id: once
      shell: "echo {{ inventory_hostname }} >> %s/once"
      run_once: true
]], d, d, d))
    local r = run(d)
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local c = lines_of(d .. "/controller")
    table.sort(c)
    T.eq(table.concat(c, " "), "h1 h2 h3", "each host's step ran on the controller")
    local h = lines_of(d .. "/h1-log")
    table.sort(h)
    T.eq(table.concat(h, " "), "from-h1 from-h2 from-h3", "delegated to h1 with each host's variables")
    T.eq(#lines_of(d .. "/once"), 1, "run_once ran once")
end)

T.test("copy, template, file and stat over SSH, with check mode exact", function()
    local d = S.target(T)
    inventory(d, 1)
    T.write(d .. "/t.tmpl", "host={{ inventory_hostname }}\n")
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - copy: { dest: "%s/f.txt", content: "hello\n", mode: "0640" }
    - template: { src: t.tmpl, dest: "%s/t.txt" }
    - file: { path: "%s/sub/dir", state: directory }
    - stat: { path: "%s/f.txt" }
      register: s
    - assert:
        that: s.stat.mode == "0640" and s.stat.size == 6
      when: not check_mode
]], d, d, d, d))
    local before = T.snapshot(d)
    local r = run(d, { "--check" })
    T.eq(r.rc, 0, "check exit code: " .. r.stdout)
    T.same_snapshot(before, T.snapshot(d), "check mode over ssh")
    r = run(d)
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/f.txt"), "hello\n", "copy")
    T.eq(T.read(d .. "/t.txt"), "host=h1\n", "template")
    T.eq(fs.stat(d .. "/sub/dir").type, "directory", "file")
    r = run(d)
    T.match(r.stdout, "h1%s+%d+%s+0%s+0%s+0%s+0%s+0\n", "second run: nothing changed")
end)

T.test("a server that accepts TCP but never speaks SSH: the handshake times out", function()
    local d = S.target(T)
    local pf = d .. "/silent.port"
    -- listens (the kernel completes connections) but never accepts or writes
    local r = T.sh("perl -MIO::Socket::INET -e '" ..
        "my $s = IO::Socket::INET->new(Listen => 50, LocalAddr => \"127.0.0.1\", LocalPort => 0) or die; " ..
        "open(my $f, \">\", \"$ARGV[0].tmp\"); print $f $s->sockport; close $f; " ..
        "rename(\"$ARGV[0].tmp\", $ARGV[0]); sleep 600' " .. pf .. " >/dev/null 2>&1 & echo $!")
    local pid = r.stdout:match("%d+")
    local port
    for _ = 1, 100 do
        port = (T.read(pf) or ""):match("^%d+$")
        if port then break end
        loop.sleep(0.05)
    end
    T.ok(port, "silent listener up")
    T.write(d .. "/inv.yml", "all:\n  hosts:\n    mute: { ansible_host: 127.0.0.1, ansible_port: " .. port ..
        ", ansible_timeout: 2 }\n")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - command: 'true'\n")
    local out = run(d)   -- a hang ends at the harness's bound, not rc 1
    T.sh("kill " .. pid)
    T.eq(out.rc, 1, "exit code")
    T.contains(out.stdout, "127.0.0.1:" .. port .. ": timed out while in the SSH handshake", "message")
end)

T.test("Ctrl-C over SSH: the running step is interrupted, no host or step starts after", function()
    local d = S.target(T)
    inventory(d, 2)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  serial: 1
  steps:
    - id: long
      shell: "touch %s/started-{{ inventory_hostname }}; sleep 600"
    - id: after
      shell: "touch %s/after"
]], d, d))
    -- sleep 600 outlives T.sh's bound: an interrupt that did not stop the
    -- step leaves no rc=130
    local r = T.sh(string.format(
        "HOME=%s SSH_AUTH_SOCK= NO_COLOR=1 %s run %s/p.yml -i %s/inv.yml --known-hosts %s > %s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s/started-h1 ]; do sleep 0.05; done; kill -INT $pid; wait $pid; echo rc=$?",
        d, T.cutover, d, d, srv.known_hosts, d, d))
    T.eq(r.stdout, "rc=130\n", "exit code")
    local out = T.read(d .. "/out")
    T.match(out, "interrupted%s+h1%s+long", "the step is reported as interrupted")
    T.match(out, "h2[^\n]*never started %(interrupted%)", "h2 never started")
    T.eq(fs.stat(d .. "/after"), nil, "no later step")
    T.eq(fs.stat(d .. "/started-h2"), nil, "no later host")
end)

T.test("output over the cap is cut, with a warning, and the command still succeeds", function()
    local d = S.target(T)
    inventory(d, 1)
    T.write(d .. "/p.yml", [[
- hosts: all
  steps:
    - id: big
      shell: "head -c 100000 /dev/zero | tr '\\0' x; echo done >&2"
      register: big
    - assert:
        that: len(big.stdout) == 1024 and big.stdout_truncated and big.stderr == "done"
]])
    local r = run(d, { "--max-output", "1K" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.contains(r.stdout, "warning: stdout cut at the output cap (--max-output)", "warning")
end)

T.test("a channel closed without an exit status is a failure, never exit 0", function()
    -- OpenSSH's ChannelTimeout closes an idle session channel without
    -- sending any exit status (libssh2 1.10 would report 0)
    local quiet = S.start(T, { extra_config = "ChannelTimeout session:*=1" })
    quiet:trust()
    local d = S.target(T)
    T.write(d .. "/inv.yml", string.format(
        "all:\n  hosts:\n    h1: { ansible_host: %s, ansible_port: %d, ansible_user: %s, " ..
            "ansible_ssh_private_key_file: %s }\n",
        quiet.address, quiet.port, quiet.user, quiet.key))
    T.write(d .. "/p.yml", "- hosts: all\n  gather_facts: false\n  steps:\n    - id: idle\n      command: sleep 4\n")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", quiet.known_hosts },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 1, "exit code: " .. r.stdout)
    T.match(r.stdout, "failed%s+h1%s+idle", "the step failed")
    T.contains(r.stdout, "ended without an exit status", "says why")
    quiet:stop()
end)

T.test("wait_for_connection: waits while sshd is down, then goes on", function()
    local d = S.target(T)
    inventory(d, 1)
    local req, waiting = d .. "/down-request", d .. "/waiting"
    -- sshd goes down when the playbook asks (the listener first, then the
    -- sessions, so the step in flight fails with nothing to reconnect to)
    -- and comes back 3 s after the playbook says it is about to wait: no
    -- guessed delay decides whether the host is down when the wait starts
    -- (the sessions are found as the listener's children before it dies)
    proc.run({ shell = string.format(
        "(i=0; while [ ! -e %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; " ..
        "kt() { for c in $(pgrep -P $1); do kt $c; done; kill -KILL $1 2>/dev/null; }; " ..
        "kids=$(pgrep -P %s); kill %s; for m in $kids; do kt $m; done; " ..
        "i=0; while [ ! -e %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; sleep 3; " ..
        "/usr/sbin/sshd -f %s -E %s/sshd.log) >/dev/null 2>&1 &",
        req, srv.pid, srv.pid, waiting, srv.config, srv.dir) })
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - shell: "touch %s"
    - command: "sleep 60"
      ignore_errors: true
    - shell: "touch %s"
      delegate_to: localhost
    - id: back
      wait_for_connection: { timeout: 60, sleep: 0.2 }
      register: w
    - assert:
        that: w.elapsed > 0.5
]], req, waiting))
    local r = run(d, {}, { timeout = 150 })
    srv.pid = (T.read(srv.dir .. "/sshd.pid") or ""):match("%d+")
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "ok%s+h1%s+back", "waited and came back")
end)

T.test("--ask-pass reads the password on the terminal, without echo", function()
    local pw = srv:enable_password()
    pw:trust()
    local d = S.target(T)
    T.write(d .. "/inv.yml", string.format(
        "all:\n  hosts:\n    h1: { ansible_host: %s, ansible_port: %d, ansible_user: %s }\n",
        pw.address, pw.port, pw.user))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - command: id -un\n")
    -- script(1) gives cutover a terminal; the password is typed into it
    -- once the prompt is up (typed earlier, the terminal would echo it)
    local t = T.dialogue(d, T.cutover .. " run p.yml -i inv.yml --known-hosts " .. pw.known_hosts .. " -k",
        { { "SSH password:", "s3cret pass&word" } }, { HOME = d, SSH_AUTH_SOCK = "" })
    T.not_contains(t.screen, "s3cret", "no echo, never printed")
    T.eq(t.rc, 0, "logged in with it: " .. t.screen)
    pw:stop()
end)

T.test("more hosts than forks, no serial: a host that is done closes its connection (60 hosts, 40 files)",
    function()
    local d = S.target(T)
    inventory(d, 60)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  gather_facts: false
  steps:
    - id: mark
      shell: "echo {{ inventory_hostname }} >> %s/ran"
- hosts: h1,h60
  gather_facts: false
  steps:
    - id: again
      shell: "echo {{ inventory_hostname }} >> %s/again"
]], d, d))
    -- a limit of 40 open files: with every finished host's connection
    -- kept to the end of the play, the 60 hosts would run out of them
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts,
                      "--forks", "5", "--no-journal" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" }, wrap = { "prlimit", "--nofile=40:40", "--" },
                      timeout = 240 })
    T.eq(r.rc, 0, "every host ran\n" .. r.stdout .. r.stderr)
    T.eq(#lines_of(d .. "/ran"), 60, "60 hosts ran the first play")
    -- a released host reconnects for the next play
    local again = lines_of(d .. "/again")
    table.sort(again)
    T.eq(table.concat(again, ","), "h1,h60", "h1 (released) and h60 ran the second play")
end)

T.done()
