-- lab.state: one simulated Windows 2000 + Exchange 5.5 host, as a JSON
-- file in its folder (docs/lab.md).  Every reader and writer holds the
-- host's exclusive lock (state.lock) for the whole of its change, so
-- concurrent SSH sessions, the mail daemon and the supervisor agree.
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local los = require("lab.os")

local M = {}

M.DOMAIN = "CORP"
M.DNS = "corp.example"
M.DOMAIN_SID = "S-1-5-21-1004336348-1177238915-682003330"
M.POLICY_PATH = "C:\\WINNT\\SYSVOL\\sysvol\\corp.example\\Policies\\" ..
    "{6AC1786C-016F-11D2-945F-00C04fB984F9}\\MACHINE\\Microsoft\\" ..
    "Windows NT\\SecEdit\\GptTmpl.inf"
M.SP3_MEDIA = "D:\\ENG\\SERVER\\SETUP\\I386\\UPDATE.EXE"
-- The lab's clock starts at the KB's date: 5/18/2001 9:41 AM.
M.EPOCH = 990178860

-- Well-known principals: lower-case name -> SID, and SID -> name.
M.WELL_KNOWN = {
    ["everyone"] = "S-1-1-0",
    ["authenticated users"] = "S-1-5-11",
    ["nt authority\\authenticated users"] = "S-1-5-11",
    ["enterprise domain controllers"] = "S-1-5-9",
    ["administrators"] = "S-1-5-32-544",
    ["builtin\\administrators"] = "S-1-5-32-544",
    ["users"] = "S-1-5-32-545",
    ["guests"] = "S-1-5-32-546",
    ["power users"] = "S-1-5-32-547",
    ["account operators"] = "S-1-5-32-548",
    ["server operators"] = "S-1-5-32-549",
    ["print operators"] = "S-1-5-32-550",
    ["backup operators"] = "S-1-5-32-551",
}

M.RIGHTS = {
    "SeNetworkLogonRight", "SeInteractiveLogonRight", "SeServiceLogonRight",
    "SeBatchLogonRight", "SeTcbPrivilege", "SeBackupPrivilege",
    "SeRestorePrivilege", "SeShutdownPrivilege", "SeRemoteShutdownPrivilege",
    "SeSystemtimePrivilege", "SeChangeNotifyPrivilege",
    "SeSecurityPrivilege", "SeTakeOwnershipPrivilege",
    "SeIncreaseQuotaPrivilege", "SeAssignPrimaryTokenPrivilege",
    "SeDenyNetworkLogonRight", "SeDenyInteractiveLogonRight",
}
M.RIGHT_SET = {}
for _, r in ipairs(M.RIGHTS) do M.RIGHT_SET[r] = true end

local ADMINS, EVERYONE, AUTH = "S-1-5-32-544", "S-1-1-0", "S-1-5-11"
local USERS, POWER, BACKUP = "S-1-5-32-545", "S-1-5-32-547", "S-1-5-32-551"
local ACCOPS, SRVOPS, PRTOPS = "S-1-5-32-548", "S-1-5-32-549", "S-1-5-32-550"

-- The Default Domain Controllers Policy a promotion creates (section 8).
M.DC_POLICY = {
    { "SeNetworkLogonRight", { ADMINS, AUTH, "S-1-5-9" } },
    { "SeInteractiveLogonRight", { ADMINS, ACCOPS, BACKUP, PRTOPS, SRVOPS } },
    { "SeServiceLogonRight", {} },
    { "SeTcbPrivilege", {} },
    { "SeRestorePrivilege", { ADMINS, BACKUP, SRVOPS } },
    { "SeBackupPrivilege", { ADMINS, BACKUP, SRVOPS } },
    { "SeShutdownPrivilege", { ADMINS, ACCOPS, BACKUP, PRTOPS, SRVOPS } },
    { "SeRemoteShutdownPrivilege", { ADMINS, SRVOPS } },
}

function M.hash(password)
    return crypto.sha256("lab-password:" .. password)
end

M.SECRET_NAMES = { "exchange_service_password", "domain_admin_password",
                   "safe_mode_password", "mailbox_test_password" }
-- The lab's passwords: spaces and cmd.exe's special characters on
-- purpose (never '%', which no command line can carry).
M.DEFAULT_SECRETS = {
    exchange_service_password = 'Svc P@ss"&^<>|x',
    domain_admin_password = "Adm1n & ^ \"pw\"",
    safe_mode_password = "Safe <Mode> 1",
    mailbox_test_password = "Mail box|1 ^x",
}

-- Lab time: the real clock moved to 2001, and further at each boot.
function M.now(st)
    return os.time() + (st.clock_offset or 0)
end

local function date_parts(t)
    local d = os.date("!*t", t)
    local h = d.hour % 12
    if h == 0 then h = 12 end
    return d, h, d.hour < 12 and "AM" or "PM"
end

function M.fmt_date(t)
    local d = os.date("!*t", t)
    return string.format("%d/%d/%d", d.month, d.day, d.year)
end

function M.fmt_time(t, seconds)
    local d, h, ampm = date_parts(t)
    if seconds then
        return string.format("%d:%02d:%02d %s", h, d.min, d.sec, ampm)
    end
    return string.format("%d:%02d %s", h, d.min, ampm)
end

-- A new host's state (section 3 and the variants of docs/lab.md).
function M.new_host(name, index, secrets, variant)
    variant = variant or "default"
    local dc = variant == "already-dc"
    local machine = "S-1-5-21-2000478354-1078145449-" .. (839522115 + index)
    local exch = M.DOMAIN_SID .. "-1107"
    local domain_accounts = {
        admin = { name = "admin", sid = M.DOMAIN_SID .. "-500",
                  password = M.hash(secrets.domain_admin_password) },
        exchsvc = { name = "exchsvc", sid = exch,
                    password = M.hash(secrets.exchange_service_password) },
        testuser = { name = "testuser", sid = M.DOMAIN_SID .. "-1108",
                     password = M.hash(secrets.mailbox_test_password) },
    }
    local sam = {
        administrator = { name = "Administrator", sid = machine .. "-500",
                          password = M.hash(secrets.domain_admin_password) },
        exchlocal = { name = "exchlocal", sid = machine .. "-1001",
                      password = M.hash(secrets.exchange_service_password) },
        admin = { name = "admin", sid = machine .. "-1002",
                  password = M.hash(secrets.domain_admin_password) },
    }
    local svc_account = "CORP\\exchsvc"
    local svc_sid = exch
    if variant == "local-service-account" then
        svc_account = name .. "\\exchlocal"
        svc_sid = machine .. "-1001"
    end
    local svc_pw = M.hash(secrets.exchange_service_password)
    local function exchange(sname, display, binary, deps)
        return { name = sname, display = display, start = "AUTO_START",
                 type = "own", binary = "C:\\exchsrvr\\" .. binary,
                 deps = deps, account = svc_account, password = svc_pw,
                 state = "RUNNING", exit_code = 0 }
    end
    local function system(sname, display, binary, deps)
        return { name = sname, display = display, start = "AUTO_START",
                 type = "share", binary = binary, deps = deps,
                 account = "LocalSystem", state = "RUNNING", exit_code = 0 }
    end
    local services = {
        system("EventLog", "Event Log",
               "C:\\WINNT\\system32\\services.exe", {}),
        system("LanmanWorkstation", "Workstation",
               "C:\\WINNT\\System32\\services.exe", {}),
        system("LanmanServer", "Server",
               "C:\\WINNT\\System32\\services.exe", {}),
        system("Netlogon", "Net Logon",
               "C:\\WINNT\\System32\\lsass.exe", { "LanmanWorkstation" }),
        system("W32Time", "Windows Time",
               "C:\\WINNT\\System32\\services.exe", {}),
        exchange("MSExchangeSA", "Microsoft Exchange System Attendant",
                 "bin\\mad.exe",
                 { "EventLog", "LanmanServer", "LanmanWorkstation" }),
        exchange("MSExchangeDS", "Microsoft Exchange Directory",
                 "bin\\dsamain.exe", { "MSExchangeSA" }),
        exchange("MSExchangeIS", "Microsoft Exchange Information Store",
                 "bin\\store.exe", { "MSExchangeDS" }),
        exchange("MSExchangeMTA",
                 "Microsoft Exchange Message Transfer Agent",
                 "bin\\emsmta.exe", { "MSExchangeDS" }),
        exchange("MSExchangeIMC", "Microsoft Exchange Internet Mail Service",
                 "connect\\msexcimc\\bin\\msexcimc.exe",
                 { "MSExchangeIS", "MSExchangeMTA" }),
        exchange("MSExchangeES", "Microsoft Exchange Event Service",
                 "bin\\events.exe", { "MSExchangeIS" }),
    }
    if variant == "localsystem-kms" then
        services[#services + 1] = {
            name = "MSExchangeKMS",
            display = "Microsoft Exchange Key Management Server",
            start = "DEMAND_START", type = "own",
            binary = "C:\\exchsrvr\\kmsdata\\..\\bin\\kmserver.exe",
            deps = { "MSExchangeSA" }, account = "LocalSystem",
            state = "STOPPED", exit_code = 0 }
    end
    local rights = {
        SeNetworkLogonRight = { EVERYONE, ADMINS, USERS, POWER, BACKUP },
        SeInteractiveLogonRight = { ADMINS, USERS, POWER, BACKUP, svc_sid },
        SeServiceLogonRight = { svc_sid, ADMINS },
        SeBatchLogonRight = {},
        SeTcbPrivilege = { svc_sid },
        SeBackupPrivilege = { ADMINS, BACKUP },
        SeRestorePrivilege = { ADMINS, BACKUP, svc_sid },
        SeShutdownPrivilege = { ADMINS, USERS, POWER, BACKUP },
        SeRemoteShutdownPrivilege = { ADMINS },
        SeSystemtimePrivilege = { ADMINS, POWER },
        SeChangeNotifyPrivilege = { EVERYONE, ADMINS, USERS, POWER, BACKUP },
    }
    local st = {
        name = name,
        role = dc and "BACKUP" or "SERVER",
        machine_sid = machine,
        login = { domain = variant == "local-login-account" and name
                  or M.DOMAIN, name = "admin" },
        clock_offset = M.EPOCH - os.time(),
        boot_time = M.EPOCH,
        sam = (not dc) and sam or nil,
        domain_accounts = domain_accounts,
        services = services,
        rights = rights,
        events = { application = {}, system = {} },
        sp3_ok = true,
        promoted = dc,
        net_use = {},
        knobs = { dcpromo_seconds = 2, reboot_seconds = 3 },
        variant = variant,
    }
    if dc then
        -- an existing DC: the DC policy plus what Exchange needs, in the
        -- template itself (a correctly finished host)
        st.rights.SeServiceLogonRight = { svc_sid }
        st.rights.SeTcbPrivilege = { svc_sid }
    end
    return st
end

-- Paths of a host folder.
function M.paths(dir)
    return {
        dir = dir,
        state = dir .. "/state.json",
        lock = dir .. "/state.lock",
        reboot = dir .. "/reboot.request",
        keys = dir .. "/authorized_keys",
        keys_saved = dir .. "/authorized_keys.lab",
        config = dir .. "/config.json",
    }
end

-- Takes the host's lock; returns lock, state.  Use with <close>.
function M.open(dir)
    local p = M.paths(dir)
    local lock = assert(los.lock(p.lock))
    local text, err = fs.read(p.state)
    if not text then
        lock:unlock()
        error("lab: cannot read the host state: " .. err, 0)
    end
    local st = assert(json.decode(text))
    st.dir = dir
    return lock, st
end

function M.save(st)
    local dir = st.dir
    st.dir = nil
    local text = json.encode(st, true)
    st.dir = dir
    assert(fs.write(M.paths(dir).state, text .. "\n"))
end

function M.config(dir)
    local text = fs.read(M.paths(dir).config)
    return text and json.decode(text) or {}
end

-- Looks a service up by name or display name (case-insensitive).
function M.service(st, name)
    local l = name:lower()
    for _, s in ipairs(st.services) do
        if s.name:lower() == l then return s end
    end
    for _, s in ipairs(st.services) do
        if s.display:lower() == l then return s end
    end
    return nil
end

-- An account by "DOMAIN\name", "name", ".\name" -> record, canonical
-- name, kind ("domain" | "local") | nil.
function M.account(st, text)
    local dom, name = text:match("^(.-)\\(.+)$")
    if not dom then
        local n, d = text:match("^(.-)@(.+)$")
        if n and d:lower() == M.DNS then dom, name = M.DOMAIN, n
        else dom, name = nil, text end
    end
    local l = name:lower()
    local function domain()
        local a = st.domain_accounts[l]
        if a then return a, M.DOMAIN .. "\\" .. a.name, "domain" end
    end
    local function loc()
        local a = st.sam and st.sam[l]
        if a then return a, st.name .. "\\" .. a.name, "local" end
    end
    if dom == nil then
        local a, c, k = loc()
        if a then return a, c, k end
        return domain()
    end
    dom = dom:lower()
    if dom == M.DOMAIN:lower() or dom == M.DNS then return domain() end
    if dom == "." or dom == st.name:lower() then
        -- on a DC the "local" accounts are the domain's
        if not st.sam then return domain() end
        return loc()
    end
    return nil
end

-- A principal (account, group, "*SID") -> SID | nil.
function M.sid(st, text)
    text = text:match("^%s*(.-)%s*$")
    if text:sub(1, 1) == "*" then return text:sub(2) end
    if text:match("^S%-1%-") then return text end
    local wk = M.WELL_KNOWN[text:lower()]
    if wk then return wk end
    local a = M.account(st, text)
    return a and a.sid or nil
end

function M.has_right(st, right, sid)
    for _, s in ipairs(st.rights[right] or {}) do
        if s == sid then return true end
    end
    return false
end

function M.log_event(st, log, ev)
    ev.time = ev.time or M.now(st)
    ev.computer = st.name
    local list = st.events[log]
    list[#list + 1] = ev
    while #list > 5000 do table.remove(list, 1) end
end

-- Virtual drives: "C:\WINNT\x" -> DIR/C/WINNT/x, matching existing
-- names case-insensitively.  Relative paths start at C:\.  Returns the
-- real path, or nil and cmd's message.
function M.real_path(dir, path)
    if path:lower() == "nul" then return "/dev/null" end
    local drive, rest = path:match("^(%a):(.*)$")
    if not drive then drive, rest = "C", "\\" .. path end
    drive = drive:upper()
    if drive ~= "C" and drive ~= "D" then
        return nil, "The system cannot find the path specified."
    end
    local parts = {}
    for comp in rest:gmatch("[^\\/]+") do
        if comp == ".." then
            if #parts > 0 then parts[#parts] = nil end
        elseif comp ~= "." then
            parts[#parts + 1] = comp
        end
    end
    local real = dir .. "/" .. drive
    for _, comp in ipairs(parts) do
        local found = comp
        local names = fs.list(real)
        if names then
            for _, n in ipairs(names) do
                if n:lower() == comp:lower() then found = n break end
            end
        end
        real = real .. "/" .. found
    end
    return real
end

-- UTF-16LE with a BOM -> text (ASCII); anything else as is.
function M.from_utf16(data)
    if data:sub(1, 2) ~= "\255\254" then return data end
    local out = {}
    for i = 3, #data - 1, 2 do
        local lo, hi = data:byte(i, i + 1)
        out[#out + 1] = hi == 0 and string.char(lo) or "?"
    end
    return table.concat(out)
end

function M.to_utf16(text)
    local out = { "\255\254" }
    for i = 1, #text do out[#out + 1] = text:sub(i, i) .. "\0" end
    return table.concat(out)
end

-- INF text of rights (the secedit export format, CRLF).
function M.rights_inf(_, rights)
    local lines = { "[Unicode]", "Unicode=yes", "[Version]",
                    'signature="$CHICAGO$"', "Revision=1",
                    "[Privilege Rights]" }
    for _, r in ipairs(M.RIGHTS) do
        local members = rights[r]
        if members and #members > 0 then
            local sids = {}
            for i, s in ipairs(members) do sids[i] = "*" .. s end
            lines[#lines + 1] = r .. " = " .. table.concat(sids, ",")
        end
    end
    return table.concat(lines, "\r\n") .. "\r\n"
end

-- Parses the [Privilege Rights] of an INF -> { right = {sid...} } in
-- file order as a list of {right, sids}.
function M.parse_inf(st, text)
    text = M.from_utf16(text)
    local out = {}
    local section
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        line = line:gsub("\r$", "")
        local sec = line:match("^%s*%[(.-)%]%s*$")
        if sec then
            section = sec:lower()
        elseif section == "privilege rights" then
            local right, value = line:match("^%s*(Se%w+)%s*=%s*(.-)%s*$")
            if right then
                local sids = {}
                for item in value:gmatch("[^,]+") do
                    local item_t = item:match("^%s*(.-)%s*$")
                    if item_t ~= "" then
                        sids[#sids + 1] = M.sid(st, item_t) or item_t
                    end
                end
                out[#out + 1] = { right, sids }
            end
        end
    end
    return out
end

-- Applies the DC policy template (at boot on a DC, and on refresh).
function M.apply_dc_policy(st)
    local real = M.real_path(st.dir, M.POLICY_PATH)
    local text = real and fs.read(real)
    if not text then return false end
    for _, item in ipairs(M.parse_inf(st, text)) do
        st.rights[item[1]] = item[2]
    end
    return true
end

-- extra: right -> SIDs added to the template's members (an already
-- finished DC).
function M.write_dc_policy(st, extra)
    local rights = {}
    for _, item in ipairs(M.DC_POLICY) do
        local members = {}
        for _, s in ipairs(item[2]) do members[#members + 1] = s end
        for _, s in ipairs((extra or {})[item[1]] or {}) do
            members[#members + 1] = s
        end
        rights[item[1]] = members
    end
    local text = M.rights_inf(st, rights)
    -- rights_inf drops empty rights; the template names them empty
    for _, r in ipairs({ "SeServiceLogonRight", "SeTcbPrivilege" }) do
        if #rights[r] == 0 then text = text .. r .. " = \r\n" end
    end
    local real = M.real_path(st.dir, M.POLICY_PATH)
    M.mkdir_p(real:match("^(.*)/[^/]*$"))
    assert(fs.write(real, M.to_utf16(text)))
end

function M.mkdir_p(path)
    local cur = ""
    for comp in path:gmatch("[^/]+") do
        cur = cur .. "/" .. comp
        if not fs.stat(cur) then
            local ok, err = fs.mkdir(cur, 493)
            if not ok and not fs.stat(cur) then return nil, err end
        end
    end
    return true
end

return M
