-- The Ansible playbook of a small web service, converted and converged on
-- the VM lab (docs/vm-lab.md, issue 12): tests/vm/converge/site.yml is
-- the playbook an Ansible user writes for nginx (apt, files with owner,
-- group and mode, a release link, lineinfile on the server's conffile,
-- the service enabled and started, a restart handler, a uri health
-- check); `cutover convert ansible` turns it into a cutover playbook that
-- runs without a hand edit.  On a fresh Debian 12 guest: the dry run
-- predicts and changes nothing; the real run (as ops, sudo with a
-- password) makes the state, read back over OpenSSH; a second run changes
-- nothing; and the dry run of the converged guest predicts zero changes
-- and zero unknown results.  The web server is cutover-web from the lab's
-- repository (tests/vm/lib/repo.sh), served to the guest as in test_apt.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

local G = dofile(tests_dir .. "/vm/lib/guest.lua")(T, tests_dir)
local PORT, KEY, KNOWN, OPS_PASSWORD, vm = G.PORT, G.KEY, G.KNOWN, G.OPS_PASSWORD, G.vm
print(string.format("# image %s; this boot reached ssh in %s s", G.IMAGE, G.BOOT_SECONDS))
G.serve_repo()

local SOURCE = tests_dir .. "/vm/converge/site.yml"
local CONVERTED = T.tmpdir() .. "/converted/site.yml"
local STATE_DIR = T.tmpdir()
local outputs = {}

-- The converted playbook on the guest, as ops with become (the play says
-- become: yes); returns r, results, results by step id.
local function run(extra)
    local dir = T.tmpdir()
    local inv = T.write(dir .. "/inv.yml", string.format([[
all:
  children:
    web:
      hosts:
        deb12:
          ansible_host: 127.0.0.1
          ansible_port: %d
          ansible_user: ops
          ansible_ssh_private_key_file: %s
          ansible_become_password: '%s'
]], PORT, KEY, OPS_PASSWORD))
    local args = { "run", CONVERTED, "-i", inv, "--known-hosts", KNOWN }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    T.state = STATE_DIR
    local r, _, results = H.run_json(args, { env = { HOME = dir, SSH_AUTH_SOCK = "" }, timeout = 900 })
    outputs[#outputs + 1] = r.stdout .. r.stderr
    return r, results, H.by_key(results)
end

-- dpkg's and apt's state, and every path the playbook manages (type,
-- mode, owner, link target, content), the service's state
local function snapshot()
    return vm("sha256sum /var/lib/dpkg/status; ls -l --time-style=+%s /var/lib/apt/lists | sha256sum; " ..
        "find /etc/cutover-web /srv /var/www -printf '%p %y %m %u:%g %l\\n' 2>/dev/null | sort; " ..
        "find /etc/cutover-web /srv /var/www -type f -exec sha256sum {} + 2>/dev/null | sort; " ..
        "systemctl is-active cutover-web 2>&1 || true; systemctl is-enabled cutover-web 2>&1 || true; " ..
        "systemctl show -p MainPID --value cutover-web 2>&1 || true")
end

local function statuses(k)
    local lines = {}
    for key, e in pairs(k) do lines[#lines + 1] = key .. "=" .. e.status end
    table.sort(lines)
    return table.concat(lines, " ")
end

T.test("the Ansible playbook converts with nothing left out and lints", function()
    local r = T.run({ "convert", "ansible", SOURCE, "-o", CONVERTED })
    T.eq(r.rc, 0, "everything converted: " .. r.stderr)
    T.not_contains(r.stderr, "not converted", "no report")
    local l = T.run({ "lint", CONVERTED })
    T.eq(l.rc, 0, "lint: " .. l.stdout .. l.stderr)
    local text = T.read(CONVERTED)
    for _, want in ipairs({ "apt:", "template:", "copy:", "state: link", "lineinfile:", "service:",
                            "meta: flush_handlers", "uri:", "handlers:", "notify: restart cutover-web",
                            "owner: root", "group: www-data", "ignore_errors: check_mode" }) do
        T.contains(text, want, "the converted playbook has " .. want)
    end
    T.ok(fs.stat(CONVERTED:match("^(.*)/") .. "/templates/index.html.j2") ~= nil, "the template beside it")
    T.ok(fs.stat(CONVERTED:match("^(.*)/") .. "/files/robots.txt") ~= nil, "the copied file beside it")
end)

local check_fresh
T.test("the dry run of the fresh guest predicts the changes and changes nothing", function()
    local before = snapshot()
    local r, check, k = run({ "--check", "--diff" })
    check_fresh = check
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.eq(snapshot(), before, "nothing changed on the guest (dpkg status, apt lists, every managed path)")
    local s = statuses(k)
    T.eq(k["install-the-web-server"].status, "changed", "apt: " .. s)
    local pk = k["install-the-web-server"].result.packages or {}
    T.eq(#pk, 1, "one package")
    T.eq(pk[1] and (pk[1].name .. " " .. pk[1].action .. " " .. tostring(pk[1].to)), "cutover-web install 1.0", "which")
    for _, id in ipairs({ "release-folder", "home-page", "robots-txt" }) do
        T.eq(k[id].status, "changed", id .. ": " .. s)
    end
    T.contains(r.stdout, "served by cutover-vm", "--diff: the page rendered with the guest's facts")
    -- these read what the package installs: unknown (an earlier step would
    -- change the host), not failures and not guesses
    for _, id in ipairs({ "current-release", "serve-the-site", "listen-on-the-site-s-port",
                          "web-server-enabled-and-running" }) do
        T.eq(k[id].status, "unknown", id .. ": " .. s)
    end
    T.contains(k["serve-the-site"].result.msg, "/etc/cutover-web/cutover-web.conf does not exist now", "says why")
    -- the edits notify the restart: where they are unknown, so is it
    T.eq(k["restart-cutover-web"] and k["restart-cutover-web"].status, "unknown", "the handler: " .. s)
    T.contains(k["restart-cutover-web"].result.msg, "notified by 'serve-the-site'", "by whom")
    -- the server is not there yet: the health check fails and the
    -- playbook ignores that in check mode only
    T.eq(k["health-check"].status, "ignored", "health check: " .. s)
    T.eq(k["the-site-answers-not-the-default-page"].status, "skipped", "assert: " .. s)
end)

local after_first
T.test("the real run makes the state, as the dry run said; the guest has it", function()
    local r, real, k = run()
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    -- the assert's condition reads the health check, which the dry run
    -- could not make (no server yet): its "skipped" is no prediction
    local predicted = {}
    for _, e in ipairs(check_fresh) do
        if e.step ~= "the-site-answers-not-the-default-page" then predicted[#predicted + 1] = e end
    end
    T.ok(H.check_predicts(predicted, real, "first run:") >= 10, "the dry run's results compared")
    local s = statuses(k)
    for _, id in ipairs({ "install-the-web-server", "release-folder", "home-page", "robots-txt", "current-release",
                          "serve-the-site", "listen-on-the-site-s-port", "restart-cutover-web" }) do
        T.eq(k[id].status, "changed", id .. ": " .. s)
    end
    -- the package's postinst enabled and started it; the handler restarted it
    T.eq(k["web-server-enabled-and-running"].status, "ok", "service: " .. s)
    T.eq(k["health-check"].status, "ok", "health check: " .. s)
    T.eq(k["health-check"].result.status, 200, "HTTP 200")
    T.contains(k["health-check"].result.content, "hello, release 1, served by cutover-vm", "the site's page")
    T.eq(k["the-site-answers-not-the-default-page"].status, "ok", "assert: " .. s)

    -- the managed state, read on the guest
    local rel = "/srv/www/hello/releases/1"
    T.eq(vm("stat -c '%F %U:%G %a' " .. rel), "directory root:www-data 750", "the release folder")
    T.eq(vm("stat -c '%U:%G %a' " .. rel .. "/index.html " .. rel .. "/robots.txt"),
         "root:www-data 640\nroot:www-data 640", "the files' owner, group and mode")
    T.eq(vm("cat " .. rel .. "/robots.txt"), "User-agent: *\nDisallow:", "robots.txt")
    T.eq(vm("readlink /srv/www/hello/current"), rel, "the current link")
    T.eq(vm("cat /etc/cutover-web/cutover-web.conf"),
         "# cutover-web: the port it listens on and the folder it serves\nport=8081\nroot=/srv/www/hello/current",
         "the lines edited in place")
    T.eq(vm("systemctl is-active cutover-web; systemctl is-enabled cutover-web"), "active\nenabled", "the service")
    T.eq(vm("systemctl show -p User --value cutover-web"), "www-data", "runs as www-data (reads the files by group)")
    -- the restart took the new configuration: the site on 8081, nothing on 8080
    T.contains(vm("curl -sS http://127.0.0.1:8081/"), "hello, release 1", "served on the new port")
    T.eq(vm("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/ || true"), "000", "not on the old one")
    after_first = snapshot()
end)

T.test("a second real run changes nothing", function()
    local r, again, k = run()
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    T.eq(H.count(again, "changed"), 0, "no change: " .. statuses(k))
    T.eq(k["restart-cutover-web"], nil, "the handler was not notified")
    T.eq(snapshot(), after_first, "the guest as the first run left it (the server not restarted)")
end)

T.test("the dry run of the converged guest: zero changes, zero unknown results", function()
    local r, check, k = run({ "--check", "--diff" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    local s = statuses(k)
    T.ok(#check >= 10, "every step reported: " .. s)
    T.eq(H.count(check, "changed"), 0, "no change: " .. s)
    T.eq(H.count(check, "unknown"), 0, "nothing unknown: " .. s)
    T.eq(H.count(check, "failed") + H.count(check, "ignored"), 0, "nothing failed: " .. s)
    for _, e in ipairs(check) do
        T.eq(e.changed, false, e.step .. ": the event's changed")
        T.eq(e.unknown, false, e.step .. ": the event's unknown")
    end
    T.eq(k["health-check"].status, "ok", "the health check asked for real (GET is sent in check mode)")
    T.eq(k["health-check"].result.status, 200, "and got 200")
    T.eq(k["the-site-answers-not-the-default-page"].status, "ok", "the assert ran on it")
    T.eq(snapshot(), after_first, "nothing changed")
end)

T.test("the become password is in no output and no journal file", function()
    for i, out in ipairs(outputs) do T.not_contains(out, OPS_PASSWORD, "output of run " .. i) end
    local files = T.sh("find " .. STATE_DIR .. " -type f")
    local n = 0
    for path in files.stdout:gmatch("[^\n]+") do
        n = n + 1
        T.not_contains(fs.read(path) or "", OPS_PASSWORD, path)
    end
    T.ok(n > 0, "the journal files were searched")
end)

T.done()
