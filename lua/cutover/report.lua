-- report: one run of the journal as a self-contained HTML file (or the
-- same data as JSON), for change boards and post-mortems.  Nothing in the
-- page loads anything: inline CSS and SVG, one inline filter script
-- allowed by its hash (the page reads fully without it), and a
-- Content-Security-Policy that forbids every fetch, so it reads the same
-- offline and from a mail attachment (docs/report.md).
--
-- The journal's rows are masked when they are written; every text is
-- masked again here (a report written at the end of a run knows the
-- run's secrets) before it is escaped, and the whole page once more.
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")
local redact = require("cutover.secrets.redact")
local html = require("cutover.report_html")

local M = {}

M.FORMAT_VERSION = 1
-- What a step's output contributes: its first lines, not all of it.  A
-- large run shares OUTPUT_BUDGET among its steps (at least HEAD_MIN
-- bytes each), so 500 hosts x 20 steps stay a file a browser opens
-- quickly; a failed step always gets the full head.
M.HEAD_LINES = 12
M.HEAD_BYTES = 2048
M.HEAD_MIN = 120
M.OUTPUT_BUDGET = 1024 * 1024
M.DIFF_BYTES = 16 * 1024

local function array(t) return setmetatable(t, { __jsontype = "array" }) end

-- Every text the report shows, masked and escaped (report_html.lua's).
local masked = html.masked

local function head(s, bytes)
    if type(s) ~= "string" or s == "" then return nil end
    local out, n = {}, 0
    for line in (s .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        if n > M.HEAD_LINES then break end
        out[#out + 1] = line
    end
    local text = table.concat(out, "\n")
    bytes = bytes or M.HEAD_BYTES
    if #text > bytes then
        -- cut on a character boundary
        local cut = bytes
        while cut > 0 and (text:byte(cut + 1) or 0) >= 0x80 and (text:byte(cut + 1) or 0) < 0xC0 do cut = cut - 1 end
        text = text:sub(1, cut)
    end
    if #text < #s:gsub("\n+$", "") then text = text .. "\n[...]" end
    return masked(text)
end

local function decode(s)
    if not s then return nil end
    local ok, v = pcall(json.decode, s)
    return ok and v or nil
end

---------------------------------------------------------------- data

-- The run's events: the --diff texts by step row, the batches, the
-- operator's events (approvals, resumes, ...), and the applied plan.
local function run_events(j, id)
    local diffs, batches, events = {}, {}, {}
    local applied
    for _, e in ipairs(j:events(id)) do
        if e.kind == "diff" then
            local d = decode(e.detail)
            if type(d) == "table" and d.seq then diffs[d.seq] = masked(d.text) end
        elseif e.kind == "batch" then
            local b = decode(e.detail)
            if type(b) == "table" then
                b.time, b.play_name = e.time, masked(e.name)
                batches[#batches + 1] = b
            end
        elseif e.kind == "plan" then
            applied = decode(e.detail)
        elseif e.kind ~= "item" and e.kind ~= "file" and e.kind ~= "facts" and e.kind ~= "memo" then
            events[#events + 1] = { kind = e.kind, host = masked(e.host), name = masked(e.name),
                                    detail = masked(e.detail), user = masked(e.os_user), time = e.time }
        end
    end
    return diffs, batches, events, applied
end

-- The run's hosts in the order they ran: batch by batch, then the rest
-- as listed.  Returns them, and each by its name.
local function hosts_in_order(j, id, batches)
    local rows, by_name, order = j:hosts(id), {}, {}
    for _, h in ipairs(rows) do by_name[h.host] = h end
    local placed = {}
    for _, b in ipairs(batches) do
        for _, name in ipairs(b.hosts or {}) do
            if by_name[name] and not placed[name] then placed[name] = true; order[#order + 1] = name end
        end
    end
    for _, h in ipairs(rows) do
        if not placed[h.host] then placed[h.host] = true; order[#order + 1] = h.host end
    end
    local hosts, index = {}, {}
    for _, name in ipairs(order) do
        local h = by_name[name]
        local entry = { name = masked(name), status = h.status, failed_at = masked(h.failed_at),
                        detail = masked(h.detail), steps = array({}) }
        hosts[#hosts + 1] = entry
        entry.anchor = "host-" .. #hosts
        index[name] = entry
    end
    return hosts, index
end

-- The run `id` of journal j as plain data | nil, message.
function M.collect(j, id)
    local r = j:run(id)
    if not r then return nil, "no run '" .. id .. "' in " .. j.path end
    local run = {
        id = r.id, status = r.status, exit_code = r.exit_code, command = r.command,
        user = masked(r.os_user), controller = masked(r.controller), started = r.created,
        updated = r.updated, playbook = masked(r.playbook), playbook_digest = r.playbook_digest,
        inventory = masked(r.inventory), inventory_digest = r.inventory_digest,
        version = r.version, options = redact.value(decode(r.options) or {}),
        extra_vars = redact.value(decode(r.extra_vars) or {}),
    }
    local diffs, batches, events, applied = run_events(j, id)
    local hosts, index = hosts_in_order(j, id, batches)
    local t0, t1 = r.created, r.updated
    local rows_of_steps = j:steps(id)
    local cap = math.max(M.HEAD_MIN, math.min(M.HEAD_BYTES, M.OUTPUT_BUDGET // math.max(#rows_of_steps, 1)))
    for _, s in ipairs(rows_of_steps) do
        local h = index[s.host]
        if h then
            local res = decode(s.result)
            res = type(res) == "table" and res or {}
            local bad = s.status == "failed" or s.status == "interrupted" or s.status == "ignored"
            local step = {
                seq = s.seq, play = s.play, id = masked(s.step), name = masked(s.name or s.step),
                action = s.action, status = s.status, changed = s.changed == 1,
                started = s.started, ended = s.ended,
                duration = s.started and s.ended and (s.ended - s.started) or nil,
                note = masked(s.note), msg = head(res.msg ~= nil and tostring(res.msg) or nil),
                stdout = head(res.stdout, bad and M.HEAD_BYTES or cap),
                stderr = head(res.stderr, bad and M.HEAD_BYTES or cap), diff = diffs[s.seq],
            }
            if step.diff and #step.diff > M.DIFF_BYTES then
                step.diff = step.diff:sub(1, M.DIFF_BYTES) .. "\n[...]"
            end
            table.insert(h.steps, step)
            if s.started and s.started < t0 then t0 = s.started end
            if (s.ended or s.started or 0) > t1 then t1 = s.ended or s.started end
        end
    end
    for _, e in ipairs(events) do if e.time > t1 then t1 = e.time end end
    for _, b in ipairs(batches) do b.hosts = array(b.hosts or {}) end
    return { v = M.FORMAT_VERSION, run = run, hosts = array(hosts), batches = array(batches),
             events = array(events), t0 = t0, t1 = t1,
             plan = type(applied) == "table" and M.plan_versus_actual(applied, rows_of_steps) or nil }
end

-- A loop's per-item predictions as one: what the step as a whole was
-- predicted to do.
local function combine(group)
    local any = {}
    for _, e in ipairs(group) do any[e.status or "?"] = true end
    local st
    if any.failed then st = "failed"
    elseif any.changed then st = "changed"
    elseif any.ok or any.ignored then st = "ok"
    elseif any.skipped then st = "skipped"
    else st = group[1].status end
    return st
end

-- What differs between a prediction and what the run did (nil: nothing).
local function difference(p, a)
    if not a then return "planned but not run" end
    if not p then return "not in the plan" end
    if p.at_apply then return nil end
    if p.status == a then return nil end
    if p.status == "changed" and (a == "ok" or a == "skipped") then return "planned a change, was " .. a end
    if (p.status == "ok" or p.status == "skipped") and a == "changed" then return "unplanned change" end
    return "planned " .. tostring(p.status) .. ", was " .. tostring(a)
end

-- Plan versus actual for a run made by `cutover apply`: per host, each
-- planned step (a loop's items taken together) beside the journal's
-- result for the same play, step id and occurrence.
function M.plan_versus_actual(rec, step_rows)
    local actual = {}
    for _, s in ipairs(step_rows) do
        actual[s.host] = actual[s.host] or { by = {}, order = {} }
        local key = s.play .. "/" .. s.step .. "#" .. (s.occurrence or 1)
        local a = actual[s.host]
        if not a.by[key] then a.order[#a.order + 1] = key end
        a.by[key] = s  -- later rows (a resume) win
    end
    local stale = {}
    for _, st in ipairs(rec.stale or {}) do if type(st) == "table" and st.host then stale[st.host] = st end end
    local out = { file = masked(rec.file), body_sha256 = rec.body_sha256, created = masked(rec.created),
                  user = masked(rec.user), hosts = array({}), differences = 0 }
    for _, h in ipairs(type(rec.hosts) == "table" and rec.hosts or {}) do
        local a = actual[h.name] or { by = {}, order = {} }
        local host = { name = masked(h.name), steps = array({}), differences = 0 }
        if stale[h.name] then
            host.stale = masked("refused as stale" .. (stale[h.name].step and (" at step '" .. stale[h.name].step ..
                "'") or "") ..
                                ": " .. tostring(stale[h.name].why or ""))
        end
        -- consecutive items of one step are one occurrence
        local groups, seen = {}, {}
        for _, e in ipairs(type(h.steps) == "table" and h.steps or {}) do
            local last = groups[#groups]
            if last and e.item ~= nil and last.id == e.id and last.play == e.play and last.items then
                last.items[#last.items + 1] = e
            else
                local k = tostring(e.play) .. "/" .. tostring(e.id)
                seen[k] = (seen[k] or 0) + 1
                groups[#groups + 1] = { play = e.play, id = e.id, name = e.name, at_apply = e.at_apply,
                                        key = k .. "#" .. seen[k], items = e.item ~= nil and { e } or nil,
                                        status = e.status }
            end
        end
        local used = {}
        local function add(g, row)
            local p = g and { status = g.items and combine(g.items) or g.status, at_apply = g.at_apply } or nil
            local diff_text = difference(p, row and row.status)
            local name
            if g then name = g.name or g.id else name = row.name or row.step end
            local entry = {
                play = g and g.play or row.play, id = masked(g and g.id or row.step),
                name = masked(name),
                planned = p and p.status or nil, at_apply = p and p.at_apply or nil,
                items = g and g.items and #g.items or nil,
                actual = row and row.status or nil, difference = diff_text,
            }
            if diff_text then host.differences = host.differences + 1 end
            host.steps[#host.steps + 1] = entry
        end
        for _, g in ipairs(groups) do
            local row = a.by[g.key]
            if row then used[g.key] = true end
            add(g, row)
        end
        for _, k in ipairs(a.order) do
            if not used[k] then add(nil, a.by[k]) end
        end
        out.differences = out.differences + host.differences
        out.hosts[#out.hosts + 1] = host
    end
    return out
end

---------------------------------------------------------------- HTML

-- The page itself is report_html.lua's.
M.FILTER_JS = html.FILTER_JS
M.CSP = html.CSP
M.html = html.html

function M.json(d)
    return redact.json_line(json.encode(redact.value(d)))
end

-- Writes the report of run id to path (format "html" or "json"; path
-- "-" is stdout).  Returns true | nil, message.
function M.write(j, id, path, format)
    local d, err = M.collect(j, id)
    if not d then return nil, err end
    local text = format == "json" and (M.json(d) .. "\n") or M.html(d)
    if path == "-" then
        io.stdout:write(text)
        io.stdout:flush()
        return true
    end
    local ok, werr = fs.write(path, text, 384)
    if not ok then return nil, "report " .. path .. ": " .. tostring(werr) end
    return true
end

return M
