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
local loop = require("cutover.core.loop")
local sshconn = require("cutover.connection.ssh")
S.install(T)

local warnings = {}
sshconn.on_warning = function(msg) warnings[#warnings + 1] = msg end

local function conn(srv, extra)
    local st = { host = srv.address, port = srv.port, user = srv.user, keys = { srv.key },
                 agent = false, known_hosts = srv.known_hosts, timeout = 30 }
    for k, v in pairs(extra or {}) do st[k] = v end
    return sshconn.new("h1", st)
end

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
    T.eq(ok(c, "cat /proc/$PPID/comm").stdout, "sh\n", "the session is on")
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
    T.eq(ok(c, "cat /proc/$PPID/comm").stdout, "sh\n", "it was the session that ran them")
    T.eq(#warnings, 0, "no fallback: " .. table.concat(warnings, "; "))
    c:close()
end)

T.done()
