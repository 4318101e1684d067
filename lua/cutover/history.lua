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
    -- the operator's events; where loops stopped and which files steps
    -- read are for resume, gathered facts for the record (all in --format json)
    local shown = {}
    for _, e in ipairs(events) do
        if e.kind ~= "item" and e.kind ~= "file" and e.kind ~= "diff" and e.kind ~= "batch" and e.kind ~= "facts" then
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

-- Statuses of a journaled step that an operator's decision applies to.
local UNDECIDED = { running = true, interrupted = true, failed = true }

-- The operator's --mark-done / --retry specs: STEP (every host where it
-- was in flight or failed), STEP@HOST, STEP[INDEX]@HOST (one item of a
-- loop).  Returns { ["mark-done"] = set, retry = set } of "STEP@HOST"
-- (and "STEP[INDEX]@HOST") keys | nil, message (a usage error: an
-- unknown step, host or item, a decision that decides nothing, or one
-- given to both options).
function M.decisions(r, host_rows, by_play, done, mark, retry, items)
    local steps, names = {}, {}
    for _, map in ipairs(by_play) do
        for sid, s in pairs(map) do
            if not steps[sid] then names[#names + 1] = sid end
            steps[sid] = s
        end
    end
    local hosts, host_names = {}, {}
    for _, h in ipairs(host_rows) do
        hosts[h.host] = true
        host_names[#host_names + 1] = h.host
    end
    -- is step sid (or its loop's item index) undecided on host: in
    -- flight or failed; for an item, the one its loop was running
    local function undecided(sid, host, index)
        for _, row in pairs(done[host] or {}) do
            if row.step == sid and UNDECIDED[row.status] then
                if not index then return true end
                local seen = (items or {})[host] and items[host][row.seq] or {}
                if row.status ~= "failed" and index == journal_mod.loop_inflight(seen) then return true end
            end
        end
        return false
    end
    local out, given = { ["mark-done"] = {}, retry = {} }, {}
    for _, which in ipairs({ { "mark-done", mark }, { "retry", retry } }) do
        local opt, list = which[1], which[2]
        for _, spec in ipairs(list or {}) do
            local function bad(msg)
                return nil, "cutover: --" .. opt .. " " .. spec .. ": " .. msg
            end
            -- a step of a file an include names with {{ }} is not in the
            -- loaded playbook: the journal's rows under that include know it
            local function journaled(id)
                for _, p in ipairs(by_play.dynamic or {}) do
                    if id:sub(1, #p) == p then
                        for _, rows in pairs(done) do
                            for _, row in pairs(rows) do
                                if row.step == id then return true end
                            end
                        end
                    end
                end
                return false
            end
            for _, cand in ipairs({ spec, (spec:match("^(.*)@") or spec), ((spec:match("^(.*)@") or spec):match("^(.*)%[%d+%]$")) }) do
                if cand and not steps[cand] and journaled(cand) then steps[cand] = { dynamic = true, loop = true } end
            end
            local sid, host, index = spec, nil, nil
            local at = spec:match("^.*()@")
            if at and not steps[spec] then sid, host = spec:sub(1, at - 1), spec:sub(at + 1) end
            local base, n = sid:match("^(.*)%[(%d+)%]$")
            if base and not steps[sid] then sid, index = base, math.tointeger(tonumber(n)) end
            if not steps[sid] then
                table.sort(names)
                return bad("no step '" .. sid .. "' in the playbook" .. util.did_you_mean(sid, names))
            end
            if host and not hosts[host] then
                table.sort(host_names)
                return bad("host '" .. host .. "' is not in run " .. r.id .. " (its hosts: " ..
                           table.concat(host_names, ", ") .. ")" .. util.did_you_mean(host, host_names))
            end
            if index and steps[sid].loop == nil then
                return bad("step '" .. sid .. "' has no loop, so no item " .. index)
            end
            local targets = {}
            if host then
                if undecided(sid, host, index) then targets[1] = host end
            else
                for _, h in ipairs(host_names) do
                    if undecided(sid, h, index) then targets[#targets + 1] = h end
                end
            end
            if #targets == 0 then
                return bad("this decides nothing: " .. (index and ("item " .. index .. " of ") or "") ..
                           "step '" .. sid .. "' was " .. (index and "not in flight" or "neither in flight nor failed") ..
                           " on " .. (host or "any host") .. " in run " .. r.id)
            end
            for _, h in ipairs(targets) do
                local key = sid .. (index and ("[" .. index .. "]") or "") .. "@" .. h
                -- a step and an item of it on one host count as the same
                local base = sid .. "@" .. h
                if given[base] and given[base] ~= opt then
                    return nil, "cutover: " .. key .. " is given to both --mark-done and --retry" ..
                        (key ~= given[base .. "\0"] and (" (as " .. given[base .. "\0"] .. ")") or "") .. "; decide once"
                end
                given[base], given[base .. "\0"] = opt, key
                out[opt][key] = true
            end
        end
    end
    return out
end

-- Builds the resume context and runs.  o: the resume command's options.
-- prepare(o, book_path, extra_vars) -> book, inv, opts (the cli's).
function M.resume(j, id, o, prepare)
    if not verified(j, "resume a run from it") then return engine.EXIT_REFUSED end
    local r
    if id then
        r = j:run(id)
        if not r then
            output.error("no run '" .. id .. "' in " .. j.path)
            return 2
        end
    else
        r = j:latest_unfinished()
        if not r then
            output.error("no unfinished run in " .. j.path)
            return 2
        end
    end
    if r.status == "ok" or r.status == "aborted" or r.status == "check" then
        output.error("run " .. r.id .. " is " .. r.status .. "; there is nothing to resume")
        return 2
    end
    if M.before_claim then M.before_claim(r.id) end
    -- Claim the run before reading what it did: a second resume (or the
    -- run itself, still going) is refused here, in one transaction.
    local claimed, why, who = j:claim(r.id)
    if not claimed then return M.refuse_claim(j, r.id, why, who) end
    r = claimed
    -- the run's own options, with this invocation's output choices
    local recorded = r.options and json.decode(r.options) or {}
    for k, v in pairs(o) do recorded[k] = v end
    local ev = r.extra_vars and json.decode(r.extra_vars) or {}
    -- secret extra vars are recorded masked: the sealed copies come back
    -- with the vault (cutover.secrets); without one, values from -e @FILE
    -- are read from their files again
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
    local book, inv, opts = prepare(recorded, r.playbook, ev)
    if not book then j:release_claim(r.id); return inv end

    -- the steps done before, by (play, step, occurrence); later rows win
    local done = {}
    local changed_steps = {}
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
    for _, row in ipairs(j:steps(r.id)) do
        done[row.host] = done[row.host] or {}
        done[row.host][row.play .. "/" .. row.step .. "#" .. row.occurrence] = row
        if row.status ~= "running" and row.status ~= "failed" and row.status ~= "interrupted" then
            local s = by_play[row.play] and by_play[row.play][row.step]
            local in_dynamic = false
            for _, p in ipairs(dynamic) do
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
    -- the files the run rests on: its playbook, its inventory, and every
    -- controller file a step read (templates, copy sources)
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
    if (next(changed_steps) or #changed_files > 0) and not o["accept-changed"] then
        for _, f in ipairs(changed_files) do
            output.error(f .. " changed since run " .. r.id .. " (its sha256 differs)")
        end
        for _, k in ipairs(util.sorted_keys(changed_steps)) do
            output.error("step '" .. k .. "' finished in run " .. r.id .. " but " .. changed_steps[k])
        end
        output.error("refusing to resume: the playbook or what it reads changed under the run " ..
                     "(use --accept-changed to continue with the new definitions)")
        j:release_claim(r.id)
        return engine.EXIT_REFUSED
    end
    local finished = {}
    for _, h in ipairs(j:hosts(r.id)) do
        if h.status == "ok" then finished[h.host] = true end
    end
    -- hosts whose last step was in flight (maybe rebooting right now):
    -- they connect when that step runs again, which waits for them
    local inflight = {}
    for host, rows in pairs(done) do
        for _, row in pairs(rows) do
            if row.status == "running" then inflight[host] = true end
        end
    end
    -- where loops stopped: host -> intent seq -> item index -> its end
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
    local decided, derr = M.decisions(r, j:hosts(r.id), by_play, done, o["mark-done"], o.retry, items)
    if not decided then
        output.note(derr)
        j:release_claim(r.id)
        return engine.EXIT_USAGE
    end
    opts.resume = { run = r, done = done, finished = finished, inflight = inflight,
                    mark_done = decided["mark-done"], retry = decided.retry, items = items }
    local code = engine.run(book, inv, opts)
    j:release_claim(r.id)
    return code
end

function M.unlock(j, host)
    local what, l = j:unlock_host(host)
    if what == "free" then
        print("host " .. host .. " is not locked")
        return 0
    elseif what == "alive" then
        output.error(string.format("host %s is locked by run %s and its controller (pid %s on %s) is still there; not unlocking",
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
        output.error(string.format("run %s is held by pid %s on %s (user %s), which is still running it; refusing to resume it",
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
