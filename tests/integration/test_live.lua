-- The live status block of a multi-host run, on a real terminal: tmux
-- runs cutover in a pane (a pty), send-keys/capture-pane read what an
-- operator sees.  A 50-host rolling run (5 batches) with a failure and a
-- parked gate.  Missing tmux is a failure (scripts/deps.sh installs it).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local proc = require("cutover.core.proc")
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")

local SOCKET = "cutover-live-" .. sys.getpid()

local function tmux(...)
    local argv = { "tmux", "-L", SOCKET, "-f", "/dev/null", ... }
    local r = proc.run({ argv = argv, timeout = 20, env = { PATH = "/usr/bin:/bin", TERM = "xterm" } })
    if not r then error("tmux could not be started: this test needs tmux (scripts/deps.sh installs it)", 0) end
    return r
end

if proc.run({ shell = "command -v tmux", timeout = 10 }).rc ~= 0 then
    error("tmux is not installed: this test needs it (scripts/deps.sh installs it)", 0)
end

local d = T.tmpdir()
local lines = { "all:", "  vars: { ansible_connection: local }", "  hosts:" }
for i = 1, 50 do lines[#lines + 1] = "    h" .. i .. ": {}" end
T.write(d .. "/inv.yml", table.concat(lines, "\n") .. "\n")
T.write(d .. "/p.yml", [[
- name: rolling upgrade
  hosts: all
  serial: 10
  steps:
    - id: drain
      shell: "sleep 0.4"
    - id: upgrade-packages
      shell: "sleep 0.9"
    - id: smoke-gate
      pause: { gate: smoke, prompt: "Smoke test ok?" }
      when: inventory_hostname == "h47"
    - id: break
      fail: { msg: "h13: package database locked" }
      when: inventory_hostname == "h13"
    - id: verify
      shell: "sleep 0.3"
]])

-- A pane of cols x rows running cutover with args; env NO_COLOR as given.
local function start(name, cols, rows, args, no_color)
    local script = d .. "/" .. name .. ".sh"
    T.write(script, string.format([[
#!/bin/sh
cd %s
export XDG_STATE_HOME=%s/state-%s HOME=%s %s
%s run p.yml -i inv.yml --non-interactive %s
echo "EXIT=$?"
sleep 120
]], d, d, name, d, no_color and "NO_COLOR=1" or "; unset NO_COLOR", T.cutover, args or ""), 493)
    local r = tmux("new-session", "-d", "-s", name, "-x", tostring(cols), "-y", tostring(rows), script)
    T.eq(r.rc, 0, "tmux new-session: " .. r.stderr)
end

local function capture(name, escapes)
    local r = tmux("capture-pane", "-p", "-t", name, escapes and "-e" or nil)
    return r.stdout
end

-- Polls the pane (every 0.1 s, at most `limit` s) until pred(screen).
local function wait_for(name, pred, limit, what)
    local last
    for _ = 1, limit * 10 do
        last = capture(name)
        if pred(last) then return last end
        loop.sleep(0.1)
    end
    error("the pane never showed " .. what .. "; last screen:\n" .. tostring(last), 0)
end

local function rows_of(screen)
    local out = {}
    for l in (screen .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = l end
    return out
end

local function seconds(text)
    local m, s = text:match("^(%d+)m(%d+)s$")
    if m then return m * 60 + s end
    local v = text:match("^([%d.]+)s$")
    if v then return tonumber(v) end
    return tonumber(text:match("^(%d+)ms$")) / 1000
end

local ok_run, err = pcall(function()
    T.test("the block: play, batch, host counts, running hosts slowest first, elapsed, ETA", function()
        start("main", 100, 30, "", true)
        local screen = wait_for("main", function(s)
            return s:find("batch 2/5", 1, true) and s:find("ETA", 1, true) and s:find("\n  h%d+ +upgrade%-packages")
        end, 60, "batch 2/5 with an ETA and hosts upgrading")
        local rows = rows_of(screen)
        T.ok(#rows <= 31, "fits the pane")
        local head, at
        for i, l in ipairs(rows) do if l:find("^PLAY rolling upgrade  batch %d/5") then head, at = l, i end end
        T.ok(head ~= nil, "the block's first line: " .. screen)
        T.match(head, "^PLAY rolling upgrade  batch [2-5]/5  elapsed [%d.]+m?s  ETA ", "play, batch, elapsed, ETA")
        local done, running, parked, failed, waiting = rows[at + 1]:match(
            "^hosts: (%d+) done, (%d+) running, (%d+) parked, (%d+) failed, (%d+) not started$")
        T.ok(done ~= nil, "the host counts line: " .. tostring(rows[at + 1]))
        T.eq(done + running + parked + failed + waiting, 50, "every host is counted once")
        T.ok(tonumber(running) >= 1 and tonumber(running) <= 10, "at most one batch runs")
        -- the running hosts, slowest first
        local last = math.huge
        local n = 0
        for i = at + 2, #rows do
            local host, _, took = rows[i]:match("^  (h%d+) +(%S+) +(%S+)$")
            if host then
                n = n + 1
                local t = seconds(took)
                T.ok(t <= last + 0.001, "slowest first: " .. rows[i])
                last = t
            end
        end
        T.ok(n >= 1, "running hosts are listed: " .. screen)
        -- ok lines collapse into counts; failures and changes scroll above
        T.not_contains(screen, "\n  ok          h", "no ok lines")
    end)

    T.test("a narrow terminal (SIGWINCH): lines are cut to the width, never wrapped", function()
        T.eq(tmux("resize-window", "-t", "main", "-x", "40", "-y", "30").rc, 0, "resize")
        local screen = wait_for("main", function(s) return s:find("\nhosts: [^\n]*~\n") end, 30,
                                "the counts line cut to 40 columns")
        local rows = rows_of(screen)
        local at
        for i, l in ipairs(rows) do if l:find("^PLAY rolling") then at = i end end
        T.ok(at ~= nil, "the block is there: " .. screen)
        for i = at, #rows do
            local l = rows[i]
            if l ~= "" then
                T.ok(utf8.len(l) <= 39, "row fits in 39 columns: " .. l)
                T.ok(l:find("^PLAY ") or l:find("^hosts: ") or l:find("^steps not listed") or l:find("^  h%d") or
                     l:find("^  %.%.%. and"), "a block row, not a wrapped remnant: '" .. l .. "'")
            end
        end
        T.eq(tmux("resize-window", "-t", "main", "-x", "100", "-y", "30").rc, 0, "resize back")
    end)

    T.test("the end: the failure and the parked gate in the log, the block gone, a recap", function()
        local screen = wait_for("main", function(s) return s:find("EXIT=%d") end, 90, "the run's end")
        T.contains(screen, "EXIT=1", "h13 failed (and h47 parked)")
        local all = tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "main").stdout
        T.match(all, "failed +h13  break", "the failure scrolled above")
        T.contains(all, "h13: package database locked", "with its message")
        T.match(all, "parked +h47  smoke%-gate", "the parked gate")
        T.contains(all, "waiting at gate 'smoke': h47", "how to go on")
        T.match(all, "%(%d+ ok and %d+ skipped step results not listed; %-v lists them%)", "the collapsed count")
        T.not_contains(all, "\n  ok          h", "no ok lines")
        T.not_contains(all, "\n  skipped     h", "no skipped lines")
        T.contains(all, "RECAP", "the recap")
        T.not_contains(screen, "\nhosts: ", "the block is gone at the end")
    end)

    T.test("colour on a terminal, none with NO_COLOR", function()
        start("colour", 100, 40, "", false)
        local sgr = wait_for("colour", function()
            return capture("colour", true):find("\27%[1mPLAY rolling upgrade  batch")
        end, 60, "a bold block header")
        local out = os.getenv("CUTOVER_DOCS_SHOTS")
        if out and out ~= "" then
            -- the screenshot in docs/ (scripts/screenshots.sh): a frame
            -- with hosts running a step, if one comes within 30 s
            local shot
            for _ = 1, 300 do
                shot = capture("colour", true)
                if shot:find("batch [2-5]/5") and shot:find("upgrade%-packages  [%d.]+m?s") then break end
                loop.sleep(0.1)
            end
            local C = dofile(tests_dir .. "/lib/chromium.lua")(T)
            T.write(d .. "/live.html", C.terminal_html(shot, "cutover live view"))
            C.screenshot(d .. "/live.html", out .. "/live-view.png", 860, 760)
        end
        tmux("kill-session", "-t", "colour")
        local plain = capture("main", true)
        T.not_contains(plain, "\27[1m", "NO_COLOR: no bold")
        T.not_contains(plain, "\27[2m", "NO_COLOR: no dim")
        T.ok(sgr ~= nil, "colour without NO_COLOR")
    end)

    T.test("--format json on a terminal: events only, no block", function()
        start("json", 100, 30, "--format json", true)
        wait_for("json", function(s) return s:find("EXIT=%d") end, 90, "the run's end")
        local screen = tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "json").stdout
        tmux("kill-session", "-t", "json")
        T.not_contains(screen, "hosts: ", "no block")
        T.contains(screen, '"event":"run_end"', "JSON events")
    end)

    T.test("not a terminal: no block, no cursor movement, every line as before", function()
        local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--non-interactive" },
                        { env = { HOME = d }, timeout = 120 })
        T.eq(r.rc, 1, "exit code")
        T.not_contains(r.stdout, "\27[", "no escape sequence")
        T.not_contains(r.stdout, "hosts: ", "no block")
        T.match(r.stdout, "skipped +h1  smoke%-gate", "skipped lines are listed")
    end)
end)
tmux("kill-server")
if not ok_run then error(err, 0) end

T.done()
