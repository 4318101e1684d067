-- The reporters' lines leave at the end of the loop's turn, once the
-- journal has committed that turn (issue 13: a write and a reader's
-- wake-up per line was a good part of the controller's system time with
-- many hosts).  What must still hold: a reader sees each result while
-- other hosts are still working (nothing is held until they finish), and
-- a result it sees is already in the journal.  Host b waits for a file
-- the reader makes only once it has seen host a's result, so a held
-- line would leave b waiting until its wait (6 s by the clock) gives up
-- and fails the step.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local json = require("cutover.core.json")
local proc = require("cutover.core.proc")

local BOOK = [[
- hosts: all
  steps:
    - id: first
      shell: "{{ wait_for_reader }}"
    - id: second
      command: "true"
]]

-- b waits (at most 6 s by the clock, then fails) for the file the reader
-- makes: less than the 10 s after which a log gets its first "still
-- running" line, which is written outside the loop's tasks and so would
-- bring held lines out.
local function inventory(d)
    return string.format([[
all:
  hosts:
    a: { ansible_connection: local, wait_for_reader: "true" }
    b:
      ansible_connection: local
      wait_for_reader: "end=$(($(date +%%s) + 6)); while [ ! -e %s/seen_a ]; do [ $(date +%%s) -lt $end ] || exit 7; sleep 0.05; done"
]], d)
end

-- The reader: every line to events.jsonl; at a's first result it asks
-- the journal (cutover show) what it holds, then lets b go on.
local READER = [=[
set -u
d=$1; cutover=$2; fmt=$3
"$cutover" run "$d/p.yml" -i "$d/inv.yml" --journal "$d/j.db" --forks 2 $fmt 2> "$d/err" | {
    run=
    while IFS= read -r line; do
        printf '%s\n' "$line" >> "$d/events.jsonl"
        case $line in
        *'"event":"run_start"'*) run=$(printf '%s' "$line" | sed -n 's/.*"run":"\([^"]*\)".*/\1/p') ;;
        *'[run '*']') run=$(printf '%s' "$line" | sed -n 's/.*\[run \([^]]*\)\]$/\1/p') ;;
        *' a  first  ('*|*'"event":"host_result"'*'"host":"a"'*'"step":"first"'*)
            [ -e "$d/seen_a" ] && continue
            "$cutover" show "$run" --journal "$d/j.db" --format json > "$d/show_at_a.json" 2>> "$d/err"
            touch "$d/seen_a" ;;
        esac
    done
}
]=]

local function steps_of(show, host)
    local out = {}
    for _, s in ipairs(show.steps or {}) do
        if s.host == host then out[s.step] = s.status end
    end
    return out
end

for _, fmt in ipairs({ "--format json", "" }) do
    local what = fmt == "" and "text" or "JSON"
    T.test(what .. " output: a host's result is out while another host still works, and is in the journal by then",
           function()
        local d = T.tmpdir()
        T.write(d .. "/p.yml", BOOK)
        T.write(d .. "/inv.yml", inventory(d))
        T.write(d .. "/reader.sh", READER)
        local r = assert(proc.run({ argv = { "sh", d .. "/reader.sh", d, T.cutover, fmt }, timeout = 120,
                                    env = { XDG_STATE_HOME = d .. "/state", NO_COLOR = "1" } }))
        T.eq(r.rc, 0, "the reader")
        local events = T.read(d .. "/events.jsonl") or ""
        T.ok(T.read(d .. "/seen_a") ~= nil, "the reader saw a's result: " .. events .. (T.read(d .. "/err") or ""))
        -- b went on once the reader had seen a's line: nothing was held
        if fmt == "" then
            T.match(events, "changed +b +first", "b's first step went on")
        else
            local seen_b = false
            for line in events:gmatch("[^\n]+") do
                local e = json.decode(line)
                if e.event == "host_result" and e.host == "b" and e.step == "first" then
                    seen_b = true
                    T.eq(e.status, "changed", "b's first step")
                end
            end
            T.ok(seen_b, "b's first result")
        end
        local show = json.decode(assert(T.read(d .. "/show_at_a.json"), "show's output"))
        local a = steps_of(show, "a")
        T.eq(a.first, "changed", "a's first step in the journal when its line was read")
        local b = steps_of(show, "b")
        T.ok(b.first == nil or b.first == "running", "b's first step not done yet: " .. tostring(b.first))
    end)
end

T.done()
