-- mail_login: a real POP3 and IMAP4 login, from the controller.
local net = require("cutover.core.net")
local redact = require("cutover.redact")

local MAX_LINE = 4096

local function imap_quote(s)
    return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

local function build_of(greeting)
    return greeting and greeting:match("version (%d+%.%d+%.%d+)")
end

-- One exchange: send a line (unless nil), read one reply line.
local function ask(stream, line, timeout)
    if line then
        local ok, err = stream:write(line .. "\r\n", timeout)
        if not ok then return nil, err end
    end
    local reply, err = stream:read_line(MAX_LINE, timeout)
    if not reply then return nil, err end
    return (reply:gsub("\r$", ""))
end

local function pop3(host, port, user, password, timeout)
    local s, err = net.connect(host, port, timeout)
    if not s then return { ok = false, msg = "POP3 " .. host .. ":" .. port .. ": " .. err } end
    local out = {}
    local greeting, gerr = ask(s, nil, timeout)
    out.greeting, out.build = greeting, build_of(greeting)
    if not greeting or greeting:sub(1, 3) ~= "+OK" then
        s:close()
        out.ok, out.msg = false, "POP3: no greeting (" .. tostring(greeting or gerr) .. ")"
        return out
    end
    local r1 = ask(s, "USER " .. user, timeout)
    local r2 = r1 and r1:sub(1, 3) == "+OK" and ask(s, "PASS " .. password, timeout) or r1
    out.answer = r2
    out.ok = r2 ~= nil and r2:sub(1, 3) == "+OK"
    if not out.ok then out.msg = "POP3 login refused: " .. tostring(r2) end
    ask(s, "QUIT", timeout)
    s:close()
    return out
end

local function imap4(host, port, user, password, timeout)
    local s, err = net.connect(host, port, timeout)
    if not s then return { ok = false, msg = "IMAP4 " .. host .. ":" .. port .. ": " .. err } end
    local out = {}
    local greeting, gerr = ask(s, nil, timeout)
    out.greeting, out.build = greeting, build_of(greeting)
    if not greeting or greeting:sub(1, 4) ~= "* OK" then
        s:close()
        out.ok, out.msg = false, "IMAP4: no greeting (" .. tostring(greeting or gerr) .. ")"
        return out
    end
    local reply = ask(s, "a1 LOGIN " .. imap_quote(user) .. " " .. imap_quote(password), timeout)
    -- untagged lines may come first
    local guard = 0
    while reply and reply:sub(1, 2) == "* " and guard < 20 do
        reply = ask(s, nil, timeout)
        guard = guard + 1
    end
    out.answer = reply
    out.ok = reply ~= nil and reply:match("^a1 OK") ~= nil
    if not out.ok then out.msg = "IMAP4 login refused: " .. tostring(reply) end
    ask(s, "a2 LOGOUT", timeout)
    s:close()
    return out
end

-- From a delegated POSIX host: one bash session per protocol sends the
-- whole dialogue on stdin (the password never on a command line) and
-- returns what the server said.
local function remote_dialogue(ctx, host, port, lines, timeout)
    local script = 'exec 3<>"/dev/tcp/$1/$2" || exit 9; cat >&3; timeout "$3" cat <&3'
    local r, err = ctx.conn:exec({ argv = { "bash", "-c", script, "mail", host, tostring(port),
                                            tostring(math.ceil(timeout)) },
                                   stdin = table.concat(lines, "\r\n") .. "\r\n", timeout = timeout + 10 })
    if not r then return nil, err end
    if r.rc == 9 then return nil, "cannot connect to " .. host .. ":" .. port .. " from " .. ctx.delegated_to end
    local out = {}
    for line in r.stdout:gmatch("[^\n]+") do out[#out + 1] = (line:gsub("\r$", "")) end
    return out
end

local function remote_pop3(ctx, host, port, user, password, timeout)
    local lines, err = remote_dialogue(ctx, host, port, { "USER " .. user, "PASS " .. password, "QUIT" }, timeout)
    if not lines then return { ok = false, msg = "POP3: " .. err } end
    local out = { greeting = lines[1], build = build_of(lines[1]), answer = lines[3] }
    out.ok = lines[1] ~= nil and lines[1]:sub(1, 3) == "+OK" and lines[2] ~= nil and lines[2]:sub(1, 3) == "+OK"
        and lines[3] ~= nil and lines[3]:sub(1, 3) == "+OK"
    if not out.ok then out.msg = "POP3 login refused: " .. tostring(lines[3] or lines[2] or lines[1]) end
    return out
end

local function remote_imap4(ctx, host, port, user, password, timeout)
    local lines, err = remote_dialogue(ctx, host, port,
        { "a1 LOGIN " .. imap_quote(user) .. " " .. imap_quote(password), "a2 LOGOUT" }, timeout)
    if not lines then return { ok = false, msg = "IMAP4: " .. err } end
    local out = { greeting = lines[1], build = build_of(lines[1]) }
    for _, l in ipairs(lines) do
        if l:match("^a1 ") then out.answer = l end
    end
    out.ok = out.answer ~= nil and out.answer:match("^a1 OK") ~= nil
    if not out.ok then out.msg = "IMAP4 login refused: " .. tostring(out.answer) end
    return out
end

return {
    summary = "Log in to POP3 and IMAP4 from the controller and report the server's build",
    description = [[
Connects from the controller (or, with `delegate_to`, from that POSIX
host, through bash's /dev/tcp; the dialogue goes on stdin) to `host` on
`pop3_port` and `imap_port`, reads each greeting (its `build`, e.g.
5.5.2650), and logs in as `user` with `password` (POP3 USER/PASS; IMAP4
LOGIN with RFC 3501 quoted strings).  Fails when a login is refused or a
port does not answer; `protocols` limits it to one of them.  The password
is masked in all output.]],
    args = {
        host = { type = "string", required = true, doc = "the mail host's address" },
        user = { type = "string", required = true, doc = "mailbox account (CORP\\testuser)" },
        password = { type = "string", required = true, doc = "its password (secret)" },
        pop3_port = { type = "int", default = 110, doc = "POP3 port" },
        imap_port = { type = "int", default = 143, doc = "IMAP4 port" },
        protocols = { type = "list", scalar_ok = true, default = { "pop3", "imap4" }, doc = "pop3, imap4" },
        timeout = { type = "number", default = 15, doc = "seconds per connection and reply" },
    },
    returns = { pop3 = "{ok, build, greeting, answer}", imap4 = "the same", build = "the build both report" },
    check_mode = "Runs as usual: a login changes nothing (a refused one is logged by the server as it would be anyway).",
    controller = true,
    probes_host = true,  -- what it reports depends on the host's state
    delegatable = true,  -- with delegate_to: from that (POSIX) host
    read_only = true,
    idempotent = true,
    run = function(ctx, args)
        redact.register(args.password)
        local result = { changed = false }
        local msgs = {}
        for _, proto in ipairs(args.protocols) do
            local r
            local remote = ctx.delegated_to ~= nil
            if proto == "pop3" then
                r = remote and remote_pop3(ctx, args.host, args.pop3_port, args.user, args.password, args.timeout)
                    or pop3(args.host, args.pop3_port, args.user, args.password, args.timeout)
            elseif proto == "imap4" or proto == "imap" then
                proto = "imap4"
                r = remote and remote_imap4(ctx, args.host, args.imap_port, args.user, args.password, args.timeout)
                    or imap4(args.host, args.imap_port, args.user, args.password, args.timeout)
            else
                return { failed = true, msg = "unknown protocol '" .. tostring(proto) .. "' (pop3, imap4)" }
            end
            result[proto] = r
            result.build = result.build or r.build
            if not r.ok then
                result.failed = true
                msgs[#msgs + 1] = r.msg
            end
        end
        result.msg = #msgs > 0 and table.concat(msgs, "; ") or
            ("logged in (build " .. tostring(result.build) .. ")")
        return result
    end,
}
