-- report_html: the HTML page of `cutover report` (report.lua collects
-- the run's data; this renders it).  Nothing in the page loads
-- anything: inline CSS and SVG, one inline filter script allowed by its
-- hash, and a Content-Security-Policy that forbids every fetch
-- (docs/report.md).  Every text is masked, then escaped; the whole page
-- is masked once more.
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")
local output = require("cutover.output")

local H = {}

-- A text from the journal as the report shows it: masked (a report
-- written at the end of a run knows the run's secrets), control
-- characters escaped.  report.lua masks its data with it too.
function H.masked(s)
    if s == nil then return nil end
    return output.escape(redact.text(tostring(s)))
end
local masked = H.masked


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
H.FILTER_JS = [[
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
H.CSP = "default-src 'none'; style-src 'unsafe-inline'; " ..
        "script-src 'sha256-" .. hex_to_base64(require("cutover.core.crypto").sha256(H.FILTER_JS)) .. "'; " ..
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

-- The hosts by status: counts, the ones that failed (or stopped) and
-- the ones that never started.
local function host_counts(d)
    local counts, failed, never = {}, {}, {}
    for _, host in ipairs(d.hosts) do
        counts[host.status] = (counts[host.status] or 0) + 1
        if host.status == "failed" or host.status == "interrupted" or host.status == "attention" then
            failed[#failed + 1] = host
        elseif host.status == "pending" then
            never[#never + 1] = host
        end
    end
    return counts, failed, never
end

local function summary_section(d, counts, out)
    local r = d.run
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
end

local function timeline_section(d, out)
    out[#out + 1] = "<h2>Timeline</h2>"
    out[#out + 1] = '<p class="legend">'
    for _, k in ipairs(LEGEND) do
        out[#out + 1] = '<span><svg width="10" height="10"><rect class="' .. k ..
                        '" width="10" height="10"/></svg> ' .. k .. "</span>"
    end
    out[#out + 1] = '<span><svg width="10" height="10"><path class="gate" d="M5 0l5 5l-5 5l-5 -5z"/></svg> gate ' ..
        'decision</span></p>'
    timeline(d, out)
end

local function gates_section(d, out)
    local gates = {}
    for _, e in ipairs(d.events) do
        if e.kind == "approve" or e.kind == "refuse" then gates[#gates + 1] = e end
    end
    out[#out + 1] = '<h2 id="gates">Gate approvals</h2>'
    if #gates == 0 then
        out[#out + 1] = "<p>No gate was decided in this run.</p>"
        return
    end
    out[#out + 1] = "<table><tr><th>gate</th><th>host</th><th>decision</th><th>who</th><th>when</th>" ..
        "<th>how</th></tr>"
    for _, e in ipairs(gates) do
        out[#out + 1] = string.format('<tr><td>%s</td><td>%s</td><td ' ..
            'class="%s">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
            h(e.name), h(e.host or "-"), e.kind == "approve" and "ok" or "failed",
            e.kind == "approve" and "approved" or "refused", h(e.user), h(when(e.time)), h(e.detail))
    end
    out[#out + 1] = "</table>"
end

-- failures and hosts that never started
local function problems_section(failed, never, out)
    out[#out + 1] = '<h2 id="problems">Failed and never started</h2>'
    if #failed + #never == 0 then
        out[#out + 1] = "<p>Every host finished.</p>"
        return
    end
    out[#out + 1] = "<table><tr><th>host</th><th>status</th><th>at step</th><th>why</th></tr>"
    for _, list in ipairs({ failed, never }) do
        for _, host in ipairs(list) do
            local why = host.detail
            for _, s in ipairs(host.steps) do
                if s.status == "failed" or s.status == "interrupted" then why = why or s.msg or s.stderr end
            end
            out[#out + 1] = string.format('<tr><td><a href="#%s">%s</a></td><td ' ..
                'class="%s">%s</td><td>%s</td><td><pre>%s</pre></td></tr>',
                host.anchor, h(host.name), h(host.status),
                h(host.status == "pending" and "never started" or host.status),
                h(host.failed_at or "-"), h(why or "-"))
        end
    end
    out[#out + 1] = "</table>"
end

-- other operator events (resumes, decisions)
local function operator_section(d, out)
    local other = {}
    for _, e in ipairs(d.events) do
        if e.kind ~= "approve" and e.kind ~= "refuse" then other[#other + 1] = e end
    end
    if #other == 0 then return end
    out[#out + 1] = "<h2>Operator " ..
        "events</h2><table><tr><th>when</th><th>what</th><th>host</th><th>who</th><th>detail</th></tr>"
    for _, e in ipairs(other) do
        out[#out + 1] = string.format("<tr><td>%s</td><td>%s %s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
            h(when(e.time)), h(e.kind), h(e.name), h(e.host or "-"), h(e.user), h(e.detail))
    end
    out[#out + 1] = "</table>"
end

-- One host: its steps with their results and output.
local function host_details(host, out)
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
            if s.msg and (s.status ~= "ok" or s.action == "debug") then extra[#extra + 1] = "<pre>" ..
                h(s.msg) .. "</pre>" end
            if s.stdout then extra[#extra + 1] = "<pre>stdout: " .. h(s.stdout) .. "</pre>" end
            if s.stderr then extra[#extra + 1] = "<pre>stderr: " .. h(s.stderr) .. "</pre>" end
            if s.diff then extra[#extra + 1] = '<pre class="diff">' .. h(s.diff) .. "</pre>" end
            out[#out + 1] = string.format('<tr><td title="%s">%s</td><td ' ..
                'class="%s">%s</td><td>%s</td><td>%s</td></tr>',
                h(s.action), h(s.name), h(s.status), h(s.status), h(dur(s.duration)), table.concat(extra))
        end
        out[#out + 1] = "</table>"
    end
    if host.detail then out[#out + 1] = "<p>" .. h(host.detail) .. "</p>" end
    out[#out + 1] = "</details>"
end

-- per host (the filter bar shows only when the script runs)
local function hosts_section(d, counts, out)
    out[#out + 1] = '<h2 id="hosts">Hosts</h2>'
    out[#out + 1] = '<p id="filter" hidden><label>host <input id="filter-text" type="search"></label> ' ..
        '<label>result <select id="filter-result"><option value="">any</option>'
    for _, k in ipairs(util.sorted_keys(counts)) do
        out[#out + 1] = '<option value="' .. h(k) .. '">' .. h(k == "pending" and "never started" or k) .. "</option>"
    end
    out[#out + 1] = '</select></label> <span id="filter-count"></span></p>'
    for _, host in ipairs(d.hosts) do host_details(host, out) end
end

function H.html(d)
    local out = {}
    local r = d.run
    out[#out + 1] = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    out[#out + 1] = '<meta http-equiv="Content-Security-Policy" content="' .. H.CSP .. '">'
    out[#out + 1] = '<meta name="referrer" content="no-referrer">'
    out[#out + 1] = "<title>cutover run " .. h(r.id) .. "</title><style>" .. CSS .. "</style></head><body>"
    out[#out + 1] = "<h1>cutover run " .. h(r.id) .. ': <span class="' .. h(r.status) .. '">' .. h(r.status) ..
                    "</span> (exit code " .. h(r.exit_code or "-") .. ")</h1>"
    local counts, failed, never = host_counts(d)
    summary_section(d, counts, out)
    timeline_section(d, out)
    gates_section(d, out)
    problems_section(failed, never, out)
    operator_section(d, out)
    if d.plan then plan_section(d.plan, out) end
    hosts_section(d, counts, out)
    out[#out + 1] = "<p><small>Written by cutover from its journal. Secret values are shown as ********.</small></p>"
    out[#out + 1] = "<script>" .. H.FILTER_JS .. "</script>"
    out[#out + 1] = "</body></html>\n"
    -- the whole page once more: a secret the run knows never survives
    return redact.text(table.concat(out, "\n"))
end

return H
