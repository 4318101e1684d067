-- Units of lua/cutover/mail.lua: the POP3/IMAP4 dialogues against scripted
-- servers (what is sent, what is concluded), and hostile replies.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local mail = require("cutover.mail")

-- A scripted server: replies are served one per read_line; every write
-- is recorded.  An overlong reply fails like core.net's read_line.
local function server(replies)
    local s = { sent = {}, closed = false, i = 0 }
    function s:write(data) self.sent[#self.sent + 1] = data; return true end
    function s:close() self.closed = true end
    function s:read_line(max)
        self.i = self.i + 1
        local r = replies[self.i]
        if r == nil then return nil, "closed" end
        if #r > max then return nil, "line too long" end
        return r
    end
    return s
end

local POP_GREETING = "+OK Microsoft Exchange POP3 server version 5.5.2650.23 ready"
local IMAP_GREETING = "* OK Microsoft Exchange IMAP4rev1 server version 5.5.2650.23 (EXCH01) ready."

T.test("pop3: a successful login reports the build and sends USER, PASS, QUIT", function()
    local s = server({ POP_GREETING, "+OK", "+OK User successfully logged on.", "+OK" })
    local r = mail.pop3(s, "CORP\\testuser", "pass word", 5)
    T.eq(r.ok, true, "ok")
    T.eq(r.build, "5.5.2650", "build")
    T.eq(table.concat(s.sent), "USER CORP\\testuser\r\nPASS pass word\r\nQUIT\r\n", "dialogue")
    T.ok(s.closed, "closed")
end)

T.test("pop3: a refused USER never sends the password", function()
    local s = server({ POP_GREETING, "-ERR no such user" })
    local r = mail.pop3(s, "CORP\\testuser", "s3cret", 5)
    T.eq(r.ok, false, "ok")
    T.eq(r.msg, "POP3 login refused: -ERR no such user", "msg")
    T.ok(not table.concat(s.sent):find("s3cret", 1, true), "password not sent")
end)

T.test("pop3: no greeting, a closed connection, an overlong line", function()
    T.eq(mail.pop3(server({ "-ERR busy" }), "u", "p", 5).msg, "POP3: no greeting (-ERR busy)", "busy")
    T.eq(mail.pop3(server({}), "u", "p", 5).msg, "POP3: no greeting (closed)", "closed")
    local r = mail.pop3(server({ POP_GREETING, "+OK", string.rep("+OK", 2000) }), "u", "p", 5)
    T.eq(r.ok, false, "overlong reply is a failure")
    T.eq(r.msg, "POP3 login refused: line too long", "overlong msg")
end)

T.test("imap4: quoted LOGIN, untagged lines skipped, bounded", function()
    local s = server({ IMAP_GREETING, "* CAPABILITY IMAP4rev1", "a1 OK LOGIN completed.", "a2 OK" })
    local r = mail.imap4(s, "CORP\\testuser", 'pa"ss word', 5)
    T.eq(r.ok, true, "ok")
    T.eq(s.sent[1], 'a1 LOGIN "CORP\\\\testuser" "pa\\"ss word"\r\n', "RFC 3501 quoted strings")
    local flood = { IMAP_GREETING }
    for i = 1, 100 do flood[#flood + 1] = "* junk " .. i end
    flood[#flood + 1] = "a1 OK LOGIN completed."
    local f = server(flood)
    r = mail.imap4(f, "u", "p", 5)
    T.eq(r.ok, false, "an endless untagged stream is not a login")
    T.ok(f.i <= 25, "stopped reading after a bounded number of lines (" .. f.i .. ")")
end)

T.test("transcripts of a delegated session", function()
    local lines = mail.split_lines(POP_GREETING .. "\r\n+OK\r\n+OK User successfully logged on.\r\n+OK\r\n")
    T.eq(mail.pop3_transcript(lines).ok, true, "pop3 ok")
    lines = mail.split_lines(POP_GREETING .. "\r\n+OK\r\n-ERR Logon failure\r\n")
    T.eq(mail.pop3_transcript(lines).msg, "POP3 login refused: -ERR Logon failure", "pop3 refused")
    lines = mail.split_lines(IMAP_GREETING .. "\r\na1 NO LOGIN failed.\r\n")
    T.eq(mail.imap4_transcript(lines).msg, "IMAP4 login refused: a1 NO LOGIN failed.", "imap refused")
    T.eq(#mail.split_lines(string.rep("x", 100000) .. "\n")[1], mail.MAX_LINE, "lines capped")
    T.eq(mail.pop3_transcript({}).ok, false, "empty transcript")
end)

T.done()
