-- windows.parse.dumpel: what `dumpel` prints (event log lines).
local common = require("cutover.windows.parse.common")
local net = require("cutover.windows.parse.net")
local trim, fail, check_text = common.trim, common.fail, common.check_text
local is_blank = common.is_blank

local M = {}

local function event_from(fields, n, line)
    local ev = { date = fields[1], time = fields[2], source = fields[6], user = fields[7],
                 computer = fields[8], description = fields[9] or "" }
    local names = { "type", "category", "id" }
    for k = 3, 5 do
        local v = fields[k]:match("^%d+$") and math.tointeger(tonumber(fields[k]))
        if not v then
            return fail("dumpel", n, line, "field " .. k .. " (" .. names[k - 2] .. "): expected a number, in")
        end
        ev[names[k - 2]] = v
    end
    if not net.parse_datetime(ev.date .. " " .. ev.time) then
        return fail("dumpel", n, line, "expected a date and time, in")
    end
    return ev
end

-- dumpel(text) -> list of { date = "5/18/2001", time = "10:02:11 AM",
--   type = 1, category = 4, id = 13003, source, user, computer,
--   description } in the order printed (oldest first) | nil, message.
-- Fields are separated by tabs (the lab); a line with no tab is read
-- space-separated (dumpel's default), the description taking the rest.
-- Blank lines are skipped; any other line that is not an event is an
-- error (counting lines must stay exact).
function M.dumpel(text)
    local ok, err = check_text("dumpel", text)
    if not ok then return nil, err end
    local list = {}
    for n, line in ipairs(common.lines(text)) do
        if not is_blank(line) then
            local fields
            if line:find("\t", 1, true) then
                fields = {}
                for f in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = trim(f) end
                if #fields > 9 then
                    fields[9] = table.concat(fields, "\t", 9)
                    for k = #fields, 10, -1 do fields[k] = nil end
                end
                if #fields < 8 then
                    return fail("dumpel", n, line, "expected 9 tab-separated fields, got " .. #fields .. " in")
                end
            else
                local f = { line:match("^[ \t]*(%S+)[ \t]+(%d+:%d+:%d+[ \t]*[AaPp][Mm])[ \t]+(%S+)[ \t]+(%S+)"
                    .. "[ \t]+(%S+)[ \t]+(%S+)[ \t]+(%S+)[ \t]+(%S+)[ \t]*(.-)$") }
                if #f == 0 then
                    f = { line:match("^[ \t]*(%S+)[ \t]+(%d+:%d+:%d+)[ \t]+(%S+)[ \t]+(%S+)"
                        .. "[ \t]+(%S+)[ \t]+(%S+)[ \t]+(%S+)[ \t]+(%S+)[ \t]*(.-)$") }
                end
                if #f == 0 then return fail("dumpel", n, line, "expected an event line, got") end
                fields = f
            end
            local ev, msg = event_from(fields, n, line)
            if not ev then return nil, msg end
            list[#list + 1] = ev
        end
    end
    return list
end

return M
