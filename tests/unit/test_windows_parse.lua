-- Units of lua/cutover/windows/parse.lua: the contract's sample outputs
-- (copied verbatim from tests/fixtures/windows2000-exchange55.md,
-- section 4, and given CRLF line endings as the host sends them), their
-- variants, malformed text, and fuzz-like inputs that must never raise.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local parse = require("cutover.windows.parse")
local fs = require("cutover.core.fs")

local function crlf(s) return (s:gsub("\r?\n", "\r\n")) end
-- <TAB> marks the tab characters of the contract's samples
local function tabs(s) return (s:gsub("<TAB>", "\t")) end

local function same_list(got, want, what)
    T.eq(type(got), "table", what)
    for i = 1, math.max(#got, #want) do
        T.eq(got[i], want[i], (what or "list") .. "[" .. i .. "]")
    end
end

local function utf16le(s, bom)
    local out = { bom and "\255\254" or "" }
    for _, cp in utf8.codes(s) do
        if cp >= 0x10000 then
            local v = cp - 0x10000
            local hi, lo = 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)
            out[#out + 1] = string.char(hi & 0xFF, hi >> 8, lo & 0xFF, lo >> 8)
        else
            out[#out + 1] = string.char(cp & 0xFF, cp >> 8)
        end
    end
    return table.concat(out)
end

-- ------------------------------------------------------------------
-- the contract's samples, verbatim

local SC_QC = [[
[SC] GetServiceConfig SUCCESS

SERVICE_NAME: MSExchangeIS
        TYPE               : 10  WIN32_OWN_PROCESS
        START_TYPE         : 2   AUTO_START
        ERROR_CONTROL      : 1   NORMAL
        BINARY_PATH_NAME   : C:\exchsrvr\bin\store.exe
        LOAD_ORDER_GROUP   :
        TAG                : 0
        DISPLAY_NAME       : Microsoft Exchange Information Store
        DEPENDENCIES       : MSExchangeDS
        SERVICE_START_NAME : CORP\exchsvc
]]

local SC_QUERY = tabs([[
SERVICE_NAME: MSExchangeIS
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
                                (STOPPABLE,PAUSABLE,ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : 0<TAB>(0x0)
        SERVICE_EXIT_CODE  : 0<TAB>(0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0
]])

local SECEDIT = [[
[Unicode]
Unicode=yes
[Version]
signature="$CHICAGO$"
Revision=1
[Privilege Rights]
SeServiceLogonRight = *S-1-5-21-1004336348-1177238915-682003330-1107,*S-1-5-32-544
]]

local DUMPEL = tabs([[
5/18/2001<TAB>10:02:11 AM<TAB>1<TAB>4<TAB>13003<TAB>MSExchangePOP3<TAB>N/A<TAB>EXCH01<TAB>A required privilege is not held by the client
]])

T.test("the samples are still the contract's", function()
    local contract = fs.read(tests_dir .. "/fixtures/windows2000-exchange55.md")
    T.ok(contract, "the contract is readable")
    T.contains(contract, SC_QC, "sc qc sample")
    T.contains(contract, SC_QUERY, "sc query sample")
    T.contains(contract, DUMPEL, "dumpel sample")
    for line in SECEDIT:gmatch("[^\n]+") do T.contains(contract, "  " .. line .. "\n", "secedit sample") end
    for _, s in ipairs({
        "`net accounts` ends with `Computer role:                                        SERVER`",
        "`Statistics since 5/18/2001 9:41 AM`",
        "`The Microsoft Exchange Information Store service is starting.` then\n"
            .. "  `The Microsoft Exchange Information Store service was started successfully.`",
        "`System error 1069 has occurred.`, a blank\n  line, `The service did not start due to a logon failure.`",
        "`The requested service has already been started.` / blank /\n"
            .. "`More help is available by typing NET HELPMSG 2182.`",
        "`System error 1326 has occurred.` / blank / `Logon failure: unknown user name or bad password.`",
        "`Do you want to continue this operation? (Y/N) [N]:`",
        "1060 `The specified service does not exist as an installed service.`",
    }) do T.contains(contract, s, "net sample") end
end)

-- ------------------------------------------------------------------
-- lines

T.test("lines: any line ending, trailing whitespace removed", function()
    same_list(parse.lines("a \r\nb\t\nc\rd"), { "a", "b", "c", "d" }, "lines")
    same_list(parse.lines("a\r\n\r\n"), { "a", "" }, "blank line kept")
    same_list(parse.lines(""), { "" }, "empty")
end)

-- ------------------------------------------------------------------
-- sc qc

local function check_qc(r)
    T.eq(r.name, "MSExchangeIS")
    T.eq(r.type, 16, "type (hex 10)")
    T.eq(r.type_name, "WIN32_OWN_PROCESS")
    T.eq(r.start_type, 2)
    T.eq(r.start_type_name, "AUTO_START")
    T.eq(r.error_control, 1)
    T.eq(r.error_control_name, "NORMAL")
    T.eq(r.binary_path, "C:\\exchsrvr\\bin\\store.exe")
    T.eq(r.load_order_group, "")
    T.eq(r.tag, 0)
    T.eq(r.display_name, "Microsoft Exchange Information Store")
    same_list(r.dependencies, { "MSExchangeDS" }, "dependencies")
    T.eq(r.start_name, "CORP\\exchsvc")
    T.eq(r.fields.SERVICE_START_NAME, "CORP\\exchsvc")
end

T.test("sc qc: the contract's sample", function()
    check_qc(assert(parse.sc_qc(crlf(SC_QC))))
    check_qc(assert(parse.sc_qc(SC_QC)))
end)

T.test("sc qc: trailing spaces, tabs, blank lines, no header", function()
    local text = crlf(SC_QC):gsub("\r\n", "   \t\r\n"):gsub("^%[SC%][^\n]*\n", "") .. "\r\n\r\n"
    check_qc(assert(parse.sc_qc("\r\n" .. text)))
    text = SC_QC:gsub("        TAG                :", "\tTAG\t:")
    check_qc(assert(parse.sc_qc(text)))
end)

T.test("sc qc: several dependencies, LocalSystem, demand start", function()
    -- luacheck: push ignore 613 (the tool's output ends lines in spaces)
    local text = crlf([[
[SC] GetServiceConfig SUCCESS

SERVICE_NAME: MSExchangeIMC
        TYPE               : 10  WIN32_OWN_PROCESS
        START_TYPE         : 2   AUTO_START
        ERROR_CONTROL      : 1   NORMAL
        BINARY_PATH_NAME   : C:\exchsrvr\connect\msexcimc\bin\msexcimc.exe
        LOAD_ORDER_GROUP   :
        TAG                : 0
        DISPLAY_NAME       : Microsoft Exchange Internet Mail Service
        DEPENDENCIES       : MSExchangeIS   
                           : MSExchangeMTA  
        SERVICE_START_NAME : CORP\exchsvc
]])
    -- luacheck: pop
    local r = assert(parse.sc_qc(text))
    same_list(r.dependencies, { "MSExchangeIS", "MSExchangeMTA" }, "dependencies")
    T.eq(r.start_name, "CORP\\exchsvc")

    r = assert(parse.sc_qc(crlf([[
[SC] GetServiceConfig SUCCESS

SERVICE_NAME: MSExchangeKMS
        TYPE               : 10  WIN32_OWN_PROCESS
        START_TYPE         : 3   DEMAND_START
        ERROR_CONTROL      : 1   NORMAL
        BINARY_PATH_NAME   : C:\exchsrvr\bin\kmserver.exe
        LOAD_ORDER_GROUP   :
        TAG                : 0
        DISPLAY_NAME       : Microsoft Exchange Key Management Server
        DEPENDENCIES       :
        SERVICE_START_NAME : LocalSystem
]])))
    T.eq(r.start_type, 3)
    T.eq(r.start_type_name, "DEMAND_START")
    same_list(r.dependencies, {}, "no dependencies")
    T.eq(r.start_name, "LocalSystem")

    r = assert(parse.sc_qc(SC_QC:gsub("2   AUTO_START", "4   DISABLED")))
    T.eq(r.start_type, 4)
    T.eq(r.start_type_name, "DISABLED")
end)

local SC_1060 = crlf([[
[SC] OpenService FAILED 1060:

The specified service does not exist as an installed service.

]])

T.test("sc failure: [SC] <Api> FAILED <n>: and the message", function()
    local f = assert(parse.sc_failure(SC_1060))
    T.eq(f.api, "OpenService")
    T.eq(f.code, 1060)
    T.eq(f.message, "The specified service does not exist as an installed service.")
    f = assert(parse.sc_failure(crlf([[
[SC] ChangeServiceConfig FAILED 1057:

The account name is invalid or does not exist, or the password is
invalid for the account name specified.
]])))
    T.eq(f.api, "ChangeServiceConfig")
    T.eq(f.code, 1057)
    T.eq(f.message, "The account name is invalid or does not exist, or the password is "
        .. "invalid for the account name specified.")
    T.eq(parse.sc_failure(crlf(SC_QC)), nil)
    T.eq(parse.sc_failure(42), nil)
    f = assert(parse.sc_failure("[SC] OpenService FAILED 5:  Access is denied.\r\n"))
    T.eq(f.message, "Access is denied.")

    -- every sc parser reports it, with the failure as a third value
    for _, name in ipairs({ "sc_qc", "sc_query", "sc_query_list", "sc_ok" }) do
        local r, msg, fail = parse[name](SC_1060)
        T.eq(r, nil, name)
        T.match(msg, "OpenService FAILED 1060: The specified service does not exist", name)
        T.eq(fail.code, 1060, name)
    end
    T.eq(select(2, parse.sc_qc(SC_1060)),
         "sc qc: OpenService FAILED 1060: The specified service does not exist as an installed service.")
end)

T.test("sc ok: [SC] ChangeServiceConfig SUCCESS", function()
    T.eq(parse.sc_ok("[SC] ChangeServiceConfig SUCCESS\r\n"), true)
    T.eq(select(2, parse.sc_ok("Access is denied.\r\n")),
         "sc: no '[SC] ... SUCCESS' line; first line: 'Access is denied.'")
end)

T.test("sc qc: malformed text", function()
    local function err(text) return select(2, parse.sc_qc(text)) end
    T.eq(err(""), "sc qc: no SERVICE_NAME line in the output")
    T.eq(err(nil), "sc qc: expected text, got nil")
    T.eq(err(SC_QC:gsub("2   AUTO_START", "bogus")),
         "sc qc: line 5: START_TYPE: expected '<number> <name>', got: '        START_TYPE         : bogus'")
    T.eq(err(SC_QC:gsub("TAG                : 0", "TAG                : x")),
         "sc qc: line 9: TAG: expected a number, got: '        TAG                : x'")
    T.eq(err(SC_QC .. "garbage here\n"), "sc qc: line 13: unexpected line: 'garbage here'")
    T.eq(err(SC_QC:gsub("        START_TYPE[^\n]*\n", "")), "sc qc: no START_TYPE line for 'MSExchangeIS'")
    T.eq(err(SC_QC .. SC_QC), "sc qc: line 15: a second SERVICE_NAME: 'SERVICE_NAME: MSExchangeIS'")
    T.eq(err("'sc' is not recognized as an internal or external command,\r\n"),
         "sc qc: line 1: unexpected line: ''sc' is not recognized as an internal or external command,'")
    -- a continuation line that follows no DEPENDENCIES
    T.eq(err(SC_QC:gsub("        TAG", "                           : X\n        TAG")),
         "sc qc: line 9: unexpected line: '                           : X'")
    T.eq(err("SERVICE_NAME: \1\255\n"), "sc qc: no START_TYPE line for '\\x01\\xFF'")
    T.eq(err("SERVICE_NAME:\n"), "sc qc: line 1: empty SERVICE_NAME: 'SERVICE_NAME:'")
end)

-- ------------------------------------------------------------------
-- sc query

local function check_query(r)
    T.eq(r.name, "MSExchangeIS")
    T.eq(r.type, 16)
    T.eq(r.type_name, "WIN32_OWN_PROCESS")
    T.eq(r.state, 4)
    T.eq(r.state_name, "RUNNING")
    same_list(r.flags, { "STOPPABLE", "PAUSABLE", "ACCEPTS_SHUTDOWN" }, "flags")
    T.eq(r.win32_exit_code, 0)
    T.eq(r.service_exit_code, 0)
    T.eq(r.checkpoint, 0)
    T.eq(r.wait_hint, 0)
    T.eq(r.display_name, nil)
end

T.test("sc query: the contract's sample", function()
    check_query(assert(parse.sc_query(crlf(SC_QUERY))))
    check_query(assert(parse.sc_query(crlf(SC_QUERY):gsub("\r\n", " \t \r\n") .. "\r\n\r\n")))
end)

T.test("sc query: stopped, exit codes, spaced flags", function()
    local r = assert(parse.sc_query(crlf(tabs([[
SERVICE_NAME: MSExchangeIS
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 1  STOPPED
                                (NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)
        WIN32_EXIT_CODE    : 1069<TAB>(0x42d)
        SERVICE_EXIT_CODE  : 0<TAB>(0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x7d0
]]))))
    T.eq(r.state, 1)
    T.eq(r.state_name, "STOPPED")
    same_list(r.flags, { "NOT_STOPPABLE", "NOT_PAUSABLE", "IGNORES_SHUTDOWN" }, "flags")
    T.eq(r.win32_exit_code, 1069)
    T.eq(r.wait_hint, 2000)
end)

local SC_LIST = crlf(tabs([[

SERVICE_NAME: MSExchangeSA
DISPLAY_NAME: Microsoft Exchange System Attendant
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
                                (STOPPABLE,NOT_PAUSABLE,ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : 0<TAB>(0x0)
        SERVICE_EXIT_CODE  : 0<TAB>(0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0

SERVICE_NAME: MSExchangeKMS
DISPLAY_NAME: Microsoft Exchange Key Management Server
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 1  STOPPED
                                (NOT_STOPPABLE,NOT_PAUSABLE,IGNORES_SHUTDOWN)
        WIN32_EXIT_CODE    : 1077<TAB>(0x435)
        SERVICE_EXIT_CODE  : 0<TAB>(0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0

SERVICE_NAME: W32Time
DISPLAY_NAME: Windows Time
        TYPE               : 20  WIN32_SHARE_PROCESS
        STATE              : 2  START_PENDING
                                (NOT_STOPPABLE,NOT_PAUSABLE,IGNORES_SHUTDOWN)
        WIN32_EXIT_CODE    : 0<TAB>(0x0)
        SERVICE_EXIT_CODE  : 0<TAB>(0x0)
        CHECKPOINT         : 0x1
        WAIT_HINT          : 0x7d0
]]))

T.test("sc query list: one block per service, display names", function()
    local list = assert(parse.sc_query_list(SC_LIST))
    T.eq(#list, 3)
    T.eq(list[1].name, "MSExchangeSA")
    T.eq(list[1].display_name, "Microsoft Exchange System Attendant")
    T.eq(list[1].state_name, "RUNNING")
    T.eq(list[2].name, "MSExchangeKMS")
    T.eq(list[2].state, 1)
    T.eq(list[2].win32_exit_code, 1077)
    T.eq(list[3].name, "W32Time")
    T.eq(list[3].type, 32)
    T.eq(list[3].type_name, "WIN32_SHARE_PROCESS")
    T.eq(list[3].state, 2)
    T.eq(list[3].checkpoint, 1)
    T.eq(list.by_name.MSExchangeKMS, list[2])
    -- the single form refuses a list; the list form takes a single one
    T.eq(select(2, parse.sc_query(SC_LIST)), "sc query: expected one service, found 3")
    T.eq(#assert(parse.sc_query_list(SC_QUERY)), 1)
    T.eq(#assert(parse.sc_query_list("")), 0)
end)

T.test("sc query: malformed text", function()
    local function err(text) return select(2, parse.sc_query(text)) end
    T.eq(err(""), "sc query: expected one service, found 0")
    T.eq(err(SC_QUERY:gsub("4  RUNNING", "RUNNING")),
         "sc query: line 3: STATE: expected '<number> <name>', got: '        STATE              : RUNNING'")
    T.eq(err(SC_QUERY:gsub("        STATE[^\n]*\n", "")),
         "sc query: line 3: unexpected line: '                                (STOPPABLE,PAUSABLE,ACCEPTS_SHUTDOWN)'")
    T.eq(err(SC_QUERY:gsub("SERVICE_NAME: MSExchangeIS\n", "")),
         "sc query: line 1: TYPE before any SERVICE_NAME: '        TYPE               : 10  WIN32_OWN_PROCESS'")
    T.eq(err("SERVICE_NAME: X\n"), "sc query: no STATE line for 'X'")
    T.eq(err(SC_QUERY:gsub("0x0\n$", "zz\n")),
         "sc query: line 8: WAIT_HINT: expected a number, got: '        WAIT_HINT          : zz'")
end)

-- ------------------------------------------------------------------
-- net accounts, net statistics server

local NET_ACCOUNTS = crlf([[
Force user logoff how long after time expires?:       Never
Minimum password age (days):                          0
Maximum password age (days):                          42
Minimum password length:                              0
Length of password history maintained:                None
Lockout threshold:                                    Never
Lockout duration (minutes):                           30
Lockout observation window (minutes):                 30
Computer role:                                        SERVER
The command completed successfully.

]])

T.test("net accounts: role and fields", function()
    local r = assert(parse.net_accounts(NET_ACCOUNTS))
    T.eq(r.role, "SERVER")
    T.eq(r.is_dc, false)
    T.eq(r.completed, true)
    T.eq(r.fields["Maximum password age (days)"], "42")
    T.eq(r.fields["Force user logoff how long after time expires?"], "Never")
    T.eq(r.fields["Computer role"], "SERVER")
    for _, role in ipairs({ "PRIMARY", "BACKUP" }) do
        r = assert(parse.net_accounts(NET_ACCOUNTS:gsub("SERVER", role .. " \t")))
        T.eq(r.role, role)
        T.eq(r.is_dc, true)
    end
    -- the contract's line alone
    r = assert(parse.net_accounts("Computer role:                                        SERVER"))
    T.eq(r.role, "SERVER")
end)

T.test("net accounts: malformed text", function()
    local function err(text) return select(2, parse.net_accounts(text)) end
    T.eq(err(""), "net accounts: no 'Computer role' line in the output")
    T.eq(err(NET_ACCOUNTS:gsub("Computer role[^\r]*\r\n", "")), "net accounts: no 'Computer role' line in the output")
    T.eq(err(NET_ACCOUNTS:gsub("SERVER", "")),
         "net accounts: line 9: Computer role: expected one word, got: 'Computer role:'")
    T.eq(err(NET_ACCOUNTS:gsub("SERVER", "MEMBER SERVER")),
         "net accounts: line 9: Computer role: expected one word, got: "
         .. "'Computer role:                                        MEMBER SERVER'")
    T.eq(err("junk\r\n"), "net accounts: line 1: unexpected line: 'junk'")
    T.eq(err("System error 5 has occurred.\r\n\r\nAccess is denied.\r\n"),
         "net accounts: System error 5: Access is denied.")
end)

local NET_STATISTICS = crlf([[
Server Statistics for \\EXCH01


Statistics since 5/18/2001 9:41 AM


Sessions accepted                  1
Sessions timed-out                 0
Sessions errored-out               0

Kilobytes sent                     12
Kilobytes received                 3

Mean response time (msec)          0

The command completed successfully.

]])

T.test("net statistics server: the boot time", function()
    local r = assert(parse.net_statistics(NET_STATISTICS))
    T.eq(r.since, "5/18/2001 9:41 AM")
    T.eq(r.computer, "EXCH01")
    T.eq(r.boot.iso, "2001-05-18T09:41:00")
    T.eq(r.boot.hour, 9)
    T.eq(r.fields["Sessions accepted"], "1")
    T.eq(r.fields["Mean response time (msec)"], "0")
    r = assert(parse.net_statistics(NET_STATISTICS:gsub("9:41 AM", "12:05 PM")))
    T.eq(r.boot.iso, "2001-05-18T12:05:00")
    r = assert(parse.net_statistics(NET_STATISTICS:gsub("9:41 AM", "12:05 AM")))
    T.eq(r.boot.iso, "2001-05-18T00:05:00")
    r = assert(parse.net_statistics("Statistics since 5/18/2001 11:59 PM\t \r\n"))
    T.eq(r.since, "5/18/2001 11:59 PM")
    T.eq(r.boot.iso, "2001-05-18T23:59:00")
    -- a time it cannot read is kept as text, without boot
    r = assert(parse.net_statistics("Statistics since 2001-05-18 09:41\r\n"))
    T.eq(r.since, "2001-05-18 09:41")
    T.eq(r.boot, nil)
end)

T.test("net statistics: malformed text; parse_datetime", function()
    T.eq(select(2, parse.net_statistics("")), "net statistics: no 'Statistics since' line in the output")
    T.eq(select(2, parse.net_statistics(NET_STATISTICS .. "Statistics since 1/1/2002 1:00 AM\r\n")),
         "net statistics: line 18: a second 'Statistics since' line: 'Statistics since 1/1/2002 1:00 AM'")
    T.eq(parse.parse_datetime("5/18/2001 10:02:11 AM").iso, "2001-05-18T10:02:11")
    T.eq(parse.parse_datetime("12/31/2001 23:59").iso, "2001-12-31T23:59:00")
    T.eq(parse.parse_datetime("13/1/2001 1:00 AM"), nil)
    T.eq(parse.parse_datetime("2/30/2001 1:00 AM"), nil)
    T.eq(parse.parse_datetime("1/1/2001 13:00 PM"), nil)
    T.eq(parse.parse_datetime("1/1/2001 1:00 XM"), nil)
    T.eq(parse.parse_datetime(nil), nil)
end)

-- ------------------------------------------------------------------
-- net start / net stop / net use

T.test("net start: started, with a dependency started first", function()
    local r = assert(parse.net_service(crlf([[
The Microsoft Exchange Information Store service is starting.
The Microsoft Exchange Information Store service was started successfully.
]])))
    T.eq(r.ok, true)
    T.eq(r.status, "started")
    same_list(r.services, { "Microsoft Exchange Information Store" }, "services")
    r = assert(parse.net_service(crlf([[
The Microsoft Exchange Directory service is starting.
The Microsoft Exchange Directory service was started successfully.

The Microsoft Exchange Information Store service is starting....
The Microsoft Exchange Information Store service was started successfully.

]])))
    T.eq(r.ok, true)
    same_list(r.services, { "Microsoft Exchange Directory", "Microsoft Exchange Information Store" }, "services")
end)

T.test("net start: system errors 1069 and 1068, already started", function()
    local r = assert(parse.net_service(crlf([[
System error 1069 has occurred.

The service did not start due to a logon failure.

]])))
    T.eq(r.ok, false)
    T.eq(r.status, "error")
    T.eq(r.error, 1069)
    T.eq(r.message, "The service did not start due to a logon failure.")
    r = assert(parse.net_service(crlf([[
The Microsoft Exchange Information Store service is starting.
System error 1068 has occurred.

The dependency service or group failed to start.
]])))
    T.eq(r.ok, false)
    T.eq(r.error, 1068)
    T.eq(r.message, "The dependency service or group failed to start.")
    r = assert(parse.net_service(crlf([[
The requested service has already been started.

More help is available by typing NET HELPMSG 2182.

]])))
    T.eq(r.ok, false)
    T.eq(r.status, "already_started")
    T.eq(r.error, 2182)
    T.eq(r.message, "The requested service has already been started.")
end)

T.test("net stop: stopped (dependents first), not started, dependents prompt", function()
    local r = assert(parse.net_service(crlf([[
The following services are dependent on the Microsoft Exchange Directory service.
Stopping the Microsoft Exchange Directory service will also stop these services.

   Microsoft Exchange Information Store
   Microsoft Exchange Message Transfer Agent

The Microsoft Exchange Information Store service is stopping.
The Microsoft Exchange Information Store service was stopped successfully.

The Microsoft Exchange Message Transfer Agent service is stopping..
The Microsoft Exchange Message Transfer Agent service was stopped successfully.

The Microsoft Exchange Directory service is stopping.
The Microsoft Exchange Directory service was stopped successfully.

]])))
    T.eq(r.ok, true)
    T.eq(r.status, "stopped")
    same_list(r.services, { "Microsoft Exchange Information Store", "Microsoft Exchange Message Transfer Agent",
                            "Microsoft Exchange Directory" }, "services")

    r = assert(parse.net_service(crlf([[
The Microsoft Exchange Directory service is not started.

More help is available by typing NET HELPMSG 3521.

]])))
    T.eq(r.ok, false)
    T.eq(r.status, "not_started")
    T.eq(r.error, 3521)
    T.eq(r.message, "The Microsoft Exchange Directory service is not started.")
    same_list(r.services, { "Microsoft Exchange Directory" }, "services")

    -- luacheck: push ignore 613 (the tool's output ends lines in spaces)
    r = assert(parse.net_service(crlf([[
The following services are dependent on the Microsoft Exchange Directory service.
Stopping the Microsoft Exchange Directory service will also stop these services.

   Microsoft Exchange Information Store
   Microsoft Exchange Message Transfer Agent

Do you want to continue this operation? (Y/N) [N]: 
]])))
    -- luacheck: pop
    T.eq(r.ok, false)
    T.eq(r.status, "dependents")
    same_list(r.services, { "Microsoft Exchange Information Store", "Microsoft Exchange Message Transfer Agent" },
              "dependents")
    -- the lab's shorter form: the list right after the first line
    r = assert(parse.net_service(crlf([[
The following services are dependent on the Microsoft Exchange Directory service.
Microsoft Exchange Information Store
Do you want to continue this operation? (Y/N) [N]:
]])))
    T.eq(r.status, "dependents")
    same_list(r.services, { "Microsoft Exchange Information Store" }, "dependents")
    T.eq(parse.net_result, parse.net_service, "alias")
end)

T.test("net start/stop: malformed text", function()
    local function err(text) return select(2, parse.net_service(text)) end
    T.eq(err(""), "net: no output")
    T.eq(err("\r\n \r\n"), "net: no output")
    T.eq(err("The syntax of this command is:\r\n"), "net: line 1: unexpected line: 'The syntax of this command is:'")
    T.eq(err("The X service is starting.\r\n"),
         "net: line 1: no result in the output, first line: 'The X service is starting.'")
    T.eq(err("The following services are dependent on the X service.\r\nA\r\n"),
         "net: line 1: no result in the output, first line: "
         .. "'The following services are dependent on the X service.'")
    T.eq(err(7), "net: expected text, got number")
end)

T.test("net use: ok or System error 1326", function()
    local r = assert(parse.net_use("The command completed successfully.\r\n\r\n"))
    T.eq(r.ok, true)
    r = assert(parse.net_use(crlf([[
System error 1326 has occurred.

Logon failure: unknown user name or bad password.

]])))
    T.eq(r.ok, false)
    T.eq(r.error, 1326)
    T.eq(r.message, "Logon failure: unknown user name or bad password.")
    T.eq(select(2, parse.net_use("")), "net use: no result in the output")
    T.eq(select(2, parse.net_use("what\r\n")), "net use: no result in the output, first line: 'what'")
end)

T.test("system_error, not_recognized", function()
    local se = assert(parse.system_error("System error 5 has occurred.\r\n\r\nAccess is denied.\r\n"))
    T.eq(se.code, 5)
    T.eq(se.message, "Access is denied.")
    T.eq(parse.system_error("fine\r\n"), nil)
    T.eq(parse.not_recognized("'ntrights' is not recognized as an internal or external command,\r\n"
        .. "operable program or batch file.\r\n"), "ntrights")
    T.eq(parse.not_recognized("ok"), nil)
end)

-- ------------------------------------------------------------------
-- secedit INF

local function check_secedit(doc, encoding)
    T.eq(doc.encoding, encoding)
    T.eq(#doc.sections, 3)
    T.eq(doc.sections[1].name, "Unicode")
    T.eq(doc.sections[2].name, "Version")
    T.eq(doc.sections[3].name, "Privilege Rights")
    T.eq(doc.section("version").entries[1].key, "signature")
    T.eq(doc.section("VERSION").entries[1].value, '"$CHICAGO$"')
    T.eq(doc.section("Unicode").entries[1].value, "yes")
    same_list(doc.rights.SeServiceLogonRight,
              { "*S-1-5-21-1004336348-1177238915-682003330-1107", "*S-1-5-32-544" }, "SeServiceLogonRight")
    same_list(doc.rights_order, { "SeServiceLogonRight" }, "rights_order")
end

T.test("secedit INF: the contract's sample as UTF-16LE with a BOM, and as ASCII", function()
    check_secedit(assert(parse.inf(utf16le(crlf(SECEDIT), true))), "utf-16le")
    check_secedit(assert(parse.inf(crlf(SECEDIT))), "ascii")
    check_secedit(assert(parse.inf("\239\187\191" .. SECEDIT)), "utf-8")
    check_secedit(assert(parse.inf(utf16le(crlf(SECEDIT), false))), "utf-16le")
    T.eq(parse.secedit_inf, parse.inf, "alias")
end)

-- luacheck: push ignore 613 (the tool's output ends lines in spaces)
local GPTTMPL = crlf([[
[Unicode]
Unicode=yes
[Version]
signature="$CHICAGO$"
Revision=1
; a comment
[Privilege Rights]
SeNetworkLogonRight = *S-1-5-32-544, *S-1-5-11 ,*S-1-5-9
SeTcbPrivilege =
SeServiceLogonRight = 
SeInteractiveLogonRight = *S-1-5-32-544,*S-1-5-32-548
SeRestorePrivilege = Administrators,CORP\exchsvc
[Registry Values]
MACHINE\System\CurrentControlSet\Services\NTDS\Parameters\LDAPServerIntegrity=4,1
[Group Membership]
]])
-- luacheck: pop

T.test("secedit INF: DC policy template, empty rights, names, unknown sections", function()
    local doc = assert(parse.inf(utf16le(GPTTMPL, true)))
    same_list(doc.rights.SeNetworkLogonRight, { "*S-1-5-32-544", "*S-1-5-11", "*S-1-5-9" }, "network")
    same_list(doc.rights.SeTcbPrivilege, {}, "tcb: no member")
    same_list(doc.rights.SeServiceLogonRight, {}, "service logon: no member")
    same_list(doc.rights.SeRestorePrivilege, { "Administrators", "CORP\\exchsvc" }, "restore")
    same_list(doc.rights_order, { "SeNetworkLogonRight", "SeTcbPrivilege", "SeServiceLogonRight",
                                  "SeInteractiveLogonRight", "SeRestorePrivilege" }, "order")
    T.eq(#doc.sections, 5)
    T.eq(doc.sections[4].name, "Registry Values")
    T.eq(doc.sections[4].entries[1].key,
        "MACHINE\\System\\CurrentControlSet\\Services\\NTDS\\Parameters\\LDAPServerIntegrity")
    T.eq(doc.sections[4].entries[1].value, "4,1")
    T.eq(doc.sections[5].name, "Group Membership")
    T.eq(#doc.sections[5].entries, 0)

    local p = parse.principal("*S-1-5-32-544")
    T.eq(p.sid, "S-1-5-32-544")
    p = parse.principal("CORP\\exchsvc")
    T.eq(p.domain, "CORP"); T.eq(p.name, "exchsvc")
    p = parse.principal("Everyone")
    T.eq(p.name, "Everyone"); T.eq(p.domain, nil); T.eq(p.sid, nil)
end)

T.test("write_inf: ASCII with CRLF, rights rewritten, the rest kept", function()
    local doc = assert(parse.inf(utf16le(GPTTMPL, true)))
    doc.rights.SeTcbPrivilege = { "*S-1-5-21-1004336348-1177238915-682003330-1107" }
    table.insert(doc.rights.SeNetworkLogonRight, "*S-1-1-0")
    doc.rights.SeBatchLogonRight = {}
    doc.rights.SeAuditPrivilege = { "CORP\\exchsvc" }
    local text = assert(parse.write_inf(doc))
    T.eq(text, crlf([[
[Unicode]
Unicode=yes
[Version]
signature="$CHICAGO$"
Revision=1
; a comment
[Privilege Rights]
SeNetworkLogonRight = *S-1-5-32-544,*S-1-5-11,*S-1-5-9,*S-1-1-0
SeTcbPrivilege = *S-1-5-21-1004336348-1177238915-682003330-1107
SeServiceLogonRight =
SeInteractiveLogonRight = *S-1-5-32-544,*S-1-5-32-548
SeRestorePrivilege = Administrators,CORP\exchsvc
SeAuditPrivilege = CORP\exchsvc
SeBatchLogonRight =
[Registry Values]
MACHINE\System\CurrentControlSet\Services\NTDS\Parameters\LDAPServerIntegrity=4,1
[Group Membership]
]]))
    -- it reads back the same
    local again = assert(parse.inf(text))
    T.eq(again.encoding, "ascii")
    same_list(again.rights.SeNetworkLogonRight, doc.rights.SeNetworkLogonRight, "network")
    same_list(again.rights.SeTcbPrivilege, doc.rights.SeTcbPrivilege, "tcb")
    T.eq(assert(parse.write_inf(again)), text)
end)

T.test("write_inf: a new document, refusals", function()
    T.eq(parse.write_inf({ sections = {}, rights = { SeTcbPrivilege = { "*S-1-1-0" } } }),
         "[Privilege Rights]\r\nSeTcbPrivilege = *S-1-1-0\r\n")
    T.eq(parse.write_inf({ sections = { { name = "Version", entries = { { key = "Revision", value = "1" } } } },
                           rights = {} }),
         "[Version]\r\nRevision=1\r\n")
    T.eq(select(2, parse.write_inf(nil)), "write_inf: expected an INF document")
    T.eq(select(2, parse.write_inf({ sections = {}, rights = { R = { "Ren\195\169" } } })),
         "write_inf: non-ASCII or control character in 'R = Ren\\xC3\\xA9'")
    T.eq(select(2, parse.write_inf({ sections = {}, rights = { R = { "a,b" } } })), "write_inf: invalid member of R")
    T.eq(select(2, parse.write_inf({ sections = {}, rights = { R = "x" } })),
         "write_inf: members of R are not a list")
end)

T.test("secedit INF: non-ASCII names decode from UTF-16LE", function()
    local doc = assert(parse.inf(utf16le("[Privilege Rights]\r\nSeTcbPrivilege = " ..
        "CORP\\Ren\195\169,CORP\\\240\159\152\128\r\n", true)))
    same_list(doc.rights.SeTcbPrivilege, { "CORP\\Ren\195\169", "CORP\\\240\159\152\128" }, "tcb")
    -- a lone surrogate becomes U+FFFD
    doc = assert(parse.inf("\255\254[\0a\0]\0\r\0\n\0k\0=\0\0\216"))
    T.eq(doc.sections[1].entries[1].value, "\239\191\189")
end)

T.test("secedit INF: malformed text", function()
    local function err(text) return select(2, parse.inf(text)) end
    T.eq(err(""), "inf: no [section] in the file")
    T.eq(err("key=value\r\n[A]\r\n"), "inf: line 1: text before the first [section]: 'key=value'")
    T.eq(err("[]\r\n"), "inf: line 1: empty section name: '[]'")
    T.eq(err("[Privilege Rights]\r\nSeTcbPrivilege\r\n"),
         "inf: line 2: [Privilege Rights]: expected 'Right = members': 'SeTcbPrivilege'")
    T.eq(err("[A]\r\n= x\r\n"), "inf: line 2: '=' without a key: '= x'")
    T.eq(err(false), "inf: expected text, got boolean")
    -- an odd trailing byte of UTF-16 is dropped
    T.ok(parse.inf(utf16le("[A]\r\n", true) .. "\0"), "odd length")
end)

-- ------------------------------------------------------------------
-- dumpel

T.test("dumpel: the contract's line", function()
    local list = assert(parse.dumpel(crlf(DUMPEL)))
    T.eq(#list, 1)
    local e = list[1]
    T.eq(e.date, "5/18/2001")
    T.eq(e.time, "10:02:11 AM")
    T.eq(e.type, 1)
    T.eq(e.category, 4)
    T.eq(e.id, 13003)
    T.eq(e.source, "MSExchangePOP3")
    T.eq(e.user, "N/A")
    T.eq(e.computer, "EXCH01")
    T.eq(e.description, "A required privilege is not held by the client")
end)

T.test("dumpel: several lines, blank lines, tabs in the description, spaces", function()
    local text = crlf(DUMPEL) .. "\r\n"
        .. tabs("5/18/2001<TAB>10:05:00 PM<TAB>1<TAB>0<TAB>7000<TAB>Service Control Manager<TAB>N/A<TAB>EXCH01"
        .. "<TAB>The MSExchangeIS service failed to start<TAB>logon failure  \r\n")
        .. tabs("5/18/2001<TAB>10:06:00 PM<TAB>4<TAB>0<TAB>6005<TAB>EventLog<TAB>N/A<TAB>EXCH01\r\n")
        .. "5/19/2001 1:02:03 AM 1 4 13003 MSExchangeIMAP4 N/A EXCH01 A required privilege is not held by the " ..
            "client\r\n"
    local list = assert(parse.dumpel(text))
    T.eq(#list, 4)
    T.eq(list[2].source, "Service Control Manager")
    T.eq(list[2].id, 7000)
    T.eq(list[2].description, "The MSExchangeIS service failed to start\tlogon failure")
    T.eq(list[3].type, 4)
    T.eq(list[3].description, "")
    T.eq(list[4].date, "5/19/2001")
    T.eq(list[4].time, "1:02:03 AM")
    T.eq(list[4].source, "MSExchangeIMAP4")
    T.eq(list[4].description, "A required privilege is not held by the client")
    same_list(assert(parse.dumpel("")), {}, "no events")
    same_list(assert(parse.dumpel("\r\n\r\n")), {}, "blank lines")
end)

T.test("dumpel: malformed lines", function()
    local function err(text) return select(2, parse.dumpel(text)) end
    T.eq(err("5/18/2001\t10:02:11 AM\t1\r\n"),
         "dumpel: line 1: expected 9 tab-separated fields, got 3 in: '5/18/2001\\x0910:02:11 AM\\x091'")
    T.eq(err(DUMPEL:gsub("13003", "x13003")),
         "dumpel: line 1: field 5 (id): expected a number, in: '5/18/2001\\x0910:02:11 AM\\x091\\x094\\x09x13003"
         .. "\\x09MSExchangePOP3\\x09N/A\\x09EXCH...'")
    T.eq(err(DUMPEL:gsub("5/18/2001", "18.5.2001")):match("^[^:]*: line 1: [^:]*"),
         "dumpel: line 1: expected a date and time, in")
    T.eq(err(crlf(DUMPEL) .. "No events found\r\n"), "dumpel: line 2: expected an event line, got: 'No events found'")
end)

T.test("env: the output of set", function()
    local env = assert(parse.env("COMPUTERNAME=EXCH01\r\nOS=Windows_NT\r\nPATH=C:\\WINNT;C:\\x=y\r\n"))
    T.eq(env.COMPUTERNAME, "EXCH01")
    T.eq(env.PATH, "C:\\WINNT;C:\\x=y")
    T.eq(select(2, parse.env("nope\r\n")), "set: line 1: expected NAME=value, got: 'nope'")
end)

-- ------------------------------------------------------------------
-- fuzz-like: no input ever raises

local PARSERS = { "sc_qc", "sc_query", "sc_query_list", "sc_failure", "sc_ok", "net_accounts",
                  "net_statistics", "net_service", "net_use", "system_error", "not_recognized",
                  "inf", "dumpel", "env", "parse_datetime", "lines" }

local function must_not_raise(data, label)
    for _, name in ipairs(PARSERS) do
        local ok, r, msg = pcall(parse[name], data)
        if not ok then error(name .. " raised on " .. label .. " " .. string.format("%q", data) .. ": " ..
            tostring(r), 2) end
        if r == nil and name ~= "sc_failure" and name ~= "system_error" and name ~= "not_recognized"
            and name ~= "parse_datetime" then
            T.eq(type(msg), "string", name .. " message on " .. label)
        end
    end
    local ok, doc = pcall(parse.inf, data)
    if ok and doc then
        local wok, werr = pcall(parse.write_inf, doc)
        T.ok(wok, "write_inf raised: " .. tostring(werr))
    end
end

local SAMPLES = {
    crlf(SC_QC), crlf(SC_QUERY), SC_LIST, SC_1060, NET_ACCOUNTS, NET_STATISTICS, crlf(DUMPEL),
    crlf(SECEDIT), utf16le(crlf(SECEDIT), true), GPTTMPL, utf16le(GPTTMPL, true),
    "System error 1069 has occurred.\r\n\r\nThe service did not start due to a logon failure.\r\n",
    "The following services are dependent on the X service.\r\n  A\r\nDo you want to continue this operation? " ..
        "(Y/N) [N]:\r\n",
}

T.test("fuzz: every truncation of every sample", function()
    -- under memcheck every 13th cut (and the whole sample): the same
    -- parsers run, each cut alike in what it exercises
    local stride = T.memcheck and 13 or 1
    for _, s in ipairs(SAMPLES) do
        for cut = 0, #s, stride do must_not_raise(s:sub(1, cut), "truncation") end
        must_not_raise(s, "whole")
    end
end)

T.test("fuzz: garbled samples and random bytes", function()
    math.randomseed(13003)
    local specials = { "\0", "\r", "\n", "\t", " ", ":", "=", "[", "]", "(", ")", ",", "\\", "*", "%", "\255", "\254",
                       "0x", "9", "SERVICE_NAME: ", "STATE : ", "[Privilege Rights]\r\n", "\216", "\220" }
    for _ = 1, T.scale(1500, 150) do
        local s = SAMPLES[math.random(#SAMPLES)]
        for _ = 1, math.random(1, 6) do
            local pos = math.random(0, #s)
            local action = math.random(3)
            local piece = math.random(2) == 1 and specials[math.random(#specials)] or string.char(math.random(0, 255))
            if action == 1 then
                s = s:sub(1, pos) .. piece .. s:sub(pos + 1)
            elseif action == 2 then
                s = s:sub(1, pos) .. s:sub(pos + math.random(1, 20))
            else
                s = s:sub(1, pos) .. piece .. s:sub(pos + 2)
            end
        end
        must_not_raise(s, "garbled")
    end
    for _ = 1, T.scale(500, 50) do
        local buf = {}
        for _ = 1, math.random(0, 200) do buf[#buf + 1] = string.char(math.random(0, 255)) end
        must_not_raise(table.concat(buf), "random")
    end
    for _, v in ipairs({ 0, true, {}, print }) do
        for _, name in ipairs(PARSERS) do
            if name ~= "lines" then
                local ok, r = pcall(parse[name], v)
                T.ok(ok, name .. " raised on a " .. type(v) .. ": " .. tostring(r))
            end
        end
    end
end)

T.done()
