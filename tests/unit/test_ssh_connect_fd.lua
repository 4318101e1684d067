-- A socket handed between modules through Lua (a ProxyCommand's end from
-- proc.connect_command, a ProxyJump tunnel's end from session:tunnel,
-- taken by ssh.connect{fd=}) is a userdata that owns it, never a bare
-- descriptor (issue 11): dropped, it is closed by the collector, and
-- ssh.connect owns it from its first line, so a call that raises on a
-- bad option (a caller's bug) does not leak it either.  Open descriptors
-- are counted in /proc/self/fd.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local ssh = require("cutover.core.ssh")
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")

local function open_fds()
    collectgarbage()
    collectgarbage()
    return #assert(fs.list("/proc/self/fd"))
end

T.test("proc.connect_command gives a socket object, not a number", function()
    local sock, helper = assert(proc.connect_command("cat"))
    T.eq(type(sock), "userdata", "type of the socket")
    helper:stop()
end)

T.test("a ProxyCommand socket that nobody takes is closed when dropped", function()
    local before = open_fds()
    -- in a function of its own, so no register of this one holds it
    local function start()
        local _, helper = assert(proc.connect_command("cat"))
        return helper
    end
    local helper = start()
    T.eq(#assert(fs.list("/proc/self/fd")), before + 1, "the socket was open")
    helper:stop()
    T.eq(open_fds(), before, "open descriptors")
end)

T.test("ssh.connect{fd=} refuses a bare descriptor number", function()
    local ok, err = pcall(ssh.connect, { fd = 987654, host = "h", user = "u",
                                         known_hosts = "/nonexistent" })
    T.ok(not ok, "raised")
    T.match(tostring(err), "fd", "names the option")
end)

local bad_options = {
    { what = "no host", opts = { user = "u", known_hosts = "/nonexistent" } },
    { what = "no user", opts = { host = "h", known_hosts = "/nonexistent" } },
    { what = "no known_hosts", opts = { host = "h", user = "u" } },
    { what = "a port that is no number", opts = { host = "h", user = "u", port = "x",
                                                  known_hosts = "/nonexistent" } },
}

for _, case in ipairs(bad_options) do
    T.test("ssh.connect{fd=} with " .. case.what .. ": raises, and the socket is closed", function()
        local before = open_fds()
        local sock, helper = assert(proc.connect_command("cat"))
        case.opts.fd = sock
        local ok = pcall(ssh.connect, case.opts)
        T.ok(not ok, "ssh.connect raised")
        sock = nil  -- luacheck: ignore (dropped: only ssh.connect held it)
        helper:stop()
        T.eq(open_fds(), before, "open descriptors")
    end)
end

T.done()
