-- ssh.connect{fd=} owns the socket it is given from its first line: a
-- call that raises on a bad option (a caller's bug) must not leak it.
-- The socket is a ProxyCommand's (proc.connect_command); whether it is
-- still open is read in /proc/self/fd.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local ssh = require("cutover.core.ssh")
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")

local function is_open(fd) return fs.stat("/proc/self/fd/" .. fd) ~= nil end

local bad_options = {
    { what = "no host", opts = { user = "u", known_hosts = "/nonexistent" } },
    { what = "no user", opts = { host = "h", known_hosts = "/nonexistent" } },
    { what = "no known_hosts", opts = { host = "h", user = "u" } },
    { what = "a port that is no number", opts = { host = "h", user = "u", port = "x",
                                                  known_hosts = "/nonexistent" } },
}

for _, case in ipairs(bad_options) do
    T.test("ssh.connect{fd=} with " .. case.what .. ": raises, and the socket is closed", function()
        local fd, helper = assert(proc.connect_command("cat"))
        T.ok(is_open(fd), "the socket is open before")
        case.opts.fd = fd
        local ok = pcall(ssh.connect, case.opts)
        T.ok(not ok, "ssh.connect raised")
        collectgarbage()
        collectgarbage()
        T.ok(not is_open(fd), "the socket is closed after")
        helper:stop()
    end)
end

T.done()
