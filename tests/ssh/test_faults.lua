-- Faults during real runs over SSH (issue 6): a command that stalls past
-- its timeout, a journal that cannot be written (RLIMIT_FSIZE, no mount
-- needed), authentication refused after a reboot.  Each must end with a
-- clear error naming host and step, a journal that still opens, and a run
-- that `cutover resume` finishes.  (A connection dropped mid-output and
-- output over the cap: test_rollout.lua; garbage sc output: the lab's
-- test_win_actions.lua.)
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local proc = require("cutover.core.proc")
local loop = require("cutover.core.loop")
S.install(T)

local srv = S.start(T)
srv:trust()

local function setup(n, book)
    local d = S.target(T)
    local lines = { "all:", "  vars:", "    ansible_host: " .. srv.address,
                    "    ansible_port: " .. srv.port, "    ansible_user: " .. srv.user,
                    "    ansible_ssh_private_key_file: " .. srv.key, "    dir: " .. d, "  hosts:" }
    for i = 1, n do
        lines[#lines + 1] = "    h" .. i .. ": {}"
        S.sh("mkdir -p " .. d .. "/h" .. i .. " && chown " .. S.USER .. " " .. d .. "/h" .. i)
    end
    T.write(d .. "/inv.yml", table.concat(lines, "\n") .. "\n")
    T.write(d .. "/p.yml", book)
    return d
end

local function env(d)
    return { NO_COLOR = "1", XDG_STATE_HOME = d .. "/state", HOME = d, SSH_AUTH_SOCK = "" }
end

-- cutover ARGS, optionally under a shell prefix (ulimit)
local function cutover(d, args, prefix)
    local words = {}
    for _, a in ipairs(args) do words[#words + 1] = "'" .. a:gsub("'", "'\\''") .. "'" end
    if args[1] == "run" then
        for _, a in ipairs({ "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts }) do
            words[#words + 1] = "'" .. a .. "'"
        end
    end
    return assert(proc.run({ shell = (prefix or "") .. " exec '" .. T.cutover .. "' " .. table.concat(words, " "),
                             env = env(d), timeout = 120 }))
end

-- The journal still opens and lists the run as unfinished.
local function journal_opens(d)
    local h = cutover(d, { "history" })
    T.eq(h.rc, 0, "history opens the journal: " .. h.stderr)
    T.match(h.stdout, "%d+%-%d+%-%x+%s+running", "the run is listed as unfinished")
end

-- Resumes like an operator: where a host stopped in a step, look on the
-- target whether it took effect and say so.
local function resume_until_done(d, took_effect)
    local decided = {}
    for _ = 1, 6 do
        local args = { "resume" }
        for _, a in ipairs(decided) do args[#args + 1] = a end
        local r = cutover(d, args)
        if r.rc == 0 then return r end
        local step, host = r.stdout:match("step '([%w_-]+)' was running on (h%d) when the controller stopped")
        T.ok(step, "resume stopped for a reason the operator can act on: " .. r.stdout .. r.stderr)
        -- one decision per stop, for that host (a decision already
        -- applied would decide nothing next time, and be refused)
        decided = { took_effect(host, step) and "--mark-done" or "--retry", step .. "@" .. host }
    end
    error("resume did not finish")
end

local function count(d, h) return T.read(d .. "/" .. h .. "/count") or "" end

T.test("the journal's disk is full (RLIMIT_FSIZE): clear stop, journal opens, resume finishes", function()
    local steps = { "- hosts: all", "  steps:" }
    for i = 1, 40 do
        steps[#steps + 1] = string.format('    - id: s%d\n      shell: "echo s%d >> {{ dir }}/{{ ' ..
            'inventory_hostname }}/count"', i, i)
    end
    local d = setup(2, table.concat(steps, "\n") .. "\n")
    -- ulimit -f counts 1024-byte blocks: room for the schema and a few steps
    local r = cutover(d, { "run", d .. "/p.yml" }, "ulimit -f 160;")
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.ok(r.signal == nil or r.signal == 0, "not killed by SIGXFSZ")
    local host, _ = r.stderr:match("cutover: host (h%d), step '(s%d+)': journal ")
    T.ok(host, "names host and step: " .. r.stderr)
    T.contains(r.stderr, "disk full, or a file-size limit", "says what to look at")
    T.contains(r.stderr, "cutover resume ", "says how to go on")
    T.ok(not r.stderr:find("internal error", 1, true), "not an internal error")
    T.ok(not count(d, "h1"):find("s40\n", 1, true), "the run stopped early")
    journal_opens(d)
    resume_until_done(d, function(h, s) return count(d, h):find(s .. "\n", 1, true) ~= nil end)
    for _, h in ipairs({ "h1", "h2" }) do
        local want = {}
        for i = 1, 40 do want[#want + 1] = "s" .. i end
        T.eq(count(d, h), table.concat(want, "\n") .. "\n", h .. ": every step exactly once")
    end
end)

T.test("a command stalls past its timeout: failure naming host and step, then resume", function()
    local d = setup(1, [[
- hosts: all
  steps:
    - id: before
      shell: "echo before >> {{ dir }}/h1/count"
    - id: stall
      shell:
        cmd: "if [ -e {{ dir }}/h1/stalled ]; then echo stall >> {{ dir }}/h1/count; else touch {{ dir }}/h1/stalled; echo $$ > {{ dir }}/h1/pid; sleep 60; fi"
        timeout: 5
    - id: after
      shell: "echo after >> {{ dir }}/h1/count"
]])
    -- had it waited for the stalled command, the step would have ended ok
    local r = cutover(d, { "run", d .. "/p.yml" })
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "failed%s+h1%s+stall", "names host and step")
    T.match(r.stdout, "timed out", "says it timed out")
    T.eq(count(d, "h1"), "before\n", "nothing after the stalled step ran")
    -- the remote command was stopped, not left behind
    local pid = (T.read(d .. "/h1/pid") or ""):match("%d+")
    T.ok(pid, "the stalled command started")
    -- gone, or a zombie (this machine's pid 1 may not reap orphans)
    local function alive(p)
        local stat = T.read("/proc/" .. p .. "/stat")
        return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
    end
    local gone = false
    for _ = 1, 100 do
        if not alive(pid) then gone = true; break end
        loop.sleep(0.1)
    end
    if not gone then  -- the process table, only when it helps explain a failure
        T.ok(false, "the remote command was stopped: " ..
             T.sh("ps -eo pid,ppid,pgid,sid,stat,user,cmd | grep -E \"" .. pid .. "|sleep 60\"").stdout)
    end
    local h = cutover(d, { "history" })
    T.eq(h.rc, 0, "history opens the journal")
    local again = cutover(d, { "resume" })
    T.eq(again.rc, 0, "resume finishes: " .. again.stdout .. again.stderr)
    T.eq(count(d, "h1"), "before\nstall\nafter\n", "each step once")
end)

T.test("authentication refused after a reboot: clear failure, journal opens, resume finishes", function()
    local d = setup(1, "")
    T.write(d .. "/boot_id", "boot-1\n")
    S.sh("chmod 644 " .. d .. "/boot_id")
    local saved = T.read(srv.dir .. "/authorized_keys")
    -- a root helper plays the machine: on request it drops sshd, comes
    -- back with a new boot id, and no longer accepts cutover's key
    local req = d .. "/reboot-request"
    proc.run({ shell = string.format(
        "(while [ ! -e %s ]; do sleep 0.05; done; %s; kill %s; sleep 1; " ..
        "echo boot-2 > %s/boot_id; : > %s/authorized_keys; /usr/sbin/sshd -f %s -E %s/sshd.log) >/dev/null 2>&1 &",
        req, srv:kill_sessions_sh(), srv.pid, d, srv.dir, srv.config, srv.dir) })
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: restart
      reboot:
        reboot_command: "touch %s"
        boot_id_command: "cat %s/boot_id"
        reboot_timeout: 600
        connect_timeout: 2
        sleep: 0.2
    - id: after
      shell: "echo after >> {{ dir }}/h1/count"
]], req, d))
    -- reboot_timeout is past the harness's bound: waiting it out fails the run
    local r = cutover(d, { "run", d .. "/p.yml" })
    srv.pid = (T.read(srv.dir .. "/sshd.pid") or ""):match("%d+")
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "failed%s+h1%s+restart", "names host and step")
    T.match(r.stdout, "authentication", "says authentication was refused")
    T.eq(count(d, "h1"), "", "nothing after the reboot ran")
    local h = cutover(d, { "history" })
    T.eq(h.rc, 0, "history opens the journal")
    -- the operator restores the key; resume goes on after the reboot
    T.write(srv.dir .. "/authorized_keys", saved)
    S.sh("chmod 644 " .. srv.dir .. "/authorized_keys")
    -- ... and says the reboot did happen
    local again = cutover(d, { "resume", "--mark-done", "restart" })
    T.eq(again.rc, 0, "resume finishes: " .. again.stdout .. again.stderr)
    T.eq(count(d, "h1"), "after\n", "the step after the reboot ran once")
    T.eq(T.read(d .. "/boot_id"), "boot-2\n", "no second reboot")
end)

T.done()
