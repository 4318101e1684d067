-- The journal, resume, locks and abort, on the local connection, with
-- real processes killed by SIGKILL.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")

-- Non-idempotent steps: each appends its name to a count file.
local BOOK = [[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> %s/count; echo one"
      register: first
    - id: s2
      shell: "echo s2 >> %s/count"
    - id: s3
      shell: "echo s3 >> %s/count; echo {{ first.stdout }}-seen > %s/registered"
    - id: s4
      shell: "echo s4 >> %s/count"
]]

local function setup()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", BOOK:format(d, d, d, d, d))
    return d
end

local function env(d, extra)
    local e = { XDG_STATE_HOME = d .. "/state" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
end

local function run(d, args, extra_env)
    return T.run(args, { env = env(d, extra_env), timeout = 60 })
end

local function count(d) return T.read(d .. "/count") or "" end

local function last_run(d)
    local r = run(d, { "history", "--format", "json" })
    local h = assert(json.decode(r.stdout))
    return h.runs[1]
end

T.test("history and show list a run, its hosts and steps", function()
    local d = setup()
    local r = run(d, { "run", d .. "/p.yml" })
    T.eq(r.rc, 0, "exit code")
    local runrec = last_run(d)
    T.eq(runrec.status, "ok", "status")
    T.eq(runrec.hosts[1].host, "localhost", "host")
    local s = run(d, { "show", runrec.id, "--format", "json" })
    local v = assert(json.decode(s.stdout))
    T.eq(#v.steps, 4, "four steps")
    T.eq(v.steps[1].step, "s1", "first step")
    T.eq(v.steps[1].status, "changed", "its status")
    T.eq(v.steps[1].result.stdout, "one", "its result")
    local text = run(d, { "show", runrec.id })
    T.match(text.stdout, "host localhost: ok", "text timeline")
    T.match(text.stdout, "changed%s+s4", "text steps")
    T.eq(fs.stat(d .. "/state/cutover/journal.db").mode, 384, "journal is 0600")
end)

-- The run's end (each host's status, the run's, its locks) is one
-- transaction: one sync, not one per host, and never some hosts' ends
-- without the others'.  Counted with strace: the WAL syncs after the
-- last result line and before the run_end event.
T.test("the run's end is recorded in one commit, whatever the number of hosts", function()
    local d = T.tmpdir()
    local hosts = {}
    for i = 1, 30 do hosts[#hosts + 1] = string.format("    h%02d: { ansible_connection: local }\n", i) end
    T.write(d .. "/inv.yml", "all:\n  hosts:\n" .. table.concat(hosts))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - command: /bin/true\n")
    local trace = d .. "/trace"
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--format", "json", "--forks", "30" },
                    { env = env(d, { ASAN_OPTIONS = T.asan_no_leak_check() }), timeout = 60,
                      wrap = { "strace", "-e", "trace=fsync,fdatasync,write", "-s", "1000000", "-o", trace } })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    local text = T.read(trace)
    local last_result, run_end = 0, nil
    local lines = {}
    for line in text:gmatch("[^\n]+") do
        lines[#lines + 1] = line
        -- strace shows a write's text escaped: \"event\":\"run_end\"
        if line:find("write(1,", 1, true) then
            if line:find("run_end", 1, true) then run_end = run_end or #lines
            elseif line:find("host_result", 1, true) then last_result = #lines end
        end
    end
    T.ok(last_result > 0 and run_end, "both lines found in the trace")
    local syncs = 0
    for i = last_result + 1, run_end - 1 do
        if lines[i]:find("fdatasync(", 1, true) or lines[i]:find("fsync(", 1, true) then syncs = syncs + 1 end
    end
    T.ok(syncs >= 1 and syncs <= 2, "syncs between the last result and run_end: " .. syncs)
    local runrec = last_run(d)
    T.eq(runrec.status, "ok", "the run's status")
    T.eq(#runrec.hosts, 30, "every host's status")
end)

T.test("--no-journal records nothing", function()
    local d = setup()
    local r = run(d, { "run", d .. "/p.yml", "--no-journal" })
    T.eq(r.rc, 0, "exit code")
    T.eq(fs.stat(d .. "/state/cutover/journal.db"), nil, "no journal file")
end)

-- every boundary: before the first step, between steps, after the last
for _, k in ipairs({ "kill-before:s1", "kill-after:s1", "kill-after:s2", "kill-after:s3", "kill-after:s4" }) do
    T.test("SIGKILL at " .. k .. ", then resume: every step ran exactly once", function()
        local d = setup()
        local r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = k .. "@localhost" })
        T.eq(r.rc, 128 + 9, "killed")
        local rec = last_run(d)
        T.eq(rec.status, "running", "the journal says the run never ended")
        r = run(d, { "resume" })
        T.eq(r.rc, 0, "resume exit code: " .. r.stdout .. r.stderr)
        if k ~= "kill-before:s1" then
            T.contains(r.stdout, "done before the restart", "finished steps replayed")
        end
        T.eq(count(d), "s1\ns2\ns3\ns4\n", "each step once")
        T.eq(T.read(d .. "/registered"), "one-seen\n", "registered value restored")
        T.eq(last_run(d).status, "ok", "the run is now ok")
        r = run(d, { "resume" })
        T.eq(r.rc, 2, "nothing left to resume")
    end)
end

-- The moment group commit opened (issue 13): a step's result is written
-- but rides with the next intent, and the controller dies before that
-- commit.  The step took effect; the journal must not say it did not
-- (or lose it): it reads as in flight, so resume asks, and nothing runs
-- twice or is skipped.
T.test("SIGKILL after a step's result was written, before its commit: resume asks, never runs it twice", function()
    local d = setup()
    local r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = "kill-unrecorded:s2@localhost" })
    T.eq(r.rc, 128 + 9, "killed")
    T.eq(count(d), "s1\ns2\n", "s2 ran, then the kill")
    local id = last_run(d).id
    r = run(d, { "resume" })
    if r.rc == 1 then
        -- the result did not reach the disk: s2 is in flight
        T.contains(r.stdout, "step 's2' was running on localhost when the controller stopped", "asks about s2")
        T.eq(count(d), "s1\ns2\n", "s2 not run again on its own")
        r = run(d, { "resume", id, "--mark-done", "s2" })
    end
    T.eq(r.rc, 0, "resume finishes: " .. r.stdout .. r.stderr)
    T.eq(count(d), "s1\ns2\ns3\ns4\n", "each step once")
    T.eq(T.read(d .. "/registered"), "one-seen\n", "s1's registered value restored")
end)

-- Starts a run in the background that is SIGKILLed once the marker file
-- exists (the step wrote it: a deterministic point in the middle).
local function kill_mid(d, book_args)
    local r = T.sh(string.format(
        "XDG_STATE_HOME=%s/state %s run %s > %s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s/marker ]; do sleep 0.02; done; kill -KILL $pid; wait $pid; echo rc=$?",
        d, T.cutover, book_args, d, d))
    T.eq(r.stdout, "rc=137\n", "killed in the middle of the step")
end

T.test("killed in the middle of a non-idempotent step: resume stops and asks, --mark-done goes on", function()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", string.format([[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> %s/count"
    - id: s2
      shell: "echo s2 >> %s/count; touch %s/marker; sleep 30"
    - id: s3
      shell: "echo s3 >> %s/count"
]], d, d, d, d))
    kill_mid(d, d .. "/p.yml")
    local r = run(d, { "resume" })
    T.eq(r.rc, 1, "the host stops")
    local id = last_run(d).id
    T.contains(r.stdout, "step 's2' was running on localhost when the controller stopped", "says what happened")
    T.contains(r.stdout, "cutover resume " .. id .. " --mark-done s2", "how to go on")
    T.eq(count(d), "s1\ns2\n", "s2 not run again")
    r = run(d, { "resume", id, "--mark-done", "s2" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout)
    T.eq(count(d), "s1\ns2\ns3\n", "each step once")
    local show = run(d, { "show", id })
    T.match(show.stdout, "mark%-done%s+s2@localhost by", "the decision is recorded")
    local _, notes = show.stdout:gsub("marked done by", "")
    T.eq(notes, 1, "the step's line says 'marked done' once: " .. show.stdout)
    -- the events table: what (if any) starts in one column, then "by"
    local events = show.stdout:match("\nevents:\n(.*)$")
    local column
    for line in events:gmatch("[^\n]+") do
        local head = line:match("^(  %d+%-%d+%-%d+ %d+:%d+:%d+  %S+%s+)")
        T.ok(head, "an event line: " .. line)
        column = column or #head
        T.eq(#head, column, "aligned: " .. line)
    end
    T.match(events, "  resume     by ", "an event without a step or host")
end)

T.test("killed in the middle: --retry runs the step again", function()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", string.format([[
- hosts: localhost
  steps:
    - id: s1
      shell: "if [ ! -e %s/marker ]; then touch %s/marker; sleep 30; fi; echo s1 >> %s/count"
    - id: s2
      shell: "echo s2 >> %s/count"
]], d, d, d, d))
    kill_mid(d, d .. "/p.yml")
    local r = run(d, { "resume", "--retry", "s1" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout)
    T.eq(count(d), "s1\ns2\n", "s1 ran to its end once")
end)

T.test("an idempotent step in flight runs again without asking", function()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", string.format([[
- hosts: localhost
  steps:
    - id: file
      copy: { dest: "%s/f", content: "x" }
    - id: wait
      wait_for: { path: "%s/never", timeout: 30 }
      when: not defined("skip_wait")
]], d, d))
    local r = T.sh(string.format(
        "XDG_STATE_HOME=%s/state %s run %s/p.yml > %s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s/f ]; do sleep 0.02; done; sleep 0.3; kill -KILL $pid; wait $pid; echo rc=$?",
        d, T.cutover, d, d, d))
    T.eq(r.stdout, "rc=137\n", "killed while waiting")
    T.write(d .. "/never", "")
    r = run(d, { "resume" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout)
    T.match(r.stdout, "ok%s+localhost%s+wait", "wait_for ran again")
end)

T.test("a finished step that changed: resume refuses (exit 3) unless --accept-changed", function()
    local d = setup()
    local r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = "kill-after:s2@localhost" })
    T.eq(r.rc, 137, "killed")
    T.write(d .. "/p.yml", (T.read(d .. "/p.yml"):gsub("echo s1 >>", "echo S1 >>")))
    r = run(d, { "resume" })
    T.eq(r.rc, 3, "refused")
    T.contains(r.stderr, "step 's1' finished in run", "names the step")
    T.contains(r.stderr, "--accept-changed", "how to go on")
    T.eq(count(d), "s1\ns2\n", "nothing ran")
    r = run(d, { "resume", "--accept-changed" })
    T.eq(r.rc, 0, "accepted")
    T.eq(count(d), "s1\ns2\ns3\ns4\n", "the rest ran once")
end)

T.test("locks: a second run on the same host is refused while the first runs; a dead holder is named and unlocked",
    function()
    local d = T.tmpdir()
    T.write(d .. "/slow.yml", string.format(
        "- hosts: localhost\n  steps:\n    - shell: \"touch %s/marker; sleep 30\"\n", d))
    T.write(d .. "/quick.yml", "- hosts: localhost\n  steps:\n    - command: 'true'\n")
    local r = T.sh(string.format(
        "export XDG_STATE_HOME=%s/state; %s run %s/slow.yml > %s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s/marker ]; do sleep 0.02; done; " ..
        "%s run %s/quick.yml > %s/second 2>&1; echo second=$?; kill -KILL $pid; wait $pid; " ..
        "%s run %s/quick.yml > %s/third 2>&1; echo third=$?",
        d, T.cutover, d, d, d, T.cutover, d, d, T.cutover, d, d))
    T.contains(r.stdout, "second=3", "refused while running")
    local first = last_run(d)
    T.contains(T.read(d .. "/second"), "host localhost is locked by run ", "names the holder")
    T.contains(T.read(d .. "/second"), "refusing to run", "live holder")
    T.contains(r.stdout, "third=3", "still refused after the holder died")
    T.contains(T.read(d .. "/third"), "that controller is gone", "dead holder detected")
    T.contains(T.read(d .. "/third"), "cutover unlock localhost", "how to break it")
    local u = run(d, { "unlock", "localhost" })
    T.eq(u.rc, 0, "unlocked: " .. u.stdout .. u.stderr)
    local q = run(d, { "run", d .. "/quick.yml" })
    T.eq(q.rc, 0, "runs after unlock")
    local a = run(d, { "abort", first.id })
    T.eq(a.rc, 0, "abort: " .. a.stdout .. a.stderr)
    local res = run(d, { "resume", first.id })
    T.eq(res.rc, 2, "an aborted run is not resumed")
    T.contains(res.stderr, "is aborted", "says so")
end)

T.test("a journal of a newer format is refused, not misread", function()
    local d = T.tmpdir()
    local journal = require("cutover.core.journal")
    local db = assert(journal.open(d .. "/j.db"))
    assert(db:exec("PRAGMA user_version = 99"))
    db:close()
    local r = run(d, { "history", "--journal", d .. "/j.db" })
    T.eq(r.rc, 2, "exit code")
    T.contains(r.stderr, "has format 99; this cutover reads format 2 and older", "message")
end)

T.test("fault injection is not in the product: cutover ignores CUTOVER_FAULT", function()
    local d = setup()
    local proc = require("cutover.core.proc")
    -- the shipped binary itself, not the test build T.run picks for faults
    local r = assert(proc.run({ argv = { T.cutover, "run", d .. "/p.yml" }, timeout = 60,
                                env = { NO_COLOR = "1", XDG_STATE_HOME = d .. "/state",
                                        CUTOVER_FAULT = "kill-after:s1@localhost" } }))
    T.eq(r.rc, 0, "not killed: " .. tostring(r.signal) .. " " .. r.stderr)
    T.eq(count(d), "s1\ns2\ns3\ns4\n", "every step ran once")
    -- and the test build does stop there
    d = setup()
    r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = "kill-after:s1@localhost" })
    T.eq(r.signal, 9, "cutover-faults killed itself")
    T.eq(count(d), "s1\n", "at the boundary after s1")
end)

T.test("a lock whose run was never recorded and whose holder is gone does not block", function()
    -- a controller killed between taking its locks and recording its run
    -- left exactly this (found by the crash campaign); nothing can resume
    -- or abort a run that does not exist
    local d = setup()
    local r = run(d, { "run", d .. "/p.yml" })
    T.eq(r.rc, 0, "a first run makes the journal: " .. r.stderr)
    local journal = require("cutover.core.journal")
    local db = assert(journal.open(d .. "/state/cutover/journal.db"))
    local boot = T.read("/proc/sys/kernel/random/boot_id"):gsub("%s+$", "")
    local node = T.sh("uname -n").stdout:gsub("%s+$", "")
    -- a pid that is surely gone: a finished child's
    local gone = tonumber(T.sh("sh -c 'echo $$'").stdout)
    for _, key in ipairs({ "localhost", " run 20991231-000000-dead" }) do
        assert(db:exec("INSERT OR REPLACE INTO locks (host, run, pid, controller, boot, os_user, since) " ..
                       "VALUES ('" .. key .. "', '20991231-000000-dead', " .. gone .. ", '" .. node ..
                       "', '" .. boot .. "', 'root', 0)"))
    end
    db:close()
    T.write(d .. "/count", "")
    r = run(d, { "run", d .. "/p.yml" })
    T.eq(r.rc, 0, "the stale lock is taken over: " .. r.stderr)
    T.eq(count(d), "s1\ns2\ns3\ns4\n", "the run ran")
end)

T.done()
