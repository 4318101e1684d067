-- reboot under become (sudo with a password) over a real sshd on
-- loopback.  A loopback sshd cannot reboot its machine, so a root helper
-- plays it: when the reboot command (run through sudo) writes its request,
-- the helper drops sshd and its sessions, waits 2 s, and brings sshd back
-- with a new boot identity.  The identity file is readable by root only,
-- so reading it at all proves boot_id_command runs under become too.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")
S.install(T)

S.set_password()
S.sudoers(T, "reboot", S.USER .. " ALL=(ALL) ALL")

local srv = S.start(T)
srv:trust()

T.test("reboot with become: the command and the boot id run as root; the new boot id and the time down reported",
    function()
    local d = S.target(T)
    T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    h1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
      ansible_become_password: '%s'
]], srv.address, srv.port, srv.user, srv.key, S.PASSWORD))
    local secret = d .. "/secret"
    assert(fs.mkdir(secret, 448))  -- 0700 root
    T.write(secret .. "/boot_id", "boot-1\n", 384)
    local req = d .. "/reboot-request"
    proc.run({ shell = string.format(
        "(i=0; while [ ! -s %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; %s; kill %s; sleep 2; " ..
        "echo boot-2 > %s/boot_id; /usr/sbin/sshd -f %s -E %s/sshd.log) >/dev/null 2>&1 &",
        req, srv:kill_sessions_sh(), srv.pid, secret, srv.config, srv.dir) })
    -- the host is down 2 s; downtime is measured from the answers the
    -- controller takes in, so its own delays under load (ASan, the VM
    -- lab beside it) can make it come out shorter: at least 1 s
    H.book(d, string.format([[
- hosts: all
  steps:
    - id: restart
      reboot:
        reboot_command: "id -un > %s"
        boot_id_command: "cat %s/boot_id"
        reboot_timeout: 60
        sleep: 0.2
      become: true
      register: rb
    - id: seen
      assert:
        that:
          - rb.boot_id_before == "boot-1"
          - rb.boot_id_after == "boot-2"
          - rb.downtime >= 1
          - rb.downtime <= rb.elapsed
    - id: after
      command: cat %s/boot_id
      become: true
]], req, secret, secret))
    local r, _, res = H.run_json({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
                                 { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 120 })
    -- sshd was restarted by the helper: its new pid, for cleanup
    srv.pid = (T.read(srv.dir .. "/sshd.pid") or ""):match("%d+")
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { restart = "changed", seen = "ok", after = "changed" }, "run")
    T.eq(T.read(req), "root\n", "the reboot command ran as root")
    local by = H.by_key(res)
    T.match(by.restart.result.msg, "^back with boot id boot%-2 after [%d.]+ s down$", "the message")
    T.eq(by.after.result.stdout, "boot-2", "the session after the reboot still runs as root")
    T.not_contains(r.stdout .. r.stderr, S.PASSWORD, "the password is in no output")
end)

T.done()
