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
            return { api = api, code = math.tointeger(tonumber(code)) or tonumber(code),
                     message = common.message_after(lines, i, rest) }
        end
    end
    return nil
end

-- What every sc parser checks first: the text is text and holds no
-- "[SC] ... FAILED" line.  Returns true, message [, failure] when not.
local function sc_unusable(tool, text)
    local ok, err = check_text(tool, text)
    if not ok then return true, err end
    local f = M.sc_failure(text)
    if f then
        return true, string.format("%s: %s FAILED %d: %s", tool, f.api, f.code, f.message), f
    end
    return false
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

-- How a known field's value is read: text as it is; a number and its
-- name ("10  WIN32_OWN_PROCESS": TYPE is hex); a number.
local READ = {
    text = function(value) return value end,
    hex_word = function(value) return number_word(value, 16) end,
    word = function(value) return number_word(value, 10) end,
    decimal = decimal,
    hex_or_decimal = hex_or_decimal,
}

-- The known fields of `sc qc` and `sc query`: KEY -> { how, field }
-- (a number and its name go to field and field_name).
local QC_FIELDS = {
    TYPE = { "hex_word", "type" }, START_TYPE = { "word", "start_type" },
    ERROR_CONTROL = { "word", "error_control" }, BINARY_PATH_NAME = { "text", "binary_path" },
    LOAD_ORDER_GROUP = { "text", "load_order_group" }, TAG = { "decimal", "tag" },
    DISPLAY_NAME = { "text", "display_name" }, SERVICE_START_NAME = { "text", "start_name" },
}
local QUERY_FIELDS = {
    DISPLAY_NAME = { "text", "display_name" }, TYPE = { "hex_word", "type" }, STATE = { "word", "state" },
    WIN32_EXIT_CODE = { "decimal", "win32_exit_code" }, SERVICE_EXIT_CODE = { "decimal", "service_exit_code" },
    CHECKPOINT = { "hex_or_decimal", "checkpoint" }, WAIT_HINT = { "hex_or_decimal", "wait_hint" },
}

-- Reads a known field into t; true | nil, message.
local function read_field(t, known, tool, n, line, key, value)
    local spec = known[key]
    if not spec then return true end
    local v, name = READ[spec[1]](value)
    if v == nil then
        return fail(tool, n, line, key .. (spec[1]:find("word") and ": expected '<number> <name>', got"
            or ": expected a number, got"))
    end
    t[spec[2]] = v
    if name ~= nil then t[spec[2] .. "_name"] = name end
    return true
end

-- Walks sc's "KEY : value" lines: field(n, line, key, value) for each,
-- more(n, line, last_key) for any other line (one continuing the last
-- key's value); a blank or "[SC] ... SUCCESS" line ends a block.  Stops
-- at the first nil, message either returns.  true | nil, message.
local function walk_fields(text, field, more)
    local last_key
    for n, line in ipairs(common.lines(text)) do
        if is_blank(line) or line:match("^%s*%[SC%]%s*%S+%s+SUCCESS%s*$") then
            last_key = nil
        else
            local key, value = key_value(line)
            local ok, err
            if key then
                ok, err = field(n, line, key, value)
                last_key = key
            else
                ok, err = more(n, line, last_key)
            end
            if not ok then return nil, err end
        end
    end
    return true
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
    local bad, err, failure = sc_unusable("sc qc", text)
    if bad then return nil, err, failure end
    local r = { dependencies = {}, fields = {} }
    local ok, werr = walk_fields(text, function(n, line, key, value)
        r.fields[key] = value
        if key == "SERVICE_NAME" then
            if r.name then return fail("sc qc", n, line, "a second SERVICE_NAME") end
            if value == "" then return fail("sc qc", n, line, "empty SERVICE_NAME") end
            r.name = value
        elseif key == "DEPENDENCIES" then
            if value ~= "" then r.dependencies[#r.dependencies + 1] = value end
        end
        return read_field(r, QC_FIELDS, "sc qc", n, line, key, value)
    end, function(n, line, last_key)
        local more = line:match("^[ \t]+:[ \t]*(.-)$")
        if not (more and last_key == "DEPENDENCIES") then return fail("sc qc", n, line, "unexpected line") end
        if more ~= "" then r.dependencies[#r.dependencies + 1] = more end
        return true
    end)
    if not ok then return nil, werr end
    if not r.name then return nil, "sc qc: no SERVICE_NAME line in the output" end
    if not r.start_type then return nil, "sc qc: no START_TYPE line for " .. show(r.name) end
    return r
end

-- One `sc query` block parser; returns the service tables in order.
local function sc_query_blocks(tool, text)
    local list, cur = {}, nil
    local ok, werr = walk_fields(text, function(n, line, key, value)
        if key == "SERVICE_NAME" then
            if value == "" then return fail(tool, n, line, "empty SERVICE_NAME") end
            cur = { name = value, flags = {}, fields = {} }
            list[#list + 1] = cur
        elseif not cur then
            return fail(tool, n, line, key .. " before any SERVICE_NAME")
        end
        cur.fields[key] = value
        return read_field(cur, QUERY_FIELDS, tool, n, line, key, value)
    end, function(n, line, last_key)
        local flags = line:match("^[ \t]+%((.*)%)$")
        if not (flags and cur and last_key == "STATE") then return fail(tool, n, line, "unexpected line") end
        for f in flags:gmatch("[^,]+") do
            f = trim(f)
            if f ~= "" then cur.flags[#cur.flags + 1] = f end
        end
        return true
    end)
    if not ok then return nil, werr end
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
    local list, err, failure = M.sc_query_list(text)
    if not list then return nil, err, failure end
    if #list ~= 1 then
        return nil, "sc query: expected one service, found " .. #list
    end
    return list[1]
end

-- sc_query_list(text) -> list of sc_query tables (the output of
-- `sc query type= service state= all`), in order; also
-- list.by_name[name] -> the same table.  | nil, message [, failure]
function M.sc_query_list(text)
    local bad, err, failure = sc_unusable("sc query", text)
    if bad then return nil, err, failure end
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
    local bad, err, failure = sc_unusable("sc", text)
    if bad then return nil, err, failure end
    for _, line in ipairs(common.lines(text)) do
        if line:match("^%s*%[SC%]%s*%S+%s+SUCCESS$") then return true end
    end
    local first = common.lines(text)[1] or ""
    return nil, "sc: no '[SC] ... SUCCESS' line; first line: " .. show(first)
end

return M
