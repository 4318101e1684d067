-- mail_login: a real POP3 and IMAP4 login, from the controller.
local net = require("cutover.core.net")
local redact = require("cutover.secrets.redact")
local mail = require("cutover.mail")

local function pop3(host, port, user, password, timeout)
    local s, err = net.connect(host, port, timeout)
    if not s then return { ok = false, msg = "POP3 " .. host .. ":" .. port .. ": " .. err } end
    return mail.pop3(s, user, password, timeout)
end

local function imap4(host, port, user, password, timeout)
    local s, err = net.connect(host, port, timeout)
    if not s then return { ok = false, msg = "IMAP4 " .. host .. ":" .. port .. ": " .. err } end
    return mail.imap4(s, user, password, timeout)
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
    return mail.split_lines(r.stdout)
end

local function remote_pop3(ctx, host, port, user, password, timeout)
    local lines, err = remote_dialogue(ctx, host, port, { "USER " .. user, "PASS " .. password, "QUIT" }, timeout)
    if not lines then return { ok = false, msg = "POP3: " .. err } end
    return mail.pop3_transcript(lines)
end

local function remote_imap4(ctx, host, port, user, password, timeout)
    local lines, err = remote_dialogue(ctx, host, port,
        { "a1 LOGIN " .. mail.imap_quote(user) .. " " .. mail.imap_quote(password), "a2 LOGOUT" }, timeout)
    if not lines then return { ok = false, msg = "IMAP4: " .. err } end
    return mail.imap4_transcript(lines)
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
        timeout = { type = "number", positive = true, default = 15, doc = "seconds per connection and reply" },
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
