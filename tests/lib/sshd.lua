-- sshd: a throwaway OpenSSH server on loopback for tests.
--   local S = dofile(tests_dir .. "/lib/sshd.lua")
--   local srv = S.start(T, { address = "127.0.0.2" })   -- key auth as the current user
--   ... srv.port, srv.key (private key path), srv.known_hosts (empty file),
--       srv.host_pub (the host's ed25519 public key line) ...
--   srv:stop()      (T.done() stops every server too)
-- Each server has its own host keys, user key, authorized_keys, config and
-- log in a temporary folder.  sshd runs as root (CI runs as root).  Logins
-- are as the test user `cutover-test` (created on first use, shell
-- /bin/sh, password field '*' so key logins work and password logins
-- fail): root's own .bashrc can be slow and would dominate timings.
-- Outside the folder only /run/sshd (OpenSSH's privilege separation) and
-- that user are touched.  S.target(T, srv) gives a folder the user owns.
local proc = require("cutover.core.proc")
local net = require("cutover.core.net")
local loop = require("cutover.core.loop")
local fs = require("cutover.core.fs")

local S = {}
local running = {}

S.USER = "cutover-test"
-- The comm of a persistent session's shell (connection/session.lua):
-- bash, in POSIX mode, where the host has it; else sh.
S.SESSION_COMM = fs.stat("/bin/bash") and "bash" or "sh"

local function sh(cmd)
    local r = assert(proc.run({ shell = cmd, timeout = 60 }))
    if r.rc ~= 0 then error("command failed (" .. r.rc .. "): " .. cmd .. "\n" .. r.stdout .. r.stderr, 2) end
    return r.stdout
end
S.sh = sh

local Server = {}
Server.__index = Server

-- Ports are drawn from 20000-32000, below Linux's ephemeral range, so a
-- test's listener never collides with another test's outgoing connection.
-- opts: address (127.0.0.1), port (random), host_key_types ({"ed25519"}),
--       user_key_type ("ed25519"), extra_config (text), password_auth,
--       no_sftp (no SFTP subsystem), log_level (VERBOSE),
--       private_mounts (shell commands run as root in a mount namespace
--       of the listener's own before it starts: a host whose /dev/shm
--       is another size, say)
function S.start(T, opts)
    opts = opts or {}
    local dir = T.tmpdir()
    local self = setmetatable({ dir = dir, address = opts.address or "127.0.0.1", T = T }, Server)
    fs.mkdir("/run/sshd", 493)
    S.ensure_user()
    assert(fs.chmod(dir, 493))  -- sshd reads authorized_keys as the user
    local host_keys = {}
    for _, t in ipairs(opts.host_key_types or { "ed25519" }) do
        sh(string.format("ssh-keygen -q -t %s -N '' -f %s/host_%s", t, dir, t))
        host_keys[#host_keys + 1] = "HostKey " .. dir .. "/host_" .. t
        self["host_pub_" .. t] = sh("cat " .. dir .. "/host_" .. t .. ".pub"):match("^(%S+ %S+)")
    end
    self.host_pub = self["host_pub_" .. (opts.host_key_types or { "ed25519" })[1]]
    local ukt = opts.user_key_type or "ed25519"
    local bits = ukt == "rsa" and " -b 2048" or ""
    sh(string.format("ssh-keygen -q -t %s%s -N '' -f %s/user_key -C cutover-test", ukt, bits, dir))
    sh(string.format("cp %s/user_key.pub %s/authorized_keys && chmod 644 %s/authorized_keys", dir, dir, dir))
    self.key = dir .. "/user_key"
    self.known_hosts = dir .. "/known_hosts"
    assert(fs.write(self.known_hosts, "", 384))
    self.user = S.USER
    self.opts = opts
    self.config = dir .. "/sshd_config"
    self.host_keys = host_keys
    self:write_config(opts.port or (20000 + math.random(0, 12000)))
    self:launch()
    running[#running + 1] = self
    return self
end

function S.ensure_user()
    if proc.run({ argv = { "id", "-u", S.USER } }).rc == 0 then return end
    sh("useradd --create-home --shell /bin/sh " .. S.USER .. " && usermod -p '*' " .. S.USER)
end

-- A fresh folder the test user owns (for steps that write on the host).
function S.target(T)
    local d = T.tmpdir()
    sh("chown " .. S.USER .. " " .. d)
    return d
end

function Server:write_config(port)
    self.port = port
    local cfg = {
        "Port " .. port,
        "ListenAddress " .. self.address,
        table.concat(self.host_keys, "\n"),
        "PidFile " .. self.dir .. "/sshd.pid",
        "AuthorizedKeysFile " .. self.dir .. "/authorized_keys",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin yes",
        "PasswordAuthentication " .. (self.opts.password_auth and "yes" or "no"),
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "LogLevel " .. (self.opts.log_level or "VERBOSE"),
        "MaxStartups 100:30:200",
        "MaxSessions " .. (self.opts.max_sessions or 50),
        self.opts.no_sftp and "" or "Subsystem sftp internal-sftp",
        self.opts.extra_config or "",
    }
    assert(fs.write(self.config, table.concat(cfg, "\n") .. "\n"))
end

-- Starts sshd (it daemonises) and waits until it accepts connections.
function Server:launch()
    for _ = 1, 5 do
        os.remove(self.dir .. "/sshd.pid")  -- a stale one would name a dead listener
        local argv = { "/usr/sbin/sshd", "-f", self.config, "-E", self.dir .. "/sshd.log" }
        if self.opts.private_mounts then
            argv = { "unshare", "--mount", "--propagation", "private", "sh", "-c",
                     "set -e; " .. self.opts.private_mounts .. '\nexec "$@"', "sh", table.unpack(argv) }
        end
        local r = assert(proc.run({ argv = argv, timeout = 30 }))
        if r.rc == 0 then
            local deadline = loop.now() + 30
            local taken = false
            while loop.now() < deadline do
                -- listening, and the pid file written (sshd writes it
                -- after it binds: under load a probe can come first)
                local pid = (fs.read(self.dir .. "/sshd.pid") or ""):match("%d+")
                if pid and net.probe_tcp(self.address, self.port, 1) then
                    self.pid = pid
                    return
                end
                -- the daemon found the port taken after it forked (its
                -- exit status was 0): try another port
                if (fs.read(self.dir .. "/sshd.log") or ""):find("Cannot bind any address", 1, true) then
                    taken = true
                    break
                end
                loop.sleep(0.05)
            end
            if not taken then
                error("sshd did not start listening on " .. self.address .. ":" .. self.port ..
                      "; its log: " .. (fs.read(self.dir .. "/sshd.log") or "(none)"))
            end
            os.remove(self.dir .. "/sshd.log")
        end
        -- most likely the port was taken: try another
        self:write_config(20000 + math.random(0, 12000))
    end
    error("sshd would not start; see " .. self.dir .. "/sshd.log")
end

-- Stops the listener (existing sessions are separate processes).
function Server:stop()
    -- also any listener started with this config by a test's own helper
    -- (a simulated reboot), whatever its pid
    proc.run({ argv = { "pkill", "-TERM", "-f", "^/usr/sbin/sshd -f " .. self.config .. " " } })
    proc.run({ argv = { "pkill", "-TERM", "-f", "^sshd: /usr/sbin/sshd -f " .. self.config .. " " } })
    if self.pid then
        proc.run({ argv = { "kill", self.pid } })
        local deadline = loop.now() + 5
        while loop.now() < deadline and net.probe_tcp(self.address, self.port, 0.2) do loop.sleep(0.05) end
        self.pid = nil
    end
end

-- A shell snippet that kills every process serving a session of this
-- server (the listener's descendants), so the connections drop while the
-- listener stays.  Only this server's sessions: tests run side by side
-- with the same test user.
function Server:kill_sessions_sh()
    -- every descendant of the listener (the monitor, the session
    -- process, and what the session runs), listed first and then killed
    -- by one kill, parents first: the connection drops at once.  Killed
    -- one by one, children first, the session shell could see its step
    -- die and send a whole reply before sshd was killed (a step that
    -- "ended" with status 137 where the test wanted a dropped connection)
    return string.format(
        "kt() { echo $1; for c in $(pgrep -P $1); do kt $c; done; }; " ..
        "p=; for m in $(pgrep -P %s); do p=\"$p $(kt $m)\"; done; " ..
        "[ -z \"$p\" ] || kill -KILL $p 2>/dev/null", self.pid)
end

function Server:kill_sessions()
    proc.run({ shell = self:kill_sessions_sh() })
end

function Server:restart()
    self:stop()
    self:launch()
end

-- A known_hosts line for this server, as cutover would write it.
function Server:known_line(pub)
    local name = self.port == 22 and self.address or ("[" .. self.address .. "]:" .. self.port)
    return name .. " " .. (pub or self.host_pub) .. "\n"
end

-- An inventory's text: one group whose vars reach this server as the
-- test user with its key, then extra_vars (lines such as
-- "    cutover_session: false\n"), and hosts (lines; default one, h1).
function Server:inventory(extra_vars, hosts)
    return string.format("all:\n  vars:\n    ansible_host: %s\n    ansible_port: %d\n    ansible_user: %s\n" ..
        "    ansible_ssh_private_key_file: %s\n%s  hosts:\n%s", self.address, self.port, self.user, self.key,
        extra_vars or "", hosts or "    h1: {}\n")
end

function Server:trust()
    assert(fs.write(self.known_hosts, self:known_line(), 384))
end

-- What connection.ssh takes to log in here as the test user with its key
-- (extra: fields added or replaced).
function Server:conn_settings(extra)
    local st = { host = self.address, port = self.port, user = self.user, keys = { self.key },
                 agent = false, known_hosts = self.known_hosts, timeout = 30 }
    for k, v in pairs(extra or {}) do st[k] = v end
    return st
end

-- A second server of the same user with password logins on.  Every test
-- uses the one password S.PASSWORD (tests run side by side and share the
-- test user, so they must not set different ones).
S.PASSWORD = "s3cret pass&word"

-- Gives the test user the password S.PASSWORD (sudo asks for it).
function S.set_password()
    sh("echo " .. S.USER .. ":" .. "'" .. S.PASSWORD:gsub("'", "'\\''") .. "' | chpasswd")
end

function Server:enable_password()
    S.set_password()
    local srv = S.start(self.T, { password_auth = true, address = self.address })
    srv.password = S.PASSWORD
    return srv
end

-- A loopback port nothing listens on (checked just now).
function S.closed_port()
    for _ = 1, 100 do
        local p = 20000 + math.random(0, 12000)
        if not net.probe_tcp("127.0.0.1", p, 1) then return p end
    end
    error("no closed port found")
end

function S.stop_all()
    for _, s in ipairs(running) do s:stop() end
    running = {}
end

-- The sudoers drop-ins written by S.sudoers, removed at T.done.
local drop_ins = {}

-- Writes /etc/sudoers.d/cutover-test-NAME holding line (replacing what
-- it held) and checks it with visudo (T.eq); returns its path.
function S.sudoers(T, name, line)
    local path = "/etc/sudoers.d/cutover-test-" .. name
    drop_ins[path] = true
    assert(fs.write(path, line .. "\n", 288))  -- 0440, as sudo wants
    local v = proc.run({ argv = { "visudo", "-cf", path } })
    T.eq(v.rc, 0, "sudoers drop-in valid: " .. v.stdout .. v.stderr)
    return path
end

-- Hook into T.done so servers (and sudoers drop-ins) never outlive the test.
function S.install(T)
    local done = T.done
    T.done = function()
        S.stop_all()
        for path in pairs(drop_ins) do fs.remove(path) end
        return done()
    end
end

math.randomseed(os.time() + require("cutover.core.sys").getpid())

return S
