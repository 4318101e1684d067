-- windows.parse.net: what `net` prints (accounts, statistics, start and
-- stop of a service, use), its "System error N" texts and dates.
local common = require("cutover.windows.parse.common")
local trim, show, fail = common.trim, common.show, common.fail
local check_text, is_blank = common.check_text, common.is_blank

local M = {}

-- system_error(text) -> { code = 1069, message = "..." } | nil
-- ("System error N has occurred.", a blank line, the message).
function M.system_error(text)
    if type(text) ~= "string" then return nil end
    local lines = common.lines(text)
    for i, line in ipairs(lines) do
        local code = line:match("^%s*System error (%d+) has occurred%.?$")
        if code then
            return { code = math.tointeger(tonumber(code)), message = common.message_after(lines, i) }
        end
    end
    return nil
end

-- not_recognized(text) -> program name | nil: cmd.exe's
-- "'X' is not recognized as an internal or external command,".
function M.not_recognized(text)
    if type(text) ~= "string" then return nil end
    return text:match("'([^'\r\n]*)' is not recognized as an internal or external command")
end

-- net_accounts(text) -> { role = "SERVER" | "PRIMARY" | "BACKUP" | ...,
--   is_dc = role is PRIMARY or BACKUP, fields = { [label] = value } }
-- | nil, message.  Labels are the text before the first ':' ("Computer
-- role", "Minimum password length").
function M.net_accounts(text)
    local ok, err = check_text("net accounts", text)
    if not ok then return nil, err end
    local se = M.system_error(text)
    if se then return nil, "net accounts: System error " .. se.code .. ": " .. se.message end
    local r = { fields = {} }
    for n, line in ipairs(common.lines(text)) do
        if not is_blank(line) then
            local key, value = line:match("^[ \t]*([^:]-)[ \t]*:[ \t]+(.-)$")
            if not key then key, value = line:match("^[ \t]*([^:]-)[ \t]*:$"), "" end
            if key and key ~= "" then
                r.fields[key] = value
                if key:lower() == "computer role" then
                    if value == "" or value:find("%s") then
                        return fail("net accounts", n, line, "Computer role: expected one word, got")
                    end
                    r.role = value:upper()
                end
            elseif line:match("^%s*The command completed successfully%.?$") then
                r.completed = true
            else
                return fail("net accounts", n, line, "unexpected line")
            end
        end
    end
    if not r.role then return nil, "net accounts: no 'Computer role' line in the output" end
    r.is_dc = r.role == "PRIMARY" or r.role == "BACKUP"
    return r
end

local MONTH_DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- "5/18/2001 9:41 AM" -> { year, month, day, hour (0-23), min, sec,
-- text, iso = "2001-05-18T09:41:00" } | nil
function M.parse_datetime(s)
    if type(s) ~= "string" then return nil end
    local mo, d, y, h, mi, rest = s:match("^(%d%d?)/(%d%d?)/(%d%d%d%d)[ \t]+(%d%d?):(%d%d)(.*)$")
    if not mo then return nil end
    local sec, ampm = rest:match("^:(%d%d)[ \t]*(.-)$")
    if not sec then sec, ampm = "0", rest:match("^[ \t]*(.-)$") end
    mo, d, y, h, mi, sec = tonumber(mo), tonumber(d), tonumber(y), tonumber(h), tonumber(mi), tonumber(sec)
    ampm = ampm:upper()
    if ampm == "AM" or ampm == "PM" then
        if h < 1 or h > 12 then return nil end
        if ampm == "AM" and h == 12 then h = 0 end
        if ampm == "PM" and h ~= 12 then h = h + 12 end
    elseif ampm ~= "" or h > 23 then
        return nil
    end
    if mo < 1 or mo > 12 or d < 1 or d > MONTH_DAYS[mo] or mi > 59 or sec > 59 then return nil end
    return { year = y, month = mo, day = d, hour = h, min = mi, sec = sec, text = s,
             iso = string.format("%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, sec) }
end

-- net_statistics(text) -> { since = "5/18/2001 9:41 AM" (as printed),
--   boot = parse_datetime(since) or nil, computer = "EXCH01" or nil,
--   fields = { [label] = value } } | nil, message
function M.net_statistics(text)
    local ok, err = check_text("net statistics", text)
    if not ok then return nil, err end
    local se = M.system_error(text)
    if se then return nil, "net statistics: System error " .. se.code .. ": " .. se.message end
    local r = { fields = {} }
    for n, line in ipairs(common.lines(text)) do
        local since = line:match("^[ \t]*Statistics since[ \t]+(.-)$")
        if since then
            if r.since then return fail("net statistics", n, line, "a second 'Statistics since' line") end
            r.since = since
            r.boot = M.parse_datetime(since)
        else
            local comp = line:match("^[ \t]*%a+ Statistics for[ \t]+\\\\(%S+)$")
            if comp then
                r.computer = comp
            else
                local key, value = line:match("^[ \t]*(%S.-)[ \t][ \t]+(%S.*)$")
                if key then r.fields[key] = value end
            end
        end
    end
    if not r.since then return nil, "net statistics: no 'Statistics since' line in the output" end
    return r
end

-- net_service(text) -> the result of `net start` / `net stop`:
--   { ok = true, status = "started" | "stopped", services = {display
--     names, in the order they started or stopped} }
--   { ok = false, status = "already_started", error = 2182, message }
--   { ok = false, status = "not_started", error = 3521, message,
--     services = { the service } }
--   { ok = false, status = "dependents", services = {the dependents},
--     message } (net stop without /y, nothing stopped)
--   { ok = false, status = "error", error = N, message } (System error N)
-- | nil, message (output not recognised).
function M.net_service(text)
    local ok, err = check_text("net", text)
    if not ok then return nil, err end
    local lines = common.lines(text)
    local started, stopped, dependents = {}, {}, nil
    local in_list, prompt, helpmsg, first = false, false, nil, nil
    local not_started, already
    for n, line in ipairs(lines) do
        local t = trim(line)
        if t ~= "" then
            first = first or { n, line }
            local s
            if t:match("^The requested service has already been started%.?$") then
                already = t
            elseif t:match("^More help is available by typing NET HELPMSG %d+%.?$") then
                helpmsg = math.tointeger(tonumber(t:match("(%d+)")))
            elseif t:match("^System error %d+ has occurred%.?$") then
                local se = M.system_error(text)
                return { ok = false, status = "error", error = se.code, message = se.message,
                         services = started }
            elseif t:match("^The following services are dependent on the .+ service%.?$") then
                dependents, in_list = {}, true
            elseif t:match("^Do you want to continue this operation%?") then
                prompt, in_list = true, false
            elseif t:match("^Stopping the .+ service will also stop these services%.?$") then
                in_list = true
            else
                s = t:match("^The (.+) service was started successfully%.?$")
                if s then
                    started[#started + 1] = s
                else
                    s = t:match("^The (.+) service was stopped successfully%.?$")
                    if s then
                        stopped[#stopped + 1] = s; in_list = false
                    elseif t:match("^The .+ service is starting") or t:match("^The .+ service is stopping") then
                        in_list = false
                    else
                        s = t:match("^The (.+) service is not started%.?$")
                        if s then
                            not_started = s
                        elseif in_list then
                            dependents[#dependents + 1] = t
                        elseif t:match("^The command completed successfully%.?$") then
                            -- some net commands end with it; nothing to record
                        else
                            return fail("net", n, line, "unexpected line")
                        end
                    end
                end
            end
        end
    end
    if already then
        return { ok = false, status = "already_started", error = helpmsg or 2182, message = already,
                 services = {} }
    end
    if not_started then
        return { ok = false, status = "not_started", error = helpmsg or 3521,
                 message = "The " .. not_started .. " service is not started.",
                 services = { not_started } }
    end
    if #stopped > 0 then return { ok = true, status = "stopped", services = stopped } end
    if #started > 0 then return { ok = true, status = "started", services = started } end
    if dependents and prompt then
        return { ok = false, status = "dependents", services = dependents,
                 message = "other services depend on it: stop them first or use /y" }
    end
    if not first then return nil, "net: no output" end
    return fail("net", first[1], first[2], "no result in the output, first line")
end

-- net_use(text) -> { ok = true } | { ok = false, error = 1326, message }
-- | nil, message.
function M.net_use(text)
    local ok, err = check_text("net use", text)
    if not ok then return nil, err end
    local se = M.system_error(text)
    if se then return { ok = false, error = se.code, message = se.message } end
    for _, line in ipairs(common.lines(text)) do
        if line:match("^%s*The command completed successfully%.?$") then return { ok = true } end
    end
    local first = common.lines(text)[1]
    while first ~= nil and is_blank(first) do first = nil end
    return nil, "net use: no result in the output" .. (first and (", first line: " .. show(first)) or "")
end

return M
