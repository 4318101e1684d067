-- bench_diff: time and memory of diff.unified on two N-line files that
-- differ in a few lines (issue 11).  By hand, not a ctest:
--   /usr/bin/time -f '%e s %M KB' build/cutover_luatest \
--       tests/tools/bench_diff.lua [LINES] [CHANGES]
-- Prints the seconds in the diff and the bytes Lua allocated during it
-- (the collector stopped: a bound on the peak).
local n = tonumber((...)) or 2000
local changes = tonumber(select(2, ...)) or 5
local diff = require("cutover.diff")
local a, b = {}, {}
for i = 1, n do a[i] = "line " .. i .. " of the configuration file" end
for i = 1, n do b[i] = a[i] end
for c = 1, changes do
    local at = (c * 7919) % n + 1
    b[at] = "changed " .. c
end
local ta, tb = table.concat(a, "\n") .. "\n", table.concat(b, "\n") .. "\n"
collectgarbage("collect")
collectgarbage("stop")
local m0 = collectgarbage("count")
local t0 = os.clock()
local out = diff.unified(ta, tb)
local t1 = os.clock()
local m1 = collectgarbage("count")
collectgarbage("restart")
local lines = 0
for _ in out:gmatch("\n") do lines = lines + 1 end
print(string.format("%d lines, %d changed: %.3f s cpu, %.1f MB allocated, diff %d lines",
    n, changes, t1 - t0, (m1 - m0) / 1024, lines))
