-- lineinfile's and blockinfile's edit (lua/cutover/actions/lib/textedit.lua):
-- a pure function of the file's text, so every case is exact.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local E = require("cutover.actions.lib.textedit")

local function line(text, o)
    o.state = o.state or "present"
    local new, msg = E.edit_line(text, o)
    return new, msg
end

T.test("lineinfile: regexp replaces the last matching line, firstmatch the first", function()
    T.eq(line("a=1\nb=2\nb=3\n", { regexp = "^b=", line = "b=9" }), "a=1\nb=2\nb=9\n", "last match")
    T.eq(line("a=1\nb=2\nb=3\n", { regexp = "^b=", line = "b=9", firstmatch = true }), "a=1\nb=9\nb=3\n", "first")
    local same, msg = line("a=1\nb=9\n", { regexp = "^b=", line = "b=9" })
    T.eq(same, "a=1\nb=9\n", "already there: unchanged")
    T.eq(msg, "line already present", "message")
end)

T.test("lineinfile: no match inserts at the end, after or before a pattern, or at BOF", function()
    T.eq(line("a\nb\n", { regexp = "^z", line = "z" }), "a\nb\nz\n", "EOF by default")
    T.eq(line("a\nb\nc\n", { line = "x", insertafter = "^a" }), "a\nx\nb\nc\n", "after")
    T.eq(line("a\nb\na\n", { line = "x", insertafter = "^a" }), "a\nb\na\nx\n", "after the last match")
    T.eq(line("a\nb\na\n", { line = "x", insertafter = "^a", firstmatch = true }), "a\nx\nb\na\n", "first")
    T.eq(line("a\nb\nc\n", { line = "x", insertbefore = "^c" }), "a\nb\nx\nc\n", "before")
    T.eq(line("a\nb\n", { line = "x", insertbefore = "BOF" }), "x\na\nb\n", "BOF")
    T.eq(line("a\nb\n", { line = "x", insertafter = "^nothing" }), "a\nb\nx\n", "unmatched insertafter: EOF")
    T.eq(line("a\nb\n", { line = "x", insertbefore = "^nothing" }), "a\nb\nx\n", "unmatched insertbefore: EOF")
    T.eq(line("", { line = "x" }), "x\n", "an empty file")
end)

T.test("lineinfile: a line already in the file is not added again", function()
    local new, msg = line("a\nx\nb\n", { regexp = "^zzz", line = "x" })
    T.eq(new, "a\nx\nb\n", "unchanged")
    T.eq(msg, "line already present", "message")
    T.eq(line("a\nx\n", { line = "x", insertbefore = "BOF" }), "a\nx\n", "without regexp too")
end)

T.test("lineinfile: a file without a final newline keeps that, unless a line is appended", function()
    T.eq(line("a\nb", { regexp = "^a", line = "A" }), "A\nb", "replace keeps no final newline")
    T.eq(line("a\nb", { line = "c" }), "a\nb\nc\n", "append ends the old last line and the new one")
    T.eq(line("a\nb", { line = "c", insertbefore = "^b" }), "a\nc\nb", "insert in the middle keeps it")
end)

T.test("lineinfile: search_string is plain text; Lua pattern specials are literal there", function()
    T.eq(line("x = a.b\ny\n", { search_string = "a.b", line = "x = 1" }), "x = 1\ny\n", "plain")
    T.eq(line("x = aXb\n", { search_string = "a.b", line = "x = 1" }), "x = aXb\nx = 1\n", "a dot is a dot")
end)

T.test("lineinfile: backrefs fill %1 from the captures; no match changes nothing", function()
    T.eq(line("port 22\n", { regexp = "^port (%d+)", line = "Port %1 # was", backrefs = true }),
         "Port 22 # was\n", "%1")
    T.eq(line("k=v\n", { regexp = "^(%w+)=(%w+)", line = "%2=%1 (%0) 100%%", backrefs = true }),
         "v=k (k=v) 100%\n", "%2, %0 and %%")
    local new, msg = line("a\n", { regexp = "^zz(.)", line = "%1", backrefs = true })
    T.eq(new, "a\n", "no match: unchanged")
    T.contains(msg, "backrefs", "message says why")
    local ok, err = pcall(E.edit_line, "ab\n", { state = "present", regexp = "^(a)", line = "%3", backrefs = true })
    T.eq(ok, false, "a capture that does not exist")
    T.contains(err, "%3 names no capture", "message")
end)

T.test("lineinfile: absent removes every selected line", function()
    T.eq(line("a\n#b\nb=1\nb=2\n", { state = "absent", regexp = "^b=" }), "a\n#b\n", "regexp")
    T.eq(line("a\nx\nx\n", { state = "absent", line = "x" }), "a\n", "exact line")
    local new, msg = line("a\n", { state = "absent", regexp = "^b" })
    T.eq(new, "a\n", "nothing to remove")
    T.eq(msg, "no line matched", "message")
    T.eq(line("x\n", { state = "absent", line = "x" }), "", "the last line goes")
end)

T.test("lineinfile: regular-expression syntax is refused with the Lua pattern to write", function()
    local ok, err = E.check_pattern("regexp", "^\\s*PermitRootLogin")
    T.eq(ok, nil, "refused")
    T.contains(err, "write '%s'", "names the Lua class")
    ok, err = E.check_pattern("regexp", "^(yes|no)")
    T.eq(ok, nil, "alternation refused")
    T.contains(err, "alternation", "says so")
    ok, err = E.check_pattern("regexp", "[a")
    T.eq(ok, nil, "malformed pattern refused")
    T.contains(err, "regexp: ", "names the argument")
    T.eq(E.check_pattern("regexp", "^%s*Port%s+%d+$"), true, "a Lua pattern passes")
end)

local function block(text, o)
    o.begin_marker = o.begin_marker or "# BEGIN M"
    o.end_marker = o.end_marker or "# END M"
    o.state = o.state or "present"
    return E.edit_block(text, o)
end

T.test("blockinfile: inserted at the end, after, before or at BOF; then replaced in place", function()
    T.eq(block("a\n", { block = "x\ny" }), "a\n# BEGIN M\nx\ny\n# END M\n", "EOF")
    T.eq(block("a\nb\n", { block = "x\n", insertafter = "^a" }), "a\n# BEGIN M\nx\n# END M\nb\n", "after")
    T.eq(block("a\nb\n", { block = "x", insertbefore = "BOF" }), "# BEGIN M\nx\n# END M\na\nb\n", "BOF")
    local have = "a\n# BEGIN M\nold\n# END M\nb\n"
    T.eq(block(have, { block = "new1\nnew2" }), "a\n# BEGIN M\nnew1\nnew2\n# END M\nb\n", "replaced in place")
    local same, msg = block("a\n# BEGIN M\nx\n# END M\n", { block = "x\n" })
    T.eq(same, "a\n# BEGIN M\nx\n# END M\n", "same block: unchanged")
    T.eq(msg, "block already present", "message")
    T.eq(block("a", { block = "x" }), "a\n# BEGIN M\nx\n# END M\n",
        "no final newline: the block starts on its own line")
end)

T.test("blockinfile: absent or an empty block removes it with its markers", function()
    local have = "a\n# BEGIN M\nx\n# END M\nb\n"
    T.eq(block(have, { state = "absent" }), "a\nb\n", "absent")
    T.eq(block(have, { block = "" }), "a\nb\n", "empty block")
    local new, msg = block("a\n", { state = "absent" })
    T.eq(new, "a\n", "no block: unchanged")
    T.eq(msg, "no block to remove", "message")
end)

T.test("blockinfile: a lone marker is an error naming its line, not a guess", function()
    local new, err = block("a\n# BEGIN M\nx\n", { block = "y" })
    T.eq(new, nil, "begin without end")
    T.contains(err, "line 2 holds the begin marker", "names the line")
    new, err = block("a\n# END M\n", { block = "y" })
    T.eq(new, nil, "end without begin")
    T.contains(err, "line 2 holds the end marker", "names the line")
    -- an end marker before the begin marker pairs with nothing
    new, err = block("# END M\n# BEGIN M\n", { block = "y" })
    T.eq(new, nil, "end before begin")
end)

T.test("blockinfile: CRLF marker lines are recognised", function()
    T.eq(block("a\r\n# BEGIN M\r\nx\r\n# END M\r\n", { block = "y" }), "a\r\n# BEGIN M\ny\n# END M\n",
         "the block is replaced")
end)

T.done()
