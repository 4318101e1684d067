-- convert.ansible.regex: Python regular expressions (lineinfile's
-- regexp, insertafter, insertbefore) as Lua patterns.
local M = {}

-- The classes \s \d \w (and their negations) outside a set and inside one
local CLASS = { s = "%s", S = "%S", d = "%d", D = "%D", w = "[%w_]", W = "[^%w_]" }
local IN_SET = { s = "%s", S = "%S", d = "%d", D = "%D", w = "%w_" }

-- The escape \e as Lua pattern text: a class of classes, or the quoted
-- punctuation character; nil, why for any other (where: " in a set").
local function escape_to_lua(e, classes, where)
    if classes[e] then return classes[e] end
    if e:match("%p") then return "%" .. e end
    return nil, "the regular expression '\\" .. e .. "'" .. where
end

-- The set [...] that starts at re[i] as a Lua set: returns it and where
-- the expression goes on, or nil, why.
local function set_to_lua(re, i)
    local n = #re
    local j = i + 1
    local set = { "[" }
    if re:sub(j, j) == "^" then set[#set + 1] = "^"; j = j + 1 end
    if re:sub(j, j) == "]" then set[#set + 1] = "%]"; j = j + 1 end
    while j <= n and re:sub(j, j) ~= "]" do
        local d = re:sub(j, j)
        if d == "\\" then
            local piece, why = escape_to_lua(re:sub(j + 1, j + 1), IN_SET, " in a set")
            if not piece then return nil, why end
            set[#set + 1] = piece
            j = j + 2
        else
            if d == "%" then d = "%%" end
            set[#set + 1] = d
            j = j + 1
        end
    end
    if j > n then return nil, "an unclosed '['" end
    set[#set + 1] = "]"
    return table.concat(set), j + 1
end

-- A Python regular expression as a Lua pattern, for the common subset
-- (anchors, classes \s \d \w, sets, . * + ?, plain groups); nil, why for
-- the rest (alternation, counted or lazy repeats, a repeated group, ...).
function M.regex_to_lua(re)
    local out, i, n = {}, 1, #re
    local depth, last_was_group = 0, false
    while i <= n do
        local c = re:sub(i, i)
        local was_group = last_was_group
        last_was_group = false
        if c == "\\" then
            local piece, why = escape_to_lua(re:sub(i + 1, i + 1), CLASS, "")
            if not piece then return nil, why end
            out[#out + 1] = piece
            i = i + 2
        elseif c == "[" then
            local set, after = set_to_lua(re, i)
            if not set then return nil, after end
            out[#out + 1] = set
            i = after
        elseif c == "(" then
            if re:sub(i + 1, i + 1) == "?" then return nil, "a '(?' group" end
            depth = depth + 1
            out[#out + 1] = "("
            i = i + 1
        elseif c == ")" then
            depth = depth - 1
            if depth < 0 then return nil, "an unbalanced ')'" end
            out[#out + 1] = ")"
            last_was_group = true
            i = i + 1
        elseif c == "|" then
            return nil, "alternation '|'"
        elseif c == "{" and re:sub(i):match("^{%d*,?%d*}") then
            return nil, "a counted repeat '" .. re:sub(i):match("^{%d*,?%d*}") .. "'"
        elseif c == "*" or c == "+" or c == "?" then
            if was_group then return nil, "a repeated group" end
            if i == 1 then return nil, "a repeat with nothing before it" end
            if re:sub(i + 1, i + 1) == "?" then
                if c ~= "*" then return nil, "a lazy repeat '" .. c .. "?'" end
                out[#out + 1] = "-"
                i = i + 2
            else
                out[#out + 1] = c
                i = i + 1
            end
        elseif c == "^" then
            if i ~= 1 then return nil, "'^' inside the expression" end
            out[#out + 1] = "^"
            i = i + 1
        elseif c == "$" then
            if i ~= n then return nil, "'$' inside the expression" end
            out[#out + 1] = "$"
            i = i + 1
        elseif c == "%" or c == "-" then
            out[#out + 1] = "%" .. c
            i = i + 1
        else
            out[#out + 1] = c
            i = i + 1
        end
    end
    if depth ~= 0 then return nil, "an unclosed '('" end
    return table.concat(out)
end

return M
