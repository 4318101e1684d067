-- windows.parse: parsers for what the Windows 2000 tools print
-- (contract: ../shared/targets/windows2000-exchange55.md, section 4), and
-- the secedit INF reader and writer.
--
-- Tolerance: CRLF, LF or CR line endings, trailing spaces and tabs,
-- blank lines, spaces or tabs between a key and its ':' are all
-- accepted.  Anything else unexpected is reported: every parser returns
-- a table, or nil and a message naming the tool, the line number and
-- the line ("sc qc: line 4: START_TYPE: expected '<number> <name>', got
-- 'bogus'").  A parser never raises on any input (strings of any bytes);
-- a non-string input gives nil, message.  Values are never reformatted
-- beyond trimming.
local M = {}

-- Lines of a text: any line ending, trailing whitespace removed.
function M.lines(text)
    local out = {}
    text = text:gsub("\r\n", "\n"):gsub("\r", "\n")
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        out[#out + 1] = (line:gsub("[ \t\f\v%z]+$", ""))
    end
    if out[#out] == "" and text:sub(-1) == "\n" then out[#out] = nil end
    return out
end

local function trim(s) return (s:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")) end

-- A line as shown in messages: control bytes escaped, at most 80 chars.
local function show(s)
    s = s:gsub("[%c\127-\255]", function(c) return string.format("\\x%02X", c:byte()) end)
    if #s > 80 then s = s:sub(1, 77) .. "..." end
    return "'" .. s .. "'"
end
M.show = show

local function fail(tool, n, line, what)
    if n then return nil, string.format("%s: line %d: %s: %s", tool, n, what, show(line)) end
    return nil, tool .. ": " .. what
end

local function check_text(tool, text)
    if type(text) ~= "string" then return nil, tool .. ": expected text, got " .. type(text) end
    return true
end

local function is_blank(s) return s:find("^[ \t]*$") ~= nil end

-- ---------------------------------------------------------------- sc

-- sc_failure(text) -> { api = "OpenService", code = 1060, message = "..." }
-- | nil when the text holds no "[SC] <Api> FAILED <n>:" line.  The
-- message is the rest of that line and the following non-blank lines,
-- joined with spaces.
function M.sc_failure(text)
    if type(text) ~= "string" then return nil end
    local lines = M.lines(text)
    for i, line in ipairs(lines) do
        local api, code, rest = line:match("^%s*%[SC%]%s*(%S+)%s+FAILED%s+(%d+)%s*:%s*(.*)$")
        if api then
            local parts = {}
            if rest ~= "" then parts[1] = rest end
            local j = i + 1
            while j <= #lines and is_blank(lines[j]) do j = j + 1 end
            while j <= #lines and not is_blank(lines[j]) do
                parts[#parts + 1] = trim(lines[j])
                j = j + 1
            end
            return { api = api, code = math.tointeger(tonumber(code)) or tonumber(code),
                     message = table.concat(parts, " ") }
        end
    end
    return nil
end

local function sc_failed(tool, text)
    local f = M.sc_failure(text)
    if f then
        return nil, string.format("%s: %s FAILED %d: %s", tool, f.api, f.code, f.message), f
    end
end

-- "KEY   : value" -> key, value (value trimmed, may be "")
local function key_value(line)
    local key, value = line:match("^[ \t]*([%u_][%u%d_]*)[ \t]*:[ \t]*(.-)[ \t]*$")
    return key, value
end

-- "2   AUTO_START" -> 2, "AUTO_START" (base 10 or 16)
local function number_word(value, base)
    local num, word = value:match("^(%x+)[ \t]+(.-)$")
    if not num then num, word = value:match("^(%x+)$"), "" end
    if not num then return nil end
    local v = tonumber(num, base)
    if not v then return nil end
    return math.tointeger(v) or v, word
end

local function decimal(value)
    local d = value:match("^(%d+)")
    return d and math.tointeger(tonumber(d)) or nil
end

local function hex_or_decimal(value)
    local h = value:match("^0[xX](%x+)")
    if h then return math.tointeger(tonumber(h, 16)) end
    return decimal(value)
end

-- sc_qc(text) -> {
--   name, type (number; sc prints it in hex: "10" is 16), type_name,
--   start_type (2|3|4), start_type_name ("AUTO_START"...), error_control,
--   error_control_name, binary_path, load_order_group ("" when none),
--   tag (number), display_name, dependencies (list, {} when none),
--   start_name (SERVICE_START_NAME), fields (every KEY -> raw value) }
-- | nil, message [, failure] (failure: the sc_failure table when sc
-- reported one).
function M.sc_qc(text)
    local ok, err = check_text("sc qc", text)
    if not ok then return nil, err end
    local e1, e2, e3 = sc_failed("sc qc", text)
    if e3 then return e1, e2, e3 end
    local r = { dependencies = {}, fields = {} }
    local last_key
    for n, line in ipairs(M.lines(text)) do
        if is_blank(line) then
            last_key = nil
        elseif line:match("^%s*%[SC%]%s*%S+%s+SUCCESS%s*$") then
            last_key = nil
        else
            local key, value = key_value(line)
            if key then
                r.fields[key] = value
                last_key = key
                if key == "SERVICE_NAME" then
                    if r.name then return fail("sc qc", n, line, "a second SERVICE_NAME") end
                    if value == "" then return fail("sc qc", n, line, "empty SERVICE_NAME") end
                    r.name = value
                elseif key == "TYPE" or key == "START_TYPE" or key == "ERROR_CONTROL" then
                    local num, word = number_word(value, key == "TYPE" and 16 or 10)
                    if not num then
                        return fail("sc qc", n, line, key .. ": expected '<number> <name>', got")
                    end
                    local field = key:lower()
                    r[field], r[field .. "_name"] = num, word
                elseif key == "BINARY_PATH_NAME" then
                    r.binary_path = value
                elseif key == "LOAD_ORDER_GROUP" then
                    r.load_order_group = value
                elseif key == "TAG" then
                    local t = decimal(value)
                    if not t then return fail("sc qc", n, line, "TAG: expected a number, got") end
                    r.tag = t
                elseif key == "DISPLAY_NAME" then
                    r.display_name = value
                elseif key == "DEPENDENCIES" then
                    if value ~= "" then r.dependencies[#r.dependencies + 1] = value end
                elseif key == "SERVICE_START_NAME" then
                    r.start_name = value
                end
            else
                local more = line:match("^[ \t]+:[ \t]*(.-)$")
                if more and last_key == "DEPENDENCIES" then
                    if more ~= "" then r.dependencies[#r.dependencies + 1] = more end
                else
                    return fail("sc qc", n, line, "unexpected line")
                end
            end
        end
    end
    if not r.name then return nil, "sc qc: no SERVICE_NAME line in the output" end
    if not r.start_type then return nil, "sc qc: no START_TYPE line for " .. show(r.name) end
    return r
end

-- One `sc query` block parser; returns the service tables in order.
local function sc_query_blocks(tool, text)
    local list, cur, last_key = {}, nil, nil
    for n, line in ipairs(M.lines(text)) do
        if is_blank(line) then
            last_key = nil
        elseif line:match("^%s*%[SC%]%s*%S+%s+SUCCESS%s*$") then
            last_key = nil
        else
            local key, value = key_value(line)
            if key then
                if key == "SERVICE_NAME" then
                    if value == "" then return fail(tool, n, line, "empty SERVICE_NAME") end
                    cur = { name = value, flags = {}, fields = {} }
                    list[#list + 1] = cur
                elseif not cur then
                    return fail(tool, n, line, key .. " before any SERVICE_NAME")
                end
                cur.fields[key] = value
                last_key = key
                if key == "DISPLAY_NAME" then
                    cur.display_name = value
                elseif key == "TYPE" then
                    local num, word = number_word(value, 16)
                    if not num then return fail(tool, n, line, "TYPE: expected '<number> <name>', got") end
                    cur.type, cur.type_name = num, word
                elseif key == "STATE" then
                    local num, word = number_word(value, 10)
                    if not num then return fail(tool, n, line, "STATE: expected '<number> <name>', got") end
                    cur.state, cur.state_name = num, word
                elseif key == "WIN32_EXIT_CODE" or key == "SERVICE_EXIT_CODE" then
                    local v = decimal(value)
                    if not v then return fail(tool, n, line, key .. ": expected a number, got") end
                    cur[key:lower()] = v
                elseif key == "CHECKPOINT" or key == "WAIT_HINT" then
                    local v = hex_or_decimal(value)
                    if not v then return fail(tool, n, line, key .. ": expected a number, got") end
                    cur[key:lower()] = v
                end
            else
                local flags = line:match("^[ \t]+%((.*)%)$")
                if flags and cur and last_key == "STATE" then
                    for f in flags:gmatch("[^,]+") do
                        f = trim(f)
                        if f ~= "" then cur.flags[#cur.flags + 1] = f end
                    end
                else
                    return fail(tool, n, line, "unexpected line")
                end
            end
        end
    end
    for _, s in ipairs(list) do
        if not s.state then return nil, tool .. ": no STATE line for " .. show(s.name) end
    end
    return list
end

-- sc_query(text) -> { name, display_name (list form only), type,
--   type_name, state (1..4), state_name ("RUNNING"...), flags (list:
--   "STOPPABLE", ...), win32_exit_code, service_exit_code, checkpoint,
--   wait_hint, fields } | nil, message [, failure]
-- The text must hold exactly one service.
function M.sc_query(text)
    local ok, err = check_text("sc query", text)
    if not ok then return nil, err end
    local e1, e2, e3 = sc_failed("sc query", text)
    if e3 then return e1, e2, e3 end
    local list, msg = sc_query_blocks("sc query", text)
    if not list then return nil, msg end
    if #list ~= 1 then
        return nil, "sc query: expected one service, found " .. #list
    end
    return list[1]
end

-- sc_query_list(text) -> list of sc_query tables (the output of
-- `sc query type= service state= all`), in order; also
-- list.by_name[name] -> the same table.  | nil, message [, failure]
function M.sc_query_list(text)
    local ok, err = check_text("sc query", text)
    if not ok then return nil, err end
    local e1, e2, e3 = sc_failed("sc query", text)
    if e3 then return e1, e2, e3 end
    local list, msg = sc_query_blocks("sc query", text)
    if not list then return nil, msg end
    local by_name = {}
    for _, s in ipairs(list) do by_name[s.name] = s end
    list.by_name = by_name
    return list
end

-- sc_ok(text) -> true | nil, message [, failure]: the result of a
-- changing sc call ("[SC] ChangeServiceConfig SUCCESS").
function M.sc_ok(text)
    local ok, err = check_text("sc", text)
    if not ok then return nil, err end
    local e1, e2, e3 = sc_failed("sc", text)
    if e3 then return e1, e2, e3 end
    for _, line in ipairs(M.lines(text)) do
        if line:match("^%s*%[SC%]%s*%S+%s+SUCCESS$") then return true end
    end
    local first = M.lines(text)[1] or ""
    return nil, "sc: no '[SC] ... SUCCESS' line; first line: " .. show(first)
end

-- ---------------------------------------------------------------- net

-- system_error(text) -> { code = 1069, message = "..." } | nil
-- ("System error N has occurred.", a blank line, the message).
function M.system_error(text)
    if type(text) ~= "string" then return nil end
    local lines = M.lines(text)
    for i, line in ipairs(lines) do
        local code = line:match("^%s*System error (%d+) has occurred%.?$")
        if code then
            local parts, j = {}, i + 1
            while j <= #lines and is_blank(lines[j]) do j = j + 1 end
            while j <= #lines and not is_blank(lines[j]) do
                parts[#parts + 1] = trim(lines[j])
                j = j + 1
            end
            return { code = math.tointeger(tonumber(code)), message = table.concat(parts, " ") }
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
    for n, line in ipairs(M.lines(text)) do
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
    for n, line in ipairs(M.lines(text)) do
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
    local lines = M.lines(text)
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
    for _, line in ipairs(M.lines(text)) do
        if line:match("^%s*The command completed successfully%.?$") then return { ok = true } end
    end
    local first = M.lines(text)[1]
    while first ~= nil and is_blank(first) do first = nil end
    return nil, "net use: no result in the output" .. (first and (", first line: " .. show(first)) or "")
end

-- ---------------------------------------------------------------- INF

-- UTF-16LE (without the BOM) to UTF-8; unpaired surrogates become U+FFFD.
local function utf16le_to_utf8(s)
    local out, i, n = {}, 1, #s
    while i + 1 <= n do
        local u = s:byte(i) + s:byte(i + 1) * 256
        i = i + 2
        if u >= 0xD800 and u <= 0xDBFF and i + 1 <= n then
            local u2 = s:byte(i) + s:byte(i + 1) * 256
            if u2 >= 0xDC00 and u2 <= 0xDFFF then
                u = 0x10000 + (u - 0xD800) * 0x400 + (u2 - 0xDC00)
                i = i + 2
            else
                u = 0xFFFD
            end
        elseif u >= 0xD800 and u <= 0xDFFF then
            u = 0xFFFD
        end
        out[#out + 1] = utf8.char(u)
    end
    return table.concat(out)
end

-- The text of an INF file: UTF-16LE with a BOM (or without, when the
-- second byte is NUL), UTF-8 with a BOM, or plain ASCII.
-- -> text (UTF-8), encoding name
function M.decode_text(data)
    if data:sub(1, 2) == "\255\254" then return utf16le_to_utf8(data:sub(3)), "utf-16le" end
    if data:sub(1, 3) == "\239\187\191" then return data:sub(4), "utf-8" end
    if #data >= 2 and data:byte(2) == 0 and data:byte(1) ~= 0 then
        return utf16le_to_utf8(data), "utf-16le"
    end
    return data, "ascii"
end

local function split_principals(value)
    local list = {}
    for p in value:gmatch("[^,]+") do
        p = trim(p)
        if p ~= "" then list[#list + 1] = p end
    end
    return list
end

-- A principal as written in an INF: "*S-1-5-32-544" -> { sid =
-- "S-1-5-32-544" }; "CORP\exchsvc" -> { domain = "CORP", name =
-- "exchsvc" }; "Everyone" -> { name = "Everyone" }.
function M.principal(p)
    local sid = p:match("^%*(S%-[%d%-]+)$")
    if sid then return { sid = sid } end
    local domain, name = p:match("^([^\\]+)\\(.+)$")
    if domain then return { domain = domain, name = name } end
    return { name = p }
end

local PRIVILEGE_RIGHTS = "privilege rights"

-- inf(data) -> {
--   encoding = "utf-16le" | "utf-8" | "ascii",
--   sections = { { name = "Version", lines = { raw lines },
--                  entries = { { key =, value = } ... } }, ... } in order
--     (every section kept, unknown ones too; comments stay in lines),
--   section = function(name) -> the section (case-insensitive) or nil,
--   rights = { [right] = { principal, ... } } from [Privilege Rights]
--     (an empty value gives {}: no member),
--   rights_order = { right names in file order } }
-- | nil, message.  Keys and values are trimmed; values keep any quotes.
function M.inf(data)
    local ok, err = check_text("inf", data)
    if not ok then return nil, err end
    local text, encoding = M.decode_text(data)
    local doc = { encoding = encoding, sections = {}, rights = {}, rights_order = {} }
    local by_name = {}
    local cur
    for n, line in ipairs(M.lines(text)) do
        local t = trim(line)
        if t == "" or t:sub(1, 1) == ";" then
            if cur then cur.lines[#cur.lines + 1] = line end
        else
            local name = t:match("^%[(.*)%]$")
            if name then
                name = trim(name)
                if name == "" then return fail("inf", n, line, "empty section name") end
                cur = by_name[name:lower()]
                if not cur then
                    cur = { name = name, lines = {}, entries = {} }
                    doc.sections[#doc.sections + 1] = cur
                    by_name[name:lower()] = cur
                end
            elseif not cur then
                return fail("inf", n, line, "text before the first [section]")
            else
                cur.lines[#cur.lines + 1] = line
                local key, value = t:match("^([^=]-)[ \t]*=[ \t]*(.-)$")
                if key then
                    if key == "" then return fail("inf", n, line, "'=' without a key") end
                    cur.entries[#cur.entries + 1] = { key = key, value = value }
                    if cur.name:lower() == PRIVILEGE_RIGHTS then
                        if not doc.rights[key] then doc.rights_order[#doc.rights_order + 1] = key end
                        doc.rights[key] = split_principals(value)
                    end
                else
                    if cur.name:lower() == PRIVILEGE_RIGHTS then
                        return fail("inf", n, line, "[Privilege Rights]: expected 'Right = members'")
                    end
                    cur.entries[#cur.entries + 1] = { key = t, value = nil }
                end
            end
        end
    end
    if #doc.sections == 0 then return nil, "inf: no [section] in the file" end
    doc.section = function(name) return by_name[name:lower()] end
    return doc
end

local function inf_line_ok(s)
    return not s:find("[%z\1-\8\10-\31\127-\255]")
end

-- write_inf(doc) -> ASCII text with CRLF line endings | nil, message.
-- Sections are written in doc.sections order with their lines as read;
-- [Privilege Rights] is written from doc.rights: rights_order first,
-- then rights added since, sorted; "Right = a,b" ("Right =" when
-- empty).  When doc has rights but no such section, it is added at the
-- end.  A non-ASCII character anywhere is refused (the template is
-- written through `more`, in the OEM code page).
-- doc may also be a fresh { sections = {...}, rights = {...} }.
function M.write_inf(doc)
    if type(doc) ~= "table" or type(doc.sections) ~= "table" then
        return nil, "write_inf: expected an INF document"
    end
    local rights = doc.rights or {}
    local out = {}
    local function emit(s)
        if not inf_line_ok(s) then
            return nil, "write_inf: non-ASCII or control character in " .. show(s)
        end
        out[#out + 1] = s
        return true
    end
    local function emit_rights()
        local seen, order = {}, {}
        for _, r in ipairs(doc.rights_order or {}) do
            if rights[r] and not seen[r] then seen[r] = true; order[#order + 1] = r end
        end
        local extra = {}
        for r in pairs(rights) do
            if not seen[r] then extra[#extra + 1] = r end
        end
        table.sort(extra)
        for _, r in ipairs(extra) do order[#order + 1] = r end
        for _, r in ipairs(order) do
            local members = rights[r]
            if type(members) ~= "table" then return nil, "write_inf: members of " .. r .. " are not a list" end
            for _, m in ipairs(members) do
                if type(m) ~= "string" or m == "" or m:find("[,\r\n]") then
                    return nil, "write_inf: invalid member of " .. r
                end
            end
            local value = table.concat(members, ",")
            local ok, err = emit(value == "" and (r .. " =") or (r .. " = " .. value))
            if not ok then return nil, err end
        end
        return true
    end
    local wrote_rights = false
    for _, sec in ipairs(doc.sections) do
        local ok, err = emit("[" .. sec.name .. "]")
        if not ok then return nil, err end
        if sec.name:lower() == PRIVILEGE_RIGHTS then
            ok, err = emit_rights()
            if not ok then return nil, err end
            wrote_rights = true
        else
            local lines = sec.lines
            if not lines then
                lines = {}
                for _, e in ipairs(sec.entries or {}) do
                    lines[#lines + 1] = e.value and (e.key .. "=" .. e.value) or e.key
                end
            end
            for _, l in ipairs(lines) do
                ok, err = emit(l)
                if not ok then return nil, err end
            end
        end
    end
    if not wrote_rights and next(rights) then
        local ok, err = emit("[Privilege Rights]")
        if ok then ok, err = emit_rights() end
        if not ok then return nil, err end
    end
    return table.concat(out, "\r\n") .. "\r\n"
end

-- ---------------------------------------------------------------- dumpel

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
    if not M.parse_datetime(ev.date .. " " .. ev.time) then
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
    for n, line in ipairs(M.lines(text)) do
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

-- Other names for the same parsers.
M.net_result = M.net_service
M.secedit_inf = M.inf

-- ---------------------------------------------------------------- set

-- env(text) -> { NAME = value } from the output of `set` (names as
-- printed; lookups should be case-insensitive) | nil, message.
function M.env(text)
    local ok, err = check_text("set", text)
    if not ok then return nil, err end
    local env = {}
    for n, line in ipairs(M.lines(text)) do
        if not is_blank(line) then
            local k, v = line:match("^([^=]+)=(.*)$")
            if not k then return fail("set", n, line, "expected NAME=value, got") end
            env[k] = v
        end
    end
    return env
end

return M
