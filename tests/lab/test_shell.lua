-- The lab's cmd.exe and programs, driven over a real sshd with OpenSSH's
-- ssh: outputs byte for byte against the contract's samples
-- (tests/fixtures/windows2000-exchange55.md, a copy of ../shared/targets/), cmd.exe parsing, and
-- cmd-args.json through the client's quoting and the lab's splitting.
local _, tests_dir, lab_binary = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(nil, tests_dir)
local L = dofile(tests_dir .. "/lab/testlab.lua")
local json = require("cutover.core.json")

local lab = L.start(T, lab_binary, { hosts = 1 })
local contract = T.read(tests_dir .. "/fixtures/windows2000-exchange55.md")

-- A sample from the contract, as text with CRLF line ends; when the
-- contract is at hand, the sample must be in it verbatim.
local function sample(text)
    if contract then T.contains(contract, text, "the contract") end
    return (text:gsub("\n", "\r\n")) .. "\r\n"
end

local SC_QC = sample([[
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
        SERVICE_START_NAME : CORP\exchsvc]])

local SC_QUERY = sample([[
SERVICE_NAME: MSExchangeIS
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
                                (STOPPABLE,PAUSABLE,ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : 0	(0x0)
        SERVICE_EXIT_CODE  : 0	(0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0]])

local ROLE_SERVER = "Computer role:                                        SERVER"

T.test("sc qc and sc query print the contract's samples byte for byte", function()
    T.eq(lab:must(1, "sc qc MSExchangeIS").stdout, SC_QC, "sc qc")
    T.eq(lab:must(1, "sc query MSExchangeIS").stdout, SC_QUERY, "sc query")
    -- a second dependency sits on its own line
    T.contains(lab:must(1, "sc qc MSExchangeIMC").stdout,
        "        DEPENDENCIES       : MSExchangeIS\r\n" ..
        "                           : MSExchangeMTA\r\n", "second dependency")
end)

T.test("sc query type= service state= all lists every service with DISPLAY_NAME", function()
    local out = lab:must(1, "sc query type= service state= all").stdout
    T.contains(out, "SERVICE_NAME: MSExchangeIS\r\nDISPLAY_NAME: Microsoft Exchange Information Store\r\n" ..
               "        TYPE               : 10  WIN32_OWN_PROCESS\r\n", "IS block")
    T.contains(out, "SERVICE_NAME: Netlogon\r\n", "non-Exchange services too")
    T.contains(out, "        WAIT_HINT          : 0x0\r\n\r\nSERVICE_NAME: ", "blank line between blocks")
end)

T.test("sc failures: [SC] Api FAILED n:, blank, message; exit n mod 256", function()
    local r = lab:ssh(1, "sc qc NoSuchService")
    T.eq(r.rc, 1060 % 256, "exit")
    T.eq(r.stdout, "[SC] OpenService FAILED 1060:\r\n\r\n" ..
         "The specified service does not exist as an installed service.\r\n")
    r = lab:ssh(1, "sc config MSExchangeIS obj= CORP\\nobody password= x")
    T.eq(r.rc, 1057 % 256, "exit")
    T.eq(r.stdout, "[SC] ChangeServiceConfig FAILED 1057:\r\n\r\n" ..
         "The account name is invalid or does not exist, or the password " ..
         "is invalid for the account name specified.\r\n")
end)

T.test("net accounts ends with the role; net statistics server has the boot time", function()
    local out = lab:must(1, "net accounts").stdout
    if contract then T.contains(contract, ROLE_SERVER, "contract") end
    T.ok(out:sub(-#ROLE_SERVER - 2) == ROLE_SERVER .. "\r\n", "ends with " .. ROLE_SERVER)
    out = lab:must(1, "net statistics server").stdout
    T.contains(out, "\r\nStatistics since 5/18/2001 9:41 AM\r\n", "boot time")
end)

T.test("net stop: dependents prompt without /y; /y stops dependents first; edge cases", function()
    local r = lab:ssh(1, "net stop MSExchangeIS")
    T.eq(r.rc, 2, "exit")
    T.contains(r.stdout, "The following services are dependent on the Microsoft Exchange Information Store " ..
        "service.\r\n")
    T.contains(r.stdout, "Do you want to continue this operation? (Y/N) [N]:")
    T.match(lab:must(1, "sc query MSExchangeES").stdout, "4  RUNNING", "nothing stopped")
    r = lab:must(1, "net stop MSExchangeIS /y")
    T.eq(r.stdout,
        "The Microsoft Exchange Internet Mail Service service is stopping.\r\n" ..
        "The Microsoft Exchange Internet Mail Service service was stopped successfully.\r\n" ..
        "The Microsoft Exchange Event Service service is stopping.\r\n" ..
        "The Microsoft Exchange Event Service service was stopped successfully.\r\n" ..
        "The Microsoft Exchange Information Store service is stopping.\r\n" ..
        "The Microsoft Exchange Information Store service was stopped successfully.\r\n")
    r = lab:ssh(1, "net stop MSExchangeIS")
    T.eq(r.rc, 2, "stopping a stopped service")
    T.eq(r.stderr, "The Microsoft Exchange Information Store service is not started.\r\n\r\n" ..
         "More help is available by typing NET HELPMSG 3521.\r\n")
    -- by display name; the stopped dependency is not involved
    r = lab:must(1, 'net start "Microsoft Exchange Information Store"')
    T.eq(r.stdout, "The Microsoft Exchange Information Store service is starting.\r\n" ..
         "The Microsoft Exchange Information Store service was started successfully.\r\n")
    r = lab:ssh(1, "net start MSExchangeIS")
    T.eq(r.rc, 2, "starting a running service")
    T.eq(r.stderr, "The requested service has already been started.\r\n\r\n" ..
         "More help is available by typing NET HELPMSG 2182.\r\n")
    lab:must(1, "net start MSExchangeIMC && net start MSExchangeES")
end)

T.test("net use verifies a password; /delete ends the session", function()
    local pw = lab.secrets.exchange_service_password
    local cmdline = require("cutover.windows.cmdline")
    local line = assert(cmdline.build({ "net", "use", "\\\\EXCH01\\IPC$", pw, "/user:CORP\\exchsvc" }))
    T.eq(lab:must(1, line).stdout, "The command completed successfully.\r\n\r\n")
    T.eq(lab:must(1, "net use \\\\EXCH01\\IPC$ /delete").stdout, "\\\\EXCH01\\IPC$ was deleted successfully.\r\n\r\n")
    local r = lab:ssh(1, "net use \\\\EXCH01\\IPC$ wrong /user:CORP\\exchsvc")
    T.eq(r.rc, 2, "exit")
    T.eq(r.stderr, "System error 1326 has occurred.\r\n\r\nLogon failure: unknown user name or bad password.\r\n")
end)

T.test("secedit /export writes UTF-16LE with a BOM in the contract's format", function()
    T.eq(lab:must(1, "secedit /export /cfg C:\\TEMP\\rights.inf /areas USER_RIGHTS").stdout,
         "Task is completed successfully.\r\n")
    local raw = lab:file(1, "C/TEMP/rights.inf")
    T.eq(raw:sub(1, 2), "\255\254", "BOM")
    local text = raw:sub(3):gsub("(.)%z", "%1")
    T.eq(#text * 2 + 2, #raw, "every character is 2 bytes")
    T.eq(text:sub(1, 70), '[Unicode]\r\nUnicode=yes\r\n[Version]\r\nsignature="$CHICAGO$"\r\nRevision=1\r\n', "header")
    local line = "SeServiceLogonRight = *S-1-5-21-1004336348-1177238915-682003330-1107,*S-1-5-32-544"
    if contract then T.contains(contract, line, "contract") end
    T.contains(text, "[Privilege Rights]\r\n", "section")
    T.contains(text, "\r\n" .. line .. "\r\n", "the sample line")
    -- type converts it back to text
    T.eq(lab:must(1, "type C:\\TEMP\\rights.inf").stdout, text, "type")
end)

T.test("ntrights grants and revokes (case-sensitive rights); unknown account fails", function()
    T.eq(lab:must(1, "ntrights +r SeBatchLogonRight -u CORP\\exchsvc").stdout,
         "Granting SeBatchLogonRight to CORP\\exchsvc ... successful\r\n")
    lab:must(1, "secedit /export /cfg C:\\TEMP\\r2.inf /areas USER_RIGHTS")
    T.contains(lab:must(1, "type C:\\TEMP\\r2.inf").stdout,
               "SeBatchLogonRight = *S-1-5-21-1004336348-1177238915-682003330-1107\r\n")
    T.eq(lab:must(1, "ntrights -r SeBatchLogonRight -u CORP\\exchsvc").stdout,
         "Revoking SeBatchLogonRight from CORP\\exchsvc ... successful\r\n")
    local r = lab:ssh(1, "ntrights +r SeBatchLogonRight -u CORP\\nobody")
    T.eq(r.rc, 1, "exit")
    T.eq(r.stdout, "ntrights: account CORP\\nobody not found\r\n")
    T.eq(lab:ssh(1, "ntrights +r sebatchlogonright -u CORP\\exchsvc").rc, 1, "right names are case-sensitive")
end)

T.test("builtins: echo, ver, hostname, set, type, del, mkdir, if exist, exit /b", function()
    T.eq(lab:must(1, "ver").stdout, "Microsoft Windows 2000 [Version 5.00.2195]\r\n")
    T.eq(lab:must(1, "hostname").stdout, "EXCH01\r\n")
    T.eq(lab:must(1, "echo %COMPUTERNAME% %username% %UserDomain% %SystemRoot% %windir% %TEMP% %OS%").stdout,
         "EXCH01 admin CORP C:\\WINNT C:\\WINNT C:\\TEMP Windows_NT\r\n")
    T.eq(lab:must(1, "echo %NOT_DEFINED% 50%").stdout, "%NOT_DEFINED% 50%\r\n", "undefined names stay")
    T.contains(lab:must(1, "set").stdout, "COMPUTERNAME=EXCH01\r\n")
    lab:must(1, "mkdir C:\\TEMP\\a\\b && echo hello> C:\\TEMP\\a\\b\\f.txt")
    T.eq(lab:file(1, "C/TEMP/a/b/f.txt"), "hello\r\n", "file")
    T.eq(lab:must(1, "if exist c:\\temp\\A\\b\\F.TXT echo yes & echo also").stdout, "yes \r\nalso\r\n",
         "case-insensitive paths; the rest of the line is the body")
    T.eq(lab:must(1, "if not exist C:\\TEMP\\a\\b\\f.txt echo no & echo body").stdout, "",
        "false condition skips the body")
    lab:must(1, "del C:\\TEMP\\a\\b\\f.txt")
    T.eq(lab:must(1, "if not exist C:\\TEMP\\a\\b\\f.txt echo gone").stdout, "gone\r\n")
    local r = lab:ssh(1, "exit /b 1060")
    T.eq(r.rc, 1060 % 256, "exit /b n mod 256")
    r = lab:ssh(1, "echo one & exit /b 3 & echo never")
    T.eq(r.rc, 3, "exit stops the line")
    T.eq(r.stdout, "one \r\n")
end)

T.test("operators and redirections: & && || | > >> < 2>&1 2>nul >nul", function()
    T.eq(lab:must(1, "echo a& echo b").stdout, "a\r\nb\r\n")
    T.eq(lab:must(1, "sc qc nosuch >nul || echo failed").stdout, "failed\r\n")
    T.eq(lab:ssh(1, "sc qc nosuch >nul && echo never").stdout, "")
    T.eq(lab:must(1, "ver && echo then").stdout, "Microsoft Windows 2000 [Version 5.00.2195]\r\nthen\r\n")
    local r = lab:must(1, "net start MSExchangeIS 2>nul || echo was running")
    T.eq(r.stderr, "", "2>nul")
    T.eq(r.stdout, "was running\r\n")
    r = lab:ssh(1, "net start MSExchangeIS > C:\\TEMP\\both.txt 2>&1")
    T.eq(r.stdout .. r.stderr, "", "both streams to the file")
    T.contains(lab:file(1, "C/TEMP/both.txt"), "NET HELPMSG 2182", "2>&1")
    r = lab:ssh(1, "net start MSExchangeIS 2>&1 >nul")
    T.contains(r.stdout, "NET HELPMSG 2182", "2>&1 before >nul keeps stderr on stdout")
    lab:must(1, "echo one> C:\\TEMP\\app.txt & echo two>> C:\\TEMP\\app.txt")
    -- the space before & belongs to the first echo, as in cmd.exe
    T.eq(lab:file(1, "C/TEMP/app.txt"), "one \r\ntwo\r\n", ">>")
    T.eq(lab:must(1, "more < C:\\TEMP\\app.txt").stdout, "one \r\ntwo\r\n", "<")
    T.eq(lab:must(1, "ver | more").stdout, "Microsoft Windows 2000 [Version 5.00.2195]\r\n", "|")
    T.eq(lab:must(1, 'echo "a & b" ^& c^|d ^> e').stdout, '"a & b" & c|d > e\r\n', "quotes and carets")
    T.eq(lab:must(1, 'echo x > "C:\\TEMP\\with space.txt"').stdout, "")
    T.eq(lab:file(1, "C/TEMP/with space.txt"), "x \r\n", "quoted target")
    r = lab:ssh(1, 'echo x > C:\\TEMP\\^"bad')
    T.eq(r.rc, 1, "^\" in a target is an error")
    T.eq(r.stderr, "The syntax of the command is incorrect.\r\n")
end)

T.test("more copies stdin with CRLF line ends (and a final CRLF)", function()
    lab:must(1, "more > C:\\TEMP\\in.txt", "line 1\nline\t2\r\nlast")
    T.eq(lab:file(1, "C/TEMP/in.txt"), "line 1\r\nline\t2\r\nlast\r\n")
end)

T.test("unknown programs; names resolve case-insensitively with .exe or a path", function()
    local r = lab:ssh(1, "frobnicate /x")
    T.eq(r.rc, 1, "exit")
    T.eq(r.stderr, "'frobnicate' is not recognized as an internal or external command,\r\n" ..
         "operable program or batch file.\r\n")
    T.eq(lab:must(1, "SC.EXE qc MSExchangeIS").stdout, SC_QC, "SC.EXE")
    T.eq(lab:must(1, "C:\\WINNT\\system32\\sc qc MSExchangeIS").stdout, SC_QC, "full path")
    T.eq(lab:must(1, "Net.Exe accounts").stdout:sub(-#ROLE_SERVER - 2), ROLE_SERVER .. "\r\n")
end)

T.test("dumpel: tab-separated lines, -e and -m filters", function()
    local out = lab:must(1, "dumpel -l system -e 6005").stdout
    T.match(out, "^5/18/2001\t9:41:00 AM\t4\t0\t6005\tEventLog\tN/A\tEXCH01\tThe Event log service was started.\r\n$")
    T.eq(lab:must(1, "dumpel -l application -e 13003 -m MSExchangePOP3").stdout, "", "no 13003 yet")
end)

T.test("SP3 setup refuses while Exchange runs", function()
    local r = lab:ssh(1, "D:\\ENG\\SERVER\\SETUP\\I386\\UPDATE.EXE")
    T.eq(r.rc, 1, "exit")
    T.eq(r.stderr, "Setup cannot continue while Exchange services are running.\r\n")
    T.eq(lab:ssh(1, "update.exe").rc, 1, "not on the PATH")
end)

-- cmd-args.json: each string reaches a program intact (echoargs prints
-- every argument it received on its own line).
local args_file = T.read(tests_dir .. "/fixtures/cmd-args.json")
local cases = args_file and json.decode(args_file) or { roundtrip = { "two words", 'quote"inside', "a&b" } }

-- A reference quoting written here: CommandLineToArgvW quoting, then a
-- caret before every character cmd.exe treats specially (so cmd.exe
-- never enters a quoted span).
local function ref_quote(s)
    local q = { '"' }
    local bs = 0
    for c in s:gmatch(".") do
        if c == "\\" then
            bs = bs + 1
        elseif c == '"' then
            q[#q + 1] = string.rep("\\", bs * 2 + 1) .. '"'
            bs = 0
        else
            q[#q + 1] = string.rep("\\", bs) .. c
            bs = 0
        end
    end
    q[#q + 1] = string.rep("\\", bs * 2) .. '"'
    return (table.concat(q):gsub('[%^&|<>()"]', "^%0"))
end

-- Runs every line in one session (joined with &), then one by one only
-- when the whole differs, for a precise message.
local function check_lines(lines, wants)
    local r = lab:must(1, table.concat(lines, " & "))
    if r.stdout == table.concat(wants) then return end
    for k, line in ipairs(lines) do
        T.eq(lab:must(1, line).stdout, wants[k], "line " .. line)
    end
    error("the joined lines differ: " .. r.stdout)
end

T.test("cmd-args.json round-trips through the lab's cmd.exe and argv splitting (reference quoting)", function()
    local lines, wants = {}, {}
    for _, s in ipairs(cases.roundtrip) do
        lines[#lines + 1] = "echoargs " .. ref_quote(s)
        wants[#wants + 1] = s .. "\r\n"
    end
    check_lines(lines, wants)
end)

T.test("cmd-args.json round-trips with the client's quoting (cutover.windows.cmdline)", function()
    local ok, cmdline = pcall(require, "cutover.windows.cmdline")
    if not ok then print("# skipped: cutover.windows.cmdline is not there") return end
    local lines, wants = {}, {}
    for i, s in ipairs(cases.roundtrip) do
        local line = assert(cmdline.build({ "echoargs", s, "after" }))
        lines[#lines + 1] = line
        wants[#wants + 1] = s .. "\r\nafter\r\n"
        -- a redirection appended to a built line still redirects
        local path = "C:\\TEMP\\args" .. i .. ".txt"
        lines[#lines + 1] = assert(cmdline.redirect_stdout(line, path))
        wants[#wants + 1] = ""
    end
    check_lines(lines, wants)
    for i, s in ipairs(cases.roundtrip) do
        T.eq(lab:file(1, "C/TEMP/args" .. i .. ".txt"), s .. "\r\nafter\r\n", "redirected " .. string.format("%q", s))
    end
end)

T.test("why % is refused: cmd.exe expands it with no escape", function()
    T.eq(lab:must(1, "echoargs %PATH%").stdout, "C:\\WINNT\\system32;C:\\WINNT;C:\\exchsrvr\\bin\r\n")
    T.eq(lab:must(1, 'echoargs "%PATH%"').stdout, "C:\\WINNT\\system32;C:\\WINNT;C:\\exchsrvr\\bin\r\n",
         "quotes do not stop it")
end)

T.test("concurrent sessions keep the state consistent (one lock per command)", function()
    local proc = require("cutover.core.proc")
    local accounts = { "Administrators", "Everyone", "CORP\\admin", "CORP\\testuser", "Backup Operators", "Guests" }
    local sh = {}
    local status = T.tmpdir() .. "/status"
    for i, a in ipairs(accounts) do
        -- each session's exit status and stderr, so that a failure says which
        sh[#sh + 1] = string.format(
            "(ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile=%s/known_hosts -i %s/login_key " ..
            "-p %d -l %s %s 'ntrights +r SeSystemtimePrivilege -u \"%s\"' >/dev/null 2>%s.%d.err; " ..
            "echo \"%d $?\" >> %s) &",
            lab.dir, lab.dir, lab.hosts[1].ssh_port, lab.hosts[1].user, lab.hosts[1].address, a,
            status, i, i, status)
    end
    local r = proc.run({ shell = table.concat(sh, " ") .. " wait", timeout = 60 })
    T.eq(r.rc, 0, "sessions")
    local codes = {}
    for line in (T.read(status) or ""):gmatch("[^\n]+") do
        local i, rc = line:match("^(%d+) (%d+)$")
        codes[tonumber(i)] = tonumber(rc)
    end
    for i, a in ipairs(accounts) do
        T.eq(codes[i], 0, "session " .. i .. " (" .. a .. "): " .. (T.read(status .. "." .. i .. ".err") or ""))
    end
    lab:must(1, "secedit /export /cfg C:\\TEMP\\c.inf /areas USER_RIGHTS")
    local line = lab:must(1, "type C:\\TEMP\\c.inf").stdout:match("SeSystemtimePrivilege = ([^\r]*)")
    for _, sid in ipairs({ "S-1-5-32-544", "S-1-1-0", "-500", "-1108", "S-1-5-32-551", "S-1-5-32-546" }) do
        T.contains(line, sid, "every grant kept")
    end
end)

T.done()
