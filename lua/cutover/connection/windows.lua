-- connection.windows: a Windows host over plain SSH (ansible_shell_type:
-- cmd).  Every exec request runs as `cmd.exe /c LINE` on the host; lines
-- are built by windows.cmdline (which refuses what cmd.exe cannot carry),
-- file content travels on stdin (`more > FILE`), and the exit status is
-- the channel's (libssh2 1.10 cannot tell "0" from "none" there: a
-- dropped channel reads as a failure only through the connection error).
-- The session, host keys and authentication are the SSH connection's.
local ssh = require("cutover.connection.ssh")
local cmdline = require("cutover.windows.cmdline")
local crypto = require("cutover.core.crypto")

local Win = setmetatable({}, { __index = ssh.Conn })
Win.__index = Win

local M = {}

function M.new(name, settings)
    settings.shell = "cmd"
    settings.sftp = false
    local conn = ssh.new(name, settings)
    conn.kind = "windows"
    return setmetatable(conn, Win)
end

-- opts: argv (built and quoted by windows.cmdline) or shell (a raw cmd
-- line, used as is), stdin, timeout, max_output.  cwd and env are not
-- supported on cmd.exe hosts.
function Win:exec(opts)
    local line = opts.shell
    if opts.argv then
        local err
        line, err = cmdline.build(opts.argv)
        if not line then return nil, self.name .. ": " .. err, "usage" end
    end
    if opts.cwd or opts.env then
        return nil, self.name .. ": chdir and environment variables are not supported on cmd.exe hosts", "usage"
    end
    return self:run(line, opts)
end

local function fail(r, path)
    local msg = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
    if msg:find("cannot find", 1, true) or msg:find("not find", 1, true) then
        return nil, path .. ": No such file or directory", 2
    end
    return nil, path .. ": " .. (msg ~= "" and msg or ("exit code " .. tostring(r.rc))), 5
end

function Win:read_file(path, max)
    local target, err = cmdline.redirect_target(path)
    if not target then return nil, err, 22 end
    local r, rerr, code = self:run("type " .. target, { max_output = max and (max + 1) })
    if not r then return nil, rerr, code end
    if r.rc ~= 0 then return fail(r, path) end
    return r.stdout
end

-- Written with `more`, which turns line endings into CRLF and adds a
-- final CRLF: what lands on the host is cmdline.more_content(content).
function Win:write_file(path, content)
    local line, err = cmdline.write_stdin_to(path)
    if not line then return nil, err, 22 end
    local r, rerr, code = self:run(line, { stdin = content })
    if not r then return nil, rerr, code end
    if r.rc ~= 0 then return fail(r, path) end
    return true
end

function Win:stat(path)
    local target, err = cmdline.redirect_target(path)
    if not target then return nil, err, 22 end
    local r, rerr, code = self:run("if exist " .. target .. " echo present")
    if not r then return nil, rerr, code end
    if not r.stdout:find("present", 1, true) then
        return nil, path .. ": No such file or directory", 2
    end
    return { type = "file", mode = 420, size = -1, mtime = 0, uid = 0, gid = 0 }
end

function Win:sha256(path)
    local data, err, code = self:read_file(path)
    if not data then return nil, err, code end
    return crypto.sha256(data)
end

function Win:remove(path)
    local target, err = cmdline.redirect_target(path)
    if not target then return nil, err, 22 end
    local r, rerr, code = self:run("del " .. target)
    if not r then return nil, rerr, code end
    if r.rc ~= 0 then return fail(r, path) end
    return true
end

function Win:mkdir_p(path)
    local target, err = cmdline.redirect_target(path)
    if not target then return nil, err, 22 end
    local r, rerr, code = self:run("if not exist " .. target .. " mkdir " .. target)
    if not r then return nil, rerr, code end
    if r.rc ~= 0 then return fail(r, path) end
    return true
end

local function unsupported(what)
    return function(self)
        return nil, self.name .. ": " .. what .. " is not supported on cmd.exe hosts", 95
    end
end
Win.chmod = unsupported("chmod")
Win.touch = unsupported("touch")
Win.probe_tcp = unsupported("probing a port from the host")

return M
