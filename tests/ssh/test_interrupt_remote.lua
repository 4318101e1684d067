-- Safety item 5: Ctrl-C (SIGINT), SIGTERM or SIGHUP during a step over
-- SSH must stop the remote command (its process group gets TERM, then
-- KILL after a grace period) before cutover exits 130, and the journal
-- must record the step as interrupted.  Real signals, a real sshd, three
-- hosts each running `sleep 6; echo late >> F`; after the controller has
-- exited we wait past the 6 s and check that F never got the line.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local loop = require("cutover.core.loop")
S.install(T)

local srv = S.start(T)
srv:trust()

local function setup(step)
    local d = S.target(T)
    if type(step) == "function" then step = step(d) end
    T.write(d .. "/inv.yml", string.format([[
all:
  vars: { ansible_host: %s, ansible_port: %d, ansible_user: %s, ansible_ssh_private_key_file: %s }
  hosts:
    h1: {}
    h2: {}
    h3: {}
]], srv.address, srv.port, srv.user, srv.key))
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: slow
      shell: "%s"
    - id: after
      shell: "echo after >> %s/after"
]], "echo started >> " .. d .. "/started; " .. (step or ("sleep 6; echo late >> " .. d .. "/F")), d))
    return d
end

-- Starts cutover in the background (under `prefix`, e.g. nohup), waits
-- until all three remote commands run, sends sig, and waits for cutover.
-- Returns cutover's exit code and output, and the second the signal went.
local function run_and_signal(d, sig, prefix)
    local script = string.format([[
cd %s
XDG_STATE_HOME=%s/state HOME=%s SSH_AUTH_SOCK= NO_COLOR=1 %s %s run p.yml -i inv.yml --known-hosts %s >out 2>&1 &
pid=$!
i=0
# until the three remote commands have started
while [ "$(cat started 2>/dev/null | wc -l)" -lt 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
wc -l < started > seen
sleep 1
kill -%s $pid
wait $pid
echo $? > rc
]], d, d, d, prefix or "", T.cutover, srv.known_hosts, sig)
    local t0 = loop.now()
    local r = T.sh(script)
    T.eq(r.rc, 0, "driver script: " .. r.stdout .. r.stderr)
    return tonumber(T.read(d .. "/rc")), T.read(d .. "/out") or "", t0, T.read(d .. "/seen")
end

-- Waits until 8 s after t0 (the remote sleep would have ended at ~6 s).
local function wait_past(t0)
    while loop.now() < t0 + 8 do loop.sleep(0.2) end
end

local function journal_says_interrupted(d, out)
    local run = out:match("%[run ([%w%-]+)%]")
    T.ok(run, "a run id in the output: " .. out)
    local r = T.run({ "show", run }, { env = { XDG_STATE_HOME = d .. "/state", HOME = d } })
    T.eq(r.rc, 0, "cutover show: " .. r.stdout .. r.stderr)
    for _, h in ipairs({ "h1", "h2", "h3" }) do
        T.contains(r.stdout, "host " .. h .. ": interrupted at slow", "journal, " .. h .. ": " .. r.stdout)
    end
    local n = 0
    for _ in r.stdout:gmatch("interrupted%s+slow") do n = n + 1 end
    T.eq(n, 3, "the step is recorded as interrupted on each host: " .. r.stdout)
end

for _, sig in ipairs({ "INT", "TERM", "HUP" }) do
    T.test("SIG" .. sig .. " during a step over SSH stops the remote command on every host", function()
        local d = setup()
        local rc, out, t0, seen = run_and_signal(d, sig)
        T.eq(seen, "3\n", "the three remote commands were running when the signal went")
        T.eq(rc, 130, "exit code: " .. out)
        wait_past(t0)
        T.eq(T.read(d .. "/F"), nil, "the remote commands never completed (F has no line)")
        T.eq(T.read(d .. "/after"), nil, "no later step started")
        T.eq(S.sh("pgrep -u " .. S.USER .. " -f 'late >> " .. d .. "/[F]' || true"), "",
            "nothing left running on the host")
        journal_says_interrupted(d, out)
    end)
end

T.test("SIGINT with the hosts behind a jump host: the remote commands are stopped too", function()
    local d = setup()
    local jump = string.format("%s@%s:%d", srv.user, srv.address, srv.port)
    local inv = T.read(d .. "/inv.yml"):gsub("ansible_ssh_private_key_file", "cutover_proxy_jump: \"" .. jump ..
        "\", ansible_ssh_private_key_file")
    T.write(d .. "/inv.yml", inv)
    local rc, out, t0, seen = run_and_signal(d, "INT")
    T.eq(seen, "3\n", "the three remote commands were running when the signal went")
    T.eq(rc, 130, "exit code: " .. out)
    wait_past(t0)
    T.eq(T.read(d .. "/F"), nil, "the remote commands never completed (F has no line)")
    journal_says_interrupted(d, out)
end)

T.test("a remote command that ignores TERM gets KILL after the grace period", function()
    local d = setup(function(d) return "trap '' TERM; sleep 12; echo late >> " .. d .. "/F" end)
    local rc, out, t0, seen = run_and_signal(d, "INT")
    T.eq(seen, "3\n", "the three remote commands were running when the signal went")
    T.eq(rc, 130, "exit code: " .. out)
    while loop.now() < t0 + 14 do loop.sleep(0.2) end
    T.eq(T.read(d .. "/F"), nil, "the remote commands never completed (F has no line)")
    T.eq(S.sh("pgrep -u " .. S.USER .. " -f 'late >> " .. d .. "/[F]' || true"), "", "nothing left running on the host")
end)

T.test("a cmd.exe host: the output says plainly that the command may still be running", function()
    -- (the loopback sshd runs the raw line with /bin/sh; cutover treats
    -- the host as cmd.exe, which has no kill command to send)
    local d = setup()
    local inv = T.read(d .. "/inv.yml"):gsub("ansible_ssh_private_key_file",
        "ansible_shell_type: cmd, ansible_ssh_private_key_file")
    T.write(d .. "/inv.yml", inv)
    local rc, out, t0 = run_and_signal(d, "INT")
    T.eq(rc, 130, "exit code: " .. out)
    for _, h in ipairs({ "h1", "h2", "h3" }) do
        T.contains(out, "interrupted; the command may still be running on " .. h, "the warning for " .. h .. ": " ..
            out)
    end
    wait_past(t0)
end)

T.test("SIGHUP under nohup (ignored) does not stop the run", function()
    local d = setup()
    local rc, out, t0 = run_and_signal(d, "HUP", "nohup")
    T.eq(rc, 0, "exit code: " .. out)
    wait_past(t0)
    T.eq(T.read(d .. "/F"), "late\nlate\nlate\n", "the commands completed")
    T.eq(T.read(d .. "/after"), "after\nafter\nafter\n", "the next step ran")
end)

T.done()
