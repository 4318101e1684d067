-- known_hosts is read once per SSH connection (issue 11): the key types to
-- ask for and the host-key decision come from the same reading, so a file
-- that changes in between cannot give two answers.  The opens are counted
-- with strace on a real run against a real sshd.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")
S.install(T)

local function have_strace()
    return proc.run({ argv = { "strace", "-V" }, timeout = 10 }).rc == 0
end

-- Runs a one-step playbook (one host, one connection) under strace;
-- returns the run and how often known_hosts was opened (or an open was
-- tried) to read and to append.
local function traced_run(srv, kh, extra)
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    web1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
]], srv.address, srv.port, srv.user, srv.key))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - command: id -un\n")
    local log = d .. "/strace.log"
    local argv = { "strace", "-f", "-qq", "-e", "trace=open,openat,openat2",
                   "-o", log, T.cutover, "run", d .. "/p.yml", "-i",
                   d .. "/inv.yml", "--known-hosts", kh }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    T.state = T.state or T.tmpdir()
    -- LeakSanitizer cannot run under ptrace (an ASan build would fail at
    -- exit); leaks are checked by every other test of that build
    local asan = os.getenv("ASAN_OPTIONS")
    local r = assert(proc.run({ argv = argv, timeout = 120,
        env = { HOME = d, SSH_AUTH_SOCK = "", NO_COLOR = "1",
                ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "") .. "detect_leaks=0",
                XDG_STATE_HOME = T.state, XDG_DATA_HOME = T.state .. "/data" } }))
    local reads, appends = 0, 0
    for line in (fs.read(log) or ""):gmatch("[^\n]+") do
        -- every attempt counts, also one that finds no file (ENOENT)
        if line:find('"' .. kh .. '"', 1, true) then
            if line:find("O_APPEND", 1, true) then
                appends = appends + 1
            else
                reads = reads + 1
            end
        end
    end
    return r, reads, appends
end

local srv = S.start(T)

T.test("a known host: known_hosts is opened once for the connection", function()
    if not have_strace() then
        print("# skipped: strace is not installed")
        return
    end
    local kh = T.tmpdir() .. "/known_hosts"
    T.write(kh, srv:known_line(), 384)
    local r, reads, appends = traced_run(srv, kh)
    T.eq(r.rc, 0, "exit code (" .. r.stdout .. r.stderr .. ")")
    T.eq(reads, 1, "reads of known_hosts")
    T.eq(appends, 0, "appends to known_hosts")
end)

T.test("a new host accepted: one read, then one append", function()
    if not have_strace() then
        print("# skipped: strace is not installed")
        return
    end
    local kh = T.tmpdir() .. "/known_hosts"
    local r, reads, appends = traced_run(srv, kh, { "--accept-new-host-keys" })
    T.eq(r.rc, 0, "exit code (" .. r.stdout .. r.stderr .. ")")
    T.eq(reads, 1, "reads of known_hosts")
    T.eq(appends, 1, "appends to known_hosts")
    T.contains(T.read(kh) or "", srv.host_pub, "the key was recorded")
end)

T.done()
