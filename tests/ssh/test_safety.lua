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
    local book = H.book(d, [[
- hosts: all
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
    local book3 = H.book(d, "- hosts: localhost\n  steps:\n    - id: replace\n      set_fact: { facts: { user: root } }\n",
                         "replace.yml")
    local _, _, res = H.run_json({ "run", book3 })
    T.eq(res[1].status, "failed", "set_fact facts fails")
    T.contains(res[1].result.msg, "'facts' is set by cutover and cannot be changed", "set_fact message")
end)

T.done()
