-- Issue 13: the persistent remote runner (connection/session.lua) on a
-- real loopback sshd.  Each check runs through connection.ssh as the
-- runner does: frames no output can forge, binary output, stdin, the
-- output cap, isolation between steps, signals, timeouts that stop the
-- step's process group, and a session shell killed (SIGKILL) between
-- steps and in the middle of one.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")
local sshconn = require("cutover.connection.ssh")
local _, session = pcall(require, "cutover.connection.session")  -- absent before issue 13
local default_shell = type(session) == "table" and session.SHELL
S.install(T)

local srv = S.start(T)
srv:trust()

local warnings = {}
sshconn.on_warning = function(msg) warnings[#warnings + 1] = msg end

local function conn(extra) return sshconn.new("h1", srv:conn_settings(extra)) end

local function sh(c, cmd, opts)
    local o = { shell = cmd }
    for k, v in pairs(opts or {}) do o[k] = v end
    return c:exec(o)
end

local function ok(c, cmd, opts)
    local r, err = sh(c, cmd, opts)
    assert(r, "exec failed: " .. tostring(err))
    return r
end

-- What runs a step: the session shell (comm S.SESSION_COMM) or sshd itself.
local function parent(c)
    return (ok(c, "cat /proc/$PPID/comm").stdout:gsub("%s+$", ""))
end

T.test("steps run in the session: one shell parents every step; cutover_session: false uses a channel each", function()
    local c = conn()
    T.eq(parent(c), S.SESSION_COMM, "the session shell runs the step")
    local p1 = ok(c, "echo $PPID").stdout
    local p2 = ok(c, "echo $PPID").stdout
    T.eq(p1, p2, "the same session shell for both steps")
    T.ok(c.session_runner ~= nil, "a runner is open")
    c:close()
    local off = conn({ session = false })
    T.eq(parent(off), "sshd", "cutover_session: false: sshd starts each command")
    T.eq(off.session_runner, nil, "no runner")
    off:close()
end)

T.test("the cutover binary runs a play's steps in the session (hosts as tasks); cutover_session: false and " ..
    "CUTOVER_SESSION=0 do not", function()
    -- { inventory's cutover_session: false, CUTOVER_SESSION }: the suites
    -- may run with CUTOVER_SESSION=0, so each case sets it
    for _, case in ipairs({ { false, "" }, { true, "" }, { false, "0" }, { true, "1" } }) do
        local off = case[1] or case[2] == "0"
        local d = S.target(T)
        local inv = "all:\n  vars: { ansible_host: " .. srv.address .. ", ansible_port: " .. srv.port ..
            ", ansible_user: " .. srv.user .. ", ansible_ssh_private_key_file: " .. srv.key ..
            (case[1] and ", cutover_session: false" or "") .. " }\n  hosts:\n"
        for i = 1, 3 do inv = inv .. "    h" .. i .. ": {}\n" end
        T.write(d .. "/inv.yml", inv)
        T.write(d .. "/p.yml", "- hosts: all\n  steps:\n" ..
            "    - shell: \"cat /proc/$PPID/comm > " .. d .. "/{{ inventory_hostname }}.a; echo $PPID > " ..
                d .. "/{{ inventory_hostname }}.a2\"\n" ..
            "    - shell: \"echo $PPID > " .. d .. "/{{ inventory_hostname }}.b\"\n")
        local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
            { env = { HOME = d, SSH_AUTH_SOCK = "", XDG_STATE_HOME = d .. "/state", CUTOVER_SESSION = case[2] },
              timeout = 120 })
        T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
        T.not_contains(r.stdout .. r.stderr, "warning", "no fallback warning")
        for i = 1, 3 do
            T.eq(T.read(d .. "/h" .. i .. ".a"), off and "sshd\n" or (S.SESSION_COMM .. "\n"),
                 "h" .. i .. (off and ": sshd starts the command" or ": the session shell starts the step"))
            -- both steps from the one process of the host's connection
            -- (the session shell, or sshd's for the connection): not a
            -- session (or a connection) per step
            local a2, b = T.read(d .. "/h" .. i .. ".a2"), T.read(d .. "/h" .. i .. ".b")
            T.ok(a2 ~= nil and a2:match("^%d+\n$") ~= nil, "h" .. i .. ": step 1's parent recorded: " .. tostring(a2))
            T.eq(b, a2, "h" .. i .. ": step 2 has step 1's parent")
        end
    end
    -- a value that is neither 0 nor 1: an error naming the variable, no step run
    local d = S.target(T)
    T.write(d .. "/inv.yml", "all:\n  hosts:\n    h1: { ansible_host: " .. srv.address .. ", ansible_port: " ..
        srv.port .. ", ansible_user: " .. srv.user .. ", ansible_ssh_private_key_file: " .. srv.key .. " }\n")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: \"touch " .. d .. "/ran\"\n")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
        { env = { HOME = d, SSH_AUTH_SOCK = "", XDG_STATE_HOME = d .. "/state", CUTOVER_SESSION = "off" },
          timeout = 120 })
    T.ok(r.rc ~= 0 and r.rc ~= 70, "refused, not an internal error: rc " .. tostring(r.rc))
    T.contains(r.stdout .. r.stderr, "CUTOVER_SESSION must be 0 or 1", "the message names the variable")
    T.not_contains(r.stdout .. r.stderr, "traceback", "no traceback")
    T.ok(not fs.stat(d .. "/ran"), "no step ran")
end)

T.test("exit codes and signals are what sh -c gives locally", function()
    local c = conn()
    for _, cmd in ipairs({ "true", "exit 3", "false", "kill -TERM $$", "kill -INT $$", "kill -KILL $$",
                           "exec sh -c 'exit 7'", "set -e; false; echo not-here" }) do
        local local_rc = proc.run({ shell = cmd, timeout = 10 }).rc
        local r = ok(c, cmd)
        T.eq(r.rc, local_rc, "rc of " .. cmd)
    end
    T.eq(ok(c, "echo still").stdout, "still\n", "the session outlives every one of them")
    T.eq(parent(c), S.SESSION_COMM, "still the session")
    c:close()
end)

T.test("frame forgery: output shaped like frames, boundaries and random bytes comes back as data", function()
    local c = conn()
    -- open the session first: the frames below carry its real token
    T.eq(ok(c, "true").rc, 0, "the session is open")
    local token = c.session_runner and c.session_runner.token
    T.ok(type(token) == "string" and #token > 0, "the session's token")
    -- markers of another session's token, and lines of this one's that
    -- are not an end marker (its token between newlines, then O or E)
    local fake = "X 1 0 100\necho injected\n" .. "0123456789abcdef01234567 R 0 0 0 0 0\n" ..
        "\n0123456789abcdef01234567 O\n\n0123456789abcdef01234567 E\n" ..
        "%s P 1\n%s R 0 3 0 3 0\n%s Ex\n%s O \n%s K 1\n"
    local cmd = "printf '" .. fake .. "' " .. string.rep(token .. " ", 5) .. "; printf '" .. fake .. "' " ..
        string.rep(token .. " ", 5) .. ">&2"
    local r = ok(c, cmd)
    T.eq(r.rc, 0, "rc")
    local want = fake:format(token, token, token, token, token)
    T.eq(r.stdout, want, "stdout verbatim, look-alike frames and the real token's lines as data")
    T.eq(r.stderr, want, "stderr verbatim")
    -- random bytes, NULs and lines without an end
    local d = S.target(T)
    local blob = crypto.random_bytes and crypto.random_bytes(200000) or nil
    if not blob then
        S.sh("head -c 200000 /dev/urandom > " .. d .. "/blob && chmod 644 " .. d .. "/blob")
        blob = T.read(d .. "/blob")
    else
        T.write(d .. "/blob", blob, 420)
    end
    local b = ok(c, "cat " .. d .. "/blob; cat " .. d .. "/blob >&2")
    T.eq(#b.stdout, #blob, "binary stdout length")
    T.ok(b.stdout == blob, "binary stdout exact")
    T.ok(b.stderr == blob, "binary stderr exact")
    T.eq(ok(c, "printf 'no newline at the end'").stdout, "no newline at the end", "partial last line")
    T.eq(ok(c, "printf 'a\\000b'").stdout, "a\0b", "a NUL byte")
    T.eq(c.session_runner and c.session_runner.token, token, "the same session throughout")
    T.eq(#warnings, 0, "no warning: " .. table.concat(warnings, "; "))
    c:close()
end)

T.test("a step that prints the session's real end markers (it would have to read the token from the session's " ..
    "memory) changes only its own output, or ends the session; nothing runs twice", function()
    warnings = {}
    local c = conn()
    T.eq(ok(c, "true").rc, 0, "the session is open")
    local token = c.session_runner.token
    local d = S.target(T)
    -- stdout that holds the stdout marker: the rest of it is taken for
    -- stderr, the reply still ends where it ends
    local r = ok(c, "echo once >> " .. d .. "/m1; printf 'a\\n" .. token .. " O\\nb'; exit 3")
    T.eq(r.rc, 3, "the step's real status")
    T.eq(r.stdout, "a", "stdout, cut at the forged marker")
    T.eq(r.stderr, "b\n" .. token .. " O\n", "the rest and the real marker, as stderr")
    T.eq(#warnings, 0, "the session goes on")
    T.eq(ok(c, "echo $((2+3))").stdout, "5\n", "and the next step's reply is its own")
    -- both markers, then more: the reply loses its place, the session is
    -- given up, the host goes on per channel, the step is not run again
    local r2, err = sh(c, "echo once >> " .. d .. "/m2; printf '\\n" .. token .. " O\\n\\n" .. token ..
        " E\\nextra'")
    if r2 then
        T.eq(ok(c, "echo after").stdout, "after\n", "a later step runs")
    else
        T.ok(err ~= nil, "a clear failure: " .. tostring(err))
        T.eq(ok(c, "echo after").stdout, "after\n", "a later step runs")
    end
    T.eq(T.read(d .. "/m1"), "once\n", "the first step ran once")
    T.eq(T.read(d .. "/m2"), "once\n", "the second step ran once")
    c:close()
end)

T.test("a step that writes into the session's own channel fails clearly and the host goes on per channel", function()
    warnings = {}
    local c = conn()
    T.eq(parent(c), S.SESSION_COMM, "session on")
    -- a step that forges a whole reply straight into every pipe of the
    -- session shell (its stdin, and the stdout the controller reads)
    local r, err = sh(c, "for f in /proc/$PPID/fd/*; do case $(readlink $f) in pipe:*) " ..
        "printf 'X 1 0 9\\necho forged\\nbogus R 0 0 0 0 0\\nbogus E\\n' > $f;; esac; done; echo done")
    T.eq(r, nil, "no result is taken from a forged reply")
    T.contains(tostring(err), "may or may not have taken effect", "the rule for a step whose end is unknown")
    T.eq(parent(c), "sshd", "later steps: one channel each")
    T.eq(#warnings, 1, "one warning")
    T.contains(warnings[1] or "", "h1: the persistent session is not available", "the warning names the host")
    c:close()
end)

T.test("stdin: bytes in exactly, a step that reads to the end or not at all", function()
    local c = conn()
    local data = "line one\nline two\0with a NUL\n\255\254 and no newline"
    T.ok(ok(c, "cat", { stdin = data }).stdout == data, "stdin echoed exactly")
    local big = string.rep("0123456789abcdef", 65536) .. "tail"
    local r = ok(c, "wc -c; cat >/dev/null", { stdin = big })
    T.eq(tonumber(r.stdout:match("%d+")), #big, "1 MiB of stdin")
    T.eq(ok(c, "echo ignored").stdout, "ignored\n", "a step that does not read it")
    T.eq(ok(c, "echo ignored", { stdin = big }).stdout, "ignored\n", "a step that leaves 1 MiB of stdin unread")
    T.eq(ok(c, "head -c 3", { stdin = big }).stdout, "012", "a step that reads 3 bytes of 1 MiB")
    T.eq(ok(c, "cat", { stdin = "next" }).stdout, "next", "the next step's stdin is its own")
    T.eq(ok(c, "cat").stdout, "", "no stdin: at its end at once")
    T.eq(ok(c, "read x; echo \"[$x]\"", { stdin = "X Y\n" }).stdout, "[X Y]\n", "read from stdin")
    T.eq(parent(c), S.SESSION_COMM, "still the session")
    c:close()
end)

T.test("output over the cap is cut and flagged, per stream", function()
    local c = conn({ max_output = 1000 })
    local r = ok(c, "head -c 5000 /dev/zero; head -c 999 /dev/zero >&2")
    T.eq(#r.stdout, 1000, "stdout cut at the cap")
    T.eq(r.stdout_truncated, true, "stdout flagged")
    T.eq(#r.stderr, 999, "stderr under the cap")
    T.eq(r.stderr_truncated, false, "stderr not flagged")
    local big = ok(c, "head -c 3000000 /dev/zero", { max_output = 4000000 })
    T.eq(#big.stdout, 3000000, "3 MB under a larger cap")
    T.eq(ok(c, "echo next").stdout, "next\n", "the next step")
    c:close()
end)

T.test("isolation: cd, export, umask, traps, set -e, exec, exit and a closed stdout stay in their step", function()
    local c = conn()
    local home = ok(c, "pwd").stdout
    local mask = ok(c, "umask").stdout
    ok(c, "cd /tmp; export LEAK=1; LEAK2=2; umask 077; trap 'echo trapped' EXIT; set -e; alias ls=false")
    local r = ok(c, "pwd; echo ${LEAK-unset} ${LEAK2-unset}; umask")
    T.eq(r.stdout, home .. "unset unset\n" .. mask, "nothing leaked")
    T.eq(ok(c, "exec echo replaced").stdout, "replaced\n", "exec")
    T.eq(ok(c, "exit 4").rc, 4, "exit")
    local closed = ok(c, "exec >&- 2>&-; sleep 0.1; exit 5")
    T.eq(closed.rc, 5, "a step that closes stdout and stderr")
    T.eq(ok(c, "echo after").stdout, "after\n", "the session still answers")
    T.eq(parent(c), S.SESSION_COMM, "and it is still the session")
    c:close()
end)

T.test("a step that leaves a daemon behind does not hold the session", function()
    local c = conn()
    S.target(T)
    -- the daemon keeps the step's stdout and stderr open for 600 s; the
    -- step returns while it still runs, so it was not waited for
    local r = ok(c, "sh -c 'sleep 600; echo late' & echo $$")
    local pgid = tonumber(r.stdout:match("^(%d+)\n$"))
    T.ok(pgid, "the step's own output: " .. r.stdout)
    T.ok(proc.run({ argv = { "pgrep", "-g", tostring(pgid) } }).stdout ~= "", "the daemon still runs")
    local r2 = ok(c, "echo second")
    T.eq(r2.stdout, "second\n", "the next step's output is its own")
    S.sh("kill -KILL -" .. pgid)
    c:close()
end)

T.test("timeout: the step's process group is stopped, the session stays", function()
    local c = conn()
    S.target(T)
    -- its processes are found by their command lines (sleeps of a
    -- length drawn for this test), whether or not it ran far before the
    -- timeout
    local n = 60000 + math.random(0, 9999) * 2
    local r = ok(c, "sh -c 'sleep " .. n .. "; echo late' & sleep " .. (n + 1), { timeout = 1 })
    T.eq(r.timed_out, true, "timed out")
    T.eq(r.stop_note, nil, "stopped: " .. tostring(r.stop_note))
    local left = proc.run({ argv = { "pgrep", "-f", "sleep (" .. n .. "|" .. (n + 1) .. ")" } })
    T.eq(left.stdout, "", "nothing of its process group still runs")
    T.eq(ok(c, "echo after").stdout, "after\n", "the next step runs")
    T.eq(parent(c), S.SESSION_COMM, "in the session")
    c:close()
end)

T.test("the session shell killed between steps: a warning, then one channel per step", function()
    warnings = {}
    local c = conn()
    T.eq(parent(c), S.SESSION_COMM, "session on")
    local pid = c.session_runner.pid
    T.ok(pid and pid > 1, "the session shell's pid")
    S.sh("kill -KILL " .. pid)
    -- the kill is seen at the next step: never started, so it runs, once
    -- (an appended line: a second run would show)
    local d = S.target(T)
    local r = ok(c, "echo ran >> " .. d .. "/ran; echo ran")
    T.eq(r.stdout, "ran\n", "its output")
    T.eq(T.read(d .. "/ran"), "ran\n", "the step ran exactly once")
    T.eq(#warnings, 1, "one warning")
    T.contains(warnings[1] or "", "one SSH channel per step", "the warning says what happens now")
    T.eq(parent(c), "sshd", "per channel from now on")
    c:close()
end)

T.test("the session shell killed while a step runs: the step fails as 'may or may not', the host goes on", function()
    warnings = {}
    local c = conn()
    local d = S.target(T)
    T.eq(parent(c), S.SESSION_COMM, "session on")
    -- the session's private folder: where the step's stdout goes
    local folder = ok(c, "readlink /proc/$$/fd/1").stdout:match("^(/.+)/o%d+\n$")
    T.ok(folder and fs.stat(folder), "the private folder: " .. tostring(folder))
    local r, err, code = sh(c, "echo before > " .. d .. "/mark; kill -KILL $PPID; sleep 1; echo after >> " .. d ..
        "/mark")
    T.eq(r, nil, "no result")
    T.eq(code, "connection", "code")
    T.contains(tostring(err), "it may or may not have taken effect", "message: " .. tostring(err))
    -- (the step itself may still be in its sleep: only its start counts)
    local _, starts = (T.read(d .. "/mark") or ""):gsub("before\n", "")
    T.eq(starts, 1, "the step started once, never run again")
    T.eq(ok(c, "echo next >> " .. d .. "/next").rc, 0, "the next step runs")
    T.eq(T.read(d .. "/next"), "next\n", "the next step ran exactly once")
    T.eq(#warnings, 1, "one warning")
    c:close()
    -- SIGKILL ran no trap: its private folder was left; the next session
    -- of the user removes it
    local c2 = conn()
    T.eq(parent(c2), S.SESSION_COMM, "a new session")
    T.ok(folder and not fs.stat(folder), "the killed session's folder is gone")
    c2:close()
end)

T.test("M3: the clean-up of killed sessions' folders removes only the user's own real folders", function()
    local tag = crypto.random_hex(4)
    local u = S.USER
    local dead = "999999999"                        -- above any pid_max: no such process
    -- a live session of the user's: its folder is named for its shell,
    -- and its parent is where the sessions of this host keep theirs
    -- (/dev/shm here, /tmp or $TMPDIR elsewhere)
    local live = conn()
    local folder = ok(live, "readlink /proc/$$/fd/1").stdout:match("^(/.+)/o%d+\n$")
    T.ok(folder, "the live session's private folder")
    T.eq(folder:match("cutover%-session%.(%d+)%."), tostring(live.session_runner.pid),
         "the folder's name holds the session shell's pid")
    local base = folder:match("^(/.+)/cutover%-session%.[^/]+$") .. "/cutover-session."
    local A = base .. dead .. ".tA" .. tag     -- not the user's: root's, world-writable
    local B = base .. dead .. ".tB" .. tag     -- a symlink to a folder of the user's
    local Bt = "/tmp/cutover-victim-" .. tag
    local C = base .. dead .. ".tC" .. tag     -- the user's own, its shell gone: removed
    local F = base .. "tF" .. tag              -- an earlier version's: pid file, shell gone: removed
    local G = base .. "tG" .. tag              -- an earlier version's, pid not written yet: kept
    local H = base .. "x" .. dead .. ".tH" .. tag  -- no pid in its name, no pid file: kept
    -- the other place sessions keep folders (/tmp or /dev/shm: where an
    -- earlier version, or this host on a day with less room, put them)
    local other = (base:find("^/dev/shm/") and "/tmp" or "/dev/shm") .. "/cutover-session."
    local C2 = other .. dead .. ".tC2" .. tag  -- the user's own, its shell gone: removed there too
    local A2 = other .. dead .. ".tA2" .. tag  -- not the user's: left alone there too
    -- an earlier version's, its random part all digits, its shell alive
    -- (the live session's below): kept, the name is not read as a pid
    local L = base .. dead .. tag:gsub("%D", "7")
    local r = proc.run({ shell = table.concat({
        "set -e",
        "mkdir -m 0777 " .. A, "touch " .. A .. "/victim", "chown " .. u .. " " .. A .. "/victim",
        "mkdir -m 0700 " .. Bt, "touch " .. Bt .. "/victim",
        -- (the link is the user's too: in sticky /tmp a root-owned link
        -- could not be removed by the user anyway, guard or not)
        "chown -R " .. u .. " " .. Bt, "ln -s " .. Bt .. " " .. B, "chown -h " .. u .. " " .. B,
        "mkdir -m 0700 " .. C, "touch " .. C .. "/o1", "chown -R " .. u .. " " .. C,
        "mkdir -m 0700 " .. F, "echo " .. dead .. " > " .. F .. "/pid", "chown -R " .. u .. " " .. F,
        "mkdir -m 0700 " .. G, ": > " .. G .. "/pid", "touch " .. G .. "/o1", "chown -R " .. u .. " " .. G,
        "mkdir -m 0700 " .. H, "touch " .. H .. "/o1", "chown -R " .. u .. " " .. H,
        "mkdir -m 0700 " .. C2, "touch " .. C2 .. "/o1", "chown -R " .. u .. " " .. C2,
        "mkdir -m 0777 " .. A2, "touch " .. A2 .. "/victim", "chown " .. u .. " " .. A2 .. "/victim",
    }, "\n") })
    T.eq(r.rc, 0, "planted: " .. r.stderr)
    r = proc.run({ shell = table.concat({ "set -e",
        "mkdir -m 0700 " .. L, "echo " .. live.session_runner.pid .. " > " .. L .. "/pid", "touch " .. L .. "/o1",
        "chown -R " .. u .. " " .. L }, "\n") })
    T.eq(r.rc, 0, "planted: " .. r.stderr)
    local c = conn()
    T.eq(parent(c), S.SESSION_COMM, "a new session (its start runs the clean-up)")
    c:close()
    T.ok(fs.stat(A .. "/victim"), "a folder the user does not own is left alone")
    T.ok(fs.stat(Bt .. "/victim"), "a symlinked folder is not followed")
    -- (rm -rf on the link would spare the folder: the link itself must stay)
    T.eq((fs.stat(B) or {}).type, "link", "the symlink to a folder is left alone")
    T.ok(not fs.stat(C), "the user's own folder of a dead session is removed")
    T.ok(not fs.stat(F), "an earlier version's folder whose pid file names a dead shell is removed")
    T.ok(fs.stat(G .. "/o1"), "an earlier version's folder whose pid file is still empty is left alone")
    T.ok(fs.stat(H .. "/o1"), "a folder with no pid in its name and no pid file is left alone")
    T.ok(not fs.stat(C2), "the user's own folder of a dead session in " .. other .. "* is removed too")
    T.ok(fs.stat(A2 .. "/victim"), "a folder the user does not own in " .. other .. "* is left alone")
    T.ok(fs.stat(L .. "/o1"), "an earlier version's folder named with digits only, its shell alive, is left alone")
    T.eq((fs.stat(folder) or {}).type, "directory", "a live session's folder is left alone")
    T.eq(ok(live, "echo still").stdout, "still\n", "and that session goes on")
    T.eq(parent(live), S.SESSION_COMM, "in its session")
    live:close()
    -- (its shell removes it on its way out, after the channel closed:
    -- waited for, at most 10 s)
    proc.run({ argv = { "sh", "-c", 'for i in $(seq 100); do [ -e "$1" ] || exit 0; sleep 0.1; done', "-", folder } })
    T.ok(not fs.stat(folder), "a session that ends removes its folder")
    proc.run({ argv = { "rm", "-rf", A, B, Bt, C, F, G, H, L, C2, A2 } })
end)

T.test("M2: a step that removes the session's private folder: the next step runs once, as never started", function()
    warnings = {}
    local c = conn()
    local d = S.target(T)
    local folder = ok(c, "readlink /proc/$$/fd/1").stdout:match("^(/.+)/o%d+\n$")
    T.ok(folder, "the private folder")
    -- (what a clean-up step such as rm -rf /dev/shm/* or /tmp/* does to it)
    T.eq(ok(c, "rm -rf " .. folder).rc, 0, "the step that removes it")
    local r, err = sh(c, "echo ran >> " .. d .. "/m; echo ran")
    T.ok(r, "the next step has a result, not 'may or may not': " .. tostring(err))
    T.eq(r and r.stdout, "ran\n", "its output")
    T.eq(T.read(d .. "/m"), "ran\n", "it ran exactly once")
    T.eq(ok(c, "echo after").stdout, "after\n", "the host goes on")
    T.eq(parent(c), S.SESSION_COMM, "in the session (its folder made again)")
    -- its path taken by something else: the session cannot make it again;
    -- the step never started there, so it runs (once) on a channel
    folder = ok(c, "readlink /proc/$$/fd/1").stdout:match("^(/.+)/o%d+\n$")
    T.eq(ok(c, "rm -rf " .. folder .. " && ln -s /tmp " .. folder).rc, 0, "the folder replaced by a symlink")
    r, err = sh(c, "echo ran >> " .. d .. "/m2; echo ran")
    T.ok(r, "a result: " .. tostring(err))
    T.eq(T.read(d .. "/m2"), "ran\n", "it ran exactly once")
    T.eq(#warnings, 1, "one warning: " .. table.concat(warnings, "; "))
    T.contains(warnings[1] or "", "private folder is gone", "the warning says why")
    T.eq(parent(c), "sshd", "one channel per step from then on")
    os.remove(folder)
    c:close()
end)

T.test("M2: output a left-behind process keeps rewriting: the reply keeps its place (its end is a marker, not a count)",
    function()
    warnings = {}
    local c = conn()
    for i = 1, 4 do
        -- the step ends at once; the process it leaves truncates and
        -- rewrites the step's stdout file 3000 times while the session
        -- sends it
        local r, err = sh(c, "(j=0; while [ $j -lt 3000 ]; do printf '%065536d' 0 > /dev/stdout; j=$((j+1)); " ..
            "done) & echo started")
        T.ok(r, "step " .. i .. ": a result: " .. tostring(err))
        T.ok(r and r.stdout:sub(1, 8) == "started\n" or (r and r.stdout:match("^0*$")), "step " .. i ..
            ": output is one state of the file")
    end
    T.eq(#warnings, 0, "no reply lost its place: " .. table.concat(warnings, "; "))
    T.eq(parent(c), S.SESSION_COMM, "still the session")
    c:close()
end)

-- become: one sudo per connection and user, its password sent once
local SUDOERS = "/etc/sudoers.d/cutover-test-session"
local function set_sudoers(line) S.sudoers(T, "session", line) end

T.test("become: one sudo for the whole run per user (password once), steps as root, timeouts stopped as root",
    function()
    S.set_password()
    for _, rule in ipairs({ S.USER .. " ALL=(ALL) ALL", S.USER .. " ALL=(ALL) NOPASSWD: ALL" }) do
        set_sudoers(rule)
        warnings = {}
        local c = conn()
        c.become = { user = "root", method = "sudo", password = S.PASSWORD }
        -- (the process group of the step's parent: with stdin, that parent
        -- is a subshell of the session shell, in its process group)
        local a = ok(c, "id -u; awk '{print $5}' /proc/$PPID/stat; cat /proc/$PPID/comm")
        local b = ok(c, "id -u; awk '{print $5}' /proc/$PPID/stat; cat /proc/$PPID/comm", { stdin = "x" })
        T.eq(a.stdout:match("^(%d+)\n"), "0", rule .. ": as root")
        T.eq(a.stdout:match("\n(%d+)\n"), b.stdout:match("\n(%d+)\n"), rule ..
            ": one session shell (one sudo) for both")
        T.eq(a.stdout:match("\n(%a+)\n$"), "sh", rule .. ": started by the session, not by a sudo of its own")
        T.not_contains(a.stderr .. b.stderr, "cutover-sudo-", rule .. ": no prompt in stderr")
        T.eq(ok(c, "cat", { stdin = "in\0put" }).stdout, "in\0put", rule .. ": the step's stdin is its own")
        -- a root step that times out is stopped (as root)
        local n = 60000 + math.random(0, 9999)
        local r = ok(c, "sleep " .. n .. "; :", { timeout = 1 })
        T.eq(r.timed_out, true, rule .. ": timed out")
        T.eq(r.stop_note, nil, rule .. ": stopped: " .. tostring(r.stop_note))
        T.eq(proc.run({ argv = { "pgrep", "-f", "sleep " .. n } }).stdout, "", rule .. ": its group is gone")
        c.become = nil
        T.eq(ok(c, "id -un").stdout, S.USER .. "\n", rule .. ": without become, the login user again")
        T.eq(#warnings, 0, rule .. ": no warning: " .. table.concat(warnings, "; "))
        c:close()
    end
    fs.remove(SUDOERS)
end)

-- The folders the sessions of this host use (the test runs as root, so
-- it can read every one), and whether any file in them holds s.
-- extra: one more folder to search (a copy of one).
local function staged(s, extra)
    local found = {}
    for _, dir in ipairs({ "/tmp/cutover-session.*", "/dev/shm/cutover-session.*", extra }) do
        local r = proc.run({ argv = { "sh", "-c", "grep -rlF -e \"$1\" " .. dir .. " 2>/dev/null; true",
                                      "sh", s } })
        for f in r.stdout:gmatch("[^\n]+") do found[#found + 1] = f end
    end
    return found
end

T.test("H1: sudo's password is never written to a file on the host (probe, become session, per-step sudo, SIGKILL)",
    function()
    S.set_password()
    set_sudoers(S.USER .. " ALL=(ALL) ALL")
    warnings = {}
    local c = conn()
    T.eq(parent(c), S.SESSION_COMM, "the login session is on")
    local folder = ok(c, "readlink /proc/$$/fd/1").stdout:match("^(/.+)/o%d+\n$")
    T.ok(folder, "the login session's private folder")
    -- (staged searches where the sessions keep their folders: it must
    -- find this one, or it would find nothing anywhere)
    T.ok(folder and (folder:find("^/tmp/cutover%-session%.") or folder:find("^/dev/shm/cutover%-session%.")),
         "staged searches the folder's parent: " .. tostring(folder))
    c.become = { user = "root", method = "sudo", password = S.PASSWORD }
    -- the first step as root probes sudo with the password (login session)
    T.eq(ok(c, "id -u").stdout, "0\n", "as root")
    T.eq(ok(c, "id -u", { stdin = "step input" }).stdout, "0\n", "as root, with stdin")
    T.eq(#staged(S.PASSWORD), 0, "no file holds the password after the probe: " .. table.concat(staged(S.PASSWORD),
        " "))
    -- sudo once per step (the become session turned off): the password
    -- goes ahead of the step's stdin, through the login session
    c.no_become_session = { ["root\0"] = true }
    T.eq(ok(c, "cat", { stdin = "own input" }).stdout, "own input", "per-step sudo: the step's stdin is its own")
    T.eq(#staged(S.PASSWORD), 0, "no file holds the password after per-step sudo: " ..
        table.concat(staged(S.PASSWORD), " "))
    -- SIGKILL of the login session in the middle of a per-step sudo step
    -- (its password went ahead of the step's stdin, which the step is
    -- still to read): no trap runs, its folder stays until the next
    -- session; still no password in it.  The folder is copied the moment
    -- the shell is killed: the next session of the user, a concurrent
    -- test's too, removes it as a dead session's
    local shell_pid = c.session_runner and c.session_runner.pid
    T.ok(shell_pid ~= nil, "the login session's shell pid")
    local snap = T.tmpdir() .. "/killed"
    proc.run({ shell = "(sleep 1; kill -KILL " .. tostring(shell_pid) .. "; cp -a " .. folder .. " " .. snap ..
        ") >/dev/null 2>&1 &" })
    local r = sh(c, "sleep 3; cat > /dev/null", { stdin = "slow input" })
    T.eq(r, nil, "the killed session gives no result")
    T.ok(fs.stat(snap .. "/pid"), "the killed session's folder, as it was at the kill: " .. folder)
    T.ok(#fs.list(snap) >= 3, "with its steps' files: " .. table.concat(fs.list(snap), " "))
    T.eq(#staged(S.PASSWORD, snap), 0, "no file holds the password after a SIGKILL: " ..
        table.concat(staged(S.PASSWORD, snap), " "))
    c:close()
    fs.remove(SUDOERS)
end)

T.test("the bootstrap runs under dash, bash and busybox sh; a busybox login shell runs the steps", function()
    if type(session) ~= "table" then error("no connection.session module") end
    local busybox = fs.stat("/usr/bin/busybox") and "/usr/bin/busybox" or (fs.stat("/bin/busybox") and "/bin/busybox")
    if not busybox then
        print("# SKIP busybox sh: busybox is not installed (scripts/deps.sh installs it)")
    end
    for _, interp in ipairs({ "/bin/dash", "/bin/bash", "/bin/sh", busybox and (busybox .. " sh") or nil }) do
        if fs.stat(interp:match("^%S+")) then
            session.SHELL = interp
            local c = conn()
            T.eq(ok(c, "echo hi; echo err >&2; exit 2").stdout, "hi\n", interp .. ": stdout")
            T.eq(ok(c, "cat", { stdin = "x\0y" }).stdout, "x\0y", interp .. ": stdin")
            T.eq(ok(c, "tr -d '\\0' < /proc/$PPID/cmdline").stdout, interp:gsub(" ", ""), interp ..
                ": the session shell ran it")
            T.ok(c.session_runner ~= nil and not c.no_session, interp .. ": the session ran it")
            c:close()
        end
    end
    session.SHELL = default_shell
    if busybox then
        -- a login shell that is busybox itself (not a link named sh or
        -- ash): it runs a command as `busybox sh -c`, not `busybox -c`
        local c = conn({ session = false })
        assert(c:open())
        local r, err = session.open(c.session, "h1", 30, { shell = busybox })
        T.ok(r, "the session started: " .. tostring(err))
        if r then
            local cmd = "echo $((6*7)); tr -d '\\0' < /proc/$$/cmdline; :"
            local sent, serr = r:send(cmd, "", 1000)
            T.ok(sent, "sent: " .. tostring(serr))
            T.ok(r:started({ timeout = 30 }), "the step started")
            local res, rerr = r:result({ timeout = 30 })
            T.eq(res and res.stdout, "42\n" .. busybox .. "sh-c" .. cmd, "a busybox login shell ran the step: " ..
                tostring(rerr) .. " " .. tostring(res and res.stderr))
            T.eq(res and res.rc, 0, "its exit status")
            r:close()
        end
        c:close()
    end
end)

T.test("bash takes the bootstrap in a few reads, not a read per byte; dash and a non-ASCII body " ..
    "skip the loader line", function()
    if type(session) ~= "table" then error("no connection.session module") end
    if proc.run({ argv = { "strace", "-V" }, timeout = 10 }).rc ~= 0 then
        error("strace is not installed (scripts/deps.sh installs it)")
    end
    if proc.run({ argv = { "strace", "-qq", "-o", "/dev/null", "true" }, timeout = 10 }).rc ~= 0 then
        print("# SKIP: strace cannot trace here (ptrace not allowed)")
        return
    end
    local bash = fs.stat("/bin/bash") and "/bin/bash"
    if not bash then print("# SKIP: no bash on this machine"); return end
    local d = S.target(T)
    -- reads of the session shell's stdin, from its start to its K line
    local function stdin_reads(trace)
        local calls, bulk = 0, 0
        for line in T.read(trace):gmatch("[^\n]+") do
            local got = line:match("^read%(0, .*%)%s+= (%d+)$")
            if got then
                calls = calls + 1
                -- bash 4.4 to 5.0 read -N in 128-byte blocks, 5.1 and
                -- later in 4 KiB blocks
                if tonumber(got) >= 100 then bulk = bulk + 1 end
            end
        end
        return calls, bulk
    end
    -- { what runs the session, the login shell it names (o.shell), label }
    local cases = {
        { "bash --posix", nil, "bash --posix" },
        { "bash", nil, "bash (not in POSIX mode)" },
        { "env LC_ALL=C.UTF-8 bash --posix", nil, "bash in a UTF-8 locale" },
        { "env POSIXLY_CORRECT=1 bash --posix", nil, "a login that exports POSIXLY_CORRECT" },
        { "env LC_ALL=C.UTF-8 bash --posix", "/no-such-\195\169/sh", "a body that is not ASCII (o.shell)" },
        { "dash", nil, "dash" },
    }
    for i, case in ipairs(cases) do
        local trace = d .. "/trace" .. i
        local c = conn({ session = false })
        assert(c:open())
        local r, err = session.open(c.session, "h1", 30, {
            command = "exec strace -qq -e trace=read -o " .. trace .. " " .. case[1], shell = case[2] })
        T.ok(r, case[3] .. ": the session started: " .. tostring(err))
        if r then
            -- the step runs with the login shell o.shell names: a missing
            -- one (the non-ASCII name) fails the step, not the session
            local sent = r:send("echo $((6*7)) ${POSIXLY_CORRECT-unset}", "", 1000)
            T.ok(sent and r:started({ timeout = 30 }), case[3] .. ": a step started")
            local res = r:result({ timeout = 30 })
            -- the loader leaves POSIX mode and comes back: an exported
            -- POSIXLY_CORRECT still reaches the step, with its value
            local posixly = case[1]:find("POSIXLY_CORRECT=1", 1, true) and "1" or "unset"
            if not case[2] then T.eq(res and res.stdout, "42 " .. posixly .. "\n", case[3] .. ": the step ran") end
            r:close()
        end
        c:close()
        local calls, bulk = stdin_reads(trace)
        local body = #session.BOOT
        if case[1]:find("bash") and not case[2] then
            T.ok(calls < 600 and bulk >= 1, case[3] .. ": the body in bulk (" .. calls .. " reads of stdin, " ..
                bulk .. " of 100 bytes or more; a read per byte would be " .. body .. " or more)")
        elseif case[1]:find("bash") then
            T.ok(calls > body, case[3] .. ": no loader line, a read per byte (" .. calls .. " reads)")
        end
        -- dash skips the line (its `if` is false there) and reads the
        -- body as its script: the step above ran
    end
    -- the line itself: only an ASCII body gets one, sized in bytes
    T.eq(session.loader("x\195\169\n"), "", "no loader line for a body that is not ASCII")
    T.ok(session.loader("abc\n"):find("read %-r %-N 4 __cs_L") ~= nil, "the count is the body's bytes")
end)

T.test("M6: a session channel the server refuses (MaxSessions) falls back with a warning; the connection stays",
    function()
    local one = S.start(T, { max_sessions = 1 })
    one:trust()
    local c = sshconn.new("h1", { host = one.address, port = one.port, user = one.user, keys = { one.key },
                                  agent = false, known_hosts = one.known_hosts, timeout = 30 })
    assert(c:open())
    local connection = c.session
    -- another channel holds the connection's only session slot
    local hold = assert(c.session:shell("cat", { timeout = 30 }))
    warnings = {}
    local r, err, code = c:runner()
    T.eq(r, nil, "no runner")
    T.eq(err, nil, "no error that ends the connection: " .. tostring(err) .. " (" .. tostring(code) .. ")")
    T.ok(c.session == connection and c.session ~= nil, "the connection was kept")
    T.ok(hold:poll(), "the other channel still works")
    T.eq(#warnings, 1, "one warning: " .. table.concat(warnings, "; "))
    T.contains(warnings[1] or "", "one SSH channel per step", "the warning says what happens instead")
    T.ok(c.no_session, "the host runs one channel per step from now on")
    hold:close()
    -- the steps run, each on a channel of its own
    T.eq(parent(c), "sshd", "a channel of its own")
    c:close()
end)

T.test("M5: a request the session stops reading: 'may or may not', the connection closed, never run again", function()
    local c = conn()
    local d = S.target(T)
    T.eq(parent(c), S.SESSION_COMM, "the session is open")
    local pid = c.session_runner.pid
    -- the session shell stops reading: a command larger than the
    -- channel's window and the pipe stops moving partway
    S.sh("kill -STOP " .. pid)
    local stall = session.SEND_STALL
    session.SEND_STALL = 1
    local pad = string.rep("#" .. string.rep("x", 99) .. "\n", 40000)
    warnings = {}
    local ran, r, err = pcall(sh, c, pad .. "echo ran >> " .. d .. "/m5")
    session.SEND_STALL = stall
    S.sh("kill -KILL " .. pid .. " 2>/dev/null; kill -CONT " .. pid .. " 2>/dev/null; true")
    T.ok(ran, "no raised error: " .. tostring(r))
    T.eq(r, nil, "no result: the step was not run again on a channel of its own")
    T.contains(tostring(err), "may or may not have taken effect", "the step's fate is unknown")
    T.eq(c.session, nil, "the SSH connection was closed (libssh2 may hold part of the request)")
    T.eq(T.read(d .. "/m5"), nil, "the step did not run")
    T.eq(#warnings, 0, "no fallback to a channel per step (which would run it again): " ..
        table.concat(warnings, "; "))
    T.eq(ok(c, "echo next").stdout, "next\n", "the next step reconnects")
    T.eq(parent(c), S.SESSION_COMM, "and runs in a new session")
    c:close()
end)

T.test("M5: sh:send gives up only when its bytes stop moving, and says whether any left", function()
    local c = conn({ session = false })
    assert(c:open())
    local data = string.rep("y", 8 * 1024 * 1024)
    -- a reader that takes 1 MiB, then pauses: the bytes move in bursts;
    -- it ends at the end of its input (head -c at EOF succeeds with
    -- nothing read: a loop on its status alone ran on, orphaned, forever)
    local paced = assert(c.session:shell(
        "while [ \"$(head -c 1048576 | wc -c)\" -gt 0 ]; do sleep 0.2; done", { timeout = 30 }))
    local ok_, err = paced:send(data, { stall = 3, timeout = 120 })
    T.eq(ok_, true, "sent whole while its bytes moved: " .. tostring(err))
    paced:close()
    -- the reader ends with its input (waited for, at most 10 s)
    local gone = proc.run({ shell = "for i in $(seq 100); do pgrep -f 'head -c 104857[6]' >/dev/null || exit 0; " ..
        "sleep 0.1; done; exit 1" })
    T.eq(gone.rc, 0, "the paced reader is gone once its input ended")
    -- a reader that never reads: the send stops partway
    local deaf = assert(c.session:shell("echo $$; exec sleep 600", { timeout = 30 }))
    local pid = assert(tonumber(deaf:recv_line(100, { timeout = 30 })), "the sleeper's pid")
    local code, maybe
    ok_, err, code, maybe = deaf:send(data, { stall = 1, timeout = 20 })
    S.sh("kill -KILL " .. pid)
    T.eq(ok_, nil, "not sent whole")
    T.eq(code, "timeout", "it timed out: " .. tostring(err))
    T.eq(maybe, true, "some of its bytes left")
    deaf:close()
    c:close()
end)

T.test("L2: sudo's password is sent only once its prompt is seen (never run as a command)", function()
    local c = conn({ session = false })
    assert(c:open())
    local d = S.target(T)
    -- a become command that does not prompt: the password line would
    -- reach the shell as a command
    local r, err, code = session.open(c.session, "h1", 3, { command = "/bin/sh",
        preamble = "echo leaked > " .. d .. "/pw\n", prompt = "cutover-sudo-test:", shell = "/bin/sh" })
    T.eq(r, nil, "no session")
    T.ok(code ~= "connection", "the connection stays: " .. tostring(err))
    T.eq(T.read(d .. "/pw"), nil, "the password line was never sent")
    -- one that prompts (on stderr, as sudo -S does) and checks the line
    local cmd = "sh -c 'printf cutover-sudo-test: >&2; IFS= read -r pw; [ \"$pw\" = s3cret ] && exec /bin/sh'"
    r, err = session.open(c.session, "h1", 30, { command = cmd, preamble = "s3cret\n",
                                                 prompt = "cutover-sudo-test:", shell = "/bin/sh" })
    T.ok(r ~= nil, "the session started after the prompt: " .. tostring(err))
    if r then r:close() end
    c:close()
end)

-- (last: the SIGINT it sends this process stays counted, and a connect
-- after an interrupt is refused)
T.test("a command step (argv) runs straight from the session's job, and means what it meant under $SHELL -c", function()
    local on, off = conn(), conn({ session = false })
    local function argv(c, list, opts)
        local o = { argv = list }
        for k, v in pairs(opts or {}) do o[k] = v end
        local r, err = c:exec(o)
        assert(r, "exec failed: " .. tostring(err))
        return r
    end
    T.eq(ok(on, "echo warm").stdout, "warm\n", "the session is open")
    local shell_pid = on.session_runner and on.session_runner.pid
    -- no login shell between the session and the program: its parent is
    -- the session shell itself (the login shell here is dash, which
    -- forks for a command it runs, so it would be the parent otherwise)
    T.eq(argv(on, { "/bin/sh", "-c", "echo $PPID" }).stdout, tostring(shell_pid) .. "\n",
        "the program's parent is the session shell (pid " .. tostring(shell_pid) .. ")")
    T.eq(argv(on, { "sh", "-c", "echo $PPID" }).stdout, tostring(shell_pid) .. "\n", "found on the PATH too")
    -- with a shell step, the login shell is still in between
    T.ok(ok(on, "/bin/sh -c 'echo $PPID'; :").stdout ~= tostring(shell_pid) .. "\n", "a shell step keeps $SHELL -c")
    -- the same answers with and without the session
    local cases = {
        { { "echo", "a\\nb", "$HOME" }, "a builtin keeps the login shell's meaning (dash's echo reads \\n)" },
        { { "FOO=bar", "env" }, "a leading assignment still assigns", function(out) return out:match("FOO=bar") end },
        { { "printf", "%s|", "two\nlines", "it's", "*" }, "quotes, newlines and globs pass as they are" },
        { { "/bin/echo", "a\\nb", "*" }, "a path" },
        { { "nosuch-cutover-cmd", "x" }, "a program that is not there: 127, as before",
          function(_, r) return r.rc == 127 and r.stderr:match("nosuch%-cutover%-cmd: not found") and "127" end },
        { { "/etc/passwd" }, "a file that is not executable: 126",
          function(_, r) return r.rc == 126 and r.stderr:match("Permission denied") and "126" end },
        { { "sh", "-c", "exit 7" }, "the exit status", function(_, r) return tostring(r.rc) end },
        { { "sh", "-c", "kill -TERM $$" }, "a signal", function(_, r) return tostring(r.rc) end },
    }
    for _, case in ipairs(cases) do
        local a, b = argv(on, case[1]), argv(off, case[1])
        if case[3] then
            T.eq(case[3](a.stdout, a), case[3](b.stdout, b), case[2] .. ": " .. a.stdout .. a.stderr)
            T.ok(case[3](a.stdout, a), case[2] .. " (seen): " .. a.stdout .. a.stderr .. " rc " .. tostring(a.rc))
        else
            T.eq(a.stdout, b.stdout, case[2])
            T.eq(a.rc, b.rc, case[2] .. ": exit status")
        end
    end
    T.eq(argv(on, { "printf", "%s|", "two\nlines", "it's", "*" }).stdout, "two\nlines|it's|*|", "printf's own output")
    on:close()
    off:close()
    T.eq(#warnings, 0, "no fallback: " .. table.concat(warnings, "; "))
end)

T.test("a step stopped by a signal and continued: the session waits for it to end", function()
    local c = conn()
    T.eq(ok(c, "echo warm").stdout, "warm\n", "the session is open")
    local marker = "cutover-stopped-" .. tostring(math.random(100000, 999999))
    -- continued 1.5 s after it stops itself (from outside the session)
    proc.run({ shell = "(sleep 1.5; pkill -CONT -f " .. marker .. ") >/dev/null 2>&1 &" })
    local r = c:exec({ argv = { "sh", "-c", "kill -STOP $$; echo resumed; exit 7", marker }, timeout = 30 })
    T.ok(r, "a result")
    T.eq(r and r.stdout, "resumed\n", "it ran on after SIGCONT")
    T.eq(r and r.rc, 7, "its own exit status, not the stop's 147")
    T.eq(ok(c, "echo $((1+1))").stdout, "2\n", "the session goes on")
    c:close()
end)

T.test("sh:recv_until on a real channel: a marker split across reads, look-alikes, data past 64 KiB, past max",
    function()
    local c = conn({ session = false })
    assert(c:open())
    local M = "\nMARK-0f\n"
    -- each printf of its own a little apart, so the bytes come in
    -- separate reads: the marker is cut in two, after a near miss
    local ch = assert(c.session:shell("printf 'abc\\nMARK-0'; sleep 0.3; printf 'e\\nMARK-'; sleep 0.3; " ..
        "printf '0f\\nnext line\\n'; printf '\\nMARK-0f\\n'; " ..
        "head -c 200000 /dev/zero | tr '\\0' z; printf '\\nMARK-0f\\n'; " ..
        "printf '0123456789X\\nMARK-0f\\n'; exec cat", { timeout = 30 }))
    T.eq(ch:recv_until(M, { max = 100, timeout = 30 }), "abc\nMARK-0e", "the bytes before the marker, a near miss kept")
    T.eq(ch:recv_line(100, { timeout = 30 }), "next line", "what follows the marker stays for the next read")
    T.eq(ch:recv_until(M, { max = 0, timeout = 30 }), "", "nothing before a marker (max 0)")
    local big = ch:recv_until(M, { max = 200000, timeout = 30 })
    T.eq(big and #big, 200000, "200,000 bytes, past the 64 KiB buffer")
    T.eq(big, string.rep("z", 200000), "all of them as sent")
    local none, err, code = ch:recv_until(M, { max = 10, timeout = 30 })
    T.eq(none, nil, "11 bytes before the marker, 10 allowed")
    T.eq(code, "protocol", "a protocol error: " .. tostring(err))
    T.ok(not pcall(ch.recv_until, ch, M, { timeout = 30 }), "max is required")
    T.ok(not pcall(ch.recv_until, ch, "", { max = 1 }), "an empty marker is refused")
    ch:close()
    c:close()
end)

T.test("M4: Ctrl-C or a timeout while the session starts: the step is not run, no fallback to a channel", function()
    local sys = require("cutover.core.sys")
    local d = S.target(T)
    -- a session shell slow to start: its bootstrap answers after 4 s
    session.SHELL = "sleep 4; exec /bin/sh"
    local ok_, e = pcall(function()
        warnings = {}
        local c = conn({ timeout = 1 })
        local r, err = sh(c, "echo ran >> " .. d .. "/m1")
        T.eq(r, nil, "timeout: no result of a step that ran: " .. tostring(err))
        T.eq(T.read(d .. "/m1"), nil, "timeout: the step never ran")
        T.eq(#warnings, 0, "timeout: no fallback: " .. table.concat(warnings, "; "))
        c:close()
        local c2 = conn()
        proc.run({ shell = "(sleep 1; kill -INT " .. sys.getpid() .. ") >/dev/null 2>&1 &" })
        r, err = sh(c2, "echo ran >> " .. d .. "/m2")
        T.eq(r, nil, "Ctrl-C: no result of a step that ran: " .. tostring(err))
        T.eq(T.read(d .. "/m2"), nil, "Ctrl-C: the step never ran")
        T.eq(#warnings, 0, "Ctrl-C: no fallback: " .. table.concat(warnings, "; "))
        c2:close()
        -- a step wrongly queued into a half-started session would run
        -- once its shell starts: wait (at most 20 s) until the slow shells
        -- have started and ended, then look again
        for _ = 1, 200 do
            if proc.run({ argv = { "pgrep", "-f", "sleep 4; exec /bin/sh" } }).stdout == "" then break end
            proc.run({ argv = { "sleep", "0.1" } })
        end
        proc.run({ argv = { "sleep", "1" } })
        T.eq(T.read(d .. "/m1"), nil, "timeout: the step never ran, also once the shell started")
        T.eq(T.read(d .. "/m2"), nil, "Ctrl-C: the step never ran, also once the shell started")
    end)
    session.SHELL = default_shell
    if not ok_ then error(e, 0) end
end)

T.done()
