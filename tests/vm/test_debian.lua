-- The VM lab (docs/vm-lab.md): a real Debian 12 guest under qemu, booted
-- for this test by tests/vm/lib/vm.sh (ctest runs `vm.sh with-vm` around
-- this file; the VM is stopped on every exit path).  A cutover playbook
-- runs over SSH against it: its facts, then command, copy, file and
-- template, first in check mode (exact predictions, nothing touched),
-- then for real, then again (no change).  Every claim is checked by
-- reading the guest's real state back over OpenSSH's ssh.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")

local G = dofile(tests_dir .. "/vm/lib/guest.lua")(T, tests_dir)
local PORT, KEY, KNOWN, IMAGE = G.PORT, G.KEY, G.KNOWN, G.IMAGE
print(string.format("# image %s built in %s s; this boot reached ssh in %s s",
    IMAGE, (fs.read(IMAGE .. "/build-seconds") or "?"):gsub("%s+$", ""), G.BOOT_SECONDS))

-- A command on the guest as root, through OpenSSH (not cutover's client).
local function vm(cmd) return G.vm(cmd, 120) end

local d = T.tmpdir()
local inv = T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    deb12:
      ansible_host: 127.0.0.1
      ansible_port: %d
      ansible_user: root
      ansible_ssh_private_key_file: %s
]], PORT, KEY))
T.write(d .. "/motd.j2", "{{ facts.hostname }} runs {{ facts.distribution }} {{ facts.distribution_major_version }}" ..
    " ({{ facts.distribution_release }}), managed by cutover\n{% for p in ports %}port {{ p }}\n{% end %}")
local book = H.book(d, [[
- hosts: all
  vars:
    ports: [8080, 8443]
  steps:
    - id: facts
      debug: { msg: "{{ to_json(facts) }}" }
    - id: app_dir
      file: { path: /srv/app, state: directory, mode: "0750" }
    - id: app_conf
      copy: { dest: /srv/app/app.conf, content: "listen {{ ports[1] }}\n", mode: "0640" }
    - id: motd
      template: { src: motd.j2, dest: /etc/motd, mode: "0644" }
    - id: stale
      file: { path: /srv/old.txt, state: absent }
    - id: init
      command: { cmd: "sh -c 'id -un > /srv/app/initialized'", creates: /srv/app/initialized }
    - id: debian_only
      command: { argv: [touch, /srv/app/debian], creates: /srv/app/debian }
      when: facts.os_family == "Debian" and ansible_facts.distribution_major_version == "12"
]])

local function run(extra)
    local args = { "run", book, "-i", inv, "--known-hosts", KNOWN }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local r, _, results = H.run_json(args, { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 300 })
    return r, results, H.by_key(results)
end

-- What the playbook manages, as the guest reports it.
local function state()
    return vm("for p in /srv/app /srv/app/app.conf /srv/app/initialized /srv/app/debian /srv/old.txt; do " ..
              "if [ -e $p ]; then stat -c '%n %F %a %U:%G %s' $p; else echo \"$p absent\"; fi; done; " ..
              "sha256sum /etc/motd /srv/app/app.conf 2>/dev/null; true")
end

T.test("facts are the guest's: Debian 12, its hostname, boot id and address", function()
    local r, _, k = run({ "--check" })
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    local f = assert(json.decode(k.facts.result.msg))
    T.eq(f.distribution, "Debian", "distribution")
    T.eq(f.os_family, "Debian", "os_family")
    T.eq(f.distribution_major_version, "12", "major version")
    T.eq(f.distribution_version, vm("cat /etc/debian_version"), "point release")
    T.eq(f.distribution_release, "bookworm", "release")
    T.eq(f.hostname, vm("hostname"), "hostname")
    T.eq(f.fqdn, vm("hostname -f"), "fqdn")
    T.ok(f.hostname ~= (require("cutover.core.sys").uname() or {}).node, "not the controller's hostname")
    T.eq(f.boot_id, vm("cat /proc/sys/kernel/random/boot_id"), "boot_id")
    T.ok(f.boot_id ~= (fs.read("/proc/sys/kernel/random/boot_id") or ""):gsub("%s+$", ""), "not the controller's boot")
    T.eq(f.kernel, vm("uname -r"), "kernel")
    T.eq(f.service_mgr, "systemd", "systemd")
    T.eq(f.pkg_mgr, "apt", "apt")
    T.eq(f.user_id, "root", "login user")
    T.eq(f.processor_vcpus, tonumber(vm("nproc")), "cpus")
    T.eq(f.memtotal_mb, tonumber(vm("sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo")) // 1024, "memory")
    T.eq(f.default_ipv4.interface, vm("ip -4 route show default | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'"),
        "default interface")
    T.eq(f.default_ipv4.address, vm("ip -o -4 addr show dev " .. f.default_ipv4.interface ..
        " | awk '{print $4}'"):match("^[^/]+"),
         "default address")
    T.eq(f.default_ipv4.gateway, vm("ip -4 route show default | sed -n 's/.* via \\([^ ]*\\).*/\\1/p'"), "gateway")
    local root
    for _, m in ipairs(f.mounts) do if m.mount == "/" then root = m end end
    T.eq(root and root.fstype, "ext4", "root file system")
    T.eq(root.device, vm("df -P / | tail -n 1 | awk '{print $1}'"), "root device")
end)

T.test("check mode predicts exactly and touches nothing; the real run does it; a second run changes nothing", function()
    vm("rm -rf /srv/app; echo stale > /srv/old.txt")
    local before = state()
    local motd_before = vm("cat /etc/motd")

    local r, check, ck = run({ "--check", "--diff" })
    T.eq(r.rc, 0, "check exit code (stderr: " .. r.stderr .. ")")
    T.eq(state(), before, "check mode changed nothing on the guest")
    T.eq(vm("cat /etc/motd"), motd_before, "motd untouched by check mode")
    local want = { facts = "ok", app_dir = "changed", app_conf = "changed", motd = "changed", stale = "changed",
                   init = "unknown", debian_only = "unknown" }
    for id, st in pairs(want) do T.eq(ck[id] and ck[id].status, st, "check: " .. id) end
    T.contains(ck.motd.result.diff or ck.motd.diff or json.encode(ck.motd), "managed by cutover", "the motd diff")

    local r2, real, rk = run()
    T.eq(r2.rc, 0, "real exit code (stderr: " .. r2.stderr .. ")")
    H.check_predicts(check, real, "check vs real:")
    for _, id in ipairs({ "app_dir", "app_conf", "motd", "stale", "init", "debian_only" }) do
        T.eq(rk[id].status, "changed", "real: " .. id)
    end
    -- the guest, read back
    T.eq(vm("stat -c '%F %a %U' /srv/app"), "directory 750 root", "app dir")
    T.eq(vm("cat /srv/app/app.conf"), "listen 8080", "app.conf content")
    T.eq(vm("stat -c '%a' /srv/app/app.conf"), "640", "app.conf mode")
    T.eq(vm("cat /etc/motd"), "cutover-vm runs Debian 12 (bookworm), managed by cutover\nport 8080\nport 8443",
         "motd rendered with the guest's facts")
    T.eq(vm("test -e /srv/old.txt && echo present || echo absent"), "absent", "stale file removed")
    T.eq(vm("cat /srv/app/initialized"), "root", "the command ran on the guest")
    T.eq(vm("test -e /srv/app/debian && echo yes"), "yes", "the fact-gated step ran")

    local after = state()
    local r3, again = run()
    T.eq(r3.rc, 0, "second run exit code")
    T.eq(H.count(again, "changed"), 0, "the second run changes nothing")
    T.eq(state(), after, "the guest is as the first run left it")
    local r4, recheck = run({ "--check" })
    T.eq(r4.rc, 0, "check on the converged guest")
    T.eq(H.count(recheck, "changed"), 0, "check mode predicts no change")
    T.eq(H.count(recheck, "unknown"), 0, "and nothing unknown (creates decides the commands)")
end)

-- become with the real sudo of a real Debian, and systemd units: ops logs
-- in, needs its password for sudo; plain has no sudo at all.
local OPS_PASSWORD = (fs.read(IMAGE .. "/ops.password") or ""):gsub("%s+$", "")

local function run_as(user, book_text, extra, host_vars)
    local dir = T.tmpdir()
    local invfile = T.write(dir .. "/inv.yml", string.format([[
all:
  hosts:
    deb12:
      ansible_host: 127.0.0.1
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
%s]], PORT, user, KEY, host_vars or ""))
    local b = H.book(dir, book_text)
    local args = { "run", b, "-i", invfile, "--known-hosts", KNOWN }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local r, _, results = H.run_json(args, { env = { HOME = dir, SSH_AUTH_SOCK = "" }, timeout = 300 })
    return r, results, H.by_key(results), dir
end

local UNIT_BOOK = [[
- hosts: all
  become: true
  steps:
    - id: unit_file
      copy:
        dest: /etc/systemd/system/cutover-demo.service
        mode: "0644"
        content: |
          [Unit]
          Description=cutover demo
          [Service]
          ExecStart=/bin/sleep infinity
          [Install]
          WantedBy=multi-user.target
    - id: running
      systemd: { name: cutover-demo, state: started, enabled: true, daemon_reload: true }
    - id: whoami
      command: id -un
]]

T.test("become: ops's sudo password; a systemd unit installed, enabled and started; then no change", function()
    T.ok(#OPS_PASSWORD > 0, "the image keeps ops's password")
    vm("systemctl disable --now cutover-demo 2>/dev/null; rm -f /etc/systemd/system/cutover-demo.service; " ..
        "systemctl daemon-reload")
    local pw = "      ansible_become_password: '" .. OPS_PASSWORD .. "'\n"
    local r, check, ck = run_as("ops", UNIT_BOOK, { "--check" }, pw)
    T.eq(r.rc, 0, "check: " .. r.stderr)
    T.eq(ck.unit_file.status, "changed", "check: the unit file (root-only /etc, probed as root)")
    T.eq(ck.running.status, "unknown", "check: the unit is not there yet")
    T.eq(vm("test -e /etc/systemd/system/cutover-demo.service && echo yes || echo no"), "no", "check wrote nothing")
    local real, rk
    r, real, rk = run_as("ops", UNIT_BOOK, nil, pw)
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "become check vs real:")
    T.eq(rk.whoami.result.stdout, "root", "commands as root")
    T.eq(vm("stat -c '%U %a' /etc/systemd/system/cutover-demo.service"), "root 644", "unit file owned by root")
    T.eq(vm("systemctl is-active cutover-demo"), "active", "started")
    T.eq(vm("systemctl is-enabled cutover-demo"), "enabled", "enabled")
    T.not_contains(r.stdout .. r.stderr, OPS_PASSWORD, "the password is in no output")
    local again
    r, again = run_as("ops", UNIT_BOOK, nil, pw)
    T.eq(H.count(again, "changed"), 1, "the next run changes only the command step")
    r, again = run_as("ops", UNIT_BOOK, { "--check" }, pw)
    T.eq(H.count(again, "changed") + H.count(again, "unknown"), 1,
        "check on the converged guest: only the command is unknown")
    -- stopped and disabled
    r, again, rk = run_as("ops",
        "- hosts: all\n  become: true\n  steps:\n    - id: stop-it\n      service: { name: cutover-demo, state: " ..
            "stopped, enabled: false }\n", nil, pw)
    T.eq(rk["stop-it"].status, "changed", "stopped")
    T.eq(vm("systemctl is-active cutover-demo || true"), "inactive", "inactive")
    T.eq(vm("systemctl is-enabled cutover-demo || true"), "disabled", "disabled")
end)

T.test("a unit that fails to start fails the step with its journal lines; wrong or missing sudo rights are clear " ..
    "errors", function()
    local pw = "      ansible_become_password: '" .. OPS_PASSWORD .. "'\n"
    local r, _, rk = run_as("ops", [[
- hosts: all
  become: true
  steps:
    - id: unit_file
      copy:
        dest: /etc/systemd/system/cutover-broken.service
        content: "[Service]\nExecStart=/bin/sh -c 'echo broken-on-purpose; exit 3'\n"
    - id: start
      systemd: { name: cutover-broken, state: started, daemon_reload: true }
]], nil, pw)
    T.eq(r.rc, 1, "exit")
    T.contains(rk.start.result.msg, "unit cutover-broken is failed", "says the unit failed")
    T.contains(rk.start.result.msg, "broken-on-purpose", "with its journal lines")
    vm("rm -f /etc/systemd/system/cutover-broken.service; systemctl reset-failed cutover-broken 2>/dev/null; " ..
        "systemctl daemon-reload")
    local touch = "- hosts: all\n  become: true\n  steps:\n    - id: t\n      command: touch /root/cutover-should-not\n"
    r, _, rk = run_as("ops", touch, nil, "      ansible_become_password: 'wrong-password'\n")
    T.eq(rk.t.result.msg, "sudo: wrong password for ops on deb12", "wrong password")
    r, _, rk = run_as("plain", touch, nil, "      ansible_become_password: 'anything'\n")
    T.eq(r.rc, 1, "plain may not sudo")
    -- sudo authenticates before it looks at the rules: plain's (locked) password is refused first
    T.eq(rk.t.result.msg, "sudo: wrong password for plain on deb12", "names the user and the host")
    T.eq(vm("test -e /root/cutover-should-not && echo yes || echo no"), "no", "nothing ran as root")
end)

T.done()
