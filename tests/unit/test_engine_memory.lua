-- Unit (issue 13, the soak's memory per connected host): a host that
-- gives up its slot leaves state that lived long enough to be old, which
-- the generational collector returns only in a full collection.
-- Run:collect_finished (engine/play.lua) runs one once the heap, measured
-- after a minor collection, has grown by a sixteenth (at least 128 KB)
-- since the last, and not before; young garbage (what the running hosts
-- make and minor collections return) does not set it off.
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

-- (the heap of this process is past 2 MB, so a sixteenth of it is what
-- decides here; the 128 KB floor is for smaller heaps)
T.test("the threshold: a sixteenth of the heap, at least 128 KB", function()
    for _, case in ipairs({ { -64, false }, { 96, true } }) do
        local run = new_run()
        collectgarbage("collect")
        run:collect_finished()
        local base = run.heap_after_collect
        local threshold = math.max(128, base / 16)
        local keep = old_tables(math.floor(threshold + case[1]))
        keep = nil
        local before = collectgarbage("count")
        run:collect_finished()
        local collected = run.heap_after_collect ~= base
        T.eq(collected, case[2], string.format("old garbage of %d KB against a threshold of %.0f KB " ..
            "(heap %.0f KB): %.0f KB before, %.0f KB after", math.floor(threshold + case[1]), threshold,
            base, before, collectgarbage("count")))
        T.eq(keep, nil, "(dropped)")
    end
end)

T.test("young garbage does not set off a full collection", function()
    local run = new_run()
    collectgarbage("collect")
    run:collect_finished()
    local base = run.heap_after_collect
    -- 512 KB of tables dropped at once, the collector held back: the
    -- heap counts them until a minor collection, which returns them
    collectgarbage("stop")
    local made = 0
    for i = 1, 512 * 1024 // 64 do made = made + #{ i } end
    local swollen = collectgarbage("count")
    collectgarbage("restart")
    run:collect_finished()   -- before anything allocates (which would run a step itself)
    T.ok(swollen - base > 400, string.format("the young garbage is counted: %.0f KB over", swollen - base))
    T.eq(run.heap_after_collect, base, "the baseline is unchanged: no full collection ran")
    T.ok(collectgarbage("count") - base < 128, "the minor collection returned it")
    T.eq(made, 512 * 1024 // 64, "(every table was made)")
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
