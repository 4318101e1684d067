-- history: `cutover history`, `cutover show RUN`, `cutover resume`,
-- `cutover unlock HOST` and `cutover abort RUN`: reading the journal and
-- continuing what it recorded.
local json = require("cutover.core.json")
local sys = require("cutover.core.sys")
local journal_mod = require("cutover.journal")
local playbook = require("cutover.playbook")
local runner = require("cutover.runner")
local util = require("cutover.util")
local output = require("cutover.output")

local M = {}

local function when(t)
    if not t then return "-" end
    return os.date("%Y-%m-%d %H:%M:%S", math.floor(t))
end

local function array(t) return setmetatable(t, { __jsontype = "array" }) end

function M.history(j, fmt, limit)
    local runs = j:runs(limit)
    if fmt == "json" then
        for _, r in ipairs(runs) do
            r.hosts = array(j:hosts(r.id))
            r.extra_vars, r.options = nil, nil
        end
        print(json.encode({ v = 1, journal = j.path, runs = array(runs) }))
        return 0
    end
    if #runs == 0 then
        print("no runs recorded in " .. j.path)
        return 0
    end
    print(string.format("%-22s  %-11s  %-19s  %-7s  %s", "RUN", "STATUS", "STARTED", "HOSTS", "PLAYBOOK"))
    for _, r in ipairs(runs) do
        local hosts = j:hosts(r.id)
        local ok, bad = 0, 0
        for _, h in ipairs(hosts) do
            if h.status == "ok" then ok = ok + 1 elseif h.status ~= "pending" then bad = bad + 1 end
        end
        print(string.format("%-22s  %-11s  %-19s  %-7s  %s", r.id, r.status, when(r.created),
            ok .. "/" .. #hosts, r.playbook or "-"))
    end
    return 0
end

function M.show(j, id, fmt)
    local r = j:run(id)
    if not r then
        io.stderr:write("cutover: no run '" .. id .. "' in " .. j.path .. "\n")
        return 2
    end
    local hosts = j:hosts(id)
    local steps = j:steps(id)
    local events = j:events(id)
    if fmt == "json" then
        for _, s in ipairs(steps) do
            if s.result then s.result = json.decode(s.result) end
        end
        r.extra_vars = r.extra_vars and json.decode(r.extra_vars)
        r.options = r.options and json.decode(r.options)
        print(json.encode({ v = 1, run = r, hosts = array(hosts), steps = array(steps), events = array(events) }))
        return 0
    end
    print(string.format("run %s: %s (exit code %s)", r.id, r.status, tostring(r.exit_code)))
    print(string.format("  playbook %s, started %s by %s on %s, last update %s",
        r.playbook or "-", when(r.created), r.os_user or "?", r.controller or "?", when(r.updated)))
    for _, h in ipairs(hosts) do
        print("")
        print(string.format("host %s: %s%s%s", h.host, h.status,
            h.failed_at and (" at " .. h.failed_at) or "", h.detail and (" (" .. output.escape(h.detail) .. ")") or ""))
        for _, s in ipairs(steps) do
            if s.host == h.host then
                local dur = s.ended and s.started and util.format_duration(s.ended - s.started) or "-"
                local msg = ""
                local res = s.result and json.decode(s.result)
                -- the message, unless it only repeats the note (mark-done)
                if type(res) == "table" and res.msg and s.status ~= "ok" and s.status ~= "changed"
                        and res.msg ~= s.note then
                    -- remote text: escaped so it cannot drive the terminal
                    msg = "  " .. output.escape((tostring(res.msg):gsub("\n.*", "")))
                end
                print(string.format("  %s  %-11s %-36s %8s%s%s", when(s.started):sub(12), s.status,
                    s.step, dur, s.note and ("  [" .. s.note .. "]") or "", msg))
            end
        end
    end
    if #events > 0 then
        print("")
        print("events:")
        for _, e in ipairs(events) do
            local what = (e.name or "") .. (e.host and ("@" .. e.host) or "")
            print(string.format("  %s  %-10s %sby %s", when(e.time), e.kind,
                what ~= "" and (what .. " ") or "", e.os_user or "?"))
        end
    end
    return 0
end

-- Builds the resume context and runs.  o: the resume command's options.
-- prepare(o, book_path, extra_vars) -> book, inv, opts (the cli's).
function M.resume(j, id, o, prepare)
    local r
    if id then
        r = j:run(id)
        if not r then
            io.stderr:write("cutover: no run '" .. id .. "' in " .. j.path .. "\n")
            return 2
        end
    else
        r = j:latest_unfinished()
        if not r then
            io.stderr:write("cutover: no unfinished run in " .. j.path .. "\n")
            return 2
        end
    end
    if r.status == "ok" or r.status == "aborted" or r.status == "check" then
        io.stderr:write("cutover: run " .. r.id .. " is " .. r.status .. "; there is nothing to resume\n")
        return 2
    end
    if r.pid and r.status == "running" and r.controller == (sys.uname() or {}).node and sys.alive(r.pid)
        and r.pid ~= sys.getpid() then
        local lock = j:rows("SELECT * FROM locks WHERE run = ? LIMIT 1", r.id)[1]
        if lock and journal_mod.holder_alive(lock) then
            io.stderr:write("cutover: run " .. r.id .. " is still running (pid " .. r.pid .. ")\n")
            return 3
        end
    end
    -- the run's own options, with this invocation's output choices
    local recorded = r.options and json.decode(r.options) or {}
    for k, v in pairs(o) do recorded[k] = v end
    local ev = r.extra_vars and json.decode(r.extra_vars) or {}
    local book, inv, opts = prepare(recorded, r.playbook, ev)
    if not book then return inv end

    -- the steps done before, by (play, step, occurrence); later rows win
    local done = {}
    local changed_steps = {}
    local by_play = {}
    for pi, play in ipairs(book.plays) do
        local map = {}
        local function walk(list)
            for _, s in ipairs(list or {}) do
                map[s.id] = s
                walk(s.block); walk(s.rescue); walk(s.always)
            end
        end
        walk(play.steps)
        walk(play.handlers)
        by_play[pi] = map
    end
    for _, row in ipairs(j:steps(r.id)) do
        done[row.host] = done[row.host] or {}
        done[row.host][row.play .. "/" .. row.step .. "#" .. row.occurrence] = row
        if row.status ~= "running" and row.status ~= "failed" and row.status ~= "interrupted" then
            local s = by_play[row.play] and by_play[row.play][row.step]
            if not s then
                changed_steps[row.step] = "no longer in the playbook"
            elseif runner.step_digest(s) ~= row.digest then
                changed_steps[row.step] = "its definition changed since the run"
            end
        end
    end
    if next(changed_steps) and not o["accept-changed"] then
        for _, k in ipairs(util.sorted_keys(changed_steps)) do
            io.stderr:write("cutover: step '" .. k .. "' finished in run " .. r.id .. " but " .. changed_steps[k] .. "\n")
        end
        io.stderr:write("cutover: refusing to resume: the playbook changed under the run " ..
                        "(use --accept-changed to continue with the new definitions)\n")
        return runner.EXIT_REFUSED
    end
    local finished = {}
    for _, h in ipairs(j:hosts(r.id)) do
        if h.status == "ok" then finished[h.host] = true end
    end
    local function set(list)
        local out = {}
        for _, x in ipairs(list or {}) do out[x] = true end
        return out
    end
    -- hosts whose last step was in flight (maybe rebooting right now):
    -- they connect when that step runs again, which waits for them
    local inflight = {}
    for host, rows in pairs(done) do
        for _, row in pairs(rows) do
            if row.status == "running" then inflight[host] = true end
        end
    end
    opts.resume = { run = r, done = done, finished = finished, inflight = inflight,
                    mark_done = set(o["mark-done"]), retry = set(o.retry) }
    return runner.run(book, inv, opts)
end

function M.unlock(j, host)
    local l = j:lock_of(host)
    if not l then
        print("host " .. host .. " is not locked")
        return 0
    end
    if journal_mod.holder_alive(l) then
        io.stderr:write(string.format("cutover: host %s is locked by run %s and its controller (pid %s on %s) is still there; not unlocking\n",
            host, l.run, tostring(l.pid), tostring(l.controller)))
        return 3
    end
    j:unlock_host(host)
    j:event(l.run, host, "unlock", nil, "lock broken: its controller was gone")
    print(string.format("unlocked %s (held by run %s, whose controller pid %s is gone)", host, l.run, tostring(l.pid)))
    return 0
end

function M.abort(j, id)
    local r = j:run(id)
    if not r then
        io.stderr:write("cutover: no run '" .. id .. "' in " .. j.path .. "\n")
        return 2
    end
    if r.status == "ok" or r.status == "aborted" then
        io.stderr:write("cutover: run " .. id .. " is already " .. r.status .. "\n")
        return 2
    end
    local lock = j:rows("SELECT * FROM locks WHERE run = ? LIMIT 1", id)[1]
    if r.status == "running" and lock and journal_mod.holder_alive(lock) and lock.pid ~= sys.getpid() then
        io.stderr:write("cutover: run " .. id .. " is still running (pid " .. tostring(lock.pid) .. "); stop it first\n")
        return 3
    end
    j:run_status(id, "aborted", r.exit_code)
    j:unlock_run(id)
    j:event(id, nil, "abort", nil, nil)
    print("run " .. id .. " aborted; its hosts are unlocked")
    return 0
end

return M
