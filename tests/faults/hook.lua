-- faults.hook: crash points for the journal and resume tests, in the test
-- build cutover-faults only (the product has no way to kill itself).
-- CUTOVER_FAULT=kill-before:STEP@HOST or kill-after:STEP@HOST sends the
-- process SIGKILL at that step boundary, exactly as a crash would.
-- kill-after lets the loop take one turn first, so the step's result is
-- on disk (a result joins the journal's group, committed at the end of
-- the loop's turn): the crash falls between the steps.
-- kill-unrecorded:STEP@HOST kills at once instead, in the moment when
-- the result is written but not yet committed (the step then reads as
-- in flight, and resume must treat it so).
-- CUTOVER_FAULT=wait-before-claim:FILE makes a resume stop between
-- choosing its run and claiming it: it writes FILE.waiting, then waits
-- (30 s at most) until FILE exists.
local engine = require("cutover.engine")
local history = require("cutover.history")
local sys = require("cutover.core.sys")
local fs = require("cutover.core.fs")
local loop = require("cutover.core.loop")

local fault = os.getenv("CUTOVER_FAULT")
local gate = fault and fault:match("^wait%-before%-claim:(.+)$")
if gate then
    history.before_claim = function()
        fs.write(gate .. ".waiting", "")
        for _ = 1, 1500 do
            if fs.stat(gate) then break end
            loop.sleep(0.02)
        end
    end
elseif fault and fault ~= "" then
    engine.step_boundary = function(when, step, host)
        if when == "after" and fault == "kill-unrecorded:" .. step .. "@" .. host then
            sys.kill(sys.getpid(), 9)
        elseif fault == "kill-" .. when .. ":" .. step .. "@" .. host then
            if when == "after" then loop.sleep(0.001) end
            sys.kill(sys.getpid(), 9)
        end
    end
end

return true
