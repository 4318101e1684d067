-- The apt action on the VM lab (docs/vm-lab.md): a real Debian 12 with
-- real apt and dpkg, one boot for the whole file.  The packages come from
-- a repository this test builds (tests/vm/lib/repo.sh: dpkg-deb and
-- apt-ftparchive) and serves over HTTP on the controller's loopback; the
-- guest reaches it as http://10.0.2.100/ through qemu's guestfwd (vm.sh)
-- and has no other source.  Every step runs as `ops` with become (sudo
-- with a password); every claim is read back on the guest over OpenSSH.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")

local G = dofile(tests_dir .. "/vm/lib/guest.lua")(T, tests_dir)
local PORT, KEY, KNOWN, OPS_PASSWORD, vm = G.PORT, G.KEY, G.KNOWN, G.OPS_PASSWORD, G.vm
print(string.format("# image %s; this boot reached ssh in %s s", G.IMAGE, G.BOOT_SECONDS))
G.serve_repo()

local STATE_DIR = T.tmpdir()   -- every run's journal (XDG_STATE_HOME) and output are searched for the password
local outputs = {}

-- Runs a playbook as ops with become; returns r, results, by step id.
local function run(book_text, extra, password)
    local dir = T.tmpdir()
    local inv = T.write(dir .. "/inv.yml", string.format([[
all:
  hosts:
    deb12:
      ansible_host: 127.0.0.1
      ansible_port: %d
      ansible_user: ops
      ansible_ssh_private_key_file: %s
      ansible_become_password: '%s'
]], PORT, KEY, password or OPS_PASSWORD))
    local b = H.book(dir, "- hosts: all\n  become: true\n  steps:\n" .. book_text)
    local args = { "run", b, "-i", inv, "--known-hosts", KNOWN }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    T.state = STATE_DIR
    local r, _, results = H.run_json(args, { env = { HOME = dir, SSH_AUTH_SOCK = "" }, timeout = 600 })
    outputs[#outputs + 1] = r.stdout .. r.stderr
    return r, results, H.by_key(results)
end

-- dpkg's and apt's state and every file the packages manage
local function snapshot()
    return vm("sha256sum /var/lib/dpkg/status; ls -l --time-style=+%s /var/lib/apt/lists | sha256sum; " ..
        "apt-mark showhold; for f in /etc/cutover-demod.conf /etc/cutover-demod.conf.dpkg-dist " ..
        "/usr/share/cutover-demo/version /usr/share/cutover-demo-lib/version " ..
            "/lib/systemd/system/cutover-demod.service " ..
        "/var/run/reboot-required; do if [ -e $f ]; then sha256sum $f; else echo \"$f absent\"; fi; done; " ..
        "systemctl is-active cutover-demod || true")
end

local function versions()
    local out = vm("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'cutover-*' 2>/dev/null || true")
    local v = {}
    for name, ver, st in out:gmatch("(%S+) (%S*) (%S+)") do
        if st:sub(2, 2) == "i" then v[name] = ver end
    end
    return v
end

-- "name action from->to" lines of a result's packages, sorted
local function plan_text(result)
    local lines = {}
    for _, p in ipairs(result.packages or {}) do
        lines[#lines + 1] = p.name .. " " .. p.action .. " " .. tostring(p.from) .. "->" .. tostring(p.to)
    end
    table.sort(lines)
    return table.concat(lines, "\n")
end

T.test("a pinned install with update_cache: check (with a private copy of the lists) predicts it exactly", function()
    local before = snapshot()
    local step = "    - id: install\n      apt: { name: [cutover-demo=1.0, cutover-demod=1.0], update_cache: true }\n"
    local r, check, ck = run(step, { "--check", "--diff" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.eq(snapshot(), before, "check mode changed nothing (dpkg status, apt lists, files)")
    T.eq(ck.install.status, "changed", "check: a change")
    T.eq(plan_text(ck.install.result), "cutover-demo install nil->1.0\ncutover-demod install nil->1.0",
        "check: the plan")
    T.eq(ck.install.result.cache_updated, true, "check: the lists would be updated")
    local real, rk
    r, real, rk = run(step)
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "install:")
    T.eq(plan_text(rk.install.result), plan_text(ck.install.result), "the real run did what check said")
    local v = versions()
    T.eq(v["cutover-demo"], "1.0", "cutover-demo 1.0 on the guest")
    T.eq(v["cutover-demod"], "1.0", "cutover-demod 1.0 on the guest")
    T.eq(v["cutover-demo-lib"], nil, "no lib yet")
    T.eq(vm("systemctl is-active cutover-demod"), "active", "the service runs")
    T.eq(rk.install.result.reboot_required, false, "no reboot required yet")
end)

T.test("upgrade safe: check lists every package and version (the new dependency too), changes nothing; " ..
       "the run does exactly that, keeps the changed conffile; a second run changes nothing", function()
    vm("echo 'greeting=changed-on-the-host' > /etc/cutover-demod.conf")
    local before = snapshot()
    local step = "    - id: up\n      apt: { upgrade: safe, update_cache: true, cache_valid_time: 3600 }\n"
    local r, check, ck = run(step, { "--check", "--diff" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.eq(snapshot(), before, "check mode changed nothing")
    local want = "cutover-demo upgrade 1.0->1.1\ncutover-demo-lib install nil->1.0\ncutover-demod upgrade 1.0->1.1"
    T.eq(plan_text(ck.up.result), want, "check: every package with versions")
    T.eq(ck.up.result.cache_updated, false, "the lists are fresh (cache_valid_time)")
    local d = ck.up.result.diff or ck.up.diff or {}
    T.contains(r.stdout, "-cutover-demo 1.0", "--diff: before")
    T.contains(r.stdout, "+cutover-demo 1.1", "--diff: after")
    T.contains(r.stdout, "+cutover-demo-lib 1.0", "--diff: the new dependency")
    T.ok(d ~= nil, "a diff")
    local real, rk
    r, real, rk = run(step)
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "upgrade:")
    T.eq(plan_text(rk.up.result), want, "the real run changed exactly the predicted packages")
    local v = versions()
    T.eq(v["cutover-demo"] .. " " .. v["cutover-demo-lib"] .. " " .. v["cutover-demod"], "1.1 1.0 1.1", "on the guest")
    T.eq(vm("cat /usr/share/cutover-demo/version"), "1.1", "the new files")
    -- the conffile policy: the host's file kept, the package's beside it, reported
    T.eq(vm("cat /etc/cutover-demod.conf"), "greeting=changed-on-the-host", "the host's conffile kept")
    T.eq(vm("cat /etc/cutover-demod.conf.dpkg-dist"), "greeting=hello\nlevel=2", "the package's beside it")
    T.eq(json.encode(rk.up.result.conffiles_kept), '["/etc/cutover-demod.conf"]', "reported")
    T.contains(rk.up.result.msg, "kept the host's /etc/cutover-demod.conf", "said in the message")
    T.eq(rk.up.result.reboot_required, true, "the postinst asked for a reboot")
    T.eq(json.encode(rk.up.result.reboot_required_pkgs), '["cutover-demod"]', "which package")
    T.eq(vm("systemctl is-active cutover-demod"), "active", "the service runs after the upgrade")

    local after = snapshot()
    local again
    r, again = run(step)
    T.eq(r.rc, 0, "second run")
    T.eq(H.count(again, "changed"), 0, "the second run changes nothing")
    T.eq(snapshot(), after, "the guest is as the first run left it")
    r, again = run(step, { "--check" })
    T.eq(H.count(again, "changed") + H.count(again, "unknown"), 0, "check on the converged guest: no change")
end)

T.test("hold, a held package refused, released and downgraded, then removed with purge", function()
    local r, _, k = run("    - id: hold\n      apt: { name: cutover-demo, hold: true }\n")
    T.eq(r.rc, 0, "hold: " .. r.stdout .. r.stderr)
    T.eq(k.hold.status, "changed", "hold is a change")
    T.eq(vm("apt-mark showhold"), "cutover-demo", "held on the guest")

    local before = snapshot()
    r, _, k = run("    - id: down\n      apt: { name: cutover-demo=1.0, allow_downgrade: true }\n")
    T.eq(r.rc, 1, "changing a held package fails")
    T.contains(k.down.result.msg, "on deb12", "names the host")
    T.contains(k.down.result.msg, "would change held package(s) cutover-demo", "the reason")
    T.eq(snapshot(), before, "and changed nothing")

    r, _, k = run("    - id: down\n      apt: { name: cutover-demo=1.0, hold: false }\n")
    T.eq(r.rc, 1, "a downgrade without allow_downgrade fails")
    T.contains(k.down.result.msg, "would downgrade cutover-demo 1.1 -> 1.0 (allow_downgrade", "says so")
    T.eq(vm("apt-mark showhold"), "cutover-demo", "still held (the failure left the hold)")

    local step = "    - id: down\n      apt: { name: cutover-demo=1.0, hold: false, allow_downgrade: true }\n"
    local check, ck
    r, check, ck = run(step, { "--check" })
    T.eq(plan_text(ck.down.result), "cutover-demo downgrade 1.1->1.0", "check: the downgrade")
    T.eq(json.encode(ck.down.result.unheld), '["cutover-demo"]', "check: the release")
    local real, rk
    r, real, rk = run(step)
    T.eq(r.rc, 0, "released and downgraded: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "downgrade:")
    T.eq(plan_text(rk.down.result), "cutover-demo downgrade 1.1->1.0", "done")
    T.eq(vm("apt-mark showhold"), "", "no hold left")
    T.eq(versions()["cutover-demo"], "1.0", "1.0 on the guest")

    step = "    - id: rm\n      apt: { name: [cutover-demod, cutover-demo-lib, cutover-never-installed], state: " ..
        "absent, purge: true }\n"
    r, check, ck = run(step, { "--check" })
    T.eq(plan_text(ck.rm.result), "cutover-demo-lib purge 1.0->nil\ncutover-demod purge 1.1->nil", "check: purges")
    r, real, rk = run(step)
    T.eq(r.rc, 0, "purge: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "purge:")
    local v = versions()
    T.eq(v["cutover-demod"], nil, "demod gone")
    T.eq(v["cutover-demo-lib"], nil, "lib gone")
    T.eq(vm("test -e /etc/cutover-demod.conf && echo yes || echo no"), "no", "its conffile purged")
    T.eq(vm("systemctl is-active cutover-demod || true"), "inactive", "its service stopped")
    r, real = run(step)
    T.eq(H.count(real, "changed"), 0, "removing again changes nothing")
end)

T.test("the dpkg lock: the step waits for the process holding it, then goes on", function()
    -- cutover-slow's postinst holds dpkg's lock until the release file
    -- exists; a watcher on the guest makes it once the step has simulated
    -- its change (apt-get -s seen), then 8 s more: the step is then at
    -- its lock check, which the release must find held
    vm("rm -f /run/cutover-slow.started /run/cutover-slow.release; " ..
       "nohup apt-get install -y -q cutover-slow </dev/null >/tmp/slow.log 2>&1 &")
    vm("nohup sh -c 'i=0; while [ $i -lt 1500 ]; do grep -qsa \"apt-ge[t].-s\" /proc/[0-9]*/cmdline && break; " ..
       "sleep 0.2; i=$((i+1)); done; sleep 8; touch /run/cutover-slow.release' </dev/null >/dev/null 2>&1 &")
    local started = false
    for _ = 1, 60 do
        if vm("test -e /run/cutover-slow.started && echo yes || echo no") == "yes" then started = true; break end
        T.sh("sleep 1")
    end
    T.ok(started, "cutover-slow's postinst runs (holding the lock)")
    local r, _, k = run("    - id: lib\n      apt: { name: cutover-demo-lib }\n")
    T.eq(r.rc, 0, "installed after the wait: " .. r.stdout .. r.stderr)
    T.ok((k.lib.result.lock_waited or 0) > 0, "it waited")
    T.match(k.lib.result.msg, "waited %d+ s for the dpkg lock, held by process %d+", "and says for whom")
    T.eq(versions()["cutover-slow"], "1.0", "the other installation finished first")
    T.eq(versions()["cutover-demo-lib"], "1.0", "then this one")
end)

-- The shipped playbook (playbooks/debian-rolling-upgrade.yml) on the guest
local ROLLING = tests_dir .. "/../playbooks/debian-rolling-upgrade.yml"
local function rolling(extra, first_host)
    local dir = T.tmpdir()
    local inv = T.write(dir .. "/inv.yml", string.format([[
all:
  children:
    debian:
      hosts:
%s        deb12:
          ansible_host: 127.0.0.1
          ansible_port: %d
          ansible_user: ops
          ansible_ssh_private_key_file: %s
          ansible_become_password: '%s'
]], first_host or "", PORT, KEY, OPS_PASSWORD))
    local args = { "run", ROLLING, "-i", inv, "--known-hosts", KNOWN,
                   "-e", "{restart_services: [cutover-demod]}", "-e", "health_url=http://10.0.2.100/Release",
                   "-e", "reboot_timeout=600" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    T.state = STATE_DIR
    local r, _, results = H.run_json(args, { env = { HOME = dir, SSH_AUTH_SOCK = "" }, timeout = 1200 })
    outputs[#outputs + 1] = r.stdout .. r.stderr
    return r, results, H.by_key(results)
end

T.test("debian-rolling-upgrade.yml: the first failed host stops the rollout; check shows the plan and " ..
       "changes nothing; the run upgrades, restarts, reboots into a new boot and checks health; then no change",
           function()
    -- the starting point: 1.0 of both, the service running, no reboot pending
    vm("rm -f /var/run/reboot-required /var/run/reboot-required.pkgs /etc/cutover-demod.conf.dpkg-dist; " ..
       "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades cutover-demo=1.0 " ..
           "cutover-demod=1.0 >/dev/null 2>&1; " ..
       "rm -f /var/run/reboot-required /var/run/reboot-required.pkgs")
    local v = versions()
    T.eq(v["cutover-demo"] .. " " .. v["cutover-demod"], "1.0 1.0", "the starting point")
    local before, boot = snapshot(), vm("cat /proc/sys/kernel/random/boot_id")

    -- a host before the guest that cannot be reached: the rollout stops there
    local dead = string.format("        dead1:\n          ansible_host: 127.0.0.1\n          ansible_port: %d\n",
                               H.closed_port())
    local r, _, k = rolling({ "--approve", "upgrade" }, dead)
    T.eq(r.rc, 1, "the rollout fails")
    T.eq(k.free_space, nil, "no step ran on deb12 after dead1 failed")
    T.eq(snapshot(), before, "deb12 untouched")

    local check, ck
    r, check, ck = rolling({ "--check", "--diff" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.eq(snapshot(), before, "check mode changed nothing on the guest")
    T.eq(plan_text(ck.plan.result), "cutover-demo upgrade 1.0->1.1\ncutover-demod upgrade 1.0->1.1", "the plan step")
    T.contains(ck.show_plan.result.msg, "deb12: 2 package(s) to change: upgrade cutover-demo 1.0 -> 1.1, " ..
               "upgrade cutover-demod 1.0 -> 1.1", "the plan shown")
    T.eq(ck.approve.status, "unknown", "the gate: a dry run never stops")
    T.eq(plan_text(ck.upgrade.result), plan_text(ck.plan.result), "check: the upgrade predicts the plan")
    T.eq(ck["restart [cutover-demod]"].status, "changed", "check: the restart")
    T.eq(ck.reboot.status, "skipped", "check: no reboot pending yet (a postinst asks for it during the run)")

    local _, rk
    r, _, rk = rolling({ "--approve", "upgrade" })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    T.eq(plan_text(rk.upgrade.result), plan_text(ck.plan.result), "the real upgrade did exactly the plan")
    for key, e in pairs(H.by_key(check)) do
        if key ~= "reboot" and key ~= "approve" and e.status ~= "unknown" then
            T.eq(rk[key] and rk[key].status, e.status, "real status of " .. key .. " as check said")
        end
    end
    T.eq(rk.reboot.status, "changed", "rebooted (cutover-demod 1.1 asked for it)")
    T.ok(rk.reboot.result.boot_id_after ~= rk.reboot.result.boot_id_before, "a new boot")
    T.ok(vm("cat /proc/sys/kernel/random/boot_id") ~= boot, "the guest has a new boot id")
    T.eq(rk.port_answers.status, "ok", "port answers")
    T.eq(rk.health_url.status, "ok", "health URL fetched with uri (curl) on the guest")
    v = versions()
    T.eq(v["cutover-demo"] .. " " .. v["cutover-demod"], "1.1 1.1", "upgraded on the guest")
    T.eq(vm("systemctl is-active cutover-demod"), "active", "the service runs after the reboot")

    local again
    r, again = rolling({ "--approve", "upgrade" })
    T.eq(r.rc, 0, "second run")
    T.eq(H.count(again, "changed"), 0, "the second run changes nothing")
end)

T.test("a wrong become password is a clear error and changes nothing; the password is nowhere", function()
    local before, had = snapshot(), versions()["cutover-demo"]
    T.ok(had ~= nil, "cutover-demo is installed")
    local r, _, k = run("    - id: rm\n      apt: { name: cutover-demo, state: absent }\n", nil, "not-the-password")
    T.eq(r.rc, 1, "fails")
    T.eq(k.rm.result.msg, "sudo: wrong password for ops on deb12", "says why")
    T.eq(snapshot(), before, "changed nothing")
    T.eq(versions()["cutover-demo"], had, "cutover-demo still there")
    -- every output of this file's runs, and every file of their journals
    for i, out in ipairs(outputs) do T.not_contains(out, OPS_PASSWORD, "output of run " .. i) end
    local files = T.sh("find " .. STATE_DIR .. " -type f")
    local n = 0
    for path in files.stdout:gmatch("[^\n]+") do
        n = n + 1
        T.not_contains(fs.read(path) or "", OPS_PASSWORD, path)
    end
    T.ok(n > 0, "the journal files were searched")
    T.not_contains(vm("journalctl --no-pager -o cat 2>/dev/null | tail -n 2000"), OPS_PASSWORD, "the guest's journal")
end)

T.done()
