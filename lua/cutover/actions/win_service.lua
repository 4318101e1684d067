-- win_service: a Windows service's account and state.
local host = require("cutover.windows.host")
local parse = require("cutover.windows.parse")
local redact = require("cutover.secrets.redact")

return {
    summary = "Read a Windows service; set its account and password; start or stop it",
    description = [[
Reads the service with `sc qc` and `sc query` and returns `config` and
`status`.  `account` (with `password`) sets the logon account with
`sc config NAME obj= ACCOUNT password= PASSWORD`; `LocalSystem` takes no
password.  Windows forces the password onto that command line: it is
masked everywhere on cutover's side.  `sc config` does not check the
password; a wrong one shows only when the service starts (error 1069).
`state: started` runs `net start` (which starts the dependencies first);
`state: stopped` runs `net stop`, which refuses while dependents run
unless `stop_dependents: true` (then `net stop /y` stops them first).]],
    args = {
        name = { type = "string", required = true, doc = "the service name (MSExchangeIS)" },
        state = { type = "string", choices = { "started", "stopped" }, doc = "the state wanted" },
        account = { type = "string", doc = "logon account (DOMAIN\\user or LocalSystem)" },
        password = { type = "string", doc = "the account's password (secret; masked)" },
        stop_dependents = { type = "bool", default = false, doc = "net stop /y" },
    },
    returns = { config = "sc qc, parsed", status = "sc query, parsed", actions = "what was done" },
    check_mode = "Exact for the state and the account name (read with sc); a given password is always reported as a change (it cannot be read back). --diff shows the account and state before and after.",
    idempotent = true,
    run = function(ctx, args)
        if args.password then redact.register(args.password) end
        local config, err = host.service_config(ctx, args.name)
        if not config then return { failed = true, msg = err } end
        local status, serr = host.service_status(ctx, args.name)
        if not status then return { failed = true, msg = serr } end
        local done = {}
        local result = { changed = false, config = config, status = status, actions = done }
        -- --diff: the service as three lines, before and after (the
        -- password is never shown: only that a new one is set)
        local view = { account = config.start_name or "?", password = "(unchanged)",
                       state = status.state_name or tostring(status.state) }
        local wanted = { account = view.account, password = view.password, state = view.state }
        if args.account then
            local system = args.account:lower() == "localsystem"
            local same = (config.start_name or ""):lower() == args.account:lower()
            if not same or (args.password and not system) then
                done[#done + 1] = "set the account to " .. args.account
                result.changed = true
                wanted.account = args.account
                if args.password and not system then wanted.password = "(a new one is set)" end
                if not ctx.check then
                    local argv = { "sc", "config", args.name, "obj=", args.account }
                    if not system then
                        if not args.password then
                            return { failed = true, msg = "account " .. args.account .. " needs a password" }
                        end
                        argv[#argv + 1] = "password="
                        argv[#argv + 1] = args.password
                    end
                    local r, rerr = host.run(ctx, argv)
                    if not r then return { failed = true, msg = rerr } end
                    local ok, ferr, failure = parse.sc_ok(r.stdout)
                    if r.rc ~= 0 or not ok then
                        return { failed = true, msg = "sc config " .. args.name .. ": " ..
                                 (failure and (failure.code .. " " .. failure.message) or ferr or ("exit code " .. r.rc)) }
                    end
                end
            end
        end
        if args.state then
            local running = status.state == 4
            local want = args.state == "started"
            if running ~= want then
                done[#done + 1] = (want and "start" or "stop") .. " " .. args.name
                result.changed = true
                wanted.state = want and "RUNNING" or "STOPPED"
                if not ctx.check then
                    local argv = { "net", want and "start" or "stop", args.name }
                    if not want and args.stop_dependents then argv[#argv + 1] = "/y" end
                    local r, rerr = host.run(ctx, argv, { timeout = 600 })
                    if not r then return { failed = true, msg = rerr } end
                    local res = parse.net_service(r.stdout .. "\n" .. r.stderr)
                    if r.rc ~= 0 or not (res and res.ok) then
                        local why = res and res.message or (r.stdout .. r.stderr)
                        if res and res.status == "dependents" then
                            why = "services depending on it are running: " .. table.concat(res.services or {}, ", ") ..
                                " (stop them first, or stop_dependents: true)"
                        end
                        return { failed = true, error = res and res.error, status_name = res and res.status,
                                 msg = "net " .. argv[2] .. " " .. args.name .. ": " .. tostring(why) }
                    end
                    result.stopped_or_started = res.services
                    local after = host.service_status(ctx, args.name)
                    if after then result.status = after end
                end
            end
        end
        if ctx.check and result.changed then result.msg = "would " .. table.concat(done, "; ") end
        if ctx.diff and result.changed then
            local function text(t)
                return string.format("account: %s\npassword: %s\nstate: %s\n", t.account, t.password, t.state)
            end
            result.diff = { path = "service " .. args.name, before = text(view), after = text(wanted) }
        end
        return result
    end,
}
