-- The POP3 and IMAP4 login dialogues and the reading of their replies.
-- Kept apart from the socket: `stream` is anything with write(data,
-- timeout), read_line(max, timeout) and close() (a core.net stream, or
-- the fuzzer's canned one), and a delegated run's transcript is a list of
-- lines.  Every reply is server-controlled text: each is capped at
-- MAX_LINE and no reply is trusted beyond its first bytes.
local M = {}

M.MAX_LINE = 4096
local MAX_UNTAGGED = 20  -- IMAP lines before the tagged reply we wait through

function M.imap_quote(s)
    return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

-- "... (Version 5.5.2650.23) ..." -> "5.5.2650"
function M.build_of(greeting)
    return greeting and greeting:match("[Vv]ersion (%d+%.%d+%.%d+)")
end

-- One exchange: send a line (unless nil), read one reply line.
local function ask(stream, line, timeout)
    if line then
        local ok, err = stream:write(line .. "\r\n", timeout)
        if not ok then return nil, err end
    end
    -- read_line has already taken off the CRLF
    return stream:read_line(M.MAX_LINE, timeout)
end

-- Reads the server's greeting into a new result table.  -> out, true when
-- it starts with `ready`; else out (ok false, msg set), the stream closed.
local function greet(stream, ready, protocol, timeout)
    local out = {}
    local greeting, gerr = ask(stream, nil, timeout)
    out.greeting, out.build = greeting, M.build_of(greeting)
    if greeting and greeting:sub(1, #ready) == ready then return out, true end
    stream:close()
    out.ok, out.msg = false, protocol .. ": no greeting (" .. tostring(greeting or gerr) .. ")"
    return out, false
end

-- -> {ok, greeting, build, answer, msg}; closes the stream.
function M.pop3(stream, user, password, timeout)
    local out, ready = greet(stream, "+OK", "POP3", timeout)
    if not ready then return out end
    local r1, err = ask(stream, "USER " .. user, timeout)
    local r2 = r1
    if r1 and r1:sub(1, 3) == "+OK" then r2, err = ask(stream, "PASS " .. password, timeout) end
    out.answer = r2
    out.ok = r2 ~= nil and r2:sub(1, 3) == "+OK"
    if not out.ok then out.msg = "POP3 login refused: " .. tostring(r2 or err) end
    ask(stream, "QUIT", timeout)
    stream:close()
    return out
end

function M.imap4(stream, user, password, timeout)
    local out, ready = greet(stream, "* OK", "IMAP4", timeout)
    if not ready then return out end
    local reply, err = ask(stream, "a1 LOGIN " .. M.imap_quote(user) .. " " .. M.imap_quote(password), timeout)
    local untagged = 0
    while reply and reply:sub(1, 2) == "* " and untagged < MAX_UNTAGGED do
        reply, err = ask(stream, nil, timeout)
        untagged = untagged + 1
    end
    out.answer = reply
    out.ok = reply ~= nil and reply:match("^a1 OK") ~= nil
    if not out.ok then out.msg = "IMAP4 login refused: " .. tostring(reply or err) end
    ask(stream, "a2 LOGOUT", timeout)
    stream:close()
    return out
end

-- A delegated run sends the whole dialogue at once and gets back every
-- line the server said (USER, PASS, QUIT for POP3).
function M.pop3_transcript(lines)
    local out = { greeting = lines[1], build = M.build_of(lines[1]), answer = lines[3] }
    local function ok(l) return l ~= nil and l:sub(1, 3) == "+OK" end
    out.ok = ok(lines[1]) and ok(lines[2]) and ok(lines[3])
    if not out.ok then out.msg = "POP3 login refused: " .. tostring(lines[3] or lines[2] or lines[1]) end
    return out
end

function M.imap4_transcript(lines)
    local out = { greeting = lines[1], build = M.build_of(lines[1]) }
    for _, l in ipairs(lines) do
        if l:match("^a1 ") then out.answer = l; break end
    end
    out.ok = out.answer ~= nil and out.answer:match("^a1 OK") ~= nil
    if not out.ok then out.msg = "IMAP4 login refused: " .. tostring(out.answer) end
    return out
end

-- Output of a delegated session -> lines (CRLF or LF; each capped).
function M.split_lines(text)
    local lines = {}
    for line in text:gmatch("[^\n]+") do
        lines[#lines + 1] = line:gsub("\r$", ""):sub(1, M.MAX_LINE)
    end
    return lines
end

return M
