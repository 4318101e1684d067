-- scripts/test.sh prints each stage's wall time at the end (issue 11):
-- scripts/stages.sh runs and times the stages; its table is checked here
-- with stages of our own, and test.sh is checked to time every stage and
-- to keep its closing line (other tools grep it) last.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")

local ROOT = tests_dir .. "/.."

local function bash(script)
    return assert(proc.run({ argv = { "bash", "-c", script, "bash", ROOT .. "/scripts/stages.sh" },
                             timeout = 60 }))
end

T.test("stages.sh: one row per stage, in order, with its time and failures", function()
    local r = bash([[
set -euo pipefail
source "$1"
counter=0
bump() { counter=$((counter + 1)); }
stage "first" true
stage "a slow one" sleep 0.3
stage "in this shell" bump
stage "fails" false || echo "status $?"
echo "counter $counter"
stage_table
]])
    T.eq(r.rc, 0, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    T.eq(lines[1], "status 1", "the stage's status is returned")
    T.eq(lines[2], "counter 1", "a shell function runs in this shell")
    T.eq(lines[3], "stage times:", "title")
    local rows = {}
    for i = 4, #lines do
        local name, secs, clock, note = lines[i]:match("^  (.-) +(%d+%.%d) s +(%d+:%d%d)%s*(.-)$")
        T.ok(name, "row " .. lines[i])
        rows[#rows + 1] = { name = name, secs = tonumber(secs), clock = clock, note = note }
    end
    T.eq(#rows, 5, "four stages and the total")
    T.eq(rows[1].name, "first")
    T.eq(rows[2].name, "a slow one")
    T.ok(rows[2].secs >= 0.3, "the slow stage took its 0.3 s")
    T.eq(rows[3].name, "in this shell")
    T.eq(rows[4].name, "fails")
    T.eq(rows[4].note, "FAILED (exit 1)")
    T.eq(rows[1].note, "", "no note when it passed")
    T.eq(rows[5].name, "total (wall)")
    local sum = rows[1].secs + rows[2].secs + rows[3].secs + rows[4].secs
    T.ok(rows[5].secs >= sum - 0.15, "one stage after another: the wall time is at least their sum")
end)

T.test("stages.sh: a stage run in the background is recorded with stage_add; the total is wall time", function()
    -- a clock of our own (stage_now is what every reading goes through),
    -- so the figures are exact whatever the machine's load
    local r = bash([[
set -euo pipefail
source "$1"
NOW=100
stage_now() { echo "$NOW"; }
stage_run_t0=100
t0=$(stage_now)                    # the background stage starts at 100
fg() { NOW=160; }                  # the foreground stage takes 60 s
stage "foreground" fg
NOW=190                            # the background one ends at 190
stage_add "background" "$t0" 0
stage_add "failed in the background" "$(stage_now)" 3
NOW=250                            # collected at 250, it had ended at 200
stage_add "ended before it was collected" "$t0" 0 200
stage_table
]])
    T.eq(r.rc, 0, r.stderr)
    local rows = {}
    for name, secs, clock, note in r.stdout:gmatch("\n  (.-) +(%d+%.%d) s +(%d+:%d%d) *([^\n]*)") do
        rows[#rows + 1] = { name = name, secs = tonumber(secs), clock = clock, note = note }
    end
    T.eq(#rows, 5, r.stdout)
    T.eq(rows[1].name, "foreground")
    T.eq(rows[1].secs, 60.0)
    T.eq(rows[2].name, "background")
    T.eq(rows[2].secs, 90.0, "the background stage's own time, from its start")
    T.eq(rows[2].clock, "1:30")
    T.eq(rows[2].note, "", "it passed")
    T.eq(rows[3].note, "FAILED (exit 3)", "its status")
    T.eq(rows[4].name, "ended before it was collected")
    T.eq(rows[4].secs, 100.0, "from its start to its own end, not to when it was waited for")
    T.eq(rows[5].name, "total (wall)")
    T.eq(rows[5].secs, 150.0, "the wall time, to now")
end)

T.test("stages.sh: under set -e a failed stage ends the script, and the table still shows", function()
    local r = bash([[
set -euo pipefail
source "$1"
trap stage_on_exit EXIT
stage "ok" true
stage "broken" sh -c 'exit 7'
echo "not reached"
]])
    T.eq(r.rc, 7, "the failing stage's status")
    T.not_contains(r.stdout, "not reached")
    T.match(r.stderr, "stage times:\n  ok +%d+%.%d s +%d+:%d%d *\n  broken +%d+%.%d s +%d+:%d%d +FAILED %(exit " ..
        "7%)\n  total ")
    -- a function stage stops at its first failing command, as without
    -- stage (set -e holds inside it)
    r = bash([[
set -euo pipefail
source "$1"
trap stage_on_exit EXIT
f() { false; echo "after false"; }
stage "fn" f
]])
    T.eq(r.rc, 1, "rc")
    T.not_contains(r.stdout, "after false", "set -e inside the function")
    T.match(r.stderr, "\n  fn +%d+%.%d s +%d+:%d%d +FAILED %(exit 1%)\n")
end)

T.test("test.sh: every stage is timed; the table comes before the unchanged closing line", function()
    local text = assert(fs.read(ROOT .. "/scripts/test.sh", 1024 * 1024))
    T.contains(text, 'source scripts/stages.sh')
    -- its exit trap stops the VM lab, then prints the table
    T.contains(text, "trap vm_on_exit EXIT")
    T.contains(text, 'stage_on_exit_rc "$rc"')
    for _, cmd in ipairs({ "bash scripts/deps.sh", "bash scripts/build.sh build\n",
                           "run_ctest_wide build --timeout", "bash scripts/build.sh build-asan",
                           "env CUTOVER_SESSION=0 CTEST_JOBS=\"$wait_jobs\" bash scripts/ctest_retry.sh",
                           "run_ctest build -L memcheck", "bash scripts/fuzz.sh \"" }) do
        local at = text:find(cmd, 1, true)
        T.ok(at, "test.sh runs " .. cmd)
        local line_start = text:sub(1, at):match(".*\n()") or 1
        T.match(text:sub(line_start, at - 1), "^stage \"[^\"]+\" $", "timed: " .. cmd)
    end
    -- the two ctest stages of waiting tests run three per core; memcheck
    -- (valgrind computes) one per core
    T.contains(text, "wait_jobs=$(( 3 * $(nproc) ))")
    T.contains(text, 'run_ctest_wide() { CTEST_JOBS=$wait_jobs run_ctest "$@"; }')
    T.contains(text, 'stage "memcheck" run_ctest build -L memcheck')
    -- the VM lab starts after the build and is waited for (and timed)
    -- before the table
    local build = text:find('\nstage "build" ', 1, true)
    local vm_start = text:find("\nvm_start\n", 1, true)
    local vm_wait = text:find("\nvm_wait\n", 1, true)
    T.ok(build and vm_start and vm_wait and build < vm_start and vm_start < vm_wait, "build, vm_start ... vm_wait")
    T.contains(text, 'stage_add "ctest (vm, alongside)"')
    local tab = text:find("\nstage_table\n", 1, true)
    local closing = text:find('echo "all: $((n + m + f)) passed, 0 failed"', 1, true)
    T.ok(tab and closing and vm_wait < tab and tab < closing, "the VM lab, the table, then the closing line")
    T.contains(text, 'echo "all: $((n + m + f)) passed, 0 failed; FLAKY (passed only on a rerun): ')
end)

T.done()
