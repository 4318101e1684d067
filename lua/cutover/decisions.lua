-- decisions: the operator's --mark-done and --retry on `cutover resume`,
-- checked against the playbook and the journal: which step (or loop
-- item) on which hosts each one decides.  history.lua (resume) uses it;
-- engine/resume.lua acts on the result.
local journal_mod = require("cutover.journal")
local util = require("cutover.util")

local M = {}

-- Statuses of a journaled step that an operator's decision applies to.
local UNDECIDED = { running = true, interrupted = true, failed = true }

-- Every step of the playbook by id, and the ids (for "did you mean").
local function steps_by_id(by_play)
    local steps, names = {}, {}
    for _, map in ipairs(by_play) do
        for sid, s in pairs(map) do
            if not steps[sid] then names[#names + 1] = sid end
            steps[sid] = s
        end
    end
    return steps, names
end

-- is step sid (or its loop's item index) undecided on host: in flight
-- or failed; for an item, the one its loop was running
local function undecided(done, items, sid, host, index)
    for _, row in pairs(done[host] or {}) do
        if row.step == sid and UNDECIDED[row.status] then
            if not index then return true end
            local seen = (items or {})[host] and items[host][row.seq] or {}
            if row.status ~= "failed" and index == journal_mod.loop_inflight(seen) then return true end
        end
    end
    return false
end

-- a step of a file an include names with {{ }} is not in the loaded
-- playbook: the journal's rows under that include know it
local function journaled_dynamic(by_play, done, id)
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

-- A decision's STEP, HOST and INDEX (the last two nil when not given).
-- A step id may itself hold '@' or '[N]': the longest known id wins.
local function parse_spec(spec, steps, by_play, done)
    for _, cand in ipairs({ spec, (spec:match("^(.*)@") or spec),
        ((spec:match("^(.*)@") or spec):match("^(.*)%[%d+%]$")) }) do
        if cand and not steps[cand] and journaled_dynamic(by_play, done, cand) then
            steps[cand] = { dynamic = true, loop = true }
        end
    end
    local sid, host, index = spec, nil, nil
    local at = spec:match("^.*()@")
    if at and not steps[spec] then sid, host = spec:sub(1, at - 1), spec:sub(at + 1) end
    local base, n = sid:match("^(.*)%[(%d+)%]$")
    if base and not steps[sid] then sid, index = base, math.tointeger(tonumber(n)) end
    return sid, host, index
end

-- What one decision names: { sid =, index =, hosts = the hosts where it
-- is undecided }; nil and the problem when it names an unknown step, host or item, or decides
-- nothing.
local function decision_targets(c, spec)
    local sid, host, index = parse_spec(spec, c.steps, c.by_play, c.done)
    if not c.steps[sid] then
        table.sort(c.names)
        return nil, "no step '" .. sid .. "' in the playbook" .. util.did_you_mean(sid, c.names)
    end
    if host and not c.hosts[host] then
        table.sort(c.host_names)
        return nil, "host '" .. host .. "' is not in run " .. c.run.id .. " (its hosts: " ..
                   table.concat(c.host_names, ", ") .. ")" .. util.did_you_mean(host, c.host_names)
    end
    if index and c.steps[sid].loop == nil then
        return nil, "step '" .. sid .. "' has no loop, so no item " .. index
    end
    local targets = {}
    if host then
        if undecided(c.done, c.items, sid, host, index) then targets[1] = host end
    else
        for _, h in ipairs(c.host_names) do
            if undecided(c.done, c.items, sid, h, index) then targets[#targets + 1] = h end
        end
    end
    if #targets == 0 then
        return nil, "this decides nothing: " .. (index and ("item " .. index .. " of ") or "") ..
                   "step '" .. sid .. "' was " .. (index and "not in flight" or
                       "neither in flight nor failed") ..
                   " on " .. (host or "any host") .. " in run " .. c.run.id
    end
    return { sid = sid, index = index, hosts = targets }
end

-- The operator's --mark-done / --retry specs: STEP (every host where it
-- was in flight or failed), STEP@HOST, STEP[INDEX]@HOST (one item of a
-- loop).  Returns { ["mark-done"] = set, retry = set } of "STEP@HOST"
-- (and "STEP[INDEX]@HOST") keys | nil, message (a usage error: an
-- unknown step, host or item, a decision that decides nothing, or one
-- given to both options).
function M.decisions(r, host_rows, by_play, done, mark, retry, items)
    local steps, names = steps_by_id(by_play)
    local hosts, host_names = {}, {}
    for _, h in ipairs(host_rows) do
        hosts[h.host] = true
        host_names[#host_names + 1] = h.host
    end
    local c = { run = r, steps = steps, names = names, hosts = hosts, host_names = host_names,
                by_play = by_play, done = done, items = items }
    local out, given = { ["mark-done"] = {}, retry = {} }, {}
    for _, which in ipairs({ { "mark-done", mark }, { "retry", retry } }) do
        local opt, list = which[1], which[2]
        for _, spec in ipairs(list or {}) do
            local d, problem = decision_targets(c, spec)
            if not d then return nil, "cutover: --" .. opt .. " " .. spec .. ": " .. problem end
            local sid, index = d.sid, d.index
            for _, h in ipairs(d.hosts) do
                local key = sid .. (index and ("[" .. index .. "]") or "") .. "@" .. h
                -- a step and an item of it on one host count as the same
                local step_at = sid .. "@" .. h
                if given[step_at] and given[step_at] ~= opt then
                    return nil, "cutover: " .. key .. " is given to both --mark-done and --retry" ..
                        (key ~= given[step_at .. "\0"] and (" (as " .. given[step_at .. "\0"] .. ")") or "") ..
                        "; decide once"
                end
                given[step_at], given[step_at .. "\0"] = opt, key
                out[opt][key] = true
            end
        end
    end
    return out
end

return M
