-- lab.mail: `cutover-lab mail HOSTDIR`, a host's POP3 (RFC 1939) and
-- IMAP4 (RFC 3501) servers (contract section 5).  They listen only while
-- MSExchangeIS runs (checked every 0.1 s), and a logon succeeds only when
-- the password is right and the privileges of KB Q255269 are in place;
-- a privilege failure (never a wrong password) logs event 13003.
local loop = require("cutover.core.loop")
local los = require("lab.os")
local state = require("lab.state")

local M = {}

local BUILD = "5.5.2650.23"
local MAX_COMMANDS = 100
local IDLE = 120

-- Checks a logon against the host state.  -> true | false
function M.logon(dir, user, password, source)
    local lock, st = state.open(dir)
    local ok = false
    local a = state.account(st, user or "")
    if a and password and state.hash(password) == a.password then
        local is = state.service(st, "MSExchangeIS")
        local tcb = true
        if is and is.account:lower() ~= "localsystem" then
            local svc = state.account(st, is.account)
            tcb = svc ~= nil and state.has_right(st, "SeTcbPrivilege", svc.sid)
        end
        local netlogon = state.has_right(st, "SeNetworkLogonRight", "S-1-1-0")
        if tcb and netlogon and st.sp3_ok then
            ok = true
        else
            state.log_event(st, "application", {
                type = 1, category = 4, id = 13003, source = source,
                user = "N/A",
                description = "A required privilege is not held by the client" })
            state.save(st)
        end
    end
    lock:unlock()
    return ok
end

local function pop3(dir, s, _)
    s:write("+OK Microsoft Exchange POP3 server version " .. BUILD ..
            " ready\r\n")
    local user, logged = nil, false
    for _ = 1, MAX_COMMANDS do
        local line = s:read_line(1024, IDLE)
        if not line then break end
        local verb, arg = line:match("^(%S*)%s?(.*)$")
        verb = verb:upper()
        if verb == "USER" and not logged then
            user = arg
            s:write("+OK\r\n")
        elseif verb == "PASS" and not logged then
            if user and M.logon(dir, user, arg, "MSExchangePOP3") then
                logged = true
                s:write("+OK User successfully logged on.\r\n")
            else
                user = nil
                s:write("-ERR Logon failure: unknown user name or bad " ..
                        "password.\r\n")
            end
        elseif verb == "QUIT" then
            s:write("+OK Microsoft Exchange POP3 server version " .. BUILD ..
                    " signing off.\r\n")
            break
        elseif verb == "STAT" and logged then
            s:write("+OK 0 0\r\n")
        elseif verb == "LIST" and logged then
            s:write("+OK 0 messages (0 octets)\r\n.\r\n")
        elseif verb == "NOOP" and logged then
            s:write("+OK\r\n")
        else
            s:write("-ERR Protocol error\r\n")
        end
    end
end

-- Reads one IMAP astring (atom or quoted string) from text at i.
-- -> value, next index | nil
local function astring(text, i)
    i = text:find("%S", i)
    if not i then return nil end
    if text:sub(i, i) == '"' then
        local out = {}
        i = i + 1
        while i <= #text do
            local c = text:sub(i, i)
            if c == "\\" then
                local d = text:sub(i + 1, i + 1)
                if d ~= "\\" and d ~= '"' then return nil end
                out[#out + 1] = d
                i = i + 2
            elseif c == '"' then
                return table.concat(out), i + 1
            else
                out[#out + 1] = c
                i = i + 1
            end
        end
        return nil
    end
    local j = text:find("[%s%(%)%{\"]", i) or (#text + 1)
    if j == i then return nil end
    return text:sub(i, j - 1), j
end
M.astring = astring

local function imap(dir, s, name)
    s:write("* OK Microsoft Exchange IMAP4rev1 server version " .. BUILD ..
            " (" .. name .. ") ready.\r\n")
    local logged = false
    for _ = 1, MAX_COMMANDS do
        local line = s:read_line(1024, IDLE)
        if not line then break end
        local tag, verb, rest = line:match("^(%S+) (%S+)(.*)$")
        if not tag then
            s:write("* BAD Protocol Error: \"Unidentifiable command " ..
                    "specified\".\r\n")
        else
            verb = verb:upper()
            if verb == "LOGIN" and not logged then
                local user, j = astring(rest, 1)
                local password, k
                if user then password, k = astring(rest, j) end
                if not password or rest:sub(k):find("%S") then
                    s:write(tag .. " BAD Protocol Error: \"Invalid " ..
                            "arguments to LOGIN\".\r\n")
                elseif M.logon(dir, user, password, "MSExchangeIMAP4") then
                    logged = true
                    s:write(tag .. " OK LOGIN completed.\r\n")
                else
                    s:write(tag .. " NO LOGIN failed.\r\n")
                end
            elseif verb == "LOGOUT" then
                s:write("* BYE Microsoft Exchange IMAP4rev1 server " ..
                        "version " .. BUILD .. " signing off.\r\n" ..
                        tag .. " OK LOGOUT completed.\r\n")
                break
            elseif verb == "CAPABILITY" then
                s:write("* CAPABILITY IMAP4 IMAP4rev1 IDLE LITERAL+ " ..
                        "LOGIN-REFERRALS MAILBOX-REFERRALS NAMESPACE " ..
                        "AUTH=NTLM\r\n" .. tag ..
                        " OK CAPABILITY completed.\r\n")
            elseif verb == "NOOP" then
                s:write(tag .. " OK NOOP completed.\r\n")
            else
                s:write(tag .. " BAD Protocol Error: \"Unidentifiable " ..
                        "command specified\".\r\n")
            end
        end
    end
end

local function serve(handler, dir, s, name)
    local ok, err = pcall(handler, dir, s, name)
    if not ok then io.stderr:write("lab mail: " .. tostring(err) .. "\n") end
    s:close()
end

local function is_running(dir)
    local lock, st = state.open(dir)
    local is = state.service(st, "MSExchangeIS")
    lock:unlock()
    return is ~= nil and is.state == "RUNNING"
end

-- One listener's accept loop; ends (closing it) when entry.stop is set.
local function accept_loop(entry, handler, dir, name)
    while not entry.stop and loop.interrupts() == 0 do
        local s = entry.listener:accept(0.2)
        if s then loop.spawn(serve, handler, dir, s, name) end
    end
    entry.listener:close()
    entry.closed = true
end

local function control(dir, cfg)
    local entries = nil
    while loop.interrupts() == 0 do
        local running = is_running(dir)
        if running and not entries then
            local ls = {}
            for _, spec in ipairs({ { cfg.pop3_port, pop3 },
                                    { cfg.imap_port, imap } }) do
                local l, err = los.listen(cfg.address, spec[1])
                if not l then
                    io.stderr:write("lab mail: " .. err .. "\n")
                    break
                end
                ls[#ls + 1] = { listener = l, handler = spec[2] }
            end
            if #ls == 2 then
                entries = ls
                for _, e in ipairs(ls) do
                    loop.spawn(accept_loop, e, e.handler, dir, cfg.name)
                end
            else
                for _, e in ipairs(ls) do e.listener:close() end
            end
        elseif not running and entries then
            for _, e in ipairs(entries) do e.stop = true end
            -- wait until both listeners are closed (bounded)
            for _ = 1, 50 do
                if entries[1].closed and entries[2].closed then break end
                loop.sleep(0.02)
            end
            entries = nil
        end
        loop.sleep(0.1)
    end
    if entries then
        for _, e in ipairs(entries) do e.stop = true end
    end
end

function M.main(dir)
    local cfg = state.config(dir)
    loop.spawn(control, dir, cfg)
    loop.run()
    return 0
end

return M
