-- connection.ssh: a POSIX host over SSH (core/ssh/ does the protocol and
-- the host-key decision).  The same methods as connection.local, each
-- built on one exec round trip; files travel on the command's stdin.
--
-- Exit status: libssh2 1.10 cannot tell "exit 0" from "no status", so
-- every command runs as  ( CMD ) ; printf MARKER%d $? >&2  and the status
-- is read from that last line of stderr.  A command whose marker never
-- arrives (the session died, the server closed the channel) is a failure,
-- never a silent 0.
--
-- Timeouts and interrupts: sshd starts each command in a session of its
-- own, so the shell's pid is also its process group.  The wrapper reports
-- that pid first (PIDMARK on stderr); when a command times out or is
-- interrupted (Ctrl-C, SIGTERM, SIGHUP), cutover signals the whole group
-- over a second channel of the same session (TERM, then KILL after
-- GRACE seconds) and waits for that to finish, so nothing is left
-- running on the host when cutover exits.  cmd.exe hosts have no way to
-- do this; the result says the command may still be running.
local ssh = require("cutover.core.ssh")
local crypto = require("cutover.core.crypto")
local loop = require("cutover.core.loop")
local proc = require("cutover.core.proc")
local util = require("cutover.util")
local become = require("cutover.connection.become")
local session_runner = require("cutover.connection.session")

local Conn = {}
Conn.__index = Conn

local M = {}
M.Conn = Conn

-- Handshakes in flight at once across all hosts (MaxStartups-friendly).
M.max_handshakes = 8
local handshakes = 0
local handshake_done = loop.condition()

-- A lock tasks take in turn (a session runs one command at a time): a
-- waiter parks on the holder's condition until unlock signals it.
local function lock(holder)
    holder.unlocked = holder.unlocked or loop.condition()
    while holder.locked do holder.unlocked:wait() end
    holder.locked = true
end

local function unlock(holder)
    holder.locked = false
    if holder.unlocked then holder.unlocked:signal() end
end

M.GRACE = 3   -- seconds between TERM and KILL for a stopped command

-- Where a connection's warnings go (the engine points it at its
-- reporter); by default, stderr through output.lua (masked).
function M.on_warning(msg)
    require("cutover.output").note("warning: " .. msg)
end

local MARKER = "__cutover_rc_" .. crypto.random_hex(6) .. "="
local PIDMARK = "__cutover_pid_" .. crypto.random_hex(6) .. "="

-- settings: host, port, user, keys, agent, password, known_hosts,
-- accept_new, timeout, max_output
function M.new(name, settings)
    return setmetatable({ name = name, kind = "ssh", settings = settings }, Conn)
end

local function q(s) return util.sh_quote(s) end

-- Jump hosts (ProxyJump), shared by every host that goes through them
-- by the same route.  A hop's own proxy_jump is the hop before it, so a
-- jump host opens like any host: through its tunnel, if it has one.
local jumps = {}

local function hop_name(pj, user)
    return (pj.user or user) .. "@" .. pj.host .. ":" .. (pj.port or 22)
end

local function jump_for(st)
    local pj = st.proxy_jump
    local route = {}
    local hop = pj
    while hop do
        table.insert(route, 1, hop_name(hop, st.user))
        if hop.proxy_command then table.insert(route, 1, "(" .. hop.proxy_command .. ")") end
        hop = hop.proxy_jump
    end
    local key = table.concat(route, ",")
    local j = jumps[key]
    if not j then
        j = M.new("jump host " .. hop_name(pj, st.user), {
            host = pj.host, port = pj.port or 22, user = pj.user or st.user, keys = st.keys,
            agent = st.agent, known_hosts = st.known_hosts,
            accept_new = st.accept_new, timeout = st.timeout,
            proxy_jump = pj.proxy_jump, proxy_command = pj.proxy_command,
        })
        jumps[key] = j
    end
    return j
end

-- A socket to the host through its jump host: a direct-tcpip channel,
-- pumped by a background task.  Returns fd | nil, message, code.
local function tunnel(st)
    local j = jump_for(st)
    lock(j)
    local ok, err, code = j:open()
    local fd
    if ok then
        fd, err, code = j.session:tunnel(st.host, st.port, st.timeout)
        if fd and not j.pumping then
            j.pumping = true
            local session = j.session
            loop.spawn_daemon(function()
                pcall(session.pump, session)
                j.pumping = false
            end)
        end
    end
    unlock(j)
    if not fd then return nil, "via " .. j.name .. ": " .. tostring(err), code end
    return fd
end

-- Connects unless connected.  Returns true | nil, message, code.
-- ignore_interrupts: connect even after Ctrl-C (to stop a command).
function Conn:open(ignore_interrupts)
    if self.session and self.session:alive() then return true end
    self:close()
    local st = self.settings
    local fd
    if st.proxy_jump then
        local err, code
        fd, err, code = tunnel(st)
        if not fd then return nil, err, code end
    elseif st.proxy_command then
        -- the command's stdin and stdout are the connection (OpenSSH's
        -- ProxyCommand); it ends with the session
        local helper
        fd, helper = proc.connect_command(st.proxy_command)
        if not fd then return nil, helper, "unreachable" end
        self.helper = helper
    end
    while handshakes >= M.max_handshakes do handshake_done:wait() end
    handshakes = handshakes + 1
    local holding = true
    local function release()   -- the place among the handshakes, once
        if holding then
            holding = false
            handshakes = handshakes - 1
            handshake_done:signal()
        end
    end
    local ok, session, fp_or_err, added_or_code = pcall(ssh.connect, {
        host = st.host, port = st.port, user = st.user, keys = st.keys,
        agent = st.agent, password = st.password, known_hosts = st.known_hosts,
        accept_new = st.accept_new, timeout = st.timeout, fd = fd,
        ignore_interrupts = ignore_interrupts,
        -- known_hosts locked by another program: this host waits without
        -- its place, so it does not hold up the others' handshakes
        on_lock_wait = release,
    })
    release()
    if not ok or not session then
        local proxied = self.helper ~= nil
        self:close()
        if not ok then return nil, tostring(session), "error" end
        -- its stderr is the controller's, as with OpenSSH
        if proxied then fp_or_err = fp_or_err .. " (through a ProxyCommand; what it wrote is above)" end
        return nil, fp_or_err, added_or_code
    end
    self.session = session
    self.session_runner, self.become_runners = nil, nil   -- opened on first use, on this connection
    self.fingerprint = fp_or_err
    if added_or_code then self.host_key_added = true end
    self.connects = (self.connects or 0) + 1
    return true
end

-- Runs a shell command line; returns the proc-like result table.
-- A session that was found dead before the command started is
-- re-established once, transparently.
function Conn:run(line, opts)
    -- a step with become: the line runs as that user (before the lock:
    -- the first use probes sudo with commands of its own)
    local marker
    if self.become and not (opts and opts.no_become) then
        if self.settings.shell == "cmd" then return nil, self.name .. ": become is for POSIX hosts", "become" end
        local r, err, code = self:run_as(line, opts)
        if r ~= false then return r, err, code end
        local bline, bstdin, bmarker = become.wrap(self, self.become, self.settings.user, line, opts and opts.stdin)
        if not bline then return nil, bstdin, "become" end
        local o = {}
        for k, v in pairs(opts or {}) do o[k] = v end
        o.stdin, o.argv_line = bstdin, nil   -- the line is sudo's now
        line, opts, marker = bline, o, bmarker
    end
    -- one command at a time per session (delegate_to shares connections)
    lock(self)
    local ok, r, err, code = pcall(self.run_unlocked, self, line, opts)
    unlock(self)
    if not ok then error(r, 0) end
    if r and marker then r.stderr = become.strip(r.stderr, marker) end
    return r, err, code
end

-- steps through the persistent runners: run_as, runner, run_session, ...
require("cutover.connection.ssh_session")(Conn, M, lock, unlock)

function Conn:run_unlocked(line, opts, as)
    opts = opts or {}
    if self.settings.shell ~= "cmd" and self.settings.session ~= false and not self.no_session then
        for attempt = 1, 2 do
            local r, err, code, started = self:run_session(line, opts, as)
            if r then return r end
            if r == false then break end                -- no runner: a channel per step
            if started or code ~= "connection" or attempt == 2 then return nil, err, code end
            -- dropped between steps: reconnect and run it (it never started)
        end
    end
    -- cmd.exe hosts: no in-band status is possible (%ERRORLEVEL% is not
    -- expanded under `cmd /c`); the channel's exit status is all there is
    local raw = self.settings.shell == "cmd"
    local wrapped = raw and line or
        ("printf '" .. PIDMARK .. "%d\\n' \"$$\" >&2; ( " .. line .. "\n) ; printf '\\n" .. MARKER ..
            "%d\\n' \"$?\" >&2")
    for attempt = 1, 2 do
        local ok, err, code = self:open()
        if not ok then return nil, err, code end
        local r, rerr, rcode, phase = self.session:exec(wrapped, {
            stdin = opts.stdin, timeout = opts.timeout,
            max_output = opts.max_output or self.settings.max_output,
        })
        if r and raw then
            if r.timed_out or r.interrupted then
                self:drop_session()
                r.stop_note = "the command may still be running on " .. self.name ..
                    " (a cmd.exe host offers cutover no way to stop it)"
            end
            return r
        end
        if r then
            local pid
            if r.stderr:sub(1, #PIDMARK) == PIDMARK then
                local nl = r.stderr:find("\n", 1, true) or #r.stderr
                pid = tonumber(r.stderr:sub(#PIDMARK + 1, nl - 1))
                r.stderr = r.stderr:sub(nl + 1)
            end
            if r.timed_out or r.interrupted then
                local stopped = pid and pid > 1 and self:stop_group(pid)
                self:drop_session()
                if not stopped then
                    r.stop_note = "the command may still be running on " .. self.name ..
                        (pid and " (stopping its process group failed)" or " (its process id never arrived)")
                end
            end
            local pos = r.stderr:find("\n" .. MARKER, 1, true)
            if pos then
                r.rc = tonumber(r.stderr:match("(%d+)\n?$", pos)) or r.rc
                r.stderr = r.stderr:sub(1, pos - 1)
            elseif r.timed_out or r.interrupted then
                r.rc = r.rc or -1
            elseif r.stderr_truncated then
                r.status_note = "exit status unknown: stderr was cut at the output cap"
            else
                return nil, self.name .. ": the command ended without an exit status (the session or channel was " ..
                    "closed; it may or may not have taken effect)", "connection"
            end
            return r
        end
        self.session = nil
        if not (rcode == "connection" and (phase or 0) < 2 and attempt == 1) then
            if rcode == "connection" then
                return nil, rerr .. " (connection lost while the command ran; it may or may not have taken effect)",
                    "connection"
            end
            return nil, rerr, rcode
        end
        -- dropped between steps: reconnect and run it (it never started)
    end
end

-- The session after a timed-out or interrupted command: its channel is
-- in an unknown state, so it is closed (the next step reconnects).
function Conn:drop_session()
    self:close_runners()
    if self.session then self.session:close() end
    self.session = nil
end

-- Stops a timed-out or interrupted command's process group on the host
-- (see the top): TERM, then KILL when it still runs GRACE seconds later,
-- in one command that returns when the group is gone.  It runs on a
-- second channel of the same session (the command's channel is left
-- open), else on a new connection; a further Ctrl-C does not cut it
-- short (its timeout bounds it).  Returns true when the group is gone.
function Conn:stop_group(pid, as)
    local g = "-" .. math.floor(pid)
    local ticks = math.floor(M.GRACE * 5)
    -- no "--": dash's kill refuses it; after -SIG a negative number is a
    -- group.  Steps of 0.2 s where sleep takes fractions, else of 1 s.
    local script = "kill -TERM " .. g .. " 2>/dev/null || exit 0; i=0; " ..
        "while kill -0 " .. g .. " 2>/dev/null; do " ..
        "if [ $i -ge " .. ticks .. " ]; then kill -KILL " .. g .. " 2>/dev/null; exit 0; fi; " ..
        "sleep 0.2 2>/dev/null || { sleep 1; i=$((i+4)); }; i=$((i+1)); done; exit 0"
    local opts = { timeout = M.GRACE + 10, uninterruptible = true }
    if as then
        -- a step of a become session runs as that user: so must its stop
        local bline, bstdin = become.wrap(self, as, self.settings.user, script, nil)
        if not bline then return false end
        script, opts.stdin = bline, bstdin
    end
    local r
    if self.session and self.session:alive() then r = self.session:exec(script, opts) end
    if not r then
        self:drop_session()
        if not self:open(true) then return false end
        r = self.session:exec(script, opts)
    end
    return r ~= nil and not r.timed_out and r.rc == 0
end

-- opts: argv or shell, stdin, cwd, env, timeout, max_output
function Conn:exec(opts)
    local line
    if opts.argv then
        local words = {}
        for i, a in ipairs(opts.argv) do words[i] = q(a) end
        line = table.concat(words, " ")
    else
        line = opts.shell
    end
    if opts.env then
        local parts = {}
        for _, k in ipairs(util.sorted_keys(opts.env)) do
            parts[#parts + 1] = k .. "=" .. q(opts.env[k])
        end
        line = "export " .. table.concat(parts, " ") .. "; " .. line
    end
    if opts.cwd then line = "cd " .. q(opts.cwd) .. " && " .. line end
    if opts.argv and not opts.env and not opts.cwd and session_runner.direct_ok(opts.argv[1]) then
        -- nothing but quoted words naming a program: a session may exec
        -- them without the login shell (connection/session.lua, "argv")
        local o = { argv_line = true }
        for k, v in pairs(opts) do o[k] = v end
        opts = o
    end
    return self:run(line, opts)
end

local ERRNO = { ["No such file or directory"] = 2, ["Not a directory"] = 20,
                ["Permission denied"] = 13, ["Is a directory"] = 21,
                ["File exists"] = 17 }

local function fail_from(r, path, what)
    local msg = util.trim(r.stderr ~= "" and r.stderr or (what .. " failed with exit code " .. r.rc))
    local code
    for text, n in pairs(ERRNO) do
        if msg:find(text, 1, true) then code = n; msg = path .. ": " .. text end
    end
    return nil, msg, code or 5
end

function Conn:read_file(path, max)
    local r, err, code = self:run("cat -- " .. q(path), { max_output = max and (max + 1) })
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "cat") end
    if max and #r.stdout > max then
        return nil, path .. ": file is larger than the limit of " .. max .. " bytes", 27
    end
    return r.stdout
end

local TYPES = { ["regular file"] = "file", ["regular empty file"] = "file",
                directory = "directory", ["symbolic link"] = "link" }

function Conn:stat(path, follow)
    local r, err, code = self:run("stat " .. (follow and "-L " or "") ..
        "-c '%F|%a|%s|%Y|%u|%g' -- " .. q(path))
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "stat") end
    local ftype, mode, size, mtime, uid, gid = r.stdout:match("^([^|]*)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)")
    if not ftype then return nil, path .. ": cannot read stat output: " .. r.stdout, 5 end
    return { type = TYPES[ftype] or "other", mode = tonumber(mode, 8), size = tonumber(size),
             mtime = tonumber(mtime), uid = tonumber(uid), gid = tonumber(gid) }
end

function Conn:sha256(path)
    local r, err, code = self:run("sha256sum -- " .. q(path))
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "sha256sum") end
    return r.stdout:match("^(%x+)")
end

-- Atomic on the host: a temporary file beside the target, then chmod
-- (the given mode, or the old file's) and mv.  The content goes by SFTP
-- when the host offers it (large buffers), otherwise on a command's
-- stdin; `cutover_sftp: false` in the inventory says the host has none.
function Conn:write_file(path, content, mode)
    local chmod
    if mode then
        chmod = "chmod " .. string.format("%o", mode) .. ' "$t"'
    else
        -- keep the old file's owner and group where the login user may
        -- (root may; another user only for its own groups): a refusal
        -- must not fail the write
        chmod = "if [ -e " .. q(path) .. " ]; then chmod --reference=" .. q(path) ..
            ' "$t" && { chown --reference=' .. q(path) .. ' "$t" 2>/dev/null || :; }; else chmod 644 "$t"; fi'
    end
    -- under become the file goes on the command's stdin, written by the
    -- target user (SFTP would write as the login user)
    if self.settings.sftp ~= false and not self.no_sftp and not self.become then
        local tmp = path .. ".cutover-" .. crypto.random_hex(6)
        lock(self)
        local ok, err, code = self:open()
        if ok then
            local pok, res, perr, pcode = pcall(self.session.sftp_put, self.session, tmp, content, 384)
            if pok then
                ok, err, code = res, perr, pcode
            else
                ok, err, code = nil, tostring(res), "error"
            end
        end
        unlock(self)
        if ok == true then
            local r, rerr, rcode = self:run("t=" .. q(tmp) .. "; { " .. chmod .. " && mv -f \"$t\" " .. q(path) ..
                '; } || { rm -f "$t"; exit 1; }')
            if not r then return nil, rerr, rcode end
            if r.rc ~= 0 then return fail_from(r, path, "write") end
            return true
        end
        if code == "nosftp" then
            self.no_sftp = true
        elseif code == "connection" then
            self.session = nil
            return nil, err, code
        else
            return nil, (err or "SFTP write failed"):gsub("%.cutover%-%x+", ""),
                err and err:find("No such file") and 2 or 5
        end
    end
    local line = "umask 077; t=$(mktemp " .. q(path .. ".cutover-XXXXXX") .. ") && " ..
        '{ cat > "$t" && ' .. chmod .. ' && mv -f "$t" ' .. q(path) .. '; } || { rm -f "$t"; exit 1; }'
    local r, err, code = self:run(line, { stdin = content })
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "write") end
    return true
end

function Conn:mkdir_p(path, mode)
    local r, err, code = self:run("mkdir -p " .. (mode and ("-m " .. string.format("%o", mode) .. " ") or "") ..
        "-- " .. q(path))
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "mkdir") end
    return true
end

function Conn:remove(path)
    local r, err, code = self:run("rm -rf -- " .. q(path))
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "rm") end
    return true
end

function Conn:chmod(path, mode)
    local r, err, code = self:run("chmod " .. string.format("%o", mode) .. " -- " .. q(path))
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "chmod") end
    return true
end

function Conn:touch(path)
    local r, err, code = self:run("touch -- " .. q(path))
    if not r then return nil, err, code end
    if r.rc ~= 0 then return fail_from(r, path, "touch") end
    return true
end

-- From the host itself (bash's /dev/tcp).
function Conn:probe_tcp(host, port, timeout)
    local r, err = self:run("timeout " .. math.max(1, math.ceil(timeout or 5)) ..
        " bash -c " .. q("exec 3<>/dev/tcp/" .. host .. "/" .. port), {})
    if not r then return nil, err end
    if r.rc == 0 then return true end
    return nil, "connection refused or timed out"
end

function Conn:close()
    self:close_runners()
    if self.session then self.session:close(); self.session = nil end
    if self.helper then self.helper:stop(); self.helper = nil end
end

return M
