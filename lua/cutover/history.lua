-- history: `cutover history`, `cutover show RUN`, `cutover resume`,
-- `cutover unlock HOST` and `cutover abort RUN`: reading the journal and
-- continuing what it recorded.
local json = require("cutover.core.json")
local sys = require("cutover.core.sys")
local journal_mod = require("cutover.journal")
local source = require("cutover.load.source")
local engine = require("cutover.engine")
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")
local output = require("cutover.output")

local M = {}

-- Called as before_claim(run_id) between choosing a run to resume and
-- claiming it, when set.  Nothing in the product sets it: the test build
-- cutover-faults (tests/faults) does, to widen that window on purpose.
M.before_claim = nil

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

-- A damaged journal is not trusted to say what is done.
local function verified(j, doing)
    local ok, err = j:verify(doing)
    if not ok then output.error(err) end
    return ok
end
M.verified = verified

function M.show(j, id, fmt)
    -- the run of an unfinished run is what a resume would trust: check
    -- the file first (also when the run cannot even be read)
    local read, r = pcall(j.run, j, id)
    if not read or (r and not journal_mod.FINISHED[r.status]) then
        if not verified(j, "show run " .. id .. " from it") then return engine.EXIT_REFUSED end
        if not read then error(r, 0) end
    end
    if not r then
        output.error("no run '" .. id .. "' in " .. j.path)
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
    -- the operator's events; where loops stopped, which files steps
    -- read and what steps remembered are for resume, gathered facts for the record (all in --format json)
    local shown = {}
    for _, e in ipairs(events) do
        if e.kind ~= "item" and e.kind ~= "file" and e.kind ~= "diff" and e.kind ~= "batch" and e.kind ~= "facts"
            and e.kind ~= "memo" then
            shown[#shown + 1] = e
        end
    end
    if #shown > 0 then
        print("")
        print("events:")
        for _, e in ipairs(shown) do
            local what = (e.name or "") .. (e.host and ("@" .. e.host) or "")
            print(string.format("  %s  %-10s %sby %s", when(e.time), e.kind,
                what ~= "" and (what .. " ") or "", e.os_user or "?"))
        end
    end
    return 0
end

-- The operator's --mark-done / --retry decisions (decisions.lua).
M.decisions = require("cutover.decisions").decisions

-- The run to resume: the one named, else the latest unfinished one.
-- Returns the run, or nil and the exit code (the error said).
local function run_to_resume(j, id)
    local r
    if id then
        r = j:run(id)
        if not r then
            output.error("no run '" .. id .. "' in " .. j.path)
            return nil, 2
        end
    else
        r = j:latest_unfinished()
        if not r then
            output.error("no unfinished run in " .. j.path)
            return nil, 2
        end
    end
    if r.status == "ok" or r.status == "aborted" or r.status == "check" then
        output.error("run " .. r.id .. " is " .. r.status .. "; there is nothing to resume")
        return nil, 2
    end
    return r
end

-- The run's extra vars.  Secret ones are recorded masked: the sealed
-- copies come back with the vault (cutover.secrets); without one,
-- values from -e @FILE are read from their files again.
local function recorded_extra_vars(r, recorded)
    local ev = r.extra_vars and json.decode(r.extra_vars) or {}
    local masked = {}
    for k, v in pairs(ev) do if v == redact.MASK then masked[k] = true end end
    if next(masked) and type(recorded["extra-vars-files"]) == "table" then
        for _, path in ipairs(recorded["extra-vars-files"]) do
            local src = source.read(tostring(path), "extra vars file")
            if src and type(src.value) == "table" then
                for k, v in pairs(src.value) do
                    if masked[k] then ev[k] = v end
                end
            end
        end
    end
    return ev
end

-- The playbook's steps by play index and id; by_play.dynamic: the id
-- prefixes of the steps an include with a {{ }} file name reads.
local function steps_by_play(book)
    local by_play = {}
    local dynamic = {}
    for pi, play in ipairs(book.plays) do
        local map = {}
        local function walk(list)
            for _, s in ipairs(list or {}) do
                map[s.id] = s
                -- a file an include names with {{ }}: its steps are read
                -- at run time (the file's own digest is checked below)
                if s.dynamic_file then dynamic[#dynamic + 1] = s.id .. "." end
                walk(s.block); walk(s.rescue); walk(s.always)
            end
        end
        walk(play.steps)
        walk(play.handlers)
        by_play[pi] = map
    end
    by_play.dynamic = dynamic
    return by_play
end

-- the steps done before, by (play, step, occurrence); later rows win.
-- Also returns the finished steps that are gone from the playbook or
-- defined differently now (id -> why).
local function journaled_steps(j, r, by_play)
    local done = {}
    local changed_steps = {}
    for _, row in ipairs(j:steps(r.id)) do
        done[row.host] = done[row.host] or {}
        done[row.host][row.play .. "/" .. row.step .. "#" .. row.occurrence] = row
        if row.status ~= "running" and row.status ~= "failed" and row.status ~= "interrupted" then
            local s = by_play[row.play] and by_play[row.play][row.step]
            local in_dynamic = false
            for _, p in ipairs(by_play.dynamic) do
                if row.step:sub(1, #p) == p then in_dynamic = true end
            end
            if in_dynamic then
                -- checked through the included file's digest
            elseif not s then
                changed_steps[row.step] = "no longer in the playbook"
            elseif engine.step_digest(s) ~= row.digest then
                changed_steps[row.step] = "its definition changed since the run"
            end
        end
    end
    return done, changed_steps
end

-- the files the run rests on that changed since: its playbook, its
-- inventory, and every controller file a step read (templates, copy
-- sources)
local function changed_files_of(j, r, opts)
    local changed_files = {}
    if r.playbook_digest and opts.playbook_digest ~= r.playbook_digest then
        changed_files[#changed_files + 1] = "playbook " .. tostring(r.playbook)
    end
    if r.inventory_digest and opts.inventory_digest ~= r.inventory_digest then
        changed_files[#changed_files + 1] = "inventory " .. tostring(r.inventory)
    end
    local read = {}
    for _, e in ipairs(j:events(r.id)) do
        if e.kind == "file" and e.name then read[e.name] = e.detail end
    end
    for _, path in ipairs(util.sorted_keys(read)) do
        local ok, now = pcall(require("cutover.core.fs").sha256, path)
        if not ok or now ~= read[path] then
            changed_files[#changed_files + 1] = "file " .. path .. (ok and "" or " (now missing)")
        end
    end
    return changed_files
end

-- Says what changed under the run and that resume refuses.
local function refuse_changed(r, changed_files, changed_steps)
    for _, f in ipairs(changed_files) do
        output.error(f .. " changed since run " .. r.id .. " (its sha256 differs)")
    end
    for _, k in ipairs(util.sorted_keys(changed_steps)) do
        output.error("step '" .. k .. "' finished in run " .. r.id .. " but " .. changed_steps[k])
    end
    output.error("refusing to resume: the playbook or what it reads changed under the run " ..
                 "(use --accept-changed to continue with the new definitions)")
end

-- where loops stopped: host -> intent seq -> item index -> its end
local function loop_items(j, r)
    local items = {}
    for _, e in ipairs(j:events(r.id)) do
        if e.kind == "item" and e.host then
            local ok, it = pcall(json.decode, e.detail or "")
            if ok and type(it) == "table" and it.seq and it.index then
                items[e.host] = items[e.host] or {}
                items[e.host][it.seq] = items[e.host][it.seq] or {}
                items[e.host][it.seq][it.index] = it
            end
        end
    end
    return items
end

-- what steps in flight remembered (ctx.remember): host -> "seq/index" -> data
local function step_memos(j, r)
    local memos = {}
    for _, e in ipairs(j:events(r.id)) do
        if e.kind == "memo" and e.host then
            local ok, m = pcall(json.decode, e.detail or "")
            if ok and type(m) == "table" and m.seq and type(m.data) == "table" then
                memos[e.host] = memos[e.host] or {}
                memos[e.host][m.seq .. "/" .. (m.index or 0)] = m.data
            end
        end
    end
    return memos
end

-- The hosts that finished the run, and those whose last step was in
-- flight (maybe rebooting right now): they connect when that step runs
-- again, which waits for them.
local function finished_and_inflight(j, r, done)
    local finished = {}
    for _, h in ipairs(j:hosts(r.id)) do
        if h.status == "ok" then finished[h.host] = true end
    end
    local inflight = {}
    for host, rows in pairs(done) do
        for _, row in pairs(rows) do
            if row.status == "running" then inflight[host] = true end
        end
    end
    return finished, inflight
end

-- Builds the resume context and runs.  o: the resume command's options.
-- prepare(o, book_path, extra_vars) -> book, inv, opts (the cli's).
function M.resume(j, id, o, prepare)
    if not verified(j, "resume a run from it") then return engine.EXIT_REFUSED end
    local r, code = run_to_resume(j, id)
    if not r then return code end
    if M.before_claim then M.before_claim(r.id) end
    -- Claim the run before reading what it did: a second resume (or the
    -- run itself, still going) is refused here, in one transaction.
    local claimed, why, who = j:claim(r.id)
    if not claimed then return M.refuse_claim(j, r.id, why, who) end
    r = claimed
    -- the run's own options, with this invocation's output choices
    local recorded = r.options and json.decode(r.options) or {}
    for k, v in pairs(o) do recorded[k] = v end
    local ev = recorded_extra_vars(r, recorded)
    local book, inv, opts = prepare(recorded, r.playbook, ev)
    if not book then j:release_claim(r.id); return inv end

    local by_play = steps_by_play(book)
    local done, changed_steps = journaled_steps(j, r, by_play)
    local changed_files = changed_files_of(j, r, opts)
    if (next(changed_steps) or #changed_files > 0) and not o["accept-changed"] then
        refuse_changed(r, changed_files, changed_steps)
        j:release_claim(r.id)
        return engine.EXIT_REFUSED
    end
    local finished, inflight = finished_and_inflight(j, r, done)
    local items = loop_items(j, r)
    local decided, derr = M.decisions(r, j:hosts(r.id), by_play, done, o["mark-done"], o.retry, items)
    if not decided then
        output.note(derr)
        j:release_claim(r.id)
        return engine.EXIT_USAGE
    end
    opts.resume = { run = r, done = done, finished = finished, inflight = inflight,
                    mark_done = decided["mark-done"], retry = decided.retry, items = items,
                    memos = step_memos(j, r) }
    code = engine.run(book, inv, opts)
    j:release_claim(r.id)
    return code
end

function M.unlock(j, host)
    local what, l = j:unlock_host(host)
    if what == "free" then
        print("host " .. host .. " is not locked")
        return 0
    elseif what == "alive" then
        output.error(string.format("host %s is locked by run %s and its controller (pid %s on %s) is still there; " ..
            "not unlocking",
            host, l.run, tostring(l.pid), tostring(l.controller)))
        return 3
    end
    j:event(l.run, host, "unlock", nil, "lock broken: its controller was gone")
    print(string.format("unlocked %s (held by run %s, whose controller pid %s is gone)", host, l.run, tostring(l.pid)))
    return 0
end

-- The message and exit code for a run that could not be claimed.
function M.refuse_claim(j, id, why, who)
    if why == "missing" then
        output.error("no run '" .. id .. "' in " .. j.path)
        return 2
    elseif why == "finished" then
        output.error(string.format("run %s is %s now (ended by pid %s on %s, user %s); refusing to resume it",
            id, who.status, tostring(who.pid), tostring(who.controller), tostring(who.os_user)))
    else
        output.error(string.format("run %s is held by pid %s on %s (user %s), which is still running it; refusing " ..
            "to resume it",
            id, tostring(who.pid), tostring(who.controller), tostring(who.os_user)))
    end
    return engine.EXIT_REFUSED
end

function M.abort(j, id)
    -- checked and done in one transaction: a resume starting meanwhile
    -- either holds the run already (refused here) or finds it aborted
    local why, who = j:transaction(function()
        local r = j:run(id)
        if not r then return "missing" end
        if r.status == "ok" or r.status == "aborted" then return "finished", r end
        for _, l in ipairs(j:locks_of_run(id)) do
            -- a run's claim is held while a process runs or resumes it
            if (r.status == "running" or l.host == journal_mod.claim_key(id))
                    and l.pid ~= sys.getpid() and journal_mod.holder_alive(l) then
                return "alive", l
            end
        end
        j:run_status(id, "aborted", r.exit_code)
        j:unlock_run(id)
        j:event(id, nil, "abort", nil, nil)
    end)
    if why == "missing" then
        output.error("no run '" .. id .. "' in " .. j.path)
        return 2
    elseif why == "finished" then
        output.error("run " .. id .. " is already " .. who.status)
        return 2
    elseif why == "alive" then
        output.error("run " .. id .. " is still running (pid " .. tostring(who.pid) .. "); stop it first")
        return 3
    end
    print("run " .. id .. " aborted; its hosts are unlocked")
    return 0
end

return M
