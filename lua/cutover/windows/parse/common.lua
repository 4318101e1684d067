-- windows.parse.common: what the parsers share: lines of a text, the
-- line shown in messages, the error naming tool, line number and line.
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

-- The message under header line i of lines ("System error N has
-- occurred.", "[SC] Api FAILED N:"): the blank lines after it skipped,
-- the next non-blank lines trimmed and joined with spaces, after first
-- (the rest of the header line) when that is not "".
function M.message_after(lines, i, first)
    local parts = {}
    if first and first ~= "" then parts[1] = first end
    local j = i + 1
    while j <= #lines and is_blank(lines[j]) do j = j + 1 end
    while j <= #lines and not is_blank(lines[j]) do
        parts[#parts + 1] = trim(lines[j])
        j = j + 1
    end
    return table.concat(parts, " ")
end

M.trim, M.fail, M.check_text, M.is_blank = trim, fail, check_text, is_blank

return M
