-- lab.cmd: how the lab's cmd.exe reads a command line (contract sections
-- 2 and 8), and the Microsoft C runtime's argument splitting.  Written
-- apart from the client's quoting (lua/cutover/windows/cmdline.lua), so
-- the two check each other through cmd-args.json.
--
-- A line becomes a list of pipelines joined by & && ||; a pipeline is
-- a list of commands joined by |; a command is
--   { text = "name rest", redirs = { {fd=, op=">"|">>"|"<", path=} |
--                                    {fd=, dup=} } }
-- or { kind = "if", negate = bool, path = "FILE", body = list }.
-- Errors raise { syntax = true }.
local M = {}

local SYNTAX = { syntax = true }

-- %NAME% expansion (names case-insensitive; env keys are lower case).
-- An undefined name is left as is.
function M.expand(line, env)
    local out = {}
    local i, n = 1, #line
    while i <= n do
        local p = line:find("%", i, true)
        if not p then
            out[#out + 1] = line:sub(i)
            break
        end
        out[#out + 1] = line:sub(i, p - 1)
        local q = line:find("%", p + 1, true)
        if not q then
            out[#out + 1] = line:sub(p)
            break
        end
        local name = line:sub(p + 1, q - 1)
        local v = name ~= "" and env[name:lower()]
        if v then
            out[#out + 1] = v
            i = q + 1
        else
            out[#out + 1] = "%" .. name
            i = q  -- the closing % may open the next name
        end
    end
    return table.concat(out)
end

local function is_space(c) return c == " " or c == "\t" end

-- Reads a redirection target starting at i (after the operator).
local function read_target(s, i)
    local n = #s
    while i <= n and is_space(s:sub(i, i)) do i = i + 1 end
    if i > n then error(SYNTAX, 0) end
    if s:sub(i, i) == '"' then
        local j = s:find('"', i + 1, true)
        if not j then error(SYNTAX, 0) end
        local path = s:sub(i + 1, j - 1)
        if path == "" then error(SYNTAX, 0) end
        return path, j + 1
    end
    local buf = {}
    while i <= n do
        local c = s:sub(i, i)
        if is_space(c) or c == "&" or c == "|" or c == "<" or c == ">" then
            break
        end
        if c == "^" then
            local d = s:sub(i + 1, i + 1)
            if d == '"' or d == "" then error(SYNTAX, 0) end
            buf[#buf + 1] = d
            i = i + 2
        elseif c == '"' then
            error(SYNTAX, 0)
        else
            buf[#buf + 1] = c
            i = i + 1
        end
    end
    if #buf == 0 then error(SYNTAX, 0) end
    return table.concat(buf), i
end

local parse_list

-- "if [not] exist FILE command...": the rest of the line is the body.
local function parse_if(s, i)
    local function word(j)
        while j <= #s and is_space(s:sub(j, j)) do j = j + 1 end
        if s:sub(j, j) == '"' then
            local k = s:find('"', j + 1, true)
            if not k then error(SYNTAX, 0) end
            return s:sub(j + 1, k - 1), k + 1
        end
        local k = j
        while k <= #s and not is_space(s:sub(k, k)) do k = k + 1 end
        return s:sub(j, k - 1), k
    end
    local w, j = word(i)
    local negate = false
    if w:lower() == "not" then
        negate = true
        w, j = word(j)
    end
    if w:lower() ~= "exist" then error(SYNTAX, 0) end
    local path
    path, j = word(j)
    if path == "" then error(SYNTAX, 0) end
    local body
    body, j = parse_list(s, j)
    if #body == 0 then error(SYNTAX, 0) end
    return { kind = "if", negate = negate, path = path, body = body }, j
end

-- Parses one command from i; stops before an operator.
local function parse_command(s, i)
    local n = #s
    local j = i
    while j <= n and is_space(s:sub(j, j)) do j = j + 1 end
    if s:sub(j, j + 1):lower() == "if" and is_space(s:sub(j + 2, j + 2)) then
        return parse_if(s, j + 2)
    end
    local text = {}
    local redirs = {}
    local inq = false
    while i <= n do
        local c = s:sub(i, i)
        if inq then
            text[#text + 1] = c
            if c == '"' then inq = false end
            i = i + 1
        elseif c == '"' then
            inq = true
            text[#text + 1] = c
            i = i + 1
        elseif c == "^" then
            if i < n then text[#text + 1] = s:sub(i + 1, i + 1) end
            i = i + 2
        elseif c == "&" or c == "|" then
            break
        elseif c == ">" or c == "<" then
            local fd = c == "<" and 0 or 1
            -- a handle digit standing alone before the operator
            local last = text[#text]
            if last and last:match("^[0-2]$") and
               (#text == 1 or is_space(text[#text - 1])) then
                fd = tonumber(last)
                text[#text] = nil
            end
            local op = c
            i = i + 1
            if c == ">" and s:sub(i, i) == ">" then
                op = ">>"
                i = i + 1
            end
            if c == ">" and s:sub(i, i) == "&" then
                local d = s:sub(i + 1, i + 1)
                if not d:match("^[0-2]$") then error(SYNTAX, 0) end
                redirs[#redirs + 1] = { fd = fd, dup = tonumber(d) }
                i = i + 2
            else
                local path
                path, i = read_target(s, i)
                redirs[#redirs + 1] = { fd = fd, op = op, path = path }
            end
        else
            text[#text + 1] = c
            i = i + 1
        end
    end
    return { text = table.concat(text), redirs = redirs }, i
end

-- Parses pipelines joined by operators until the end of the line.
function parse_list(s, i)
    local list = {}
    local op = nil
    local n = #s
    while true do
        local pipeline = {}
        while true do
            local cmd
            cmd, i = parse_command(s, i)
            pipeline[#pipeline + 1] = cmd
            if cmd.kind == "if" then break end
            if s:sub(i, i) == "|" and s:sub(i + 1, i + 1) ~= "|" then
                i = i + 1
            else
                break
            end
        end
        list[#list + 1] = { op = op, pipeline = pipeline }
        if i > n then break end
        local two = s:sub(i, i + 1)
        if two == "&&" or two == "||" then
            op = two
            i = i + 2
        elseif s:sub(i, i) == "&" then
            op = "&"
            i = i + 1
        else
            break
        end
        -- "a &" with nothing after is allowed; "a &&" is not
        local rest = s:sub(i)
        if rest:match("^%s*$") then
            if op ~= "&" then error(SYNTAX, 0) end
            break
        end
    end
    return list, i
end

-- line -> list | nil, "syntax"
function M.parse(line)
    local ok, res = pcall(parse_list, line, 1)
    if not ok then
        if type(res) == "table" and res.syntax then return nil, "syntax" end
        error(res, 0)
    end
    -- an empty command inside a pipeline is a syntax error
    for _, item in ipairs(res) do
        if #item.pipeline > 1 then
            for _, c in ipairs(item.pipeline) do
                if c.text and c.text:match("^%s*$") then
                    return nil, "syntax"
                end
            end
        end
    end
    return res
end

-- "name rest" -> name (quotes removed), rest (raw, after the name).
function M.split_name(text)
    local i = 1
    local n = #text
    while i <= n and is_space(text:sub(i, i)) do i = i + 1 end
    if i > n then return nil, "" end
    local name = {}
    local inq = false
    while i <= n do
        local c = text:sub(i, i)
        if c == '"' then
            inq = not inq
        elseif is_space(c) and not inq then
            break
        else
            name[#name + 1] = c
        end
        i = i + 1
    end
    return table.concat(name), text:sub(i)
end

-- The Microsoft C runtime's splitting of a command line's arguments
-- (CommandLineToArgvW rules): whitespace separates; "..." groups; \"
-- is a quote; 2n backslashes before a quote give n; "" inside a quoted
-- span is a literal quote (and the span goes on, as in the UCRT).
function M.argv(rest)
    local args = {}
    local i, n = 1, #rest
    while true do
        while i <= n and is_space(rest:sub(i, i)) do i = i + 1 end
        if i > n then break end
        local arg = {}
        local inq = false
        while i <= n do
            local c = rest:sub(i, i)
            if is_space(c) and not inq then break end
            if c == "\\" then
                local j = i
                while j <= n and rest:sub(j, j) == "\\" do j = j + 1 end
                local k = j - i
                if rest:sub(j, j) == '"' then
                    arg[#arg + 1] = string.rep("\\", k // 2)
                    if k % 2 == 1 then
                        arg[#arg + 1] = '"'
                        i = j + 1
                    else
                        i = j
                    end
                else
                    arg[#arg + 1] = string.rep("\\", k)
                    i = j
                end
            elseif c == '"' then
                if inq and rest:sub(i + 1, i + 1) == '"' then
                    arg[#arg + 1] = '"'
                    i = i + 2
                else
                    inq = not inq
                    i = i + 1
                end
            else
                arg[#arg + 1] = c
                i = i + 1
            end
        end
        args[#args + 1] = table.concat(arg)
    end
    return args
end

return M
