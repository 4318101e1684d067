-- lab.shell: `cutover-lab shell HOSTDIR`, sshd's ForceCommand for a lab
-- host.  Runs SSH_ORIGINAL_COMMAND as `cmd.exe /c` would (contract
-- sections 2 and 8): operators, redirections, %VAR%, builtins, and the
-- host's programs (lab.programs).  Each command holds the host's lock
-- while it runs.  Output: CRLF, stdout and stderr apart; the exit status
-- is the last command's code mod 256.
local fs = require("cutover.core.fs")
local state = require("lab.state")
local cmd = require("lab.cmd")
local programs = require("lab.programs")

local M = {}

local MAX_STDIN = 16 * 1024 * 1024
local MAX_OUTPUT = 16 * 1024 * 1024

local function crlf_lines(...)
    local t = { ... }
    return table.concat(t, "\r\n") .. "\r\n"
end
M.crlf_lines = crlf_lines

-- The session: host folder, environment, the real stdin (read once).
local Session = {}
Session.__index = Session

function Session:real_stdin()
    if not self.stdin_data then
        local parts, total = {}, 0
        while total < MAX_STDIN do
            local chunk = io.stdin:read(65536)
            if not chunk then break end
            parts[#parts + 1] = chunk
            total = total + #chunk
        end
        self.stdin_data = table.concat(parts)
    end
    return self.stdin_data
end

-- A sink collects a handle's output until the command ends.
local function new_sink(kind, path, append)
    return { kind = kind, path = path, append = append, buf = {}, size = 0 }
end

local function sink_write(sink, text)
    if sink.kind == "null" or text == "" then return end
    if sink.size + #text > MAX_OUTPUT then return end
    sink.size = sink.size + #text
    sink.buf[#sink.buf + 1] = text
end

local BUILTINS = {}

function BUILTINS.echo(ctx)
    local rest = ctx.rest
    if rest:match("^%s*$") then
        ctx.out("ECHO is on.\r\n")
    else
        ctx.out(rest:sub(2) .. "\r\n")
    end
    return 0
end

function BUILTINS.type(ctx)
    local path = ctx.args[1]
    if not path then
        ctx.err("The syntax of the command is incorrect.\r\n")
        return 1
    end
    local real = state.real_path(ctx.dir, path)
    local data = real and fs.read(real)
    local st = real and fs.stat(real, true)
    if not data or not st or st.type ~= "file" then
        ctx.err("The system cannot find the file specified.\r\n")
        return 1
    end
    ctx.out(state.from_utf16(data))
    return 0
end

function BUILTINS.del(ctx)
    local rc = 0
    local any = false
    for _, a in ipairs(ctx.args) do
        if a:sub(1, 1) ~= "/" then
            any = true
            local real = state.real_path(ctx.dir, a)
            local st = real and fs.stat(real)
            if not st or st.type ~= "file" then
                local full = a:match("^%a:") and a or ("C:\\" .. a)
                ctx.err("Could Not Find " .. full .. "\r\n")
            else
                fs.remove(real)
            end
        end
    end
    if not any then
        ctx.err("The syntax of the command is incorrect.\r\n")
        rc = 1
    end
    return rc
end
BUILTINS.erase = BUILTINS.del

function BUILTINS.mkdir(ctx)
    local path = ctx.args[1]
    if not path then
        ctx.err("The syntax of the command is incorrect.\r\n")
        return 1
    end
    local real, msg = state.real_path(ctx.dir, path)
    if not real then
        ctx.err(msg .. "\r\n")
        return 1
    end
    if fs.stat(real) then
        ctx.err("A subdirectory or file " .. path .. " already exists.\r\n")
        return 1
    end
    state.mkdir_p(real)
    return 0
end
BUILTINS.md = BUILTINS.mkdir

function BUILTINS.hostname(ctx)
    ctx.out(ctx.st.name .. "\r\n")
    return 0
end

function BUILTINS.ver(ctx)
    ctx.out("Microsoft Windows 2000 [Version 5.00.2195]\r\n")
    return 0
end

function BUILTINS.cd(ctx)
    ctx.out("C:\\\r\n")
    return 0
end

function BUILTINS.set(ctx)
    local prefix = ctx.rest:match("^%s*(.-)%s*$"):lower()
    local names = {}
    for _, kv in ipairs(ctx.session.env_list) do
        if kv[1]:lower():sub(1, #prefix) == prefix then
            names[#names + 1] = kv[1] .. "=" .. kv[2]
        end
    end
    if #names == 0 then
        ctx.err("Environment variable " .. prefix .. " not defined\r\n")
        return 1
    end
    ctx.out(table.concat(names, "\r\n") .. "\r\n")
    return 0
end

function BUILTINS.exit(ctx)
    local n = 0
    for _, a in ipairs(ctx.args) do
        if a:lower() ~= "/b" then n = tonumber(a) or 0 end
    end
    ctx.exit = true
    return math.tointeger(n) or 0
end

-- more: stdin to stdout, every line ending CRLF, a final CRLF added.
function BUILTINS.more(ctx)
    local data = ctx.stdin()
    data = data:gsub("\r\n", "\n"):gsub("\r", "\n"):gsub("\n", "\r\n")
    if data ~= "" and data:sub(-2) ~= "\r\n" then data = data .. "\r\n" end
    ctx.out(data)
    return 0
end

-- Resolves a program name: builtin function, or program function, or
-- nil.  Names are case-insensitive, with or without .exe or a path.
function Session:resolve(name)
    local lower = name:lower()
    local base = lower:match("[^\\/]*$")
    local has_path = base ~= lower
    local plain = base:gsub("%.exe$", "")
    if not has_path and base == plain and BUILTINS[plain] then
        return BUILTINS[plain]
    end
    if plain == "update" then
        -- only the SP3 media, by its path, while it is there
        if not has_path then return nil end
        local real = state.real_path(self.dir, name)
        local media = state.real_path(self.dir, state.SP3_MEDIA)
        local st = real and fs.stat(real)
        if real == media and st and st.type == "file" then
            return programs.update
        end
        return nil
    end
    if plain == "more" or plain == "hostname" then return BUILTINS[plain] end
    return programs[plain]
end

function Session:flush_std(sink, fd)
    if #sink.buf == 0 then return end
    local f = fd == 1 and io.stdout or io.stderr
    f:write(table.concat(sink.buf))
    f:flush()
    sink.buf, sink.size = {}, 0
end

-- Runs one command; returns its code, and true when `exit` ran.
function Session:run_command(c, input, pipe_sink)
    if c.kind == "if" then
        local real = state.real_path(self.dir, c.path)
        local exists = real ~= nil and fs.stat(real, true) ~= nil
        if exists ~= c.negate then return self:run_list(c.body) end
        return 0
    end
    local stdout = new_sink("stdout")
    local stderr = new_sink("stderr")
    local handles = { [0] = input, [1] = pipe_sink or stdout, [2] = stderr }
    local files = {}
    for _, r in ipairs(c.redirs) do
        if r.dup then
            if r.dup == 0 or r.fd == 0 then
                io.stderr:write("The handle could not be duplicated\r\n"
                                .. "during redirection of handle "
                                .. r.fd .. ".\r\n")
                return 1
            end
            handles[r.fd] = handles[r.dup]
        else
            local real, msg = state.real_path(self.dir, r.path)
            if not real then
                io.stderr:write(msg .. "\r\n")
                return 1
            end
            if r.op == "<" then
                local data = fs.read(real)
                if not data then
                    io.stderr:write(
                        "The system cannot find the file specified.\r\n")
                    return 1
                end
                handles[0] = { data = data }
            elseif real == "/dev/null" then
                handles[r.fd] = new_sink("null")
            else
                local parent = real:match("^(.*)/[^/]*$")
                local pst = fs.stat(parent, true)
                if not pst or pst.type ~= "directory" then
                    io.stderr:write(
                        "The system cannot find the path specified.\r\n")
                    return 1
                end
                local s = new_sink("file", real, r.op == ">>")
                files[#files + 1] = s
                handles[r.fd] = s
            end
        end
    end
    local name, rest = cmd.split_name(c.text)
    local fn = name and name ~= "" and self:resolve(name)
    local session = self
    local ctx = {
        dir = self.dir, session = self, rest = rest or "",
        args = cmd.argv(rest or ""), name = name,
        out = function(t) sink_write(handles[1], t) end,
        err = function(t) sink_write(handles[2], t) end,
        stdin = function()
            local h = handles[0]
            if h == nil then return session:real_stdin() end
            return h.data or ""
        end,
    }
    ctx.line = function(...) ctx.out(crlf_lines(...)) end
    ctx.eline = function(...) ctx.err(crlf_lines(...)) end
    local rc = 0
    if not name or name == "" then
        rc = 0
    elseif not fn then
        ctx.err("'" .. name .. "' is not recognized as an internal or " ..
                "external command,\r\noperable program or batch file.\r\n")
        rc = 1
    else
        if fn == BUILTINS.more then ctx.stdin() end  -- before the lock
        local lock, st = state.open(self.dir)
        ctx.st = st
        local ok, res = pcall(fn, ctx)
        if ok then
            rc = res or 0
            if ctx.reboot then
                assert(fs.write(state.paths(self.dir).reboot,
                                tostring(os.time())))
            end
            state.save(st)
        else
            ctx.err("lab: internal error: " .. tostring(res) .. "\r\n")
            rc = 255
        end
        for _, s in ipairs(files) do
            local data = table.concat(s.buf)
            if s.append then data = (fs.read(s.path) or "") .. data end
            local wok, werr = fs.write(s.path, data)
            if not wok then
                io.stderr:write("Access is denied.\r\n")
                io.stderr:write(tostring(werr) .. "\r\n")
            end
        end
        files = {}
        lock:unlock()
        if ctx.wait_mail then M.wait_mail(self.dir) end
    end
    for _, s in ipairs(files) do
        local data = table.concat(s.buf)
        if s.append then data = (fs.read(s.path) or "") .. data end
        fs.write(s.path, data)
    end
    self:flush_std(stdout, 1)
    self:flush_std(stderr, 2)
    return rc, ctx.exit
end

function Session:run_pipeline(pipeline)
    local input = nil
    local rc, exited = 0, false
    for k, c in ipairs(pipeline) do
        local pipe = nil
        if k < #pipeline then pipe = new_sink("pipe") end
        rc, exited = self:run_command(c, input, pipe)
        if pipe then input = { data = table.concat(pipe.buf) } end
        if exited then break end
    end
    return rc, exited
end

function Session:run_list(list)
    local rc = 0
    for _, item in ipairs(list) do
        local run = true
        if item.op == "&&" and rc ~= 0 then run = false end
        if item.op == "||" and rc == 0 then run = false end
        if run then
            local exited
            rc, exited = self:run_pipeline(item.pipeline)
            if exited then return rc, true end
        end
    end
    return rc
end

-- After a start of the Information Store: until its mail ports accept
-- (the mail daemon looks every 0.1 s), at most 2 s, so that a logon
-- right after `net start` finds them open, as on a real host.
function M.wait_mail(dir)
    local net = require("cutover.core.net")
    local loop = require("cutover.core.loop")
    local cfg = state.config(dir)
    if not cfg.pop3_port then return end
    local deadline = loop.now() + 2
    while loop.now() < deadline do
        if net.probe_tcp(cfg.address, cfg.pop3_port, 0.2) and
           net.probe_tcp(cfg.address, cfg.imap_port, 0.2) then
            return
        end
        loop.sleep(0.02)
    end
end

-- The environment of a session (contract section 2).
function M.environment(st)
    local list = {
        { "COMPUTERNAME", st.name },
        { "OS", "Windows_NT" },
        { "PATH", "C:\\WINNT\\system32;C:\\WINNT;C:\\exchsrvr\\bin" },
        { "SystemRoot", "C:\\WINNT" },
        { "TEMP", "C:\\TEMP" },
        { "TMP", "C:\\TEMP" },
        { "USERDOMAIN", st.login.domain },
        { "USERNAME", st.login.name },
        { "windir", "C:\\WINNT" },
    }
    local map = {}
    for _, kv in ipairs(list) do map[kv[1]:lower()] = kv[2] end
    return list, map
end

-- Runs one command line against the host in dir; returns the code.
function M.run_line(dir, line)
    local self = setmetatable({ dir = dir }, Session)
    do
        local lock, st = state.open(dir)
        self.env_list, self.env = M.environment(st)
        lock:unlock()
    end
    line = cmd.expand(line, self.env)
    local list = cmd.parse(line)
    if not list then
        io.stderr:write("The syntax of the command is incorrect.\r\n")
        return 1
    end
    local rc = self:run_list(list)
    return rc
end

-- cutover-lab shell HOSTDIR
function M.main(dir)
    local line = os.getenv("SSH_ORIGINAL_COMMAND")
    if not line then
        io.stderr:write("This lab host accepts exec requests only.\r\n")
        return 1
    end
    local rc = M.run_line(dir, line)
    io.stdout:flush()
    return rc % 256
end

return M
