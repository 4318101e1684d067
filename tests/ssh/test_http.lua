-- uri and get_url over a real sshd on loopback: the request is made on the
-- host (curl there, found first in sshd's PATH as a wrapper that records
-- its command line and environment), as the login user and under become
-- (sudo, NOPASSWD, a sudoers drop-in the test writes and removes).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local W = dofile(tests_dir .. "/lib/httpd.lua")
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")
local crypto = require("cutover.core.crypto")
S.install(T)
W.install(T)

-- the curl the SSH user finds first: records, then runs the real one
local wrap = T.tmpdir()
assert(fs.chmod(wrap, 511))
local real = proc.run({ shell = "command -v curl" }).stdout:gsub("%s+$", "")
T.write(wrap .. "/curl", "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " .. wrap .. "/argv.log\nenv >> " .. wrap ..
    "/env.log\nexec " .. real .. " \"$@\"\n", 493)
T.write(wrap .. "/argv.log", "", 438)
T.write(wrap .. "/env.log", "", 438)

local srv = S.start(T, { extra_config = "SetEnv PATH=" .. wrap .. ":/usr/local/bin:/usr/bin:/bin" })
srv:trust()
local web = W.start(T)
local PAYLOAD = string.rep("cutover release\n", 4000)
T.write(web.root .. "/pkg.bin", PAYLOAD)
local SUM = crypto.sha256(PAYLOAD)

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
    return d
end

local function run(d, args)
    local all = { "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    local r, _, res = H.run_json(all, { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 120 })
    return r, res
end

T.test("as the login user: health check with until, basic auth, get_url; the password nowhere", function()
    local d = setup()
    local pw = "pw-" .. crypto.random_hex(8)
    local key = crypto.random_hex(4)
    H.book(d, string.format([[
- hosts: all
  steps:
    - id: who
      command: id -un
      register: who
    - id: health
      uri: { url: "%s/flaky/%s/{{ unhealthy }}", return_content: true }
      register: h
      until: h.status == 200
      retries: 3
      delay: 0
    - id: login
      uri: { url: "%s/auth/ops/%s", url_username: ops, url_password: "%s", force_basic_auth: true }
    - id: download
      get_url: { url: "%s/files/pkg.bin", dest: "@T@/pkg.bin", checksum: "sha256:%s", mode: "0600" }
    - id: bad-sum
      get_url: { url: "%s/files/pkg.bin", dest: "@T@/other.bin", checksum: "sha256:%s" }
      ignore_errors: true
]], web.base, key, web.base, crypto.sha256(pw), pw, web.base, SUM, web.base, string.rep("0", 64)))
    -- (check mode asks once: `until` is for real runs)
    local r, check = run(d, { "--check", "-e", "unhealthy=0" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.eq(H.by_key(check).download.status, "changed", "check predicts the download")
    T.eq(fs.stat(d .. "/pkg.bin"), nil, "check wrote nothing")
    local res
    r, res = run(d, { "-e", "unhealthy=2" })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { who = "changed", health = "ok", login = "ok", download = "changed",
        ["bad-sum"] = "ignored" }, "run")
    local by = H.by_key(res)
    T.eq(by.who.result.stdout, S.USER, "the steps ran as the SSH user")
    T.eq(by.health.result.attempts, 2, "healthy on the second attempt (the first request was check mode's)")
    T.eq(fs.sha256(d .. "/pkg.bin"), SUM, "downloaded")
    local st = fs.stat(d .. "/pkg.bin")
    T.eq(st.mode, 384, "mode 0600")
    T.eq(proc.run({ argv = { "id", "-u", S.USER } }).stdout, st.uid .. "\n",
        "owned by the SSH user: downloaded on the host")
    T.contains(by["bad-sum"].result.msg, "checksum mismatch", "mismatch")
    T.eq(fs.stat(d .. "/other.bin"), nil, "nothing installed on a mismatch")
    for _, n in ipairs(fs.list(d)) do T.not_contains(n, ".cutover-", "no temporary file left") end
    local argv = T.read(wrap .. "/argv.log")
    T.contains(argv, "-q --config -", "curl ran on the host, from the wrapper")
    for line in argv:gmatch("[^\n]+") do
        T.not_contains(line, pw, "curl's command line")
        T.not_contains(line, "127.0.0.1", "no URL on curl's command line either")
    end
    T.not_contains(T.read(wrap .. "/env.log"), pw, "curl's environment")
    T.not_contains(r.stdout .. r.stderr, pw, "output")
    local found = proc.run({ shell = "grep -rl --exclude=p.yml -F -- '" .. pw .. "' " .. T.state .. " " .. d ..
        " 2>/dev/null" })
    T.eq(found.stdout, "", "no file but the playbook holds the password (the journal included)")
    r, res = run(d, { "-e", "unhealthy=0" })
    T.eq(H.by_key(res).download.status, "ok", "the next run changes nothing")
end)

T.test("under become (sudo): get_url installs into a root-only folder owned by root", function()
    S.sudoers(T, "http", S.USER .. " ALL=(root) NOPASSWD: ALL")
    local d = setup("      ansible_become: true\n")
    assert(fs.mkdir(d .. "/rootonly", 448))  -- 0700 root: the login user cannot write here
    H.book(d, string.format([[
- hosts: all
  steps:
    - id: download
      get_url: { url: "%s/files/pkg.bin", dest: "@T@/rootonly/pkg.bin", checksum: "sha256:%s", owner: root, group: root, mode: "0640" }
    - id: health
      uri: { url: "%s/json" }
      register: h
    - id: seen
      assert: { that: "h.json.status == 'ok'" }
]], web.base, SUM, web.base))
    local r, check = run(d, { "--check" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    H.expect_statuses(check, { download = "changed", health = "ok", seen = "ok" }, "check predicts as root")
    T.eq(#fs.list(d .. "/rootonly"), 0, "check wrote nothing")
    local res
    r, res = run(d)
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { download = "changed", health = "ok", seen = "ok" }, "run")
    local st = fs.stat(d .. "/rootonly/pkg.bin")
    T.eq(st.uid .. ":" .. st.gid .. " " .. string.format("%o", st.mode), "0:0 640", "root's, mode 0640")
    T.eq(fs.sha256(d .. "/rootonly/pkg.bin"), SUM, "the bytes")
    T.eq(#fs.list(d .. "/rootonly"), 1, "no temporary file left: " .. table.concat(fs.list(d .. "/rootonly"), " "))
    r, res = run(d)
    H.expect_statuses(res, { download = "ok", health = "ok", seen = "ok" }, "the next run")
end)

T.done()
