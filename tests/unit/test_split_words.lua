-- Unit: util.split_words, the words of a `command:` step's text form
-- (whitespace separates; single and double quotes group; a backslash
-- escapes outside single quotes, and inside double quotes only before
-- " \ $ `; no expansion).  It takes runs of ordinary characters whole;
-- the cases below and a comparison with the character-at-a-time
-- version it replaced (kept here as the reference) pin its results.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local util = require("cutover.util")

-- The reference: the character-at-a-time version (before issue 13).
local reference = {}
function reference.split_words(line)
    local words, cur, i, n = {}, nil, 1, #line
    while i <= n do
        local c = line:sub(i, i)
        if c:match("%s") then
            if cur then words[#words + 1] = cur; cur = nil end
        elseif c == "'" then
            local j = line:find("'", i + 1, true)
            if not j then return nil, "unclosed single quote" end
            cur = (cur or "") .. line:sub(i + 1, j - 1)
            i = j
        elseif c == '"' then
            local buf, j = {}, i + 1
            while true do
                if j > n then return nil, "unclosed double quote" end
                local d = line:sub(j, j)
                if d == '"' then break end
                if d == "\\" and j < n and line:sub(j + 1, j + 1):match('["\\$`]') then
                    j = j + 1; d = line:sub(j, j)
                end
                buf[#buf + 1] = d
                j = j + 1
            end
            cur = (cur or "") .. table.concat(buf)
            i = j
        elseif c == "\\" and i < n then
            cur = (cur or "") .. line:sub(i + 1, i + 1)
            i = i + 1
        else
            cur = (cur or "") .. c
        end
        i = i + 1
    end
    if cur then words[#words + 1] = cur end
    return words
end

local function show(words, err)
    if not words then return "nil, " .. tostring(err) end
    local q = {}
    for i, w in ipairs(words) do q[i] = string.format("%q", w) end
    return "{" .. table.concat(q, ", ") .. "}"
end

T.test("words, quotes and escapes", function()
    local cases = {
        { "/bin/true", { "/bin/true" } },
        { "", {} },
        { "   ", {} },
        { "  ls  -l\t/tmp\n", { "ls", "-l", "/tmp" } },
        { "a'b c'd", { "ab cd" } },
        { "''", { "" } },
        { "echo '' x", { "echo", "", "x" } },
        { [[a"b \" \$x \n \\ \`"c]], { [[ab " $x \n \ `c]] } },
        { [[a\ b]], { "a b" } },
        { [[a\'b]], { "a'b" } },
        { [[ends\]], { [[ends\]] } },
        { [["$HOME" '$HOME' $HOME]], { "$HOME", "$HOME", "$HOME" } },
        { [[x"y"'z'w]], { "xyzw" } },
    }
    for _, c in ipairs(cases) do
        T.eq(show(util.split_words(c[1])), show(c[2]), "split of " .. string.format("%q", c[1]))
    end
    T.eq(show(util.split_words("echo 'open")), show(nil, "unclosed single quote"), "an open single quote")
    T.eq(show(util.split_words('echo "open')), show(nil, "unclosed double quote"), "an open double quote")
    T.eq(show(util.split_words('echo "open\\"')), show(nil, "unclosed double quote"), "an escaped closing quote")
end)

T.test("the same words as the character-at-a-time version, for 20,000 random lines", function()
    local alphabet = { "a", "b", " ", "\t", "'", '"', "\\", "$", "`", "\n", "x y", "\r", "\v", "\f", "\0",
                       "\200", "\255", "\195\169" }
    local seed = os.time()
    math.randomseed(seed)
    local differ
    for _ = 1, 20000 do
        local parts = {}
        for i = 1, math.random(0, 12) do parts[i] = alphabet[math.random(#alphabet)] end
        local line = table.concat(parts)
        local got, want = show(util.split_words(line)), show(reference.split_words(line))
        if got ~= want then differ = string.format("%q: %s, reference %s", line, got, want); break end
    end
    T.eq(differ, nil, "no line splits otherwise (seed " .. seed .. ")")
end)

T.done()
