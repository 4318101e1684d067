-- become: runs a POSIX host's command lines as another user (sudo, or su
-- from root).  The connection asks wrap() for each command while a step
-- with become runs (conn.become is set by the runner for that step).
--
-- sudo's password travels on stdin only, never on a command line or in
-- the environment.  Before the first command as a user, one probe per
-- connection and user learns how sudo behaves: `sudo -n` (no password
-- needed), else the password is checked with `sudo -k -S` and a random
-- prompt marker, so a wrong password is a clear error and never a hang,
-- and no command runs with it.  With a password, every command uses
-- `sudo -k -S`: sudo then always reads it first, so the command's own
-- stdin is never taken for a password.
local crypto = require("cutover.core.crypto")

local M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- become_flags: words for sudo, refused when they could end the command
-- line early or run another program.
local function flag_words(flags)
    if flags == nil or flags == "" then return "" end
    if tostring(flags):find("[;&|`$<>()\n\\\"']") then
        return nil, "become_flags '" .. tostring(flags) .. "' holds shell syntax; give plain sudo options"
    end
    return " " .. flags
end

-- stderr without sudo's prompt marker
function M.strip(stderr, marker)
    if not marker or type(stderr) ~= "string" then return stderr end
    local i, j = stderr:find(marker, 1, true)
    if not i then return stderr end
    return stderr:sub(1, i - 1) .. stderr:sub(j + 1)
end

local function first_line(s) return (tostring(s or ""):gsub("^%s+", ""):gsub("\n.*", "")) end

-- Runs a probe line on the connection as the login user.
local function raw_run(conn, line, stdin)
    return conn:run(line, { stdin = stdin, timeout = 60, no_become = true })
end

-- How sudo answers for this user: "nopasswd" | "password", or nil, message.
local function sudo_mode(conn, spec, login)
    conn.become_modes = conn.become_modes or {}
    local key = spec.user .. "\0" .. (spec.flags or "")
    local known = conn.become_modes[key]
    if known then return known end
    local flags, ferr = flag_words(spec.flags)
    if not flags then return nil, ferr end
    local r, err = raw_run(conn, "sudo -n" .. flags .. " -u " .. q(spec.user) .. " -- /bin/sh -c true")
    if not r then return nil, err end
    local host = conn.name or "the host"
    local mode
    if r.rc == 0 then
        mode = "nopasswd"
    elseif r.rc == 127 or r.stderr:find("sudo: not found", 1, true) or r.stderr:find("command not found", 1, true) then
        return nil, "sudo is not installed on " .. host
    elseif r.stderr:find("password is required", 1, true) or r.stderr:find("a password", 1, true) then
        if spec.password == nil then
            return nil, "sudo on " .. host .. " needs the password of " .. login ..
                " (ansible_become_password, or -K to be asked)"
        end
        local marker = "cutover-sudo-" .. crypto.random_hex(8) .. ":"
        local v, verr = raw_run(conn, "sudo -k -S -p " .. q(marker) .. flags .. " -u " .. q(spec.user) ..
            " -- /bin/sh -c true", spec.password .. "\n")
        if not v then return nil, verr end
        if v.rc ~= 0 then
            local text = M.strip(v.stderr, marker)
            if text:find("incorrect password", 1, true) or text:find("Sorry, try again", 1, true)
                or text:find("Authentication failure", 1, true) then
                return nil, "sudo: wrong password for " .. login .. " on " .. host
            end
            return nil, "sudo on " .. host .. ": " .. first_line(text)
        end
        mode = "password"
    elseif r.stderr:find("tty", 1, true) or r.stderr:find("terminal is required", 1, true) then
        return nil, "sudo on " .. host .. " needs a terminal (requiretty in sudoers); cutover runs commands without one"
    else
        return nil, "sudo on " .. host .. ": " .. login .. " may not run commands as " .. spec.user .. ": " ..
            first_line(r.stderr)
    end
    conn.become_modes[key] = mode
    return mode
end

-- The command line and stdin that run line as spec.user.  spec: user,
-- method (sudo | su), flags, password; login: the user logged in.
-- Returns line, stdin, marker (to strip from stderr) | nil, message.
function M.wrap(conn, spec, login, line, stdin)
    if spec.user == login then return line, stdin end
    local host = conn.name or "the host"
    if spec.method == "su" then
        if login ~= "root" then
            return nil, "become_method su on " .. host .. " reads its password from a terminal; cutover uses su " ..
                "only when logged in as root (use sudo)"
        end
        return "su -s /bin/sh -c " .. q(line) .. " -- " .. q(spec.user), stdin
    end
    local mode, err = sudo_mode(conn, spec, login)
    if not mode then return nil, err end
    local flags = flag_words(spec.flags)
    if mode == "nopasswd" then
        return "sudo -n -H" .. flags .. " -u " .. q(spec.user) .. " -- /bin/sh -c " .. q(line), stdin
    end
    local marker = "cutover-sudo-" .. crypto.random_hex(8) .. ":"
    return "sudo -k -S -H -p " .. q(marker) .. flags .. " -u " .. q(spec.user) .. " -- /bin/sh -c " .. q(line),
        spec.password .. "\n" .. (stdin or ""), marker
end


-- The command that starts a become session (connection/session.lua) as
-- spec.user, and the bytes to send first (sudo's password line: sudo
-- reads it from the channel's stdin a byte at a time, the bootstrap that
-- follows is the shell's).  Returns command, preamble | nil (no session:
-- su, or the login user) | nil, message (sudo refused).
function M.session_command(conn, spec, login)
    if spec.user == login or spec.method == "su" then return nil end
    local mode, err = sudo_mode(conn, spec, login)
    if not mode then return nil, err end
    local flags = flag_words(spec.flags)
    if mode == "nopasswd" then
        return "sudo -n -H" .. flags .. " -u " .. q(spec.user) .. " -- /bin/sh", ""
    end
    local prompt = "cutover-sudo-" .. crypto.random_hex(8) .. ":"
    return "sudo -k -S -H -p " .. q(prompt) .. flags .. " -u " ..
        q(spec.user) .. " -- /bin/sh", spec.password .. "\n", prompt
end

return M
