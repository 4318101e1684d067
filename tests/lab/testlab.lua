-- testlab: starts a lab (cutover-lab start) for one test file and drives
-- its hosts with OpenSSH's ssh client and plain TCP mail sessions.
--   local L = dofile(tests_dir .. "/lab/testlab.lua")
--   local lab = L.start(T, lab_binary, { hosts = 1, variants = {...} })
--   local r = lab:ssh(1, "sc qc MSExchangeIS")   -- {rc=, stdout=, stderr=}
--   lab:stop()                                   -- also at T.done()
-- Not embedded in cutover-lab (the CMake filter skips tests/lab/test*).
local proc = require("cutover.core.proc")
local net = require("cutover.core.net")
local loop = require("cutover.core.loop")
local fs = require("cutover.core.fs")

local L = {}
local Lab = {}
Lab.__index = Lab

local function run(argv, opts)
    opts = opts or {}
    return assert(proc.run({ argv = argv, stdin = opts.stdin,
                             timeout = opts.timeout or 60,
                             env = { SSH_AUTH_SOCK = "" } }))
end

-- opts: hosts, variants (list of NAME[@HOST]), dcpromo, reboot (seconds)
function L.start(T, binary, opts)
    opts = opts or {}
    local base = T.tmpdir()
    assert(fs.chmod(base, 493))
    local dir = base .. "/lab"
    local argv = { binary, "start", "--dir", dir,
                   "--hosts", tostring(opts.hosts or 1),
                   "--dcpromo-seconds", tostring(opts.dcpromo or 0.5),
                   "--reboot-seconds", tostring(opts.reboot or 1) }
    for _, v in ipairs(opts.variants or {}) do
        argv[#argv + 1] = "--variant"
        argv[#argv + 1] = v
    end
    local self = setmetatable({ dir = dir, binary = binary, T = T }, Lab)
    L.current = self
    local done = T.done
    T.done = function()
        self:stop()
        return done()
    end
    local r = run(argv, { timeout = 120 })
    if r.rc ~= 0 then
        error("cutover-lab start failed (" .. r.rc .. "): " .. r.stdout ..
              r.stderr)
    end
    self.start_output = r.stdout
    self.hosts = {}
    local json = require("cutover.core.json")
    for i = 1, opts.hosts or 1 do
        local name = string.format("EXCH%02d", i)
        local cfg = json.decode(assert(fs.read(dir .. "/" .. name ..
                                               "/config.json")))
        cfg.dir = dir .. "/" .. name
        self.hosts[i] = cfg
    end
    self.secrets = {}
    for line in assert(fs.read(dir .. "/lab-secrets.txt")):gmatch("[^\n]+") do
        local k, v = line:match("^([%w_]+)=(.*)$")
        self.secrets[k] = v
    end
    return self
end

function Lab:stop()
    if self.stopped then return end
    self.stopped = true
    run({ self.binary, "stop", "--dir", self.dir })
end

function Lab:cli(args)
    local argv = { self.binary }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return run(argv)
end

-- Runs one command line on host i over SSH (an exec request).
function Lab:ssh(i, line, stdin, timeout)
    local h = self.hosts[i]
    return run({ "ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=yes",
                 "-o", "UserKnownHostsFile=" .. self.dir .. "/known_hosts",
                 "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
                 "-i", self.dir .. "/login_key", "-p", tostring(h.ssh_port),
                 "-l", h.user, h.address, line },
               { stdin = stdin, timeout = timeout or 60 })
end

-- Like ssh, but raises unless the exit status is want (default 0).
function Lab:must(i, line, stdin, want)
    local r = self:ssh(i, line, stdin)
    if r.rc ~= (want or 0) then
        error(string.format("%q: exit %d (want %d)\nstdout: %s\nstderr: %s",
                            line, r.rc, want or 0, r.stdout, r.stderr), 2)
    end
    return r
end

function Lab:listening(i, port_name)
    local h = self.hosts[i]
    return net.probe_tcp(h.address, h[port_name], 0.5) == true
end

-- Waits (bounded) until host i's port is (not) accepting.
function Lab:wait_port(i, port_name, want, seconds)
    local deadline = loop.now() + (seconds or 30)
    while loop.now() < deadline do
        if self:listening(i, port_name) == want then return true end
        loop.sleep(0.05)
    end
    return false
end

-- A mail session: sends lines (CRLF) and returns everything the server
-- said until it closed the connection (bounded by 10 s).
function Lab:mail(i, port_name, lines)
    local h = self.hosts[i]
    local data = table.concat(lines, "\r\n") .. "\r\n"
    local r = run({ "bash", "-c",
                    'exec 3<>"/dev/tcp/$1/$2" || exit 9; cat >&3; ' ..
                    'timeout 10 cat <&3', "mail", h.address,
                    tostring(h[port_name]) }, { stdin = data, timeout = 20 })
    return r.stdout, r.rc
end

-- The text of a (lab) virtual file of host i, read on the host side.
function Lab:file(i, rel)
    return fs.read(self.hosts[i].dir .. "/" .. rel)
end

return L
