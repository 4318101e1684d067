-- Files over SSH: SFTP where the host offers it, a command's stdin where
-- it does not; idempotence by checksum; atomic replacement.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")
S.install(T)

-- 3 MiB with every byte value, CR/LF, NUL: binary-safe transfer
local chunk = {}
for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
local blob = string.rep(table.concat(chunk), 3 * 4096)

local function setup(srv, extra)
    srv:trust()
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
    T.write(d .. "/blob.bin", blob)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: big
      copy: { src: blob.bin, dest: "%s/remote/blob.bin", mode: "0600" }
    - id: small
      copy: { dest: "%s/remote/small.txt", content: "a\nb\n" }
]], d, d))
    S.sh("mkdir " .. d .. "/remote && chown " .. S.USER .. " " .. d .. "/remote")
    return d
end

local function run(srv, d, args)
    local all = { "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    return T.run(all, { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 120 })
end

local function check_transfer(srv, d, via)
    local r = run(srv, d)
    T.eq(r.rc, 0, via .. ": exit code: " .. r.stdout)
    T.eq(fs.sha256(d .. "/remote/blob.bin"), crypto.sha256(blob), via .. ": every byte arrived")
    T.eq(fs.stat(d .. "/remote/blob.bin").mode, 384, via .. ": mode 0600")
    T.eq(T.read(d .. "/remote/small.txt"), "a\nb\n", via .. ": small file")
    T.eq(#fs.list(d .. "/remote"), 2, via .. ": no temporary file left")
    -- unchanged: not sent again (the file's inode and mtime stay)
    local before = T.snapshot(d .. "/remote")
    r = run(srv, d)
    T.eq(r.rc, 0, via .. ": second run")
    T.match(r.stdout, "ok%s+h1%s+big", via .. ": big unchanged")
    T.same_snapshot(before, T.snapshot(d .. "/remote"), via .. ": nothing rewritten")
end

T.test("SFTP where the host offers it", function()
    local srv = S.start(T, { log_level = "DEBUG1" })
    local d = setup(srv)
    check_transfer(srv, d, "sftp")
    T.contains(T.read(srv.dir .. "/sshd.log"), "subsystem 'sftp'", "SFTP was used")
    srv:stop()
end)

T.test("a host without SFTP: the file goes on a command's stdin", function()
    local srv = S.start(T, { no_sftp = true })
    local d = setup(srv)
    check_transfer(srv, d, "exec")
    srv:stop()
end)

T.test("cutover_sftp: false declares a host without SFTP", function()
    local srv = S.start(T, { log_level = "DEBUG1" })
    local d = setup(srv, "      cutover_sftp: false\n")
    check_transfer(srv, d, "declared")
    T.not_contains(T.read(srv.dir .. "/sshd.log"), "subsystem 'sftp'", "SFTP not used")
    srv:stop()
end)

T.test("writing into a missing folder fails with a clear error", function()
    local srv = S.start(T)
    local d = setup(srv)
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - copy: { dest: \"" .. d ..
        "/missing/f\", content: x }\n")
    local r = run(srv, d)
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, d .. "/missing/f: No such file or directory", "message")
    srv:stop()
end)

T.test("lineinfile and blockinfile over SSH: check predicts, the edit lands, the next run is ok", function()
    for _, opts in ipairs({ {}, { no_sftp = true } }) do
        local via = opts.no_sftp and "exec" or "sftp"
        local srv = S.start(T, opts)
        local d = setup(srv)
        T.write(d .. "/remote/conf", "a=1\n#b=2\n", 420)
        S.sh("chown " .. S.USER .. " " .. d .. "/remote/conf")
        T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: b
      lineinfile: { path: "%s/remote/conf", regexp: "^#?b=", line: "b=3" }
    - id: blk
      blockinfile: { path: "%s/remote/conf", block: "c=4", insertbefore: BOF }
]], d, d))
        local r = run(srv, d, { "--check" })
        T.eq(r.rc, 0, via .. ": check")
        T.match(r.stdout, "changed%s+h1%s+b", via .. ": check predicts b")
        T.match(r.stdout, "changed%s+h1%s+blk", via .. ": check predicts blk")
        T.eq(T.read(d .. "/remote/conf"), "a=1\n#b=2\n", via .. ": check wrote nothing")
        r = run(srv, d)
        T.eq(r.rc, 0, via .. ": run: " .. r.stdout)
        T.eq(T.read(d .. "/remote/conf"),
             "# BEGIN CUTOVER MANAGED BLOCK\nc=4\n# END CUTOVER MANAGED BLOCK\na=1\nb=3\n", via .. ": edited")
        T.eq(#fs.list(d .. "/remote"), 1, via .. ": no temporary file left")
        r = run(srv, d)
        T.match(r.stdout, "ok%s+h1%s+b", via .. ": b unchanged")
        T.match(r.stdout, "ok%s+h1%s+blk", via .. ": blk unchanged")
        srv:stop()
    end
end)

T.test("fetch: one folder per host, checked against the host's sha256; check writes nothing; flat; missing", function()
    local srv = S.start(T)
    srv:trust()
    local d = setup(srv)
    T.write(d .. "/inv.yml", string.format([[
all:
  vars: { ansible_host: %s, ansible_port: %d, ansible_user: %s, ansible_ssh_private_key_file: %s }
  hosts: { h1: {}, h2: {} }
]], srv.address, srv.port, srv.user, srv.key))
    T.write(d .. "/remote/h1.log", "from h1\n")
    T.write(d .. "/remote/h2.log", blob)
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: logs
      fetch: { src: "%s/remote/{{ inventory_hostname }}.log", dest: fetched }
    - id: flat
      fetch: { src: "%s/remote/{{ inventory_hostname }}.log", dest: "flat/{{ inventory_hostname }}-", flat: true }
    - id: missing-ok
      fetch: { src: "%s/remote/nope", dest: fetched, fail_on_missing: false }
    - id: dotdot
      fetch: { src: "%s/remote/../remote/h1.log", dest: fetched }
      ignore_errors: true
    - id: missing
      fetch: { src: "%s/remote/nope", dest: fetched }
      ignore_errors: true
]], d, d, d, d, d))
    local r = run(srv, d, { "--check" })
    T.eq(r.rc, 0, "check: " .. r.stdout)
    T.match(r.stdout, "changed%s+h1%s+logs", "check predicts the fetch")
    T.eq(fs.stat(d .. "/fetched"), nil, "check wrote nothing")
    r = run(srv, d)
    T.eq(r.rc, 0, "run: " .. r.stdout)
    T.eq(T.read(d .. "/fetched/h1" .. d .. "/remote/h1.log"), "from h1\n", "h1's file under h1")
    T.eq(fs.sha256(d .. "/fetched/h2" .. d .. "/remote/h2.log"), crypto.sha256(blob), "h2's 3 MiB file, every byte")
    T.eq(T.read(d .. "/flat/h1-"), "from h1\n", "flat")
    T.match(r.stdout, "ignored%s+h1%s+dotdot", "'..' refused")
    T.match(r.stdout, "has a '%.%.' part", "says why")
    T.match(r.stdout, "does not exist on h1", "missing src names the host")
    T.match(r.stdout, "ok%s+h1%s+missing%-ok", "fail_on_missing: false")
    r = run(srv, d)
    T.match(r.stdout, "ok%s+h1%s+logs", "unchanged: not fetched again")
    T.match(r.stdout, "ok%s+h2%s+logs", "unchanged: not fetched again (h2)")
    -- the controller's copy differs: fetched again
    T.write(d .. "/fetched/h1" .. d .. "/remote/h1.log", "tampered")
    r = run(srv, d)
    T.match(r.stdout, "changed%s+h1%s+logs", "a differing copy is fetched again")
    T.eq(T.read(d .. "/fetched/h1" .. d .. "/remote/h1.log"), "from h1\n", "restored")
    srv:stop()
end)

T.test("unarchive over SSH: the archive on tar's stdin, compared, unpacked, then ok", function()
    local srv = S.start(T)
    local d = setup(srv)
    assert(fs.mkdir(d .. "/pack", 493))
    T.write(d .. "/pack/blob.bin", blob)
    T.write(d .. "/pack/small", "s\n")
    S.sh("cd " .. d .. "/pack && tar -czf ../pack.tar.gz blob.bin small")
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - id: unpack
      unarchive: { src: pack.tar.gz, dest: "%s/remote" }
]], d))
    local r = run(srv, d, { "--check" })
    T.match(r.stdout, "changed%s+h1%s+unpack", "check predicts")
    T.eq(fs.stat(d .. "/remote/small"), nil, "check wrote nothing")
    r = run(srv, d)
    T.eq(r.rc, 0, "run: " .. r.stdout)
    T.eq(fs.sha256(d .. "/remote/blob.bin"), crypto.sha256(blob), "every byte")
    T.eq(fs.stat(d .. "/remote/small").uid, fs.stat(d .. "/remote").uid, "owned by the login user")
    r = run(srv, d)
    T.match(r.stdout, "ok%s+h1%s+unpack", "the next run is ok")
    srv:stop()
end)

T.done()
