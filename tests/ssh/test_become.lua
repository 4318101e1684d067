-- become over SSH with the real sudo: the login user is the test user,
-- allowed by a sudoers drop-in the test writes (and removes) to run as
-- root with its password, or without one (NOPASSWD).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")
local crypto = require("cutover.core.crypto")
S.install(T)

local function sudoers(line) S.sudoers(T, "become", line) end
S.set_password()

local srv = S.start(T)
srv:trust()

local function setup(extra)
    local d = S.target(T)
    T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    h1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
%s]], srv.address, srv.port, srv.user, srv.key, extra or ""))
    assert(fs.mkdir(d .. "/rootonly", 448))  -- 0700 root: the login user cannot write here
    return d
end

local function run(d, args, opts)
    local all = { "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts, "--format", "json" }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    opts = opts or {}
    opts.env = { HOME = d, SSH_AUTH_SOCK = "" }
    opts.timeout = 120
    local r = T.run(all, opts)
    local results = {}
    for _, e in ipairs(T.events(r.stdout)) do if e.event == "host_result" then results[#results + 1] = e end end
    return r, H.by_key(results)
end

-- 3 MiB with every byte value: a file written under become arrives whole
local chunk = {}
for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
local blob = string.rep(table.concat(chunk), 3 * 4096)

local BOOK = [[
- hosts: all
  steps:
    - id: who
      command: id -un
      register: who
    - id: as-login
      command: id -un
      become: false
    - id: root-file
      copy: { src: blob.bin, dest: "@T@/rootonly/blob.bin", mode: "0600" }
    - id: line
      lineinfile: { path: "@T@/rootonly/conf", line: "k = v", create: true }
    - block:
        - id: as-nobody
          command: id -un
      become_user: nobody
]]

T.test("sudo with the password from the inventory: commands and files as root; check predicts as root", function()
    sudoers(S.USER .. " ALL=(ALL) ALL")
    local d = setup("      ansible_become: true\n      ansible_become_password: '" .. S.PASSWORD .. "'\n")
    T.write(d .. "/blob.bin", blob)
    H.book(d, BOOK)
    local r, by = run(d, { "--check" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.eq(by["root-file"].status, "changed", "check: predicted as root (the login user could not write there)")
    T.eq(fs.stat(d .. "/rootonly/blob.bin"), nil, "check wrote nothing")
    r, by = run(d)
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    T.eq(by.who.result.stdout, "root", "the command ran as root")
    T.eq(by["as-login"].result.stdout, S.USER, "become: false on a step")
    T.eq(by["as-nobody"].result.stdout, "nobody", "become_user from the block")
    T.eq(fs.sha256(d .. "/rootonly/blob.bin"), crypto.sha256(blob), "every byte of the file, through sudo's stdin")
    local st = fs.stat(d .. "/rootonly/blob.bin")
    T.eq(st.uid .. " " .. st.mode, "0 384", "owned by root, mode 0600")
    T.eq(T.read(d .. "/rootonly/conf"), "k = v\n", "lineinfile as root")
    for _, n in ipairs(fs.list(d .. "/rootonly")) do T.ok(not n:find("cutover"), "no temporary file left: " .. n) end
    T.not_contains(r.stdout .. r.stderr, S.PASSWORD, "the password is in no output")
    T.not_contains(r.stdout, "cutover-sudo-", "sudo's prompt marker is in no output")
    r, by = run(d)
    T.eq(by["root-file"].status, "ok", "the next run: unchanged (read as root)")
    -- the journal holds no password
    local found = proc.run({ shell = "grep -rl --exclude=inv.yml -F -- '" .. S.PASSWORD:gsub("'", "'\\''") ..
        "' " .. d .. " " ..
                                     (T.state or d) .. " 2>/dev/null" })
    T.eq(found.stdout, "", "no file under the test's folders holds the password")
end)

T.test("a wrong password is a clear error and nothing runs; none given says how to give it", function()
    sudoers(S.USER .. " ALL=(ALL) ALL")
    local d = setup("      ansible_become: true\n      ansible_become_password: 'not the password'\n")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - id: touch\n      command: touch " .. d .. "/rootonly/x\n")
    local r, by = run(d)
    T.eq(r.rc, 1, "exit")
    T.eq(by.touch.result.msg, "sudo: wrong password for " .. S.USER .. " on h1", "the message")
    T.eq(fs.stat(d .. "/rootonly/x"), nil, "nothing ran")
    T.not_contains(r.stdout .. r.stderr, "not the password", "the wrong password is not shown either")
    d = setup("      ansible_become: true\n")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - id: touch\n      command: touch " .. d .. "/rootonly/x\n")
    r, by = run(d)
    T.eq(r.rc, 1, "exit")
    T.eq(by.touch.result.msg, "sudo on h1 needs the password of " .. S.USER ..
         " (ansible_become_password, or -K to be asked)", "the message")
end)

T.test("NOPASSWD: -b on the command line, no password needed; another user needs one", function()
    sudoers(S.USER .. " ALL=(root) NOPASSWD: ALL")
    local d = setup()
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - id: who\n      command: id -un\n")
    local r, by = run(d, { "-b" })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    T.eq(by.who.result.stdout, "root", "root without a password")
    r, by = run(d, { "-b", "--become-user", "nobody" })
    T.eq(r.rc, 1, "a user the sudoers line does not allow: sudo wants a password for it")
    T.contains(by.who.result.msg, "sudo on h1 needs the password of " .. S.USER, "says so")
end)

T.test("bad become keywords at lint", function()
    local d = T.tmpdir()
    H.lint_refuses(d, { { "command: 'true'\n      become: maybe", "'become' must be true, false" },
                        { "command: 'true'\n      become_method: doas", "'become_method' must be sudo or su" } }, 5)
end)

T.done()
