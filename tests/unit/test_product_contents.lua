-- The shipped binary holds only what users run (issue 11): code that
-- exists for the tests or the simulated lab lives in the test programs.
-- Checked on the built files themselves (their bytes) and on the
-- embedded modules and C functions a state sees.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local fs = require("cutover.core.fs")

-- (testlib's contains would print the whole binary on failure)
local function holds(data, needle) return data:find(needle, 1, true) ~= nil end

local function bytes(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("a")
    f:close()
    return data
end

-- cutover-lab is built next to cutover (one CMake build folder).
local lab_binary = binary:gsub("[^/]*$", "") .. "cutover-lab"

T.test("embedded modules are precompiled bytecode that keeps file names and lines", function()
    -- a Lua 5.4 chunk's header: ESC "Lua", version 0x54, format 0
    T.ok(holds(bytes(binary), "\27LuaT\0"), "the binary holds precompiled chunks")
    -- debug information kept: tracebacks and errors name the same file
    -- and line as the source would
    local info = debug.getinfo(require("cutover.journal").open, "S")
    T.eq(info.source, "@lua/cutover/journal.lua", "chunk name")
    local line = 0
    for l in io.lines(tests_dir .. "/../lua/cutover/journal.lua") do
        line = line + 1
        if l:find("^function M%.open%(") then break end
    end
    T.eq(info.linedefined, line, "journal.open's line")
    local ok, err = pcall(require("cutover.journal").open, {})
    T.ok(not ok and tostring(err):find("lua/cutover/journal.lua:%d+:") ~= nil,
         "an error inside names file and line: " .. tostring(err))
end)

T.test("cmdparse (the tests' cmd.exe reference) is not embedded", function()
    T.ok(not holds(bytes(binary), "cutover/windows/cmdparse.lua"),
         "the cutover binary has no cutover/windows/cmdparse.lua")
    T.eq(package.preload["cutover.windows.cmdparse"], nil,
         "preload of cutover.windows.cmdparse")
    -- the unit test's copy is a file under tests/
    T.ok(fs.stat(tests_dir .. "/lib/cmdparse.lua"), "tests/lib/cmdparse.lua exists")
end)

T.test("the lab's TCP listeners are in cutover-lab, not in cutover", function()
    local net = require("cutover.core.net")
    T.eq(net.listen, nil, "core.net.listen")
    T.eq(type(net.connect), "function", "core.net.connect (mail_login uses it)")
    T.eq(type(net.probe_tcp), "function", "core.net.probe_tcp")
    local product = bytes(binary)
    T.ok(not holds(product, "cutover.net.listener"),
         "the cutover binary has no listener class")
    T.ok(holds(bytes(lab_binary), "lab.os.listener"),
         "the cutover-lab binary has the listener class")
end)

T.done()
