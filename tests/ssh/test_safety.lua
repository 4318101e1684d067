-- Safety over SSH, against a real sshd on loopback (the sshd test user is
-- not root): what `facts` holds for a remote host, and check mode that
-- predicts a write the login user may not make.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local json = require("cutover.core.json")
local sys = require("cutover.core.sys")
S.install(T)

local srv = S.start(T)
srv:trust()

local function inventory(dir)
    return T.write(dir .. "/inv.yml", string.format([[
all:
  hosts:
    web1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
]], srv.address, srv.port, srv.user, srv.key))
end

local function run(dir, book, extra)
    local args = { "run", book, "-i", inventory(dir), "--known-hosts", srv.known_hosts }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    args[#args + 1] = "--format"
    args[#args + 1] = "json"
    local r = T.run(args, { env = { HOME = dir, SSH_AUTH_SOCK = "" }, timeout = 60 })
    local results = {}
    for _, e in ipairs(T.events(r.stdout)) do
        if e.event == "host_result" then results[#results + 1] = e end
    end
    return r, H.by_key(results)
end

T.test("item 18: facts over SSH describe the remote host, not the controller, and are read-only", function()
    local d = T.tmpdir()
    -- without gathering (gather_facts: false; gathered facts are the
    -- host's own: test_facts.lua), only what the connection knows
    local book = H.book(d, [[
- hosts: all
  gather_facts: false
  steps:
    - id: show
      debug: { msg: "{{ to_json(facts) }}" }
    - id: hostname
      debug: { msg: "{{ defined('facts') and tostring(facts.hostname) }}" }
]])
    local r, k = run(d, book)
    T.eq(r.rc, 0, "exit code (stderr: " .. r.stderr .. ")")
    local f = assert(json.decode(k.show.result.msg), "facts as JSON: " .. tostring(k.show.result.msg))
    T.eq(f.name, "web1", "inventory name")
    T.eq(f.address, srv.address, "address")
    T.eq(f.port, srv.port, "port")
    T.eq(f.user, srv.user, "login user (not the controller's)")
    T.eq(f.connection, "ssh", "connection type")
    T.eq(k.hostname.result.msg, "nil", "no hostname claimed for the remote host")
    local node = (sys.uname() or {}).node
    if node and #node > 3 then T.not_contains(k.show.result.msg, '"' .. node .. '"', "controller's hostname") end

    -- an assignment inside an expression is refused, over SSH and locally
    local book2 = H.book(d, [[
- hosts: all
  steps:
    - id: assign
      set_fact: { x: "{{ (function() facts.user = 'root' return 1 end)() }}" }
    - id: after
      debug: { msg: "{{ facts.user }}" }
]], "assign.yml")
    r, k = run(d, book2)
    T.eq(r.rc, 1, "exit code (stderr: " .. r.stderr .. ")")
    T.eq(k.assign.status, "failed", "the assignment fails the step")
    T.contains(k.assign.result.msg, "facts are read-only", "clear error")
    T.eq(k.after, nil, "the host stops")
    local lr = T.run({ "run", book2, "--format", "json" })
    T.eq(lr.rc, 1, "locally too")
    T.contains(lr.stdout, "facts are read-only", "local message")
    -- set_fact cannot replace it either (it was silently ignored)
    local book3 = H.book(d, "- hosts: localhost\n  steps:\n    - id: replace\n      set_fact: { facts: { user: " ..
        "root } }\n",
                         "replace.yml")
    local _, _, res = H.run_json({ "run", book3 })
    T.eq(res[1].status, "failed", "set_fact facts fails")
    T.contains(res[1].result.msg, "'facts' is set by cutover and cannot be changed", "set_fact message")
end)

-- Steps that write where the sshd test user may not (a root-owned
-- folder), one of each kind of write, and one it may.
local LOCKED_BOOK = [[
- hosts: all
  steps:
    - id: copy-new
      copy: { dest: "@L@/new.txt", content: "x\n" }
      ignore_errors: true
    - id: copy-replace
      copy: { dest: "@L@/old.txt", content: "changed\n" }
      ignore_errors: true
    - id: copy-mode
      copy: { dest: "@L@/old.txt", content: "old\n", mode: "0600" }
      ignore_errors: true
    - id: template-new
      template: { src: "@T@/t.j2", dest: "@L@/t.conf" }
      ignore_errors: true
    - id: dir-new
      file: { path: "@L@/sub/deeper", state: directory }
      ignore_errors: true
    - id: dir-mode
      file: { path: "@L@/dir", state: directory, mode: "0700" }
      ignore_errors: true
    - id: absent
      file: { path: "@L@/old.txt", state: absent }
      ignore_errors: true
    - id: touch-new
      file: { path: "@L@/touched", state: touch }
      ignore_errors: true
    - id: touch-old
      file: { path: "@L@/old.txt", state: touch }
      ignore_errors: true
    - id: mode
      file: { path: "@L@/old.txt", mode: "0600" }
      ignore_errors: true
    - id: no-parent
      copy: { dest: "@L@/missing/x.txt", content: "x\n" }
      ignore_errors: true
    - id: own-staged
      file: { path: "@O@/staged", state: directory }
    - id: own-in-staged
      copy: { dest: "@O@/staged/x.txt", content: "x\n" }
    - id: own
      copy: { dest: "@O@/mine.txt", content: "mine\n" }
    - id: own-dir
      file: { path: "@O@/a/b", state: directory }
]]

T.test("item 17: --check as an unprivileged login predicts the writes it may not make, exactly", function()
    local d = T.tmpdir()
    assert(require("cutover.core.fs").chmod(d, 493))
    local locked = d .. "/locked"
    S.sh("mkdir -m 755 " .. locked .. " " .. locked .. "/dir && printf 'old\\n' > " .. locked ..
         "/old.txt && chmod 644 " .. locked .. "/old.txt")
    local own = S.target(T)
    T.write(d .. "/t.j2", "for {{ inventory_hostname }}\n")
    local book = H.book(d, (LOCKED_BOOK:gsub("@L@", locked):gsub("@O@", own)))
    local before = T.snapshot(locked)
    local cr, check = run(d, book, { "--check" })
    T.eq(cr.rc, 0, "check exit code (stderr: " .. cr.stderr .. ")")
    T.same_snapshot(before, T.snapshot(locked), "check changed nothing")
    local rr, real = run(d, book)
    T.eq(rr.rc, 0, "real exit code (stderr: " .. rr.stderr .. ")")
    T.same_snapshot(before, T.snapshot(locked), "the real run could not write either")
    for _, id in ipairs({ "copy-new", "copy-replace", "copy-mode", "template-new", "dir-new", "dir-mode", "absent",
                          "touch-new", "touch-old", "mode", "no-parent", "own", "own-dir", "own-staged",
                          "own-in-staged" }) do
        T.ok(check[id] and real[id], id .. " reported in both runs")
        T.eq(check[id].status, real[id].status, id .. ": check said " .. check[id].status .. " (" ..
             tostring(check[id].result.msg) .. "), the real run " .. real[id].status .. " (" ..
             tostring(real[id].result.msg) .. ")")
    end
    T.eq(check["copy-new"].status, "ignored", "a failure is predicted")
    T.contains(check["copy-new"].result.msg, "would fail: " .. locked .. " is not writable by " .. srv.user, "why")
    T.contains(check["mode"].result.msg, "would fail: " .. locked .. "/old.txt is not owned by " .. srv.user, "chmod")
    T.contains(check["no-parent"].result.msg, "would fail: " .. locked .. " is not writable by " .. srv.user,
               "a missing folder is judged by its nearest parent")
    -- a folder an earlier step creates is not a predicted failure
    T.eq(check["own-in-staged"].status, "changed", "a write into a folder staged by an earlier step")
    T.eq(check.own.status, "changed", "a write it may make is predicted as a change")
end)

T.done()
