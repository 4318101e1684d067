-- faults.hook: crash points for the journal and resume tests, in the test
-- build cutover-faults only (the product has no way to kill itself).
-- CUTOVER_FAULT=kill-before:STEP@HOST or kill-after:STEP@HOST sends the
-- process SIGKILL at that step boundary, exactly as a crash would.
local runner = require("cutover.runner")
local sys = require("cutover.core.sys")

local fault = os.getenv("CUTOVER_FAULT")
if fault and fault ~= "" then
    runner.step_boundary = function(when, step, host)
        if fault == "kill-" .. when .. ":" .. step .. "@" .. host then
            sys.kill(sys.getpid(), 9)
        end
    end
end

return true
