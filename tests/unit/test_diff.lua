-- diff.unified (issue 11): Myers' O(ND) edit script with a bounded cost.
-- Exact hunks for small cases; a property check that the diff, applied to
-- the old text, gives the new one and is minimal; large files with few
-- changes give small diffs; past the cap, a coarse diff that says so.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local diff = require("cutover.diff")

local function lines_of(s)
    local t = {}
    for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
    local tail = s:match("([^\n]+)$")
    if tail then t[#t + 1] = tail end
    return t, s ~= "" and s:sub(-1) ~= "\n"
end

-- A small patch(1): applies a unified diff to `old`; raises when a context
-- or removed line does not match.  Returns the new text and the number of
-- removed and added lines.
local function apply(old, d)
    if d == "" then return old, 0 end
    local a, a_nonl = lines_of(old)
    local out, out_nonl = {}, false
    local ai = 1 -- next line of a to copy
    local edits = 0
    local rows = lines_of(d)
    local r = 1
    while r <= #rows and not rows[r]:find("^%-%-%- ") do r = r + 1 end
    assert(rows[r] and rows[r + 1]:find("^%+%+%+ "), "no header")
    r = r + 2
    local last -- the side of the line the next "\ No newline" is about
    while r <= #rows do
        local row = rows[r]
        local sa, na = row:match("^@@ %-(%d+),(%d+) %+%d+,%d+ @@$")
        if sa then
            sa, na = tonumber(sa), tonumber(na)
            local first = na == 0 and sa + 1 or sa
            assert(first >= ai, "hunks out of order at " .. row)
            for q = ai, first - 1 do out[#out + 1] = a[q] end
            ai = first
        else
            local op, text = row:sub(1, 1), row:sub(2)
            if op == " " or op == "-" then
                assert(a[ai] == text, "line " .. ai .. " is " .. tostring(a[ai]) .. ", hunk says " .. text)
                ai = ai + 1
                if op == " " then out[#out + 1] = text end
                if op == "-" then edits = edits + 1 end
                last = op
            elseif op == "+" then
                out[#out + 1] = text; edits = edits + 1; last = op
            elseif row == "\\ No newline at end of file" then
                if last ~= "-" then out_nonl = true end
            else error("bad diff row: " .. row) end
        end
        r = r + 1
    end
    for q = ai, #a do out[#out + 1] = a[q] end
    if ai <= #a then out_nonl = a_nonl end
    local s = table.concat(out, "\n")
    if #out > 0 and not out_nonl then s = s .. "\n" end
    return s, edits
end

-- The length of a longest common subsequence (the plain table, for checks).
local function lcs_len(a, b)
    local prev = {}
    for j = 0, #b do prev[j] = 0 end
    for i = 1, #a do
        local cur = { [0] = 0 }
        for j = 1, #b do
            if a[i] == b[j] then cur[j] = prev[j - 1] + 1
            else cur[j] = math.max(prev[j], cur[j - 1]) end
        end
        prev = cur
    end
    return prev[#b]
end

T.test("small cases: exact hunks", function()
    T.eq(diff.unified("a\n", "a\n"), "", "equal texts")
    T.eq(diff.unified("account: x\npassword: y\nstate: RUNNING\n",
                      "account: x\npassword: y\nstate: STOPPED\n", "s", "s"),
         "--- s\n+++ s\n@@ -1,3 +1,3 @@\n account: x\n password: y\n-state: RUNNING\n+state: STOPPED\n",
         "one line replaced")
    T.eq(diff.unified("", "x\ny\n", "f", "f"), "--- f\n+++ f\n@@ -0,0 +1,2 @@\n+x\n+y\n", "from empty")
    T.eq(diff.unified("x\n", "", "f", "f"), "--- f\n+++ f\n@@ -1,1 +0,0 @@\n-x\n", "to empty")
    T.eq(diff.unified("a\nb\nc\n", "a\nc\n"), "--- before\n+++ after\n@@ -1,3 +1,2 @@\n a\n-b\n c\n",
         "one line removed")
    T.eq(diff.unified("a\nb", "a\nc"),
         "--- before\n+++ after\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n" ..
         "\\ No newline at end of file\n", "no newline at the end")
    -- the same last line with and without its newline is a change
    T.eq(diff.unified("a\nb", "a\nb\n"),
         "--- before\n+++ after\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
         "newline added")
    local a, b = {}, {}
    for i = 1, 20 do a[i] = "l" .. i; b[i] = "l" .. i end
    b[2] = "two"; b[18] = "eighteen"
    T.eq(diff.unified(table.concat(a, "\n") .. "\n", table.concat(b, "\n") .. "\n"),
         "--- before\n+++ after\n@@ -1,5 +1,5 @@\n l1\n-l2\n+two\n l3\n l4\n l5\n" ..
         "@@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+eighteen\n l19\n l20\n", "two hunks")
    -- changes 6 lines apart share one hunk
    b[18] = "l18"; b[8] = "eight"
    T.eq(diff.unified(table.concat(a, "\n") .. "\n", table.concat(b, "\n") .. "\n"),
         "--- before\n+++ after\n@@ -1,11 +1,11 @@\n l1\n-l2\n+two\n l3\n l4\n l5\n l6\n l7\n" ..
         "-l8\n+eight\n l9\n l10\n l11\n", "one hunk")
end)

T.test("property: the diff applied to the old text gives the new one, minimal", function()
    local seed = 20261205
    local function rand(n) -- a fixed linear congruential sequence
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
    end
    local words = { "a", "b", "c", "d", "", "a b" }
    local function text(len)
        local t = {}
        for i = 1, len do t[i] = words[rand(#words)] end
        local s = table.concat(t, "\n")
        if len > 0 and rand(4) > 1 then s = s .. "\n" end
        return s
    end
    for round = 1, 600 do
        local old, new = text(rand(25) - 1), text(rand(25) - 1)
        if round % 3 == 0 then -- a few edits of the old text
            local t = lines_of(old)
            for _ = 1, rand(4) do
                local at = rand(#t + 1)
                if rand(2) == 1 and t[at] then table.remove(t, at)
                else table.insert(t, at, words[rand(#words)]) end
            end
            new = table.concat(t, "\n") .. (rand(3) > 1 and #t > 0 and "\n" or "")
        end
        local d = diff.unified(old, new)
        local ok, got, edits = pcall(apply, old, d)
        if not ok or got ~= new then
            error(string.format("round %d: old %q new %q diff %q: %s", round, old, new, d,
                  ok and string.format("applied gives %q", got) or got))
        end
        -- minimal: removed + added = n + m - 2 * LCS (a line without its
        -- newline differs from the same line with one)
        local a, a_nonl = lines_of(old)
        local b, b_nonl = lines_of(new)
        if a_nonl then a[#a] = a[#a] .. "\0" end
        if b_nonl then b[#b] = b[#b] .. "\0" end
        T.eq(edits, #a + #b - 2 * lcs_len(a, b), string.format("round %d: edits of %q -> %q", round, old, new))
    end
end)

local function file_of(n, changes, fmt)
    local a, b = {}, {}
    for i = 1, n do a[i] = (fmt or "line %d of the file"):format(i); b[i] = a[i] end
    for _, c in ipairs(changes) do b[c] = "changed " .. c end
    return table.concat(a, "\n") .. "\n", table.concat(b, "\n") .. "\n"
end

local function count_edits(d)
    local minus, plus = 0, 0
    for row in d:gmatch("[^\n]+") do
        if row:find("^%-") and not row:find("^%-%-%- ") then minus = minus + 1 end
        if row:find("^%+") and not row:find("^%+%+%+ ") then plus = plus + 1 end
    end
    return minus, plus
end

T.test("large files with few changes: a small diff, not a replacement", function()
    for _, n in ipairs({ 2000, 3000, 20000 }) do
        local changes = { 3, n // 3, n // 2, n - 1 }
        local old, new = file_of(n, changes)
        local d = diff.unified(old, new)
        local minus, plus = count_edits(d)
        T.eq(minus, #changes, n .. " lines: removed")
        T.eq(plus, #changes, n .. " lines: added")
        T.not_contains(d, "coarse", n .. " lines: exact")
        T.eq(apply(old, d), new, n .. " lines: applies")
    end
    -- lines inserted and removed shift the rest: still exact
    local a, b = {}, {}
    for i = 1, 3000 do a[i] = "x" .. i end
    for i = 1, 3000 do if i % 500 ~= 0 then b[#b + 1] = a[i] end end
    table.insert(b, 10, "new")
    local old, new = table.concat(a, "\n") .. "\n", table.concat(b, "\n") .. "\n"
    local d = diff.unified(old, new)
    local minus, plus = count_edits(d)
    T.eq(minus, 6, "shifted: removed")
    T.eq(plus, 1, "shifted: added")
end)

T.test("past the cap: a coarse diff that says so, and still applies", function()
    -- every other line differs: the edit distance is far past the cap
    local n = 4 * diff.MAX_EDITS
    local a, b = {}, {}
    for i = 1, n do
        a[i] = "same " .. i
        b[i] = i % 2 == 0 and ("other " .. i) or a[i]
    end
    a[1], b[1] = "head", "head"
    local old, new = table.concat(a, "\n") .. "\n", table.concat(b, "\n") .. "\n"
    local d = diff.unified(old, new)
    T.match(d, "^%(coarse diff: ", "labelled")
    T.eq(apply(old, d), new, "applies")
    local minus = count_edits(d)
    T.ok(minus < n, "the common first line stays context")
    -- the small cases keep the exact diff
    T.not_contains(diff.unified("a\n", "b\n"), "coarse", "small: exact")
end)

T.done()
