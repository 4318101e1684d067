-- One glob matcher (issue 11): core.pattern.glob_match, in C, is the one
-- known_hosts host patterns use (core/knownhosts.c) and the one Lua uses
-- (util.glob_match: inventory host patterns, ssh_config Host and Include).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local pattern = require("cutover.core.pattern")
local util = require("cutover.util")

T.test("util.glob_match is core.pattern.glob_match", function()
    T.eq(type(pattern.glob_match), "function", "core.pattern.glob_match")
    T.eq(util.glob_match, pattern.glob_match, "util.glob_match")
end)

T.test("glob_match: * and ?, whole text, bytes as they are", function()
    local cases = {
        { "*", "", true }, { "", "", true }, { "", "a", false },
        { "a*", "abc", true }, { "*c", "abc", true }, { "a?c", "abc", true },
        { "a?c", "ac", false }, { "*.example.com", "db.example.com", true },
        { "*.example.com", "example.com", false }, { "[h]:22", "[h]:22", true },
        { "a\0b", "a\0b", true }, { "a\0b", "a\0c", false }, { "a*", "a\0", true },
        { "?", "\0", true }, { "a", "a\0", false }, { "ABC", "abc", false },
        { "**a**", "xxa", true }, { "*?*?", "a", false },
    }
    for _, c in ipairs(cases) do
        T.eq(pattern.glob_match(c[1], c[2]), c[3],
             string.format("glob %q on %q", c[1], c[2]))
    end
end)

T.test("glob_match: many stars stay linear in the text", function()
    local stars = string.rep("*a", 60) .. "b"
    T.eq(pattern.glob_match(stars, string.rep("a", 4000)), false, "no match")
    T.eq(pattern.glob_match(stars, string.rep("a", 4000) .. "b"), true, "a match")
end)

T.test("glob_match: misuse raises", function()
    T.ok(not pcall(pattern.glob_match, nil, "a"), "no glob")
    T.ok(not pcall(pattern.glob_match, "a"), "no text")
end)

T.done()
