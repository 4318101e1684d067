-- Unit (issue 13, the soak's memory per connected host): a host that
-- gives up its slot leaves state that lived long enough to be old, which
-- the generational collector returns only in a full collection.
-- Run:collect_finished (engine/play.lua) runs one once the heap has grown
-- by a sixteenth (at least 128 KB) since the last, and not before.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local play = require("cutover.engine.play")

local function new_run()
    return setmetatable({}, { __index = play.methods })
end

-- About kb KB of tables, made old: a full collection while they are
-- still referenced promotes them, as a host's state is while it runs.
local function old_tables(kb)
    local t = {}
    for i = 1, kb * 1024 // 64 do t[i] = { i } end
    collectgarbage("collect")
    return t
end

T.test("the collector runs in generational mode here, as in cutover", function()
    local was = collectgarbage("generational")
    T.eq(was, "generational", "the mode the controller sets (core/host.c)")
end)

T.test("old garbage past the threshold is returned at the next finished host", function()
    local run = new_run()
    collectgarbage("collect")
    run:collect_finished()           -- the first host: the baseline only
    local base = run.heap_after_collect
    T.ok(base, "a baseline is taken")
    local state = old_tables(2048)   -- 2 MB of a host's state
    state = nil                      -- the host is done
    local before = collectgarbage("count")
    T.ok(before - base > 1500, string.format("the old garbage stays after minor steps: %.0f KB over", before - base))
    run:collect_finished()
    local after = collectgarbage("count")
    T.ok(before - after > 1500, string.format("returned: %.0f KB before, %.0f KB after", before, after))
    T.ok(math.abs(run.heap_after_collect - after) < 64, "the new baseline is the heap after the collection")
    T.eq(state, nil, "(the state was dropped)")
end)

T.test("below the threshold nothing is collected", function()
    local run = new_run()
    collectgarbage("collect")
    run:collect_finished()
    local base = run.heap_after_collect
    local keep = old_tables(32)      -- 32 KB: under 128 KB and a sixteenth
    keep = nil
    local before = collectgarbage("count")
    run:collect_finished()
    T.eq(run.heap_after_collect, base, "the baseline is unchanged: no collection ran")
    T.ok(collectgarbage("count") >= before - 8, "the old garbage is still there")
    T.eq(keep, nil, "(dropped)")
end)

T.test("a batch's end sets the baseline after its own full collection", function()
    local run = new_run()
    run.hosts = {}
    local keep = old_tables(512)
    keep = nil
    run:release_batch({})
    local now = collectgarbage("count")
    T.ok(math.abs(run.heap_after_collect - now) < 64, "the baseline is the heap after the batch's collection")
    T.eq(keep, nil, "(dropped)")
end)

T.done()
