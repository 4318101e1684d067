-- The Windows actions one by one against a lab host: check mode predicts
-- exactly and changes nothing; the real run does what was predicted.
local binary, tests_dir, lab_binary = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local L = dofile(tests_dir .. "/lab/testlab.lua")
local json = require("cutover.core.json")

local lab = L.start(T, lab_binary, { hosts = 1, reboot = 1 })
local INV = lab.dir .. "/inventory.yml"

local function book(text)
    local d = T.tmpdir()
    T.write(d .. "/p.yml", text)
    return d .. "/p.yml"
end

local function events(r)
    local out = {}
    for _, e in ipairs(T.events(r.stdout)) do
        if e.event == "host_result" then out[e.step] = e end
    end
    return out
end

T.test("win_service and win_user_right: check mode predicts, the real run matches", function()
    local p = book([[
- hosts: all
  steps:
    - id: stop-imc
      win_service: { name: MSExchangeIMC, state: stopped }
    - id: grant
      win_user_right: { right: SeBackupPrivilege, principal: Everyone }
    - id: facts
      win_facts:
      register: f
    - assert:
        that: f.win.computer_name == "EXCH01" and not f.win.is_dc
]])
    local before = lab:file(1, "state.json")
    local c = T.run({ "run", p, "-i", INV, "--check", "--format", "json" })
    T.eq(c.rc, 0, "check: " .. c.stdout)
    T.eq(lab:file(1, "state.json"), before, "check changed nothing")
    local ce = events(c)
    T.eq(ce["stop-imc"].status, "changed", "predicts the stop")
    T.eq(ce["stop-imc"].diff, nil, "no diff without --diff")
    local cd = events(T.run({ "run", p, "-i", INV, "--check", "--diff", "--format", "json" }))
    T.eq(cd["stop-imc"].diff, "--- service MSExchangeIMC\n+++ service MSExchangeIMC\n@@ -1,3 +1,3 @@\n" ..
         " account: CORP\\exchsvc\n password: (unchanged)\n-state: RUNNING\n+state: STOPPED\n", "--diff: the state")
    local acct = T.run({ "run", book([[
- hosts: all
  steps:
    - id: acct
      win_service: { name: MSExchangeIMC, account: "CORP\\other", password: "Sekr1t-not-shown" }
]]), "-i", INV, "--check", "--diff" })
    T.eq(acct.rc, 0, "check: " .. acct.stdout)
    T.contains((acct.stdout:gsub("\n      ", "\n")),
        "-account: CORP\\exchsvc\n-password: (unchanged)\n+account: CORP\\other\n" ..
               "+password: (a new one is set)\n state: RUNNING\n", "--diff: the account")
    T.ok(not (acct.stdout .. acct.stderr):find("Sekr1t", 1, true), "the password is not shown")
    T.eq(ce["grant"].status, "changed", "predicts the grant")
    local r = T.run({ "run", p, "-i", INV, "--format", "json" })
    T.eq(r.rc, 0, "real: " .. r.stdout)
    local re = events(r)
    T.eq(re["stop-imc"].status, "changed", "stopped")
    T.eq(re["grant"].status, "changed", "granted")
    T.contains(lab:ssh(1, "sc query MSExchangeIMC").stdout, "STOPPED", "really stopped")
    local again = events(T.run({ "run", p, "-i", INV, "--check", "--format", "json" }))
    T.eq(again["stop-imc"].status, "ok", "nothing left to do")
    T.eq(again["grant"].status, "ok", "the right is there")
end)

T.test("win_reboot: the host goes down and comes back with a new boot time", function()
    local p = book([[
- hosts: all
  steps:
    - id: reboot
      win_reboot: { sleep: 0.2, reboot_timeout: 60 }
      register: rb
    - assert:
        that: rb.boot_before ~= rb.boot_after
]])
    local c = T.run({ "run", p, "-i", INV, "--check" })
    T.match(c.stdout, "unknown%s+exch01%s+reboot", "check: unknowable")
    local r = T.run({ "run", p, "-i", INV }, { timeout = 120 })
    T.eq(r.rc, 0, "rebooted: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "changed%s+exch01%s+reboot", "changed")
end)

T.test("mail_login from the controller and from a delegated host; a wrong password is refused", function()
    local pw = lab.secrets.mailbox_test_password
    local p = book([[
- hosts: all
  steps:
    - id: direct
      mail_login: { host: "{{ mail_host }}", pop3_port: "{{ pop3_port }}", imap_port: "{{ imap_port }}",
                    user: "{{ mailbox_test_user }}", password: "{{ pw }}" }
    - id: delegated
      mail_login: { host: "{{ mail_host }}", pop3_port: "{{ pop3_port }}", imap_port: "{{ imap_port }}",
                    user: "{{ mailbox_test_user }}", password: "{{ pw }}" }
      delegate_to: localhost
    - id: wrong
      mail_login: { host: "{{ mail_host }}", pop3_port: "{{ pop3_port }}", imap_port: "{{ imap_port }}",
                    user: "{{ mailbox_test_user }}", password: "not it" }
      delegate_to: localhost
      ignore_errors: true
]])
    T.write(p:gsub("p%.yml$", "pw.yml"), "pw: " .. json.encode(pw) .. "\n")
    local r = T.run({ "run", p, "-i", INV, "-e", "@" .. p:gsub("p%.yml$", "pw.yml"), "--format", "json" })
    T.eq(r.rc, 0, "exit code: " .. #r.stdout)
    local e = events(r)
    T.eq(e.direct.result.build, "5.5.2650", "build from the controller")
    T.eq(e.delegated.result.build, "5.5.2650", "build from the delegated host")
    T.eq(e.delegated.result.pop3.ok, true, "POP3 from the delegated host")
    T.eq(e.delegated.result.imap4.ok, true, "IMAP4 from the delegated host")
    T.eq(e.wrong.status, "ignored", "a wrong password is refused")
    T.contains(e.wrong.result.msg, "Logon failure", "the server's answer")
end)

T.test("garbage where sc output is expected: failure naming host and step, journal opens, resume finishes", function()
    local p = book([[
- hosts: all
  steps:
    - id: ensure-is
      win_service: { name: MSExchangeIS, state: started }
    - id: facts
      win_facts:
]])
    local fault = lab.hosts[1].dir .. "/fault-sc-garbage"
    T.write(fault, "")
    local r = T.run({ "run", p, "-i", INV })
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "failed%s+exch01%s+ensure%-is", "names host and step")
    T.match(r.stdout, "sc qc: line 1: unexpected line", "says which output it could not read, and where")
    T.ok(not (r.stdout .. r.stderr):find("internal error", 1, true), "not an internal error")
    local h = T.run({ "history" })
    T.eq(h.rc, 0, "history opens the journal")
    os.remove(fault)
    local again = T.run({ "resume" })
    T.eq(again.rc, 0, "resume finishes: " .. again.stdout .. again.stderr)
    T.match(again.stdout, "exch01%s+facts", "the next step ran")
end)

T.done()
