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
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")
local output = require("cutover.output")

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

local function masked(s)
    if s == nil then return nil end
    return output.escape(redact.text(tostring(s)))
end

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
        elseif e.kind ~= "item" and e.kind ~= "file" and e.kind ~= "facts" then
            events[#events + 1] = { kind = e.kind, host = masked(e.host), name = masked(e.name),
                                    detail = masked(e.detail), user = masked(e.os_user), time = e.time }
        end
    end
    -- hosts in the order they ran: batch by batch, then the rest as listed
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
            host.stale = masked("refused as stale" .. (stale[h.name].step and (" at step '" .. stale[h.name].step .. "'") or "") ..
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

local function h(s)
    if s == nil then return "" end
    return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                           ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function when(t)
    if not t then return "-" end
    return os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(t))
end

local function dur(s) return s and util.format_duration(s) or "-" end

-- The one script: filters the host list by name and result (the page
-- reads fully without it: the filter bar is hidden until it runs).  A
-- "#q=TEXT&result=STATUS" fragment sets the filter when the page opens.
-- It is fixed text (nothing of the run inside), allowed by its hash.
M.FILTER_JS = [[
(function(){var f=document.getElementById("filter");if(!f)return;
var q=document.getElementById("filter-text"),s=document.getElementById("filter-result"),
n=document.getElementById("filter-count"),all=document.querySelectorAll("details.host");
function run(){var t=q.value.toLowerCase(),r=s.value,shown=0;
for(var i=0;i<all.length;i++){var d=all[i];
var ok=(!t||d.getAttribute("data-host").toLowerCase().indexOf(t)>=0)&&(!r||d.getAttribute("data-result")===r);
d.hidden=!ok;if(ok)shown++;}
n.textContent=shown+" of "+all.length+" hosts shown";}
var h=location.hash.replace(/^#/,"").split("&");
for(var i=0;i<h.length;i++){var kv=h[i].split("=");var v=decodeURIComponent(kv.slice(1).join("="));
if(kv[0]==="q")q.value=v;if(kv[0]==="result")s.value=v;}
q.addEventListener("input",run);s.addEventListener("change",run);f.hidden=false;run();})();
]]

local function hex_to_base64(hex)
    local bin = hex:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
    return require("cutover.core.vault").to_base64(bin)
end

-- The policy: the page may use its own inline styles and the filter
-- script (by its sha256, not 'unsafe-inline'), and nothing else.
M.CSP = "default-src 'none'; style-src 'unsafe-inline'; " ..
        "script-src 'sha256-" .. hex_to_base64(require("cutover.core.crypto").sha256(M.FILTER_JS)) .. "'; " ..
        "base-uri 'none'; form-action 'none'"

local CSS = [[
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:20px 0 6px;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}.kv th{background:none;color:#555;font-weight:normal}
pre{margin:2px 0;white-space:pre-wrap;font:12px/1.3 monospace;max-width:1100px}
.ok{color:#2a7a2a}.changed{color:#a66b00}.failed,.interrupted,.unreachable{color:#c0182b}
.skipped{color:#1b7c8c}.parked{color:#2450b0}.unknown{color:#8a2c8f}.ignored{color:#a66b00}
.running,.pending{color:#777}
rect.ok{fill:#4caf50}rect.changed{fill:#f0a30a}rect.failed,rect.interrupted{fill:#d7263d}
rect.skipped{fill:#8fd3de}rect.parked{fill:#3d6fd9}rect.unknown{fill:#b05cb5}
rect.ignored{fill:#e8c170}rect.running,rect.marked{fill:#999}
.lane{fill:#f7f7f7}.batch{stroke:#555;stroke-dasharray:4 3}.gate{fill:#2450b0}
svg text{font:11px sans-serif;fill:#333}
details{margin:2px 0}summary{cursor:pointer}.diff{background:#fafafa;border-left:3px solid #f0a30a;padding-left:6px}
.legend span{display:inline-block;margin-right:10px}
tr.differs{background:#fff1c2}tr.differs td:last-child{font-weight:bold}
]]

local LEGEND = { "ok", "changed", "failed", "skipped", "parked", "unknown", "interrupted" }

local function timeline(d, out)
    local hosts = d.hosts
    local n = #hosts
    if n == 0 then out[#out + 1] = "<p>No host ran.</p>"; return end
    local row = n > 100 and 6 or (n > 40 and 10 or 16)
    local left, width = 130, 1000
    local top = 18
    local span = math.max(d.t1 - d.t0, 0.001)
    local height = top + n * row + 24
    local function x(t) return string.format("%.1f", left + (t - d.t0) / span * width) end
    out[#out + 1] = string.format('<svg width="%d" height="%d" ' ..
        'role="img" aria-label="timeline">', left + width + 80, height)
    -- time axis: five ticks
    for i = 0, 4 do
        local t = d.t0 + span * i / 4
        out[#out + 1] = string.format('<text x="%s" y="12"%s>%s</text>', x(t),
            i == 4 and ' text-anchor="end"' or "", h(dur(t - d.t0)))
    end
    local y_of = {}
    for i, host in ipairs(hosts) do
        local y = top + (i - 1) * row
        y_of[host.name] = y
        out[#out + 1] = string.format('<rect class="lane" x="%d" y="%d" width="%d" height="%d"/>',
            left, y, width, row - 1)
        if row >= 10 then
            out[#out + 1] = string.format('<text x="2" y="%d">%s</text>', y + row - 4, h(host.name:sub(1, 18)))
        end
        local last = d.t1
        for _, s in ipairs(host.steps) do
            if s.started then
                local e = s.ended or last
                local w = math.max((e - s.started) / span * width, 1)
                out[#out + 1] = string.format('<rect class="%s" x="%s" y="%d" width="%.1f" height="%d">' ..
                    '<title>%s: %s, %s, %s</title></rect>', h(s.status), x(s.started), y, w, row - 1,
                    h(host.name), h(s.name), h(s.status), h(dur(s.duration)))
            end
        end
    end
    -- batches: a dashed line above each batch's first host, and its label
    for _, b in ipairs(d.batches) do
        local first = b.hosts[1] and y_of[masked(b.hosts[1])]
        if first and (b.of or 1) > 1 then
            out[#out + 1] = string.format('<line class="batch" x1="0" x2="%d" y1="%d" y2="%d"/>',
                left + width + 80, first, first)
            out[#out + 1] = string.format('<text x="%d" y="%d">batch %d/%d</text>', left + width + 6,
                first + 10, b.batch or 0, b.of or 0)
        end
    end
    -- gate approvals: a diamond at the time, on the host's lane
    for _, e in ipairs(d.events) do
        if (e.kind == "approve" or e.kind == "refuse") and e.host and y_of[e.host] then
            local cx, cy = tonumber(x(e.time)), y_of[e.host] + row / 2
            local r = math.max(row / 2, 3)
            out[#out + 1] = string.format('<path class="gate" d="M%.1f %.1fl%.1f %.1fl%.1f %.1fl%.1f %.1fz">' ..
                '<title>gate %s %s by %s at %s</title></path>', cx, cy - r, r, r, -r, r, -r, -r,
                h(e.name), e.kind == "approve" and "approved" or "refused", h(e.user), h(when(e.time)))
        end
    end
    out[#out + 1] = string.format('<text x="%d" y="%d">time since the run started; hover a bar for its step</text>',
        left, height - 6)
    out[#out + 1] = "</svg>"
end

local function kv(out, rows)
    out[#out + 1] = '<table class="kv">'
    for _, r in ipairs(rows) do
        out[#out + 1] = "<tr><th>" .. h(r[1]) .. "</th><td>" .. r[2] .. "</td></tr>"
    end
    out[#out + 1] = "</table>"
end

local function options_text(t)
    local parts = {}
    for _, k in ipairs(util.sorted_keys(t)) do
        local v = t[k]
        if type(v) == "table" then
            local items = {}
            for _, x in ipairs(v) do items[#items + 1] = tostring(x) end
            v = table.concat(items, ",")
        end
        if v ~= false and v ~= nil and v ~= "" then parts[#parts + 1] = k .. "=" .. tostring(v) end
    end
    return #parts > 0 and table.concat(parts, "  ") or "-"
end

-- Plan versus actual: the differences first, then per host what went as
-- planned (a count, to keep a large run's page small).
local function plan_section(p, out)
    out[#out + 1] = '<h2 id="plan">Plan versus actual</h2>'
    out[#out + 1] = "<p>This run applied the plan " .. h(p.file) .. " (sha256 " .. h(p.body_sha256 or "-") ..
        ", made " .. h(p.created or "-") .. " by " .. h(p.user or "?") .. "): <b>" .. p.differences ..
        (p.differences == 1 and " difference" or " differences") .. "</b>.</p>"
    local rows = {}
    for _, host in ipairs(p.hosts) do
        if host.stale then
            rows[#rows + 1] = string.format('<tr class="differs"><td>%s</td><td colspan="3">-</td><td>%s</td></tr>',
                h(host.name), h(host.stale))
        end
        for _, s in ipairs(host.steps) do
            if s.difference then
                rows[#rows + 1] = string.format('<tr class="differs"><td>%s</td><td>%s</td><td class="%s">%s</td>' ..
                    '<td class="%s">%s</td><td>%s</td></tr>', h(host.name), h(s.name),
                    h(s.planned or ""), h(s.planned and (s.planned .. (s.at_apply and " (at apply)" or "")) or "-"),
                    h(s.actual or ""), h(s.actual or "not run"), h(s.difference))
            end
        end
    end
    if #rows > 0 then
        out[#out + 1] = "<table><tr><th>host</th><th>step</th><th>planned</th><th>actual</th><th>difference</th></tr>"
        for _, r in ipairs(rows) do out[#out + 1] = r end
        out[#out + 1] = "</table>"
    end
    out[#out + 1] = "<details><summary>per host: steps as planned</summary><table>" ..
        "<tr><th>host</th><th>as planned</th><th>decided at apply time</th><th>differences</th></tr>"
    for _, host in ipairs(p.hosts) do
        local same, at = 0, 0
        for _, s in ipairs(host.steps) do
            if not s.difference then
                if s.at_apply then at = at + 1 else same = same + 1 end
            end
        end
        out[#out + 1] = string.format('<tr%s><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>',
            host.differences > 0 and ' class="differs"' or "", h(host.name), same, at, host.differences)
    end
    out[#out + 1] = "</table></details>"
end

function M.html(d)
    local out = {}
    local r = d.run
    out[#out + 1] = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    out[#out + 1] = '<meta http-equiv="Content-Security-Policy" content="' .. M.CSP .. '">'
    out[#out + 1] = '<meta name="referrer" content="no-referrer">'
    out[#out + 1] = "<title>cutover run " .. h(r.id) .. "</title><style>" .. CSS .. "</style></head><body>"
    out[#out + 1] = "<h1>cutover run " .. h(r.id) .. ': <span class="' .. h(r.status) .. '">' .. h(r.status) ..
                    "</span> (exit code " .. h(r.exit_code or "-") .. ")</h1>"
    -- counts
    local counts, failed, never = {}, {}, {}
    for _, host in ipairs(d.hosts) do
        counts[host.status] = (counts[host.status] or 0) + 1
        if host.status == "failed" or host.status == "interrupted" or host.status == "attention" then
            failed[#failed + 1] = host
        elseif host.status == "pending" then
            never[#never + 1] = host
        end
    end
    local ctext = {}
    for _, k in ipairs(util.sorted_keys(counts)) do
        ctext[#ctext + 1] = '<span class="' .. h(k) .. '">' .. counts[k] .. " " ..
                            h(k == "pending" and "never started" or k) .. "</span>"
    end
    out[#out + 1] = "<h2>Summary</h2>"
    kv(out, {
        { "run", h(r.id) .. " (" .. h(r.command) .. ")" },
        { "who", h(r.user or "?") .. " on " .. h(r.controller or "?") },
        { "started", h(when(r.started)) },
        { "last update", h(when(r.updated)) .. " (" .. h(dur((d.t1 or 0) - (d.t0 or 0))) .. ")" },
        { "playbook", h(r.playbook or "-") .. "<br><small>sha256 " .. h(r.playbook_digest or "-") .. "</small>" },
        { "inventory", h(r.inventory or "-") .. "<br><small>sha256 " .. h(r.inventory_digest or "-") .. "</small>" },
        { "options", h(masked(options_text(r.options))) },
        { "extra vars", h(masked(options_text(r.extra_vars))) },
        { "exit code", h(r.exit_code or "-") },
        { "hosts", #d.hosts .. ": " .. table.concat(ctext, ", ") },
        { "cutover", h(r.version or "-") },
    })
    out[#out + 1] = "<h2>Timeline</h2>"
    out[#out + 1] = '<p class="legend">'
    for _, k in ipairs(LEGEND) do
        out[#out + 1] = '<span><svg width="10" height="10"><rect class="' .. k ..
                        '" width="10" height="10"/></svg> ' .. k .. "</span>"
    end
    out[#out + 1] = '<span><svg width="10" height="10"><path class="gate" d="M5 0l5 5l-5 5l-5 -5z"/></svg> gate decision</span></p>'
    timeline(d, out)
    -- gates
    local gates = {}
    for _, e in ipairs(d.events) do
        if e.kind == "approve" or e.kind == "refuse" then gates[#gates + 1] = e end
    end
    out[#out + 1] = '<h2 id="gates">Gate approvals</h2>'
    if #gates == 0 then
        out[#out + 1] = "<p>No gate was decided in this run.</p>"
    else
        out[#out + 1] = "<table><tr><th>gate</th><th>host</th><th>decision</th><th>who</th><th>when</th><th>how</th></tr>"
        for _, e in ipairs(gates) do
            out[#out + 1] = string.format('<tr><td>%s</td><td>%s</td><td class="%s">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
                h(e.name), h(e.host or "-"), e.kind == "approve" and "ok" or "failed",
                e.kind == "approve" and "approved" or "refused", h(e.user), h(when(e.time)), h(e.detail))
        end
        out[#out + 1] = "</table>"
    end
    -- failures and hosts that never started
    out[#out + 1] = '<h2 id="problems">Failed and never started</h2>'
    if #failed + #never == 0 then
        out[#out + 1] = "<p>Every host finished.</p>"
    else
        out[#out + 1] = "<table><tr><th>host</th><th>status</th><th>at step</th><th>why</th></tr>"
        for _, list in ipairs({ failed, never }) do
            for _, host in ipairs(list) do
                local why = host.detail
                for _, s in ipairs(host.steps) do
                    if s.status == "failed" or s.status == "interrupted" then why = why or s.msg or s.stderr end
                end
                out[#out + 1] = string.format('<tr><td><a href="#%s">%s</a></td><td class="%s">%s</td><td>%s</td><td><pre>%s</pre></td></tr>',
                    host.anchor, h(host.name), h(host.status),
                    h(host.status == "pending" and "never started" or host.status),
                    h(host.failed_at or "-"), h(why or "-"))
            end
        end
        out[#out + 1] = "</table>"
    end
    -- other operator events (resumes, decisions)
    local other = {}
    for _, e in ipairs(d.events) do
        if e.kind ~= "approve" and e.kind ~= "refuse" then other[#other + 1] = e end
    end
    if #other > 0 then
        out[#out + 1] = "<h2>Operator events</h2><table><tr><th>when</th><th>what</th><th>host</th><th>who</th><th>detail</th></tr>"
        for _, e in ipairs(other) do
            out[#out + 1] = string.format("<tr><td>%s</td><td>%s %s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
                h(when(e.time)), h(e.kind), h(e.name), h(e.host or "-"), h(e.user), h(e.detail))
        end
        out[#out + 1] = "</table>"
    end
    if d.plan then plan_section(d.plan, out) end
    -- per host (the filter bar shows only when the script runs)
    out[#out + 1] = '<h2 id="hosts">Hosts</h2>'
    out[#out + 1] = '<p id="filter" hidden><label>host <input id="filter-text" type="search"></label> ' ..
        '<label>result <select id="filter-result"><option value="">any</option>'
    for _, k in ipairs(util.sorted_keys(counts)) do
        out[#out + 1] = '<option value="' .. h(k) .. '">' .. h(k == "pending" and "never started" or k) .. "</option>"
    end
    out[#out + 1] = '</select></label> <span id="filter-count"></span></p>'
    for _, host in ipairs(d.hosts) do
        local problem = host.status ~= "ok"
        out[#out + 1] = string.format('<details class="host" id="%s" data-host="%s" data-result="%s"%s>' ..
            '<summary><b>%s</b> <span class="%s">%s</span>%s (%d steps)</summary>',
            host.anchor, h(host.name), h(host.status), problem and " open" or "", h(host.name), h(host.status),
            h(host.status == "pending" and "never started" or host.status),
            host.failed_at and (" at " .. h(host.failed_at)) or "", #host.steps)
        if #host.steps > 0 then
            out[#out + 1] = "<table><tr><th>step</th><th>result</th><th>duration</th><th>output</th></tr>"
            for _, s in ipairs(host.steps) do
                local extra = {}
                if s.note then extra[#extra + 1] = "<i>" .. h(s.note) .. "</i>" end
                if s.msg and (s.status ~= "ok" or s.action == "debug") then extra[#extra + 1] = "<pre>" .. h(s.msg) .. "</pre>" end
                if s.stdout then extra[#extra + 1] = "<pre>stdout: " .. h(s.stdout) .. "</pre>" end
                if s.stderr then extra[#extra + 1] = "<pre>stderr: " .. h(s.stderr) .. "</pre>" end
                if s.diff then extra[#extra + 1] = '<pre class="diff">' .. h(s.diff) .. "</pre>" end
                out[#out + 1] = string.format('<tr><td title="%s">%s</td><td class="%s">%s</td><td>%s</td><td>%s</td></tr>',
                    h(s.action), h(s.name), h(s.status), h(s.status), h(dur(s.duration)), table.concat(extra))
            end
            out[#out + 1] = "</table>"
        end
        if host.detail then out[#out + 1] = "<p>" .. h(host.detail) .. "</p>" end
        out[#out + 1] = "</details>"
    end
    out[#out + 1] = "<p><small>Written by cutover from its journal. Secret values are shown as ********.</small></p>"
    out[#out + 1] = "<script>" .. M.FILTER_JS .. "</script>"
    out[#out + 1] = "</body></html>\n"
    -- the whole page once more: a secret the run knows never survives
    return redact.text(table.concat(out, "\n"))
end

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
