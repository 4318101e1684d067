-- The test harness itself: a test that is killed (ctest's timeout sends
-- SIGKILL) leaves nothing running, even processes that left its session.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local loop = require("cutover.core.loop")
local proc = require("cutover.core.proc")

local function state_of(pid)
    local stat = T.read("/proc/" .. pid .. "/stat")
    return stat and stat:match("^%d+ %b() (%a)")
end

-- Waits (bounded) until pred() holds; returns whether it did.
local function wait_for(pred)
    for _ = 1, 200 do
        if pred() then return true end
        loop.sleep(0.05)
    end
    return pred()
end

T.test("a SIGKILLed test leaves no process behind, not even a setsid daemon", function()
    local d = T.tmpdir()
    local luatest = binary:gsub("cutover$", "cutover_luatest")
    -- the inner test starts a daemon in its own session (as sshd and the
    -- lab hosts do), then waits to be killed
    T.write(d .. "/inner.lua", [[
        local proc = require("cutover.core.proc")
        local loop = require("cutover.core.loop")
        local dir = ...
        assert(proc.run({ shell = "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > " .. dir .. "/daemon" }))
        loop.sleep(300)
    ]])
    local r = assert(proc.run({ shell = "setsid " .. luatest .. " " .. d .. "/inner.lua " .. d ..
                                " </dev/null >/dev/null 2>&1 & echo $!" }))
    local tester = tonumber(r.stdout:match("%d+"))
    T.ok(tester, "the inner test started")
    local daemon
    T.ok(wait_for(function()
        daemon = tonumber(T.read(d .. "/daemon") or "")
        return daemon ~= nil
    end), "the inner test started its daemon")
    local s = state_of(daemon)
    T.ok(s ~= nil and s ~= "Z", "the daemon runs (state " .. tostring(s) .. ")")
    proc.run({ argv = { "kill", "-KILL", tostring(tester) } })
    local gone = wait_for(function()
        local now = state_of(daemon)
        return now == nil or now == "Z"
    end)
    if not gone then proc.run({ argv = { "kill", "-KILL", tostring(daemon) } }) end
    T.ok(gone, "the daemon was stopped once its test was killed")
end)

T.done()
