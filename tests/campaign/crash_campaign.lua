-- Crash campaign (issue 10): 3 SSH hosts behind a real sshd, a playbook of
-- non-idempotent steps that append to a counter file on each host, and
-- the controller killed with SIGKILL at random moments, in the run and in
-- the resumes.  The operator's per-host decisions are scripted as a
-- careful operator would make them: where a host stopped at an in-flight
-- step, look at that host's counter and say --mark-done STEP@HOST (it
-- took effect) or --retry STEP@HOST (it did not).  Every trial must end
-- with every step exactly once per host.
--
--   build/cutover_luatest tests/campaign/crash_campaign.lua \
--       $PWD/build/cutover $PWD/tests [TRIALS] [SEED]
-- ctest runs it with a few trials (label campaign); the closing line is
-- "N trials, M failed".
local binary, tests_dir, trials, seed = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local proc = require("cutover.core.proc")
local loop = require("cutover.core.loop")
S.install(T)

trials = tonumber(trials) or 50
seed = tonumber(seed) or os.time()
math.randomseed(seed)
print(string.format("# %d trials, seed %d", trials, seed))

local srv = S.start(T)
srv:trust()

local HOSTS = { "h1", "h2", "h3" }
local STEPS = 6
local BOOK = { "- hosts: all\n  steps:\n" }
for i = 1, STEPS do
    -- a short sleep on either side of the append gives the kill a chance
    -- to land before, during and after the change
    BOOK[#BOOK + 1] = string.format(
        "    - id: s%d\n      shell: \"sleep 0.0%d; echo s%d >> {{ dir }}/{{ inventory_hostname }}/count; sleep " ..
            "0.0%d\"\n",
        i, i % 10, i, (i * 3) % 10)
end
BOOK = table.concat(BOOK)
local WANT = ""
for i = 1, STEPS do WANT = WANT .. "s" .. i .. "\n" end

local function setup()
    local d = S.target(T)
    local dirs = {}
    for _, h in ipairs(HOSTS) do dirs[#dirs + 1] = d .. "/" .. h end
    S.sh("mkdir -p " .. table.concat(dirs, " ") .. " && chown " .. S.USER .. " " .. table.concat(dirs, " "))
    T.write(d .. "/inv.yml", string.format([[
all:
  vars: { ansible_host: %s, ansible_port: %d, ansible_user: %s, ansible_ssh_private_key_file: %s, dir: %s }
  hosts:
    h1: {}
    h2: {}
    h3: {}
]], srv.address, srv.port, srv.user, srv.key, d))
    T.write(d .. "/p.yml", BOOK)
    return d
end

-- Runs cutover, killed with SIGKILL after kill_after seconds (nil: never).
local function cutover(d, args, kill_after)
    local argv = {}
    if kill_after then
        for _, a in ipairs({ "timeout", "-s", "KILL", string.format("%.3f", kill_after) }) do argv[#argv + 1] = a end
    end
    argv[#argv + 1] = T.cutover
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    if args[1] == "run" then
        for _, a in ipairs({ "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts }) do argv[#argv + 1] = a end
    end
    return assert(proc.run({ argv = argv, timeout = 120,
                             env = { NO_COLOR = "1", XDG_STATE_HOME = d .. "/state", HOME = d, SSH_AUTH_SOCK = "" } }))
end

local function count(d, h) return T.read(d .. "/" .. h .. "/count") or "" end

-- One trial; returns nil | what went wrong.
local function trial(n)
    local d = setup()
    local kill = 0.05 + math.random() * 1.2
    local r = cutover(d, { "run", d .. "/p.yml" }, kill)
    local log = { string.format("run killed after %.2fs: rc %s", kill, tostring(r.rc)) }
    local decisions = {}
    for round = 1, 12 do
        if r.rc == 0 then break end  -- the run (or the last resume) finished
        -- a third of the resumes are killed too
        local rkill = (round <= 6 and math.random() < 0.33) and (0.05 + math.random() * 0.6) or nil
        local args = { "resume" }
        for _, a in ipairs(decisions) do args[#args + 1] = a end
        r = cutover(d, args, rkill)
        log[#log + 1] = string.format("resume %s%s: rc %s", table.concat(decisions, " "),
            rkill and string.format(" (killed after %.2fs)", rkill) or "", tostring(r.rc))
        if r.stderr:find("no unfinished run", 1, true) then
            local h = cutover(d, { "history", "--format", "json" })
            if h.stdout:find('"id"', 1, true) then
                -- the run was recorded and has finished: nothing to do
                r = { rc = 0, stdout = "", stderr = "" }
            else
                -- killed before the run was recorded: nothing ran (the run
                -- and its locks are recorded in one transaction); start again
                r = cutover(d, { "run", d .. "/p.yml" }, rkill)
                log[#log + 1] = "run again: rc " .. tostring(r.rc)
            end
        end
        if r.rc == 0 then break end
        decisions = {}
        -- a controller killed by SIGKILL cannot stop the command it had
        -- started over SSH: it finishes on the host after the kill (every
        -- step here takes under 0.2 s).  Look only once it must be over,
        -- as an operator checks the host is quiet before deciding.
        if r.stdout:find("was running on", 1, true) then loop.sleep(1) end
        for step, host in r.stdout:gmatch("step '(s%d)' was running on (h%d) when the controller stopped") do
            local took = count(d, host):find(step .. "\n", 1, true) ~= nil
            decisions[#decisions + 1] = took and "--mark-done" or "--retry"
            decisions[#decisions + 1] = step .. "@" .. host
        end
        if r.stderr:find("nothing to resume", 1, true) then break end
    end
    if r.rc ~= 0 and not (r.stderr or ""):find("nothing to resume", 1, true) then
        return "trial " .. n .. ": did not finish: " .. table.concat(log, "; ") .. "\n" .. r.stdout:sub(-1500) ..
            r.stderr
    end
    for _, h in ipairs(HOSTS) do
        local got = count(d, h)
        if got ~= WANT then
            return string.format("trial %d: %s ran %q, want every step once (%s)", n, h, got, table.concat(log, "; "))
        end
    end
    return nil
end

local failed = 0
T.test("crash campaign: every step exactly once per host", function()
    for n = 1, trials do
        local err = trial(n)
        if err then
            failed = failed + 1
            print("# " .. err)
        end
    end
    print(string.format("%d trials, %d failed", trials, failed))
    T.eq(failed, 0, "failed trials")
end)

T.done()
