-- The lab's host variants (cutover-lab start --variant NAME@HOST):
-- already-dc, local-service-account, local-login-account,
-- localsystem-kms; and the start/stop/status/reset commands.
local _, tests_dir, lab_binary = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(nil, tests_dir)
local L = dofile(tests_dir .. "/lab/testlab.lua")
local cmdline = require("cutover.windows.cmdline")
local net = require("cutover.core.net")

local lab = L.start(T, lab_binary, { hosts = 5, reboot = 1, dcpromo = 0.2, variants = {
    "already-dc@EXCH01", "local-service-account@EXCH02",
    "local-login-account@EXCH03", "localsystem-kms@EXCH04" } })
local S = lab.secrets

local ANSWER = table.concat({
    "[DCInstall]", "ReplicaOrNewDomain=Replica", "ReplicaDomainDNSName=corp.example",
    "UserName=admin", "Password=" .. S.domain_admin_password, "UserDomain=CORP",
    "SafeModeAdminPassword=" .. S.safe_mode_password, "RebootOnSuccess=yes" }, "\r\n") .. "\r\n"

-- dcpromo on host i, then the reboot (down, then up).
local function promote(i)
    lab:must(i, "more > C:\\TEMP\\answer.txt", ANSWER)
    local r = lab:ssh(i, "dcpromo /answer:C:\\TEMP\\answer.txt")
    T.ok(r.rc == 0 or r.rc == 255, "dcpromo: " .. r.rc .. " " .. r.stderr)
    T.ok(lab:wait_port(i, "ssh_port", false, 5), "down")
    T.ok(lab:wait_port(i, "ssh_port", true, 30), "up")
end

local function pop3(i)
    return lab:mail(i, "pop3_port", { "USER CORP\\testuser", "PASS " .. S.mailbox_test_password, "QUIT" })
end

T.test("start wrote the inventory, known_hosts and secrets; status lists the hosts", function()
    local inv = T.read(lab.dir .. "/inventory.yml")
    T.contains(inv, "    ansible_shell_type: cmd\n")
    T.contains(inv, "    cutover_known_hosts: " .. lab.dir .. "/known_hosts\n")
    T.contains(inv, "    exch01:\n      ansible_host: 127.0.0.1\n      ansible_port: " .. lab.hosts[1].ssh_port ..
               "\n      pop3_port: " .. lab.hosts[1].pop3_port .. "\n      imap_port: " .. lab.hosts[1].imap_port ..
                   "\n")
    T.contains(lab.start_output, lab.dir .. "/lab-secrets.txt", "where the secrets are")
    for _, k in ipairs({ "exchange_service_password", "domain_admin_password", "safe_mode_password",
                         "mailbox_test_password" }) do
        T.ok(S[k] and S[k] ~= "", k)
    end
    local st = require("cutover.core.fs").stat(lab.dir .. "/lab-secrets.txt")
    T.eq(st.mode, 384, "secrets mode 0600")
    local r = lab:cli({ "status", "--dir", lab.dir })
    T.eq(r.rc, 0, "status")
    T.match(r.stdout, "EXCH01  up%s+role BACKUP")
    T.match(r.stdout, "EXCH05  up%s+role SERVER")
end)

T.test("every host's first boot is at the KB's date, however late its supervisor started", function()
    for i = 1, 5 do
        T.contains(lab:must(i, "net statistics server").stdout,
                   "Statistics since 5/18/2001 9:41 AM\r\n", "host " .. i)
        T.match(lab:must(i, "dumpel -l system -e 6005").stdout, "^5/18/2001\t9:41:00 AM\t",
                "host " .. i .. ": the boot's event")
    end
end)

T.test("already-dc: a working DC; dcpromo refuses (a demotion would destroy Exchange)", function()
    T.contains(lab:must(1, "net accounts").stdout, "Computer role:                                        BACKUP")
    T.contains(pop3(1), "+OK User successfully logged on.", "mail works")
    lab:must(1, "secedit /refreshpolicy machine_policy /enforce")
    T.contains(pop3(1), "+OK User successfully logged on.", "rights are in the DC template")
    lab:must(1, "more > C:\\TEMP\\answer.txt", ANSWER)
    local r = lab:ssh(1, "dcpromo /answer:C:\\TEMP\\answer.txt")
    T.eq(r.rc, 1, "exit")
    T.eq(r.stderr, "DCPROMO: This server is already a domain controller.\r\n")
    T.contains(lab:must(1, "type C:\\TEMP\\answer.txt").stdout, "\r\nPassword=\r\n", "scrubbed anyway")
    T.ok(lab:listening(1, "ssh_port"), "no reboot")
end)

T.test("local-service-account: Exchange runs as EXCH02\\exchlocal, which the promotion destroys", function()
    T.contains(lab:must(2, "sc qc MSExchangeIS").stdout, "        SERVICE_START_NAME : EXCH02\\exchlocal\r\n")
    local line = assert(cmdline.build({ "net", "use", "\\\\EXCH02\\IPC$", S.exchange_service_password,
                                        "/user:EXCH02\\exchlocal" }))
    lab:must(2, line)
    promote(2)
    local r = lab:ssh(2, "net start MSExchangeSA")
    T.eq(r.rc, 2)
    T.contains(r.stderr, "System error 1069 has occurred.")
    r = lab:ssh(2, assert(cmdline.build({ "sc", "config", "MSExchangeSA", "obj=", "EXCH02\\exchlocal",
                                          "password=", S.exchange_service_password })))
    T.eq(r.rc, 1057 % 256, "the local account is gone")
    T.contains(r.stdout, "[SC] ChangeServiceConfig FAILED 1057:")
end)

T.test("local-login-account: logins work until the promotion, and are refused from the reboot on", function()
    T.eq(lab:must(3, "echo %USERDOMAIN%\\%USERNAME%").stdout, "EXCH03\\admin\r\n")
    promote(3)
    T.ok(lab:listening(3, "ssh_port"), "sshd is up")
    local r = lab:ssh(3, "hostname", nil, 20)
    T.eq(r.rc, 255, "ssh fails")
    T.contains(r.stderr, "Permission denied", "authentication refused")
end)

T.test("localsystem-kms: MSExchangeKMS is LocalSystem, DEMAND_START, stopped, and stays so", function()
    local qc = lab:must(4, "sc qc MSExchangeKMS").stdout
    T.contains(qc, "        START_TYPE         : 3   DEMAND_START\r\n")
    T.contains(qc, "        SERVICE_START_NAME : LocalSystem\r\n")
    T.contains(qc, "        DEPENDENCIES       : MSExchangeSA\r\n")
    T.contains(lab:must(4, "sc query MSExchangeKMS").stdout, "STATE              : 1  STOPPED")
    T.contains(lab:must(4, "sc query type= service state= all").stdout, "SERVICE_NAME: MSExchangeKMS\r\n")
    promote(4)
    T.contains(lab:must(4, "sc qc MSExchangeKMS").stdout, "        SERVICE_START_NAME : LocalSystem\r\n")
    T.contains(lab:must(4, "sc query MSExchangeKMS").stdout, "1  STOPPED", "a demand-start service stays stopped")
    T.eq(lab:must(4, "sc config MSExchangeKMS obj= LocalSystem").stdout, "[SC] ChangeServiceConfig SUCCESS\r\n")
    -- the SA it depends on fails on logon; KMS itself (LocalSystem) would log on
    local r = lab:ssh(4, "net start MSExchangeKMS")
    T.contains(r.stderr, "System error 1068 has occurred.")
end)

T.test("stop stops every host; start brings them back as they were; reset starts afresh", function()
    local r = lab:cli({ "stop", "--dir", lab.dir })
    T.eq(r.rc, 0, "stop: " .. r.stderr)
    for i = 1, 5 do
        T.ok(not net.probe_tcp("127.0.0.1", lab.hosts[i].ssh_port, 0.5), "ssh down " .. i)
        T.ok(not net.probe_tcp("127.0.0.1", lab.hosts[i].pop3_port, 0.5), "pop3 down " .. i)
    end
    T.match(lab:cli({ "status", "--dir", lab.dir }).stdout, "EXCH01  stopped")
    r = lab:cli({ "start", "--dir", lab.dir })
    T.eq(r.rc, 0, "start: " .. r.stderr)
    T.contains(lab:must(2, "net accounts").stdout, "BACKUP", "state kept")
    r = lab:cli({ "start", "--dir", lab.dir })
    T.eq(r.rc, 1, "a running lab is not started twice")
    r = lab:cli({ "reset", "--dir", lab.dir })
    T.eq(r.rc, 0, "reset: " .. r.stderr)
    lab.hosts[2] = require("cutover.core.json").decode(T.read(lab.dir .. "/EXCH02/config.json"))
    lab.hosts[2].dir = lab.dir .. "/EXCH02"
    T.contains(lab:must(2, "net accounts").stdout, "SERVER", "a fresh member server")
    T.contains(lab:must(2, "sc qc MSExchangeIS").stdout, "EXCH02\\exchlocal", "variants kept by reset")
end)

T.done()
