-- lab.programs: the programs of a lab host (contract section 4): sc,
-- net, secedit, ntrights, dcpromo, shutdown, dumpel, the SP3 setup
-- (update), and the lab-only echoargs.  Each is fn(ctx) -> exit code;
-- ctx.st is the host's state (saved after the call), ctx.args the
-- program's argv, ctx.line/ctx.eline print CRLF lines to stdout/stderr.
local fs = require("cutover.core.fs")
local loop = require("cutover.core.loop")
local state = require("lab.state")
local services = require("lab.services")

local P = {}

-- echoargs: each argument on its own line (tests of cmd.exe parsing).
function P.echoargs(ctx)
    for _, a in ipairs(ctx.args) do ctx.out(a .. "\r\n") end
    return 0
end

---------------------------------------------------------------- sc.exe

local START_NAMES = {
    AUTO_START = "2   AUTO_START", DEMAND_START = "3   DEMAND_START",
    DISABLED = "4   DISABLED",
}
local STATE_NAMES = {
    STOPPED = "1  STOPPED", RUNNING = "4  RUNNING",
}
local TYPE_NAMES = { own = "10  WIN32_OWN_PROCESS",
                     share = "20  WIN32_SHARE_PROCESS" }
local PAD = "        "

local function sc_fail(ctx, api, code, msg)
    ctx.line("[SC] " .. api .. " FAILED " .. code .. ":", "", msg)
    return code
end

local NO_SERVICE =
    "The specified service does not exist as an installed service."
local BAD_ACCOUNT = "The account name is invalid or does not exist, or " ..
    "the password is invalid for the account name specified."

local function sc_qc(ctx, svc)
    local deps = svc.deps or {}
    local lines = {
        "[SC] GetServiceConfig SUCCESS", "",
        "SERVICE_NAME: " .. svc.name,
        PAD .. "TYPE               : " .. TYPE_NAMES[svc.type],
        PAD .. "START_TYPE         : " .. START_NAMES[svc.start],
        PAD .. "ERROR_CONTROL      : 1   NORMAL",
        PAD .. "BINARY_PATH_NAME   : " .. svc.binary,
        PAD .. "LOAD_ORDER_GROUP   :",
        PAD .. "TAG                : 0",
        PAD .. "DISPLAY_NAME       : " .. svc.display,
        PAD .. "DEPENDENCIES       : " .. (deps[1] or ""),
    }
    if #deps == 0 then lines[#lines] = PAD .. "DEPENDENCIES       :" end
    for i = 2, #deps do
        lines[#lines + 1] = "                           : " .. deps[i]
    end
    lines[#lines + 1] = PAD .. "SERVICE_START_NAME : " .. svc.account
    ctx.line(table.unpack(lines))
    return 0
end

local function query_block(svc, with_display)
    local running = svc.state == "RUNNING"
    local code = running and 0 or (svc.exit_code or 0)
    local lines = { "SERVICE_NAME: " .. svc.name }
    if with_display then lines[#lines + 1] = "DISPLAY_NAME: " .. svc.display end
    local rest = {
        PAD .. "TYPE               : " .. TYPE_NAMES[svc.type],
        PAD .. "STATE              : " .. STATE_NAMES[svc.state],
        "                                " .. (running and
            "(STOPPABLE,PAUSABLE,ACCEPTS_SHUTDOWN)" or
            "(NOT_STOPPABLE,NOT_PAUSABLE,IGNORES_SHUTDOWN)"),
        PAD .. "WIN32_EXIT_CODE    : " ..
            string.format("%d\t(0x%x)", code, code),
        PAD .. "SERVICE_EXIT_CODE  : 0\t(0x0)",
        PAD .. "CHECKPOINT         : 0x0",
        PAD .. "WAIT_HINT          : 0x0",
    }
    for _, l in ipairs(rest) do lines[#lines + 1] = l end
    return lines
end

local function sc_query(ctx)
    local args = ctx.args
    local name = args[2]
    if name and not name:find("=$") then
        local svc = state.service(ctx.st, name)
        if not svc or svc.name:lower() ~= name:lower() then
            return sc_fail(ctx, "EnumQueryServicesStatus:OpenService", 1060,
                           NO_SERVICE)
        end
        ctx.line(table.unpack(query_block(svc, false)))
        return 0
    end
    -- sc query [type= service] [state= all|inactive]: the list form
    local want = "active"
    local i = 2
    while i <= #args do
        local k = args[i]:lower()
        if k == "state=" then want = (args[i + 1] or ""):lower() end
        i = i + 2
    end
    local blocks = {}
    for _, svc in ipairs(ctx.st.services) do
        local running = svc.state == "RUNNING"
        if want == "all" or (want == "inactive") ~= running then
            blocks[#blocks + 1] = table.concat(query_block(svc, true),
                                               "\r\n")
        end
    end
    ctx.out(table.concat(blocks, "\r\n\r\n") .. "\r\n")
    return 0
end

local function sc_config(ctx, svc)
    local args = ctx.args
    local opts = {}
    local i = 3
    while i <= #args do
        local k = args[i]:lower()
        if not k:find("=$") or i + 1 > #args then
            ctx.line("[SC] ChangeServiceConfig: invalid option " .. args[i])
            return 1
        end
        opts[k] = args[i + 1]
        i = i + 2
    end
    local st = ctx.st
    local account = opts["obj="]
    local new_start
    if opts["start="] then
        local map = { auto = "AUTO_START", demand = "DEMAND_START",
                      disabled = "DISABLED" }
        new_start = map[opts["start="]:lower()]
        if not new_start then
            ctx.line("[SC] ChangeServiceConfig: invalid start= value")
            return 1
        end
    end
    if account then
        if account:lower() == "localsystem" then
            svc.account = "LocalSystem"
            svc.password = nil
            svc.password_invalid = nil
        else
            local a, canonical = state.account(st, account)
            if not a then
                return sc_fail(ctx, "ChangeServiceConfig", 1057,
                               BAD_ACCOUNT)
            end
            svc.account = canonical
        end
    end
    if opts["password="] and svc.account:lower() ~= "localsystem" then
        svc.password = state.hash(opts["password="])
        svc.password_invalid = nil
    end
    if new_start then svc.start = new_start end
    ctx.line("[SC] ChangeServiceConfig SUCCESS")
    return 0
end

function P.sc(ctx)
    local args = ctx.args
    -- fault injection for tests: `HOSTDIR/fault-sc-garbage` makes sc
    -- print junk (and exit 0), as a broken or foreign sc.exe might
    if fs.stat(ctx.dir .. "/fault-sc-garbage") then
        ctx.line("\1\2SERVICE_NAME MSExchange", "        STATE  : ?? ??", "%%% \255\254 %%%",
                 string.rep("#", 300))
        return 0
    end
    local verb = (args[1] or ""):lower()
    -- "sc \\SERVER verb ...": the local host's own name only
    if verb:match("^\\\\") then
        table.remove(args, 1)
        verb = (args[1] or ""):lower()
    end
    if verb == "query" then return sc_query(ctx) end
    if verb == "qc" or verb == "config" then
        local name = args[2]
        local svc = name and state.service(ctx.st, name)
        if not svc or svc.name:lower() ~= name:lower() then
            return sc_fail(ctx, "OpenService", 1060, NO_SERVICE)
        end
        if verb == "qc" then return sc_qc(ctx, svc) end
        return sc_config(ctx, svc)
    end
    ctx.line("ERROR:  Unrecognized command", "",
             "DESCRIPTION:",
             "        SC is a command line program used for communicating " ..
             "with the",
             "        Service Control Manager and services.",
             "USAGE:",
             "        sc <server> [command] [service name] <option1> " ..
             "<option2>...",
             "        (the lab knows: query, qc, config)")
    return 1
end

---------------------------------------------------------------- net.exe

local function net_error(ctx, code, text)
    ctx.eline("System error " .. code .. " has occurred.", "", text)
    return 2
end

local function helpmsg(ctx, text, code)
    ctx.eline(text, "", "More help is available by typing NET HELPMSG " ..
              code .. ".")
    return 2
end

local function find_service_arg(ctx, words)
    local name = table.concat(words, " ")
    local svc = state.service(ctx.st, name)
    if not svc then
        helpmsg(ctx, "The service name is invalid.", 2185)
        return nil
    end
    return svc
end

local function net_start(ctx, words)
    local st = ctx.st
    if #words == 0 then
        local lines = { "These Windows services are started:", "" }
        for _, s in ipairs(st.services) do
            if s.state == "RUNNING" then lines[#lines + 1] = "   " .. s.display end
        end
        lines[#lines + 1] = ""
        lines[#lines + 1] = "The command completed successfully."
        ctx.line(table.unpack(lines))
        return 0
    end
    local svc = find_service_arg(ctx, words)
    if not svc then return 2 end
    if svc.state == "RUNNING" then
        return helpmsg(ctx, "The requested service has already been started.",
                       2182)
    end
    local started = {}
    local ok, code, failed = services.start(st, svc, started)
    for _, s in ipairs(started) do
        -- POP3/IMAP4 open with the store: the shell waits for them
        if s.name == "MSExchangeIS" then ctx.wait_mail = true end
        ctx.line("The " .. s.display .. " service is starting.",
                 "The " .. s.display .. " service was started successfully.")
    end
    if ok then return 0 end
    if failed ~= svc then code = 1068 end
    if code == 1069 then return net_error(ctx, 1069, services.LOGON_TEXT) end
    if code == 1058 then
        return net_error(ctx, 1058, "The service cannot be started, " ..
            "either because it is disabled or because it has no enabled " ..
            "devices associated with it.")
    end
    return net_error(ctx, 1068, services.DEP_TEXT)
end

local function net_stop(ctx, words, yes)
    local st = ctx.st
    local svc = find_service_arg(ctx, words)
    if not svc then return 2 end
    if svc.state ~= "RUNNING" then
        return helpmsg(ctx, "The " .. svc.display .. " service is not started.",
                       3521)
    end
    local deps = services.dependents(st, svc)
    if #deps > 0 and not yes then
        local lines = {
            "The following services are dependent on the " .. svc.display ..
                " service.",
            "Stopping the " .. svc.display ..
                " service will also stop these services.", "" }
        for _, d in ipairs(deps) do lines[#lines + 1] = "   " .. d.display end
        lines[#lines + 1] = ""
        ctx.line(table.unpack(lines))
        ctx.out("Do you want to continue this operation? (Y/N) [N]: \r\n")
        return 2
    end
    deps[#deps + 1] = svc
    for _, s in ipairs(deps) do
        s.state = "STOPPED"
        s.exit_code = 0
        ctx.line("The " .. s.display .. " service is stopping.",
                 "The " .. s.display .. " service was stopped successfully.")
    end
    return 0
end

local function padded(label, value)
    return string.format("%-54s%s", label, value)
end

local function net_accounts(ctx)
    ctx.line(
        padded("Force user logoff how long after time expires?:", "Never"),
        padded("Minimum password age (days):", "0"),
        padded("Maximum password age (days):", "42"),
        padded("Minimum password length:", "0"),
        padded("Length of password history maintained:", "None"),
        padded("Lockout threshold:", "Never"),
        padded("Lockout duration (minutes):", "30"),
        padded("Lockout observation window (minutes):", "30"),
        padded("Computer role:", ctx.st.role))
    return 0
end

local function net_statistics(ctx, words)
    local what = (words[1] or ""):lower()
    if what ~= "server" and what ~= "srv" then
        ctx.line("Statistics are available for the following running " ..
                 "services:", "", "   Server", "   Workstation", "",
                 "The command completed successfully.")
        return 0
    end
    local st = ctx.st
    local function n(label, v) return string.format("%-35s%s", label, v) end
    ctx.line("Server Statistics for \\\\" .. st.name, "", "",
             "Statistics since " .. state.fmt_date(st.boot_time) .. " " ..
                 state.fmt_time(st.boot_time), "", "",
             n("Sessions accepted", 1), n("Sessions timed-out", 0),
             n("Sessions errored-out", 0), "",
             n("Kilobytes sent", 0), n("Kilobytes received", 0), "",
             n("Mean response time (msec)", 0), "",
             n("System errors", 0), n("Permission violations", 0),
             n("Password violations", 0), "",
             n("Files accessed", 0), n("Communication devices accessed", 0),
             n("Print jobs spooled", 0), "",
             "Times buffers exhausted", "",
             n("  Big buffers", 0), n("  Request buffers", 0), "",
             "The command completed successfully.")
    return 0
end

local function net_use(ctx, args)
    local st = ctx.st
    local target, password, user, delete
    for i = 2, #args do
        local a = args[i]
        local l = a:lower()
        if l:match("^/user:") then
            user = a:sub(7)
        elseif l == "/delete" or l == "/d" then
            delete = true
        elseif l:match("^/persistent:") then
            -- ignored
        elseif not target then
            target = a
        elseif not password then
            password = a
        end
    end
    if not target then
        ctx.line("New connections will not be remembered.", "",
                 "There are no entries in the list.", "")
        return 0
    end
    local key = target:lower()
    if delete then
        if not st.net_use[key] then
            return helpmsg(ctx, "The network connection could not be found.",
                           2250)
        end
        st.net_use[key] = nil
        ctx.line(target .. " was deleted successfully.", "")
        return 0
    end
    local a = user and state.account(st, user)
    if not a or not password or state.hash(password) ~= a.password then
        return net_error(ctx, 1326,
                         "Logon failure: unknown user name or bad password.")
    end
    st.net_use[key] = user
    ctx.line("The command completed successfully.", "")
    return 0
end

function P.net(ctx)
    local args = ctx.args
    local verb = (args[1] or ""):lower()
    local words, yes = {}, false
    for i = 2, #args do
        local l = args[i]:lower()
        if l == "/y" or l == "/yes" then yes = true
        elseif l ~= "/n" and l ~= "/no" then words[#words + 1] = args[i] end
    end
    if verb == "start" then return net_start(ctx, words) end
    if verb == "stop" then
        if #words == 0 then
            ctx.eline("The syntax of this command is:", "", "NET STOP", "service")
            return 1
        end
        return net_stop(ctx, words, yes)
    end
    if verb == "accounts" then return net_accounts(ctx) end
    if verb == "statistics" or verb == "stats" then
        return net_statistics(ctx, words)
    end
    if verb == "use" then return net_use(ctx, args) end
    ctx.eline("The syntax of this command is:", "", "",
              "NET [ ACCOUNTS | START | STATISTICS | STOP | USE ]", "")
    return 1
end

------------------------------------------------- secedit and ntrights

function P.secedit(ctx)
    local args = ctx.args
    local opts = {}
    local i = 1
    while i <= #args do
        local k = args[i]:lower()
        if k == "/cfg" or k == "/areas" or k == "/log" or k == "/db" then
            opts[k] = args[i + 1]
            i = i + 2
        else
            opts[k] = true
            i = i + 1
        end
    end
    local st = ctx.st
    if opts["/export"] and opts["/cfg"] then
        local area = (opts["/areas"] or "USER_RIGHTS"):upper()
        if area ~= "USER_RIGHTS" then
            ctx.line("The lab exports the USER_RIGHTS area only.")
            return 1
        end
        local real, msg = state.real_path(ctx.dir, opts["/cfg"])
        if not real then
            ctx.line(msg)
            return 1
        end
        local ok = fs.write(real, state.to_utf16(
            state.rights_inf(st, st.rights)))
        if not ok then
            ctx.line("The system cannot find the path specified.")
            return 1
        end
        ctx.line("Task is completed successfully.")
        return 0
    end
    if opts["/refreshpolicy"] then
        if st.role ~= "SERVER" then state.apply_dc_policy(st) end
        ctx.line("Group policy propagation from the domain has been " ..
                 "initiated for this computer. It may take a few minutes " ..
                 "for the propagation to complete and the new policy to " ..
                 "take effect.")
        return 0
    end
    ctx.line("Usage: secedit /export /cfg FILE /areas USER_RIGHTS",
             "       secedit /refreshpolicy machine_policy /enforce")
    return 1
end

function P.ntrights(ctx)
    local args = ctx.args
    local op, right, account
    local i = 1
    while i <= #args do
        local a = args[i]
        if a == "+r" or a == "-r" then
            op, right = a, args[i + 1]
            i = i + 2
        elseif a:lower() == "-u" then
            account = args[i + 1]
            i = i + 2
        elseif a:lower() == "-m" or a:lower() == "-e" then
            i = i + 2
        else
            i = i + 1
        end
    end
    if not op or not right or not account then
        ctx.line("Usage: ntrights {-r Right|+r Right} -u UserOrGroup " ..
                 "[-m \\\\Computer] [-e Entry]")
        return 1
    end
    local st = ctx.st
    if not state.RIGHT_SET[right] then
        ctx.line("ntrights: right " .. right .. " not found")
        return 1
    end
    local sid = state.sid(st, account)
    if not sid or account:sub(1, 1) == "*" then
        ctx.line("ntrights: account " .. account .. " not found")
        return 1
    end
    local members = st.rights[right] or {}
    local kept = {}
    for _, s in ipairs(members) do
        if s ~= sid then kept[#kept + 1] = s end
    end
    if op == "+r" then
        kept[#kept + 1] = sid
        ctx.line("Granting " .. right .. " to " .. account .. " ... successful")
    else
        ctx.line("Revoking " .. right .. " from " .. account ..
                 " ... successful")
    end
    st.rights[right] = kept
    return 0
end

---------------------------------------------------------------- dcpromo

local function dcpromo_log(ctx, lines)
    local real = state.real_path(ctx.dir, "C:\\WINNT\\debug\\dcpromo.log")
    local old = fs.read(real) or ""
    local now = state.now(ctx.st)
    local stamp = os.date("!%m/%d %H:%M:%S", now)
    local out = {}
    for _, l in ipairs(lines) do
        if l:match("^DCPROMO:") then out[#out + 1] = l
        else out[#out + 1] = stamp .. " [INFO] " .. l end
    end
    fs.write(real, old .. table.concat(out, "\r\n") .. "\r\n")
end

local function dcpromo_fail(ctx, log, text)
    log[#log + 1] = "DCPROMO: " .. text
    dcpromo_log(ctx, log)
    ctx.eline("DCPROMO: " .. text)
    return 1
end

function P.dcpromo(ctx)
    local st = ctx.st
    local file
    for _, a in ipairs(ctx.args) do
        local f = a:match("^/[Aa][Nn][Ss][Ww][Ee][Rr]:(.*)$")
        if f then file = f end
    end
    if not file or file == "" then
        ctx.eline("DCPROMO: usage: dcpromo /answer:FILE (the lab runs " ..
                  "unattended promotions only)")
        return 1
    end
    local real = state.real_path(ctx.dir, file)
    local text = real and fs.read(real)
    if not text then
        ctx.eline("DCPROMO: The answer file " .. file ..
                  " could not be read.")
        return 1
    end
    -- read, then scrub the passwords at once (also when failing later)
    local answers, section = {}, nil
    local out = {}
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        local body, cr = line:match("^(.-)(\r?)$")
        local sec = body:match("^%s*%[(.-)%]%s*$")
        if sec then
            section = sec:lower()
        elseif section == "dcinstall" then
            local k, v = body:match("^%s*([^=]-)%s*=(.*)$")
            if k then
                answers[k:lower()] = v
                local lk = k:lower()
                if lk == "password" or lk == "safemodeadminpassword" then
                    line = body:match("^([^=]*=)") .. cr
                end
            end
        end
        out[#out + 1] = line
    end
    fs.write(real, table.concat(out, "\n"))
    local log = { "Promotion of " .. st.name ..
                  " to a replica domain controller requested (" ..
                  file .. ")" }
    if st.role ~= "SERVER" then
        return dcpromo_fail(ctx, log,
                            "This server is already a domain controller.")
    end
    loop.sleep(tonumber(st.knobs.dcpromo_seconds) or 2)
    local kind = (answers["replicaornewdomain"] or ""):lower()
    if kind ~= "replica" then
        return dcpromo_fail(ctx, log, "The operation failed: the lab " ..
            "creates additional domain controllers only " ..
            "(ReplicaOrNewDomain=Replica).")
    end
    local dns = (answers["replicadomaindnsname"] or ""):lower()
    if dns ~= state.DNS then
        return dcpromo_fail(ctx, log, "The operation failed: The " ..
            "specified domain either does not exist or could not be " ..
            "contacted.")
    end
    local udom = (answers["userdomain"] or ""):lower()
    local admin = st.domain_accounts[(answers["username"] or ""):lower()]
    local pw = answers["password"]
    if (udom ~= state.DOMAIN:lower() and udom ~= state.DNS) or not admin
       or not pw or state.hash(pw) ~= admin.password or admin.name ~= "admin"
    then
        return dcpromo_fail(ctx, log, "The operation failed: Logon " ..
            "failure: unknown user name or bad password.")
    end
    -- section 1: the SAM goes, the DC policy comes, passwords break
    st.role = "BACKUP"
    st.promoted = true
    st.sam = nil
    local tmpl = state.real_path(ctx.dir, state.POLICY_PATH)
    if not fs.stat(tmpl) then state.write_dc_policy(st) end
    state.apply_dc_policy(st)
    for _, s in ipairs(st.services) do
        if s.account:lower() ~= "localsystem" then
            s.password_invalid = true
        end
    end
    st.sp3_ok = false
    log[#log + 1] = "The local SAM was replaced by the directory of " ..
                    state.DNS
    log[#log + 1] = "Security policy of the Default Domain Controllers " ..
                    "Policy applied"
    log[#log + 1] = "DCPROMO: The operation completed successfully."
    dcpromo_log(ctx, log)
    ctx.line("DCPROMO: The operation completed successfully.")
    if (answers["rebootonsuccess"] or ""):lower() == "yes" then
        ctx.reboot = true
    end
    return 0
end

--------------------------------------------------------------- shutdown

function P.shutdown(ctx)
    local reboot = false
    for _, a in ipairs(ctx.args) do
        if a:upper() == "/R" then reboot = true end
    end
    if not reboot then
        ctx.eline("shutdown: the lab supports reboots only " ..
                  "(shutdown /L /R /T:0 /Y /C)")
        return 1
    end
    ctx.reboot = true
    return 0
end

----------------------------------------------------------------- dumpel

function P.dumpel(ctx)
    local args = ctx.args
    local logname, ids, source = nil, nil, nil
    local i = 1
    while i <= #args do
        local a = args[i]:lower()
        if a == "-l" then
            logname = (args[i + 1] or ""):lower()
            i = i + 2
        elseif a == "-m" then
            source = args[i + 1]
            i = i + 2
        elseif a == "-e" then
            ids = {}
            i = i + 1
            while args[i] and args[i]:match("^%d+$") do
                ids[tonumber(args[i])] = true
                i = i + 1
            end
        else
            i = i + 1
        end
    end
    local list = ctx.st.events[logname or "system"]
    if not list then
        ctx.eline("dumpel: unknown log " .. tostring(logname) ..
                  " (the lab has application and system)")
        return 1
    end
    for _, ev in ipairs(list) do
        if (not ids or ids[ev.id]) and
           (not source or ev.source:lower() == source:lower()) then
            ctx.out(table.concat({
                state.fmt_date(ev.time), state.fmt_time(ev.time, true),
                tostring(ev.type), tostring(ev.category), tostring(ev.id),
                ev.source, ev.user or "N/A", ev.computer,
                ev.description }, "\t") .. "\r\n")
        end
    end
    return 0
end

------------------------------------------------------------ SP3 setup

function P.update(ctx)
    if services.exchange_running(ctx.st) then
        ctx.eline("Setup cannot continue while Exchange services are " ..
                  "running.")
        return 1
    end
    ctx.st.sp3_ok = true
    ctx.line("Microsoft Exchange Server 5.5 Service Pack 3 was installed " ..
             "successfully.")
    return 0
end

return P
