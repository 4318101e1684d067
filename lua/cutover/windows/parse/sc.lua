-- windows.parse.sc: what `sc` prints (qc, query, failures).
local common = require("cutover.windows.parse.common")
local trim, show, fail = common.trim, common.show, common.fail
local check_text, is_blank = common.check_text, common.is_blank

local M = {}

-- sc_failure(text) -> { api = "OpenService", code = 1060, message = "..." }
-- | nil when the text holds no "[SC] <Api> FAILED <n>:" line.  The
-- message is the rest of that line and the following non-blank lines,
-- joined with spaces.
function M.sc_failure(text)
    if type(text) ~= "string" then return nil end
    local lines = common.lines(text)
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
    for n, line in ipairs(common.lines(text)) do
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
    for n, line in ipairs(common.lines(text)) do
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
    for _, line in ipairs(common.lines(text)) do
        if line:match("^%s*%[SC%]%s*%S+%s+SUCCESS$") then return true end
    end
    local first = common.lines(text)[1] or ""
    return nil, "sc: no '[SC] ... SUCCESS' line; first line: " .. show(first)
end

return M
