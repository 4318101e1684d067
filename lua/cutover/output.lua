-- output: what the operator sees.  Two reporters with the same methods:
-- text (a line per step and host, a recap; colour only on a terminal and
-- without NO_COLOR) and json (one event per line, docs/json-events.md).
-- Everything written passes through cutover.secrets.redact: secret values are
-- shown as ******** (docs/security.md).
local sys = require("cutover.core.sys")
local json = require("cutover.core.json")
local util = require("cutover.util")
local diff = require("cutover.diff")
local redact = require("cutover.secrets.redact")
local loop = require("cutover.core.loop")

local M = {}

M.FORMAT_VERSION = 1

-- Lines written inside the loop's tasks (steps' results, events) are
-- held here and written together at the end of the loop's turn, after
-- the journal's commit of that turn (loop.before_wait, "last"), rather
-- than one write and one wake-up of the reader per line: with many hosts
-- that was a good part of the controller's system time.  Held here, not
-- in stdio's buffer, which would write out by itself every 4 KiB.
-- Outside the loop's tasks, and on a terminal (the live line is written
-- around stdio), each line goes out at once, after any held ones.
local held, held_count = {}, 0

local function write_held()
    for i = 1, held_count do
        io.stdout:write(held[i])
        held[i] = nil
    end
    held_count = 0
    io.stdout:flush()
end

-- Writes the held lines now (before a prompt, or a line on stderr).
function M.flush()
    if held_count > 0 then write_held() end
end

local function out_line(text, at_once)
    if at_once or not loop.in_task() then
        M.flush()
        io.stdout:write(text)
        io.stdout:flush()
        return
    end
    held_count = held_count + 1
    held[held_count] = text
    -- the first line held arms the write (arming it again is a no-op)
    if held_count == 1 then loop.before_wait(write_held, "last") end
end

-- A message for the operator that is no reporter event (a run refused
-- before it starts, a journal that cannot be written, an internal error
-- on one host): "cutover: MESSAGE" on stderr, in either format, secrets
-- masked.  MESSAGE may hold further indented lines.
-- What stdout holds goes first, so the two keep their order when they
-- share a file.
function M.error(msg)
    M.flush()
    io.stderr:write("cutover: " .. redact.text(msg) .. "\n")
end

-- A line on stderr as it is (already FILE:LINE: ..., or a hint such as
-- "Try 'cutover run --help'."), secrets masked.
function M.note(line)
    M.flush()
    io.stderr:write(redact.text(line) .. "\n")
end

local STATUS_COLOUR = {
    ok = "32", changed = "33", skipped = "36", failed = "31",
    unknown = "35", interrupted = "31", ignored = "33", parked = "34",
}

-- Status of a result table (see engine/step.lua).
function M.status(r)
    if r.interrupted then return "interrupted" end
    if r.parked then return "parked" end
    if r.failed and r.ignored then return "ignored" end
    if r.failed then return "failed" end
    if r.unknown then return "unknown" end
    if r.skipped then return "skipped" end
    if r.changed then return "changed" end
    return "ok"
end

---------------------------------------------------------------- escaping

-- Text that came from a host (output, messages, names rendered from its
-- values) must not drive the operator's terminal: a clear-screen or a
-- carriage return could overwrite cutover's own status lines.  Every C0
-- control but newline and tab, DEL, every C1 control (U+0080..U+009F) and
-- every byte that is not part of valid UTF-8 is shown as \xNN.  A CR
-- right before a newline (CRLF line ends) is dropped: it moves nothing
-- that matters.  JSON events keep the text as it is (the encoder escapes
-- controls as \u00NN).
local function hex(c) return string.format("\\x%02x", c:byte()) end

local function escape_high(run)
    local out, i, n = {}, 1, #run
    while i <= n do
        local b = run:byte(i)
        local len = b >= 0xF0 and b <= 0xF4 and 4 or b >= 0xE0 and 3 or b >= 0xC2 and b <= 0xDF and 2 or 0
        local seq = len > 0 and run:sub(i, i + len - 1) or nil
        local cp = seq and #seq == len and utf8.len(seq) == 1 and utf8.codepoint(seq)
        if cp and cp >= 0x80 and cp <= 0x9F then
            out[#out + 1] = string.format("\\x%02x", cp)
            i = i + len
        elseif cp then
            out[#out + 1] = seq
            i = i + len
        else
            out[#out + 1] = hex(run:sub(i, i))
            i = i + 1
        end
    end
    return table.concat(out)
end

function M.escape(s)
    s = tostring(s)
    if not s:find("[%z\1-\8\11-\31\127-\255]") then return s end
    s = s:gsub("\r\n", "\n")
    s = s:gsub("[%z\1-\8\11-\31\127]", hex)
    s = s:gsub("[\128-\255]+", escape_high)
    return s
end

-- Masked first (a secret is matched as it is), then escaped.
local function esc(s)
    if s == nil then return nil end
    return M.escape(redact.text(tostring(s)))
end

---------------------------------------------------------------- text

local Text = {}
Text.__index = Text

function M.text(opts)
    local tty = sys.isatty(1)
    local nc = os.getenv("NO_COLOR")
    local self = setmetatable({
        verbose = opts.verbose or 0,
        diff = opts.diff,
        colour = tty and (nc == nil or nc == ""),
        tty = tty,
        live = nil,          -- the live line currently shown, if any
        last_notice = 0,
        -- the status block of multi-host runs (cutover.live): on a
        -- terminal only
        use_block = tty and os.getenv("TERM") ~= "dumb",
        block = nil,
        t0 = loop.now(),
    }, Text)
    return self
end

function Text:paint(code, s)
    if not self.colour then return s end
    return "\27[" .. code .. "m" .. s .. "\27[0m"
end

function Text:clear_live()
    if self.live then
        sys.write(1, "\r\27[K")
        self.live = nil
    end
end

function Text:clear()
    self:clear_live()
    if self.block then self.block:erase() end
end

function Text:out(s)
    self:clear_live()
    if self.block then self.block:erase() end
    out_line(redact.text(s) .. "\n", self.tty)
    if self.block then self.block:after_log(loop.now()) end
end

local function indent(text, prefix)
    return (prefix .. tostring(text):gsub("\n", "\n" .. prefix))
end

function Text:run_start(info)
    local mode = info.check and " (check mode: nothing will be changed)" or ""
    self:out(self:paint("1", "cutover " .. info.version .. ": " .. esc(info.playbook) .. mode ..
        (info.run and ("  [run " .. info.run .. "]") or "")))
end

function Text:warn(msg)
    self:out(self:paint("33", "warning: " .. esc(msg)))
end

function Text:play_start(play, hosts)
    if self.use_block and #hosts > 1 then
        if not self.block then
            self.block = require("cutover.live").new(esc, function(c, t) return self:paint(c, t) end)
            self.block:start(self.t0)
        end
        self.block:play_start(play.name, hosts)
    end
    self:out("")
    self:out(self:paint("1", "PLAY " .. esc(play.name)) .. "  [" .. esc(table.concat(hosts, ", ")) .. "]")
end

function Text:batch_start(play, b, n, hosts)
    if self.block then self.block:batch_start(b, n, loop.now()) end
    self:out(self:paint("1", "play '" .. esc(play.name) .. "': batch " .. b .. " of " .. n .. ": ") ..
             esc(table.concat(hosts, ", ")))
end

function Text:batch_end() end

function Text:step_start() end

function Text:host_end(name, status)
    if self.block then self.block:host_end(name, status) end
end

function Text:host_result(ev)
    local r = ev.result
    local status = M.status(r)
    if self.block and self.verbose == 0 and (status == "ok" or status == "skipped") and not r.warning
            and ev.action ~= "debug" and ev.action ~= "assert" and not r.resumed and not (self.diff and r.diff) then
        -- under the live block, ok lines collapse into its counts
        self.block:count(status)
        return
    end
    local name = esc(ev.step_name)
    if ev.item_label then name = name .. " [" .. esc(ev.item_label) .. "]" end
    if r.attempts and r.attempts > 1 then name = name .. " (" .. r.attempts .. " attempts)" end
    local line = string.format("  %s %s  %s  %s",
        self:paint(STATUS_COLOUR[status] or "0", string.format("%-11s", status)),
        esc(ev.host), name, self:paint("2", "(" .. util.format_duration(ev.duration) .. ")"))
    self:out(line)
    local msg = r.msg
    if msg ~= nil and msg ~= "" and (status ~= "ok" or ev.action == "debug" or ev.action == "assert"
                                     or self.verbose > 0 or r.resumed) then
        if status ~= "changed" or self.verbose > 0 or ev.action == "debug" or r.resumed then
            self:out(indent(esc(msg), "      "))
        end
    end
    if r.warning then self:out(self:paint("33", "      warning: " .. esc(r.warning))) end
    if status == "failed" or status == "ignored" or self.verbose > 0 then
        if r.stderr and r.stderr ~= "" then self:out(indent(esc(r.stderr), "      stderr: ")) end
        if self.verbose > 0 and r.stdout and r.stdout ~= "" then self:out(indent(esc(r.stdout), "      stdout: ")) end
    end
    if self.diff and r.diff then
        local text = esc(diff.render(r.diff))
        if text ~= "" then
            text = text:gsub("\n$", "")
            if self.colour then
                text = text:gsub("[^\n]+", function(l)
                    local c = l:sub(1, 1)
                    if l:sub(1, 3) == "---" or l:sub(1, 3) == "+++" then return self:paint("1", l) end
                    if c == "+" then return self:paint("32", l) end
                    if c == "-" then return self:paint("31", l) end
                    if c == "@" then return self:paint("36", l) end
                    return l
                end)
            end
            self:out(indent(text, "      "))
        end
    end
end

-- Called about once a second while steps run (see runner's ticker).
function Text:tick(running, now)
    if self.block then
        self.block:tick(running, now)
        return
    end
    local longest, who
    for _, r in pairs(running) do
        if not longest or r.started < longest.started then longest, who = r, r.host end
    end
    if not longest or now - longest.started < 1 then
        self:clear_live()
        return
    end
    local n = 0
    for _ in pairs(running) do n = n + 1 end
    local text = string.format("  ... %s on %s running for %s%s%s", esc(longest.step), esc(who),
        util.format_duration(now - longest.started),
        n > 1 and string.format(" (%d hosts busy)", n) or "",
        longest.progress and (": " .. esc(longest.progress)) or "")
    if self.tty then
        sys.write(1, "\r\27[K" .. self:paint("2", redact.text(text)))
        self.live = text
    elseif now - longest.started >= 10 and now - self.last_notice >= 30 then
        -- a log gets a line for a step that has run 10 s, then one every 30 s
        self.last_notice = now
        self:out(text)
    end
end

function Text:run_end(stats)
    if self.block then
        local c = self.block.counts
        self.block:erase()
        self.block = nil
        if (c.ok or 0) + (c.skipped or 0) > 0 then
            self:out(self:paint("2", string.format("(%d ok and %d skipped step results not listed; -v lists them)",
                c.ok or 0, c.skipped or 0)))
        end
    end
    self:out("")
    self:out(self:paint("1", "RECAP"))
    local width = 4
    for _, h in ipairs(stats.hosts) do width = math.max(width, #esc(h)) end
    local cols = { "ok", "changed", "unknown", "skipped", "failed", "ignored" }
    local header = string.format("  %-" .. width .. "s", "host")
    for _, c in ipairs(cols) do header = header .. string.format("  %7s", c) end
    self:out(header)
    for _, h in ipairs(stats.hosts) do
        local s = stats.per_host[h]
        local row = string.format("  %-" .. width .. "s", esc(h))
        for _, c in ipairs(cols) do
            local v = string.format("  %7d", s[c] or 0)
            if (s[c] or 0) > 0 and STATUS_COLOUR[c] and c ~= "ok" then v = self:paint(STATUS_COLOUR[c], v) end
            row = row .. v
        end
        if s.failed_at then row = row .. "  " .. self:paint("31", "failed at " .. esc(s.failed_at)) end
        if s.unreachable then row = row .. "  " .. self:paint("31", "unreachable") end
        if s.interrupted_at then row = row .. "  " .. self:paint("31", "interrupted at " .. esc(s.interrupted_at)) end
        if s.stopped_at then row = row .. "  " .. self:paint("31", "stopped at " .. esc(s.stopped_at) .. " (" ..
            esc(s.stopped_why) .. ")") end
        if s.never_started then row = row .. "  " .. self:paint("33", "never started (" .. esc(s.never_started) ..
            ")") end
        if s.parked_at then row = row .. "  " .. self:paint("34", "parked at gate " .. esc(s.parked_gate)) end
        self:out(row)
    end
    if stats.check then
        self:out("")
        self:out("check mode: nothing was changed. " .. (stats.totals.changed or 0) ..
            " change(s) predicted, " .. (stats.totals.unknown or 0) .. " result(s) unknowable before a real run.")
    end
    if stats.parked then
        self:out("")
        for _, gate in ipairs(util.sorted_keys(stats.parked)) do
            local hosts = stats.parked[gate]
            table.sort(hosts)
            local k = (stats.parked_kinds or {})[gate] or {}
            local resume = "cutover resume " .. stats.run
            self:out(self:paint("34", "waiting at gate '" .. gate .. "': " .. table.concat(hosts, ", ")))
            if k.kind == "secret" then
                self:out("  it asks for a secret (read from stdin):  " .. resume .. " --answer-stdin " .. gate)
                self:out("  or on a terminal:                        " .. resume)
            elseif k.kind == "choices" then
                self:out("  answer one of " .. table.concat(k.choices, ", ") .. ":  " .. resume .. " --answer " ..
                    gate .. "=" .. tostring(k.choices[1]))
                self:out("  or on a terminal:  " .. resume)
            else
                self:out("  approve every host parked there:  " .. resume .. " --approve " .. gate)
                self:out("  or one host:                      " .. resume .. " --approve " .. gate .. "@" .. hosts[1])
            end
        end
    elseif stats.run and stats.exit_code ~= 0 and not stats.check then
        self:out("")
        self:out("run " .. stats.run .. " did not finish; see 'cutover show " .. stats.run ..
                 "', continue with 'cutover resume " .. stats.run .. "'")
    end
    self:out(string.format("\nfinished in %s, exit code %d", util.format_duration(stats.duration), stats.exit_code))
end

---------------------------------------------------------------- json

local Json = {}
Json.__index = Json

function M.json(opts)
    return setmetatable({ diff = opts.diff }, Json)
end

function Json:emit(t)
    t.v = M.FORMAT_VERSION
    t.time = sys.time()
    out_line(redact.json_line(json.encode(redact.value(t))) .. "\n", false)
end

function Json:run_start(info)
    self:emit({ event = "run_start", playbook = info.playbook, check = info.check,
                version = info.version, run = info.run })
end

function Json:warn(msg) self:emit({ event = "warning", message = msg }) end

function Json:play_start(play, hosts)
    self:emit({ event = "play_start", play = play.name, hosts = setmetatable(hosts, { __jsontype = "array" }) })
end

function Json:batch_start(play, b, n, hosts)
    self:emit({ event = "batch_start", play = play.name, batch = b, batches = n,
                hosts = setmetatable(hosts, { __jsontype = "array" }) })
end

function Json:batch_end(play, b, n, failed, parked)
    self:emit({ event = "batch_end", play = play.name, batch = b, batches = n, failed = failed,
                parked = parked })
end

function Json:step_start(host, step)
    self:emit({ event = "step_start", host = host, step = step.id, name = step.name or step.id })
end

-- Fields of a result that go into events (the rest stays internal).
local HIDDEN = { diff = true }

function Json:host_result(ev)
    local r = ev.result
    local data = {}
    for k, v in pairs(r) do if not HIDDEN[k] then data[k] = v end end
    local d
    if r.diff then d = diff.render(r.diff) end
    self:emit({
        event = "host_result", host = ev.host, step = ev.step_id, name = ev.step_name,
        action = ev.action, status = M.status(r), changed = r.changed == true,
        failed = r.failed == true and not r.ignored, ignored = r.ignored == true,
        unknown = r.unknown == true, skipped = r.skipped == true,
        item = ev.item_label, duration = ev.duration, diff = d, result = data,
    })
end

function Json:tick() end
function Json:clear() end

function Json:run_end(stats)
    self:emit({ event = "run_end", exit_code = stats.exit_code, duration = stats.duration,
                hosts = stats.per_host, check = stats.check, run = stats.run, parked = stats.parked })
end

return M
