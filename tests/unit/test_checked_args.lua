-- A step's arguments with no template are rendered and checked once per
-- step (lua/cutover/engine/action.lua, checked_args); each host and
-- loop item must still get arguments of its own, so an action that
-- changes them on one host changes nothing for the next; arguments with
-- a template are rendered for each call.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local action = require("cutover.engine.action")
local vars = require("cutover.vars")
local util = require("cutover.util")

local function scope(values)
    return vars.new({ inventory_hostname = "web1" }, { { vars = values or {} } })
end

-- an action with a list, a mapping, a default and a validate()
local ACTION = {
    name = "fake",
    args = {
        names = { type = "list" }, opts = { type = "dict" }, mode = { type = "string", default = "fast" },
        count = { type = "int" },
    },
}
local validated = 0
ACTION.validate = function(args)
    validated = validated + 1
    if args.count and args.count < 0 then return "count must be 0 or more" end
end

T.test("arguments with no template: checked once, and every call gets its own copy", function()
    local step = { action = "fake", args = { names = { "a", "b" }, opts = { keep = { 1, 2 } }, count = "3" } }
    local original = util.deep_copy(step.args)
    validated = 0
    local first, errs = action.checked_args(ACTION, step, scope())
    T.eq(#errs, 0, "no error")
    T.eq(first.count, 3, "coerced to a whole number")
    T.eq(first.mode, "fast", "the default applied")
    -- the action changes what it was given, at every depth
    first.names[#first.names + 1] = "changed"
    first.opts.keep[1] = 99
    first.opts.extra = true
    first.count = 0
    first.mode = nil
    for i = 1, 3 do
        local again, errs2 = action.checked_args(ACTION, step, scope({ unrelated = i }))
        T.eq(#errs2, 0, "no error, call " .. i)
        T.ok(again ~= first and again.names ~= first.names and again.opts ~= first.opts and
             again.opts.keep ~= first.opts.keep, "tables of its own, call " .. i)
        T.eq(table.concat(again.names, ","), "a,b", "the list as written, call " .. i)
        T.eq(again.opts.keep[1], 1, "the nested list as written, call " .. i)
        T.eq(again.opts.extra, nil, "no key added by another call, call " .. i)
        T.eq(again.count, 3, "the value as checked, call " .. i)
        T.eq(again.mode, "fast", "the default, call " .. i)
        again.names[1] = "z"
    end
    T.eq(validated, 1, "validate ran once for the step")
    T.ok(util.deep_equal(step.args, original), "the step's own arguments untouched")
end)

T.test("arguments with a template anywhere: rendered and checked for each call", function()
    local step = { action = "fake", args = { names = { "a", "{{ who }}" }, count = "1" } }
    validated = 0
    local one = action.checked_args(ACTION, step, scope({ who = "web1" }))
    local two = action.checked_args(ACTION, step, scope({ who = "web2" }))
    T.eq(one.names[2], "web1", "the first host's value")
    T.eq(two.names[2], "web2", "the second host's value")
    T.eq(validated, 2, "validate ran for each call")
end)

T.test("an error in arguments with no template: the same error for every call", function()
    local step = { action = "fake", args = { count = "-1" } }
    for i = 1, 2 do
        local _, errs = action.checked_args(ACTION, step, scope())
        T.eq(#errs, 1, "one error, call " .. i)
        T.contains(errs[1], "count must be 0 or more", "the message, call " .. i)
    end
end)

T.done()
