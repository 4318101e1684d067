-- httpd: the test HTTP(S) server (tests/lib/httpd.py) on 127.0.0.1.
--   local W = dofile(tests_dir .. "/lib/httpd.lua")
--   local srv = W.start(T, { tls = true })
--   srv.port, srv.base ("http://127.0.0.1:PORT"), srv.root (its /files/
--   folder), srv.cert (TLS: the self-signed certificate, made with
--   openssl now), srv:log() (one "METHOD PATH auth=yes|no" line per
--   request), srv:stop().  W.install(T) stops every server in T.done().
local fs = require("cutover.core.fs")
local loop = require("cutover.core.loop")

local W = {}
local running = {}

local Srv = {}
Srv.__index = Srv

function W.start(T, opts)
    opts = opts or {}
    local dir = T.tmpdir()
    assert(fs.chmod(dir, 493))  -- the SSH test user reads the certificate
    local self = setmetatable({ dir = dir, root = dir .. "/root" }, Srv)
    assert(fs.mkdir(self.root, 493))
    local args = dir .. "/port " .. dir .. "/log " .. self.root
    if opts.tls then
        local r = T.sh("cd " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem " ..
            "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 2 2>&1")
        assert(r.rc == 0, "openssl: " .. r.stdout)
        assert(fs.chmod(dir .. "/cert.pem", 420))
        self.cert = dir .. "/cert.pem"
        args = args .. " " .. dir .. "/cert.pem " .. dir .. "/key.pem"
    end
    T.write(dir .. "/log", "", 420)
    local r = T.sh("python3 " .. T.dir .. "/lib/httpd.py " .. args .. " >" .. dir .. "/stderr 2>&1 & echo $!")
    self.pid = assert(tonumber(r.stdout:match("%d+")), "server started")
    for _ = 1, 400 do
        local p = fs.read(dir .. "/port")
        if p and p:match("^%d+$") then self.port = tonumber(p); break end
        loop.sleep(0.05)
    end
    assert(self.port, "the test HTTP server did not start: " .. tostring(fs.read(dir .. "/stderr")))
    self.base = (opts.tls and "https" or "http") .. "://127.0.0.1:" .. self.port
    running[#running + 1] = self
    return self
end

function Srv:log() return fs.read(self.dir .. "/log") or "" end
function Srv:clear_log() assert(fs.write(self.dir .. "/log", "", 420)) end

function Srv:stop()
    if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null"); self.pid = nil end
end

function W.install(T)
    local done = T.done
    T.done = function()
        for _, s in ipairs(running) do s:stop() end
        return done()
    end
end

return W
