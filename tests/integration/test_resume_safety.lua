-- Safety of resume (issue 10): concurrent claims, the resume guard inside
-- block/rescue, damaged journals, a changed playbook, per-host decisions,
-- locks on machines.  Real processes, a real SQLite file, real signals.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local json = require("cutover.core.json")

local function env(d, extra)
    local e = { XDG_STATE_HOME = d .. "/state" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
end

local function run(d, args, extra_env, cwd)
    return T.run(args, { env = env(d, extra_env), timeout = 60, cwd = cwd })
end

local function count(d, name) return T.read(d .. "/" .. (name or "count")) or "" end

local function last_run(d)
    local r = run(d, { "history", "--format", "json" })
    local h = assert(json.decode(r.stdout), r.stdout .. r.stderr)
    return h.runs[1]
end

-- Starts two cutover commands at the same moment (both wait for a start
-- file, then exec), waits for both; returns their exit codes and output.
local function together(d, a, b)
    local function cmd(args, tag)
        return string.format("( while [ ! -e %s/go ]; do sleep 0.005; done; exec %s %s ) > %s/%s.out 2>&1 & p%s=$!; ",
            d, T.cutover, args, d, tag, tag)
    end
    local r = T.sh(string.format("export XDG_STATE_HOME=%s/state NO_COLOR=1; rm -f %s/go; %s%s" ..
        "sleep 0.1; touch %s/go; wait $pa; echo a=$?; wait $pb; echo b=$?",
        d, d, cmd(a, "a"), cmd(b, "b"), d))
    return tonumber(r.stdout:match("a=(%d+)")), tonumber(r.stdout:match("b=(%d+)")),
        T.read(d .. "/a.out") or "", T.read(d .. "/b.out") or ""
end

local THREE_STEPS = [[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> @D@/count"
    - id: s2
      shell: "echo s2 >> @D@/count"
    - id: s3
      shell: "echo s3 >> @D@/count"
]]

-- Item 2: two resumes of one crashed run, started together.
T.test("safety 2: two resumes of the same crashed run started together: every step exactly once", function()
    for trial = 1, 6 do
        local d = T.tmpdir()
        T.write(d .. "/p.yml", (string.format([[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> @D@/count"
    - id: s2
      shell: "echo s2 >> @D@/count; sleep 0.05"
    - id: s3
      shell: "echo s3 >> @D@/count; sleep 0.05"
    - id: s4
      shell: "echo s4 >> @D@/count"
]]):gsub("@D@", d)))
        local r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = "kill-after:s1@localhost" })
        T.eq(r.rc, 137, "killed")
        local id = last_run(d).id
        local a, b, aout, bout = together(d, "resume " .. id, "resume " .. id)
        T.eq(count(d), "s1\ns2\ns3\ns4\n", "trial " .. trial .. ": each step once (a=" .. tostring(a) ..
             " b=" .. tostring(b) .. ")\n" .. aout .. "\n----\n" .. bout)
        local codes = { a, b }
        table.sort(codes)
        T.eq(codes[1], 0, "trial " .. trial .. ": one resume ran\n" .. aout .. "\n----\n" .. bout)
        local loser = a == 0 and bout or aout
        if codes[2] == 2 then
            -- on a busy machine the second can start only after the first
            -- has ended the run: then it is told there is nothing to resume
            T.contains(loser, "run " .. id .. " is ok; there is nothing to resume",
                       "trial " .. trial .. ": the late one")
        else
            T.eq(codes[2], 3, "trial " .. trial .. ": the other was refused (exit 3)\n" .. aout .. "\n----\n" .. bout)
            T.contains(loser, "run " .. id, "the refusal names the run: " .. loser)
            T.match(loser, "pid %d+", "with its pid: " .. loser)
        end
        T.eq(last_run(d).status, "ok", "trial " .. trial .. ": the run ended ok\n" .. aout .. "\n----\n" .. bout)
    end
end)

T.test("safety 2: a resume that chose the run while it was unfinished, and finds it finished at claim time, is " ..
    "refused (exit 3)", function()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", (THREE_STEPS:gsub("@D@", d)))
    local r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = "kill-after:s1@localhost" })
    T.eq(r.rc, 137, "killed")
    local id = last_run(d).id
    -- B stops between choosing the run and claiming it (a test hook) ...
    r = T.sh(string.format(
        "export XDG_STATE_HOME=%s/state NO_COLOR=1; CUTOVER_FAULT=wait-before-claim:%s/go %s resume > %s/b.out " ..
            "2>&1 & b=$!; " ..
        "n=0; while [ ! -e %s/go.waiting ] && [ $n -lt 1500 ]; do sleep 0.02; n=$((n+1)); done; " ..
        -- ... while A resumes the run to its end
        "%s resume %s > %s/a.out 2>&1; echo a=$?; touch %s/go; wait $b; echo b=$?",
        d, d, (T.cutover:gsub("cutover$", "cutover-faults")), d, d, T.cutover, id, d, d))
    local bout = T.read(d .. "/b.out") or ""
    T.contains(r.stdout, "a=0", "A finished the run: " .. (T.read(d .. "/a.out") or ""))
    T.contains(r.stdout, "b=3", "B refused: " .. bout)
    T.contains(bout, "run " .. id .. " is ok now (ended by pid ", "names who ended it: " .. bout)
    T.eq(count(d), "s1\ns2\ns3\n", "each step once")
end)

-- Starts a run in the background and SIGKILLs it once the marker file
-- exists (a step wrote it: a deterministic point in the middle).
local function kill_mid(d, book, marker)
    local r = T.sh(string.format(
        "XDG_STATE_HOME=%s/state %s run %s > %s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s ]; do sleep 0.02; done; kill -KILL $pid; wait $pid; echo rc=$?",
        d, T.cutover, book, d, marker or (d .. "/marker")))
    T.eq(r.stdout, "rc=137\n", "killed in the middle of the step")
end

-- Item 9: the "will not run it again" stop is not a step failure that a
-- rescue handles.
T.test("safety 9: the resume guard inside block/rescue stops the host; rescue and always do not run; still " ..
    "resumable", function()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", (([[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> @D@/count"
    - id: guarded
      block:
        - id: s2
          shell: "echo s2 >> @D@/count; touch @D@/marker; sleep 30"
        - id: s3
          shell: "echo s3 >> @D@/count"
      rescue:
        - id: r1
          shell: "echo rescue >> @D@/count"
      always:
        - id: a1
          shell: "echo always >> @D@/count"
    - id: s4
      shell: "echo s4 >> @D@/count"
]]):gsub("@D@", d)))
    kill_mid(d, d .. "/p.yml")
    local id = last_run(d).id
    local r = run(d, { "resume", id })
    T.eq(r.rc, 1, "the host stops: " .. r.stdout .. r.stderr)
    T.contains(r.stdout, "step 's2' was running on localhost when the controller stopped", "says why")
    T.eq(count(d), "s1\ns2\n", "neither rescue nor always ran, nothing after")
    local rec = last_run(d)
    T.eq(rec.status, "failed", "the run is not ok")
    T.eq(rec.hosts[1].status, "attention", "the host waits for a decision")
    r = run(d, { "resume", id })
    T.eq(r.rc, 1, "asks again")
    T.eq(count(d), "s1\ns2\n", "still nothing ran")
    r = run(d, { "resume", id, "--mark-done", "s2" })
    T.eq(r.rc, 0, "goes on once decided: " .. r.stdout .. r.stderr)
    T.eq(count(d), "s1\ns2\ns3\nalways\ns4\n", "the rest once, no rescue")
end)

-- Item 10: a damaged journal is not trusted.
local function crashed_run(d)
    T.write(d .. "/p.yml", (([[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> @D@/count"
    - id: s2
      shell: "echo s2 >> @D@/count"
    - id: s3
      shell: "echo s3 >> @D@/count"
]]):gsub("@D@", d)))
    local r = run(d, { "run", d .. "/p.yml" }, { CUTOVER_FAULT = "kill-after:s2@localhost" })
    T.eq(r.rc, 137, "killed")
    return last_run(d).id
end

-- Overwrites the header of the page that holds the steps table (after
-- moving everything from the WAL into the main file).
local function damage(path)
    local core = require("cutover.core.journal")
    local db = assert(core.open(path))
    assert(db:rows("PRAGMA wal_checkpoint(TRUNCATE)"))
    local size = assert(db:rows("PRAGMA page_size"))[1].page_size
    local root = assert(db:rows("SELECT rootpage FROM sqlite_schema WHERE name = 'steps'"))[1].rootpage
    db:close()
    T.ok(root > 1, "the steps table has its own page")
    local r = T.sh(string.format(
        "printf 'garbage-garbage-garbage-garbage!' | dd of=%s bs=1 seek=%d conv=notrunc 2>/dev/null && echo done",
        path, (root - 1) * size))
    T.eq(r.stdout, "done\n", "damaged")
end

T.test("safety 10: a damaged journal is refused by resume, show and apply", function()
    local d = T.tmpdir()
    local id = crashed_run(d)
    local path = d .. "/state/cutover/journal.db"
    -- a plan to apply later, recorded before the damage
    local p = run(d, { "plan", d .. "/p.yml", "-o", d .. "/plan.json", "--no-journal" })
    T.eq(p.rc, 0, "plan: " .. p.stdout .. p.stderr)
    damage(path)
    local r = run(d, { "resume", id })
    T.eq(r.rc, 3, "resume refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, "journal " .. path .. " is damaged", "names the file")
    T.not_contains(r.stderr, "traceback", "no traceback")
    T.eq(count(d), "s1\ns2\n", "nothing ran")
    r = run(d, { "show", id })
    T.eq(r.rc, 3, "show refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, "is damaged", "says why")
    r = run(d, { "apply", d .. "/plan.json" })
    T.eq(r.rc, 3, "apply refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, "is damaged", "says why")
    T.eq(count(d), "s1\ns2\n", "still nothing ran")
end)

-- Item 11: resume runs the run's own playbook and files, or refuses.
local THREE = [[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> @D@/count"
    - id: s2
      shell: "echo s2 >> @D@/count"
    - id: s3
      shell: "echo s3 >> @D@/count"
]]

T.test("safety 11: resume from another folder runs the run's playbook (recorded absolute), not the one there",
    function()
    local d = T.tmpdir()
    T.sh("mkdir -p " .. d .. "/a " .. d .. "/b")
    T.write(d .. "/a/p.yml", (THREE:gsub("@D@", d)))
    T.write(d .. "/b/p.yml", (THREE:gsub("@D@", d):gsub("echo s2 >>", "echo WRONG >>")))
    -- an inventory folder, given relative too (its digest covers its files)
    T.sh("mkdir -p " .. d .. "/a/inv/group_vars")
    T.write(d .. "/a/inv/hosts.yml", "all:\n  hosts:\n    localhost: { ansible_connection: local }\n")
    T.write(d .. "/a/inv/group_vars/all.yml", "colour: blue\n")
    local r = run(d, { "run", "p.yml", "-i", "inv" }, { CUTOVER_FAULT = "kill-after:s1@localhost" }, d .. "/a")
    T.eq(r.rc, 137, "killed")
    local rec = last_run(d)
    T.eq(rec.playbook, d .. "/a/p.yml", "the journal holds the absolute path")
    r = run(d, { "resume", rec.id }, nil, d .. "/b")
    T.eq(r.rc, 0, "resumed: " .. r.stdout .. r.stderr)
    T.eq(count(d), "s1\ns2\ns3\n", "the run's own playbook ran")
end)

T.test("safety 11: an edited playbook, template or inventory is refused on resume (exit 3) unless --accept-changed",
    function()
    local d = T.tmpdir()
    T.write(d .. "/p.yml", (([[
- hosts: localhost
  steps:
    - id: s1
      template: { src: t.j2, dest: "@D@/out" }
    - id: s2
      shell: "echo s2 >> @D@/count"
    - id: s3
      shell: "echo {{ word }} >> @D@/count"
]]):gsub("@D@", d)))
    T.write(d .. "/t.j2", "one\n")
    T.write(d .. "/inv.yml", "all:\n  hosts:\n    localhost: { ansible_connection: local, word: s3 }\n")
    local function crash()
        T.sh("rm -f " .. d .. "/count " .. d .. "/out")
        local r = run(d, { "run", d .. "/p.yml", "-i", d .. "/inv.yml" }, { CUTOVER_FAULT = "kill-after:s2@localhost" })
        T.eq(r.rc, 137, "killed")
        return last_run(d).id
    end
    -- the playbook: a step that has not run yet is edited
    local id = crash()
    local orig = T.read(d .. "/p.yml")
    T.write(d .. "/p.yml", orig .. "    - id: s4\n      shell: \"echo extra >> " .. d .. "/count\"\n")
    local r = run(d, { "resume", id })
    T.eq(r.rc, 3, "edited playbook refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, d .. "/p.yml", "names the playbook")
    T.eq(count(d), "s2\n", "nothing ran")
    r = run(d, { "resume", id, "--accept-changed" })
    T.eq(r.rc, 0, "accepted: " .. r.stdout .. r.stderr)
    T.eq(count(d), "s2\ns3\nextra\n", "went on with the new playbook")
    T.write(d .. "/p.yml", orig)
    -- a template a finished step read
    id = crash()
    T.write(d .. "/t.j2", "two\n")
    r = run(d, { "resume", id })
    T.eq(r.rc, 3, "edited template refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, d .. "/t.j2", "names the template")
    T.eq(count(d), "s2\n", "nothing ran")
    T.write(d .. "/t.j2", "one\n")
    r = run(d, { "resume", id })
    T.eq(r.rc, 0, "the same again: resumed: " .. r.stdout .. r.stderr)
    -- the inventory
    id = crash()
    T.write(d .. "/inv.yml", "all:\n  hosts:\n    localhost: { ansible_connection: local, word: other }\n")
    r = run(d, { "resume", id })
    T.eq(r.rc, 3, "edited inventory refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, d .. "/inv.yml", "names the inventory")
    T.eq(count(d), "s2\n", "nothing ran")
end)

-- Item 8: per-host decisions after a crash.
T.test("safety 8: --mark-done STEP@HOST and --retry STEP@HOST decide per host; unknown or empty decisions are " ..
    "refused", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", "all:\n  vars: { ansible_connection: local }\n  hosts:\n    h1: {}\n    h2: {}\n")
    T.write(d .. "/p.yml", (([[
- hosts: all
  steps:
    - id: s1
      shell: "echo s1 >> @D@/{{ inventory_hostname }}.count"
    - id: s2
      shell: "echo s2 >> @D@/{{ inventory_hostname }}.count; m=@D@/{{ inventory_hostname }}.marker; if [ ! -e $m ]; then touch $m; sleep 30; fi"
    - id: s3
      shell: "echo s3 >> @D@/{{ inventory_hostname }}.count"
]]):gsub("@D@", d)))
    local r = T.sh(string.format(
        "XDG_STATE_HOME=%s/state %s run %s/p.yml -i %s/inv.yml > %s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s/h1.marker ] || [ ! -e %s/h2.marker ]; do sleep 0.02; done; " ..
        "kill -KILL $pid; wait $pid; echo rc=$?", d, T.cutover, d, d, d, d, d))
    T.eq(r.stdout, "rc=137\n", "killed in the middle of s2 on both hosts")
    local id = last_run(d).id
    local function refused(args, want, what)
        local all = { "resume", id }
        for _, a in ipairs(args) do all[#all + 1] = a end
        local res = run(d, all)
        T.eq(res.rc, 2, what .. ": " .. res.stdout .. res.stderr)
        T.contains(res.stderr, want, what .. ": the message")
        T.eq(count(d, "h1.count") .. count(d, "h2.count"), "s1\ns2\ns1\ns2\n", what .. ": nothing ran")
    end
    refused({ "--mark-done", "s2@h9" }, "host 'h9'", "an unknown host")
    refused({ "--mark-done", "s9@h1" }, "step 's9'", "an unknown step")
    refused({ "--retry", "s9" }, "step 's9'", "an unknown step without host")
    refused({ "--mark-done", "s1@h1" }, "s1@h1", "a step that finished decides nothing")
    refused({ "--retry", "s3@h2" }, "s3@h2", "a step that never started decides nothing")
    refused({ "--mark-done", "s2@h1", "--retry", "s2@h1" }, "s2@h1", "both decisions at once")
    refused({ "--mark-done", "s2", "--retry", "s2@h2" }, "s2@h2", "both decisions through the plain form")
    refused({ "--mark-done", "s2[1]@h1" }, "s2[1]@h1", "an item of a step that has no loop")
    -- h1: s2 took effect; h2: it did not
    r = run(d, { "resume", id, "--mark-done", "s2@h1", "--retry", "s2@h2" })
    T.eq(r.rc, 0, "decided per host: " .. r.stdout .. r.stderr)
    T.eq(count(d, "h1.count"), "s1\ns2\ns3\n", "h1: s2 marked done")
    T.eq(count(d, "h2.count"), "s1\ns2\ns2\ns3\n", "h2: s2 run again")
    local show = run(d, { "show", id })
    T.match(show.stdout, "mark%-done%s+s2@h1 by", "h1's decision recorded")
    T.match(show.stdout, "retry%s+s2@h2 by", "h2's decision recorded")
end)

-- Item 19: locks cover machines, not only inventory names.
T.test("safety 19: two inventory names for one machine are locked together (local, and loopback spellings over " ..
    "SSH)", function()
    local d = T.tmpdir()
    local port = 1  -- nothing listens: the run goes on without that host
    T.write(d .. "/inv1.yml", string.format([[
all:
  hosts:
    l1: { ansible_connection: local }
    a: { ansible_host: localhost, ansible_port: %d, ansible_user: ops, ansible_timeout: 2 }
]], port))
    T.write(d .. "/slow.yml", (([[
- hosts: all
  steps:
    - shell: "touch @D@/marker; sleep 30"
      when: inventory_hostname == 'l1'
]]):gsub("@D@", d)))
    T.write(d .. "/quick.yml", "- hosts: all\n  steps:\n    - command: 'true'\n")
    local cases = {
        { "l2: { ansible_connection: local }", "local" },
        { string.format("b: { ansible_host: '::ffff:127.0.0.1', ansible_port: %d, ansible_user: ops }", port),
          "ops@127.0.0.1:" .. port },
        { string.format("c: { ansible_host: 127.0.0.1, ansible_port: %d, ansible_user: ops }", port),
          "ops@127.0.0.1:" .. port },
    }
    for i, c in ipairs(cases) do
        T.write(d .. "/inv" .. (i + 1) .. ".yml", "all:\n  hosts:\n    " .. c[1] .. "\n")
    end
    local cmd = string.format("export XDG_STATE_HOME=%s/state NO_COLOR=1; %s run %s/slow.yml -i %s/inv1.yml > " ..
        "%s/out 2>&1 & pid=$!; " ..
        "while [ ! -e %s/marker ]; do sleep 0.02; done; ", d, T.cutover, d, d, d, d)
    for i = 1, #cases do
        cmd = cmd .. string.format("%s run %s/quick.yml -i %s/inv%d.yml > %s/second%d 2>&1; echo second%d=$?; ",
            T.cutover, d, d, i + 1, d, i, i)
    end
    cmd = cmd .. "kill -KILL $pid; wait $pid"
    local r = T.sh(cmd)
    for i, c in ipairs(cases) do
        local out = T.read(d .. "/second" .. i) or ""
        T.contains(r.stdout, "second" .. i .. "=3", c[1] .. ": refused: " .. out)
        T.contains(out, c[2], c[1] .. ": names the machine: " .. out)
        T.contains(out, "is locked by run ", c[1] .. ": names the holder: " .. out)
    end
end)

T.test("safety 8: a loop stopped half-way: items done are not run again, the item in flight is decided with " ..
    "STEP[INDEX]@HOST", function()
    for _, how in ipairs({ "--mark-done", "--retry" }) do
        local d = T.tmpdir()
        T.write(d .. "/p.yml", (([[
- hosts: localhost
  steps:
    - id: s1
      shell: "echo s1 >> @D@/count"
    - id: s2
      shell: "echo {{ item }} >> @D@/count; if [ {{ item }} = b ] && [ ! -e @D@/marker ]; then touch @D@/marker; sleep 30; fi"
      loop: [a, b, c]
    - id: s3
      shell: "echo s3 >> @D@/count"
]]):gsub("@D@", d)))
        kill_mid(d, d .. "/p.yml")
        local id = last_run(d).id
        local r = run(d, { "resume", id })
        T.eq(r.rc, 1, how .. ": the host stops at the item in flight: " .. r.stdout .. r.stderr)
        T.contains(r.stdout, "--mark-done s2[2]@localhost", how .. ": names the item")
        T.eq(count(d), "s1\na\nb\n", how .. ": nothing ran again")
        r = run(d, { "resume", id, how, "s2[3]@localhost" })
        T.eq(r.rc, 2, how .. ": an item not in flight decides nothing: " .. r.stdout .. r.stderr)
        T.contains(r.stderr, "s2[3]@localhost", how .. ": names it")
        r = run(d, { "resume", id, "--mark-done", "s2[2]@localhost", "--retry", "s2@localhost" })
        T.eq(r.rc, 2, how .. ": the item and its step decided both ways: " .. r.stdout .. r.stderr)
        r = run(d, { "resume", id, how, "s2[2]@localhost" })
        T.eq(r.rc, 0, how .. ": decided: " .. r.stdout .. r.stderr)
        T.eq(count(d), how == "--mark-done" and "s1\na\nb\nc\ns3\n" or "s1\na\nb\nb\nc\ns3\n",
             how .. ": item a once, b as decided, c once")
    end
end)

T.done()
