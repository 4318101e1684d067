-- Issue 13, the review's LOW items on the persistent session
-- (connection/session.lua, core/ssh/shell.c), each on a real loopback
-- sshd: the session token never on a command line and the bootstrap's
-- variables never mixed with the login environment (L1), Ctrl-C before
-- a step's start line (L4), and the login user's startup files seen the
-- same with the session on and off (L8).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")
local loop = require("cutover.core.loop")
local sshconn = require("cutover.connection.ssh")
S.install(T)

local warnings = {}
sshconn.on_warning = function(msg) warnings[#warnings + 1] = msg end

local function conn(srv, extra) return sshconn.new("h1", srv:conn_settings(extra)) end

local function ok(c, cmd, opts)
    local o = { shell = cmd }
    for k, v in pairs(opts or {}) do o[k] = v end
    local r, err = c:exec(o)
    assert(r, "exec failed: " .. tostring(err))
    return r
end

local srv = S.start(T)
srv:trust()

T.test("L1: the session token is never on a command line (every exec traced, and ps run meanwhile)", function()
    local c = conn(srv)
    T.eq(ok(c, "cat /proc/$PPID/comm").stdout, S.SESSION_COMM .. "\n", "the session is on")
    local token = c.session_runner.token
    local pid = c.session_runner.pid
    T.ok(type(token) == "string" and #token >= 16 and pid, "the session's token and shell")
    local d = T.tmpdir()
    -- every execve of the session shell and its children, argv in full
    proc.run({ shell = "strace -f -qq -s 65535 -e trace=execve -o " .. d .. "/trace -p " .. pid ..
        " >/dev/null 2>&1 & echo $! > " .. d .. "/strace.pid" })
    -- until it is attached (TracerPid in the shell's status)
    for _ = 1, 200 do
        local st = T.read("/proc/" .. pid .. "/status") or ""
        if (st:match("TracerPid:%s*(%d+)") or "0") ~= "0" then break end
        loop.sleep(0.05)
    end
    -- and another local user's view: ps, over and over, while steps run
    proc.run({ shell = "i=0; while [ $i -lt 3000 ] && [ ! -e " .. d .. "/stop ]; do ps -eo args >> " .. d ..
        "/ps; i=$((i+1)); done >/dev/null 2>&1 &" })
    for i = 1, 20 do
        ok(c, "echo step " .. i)
        ok(c, "cat >/dev/null", { stdin = "input " .. i })
    end
    T.write(d .. "/stop", "")
    proc.run({ shell = "kill $(cat " .. d .. "/strace.pid); sleep 0.5" })
    local trace = T.read(d .. "/trace") or ""
    local _, execs = trace:gsub("execve%(", "")
    T.ok(execs >= 40, "the steps' execs were traced: " .. execs)
    local at = trace:find(token, 1, true)
    T.ok(not at, "no exec's argv holds the token: " .. (at and trace:sub(math.max(1, at - 300), at + 40) or ""))
    T.ok(not (T.read(d .. "/ps") or ""):find(token, 1, true), "ps never showed the token")
    T.ok(#(T.read(d .. "/ps") or "") > 0, "ps ran")
    c:close()
end)

T.test("L1: variables the login environment exports under the bootstrap's names reach a step unchanged", function()
    -- the names the bootstrap used to use, exported by sshd into the
    -- login environment (as SetEnv, AcceptEnv or ~/.ssh/environment do)
    local names = { "T", "S", "G", "d", "o", "p", "n", "w", "a", "b", "c", "x", "i", "l", "r", "k", "so", "se",
                    "no", "ne", "nl" }
    local set = {}
    for _, v in ipairs(names) do set[#set + 1] = v .. "=login-" .. v end
    local e = S.start(T, { extra_config = "SetEnv " .. table.concat(set, " ") })
    e:trust()
    local show = "for v in " .. table.concat(names, " ") ..
        "; do eval \"printf '%s=%s\\n' \\$v \\\"\\${$v-unset}\\\"\"; done"
    local want = {}
    for _, v in ipairs(names) do want[#want + 1] = v .. "=login-" .. v .. "\n" end
    want = table.concat(want)
    local off = conn(e, { session = false })
    T.eq(ok(off, show).stdout, want, "one channel per step: the login environment's values")
    off:close()
    warnings = {}
    local c = conn(e)
    T.eq(ok(c, show).stdout, want, "in the session: the same values")
    T.eq(ok(c, show, { stdin = "data" }).stdout, want, "in the session, a step with stdin: the same values")
    T.eq(ok(c, "cat /proc/$PPID/comm").stdout, S.SESSION_COMM .. "\n", "it was the session that ran them")
    T.eq(#warnings, 0, "no fallback: " .. table.concat(warnings, "; "))
    c:close()
end)

T.test("L1: hostile values under the bootstrap's own names (__cs_*) in the login environment change nothing", function()
    -- a folder of /, an output cap of 0, a token and a line break that
    -- are not the session's: the bootstrap unsets its names first
    local e = S.start(T, { extra_config = "SetEnv __cs_d=/ __cs_c=0 __cs_nl=x __cs_T=forged __cs_G=1 " ..
        "__cs_n=-5 __cs_S=/bin/false __cs_P=forged" })
    e:trust()
    warnings = {}
    local c = conn(e)
    T.eq(ok(c, "printf 'a\\nb'").stdout, "a\nb", "a step's output, whole")
    T.eq(ok(c, "cat", { stdin = "in\nput" }).stdout, "in\nput", "a step with stdin")
    T.eq(ok(c, "exit 3").rc, 3, "its exit code")
    T.eq(ok(c, "cat /proc/$PPID/comm").stdout, S.SESSION_COMM .. "\n", "the session ran them")
    -- (exported by sshd, they would stay exported once assigned: the
    -- session's token with them)
    T.eq(ok(c, "env | grep '^__cs_' || true").stdout, "", "no __cs_* variable reaches a step")
    T.eq(#warnings, 0, "no fallback: " .. table.concat(warnings, "; "))
    c:close()
    T.ok(fs.stat("/tmp") ~= nil and fs.stat("/etc/passwd") ~= nil, "nothing outside the session's folder removed")
end)

T.test("a full temporary folder (tmpfs still makes folders): no session, steps run on channels, output whole",
    function()
    -- a 64 KiB tmpfs as the login's TMPDIR, filled: mkdir works there,
    -- writing a byte does not
    local full = S.target(T) .. "/full"
    local r = proc.run({ shell = "mkdir -m 1777 " .. full .. " && mount -t tmpfs -o size=64k,mode=1777 cutover-test " ..
        full .. " && { dd if=/dev/zero of=" .. full .. "/fill bs=4k 2>/dev/null; true; } && mkdir " .. full ..
        "/probe && ! echo x 2>/dev/null > " .. full .. "/probe/x" })
    T.eq(r.rc, 0, "a full tmpfs mounted: " .. r.stderr)
    local done, err = pcall(function()
        local e = S.start(T, { extra_config = "SetEnv TMPDIR=" .. full })
        e:trust()
        warnings = {}
        local c = conn(e)
        local ran = ok(c, "echo hello; echo oops >&2; exit 4")
        T.eq(ran.stdout, "hello\n", "the step's output")
        T.eq(ran.stderr, "oops\n", "its errors")
        T.eq(ran.rc, 4, "its exit code")
        T.eq(ok(c, "cat /proc/$PPID/comm").stdout, "sshd\n", "a channel per step, not the session")
        T.contains(table.concat(warnings, "; "), "cannot write in the private folder", "the warning says why")
        c:close()
    end)
    proc.run({ argv = { "umount", full } })   -- also when the case failed
    if not done then error(err, 0) end
end)

-- Where a session keeps its step's output: $TMPDIR when the login sets
-- it, else /dev/shm when it is a writable sticky folder with 256 MiB
-- free, else /tmp.  Each host here is a listener in a mount namespace of
-- its own, /dev/shm there a tmpfs of the size and mode given.
T.test("the private folder: $TMPDIR when set, else /dev/shm with 256 MiB free (writable, sticky), else /tmp",
    function()
    local function folder_of(e, case)
        e:trust()
        warnings = {}
        local c = conn(e)
        T.eq(ok(c, "cat /proc/$PPID/comm").stdout, S.SESSION_COMM .. "\n",
             case .. ": the session is on: " .. table.concat(warnings, "; "))
        local r = ok(c, "readlink /proc/$$/fd/1; echo err >&2; exit 3")
        T.eq(r.stderr, "err\n", case .. ": the step's errors")
        T.eq(r.rc, 3, case .. ": its exit code")
        T.eq(#warnings, 0, case .. ": no warning: " .. table.concat(warnings, "; "))
        c:close()
        return (r.stdout:match("^(/.+)/cutover%-session%.%d+%.[%w]+/o%d+\n$"))
    end
    local function shm(size, mode)
        return string.format("mount -t tmpfs -o size=%s,mode=%s cutover-test /dev/shm", size, mode)
    end
    -- (tmpfs reports its whole size free: 300m is over the mark, 200m under)
    local own = S.target(T) .. "/own"   -- (mode 1777, as a TMPDIR is)
    assert(fs.mkdir(own, 1023) and fs.chmod(own, 1023))
    for _, case in ipairs({
        { "300 MiB free: /dev/shm", shm("300m", "1777"), "/dev/shm" },
        { "200 MiB free: /tmp", shm("200m", "1777"), "/tmp" },
        { "a container's 64 MiB: /tmp", shm("64m", "1777"), "/tmp" },
        { "not writable by the user (sticky): /tmp", shm("1g", "1755"), "/tmp" },
        { "writable but not sticky: /tmp", shm("1g", "0777"), "/tmp" },
        -- (it passes every check, then mktemp fails there: no inode left)
        { "/dev/shm where no folder can be made: /tmp",
          "mount -t tmpfs -o size=1g,nr_inodes=1,mode=1777 cutover-test /dev/shm", "/tmp" },
        { "the login's TMPDIR wins over a large /dev/shm", shm("1g", "1777"), own, "SetEnv TMPDIR=" .. own },
    }) do
        local e = S.start(T, { private_mounts = case[2], extra_config = case[4] })
        T.eq(folder_of(e, case[1]), case[3], case[1])
        e:stop()
    end
end)

-- A host slow to start a step: its `setsid` (found first on the PATH
-- sshd gives the login; the session shell is sh, which starts each step
-- through setsid) waits until the file go exists, or 3 s, before
-- it starts a step that runs `echo started`, so the controller waits for
-- that step's start line (P) all that while.
local function slow_start_server()
    local d = S.target(T)
    S.sh("chmod 755 " .. d .. " && mkdir " .. d .. "/bin")
    T.write(d .. "/bin/setsid", "#!/bin/sh\ncase \"$*\" in *'echo started'*)\n" ..
        "echo $PPID > " .. d .. "/shell.pid; : > " .. d .. "/starting\n" ..
        "i=0; while [ ! -e " .. d .. "/go ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done\n" ..
        ": > " .. d .. "/released;;\nesac\nexec /usr/bin/setsid \"$@\"\n", 493)
    -- the session shell is sh here (it looks bash up on that PATH):
    -- under bash, steps start as jobs, without setsid
    T.write(d .. "/bin/bash", "#!/bin/sh\nexec /bin/sh\n", 493)
    local s = S.start(T, { extra_config = "SetEnv PATH=" .. d .. "/bin:/usr/local/bin:/usr/bin:/bin" })
    s:trust()
    return s, d
end

-- Waits (bounded) until path exists.
local function wait_for(path, seconds)
    local deadline = loop.now() + seconds
    while loop.now() < deadline do
        if T.read(path) then return true end
        loop.sleep(0.05)
    end
    return false
end

-- After the controller is done: until the slow setsid has let the step
-- go (or 5 s), then a little more for a step it let go to show.  True
-- when the step's sleep is running.
local function still_runs(d, n)
    wait_for(d .. "/released", 5)
    for _ = 1, 20 do
        if proc.run({ argv = { "pgrep", "-f", "sleep " .. n } }).stdout ~= "" then return true end
        loop.sleep(0.1)
    end
    return false
end

T.test("L4: Ctrl-C (a real SIGINT to cutover) before the step's start line: the step does not go on running", function()
    -- about the session: on here even when the suite runs with CUTOVER_SESSION=0
    local s, d = slow_start_server()
    local n = 70000 + math.random(0, 9999) * 2
    T.write(d .. "/inv.yml", string.format("all:\n  vars: { ansible_host: %s, ansible_port: %d, ansible_user: %s, " ..
        "ansible_ssh_private_key_file: %s }\n  hosts:\n    h1: {}\n", s.address, s.port, s.user, s.key))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - id: slow\n      shell: \"echo started >> " .. d ..
        "/m; sleep " .. n .. "\"\n    - id: after\n      shell: \"echo after >> " .. d .. "/after\"\n")
    local r = T.sh(string.format([[
cd %s
XDG_STATE_HOME=%s/state HOME=%s SSH_AUTH_SOCK= NO_COLOR=1 CUTOVER_SESSION=1 %s run p.yml -i inv.yml --known-hosts %s \
    >out 2>&1 &
pid=$!
i=0
# until the host is about to start the step (the controller waits for its P line)
while [ ! -e starting ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
# the sshd process that relays the session's pipes stops, so the P line,
# once written, waits in the pipe: the step has started, the controller
# has not seen it yet
sshd=$(cat shell.pid) i=0
while [ $i -lt 5 ] && [ "$(cut -c1-4 /proc/$sshd/comm)" != sshd ]; do sshd=$(awk '{print $4}' /proc/$sshd/stat); i=$((i+1)); done
kill -STOP $sshd
: > go
i=0
while [ ! -e m ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
kill -INT $pid
sleep 1
kill -CONT $sshd
wait $pid
echo $? > rc
]], d, d, d, T.cutover, s.known_hosts))
    T.eq(r.rc, 0, "driver script: " .. r.stdout .. r.stderr .. (T.read(d .. "/out") or ""))
    local out = T.read(d .. "/out") or ""
    T.eq(tonumber(T.read(d .. "/rc")), 130, "interrupted: " .. out)
    T.eq(T.read(d .. "/m"), "started\n", "the step had started when the SIGINT came")
    T.ok(not still_runs(d, n), "the step is not left running on the host")
    T.eq(T.read(d .. "/after"), nil, "no later step ran")
    T.contains(out, "interrupted", "reported as interrupted: " .. out)
    T.not_contains(out, "may still be running", "nothing was left running: " .. out)
    proc.run({ argv = { "pkill", "-KILL", "-f", "sleep " .. n } })
end)

T.test("L4: a timeout before the step's start line: the step is stopped once it starts", function()
    local s, d = slow_start_server()
    local c = conn(s)
    T.eq(ok(c, "echo warm").stdout, "warm\n", "the session is open")
    local n = 70000 + math.random(0, 9999) * 2 + 1
    local r = ok(c, "echo started >> " .. d .. "/m; sleep " .. n, { timeout = 1 })
    T.eq(r.timed_out, true, "timed out")
    T.eq(r.stop_note, nil, "stopped: " .. tostring(r.stop_note))
    T.ok(not still_runs(d, n), "the step is not left running on the host")
    proc.run({ argv = { "pkill", "-KILL", "-f", "sleep " .. n } })
    c:close()
end)

T.test("L5: an idle session costs the controller a few KB, not its buffers' 68 KiB", function()
    local session = require("cutover.connection.session")
    -- (sys.memory: every byte of the controller's allocator, the session
    -- buffers of core/ssh/shell.c included; collectgarbage sees Lua's only)
    local sys = require("cutover.core.sys")
    local c = conn(srv, { session = false })
    assert(c:open())
    local runners = {}
    collectgarbage("collect")
    local before = sys.memory() / 1024
    for i = 1, 10 do
        local r, err = session.open(c.session, "h1", 30)
        T.ok(r, "runner " .. i .. ": " .. tostring(err))
        runners[i] = r
        -- a step with more output than the buffers hold, then idle
        assert(r:send("head -c 200000 /dev/zero; echo err >&2", "", 1000000))
        T.ok(r:started({ timeout = 30 }), "runner " .. i .. ": started")
        local res = r:result({ timeout = 30 })
        T.eq(res and #res.stdout, 200000, "runner " .. i .. ": its output")
    end
    collectgarbage("collect")
    local per = (sys.memory() / 1024 - before) / #runners
    T.ok(per < 8, string.format("an idle runner holds %.1f KiB of the controller's heap", per))
    for _, r in ipairs(runners) do r:close() end
    -- the stdout buffer itself: 40,000 bytes of lines wait on the channel
    -- before the first recv_line, so it grows to its 64 KiB; once every
    -- line is taken it is freed
    collectgarbage("collect")
    before = sys.memory() / 1024
    local shells = {}
    for i = 1, 4 do
        local sh = assert(c.session:shell("yes | head -n 20000; exec cat", { timeout = 30 }))
        proc.run({ argv = { "sleep", "0.5" } })
        for n = 1, 20000 do
            local line = sh:recv_line(100, { timeout = 30 })
            if line ~= "y" then T.eq(line, "y", "shell " .. i .. ": line " .. n); break end
        end
        shells[i] = sh
    end
    collectgarbage("collect")
    per = (sys.memory() / 1024 - before) / #shells
    T.ok(per < 8, string.format("an idle shell holds %.1f KiB of the controller's heap after 40,000 bytes", per))
    for _, sh in ipairs(shells) do sh:close() end
    c:close()
end)

T.test("L8: the login user's startup files: what a step sees is the same with CUTOVER_SESSION=0 and the session on",
    function()
    -- a login user whose shell is bash (bash reads ~/.bashrc for every
    -- command sshd runs; neither path is a login shell, so ~/.profile is
    -- read by neither)
    local user = "cutover-test-bash"
    if proc.run({ argv = { "id", "-u", user } }).rc ~= 0 then
        S.sh("useradd --create-home --shell /bin/bash " .. user .. " && usermod -p '*' " .. user)
    end
    local home = S.sh("getent passwd " .. user .. " | cut -d: -f6"):gsub("%s+$", "")
    T.write(home .. "/.bashrc", "L8_RC=from-bashrc\nexport L8_EXP=exported-by-bashrc\nalias l8=true\n", 420)
    T.write(home .. "/.profile", "L8_PROFILE=from-profile\nexport L8_PEXP=exported-by-profile\n", 420)
    S.sh("chown " .. user .. " " .. home .. "/.bashrc " .. home .. "/.profile")
    local d = S.target(T)
    S.sh("chown " .. user .. " " .. d)
    T.write(d .. "/inv.yml", string.format("all:\n  vars: { ansible_host: %s, ansible_port: %d, ansible_user: %s, " ..
        "ansible_ssh_private_key_file: %s }\n  hosts:\n    h1: {}\n", srv.address, srv.port, user, srv.key))
    local show = "echo rc=${L8_RC-unset} exp=${L8_EXP-unset} profile=${L8_PROFILE-unset} " ..
        "pexp=${L8_PEXP-unset} $(alias l8 2>/dev/null || echo no-alias)"
    local seen = {}
    for _, case in ipairs({ { "0", "off" }, { "", "on" } }) do
        local out = d .. "/" .. case[2]
        T.write(d .. "/p.yml", "- hosts: all\n  gather_facts: false\n  steps:\n" ..
            "    - shell: \"" .. show .. " > " .. out .. "; cat /proc/$PPID/comm > " .. out .. ".by\"\n" ..
            "    - shell:\n        cmd: \"" .. show .. " >> " .. out .. "\"\n        stdin: data\n")
        local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
            { env = { HOME = d, SSH_AUTH_SOCK = "", XDG_STATE_HOME = d .. "/state", CUTOVER_SESSION = case[1] },
              timeout = 120 })
        T.eq(r.rc, 0, "session " .. case[2] .. ": " .. r.stdout .. r.stderr)
        T.not_contains(r.stdout .. r.stderr, "warning", "session " .. case[2] .. ": no fallback")
        seen[case[2]] = T.read(out)
    end
    T.eq(T.read(d .. "/off.by"), "sshd\n", "CUTOVER_SESSION=0: a channel per step")
    T.eq(T.read(d .. "/on.by"), S.SESSION_COMM .. "\n", "otherwise: the session")
    local want = "rc=from-bashrc exp=exported-by-bashrc profile=unset pexp=unset alias l8='true'\n"
    T.eq(seen.off, want .. want, "one channel per step: ~/.bashrc read, ~/.profile not")
    T.eq(seen.on, seen.off, "the session: the same")
    -- what differs (docs/ssh.md): a variable ~/.bashrc exports by adding
    -- to its own value was added once already when the session shell
    -- started, so a step sees the addition twice; and $0 is the login
    -- shell's path, not sshd's bare name
    T.write(home .. "/.bashrc", 'export L8_ADD="${L8_ADD:+$L8_ADD:}added"\n', 420)
    local function add_seen(on)
        local c = conn(srv, { user = user, session = on })
        local r = ok(c, "echo $L8_ADD $0; cat /proc/$PPID/comm")
        c:close()
        return r.stdout
    end
    T.eq(add_seen(false), "added bash\nsshd\n", "one channel per step")
    T.eq(add_seen(true), "added:added /bin/bash\n" .. S.SESSION_COMM .. "\n", "the session: the documented difference")
end)

T.done()
