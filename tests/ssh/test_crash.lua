-- Crash and resume over SSH: a two-host run is SIGKILLed at step
-- boundaries and in the middle of a step, then resumed.  Every
-- non-idempotent step must have run exactly once per host (counted on the
-- target), as in an uninterrupted run.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local json = require("cutover.core.json")
S.install(T)

local srv = S.start(T)
srv:trust()

local function setup(book)
    local d = S.target(T)
    S.sh("mkdir -p " .. d .. "/h1 " .. d .. "/h2 && chown " .. S.USER .. " " .. d .. "/h1 " .. d .. "/h2")
    T.write(d .. "/inv.yml", string.format([[
all:
  vars: { ansible_host: %s, ansible_port: %d, ansible_user: %s, ansible_ssh_private_key_file: %s, dir: %s }
  hosts:
    h1: {}
    h2: {}
]], srv.address, srv.port, srv.user, srv.key, d))
    T.write(d .. "/p.yml", book)
    return d
end

local STEPS = [[
- hosts: all
  steps:
    - id: s1
      shell: "echo s1 >> {{ dir }}/{{ inventory_hostname }}/count"
    - id: s2
      shell: "echo s2 >> {{ dir }}/{{ inventory_hostname }}/count"
    - id: s3
      shell: "echo s3 >> {{ dir }}/{{ inventory_hostname }}/count"
    - id: s4
      shell: "echo s4 >> {{ dir }}/{{ inventory_hostname }}/count"
]]

local function env(d, extra)
    local e = { XDG_STATE_HOME = d .. "/state", HOME = d, SSH_AUTH_SOCK = "" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
end

local function cutover(d, args, extra)
    local all = {}
    for _, a in ipairs(args) do all[#all + 1] = a end
    if args[1] == "run" then
        for _, a in ipairs({ "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts }) do all[#all + 1] = a end
    end
    return T.run(all, { env = env(d, extra), timeout = 120 })
end

local function count(d, h) return T.read(d .. "/" .. h .. "/count") or "" end

-- Resumes like an operator: where a host stopped at an in-flight step,
-- look at the target and say whether it took effect.
local function resume_until_done(d)
    local decided = {}
    for _ = 1, 4 do
        local args = { "resume" }
        for _, a in ipairs(decided) do args[#args + 1] = a end
        local r = cutover(d, args)
        if r.rc == 0 then return r end
        local step, host = r.stdout:match("step '(s%d)' was running on (h%d) when the controller stopped")
        T.ok(step, "resume stopped for a reason the operator can act on: " .. r.stdout .. r.stderr)
        local took = count(d, host):find(step .. "\n", 1, true) ~= nil
        -- one decision per stop, for that host (a decision already
        -- applied would decide nothing next time, and be refused)
        decided = { took and "--mark-done" or "--retry", step .. "@" .. host }
    end
    error("resume did not finish")
end

-- every boundary of h1 (h2 is wherever it is when the controller dies)
for _, k in ipairs({ "kill-before:s1", "kill-after:s1", "kill-after:s2", "kill-after:s3", "kill-after:s4" }) do
    T.test("killed at " .. k .. " on h1, resumed: each step once per host", function()
        local d = setup(STEPS)
        local r = cutover(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = k .. "@h1" })
        T.eq(r.rc, 137, "killed: " .. r.stdout .. r.stderr)
        resume_until_done(d)
        T.eq(count(d, "h1"), "s1\ns2\ns3\ns4\n", "h1")
        T.eq(count(d, "h2"), "s1\ns2\ns3\ns4\n", "h2")
    end)
end

T.test("killed in the middle of a step on both hosts, resumed with --mark-done", function()
    local d = setup([[
- hosts: all
  steps:
    - id: s1
      shell: "echo s1 >> {{ dir }}/{{ inventory_hostname }}/count"
    - id: s2
      shell: "echo s2 >> {{ dir }}/{{ inventory_hostname }}/count; touch {{ dir }}/{{ inventory_hostname }}/marker; sleep 30"
    - id: s3
      shell: "echo s3 >> {{ dir }}/{{ inventory_hostname }}/count"
]])
    local r = T.sh(string.format(
        "export XDG_STATE_HOME=%s/state HOME=%s SSH_AUTH_SOCK=; %s run %s/p.yml -i %s/inv.yml --known-hosts %s > " ..
            "%s/out 2>&1 & " ..
        "pid=$!; while [ ! -e %s/h1/marker ] || [ ! -e %s/h2/marker ]; do sleep 0.02; done; " ..
        "kill -KILL $pid; wait $pid; echo rc=$?",
        d, d, T.cutover, d, d, srv.known_hosts, d, d, d))
    T.eq(r.stdout, "rc=137\n", "killed mid-step")
    local res = cutover(d, { "resume" })
    T.eq(res.rc, 1, "both hosts stop at s2")
    T.match(res.stdout, "was running on h1", "h1 asks")
    T.match(res.stdout, "was running on h2", "h2 asks")
    res = cutover(d, { "resume", "--mark-done", "s2" })
    T.eq(res.rc, 0, "exit code: " .. res.stdout .. res.stderr)
    T.eq(count(d, "h1"), "s1\ns2\ns3\n", "h1")
    T.eq(count(d, "h2"), "s1\ns2\ns3\n", "h2")
    local hist = json.decode(cutover(d, { "history", "--format", "json" }).stdout)
    T.eq(hist.runs[1].status, "ok", "the run ended ok")
end)

T.done()
