-- service on a host without systemd: the real `service` and `update-rc.d`
-- driving a real /etc/init.d script that starts a real daemon, inside a
-- mount namespace of the test's own where /etc is a copy (the machine's
-- own init scripts and rc links are never touched).  This machine runs
-- no systemd (no /run/systemd/system), so `use: auto` must pick sysvinit.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")

local SCRIPT = [[
#!/bin/sh
### BEGIN INIT INFO
# Provides:          cutover-demo
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: a daemon for cutover's tests
### END INIT INFO
PIDFILE=@D@/demo.pid
echo "$1" >> @D@/calls
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
  start) running && exit 0
         # bounded: a daemon the test fails to stop still ends by itself
         setsid sleep 900 </dev/null >/dev/null 2>&1 &
         echo $! > $PIDFILE ;;
  stop) running && kill "$(cat $PIDFILE)"; rm -f $PIDFILE ;;
  restart) "$0" stop; "$0" start ;;
  status) running && exit 0; exit 3 ;;
  *) echo "Usage: $0 {start|stop|restart|status}" >&2; exit 3 ;;
esac
]]

if fs.stat("/run/systemd/system") then
    print("ok - skipped: systemd runs on this machine, so the sysvinit path cannot be reached here")
    T.done()
    return
end

-- Runs each step ({label, argv}) of cutover inside one private namespace
-- with a copy of /etc holding the demo script; after each, records the
-- script's rc links and whether the daemon runs.
local function in_private_etc(d, steps, register)
    T.state = T.state or T.tmpdir()
    T.write(d .. "/cutover-demo", (SCRIPT:gsub("@D@", d)), 493)
    local lines = { "set -u", "mount --make-rprivate /", "cp -a /etc " .. d .. "/etc",
                    "mount --bind " .. d .. "/etc /etc", "cp " .. d .. "/cutover-demo /etc/init.d/" }
    if register then lines[#lines + 1] = "update-rc.d cutover-demo defaults >/dev/null 2>&1" end
    for _, s in ipairs(steps) do
        local label, words = s[1], {}
        for _, a in ipairs(s[2]) do words[#words + 1] = "'" .. a:gsub("'", "'\\''") .. "'" end
        lines[#lines + 1] = string.format("'%s' %s --format json > %s/%s.json 2> %s/%s.err; echo $? > %s/%s.rc",
            T.cutover, table.concat(words, " "), d, label, d, label, d, label)
        lines[#lines + 1] = string.format("(cd /etc && ls -d rc?.d/*cutover-demo 2>/dev/null) > %s/%s.links; " ..
            "if [ -f %s/demo.pid ] && kill -0 $(cat %s/demo.pid) 2>/dev/null; then echo running; " ..
            "else echo stopped; fi > %s/%s.state", d, label, d, d, d, label)
    end
    -- whatever happened above, the daemon does not outlive the test
    lines[#lines + 1] = "[ -f " .. d .. "/demo.pid ] && kill $(cat " .. d .. "/demo.pid) 2>/dev/null; :"
    local r = assert(proc.run({ argv = { "unshare", "--mount", "--", "/bin/sh", "-c", table.concat(lines, "\n") },
                                timeout = 180, env = { NO_COLOR = "1", XDG_STATE_HOME = T.state,
                                                       XDG_DATA_HOME = T.state .. "/data" } }))
    T.eq(r.rc, 0, "the private namespace (needs root): " .. r.stderr)
    local out = {}
    for _, s in ipairs(steps) do
        local l = s[1]
        local function f(ext) return ((T.read(d .. "/" .. l .. "." .. ext) or ""):gsub("\n$", "")) end
        local results = {}
        for _, e in ipairs(T.events(f("json"))) do
            if e.event == "host_result" then results[#results + 1] = e end
        end
        out[l] = { rc = tonumber(f("rc")), by = H.by_key(results), links = f("links"), state = f("state"),
                   stdout = f("json"), stderr = f("err") }
        T.last = { argv = s[2], rc = out[l].rc, stdout = out[l].stdout, stderr = out[l].stderr }
    end
    return out
end

local function calls(d)
    return ((T.read(d .. "/calls") or ""):gsub("\n", " "):gsub(" $", ""))
end

T.test("sysvinit: check predicts exactly, the run starts and enables, the next run changes nothing", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: demo
      service: { name: cutover-demo, state: started, enabled: true }
]])
    local o = in_private_etc(d, {
        { "check", { "run", book, "--check", "--diff" } },
        { "run", { "run", book } },
        { "again", { "run", book } },
    })
    T.eq(o.check.rc, 0, "check: " .. o.check.stderr)
    T.eq(o.check.by.demo.changed, true, "check predicts a change")
    T.eq(o.check.by.demo.result.msg, "would enable, start", "check says what")
    T.eq(o.check.state, "stopped", "check started nothing")
    T.eq(o.check.links, "", "check made no rc link")
    T.eq(o.run.rc, 0, "run: " .. o.run.stderr)
    T.eq(o.run.by.demo.changed, true, "the run changed it")
    T.eq(o.run.state, "running", "the daemon runs")
    T.match(o.run.links, "rc2%.d/S%d%dcutover%-demo", "an S link in runlevel 2")
    T.match(o.run.links, "rc0%.d/K%d%dcutover%-demo", "a K link in runlevel 0")
    T.eq(o.run.by.demo.result.status.running, true, "the result says running")
    T.eq(o.run.by.demo.result.status.manager, "sysvinit", "the manager it used")
    T.eq(o.again.rc, 0, "again: " .. o.again.stderr)
    T.eq(o.again.by.demo.changed, false, "a second run changes nothing")
    -- check only read the status; the run started it once; then status reads
    T.eq(calls(d):gsub("status ", ""):gsub(" status", ""), "start", "the script was asked to start once, and otherwise only for its status")
end)

T.test("sysvinit: stop and disable; restart always acts; reload the script lacks is a clear error", function()
    local d = T.tmpdir()
    local started = H.book(d, [[
- hosts: localhost
  steps:
    - { id: up, service: { name: cutover-demo, state: started } }
]])
    T.write(d .. "/down.yml", [[
- hosts: localhost
  steps:
    - { id: down, service: { name: cutover-demo, state: stopped, enabled: false } }
]])
    T.write(d .. "/restart.yml", [[
- hosts: localhost
  steps:
    - { id: up, service: { name: cutover-demo, state: started } }
    - { id: bounce, service: { name: cutover-demo, state: restarted } }
    - { id: reload, service: { name: cutover-demo, state: reloaded } }
]])
    local o = in_private_etc(d, {
        { "up", { "run", started } },
        { "downcheck", { "run", d .. "/down.yml", "--check" } },
        { "down", { "run", d .. "/down.yml" } },
        { "downagain", { "run", d .. "/down.yml" } },
        { "restart", { "run", d .. "/restart.yml" } },
    }, true)
    T.eq(o.up.state, "running", "started")
    T.eq(o.downcheck.by.down.result.msg, "would disable, stop", "check predicts both")
    T.eq(o.downcheck.state, "running", "check stopped nothing")
    T.match(o.downcheck.links, "rc2%.d/S", "check left the S link")
    T.eq(o.down.rc, 0, "down: " .. o.down.stderr)
    T.eq(o.down.state, "stopped", "stopped")
    T.ok(not o.down.links:find("rc2.d/S", 1, true), "no S link in runlevel 2 now: " .. o.down.links)
    T.match(o.down.links, "rc2%.d/K", "a K link instead")
    T.eq(o.downagain.by.down.changed, false, "then nothing to do")
    T.eq(o.restart.rc, 1, "the reload fails the host")
    T.eq(o.restart.by.bounce.changed, true, "restart always acts")
    T.eq(o.restart.state, "running", "and it runs after")
    T.eq(o.restart.by.reload.status, "failed", "reload failed")
    T.contains(o.restart.by.reload.result.msg, "service cutover-demo reload: exit 3", "names the command and its exit")
    T.contains(o.restart.by.reload.result.msg, "Usage:", "with what the script said")
end)

T.test("sysvinit: masked and daemon_reload need systemd; a missing script is an error (unknown in check)", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: mask, service: { name: cutover-demo, masked: true }, ignore_errors: true }
    - { id: missing, service: { name: no-such-service, state: started } }
]])
    local o = in_private_etc(d, {
        { "check", { "run", book, "--check" } },
        { "run", { "run", book } },
    })
    T.contains(o.run.by.mask.result.msg, "masked needs systemd", "says why")
    T.eq(o.check.by.missing.status, "unknown", "check: an earlier step may install it")
    T.eq(o.run.rc, 1, "the run fails")
    T.contains(o.run.by.missing.result.msg, "there is no /etc/init.d/no-such-service", "names the script")
    -- use: systemd on this host is systemctl's own error, not a guess
    local forced = H.book(d, [[
- hosts: localhost
  steps:
    - { id: forced, service: { name: cutover-demo, state: started, use: systemd } }
]])
    local f = in_private_etc(d, { { "forced", { "run", forced } } })
    T.eq(f.forced.rc, 1, "use: systemd fails where systemd does not run")
    T.eq(f.forced.state, "stopped", "and starts nothing")
end)

T.test("service arguments: a bad 'use' is refused at lint, naming the step", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: bad, service: { name: cutover-demo, state: started, use: upstart } }
]])
    local r = T.run({ "lint", book })
    T.eq(r.rc, 2, "lint refuses")
    T.contains(r.stdout .. r.stderr, "step 'bad'", "names the step")
    T.contains(r.stdout .. r.stderr, "'use' must be one of auto, systemd, sysvinit", "says what is allowed")
end)

T.done()
