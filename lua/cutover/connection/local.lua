-- connection.local: the controller itself.  Every connection offers the
-- same methods (see docs/architecture.md); the SSH connection will offer
-- them over libssh2.  Failures return nil, message, errno.
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")
local net = require("cutover.core.net")

local Local = {}
Local.__index = Local

local M = {}

-- opts.max_output: the cap on each stream of a command (bytes)
function M.new(host, opts)
    return setmetatable({ host = host, kind = "local", max_output = opts and opts.max_output }, Local)
end

-- opts: argv = {...} or shell = "...", stdin, cwd, env, timeout, max_output
function Local:exec(opts)
    if opts.max_output == nil and self.max_output then
        opts.max_output = self.max_output
    end
    return proc.run(opts)
end
function Local:read_file(path, max) return fs.read(path, max) end
function Local:write_file(path, content, mode) return fs.write(path, content, mode) end
function Local:stat(path, follow) return fs.stat(path, follow) end
function Local:sha256(path) return fs.sha256(path) end
function Local:chmod(path, mode) return fs.chmod(path, mode) end
function Local:touch(path) return fs.touch(path) end
function Local:probe_tcp(host, port, timeout) return net.probe_tcp(host, port, timeout) end

-- mkdir -p; returns true, created(list) | nil, message
function Local:mkdir_p(path, mode)
    local created, parts = {}, {}
    local p = path
    while p ~= "" and p ~= "/" and p ~= "." do
        local st = fs.stat(p, true)
        if st then
            if st.type ~= "directory" then return nil, p .. ": exists and is not a directory" end
            break
        end
        table.insert(parts, 1, p)
        p = p:match("^(.*)/[^/]*$") or ""
    end
    for _, dir in ipairs(parts) do
        local ok, err, code = fs.mkdir(dir, mode or 493)
        if not ok and code ~= 17 then return nil, err end
        created[#created + 1] = dir
    end
    return true, created
end

-- rm -r, without following links
function Local:remove(path)
    local st, err = fs.stat(path)
    if not st then return nil, err end
    if st.type == "directory" then
        local names, lerr = fs.list(path)
        if not names then return nil, lerr end
        for _, n in ipairs(names) do
            local ok, rerr = self:remove(path .. "/" .. n)
            if not ok then return nil, rerr end
        end
    end
    return fs.remove(path)
end

function Local:close() end

return M
