-- KB Q255269 in the lab: only dcpromo is run, the host reboots (sshd
-- really down, then back with a new boot time), the Exchange services
-- are stopped with 1069; after re-entering the account they start, and
-- POP3/IMAP4 logons fail with event 13003 until the rights and SP3 are
-- restored.  Also: wrong domain credentials change nothing, and the
-- rights survive a policy refresh and a reboot only in the DC template.
local _, tests_dir, lab_binary = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(nil, tests_dir)
local L = dofile(tests_dir .. "/lab/testlab.lua")
local loop = require("cutover.core.loop")
local cmdline = require("cutover.windows.cmdline")

local lab = L.start(T, lab_binary, { hosts = 1, reboot = 2, dcpromo = 0.5 })
local S = lab.secrets
local EXCHANGE = { "MSExchangeSA", "MSExchangeDS", "MSExchangeIS",
                   "MSExchangeMTA", "MSExchangeIMC", "MSExchangeES" }

local function answer_file(password)
    return table.concat({
        "[DCInstall]", "ReplicaOrNewDomain=Replica",
        "ReplicaDomainDNSName=corp.example", "UserName=admin",
        "Password=" .. password, "UserDomain=CORP",
        "DatabasePath=%systemroot%\\ntds", "LogPath=%systemroot%\\ntds",
        "SYSVOLPath=%systemroot%\\sysvol",
        "SafeModeAdminPassword=" .. S.safe_mode_password,
        "RebootOnSuccess=yes" }, "\n") .. "\n"
end

local function pop3_login(password)
    return lab:mail(1, "pop3_port", { "USER CORP\\testuser", "PASS " .. password, "QUIT" })
end

local function imap_quote(s) return '"' .. s:gsub('[\\"]', "\\%0") .. '"' end

local function imap_login(password)
    return lab:mail(1, "imap_port", { "a1 LOGIN " .. imap_quote("CORP\\testuser") .. " " ..
                                      imap_quote(password), "a2 LOGOUT" })
end

local function count_13003()
    local out = lab:must(1, "dumpel -l application -e 13003").stdout
    local n = 0
    for _ in out:gmatch("[^\n]+") do n = n + 1 end
    return n, out
end

local function stats_since()
    return lab:must(1, "net statistics server").stdout:match("Statistics since ([^\r]+)")
end

local function minutes(since)
    local h, m, ampm = since:match(" (%d+):(%d+) (%a%a)$")
    h = tonumber(h) % 12 + (ampm == "PM" and 12 or 0)
    return h * 60 + tonumber(m)
end

local POP_OK = "+OK User successfully logged on.\r\n"
local POP_FAIL = "-ERR Logon failure: unknown user name or bad password.\r\n"

T.test("before: a member server whose POP3 and IMAP4 logons work", function()
    T.contains(lab:must(1, "net accounts").stdout, "Computer role:                                        SERVER")
    local out = pop3_login(S.mailbox_test_password)
    T.eq(out, "+OK Microsoft Exchange POP3 server version 5.5.2650.23 ready\r\n+OK\r\n" .. POP_OK ..
         "+OK Microsoft Exchange POP3 server version 5.5.2650.23 signing off.\r\n", "POP3 transcript")
    out = imap_login(S.mailbox_test_password)
    T.eq(out, "* OK Microsoft Exchange IMAP4rev1 server version 5.5.2650.23 (EXCH01) ready.\r\n" ..
         "a1 OK LOGIN completed.\r\n* BYE Microsoft Exchange IMAP4rev1 server version 5.5.2650.23 signing off.\r\n" ..
         "a2 OK LOGOUT completed.\r\n", "IMAP4 transcript (quoted strings)")
    T.contains(pop3_login("wrong"), POP_FAIL, "wrong password")
    T.contains(imap_login("wrong"), "a1 NO LOGIN failed.\r\n", "wrong password")
    T.eq(count_13003(), 0, "a wrong password logs no 13003")
end)

T.test("dcpromo with wrong domain credentials: scrubbed, logged, nothing changed", function()
    lab:must(1, "more > C:\\TEMP\\answer.txt", answer_file("not the password"))
    local before = lab:must(1, "sc query type= service state= all").stdout
    local r = lab:ssh(1, "dcpromo /answer:C:\\TEMP\\answer.txt")
    T.eq(r.rc, 1, "exit")
    local text = lab:must(1, "type C:\\TEMP\\answer.txt").stdout
    T.contains(text, "\r\nPassword=\r\n", "Password scrubbed")
    T.contains(text, "\r\nSafeModeAdminPassword=\r\n", "SafeModeAdminPassword scrubbed")
    T.not_contains(text, S.safe_mode_password, "no secret left")
    T.contains(text, "ReplicaDomainDNSName=corp.example\r\n", "other lines kept")
    local log = lab:must(1, "type C:\\WINNT\\debug\\dcpromo.log").stdout
    T.match(log, "DCPROMO: The operation failed: Logon failure: unknown user name or bad password%.\r\n$", "log")
    T.contains(lab:must(1, "net accounts").stdout, "SERVER\r\n", "still a member server")
    T.eq(lab:must(1, "sc query type= service state= all").stdout, before, "services unchanged")
    T.contains(pop3_login(S.mailbox_test_password), POP_OK, "logons still work")
end)

local boot_before

T.test("only dcpromo: the host reboots; sshd and the mail ports really go down and come back", function()
    boot_before = stats_since()
    lab:must(1, "more > C:\\TEMP\\answer.txt", answer_file(S.domain_admin_password))
    local r = lab:ssh(1, "dcpromo /answer:C:\\TEMP\\answer.txt")
    T.ok(r.rc == 0 or r.rc == 255, "dcpromo succeeded or its channel dropped (" .. r.rc .. ")")
    T.ok(lab:wait_port(1, "ssh_port", false, 5), "sshd stopped listening")
    T.ok(not lab:listening(1, "pop3_port") and not lab:listening(1, "imap_port"), "mail ports closed")
    T.ok(lab:ssh(1, "hostname", nil, 10).rc == 255, "ssh refused during the reboot")
    T.ok(lab:wait_port(1, "ssh_port", true, 30), "sshd back")
    local since = stats_since()
    T.ok(since ~= boot_before, "boot time changed: " .. boot_before .. " -> " .. since)
    T.ok(minutes(since) - minutes(boot_before) >= 2, "at least two minutes later")
end)

T.test("after the promotion: a DC, passwords scrubbed, services stopped with 1069", function()
    T.contains(lab:must(1, "net accounts").stdout, "Computer role:                                        BACKUP")
    local text = lab:must(1, "type C:\\TEMP\\answer.txt").stdout
    T.contains(text, "\r\nPassword=\r\n")
    T.not_contains(text, S.domain_admin_password)
    T.match(lab:must(1, "type C:\\WINNT\\debug\\dcpromo.log").stdout,
            "DCPROMO: The operation completed successfully%.\r\n$")
    for _, name in ipairs(EXCHANGE) do
        T.contains(lab:must(1, "sc query " .. name).stdout, "STATE              : 1  STOPPED", name)
    end
    local r = lab:ssh(1, "net start MSExchangeSA")
    T.eq(r.rc, 2, "exit")
    T.eq(r.stderr, "System error 1069 has occurred.\r\n\r\nThe service did not start due to a logon failure.\r\n")
    r = lab:ssh(1, "net start MSExchangeIS")
    T.eq(r.rc, 2, "exit")
    T.eq(r.stderr, "System error 1068 has occurred.\r\n\r\nThe dependency service or group failed to start.\r\n")
    T.contains(lab:must(1, "dumpel -l system -e 7000").stdout,
               "\t7000\tService Control Manager\tN/A\tEXCH01\tThe Microsoft Exchange System Attendant service " ..
                   "failed to start")
    T.ok(not lab:listening(1, "pop3_port"), "no POP3 while the store is stopped")
    -- the DC policy template exists, with no SeServiceLogonRight member
    local tmpl = lab:must(1, 'type "C:\\WINNT\\SYSVOL\\sysvol\\corp.example\\Policies\\' ..
                             '{6AC1786C-016F-11D2-945F-00C04fB984F9}\\MACHINE\\Microsoft\\Windows ' ..
                                 'NT\\SecEdit\\GptTmpl.inf"').stdout
    T.contains(tmpl, "SeNetworkLogonRight = *S-1-5-32-544,*S-1-5-11,*S-1-5-9\r\n")
    T.contains(tmpl, "SeServiceLogonRight = \r\n")
end)

T.test("account re-entered and services restarted: POP3 and IMAP4 fail with event 13003", function()
    for _, name in ipairs(EXCHANGE) do
        local line = assert(cmdline.build({ "sc", "config", name, "obj=", "CORP\\exchsvc",
                                            "password=", S.exchange_service_password }))
        T.eq(lab:must(1, line).stdout, "[SC] ChangeServiceConfig SUCCESS\r\n")
    end
    -- what the Services console grants with the account
    lab:must(1, "ntrights +r SeServiceLogonRight -u CORP\\exchsvc")
    lab:must(1, "net start MSExchangeIMC && net start MSExchangeES")
    T.ok(lab:wait_port(1, "pop3_port", true, 5), "POP3 answers once the store runs")
    local n0 = count_13003()
    T.contains(pop3_login("wrong"), POP_FAIL)
    T.eq(count_13003(), n0, "no event for a wrong password")
    T.contains(pop3_login(S.mailbox_test_password), POP_FAIL, "POP3 logon fails")
    T.contains(imap_login(S.mailbox_test_password), "a1 NO LOGIN failed.", "IMAP4 logon fails")
    local n, out = count_13003()
    T.eq(n, n0 + 2, "two new 13003 events")
    T.match(out, "\t1\t4\t13003\tMSExchangePOP3\tN/A\tEXCH01\tA required privilege is not held by the client\r\n")
    T.match(out, "\t13003\tMSExchangeIMAP4\tN/A\tEXCH01\tA required privilege is not held by the client\r\n$")
end)

T.test("the fix: rights, then SP3 reinstalled with Exchange stopped; no new 13003", function()
    lab:must(1, "ntrights +r SeTcbPrivilege -u CORP\\exchsvc")
    lab:must(1, "ntrights +r SeNetworkLogonRight -u Everyone")
    local n0 = count_13003()
    T.contains(pop3_login(S.mailbox_test_password), POP_FAIL, "still failing without SP3")
    T.eq(count_13003(), n0 + 1, "13003 again")
    lab:must(1, "net stop MSExchangeSA /y")
    T.ok(lab:wait_port(1, "pop3_port", false, 5), "POP3 closed with the store stopped")
    T.eq(lab:must(1, "D:\\ENG\\SERVER\\SETUP\\I386\\UPDATE.EXE").stdout,
         "Microsoft Exchange Server 5.5 Service Pack 3 was installed successfully.\r\n")
    lab:must(1, "net start MSExchangeIMC && net start MSExchangeES")
    T.ok(lab:wait_port(1, "pop3_port", true, 5), "POP3 back")
    T.contains(pop3_login(S.mailbox_test_password), POP_OK, "POP3 logon works")
    T.contains(imap_login(S.mailbox_test_password), "a1 OK LOGIN completed.", "IMAP4 logon works")
    T.eq(count_13003(), n0 + 1, "no new 13003")
end)

local TEMPLATE = 'C:\\WINNT\\SYSVOL\\sysvol\\corp.example\\Policies\\{6AC1786C-016F-11D2-945F-00C04fB984F9}' ..
                 '\\MACHINE\\Microsoft\\Windows NT\\SecEdit\\GptTmpl.inf'

T.test("local grants do not survive a policy refresh; grants in the DC template do, also across a reboot", function()
    T.contains(lab:must(1, "secedit /refreshpolicy machine_policy /enforce").stdout,
               "Group policy propagation from the domain has been initiated for this computer.")
    T.contains(pop3_login(S.mailbox_test_password), POP_FAIL, "rights gone after the refresh")
    -- an ASCII template written through more, principals as names and SIDs
    lab:must(1, 'more > "' .. TEMPLATE .. '"', table.concat({
        "[Unicode]", "Unicode=yes", "[Version]", 'signature="$CHICAGO$"', "Revision=1",
        "[Privilege Rights]",
        "SeNetworkLogonRight = *S-1-5-32-544,*S-1-5-11,*S-1-5-9,Everyone",
        "SeServiceLogonRight = CORP\\exchsvc",
        "SeTcbPrivilege = *S-1-5-21-1004336348-1177238915-682003330-1107",
        "SeInteractiveLogonRight = Administrators,CORP\\exchsvc",
        "SeRestorePrivilege = *S-1-5-32-544,CORP\\exchsvc" }, "\n"))
    lab:must(1, "secedit /refreshpolicy machine_policy /enforce")
    T.contains(pop3_login(S.mailbox_test_password), POP_OK, "works after the refresh")
    local since = stats_since()
    T.eq(lab:must(1, "shutdown /L /R /T:0 /Y /C").rc, 0, "shutdown returns at once")
    T.ok(lab:wait_port(1, "ssh_port", false, 5), "down")
    T.ok(lab:wait_port(1, "ssh_port", true, 30), "back")
    T.ok(stats_since() ~= since, "new boot time")
    for _, name in ipairs(EXCHANGE) do
        T.contains(lab:must(1, "sc query " .. name).stdout, "4  RUNNING", name .. " started at boot")
    end
    T.ok(lab:wait_port(1, "pop3_port", true, 5), "POP3 back")
    T.contains(pop3_login(S.mailbox_test_password), POP_OK, "works after the reboot")
end)

T.test("a reboot drops an open SSH session", function()
    local proc = require("cutover.core.proc")
    local h = lab.hosts[1]
    local flag = lab.dir .. "/../session-rc"
    proc.run({ shell = string.format(
        "(((sleep 20 & echo $! > %s.pid; wait) | (ssh -F /dev/null -o BatchMode=yes " ..
        "-o UserKnownHostsFile=%s/known_hosts -i %s/login_key -p %d -l %s %s more; echo $? > %s)) " ..
        "</dev/null >/dev/null 2>&1 &)",
        flag, lab.dir, lab.dir, h.ssh_port, h.user, h.address, flag), timeout = 10 })
    loop.sleep(1)
    lab:must(1, "shutdown /L /R /T:0 /Y /C")
    local deadline = loop.now() + 10
    while loop.now() < deadline and not T.read(flag) do loop.sleep(0.1) end
    local sleeper = tonumber((T.read(flag .. ".pid") or ""):match("%d+"))
    if sleeper then require("cutover.core.sys").kill(sleeper, 15) end
    T.eq(T.read(flag), "255\n", "the session's ssh ended with 255 (connection lost)")
    T.ok(lab:wait_port(1, "ssh_port", true, 30), "back")
end)

T.done()
