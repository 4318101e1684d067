-- convert.jinja.template: a .j2 file as a cutover template ({{ }},
-- {% if/for %} and comments translated, the problems listed).
local common = require("cutover.convert.jinja.common")
local translate = require("cutover.convert.jinja.translate")
local LUA_KEYWORDS = common.LUA_KEYWORDS

local M = {}

-- line and column of byte i of s
local function where(s, i)
    local line, last = 1, 0
    for nl in s:sub(1, i - 1):gmatch("()\n") do line = line + 1; last = nl end
    return line, i - last
end

-- The {% %} tag at a..b on its line: Ansible renders with trim_blocks
-- (the newline after a tag goes) and without lstrip_blocks (the
-- indentation before it stays); cutover drops a tag-only line whole.
-- They agree only for a tag at the start of its own line: a problem is
-- reported for the others.
local function check_tag_line(text, a, b, rstrip, problem)
    local line_start = text:sub(1, a - 1):match("()[^\n]*$")
    local line_end = (text:find("\n", a, true) or (#text + 1)) - 1
    local line_text = text:sub(line_start, line_end)
    local only_tags = line_text:gsub("{%%.-%%}", ""):gsub("{#.-#}", ""):match("^%s*$") ~= nil
    if only_tags then
        local first = line_text:find("{[%%#]")
        if line_start + first - 1 == a and first > 1 and line_text:sub(first + 2, first + 2) ~= "-" then
            problem(a, "an indented '{% %}' tag (Ansible keeps the indentation, cutover drops the line): " ..
                "move it to the start of the line or write '{%-'")
        end
    elseif text:sub(b + 2, b + 2) == "\n" and not rstrip then
        problem(a, "a '{% %}' tag ending a line of text (Ansible drops the newline after it, cutover " ..
            "keeps it): write '-%}' or put the tag on its own line")
    end
end

-- The statement of a {% %} tag (inner: its text, at byte a) as
-- cutover's, with the stack of open if/for blocks; nil (and a problem
-- reported) for one that does not convert.
local function statement(inner, a, ctx, stack, problem)
    local word, rest = inner:match("^%s*([%a_]+)%s*(.-)%s*$")
    local emitted
    if word == "if" or word == "elif" then
        local lua, err = translate.condition(rest, ctx)
        if lua then emitted = word .. " " .. lua else problem(a, err .. " in '{% " .. word .. " " .. rest ..
            " %}'") end
        if word == "if" then stack[#stack + 1] = "if" end
    elseif word == "else" and rest == "" then
        if stack[#stack] ~= "if" then problem(a, "'{% else %}' of a for loop (runs when the list is empty)") end
        emitted = "else"
    elseif word == "endif" or word == "endfor" then
        if stack[#stack] ~= word:sub(4) then problem(a, "'{% " .. word .. " %}' without its opening tag") end
        stack[#stack] = nil
        emitted = "end"
    elseif word == "for" then
        stack[#stack + 1] = "for"
        local vars, list = rest:match("^([%a_][%w_]*)%s+in%s+(.+)$")
        if not vars then
            problem(a, "'{% for " .. rest .. " %}' (only 'for x in list')")
        elseif list:match("%sif%s") or list:match("%srecursive$") then
            problem(a, "a filtered or recursive for loop")
        elseif LUA_KEYWORDS[vars] then
            problem(a, "the loop variable name '" .. vars .. "' (a Lua keyword)")
        else
            local lua, err = translate.expr(list, ctx)
            if lua then emitted = "for " .. vars .. " in " .. lua
            else problem(a, err .. " in '{% for " .. rest .. " %}'") end
        end
    else
        problem(a, "'{% " .. tostring(word or inner) .. " %}' has no cutover equivalent")
    end
    return emitted
end

-- Converts a .j2 file to a cutover template.  Returns the text and a
-- list of problems { line =, col =, msg = } (the text is only
-- meaningful when the list is empty).
function M.template(text, ctx)
    local out, problems, i = {}, {}, 1
    local stack = {}
    local function problem(at, msg)
        local line, col = where(text, at)
        problems[#problems + 1] = { line = line, col = col, msg = msg }
    end
    while true do
        local a = text:find("{[{%%#]", i)
        if not a then out[#out + 1] = text:sub(i); break end
        out[#out + 1] = text:sub(i, a - 1)
        local mark = text:sub(a + 1, a + 1)
        local close = ({ ["{"] = "}}", ["%"] = "%}", ["#"] = "#}" })[mark]
        local b = text:find(close, a + 2, true)
        if not b then
            problem(a, "'{" .. mark .. "' is never closed")
            break
        end
        local inner = text:sub(a + 2, b - 1)
        local lstrip, rstrip = inner:sub(1, 1) == "-", inner:sub(-1) == "-"
        if lstrip then inner = inner:sub(2) end
        if rstrip then inner = inner:sub(1, -2) end
        if inner:sub(1, 1) == "+" or inner:sub(-1) == "+" then problem(a, "'+' whitespace control") end
        local open_mark = "{" .. mark .. (lstrip and "-" or "")
        local close_mark = (rstrip and "-" or "") .. close
        if mark == "#" then
            out[#out + 1] = open_mark .. inner .. close_mark
        elseif mark == "{" then
            local lua, err = translate.text_expr(inner, ctx)
            if lua then out[#out + 1] = open_mark .. " " .. lua .. " " .. close_mark
            else problem(a, err .. " in '{{" .. inner .. "}}'") end
        else
            check_tag_line(text, a, b, rstrip, problem)
            local emitted = statement(inner, a, ctx, stack, problem)
            out[#out + 1] = open_mark .. " " .. (emitted or "") .. " " .. close_mark
        end
        i = b + 2
    end
    if #stack > 0 and #problems == 0 then problem(#text, "'{% " .. stack[#stack] .. " %}' is never closed") end
    return table.concat(out), problems
end

return M
