-- loop.before_wait: what runs at the end of the loop's turn.  The
-- journal's deferred commit is armed "first" and the reporters' held
-- lines "last" (lua/cutover/output.lua), so a line goes out only after
-- the commit of its turn; these are the rules that rests on.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local loop = require("cutover.core.loop")

T.test("each function once per turn, in arming order, the 'last' ones after the others", function()
    local log = {}
    local function mark(name) return function() log[#log + 1] = name end end
    local a, b, late = mark("a"), mark("b"), mark("late")
    loop.spawn(function()
        loop.before_wait(late, "last")
        loop.before_wait(a)
        loop.before_wait(b, "first")
        loop.before_wait(a)             -- armed already: still once
        loop.before_wait(late, "last")
        log[#log + 1] = "task"
    end)
    loop.run()
    T.eq(table.concat(log, " "), "task a b late", "the order")
end)

T.test("nothing runs before the turn ends; a function armed while the lists run", function()
    local log = {}
    local function late() log[#log + 1] = "late" end
    local again_done = false
    local function again()
        log[#log + 1] = "again"
        again_done = true
    end
    local function first()
        log[#log + 1] = "first"
        -- a 'last' one armed by a 'first' one runs in the same pass
        loop.before_wait(late, "last")
        -- a 'first' one armed again runs at the next turn's end
        if not again_done then loop.before_wait(again) end
    end
    loop.spawn(function()
        loop.before_wait(first)
        log[#log + 1] = "armed"
        loop.yield()                    -- the turn ends here
        log[#log + 1] = "next turn"
        loop.yield()
        log[#log + 1] = "done"
    end)
    loop.run()
    T.eq(table.concat(log, " "), "armed first late next turn again done", "the order")
end)

T.test("an error in one does not stop the others; misuse raises", function()
    local log = {}
    loop.spawn(function()
        loop.before_wait(function() error("boom") end)
        loop.before_wait(function() log[#log + 1] = "second" end)
        loop.before_wait(function() log[#log + 1] = "last" end, "last")
    end)
    loop.run()
    T.eq(table.concat(log, " "), "second last", "the others ran")
    T.ok(not pcall(loop.before_wait, "not a function"), "a function is needed")
    T.ok(not pcall(loop.before_wait, function() end, "sometime"), "first or last")
end)

T.test("what is armed runs when loop.run ends, even with no wait", function()
    local ran = false
    loop.spawn(function() loop.before_wait(function() ran = true end, "last") end)
    loop.run()
    T.ok(ran, "ran at the loop's end")
end)

T.done()
