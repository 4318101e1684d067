-- live: the status block of a multi-host run on a terminal.  It sits
-- under the scrolling log (failures and changes scroll above it) and is
-- redrawn in place at most four times a second: the play, the batch, how
-- many hosts are done, running, parked, failed or not started, the step
-- each running host is on and for how long (the slowest first, as many as
-- the terminal has rows for), the elapsed time and an ETA from the
-- batches that finished.  The text reporter (output.lua) owns it; it is
-- used only when stdout is a terminal and the format is text.
--
-- Every line is cut to the terminal's width, so a line never wraps and
-- the block can always be erased by moving up as many lines as it drew.
-- After a resize (SIGWINCH, sys.resized) the old lines may have wrapped
-- at the new width: they are counted again at that width before erasing.
local sys = require("cutover.core.sys")
local util = require("cutover.util")

local M = {}

M.INTERVAL = 0.25   -- at most this often, seconds
M.MIN_COLUMNS = 20

local Live = {}
Live.__index = Live

-- escape: the reporter's function for text from hosts (controls shown
-- as \xNN, secrets masked); paint(code, s): colour, or s without colour.
function M.new(escape, paint)
    local cols, rows = sys.terminal_size(1)
    return setmetatable({
        escape = escape, paint = paint,
        cols = cols or 80, rows = rows or 24, resizes = sys.resized(),
        drawn = {},          -- the lines on screen now (plain text)
        last_draw = -1,
        play = nil, batch = nil, batches = nil,
        hosts = {},          -- name -> "waiting" | "running" | "done" | "parked" | "failed"
        order = {},
        counts = {},         -- step results not shown as lines: status -> n
        batch_started = nil, batch_times = {},
        started = nil,
        running = {},
    }, Live)
end

local function fit(s, width)
    -- cut to width characters (UTF-8 aware), marking the cut
    if utf8.len(s) and utf8.len(s) <= width then return s end
    local out, n = {}, 0
    for _, c in utf8.codes(s) do
        n = n + 1
        if n >= width then break end
        out[#out + 1] = utf8.char(c)
    end
    return table.concat(out) .. "~"
end

function Live:start(now) self.started = self.started or now end

function Live:play_start(name, hosts)
    self.play = name
    self.batch, self.batches = nil, nil
    self.hosts, self.order = {}, {}
    self.batch_times = {}
    for _, h in ipairs(hosts) do
        self.hosts[h] = "waiting"
        self.order[#self.order + 1] = h
    end
end

function Live:batch_start(b, n, now)
    if self.batch_started and self.batch then
        self.batch_times[#self.batch_times + 1] = now - self.batch_started
    end
    self.batch, self.batches, self.batch_started = b, n, now
    self.cached = nil  -- the next draw shows the new batch
end

function Live:host_end(name, status)
    if self.hosts[name] then self.hosts[name] = status end
end

function Live:count(status)
    self.counts[status] = (self.counts[status] or 0) + 1
end

-- The lines of the block for the state now.
function Live:lines(now)
    local tally = { done = 0, running = 0, parked = 0, failed = 0, waiting = 0 }
    local busy = {}
    for name, r in pairs(self.running) do
        busy[#busy + 1] = r
        if self.hosts[name] == "waiting" then self.hosts[name] = "running" end
    end
    for _, st in pairs(self.hosts) do
        tally[st] = (tally[st] or 0) + 1
    end
    table.sort(busy, function(a, b)
        if a.started ~= b.started then return a.started < b.started end
        return a.host < b.host
    end)
    local elapsed = now - (self.started or now)
    local head = "PLAY " .. self.escape(self.play or "?")
    if self.batch then head = head .. "  batch " .. self.batch .. "/" .. self.batches end
    head = head .. "  elapsed " .. util.format_duration(elapsed)
    if self.batch and #self.batch_times > 0 then
        local sum = 0
        for _, t in ipairs(self.batch_times) do sum = sum + t end
        local per = sum / #self.batch_times
        local left = per * (self.batches - self.batch) + math.max(per - (now - self.batch_started), 0)
        head = head .. "  ETA " .. util.format_duration(left)
    end
    local lines = { head, string.format("hosts: %d done, %d running, %d parked, %d failed, %d not started",
        tally.done, tally.running, tally.parked, tally.failed, tally.waiting) }
    local shown = {}
    for _, k in ipairs({ "ok", "skipped", "changed" }) do
        if (self.counts[k] or 0) > 0 then shown[#shown + 1] = self.counts[k] .. " " .. k end
    end
    if #shown > 0 then lines[#lines + 1] = "steps not listed: " .. table.concat(shown, ", ") .. " (-v lists them)" end
    -- the running hosts: as many as the rows allow, keeping a row for the
    -- log above and one for "and N more"
    local room = math.max(self.rows - #lines - 3, 0)
    local hw = 0
    for i = 1, math.min(#busy, room) do hw = math.max(hw, utf8.len(self.escape(busy[i].host)) or 0) end
    for i, r in ipairs(busy) do
        if i > room then
            lines[#lines + 1] = string.format("  ... and %d more running", #busy - room)
            break
        end
        local host = self.escape(r.host)
        host = host .. string.rep(" ", hw - (utf8.len(host) or hw))
        lines[#lines + 1] = string.format("  %s  %s  %s%s", host, self.escape(r.step),
            util.format_duration(now - r.started), r.progress and ("  " .. self.escape(r.progress)) or "")
    end
    return lines
end

-- Erases the block (the cursor ends where its first line was).
function Live:erase()
    local n = 0
    local resized = sys.resized() ~= self.resizes
    if resized then
        self.resizes = sys.resized()
        local cols, rows = sys.terminal_size(1)
        self.cols, self.rows = cols or self.cols, rows or self.rows
    end
    for _, l in ipairs(self.drawn) do
        -- after a narrowing resize a drawn line may now take several rows
        n = n + math.max(1, math.ceil(utf8.len(l) / math.max(self.cols, 1)))
    end
    if n == 0 then return end
    local up = n - 1
    sys.write(1, "\r" .. (up > 0 and ("\27[" .. up .. "A") or "") .. "\27[J")
    self.drawn = {}
end

-- Draws the block: lines computed now when due (or forced), else the
-- lines computed last (after a log line erased them).
function Live:draw(now, force)
    if sys.resized() ~= self.resizes then force = true end
    self:erase()
    if self.cols < M.MIN_COLUMNS or self.rows < 4 then return end  -- too small: the log alone
    if force or not self.cached or now - self.last_draw >= M.INTERVAL then
        self.last_draw = now
        local width = self.cols - 1
        self.cached = {}
        for i, l in ipairs(self:lines(now)) do self.cached[i] = fit(l, width) end
    end
    local out = {}
    for i, l in ipairs(self.cached) do
        self.drawn[i] = l
        out[i] = i <= 1 and self.paint("1", l) or self.paint("2", l)
    end
    sys.write(1, table.concat(out, "\n"))
    self.last_shown = now
end

-- After a log line: the block comes back at once unless it was drawn
-- less than INTERVAL ago (a burst of lines then costs one redraw per
-- interval, the tick's, not one per line).
function Live:after_log(now)
    if now - (self.last_shown or -1) >= M.INTERVAL then self:draw(now, false) end
end

function Live:tick(running, now)
    self.running = running
    self:draw(now, true)
end

return M
