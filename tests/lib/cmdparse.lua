-- cmdparse (tests only): what a Windows host does with a command line
-- that it runs as `cmd.exe /c LINE`, as the contract describes it
-- (../shared/targets/windows2000-exchange55.md, sections 2 and 8).  The
-- reference that tests/unit/test_windows_cmdline.lua checks
-- lua/cutover/windows/cmdline.lua against; it is not in the cutover
-- binary.  The simulated lab host does not use it: the lab parses lines
-- with its own lab.cmd (tests/lab/cmd.lua), written apart.
-- Load it with dofile(tests_dir .. "/lib/cmdparse.lua").
--
--   1. %NAME% expansion (M.expand): case-insensitive, a defined variable
--      is replaced, an undefined one is left as it is; no escape exists.
--   2. cmd.exe (M.parse): `"` starts and ends a quoted span in which
--      everything is literal; outside a span `^` makes the next character
--      literal (a `^` at the very end is dropped) and & && | || separate
--      commands, > >> < N> N>> N>&M (N a lone digit) redirect.  A
--      redirection target is a plain path (where `^` escapes, and a `"`
--      or `^"` is an error) or a "-quoted path.  A program receives the
--      rest of its command: `^` escapes removed, redirections taken out,
--      quotes kept.  The program name is the first word (quotes in it
--      group and are removed); a leading `"` is not stripped.
--   3. the program's C runtime (M.split_args, CommandLineToArgvW rules):
--      space and tab separate; `"` groups; 2n backslashes before a quote
--      give n and the quote groups, 2n+1 give n and a literal quote;
--      other backslashes are literal; inside a quoted span `""` is a
--      literal quote and the span goes on.
local M = {}

-- Expands %NAME% from env (a table NAME -> value; names compared
-- case-insensitively).  An undefined name is left as is and the scan
-- goes on from its closing '%'.
function M.expand(line, env)
    if not env or not line:find("%", 1, true) then return line end
    local lower = {}
    for k, v in pairs(env) do
        if type(k) == "string" then lower[k:lower()] = tostring(v) end
    end
    local out, i, n = {}, 1, #line
    while i <= n do
        local a = line:find("%", i, true)
        if not a then
            out[#out + 1] = line:sub(i)
            break
        end
        out[#out + 1] = line:sub(i, a - 1)
        local b = line:find("%", a + 1, true)
        if not b then
            out[#out + 1] = line:sub(a)
            break
        end
        local name = line:sub(a + 1, b - 1)
        local v = name ~= "" and lower[name:lower()]
        if v then
            out[#out + 1] = v
            i = b + 1
        else
            out[#out + 1] = line:sub(a, b - 1)
            i = b
        end
    end
    return table.concat(out)
end

local function is_space(c) return c == " " or c == "\t" end

-- CommandLineToArgvW on a program's argument string (what follows the
-- program name).  -> list of arguments
function M.split_args(raw)
    local args, i, n = {}, 1, #raw
    while true do
        while i <= n and is_space(raw:sub(i, i)) do i = i + 1 end
        if i > n then break end
        local buf, in_quote = {}, false
        while i <= n do
            local c = raw:sub(i, i)
            if c == "\\" then
                local j = i
                while j <= n and raw:sub(j, j) == "\\" do j = j + 1 end
                local count = j - i
                if raw:sub(j, j) == '"' then
                    buf[#buf + 1] = string.rep("\\", count // 2)
                    if count % 2 == 1 then
                        buf[#buf + 1] = '"'
                        i = j + 1
                    else
                        i = j       -- the quote is handled next round
                    end
                else
                    buf[#buf + 1] = string.rep("\\", count)
                    i = j
                end
            elseif c == '"' then
                if in_quote and raw:sub(i + 1, i + 1) == '"' then
                    buf[#buf + 1] = '"'
                    i = i + 2
                else
                    in_quote = not in_quote
                    i = i + 1
                end
            elseif is_space(c) and not in_quote then
                break
            else
                buf[#buf + 1] = c
                i = i + 1
            end
        end
        args[#args + 1] = table.concat(buf)
    end
    return args
end

-- The program name and the rest of a command's text.
local function split_program(raw)
    local i, n = 1, #raw
    while i <= n and is_space(raw:sub(i, i)) do i = i + 1 end
    if i > n then return nil end
    local buf, in_quote = {}, false
    while i <= n do
        local c = raw:sub(i, i)
        if c == '"' then
            in_quote = not in_quote
        elseif is_space(c) and not in_quote then
            break
        else
            buf[#buf + 1] = c
        end
        i = i + 1
    end
    return table.concat(buf), raw:sub(i)
end

local function show(s)
    s = s:gsub("[%c\127]", function(c) return string.format("\\x%02X", c:byte()) end)
    if #s > 80 then s = s:sub(1, 77) .. "..." end
    return "'" .. s .. "'"
end

-- Reads a redirection target from position i (after the operator).
-- -> target, next position | nil, message
local function read_target(line, i, op)
    local n = #line
    while i <= n and is_space(line:sub(i, i)) do i = i + 1 end
    if i > n then return nil, "redirection '" .. op .. "' without a target" end
    if line:sub(i, i) == '"' then
        local j = line:find('"', i + 1, true)
        if not j then return nil, "unclosed quote in the target of '" .. op .. "'" end
        if j == i + 1 then return nil, "redirection '" .. op .. "' with an empty target" end
        return line:sub(i + 1, j - 1), j + 1
    end
    local buf = {}
    while i <= n do
        local c = line:sub(i, i)
        if is_space(c) or c == "&" or c == "|" or c == "<" or c == ">" then break end
        if c == '"' then return nil, "a quote inside the target of '" .. op .. "'" end
        if c == "^" then
            local d = line:sub(i + 1, i + 1)
            if d == '"' then return nil, "a ^\" inside the target of '" .. op .. "'" end
            if d == "" then i = i + 1; break end
            buf[#buf + 1] = d
            i = i + 2
        else
            buf[#buf + 1] = c
            i = i + 1
        end
    end
    if #buf == 0 then return nil, "redirection '" .. op .. "' without a target" end
    return table.concat(buf), i
end

-- parse(line, opts) -> list of commands | nil, message
-- opts.env: variables for %NAME% expansion (none when absent).
-- Each command: { program = "sc", args = raw argument text (what the
-- program receives after its name), argv = { program, arg1, ... },
-- redirects = { { fd = 1, mode = ">" | ">>" | "<", target = "PATH" }
-- or { fd = 2, mode = ">&", dup = 1 }, ... }, op = nil | "&" | "&&" |
-- "||" | "|" (the operator that joins it to the next command) }.
function M.parse(line, opts)
    if type(line) ~= "string" then return nil, "command line: expected text" end
    opts = opts or {}
    if line:find("[\r\n%z]") then
        return nil, "command line holds a line break or NUL"
    end
    line = M.expand(line, opts.env)
    local commands = {}
    local raw, redirects = {}, {}
    local handle_at = nil      -- index in raw of a lone unescaped digit
    local in_quote = false
    local i, n = 1, #line

    local function finish(op)
        local text = table.concat(raw)
        local program, rest = split_program(text)
        if not program then
            if op then return nil, "nothing before '" .. op .. "'" end
            if #redirects > 0 or #commands > 0 then return nil, "redirection or operator without a command" end
            return nil, "empty command line"
        end
        local argv = { program }
        for _, a in ipairs(M.split_args(rest)) do argv[#argv + 1] = a end
        commands[#commands + 1] = { program = program, args = rest, argv = argv,
                                    redirects = redirects, op = op }
        raw, redirects, handle_at = {}, {}, nil
        return true
    end

    local function push(c, plain_digit)
        raw[#raw + 1] = c
        if plain_digit and (#raw == 1 or is_space(raw[#raw - 1])) then
            handle_at = #raw
        else
            handle_at = nil
        end
    end

    while i <= n do
        local c = line:sub(i, i)
        if in_quote then
            push(c)
            if c == '"' then in_quote = false end
            i = i + 1
        elseif c == '"' then
            in_quote = true
            push(c)
            i = i + 1
        elseif c == "^" then
            if i < n then push(line:sub(i + 1, i + 1)) end
            i = i + 2
        elseif c == "&" or c == "|" then
            local op = c
            if line:sub(i + 1, i + 1) == c then op = c .. c end
            local ok, err = finish(op)
            if not ok then return nil, err .. " in " .. show(line) end
            i = i + #op
            local j = i
            while j <= n and is_space(line:sub(j, j)) do j = j + 1 end
            if j > n then return nil, "nothing after '" .. op .. "' in " .. show(line) end
        elseif c == ">" or c == "<" then
            local fd = c == ">" and 1 or 0
            if handle_at and handle_at == #raw then
                fd = tonumber(raw[#raw])
                raw[#raw] = nil
            end
            handle_at = nil
            local op = c
            if c == ">" and line:sub(i + 1, i + 1) == ">" then op = ">>" end
            i = i + #op
            if line:sub(i, i) == "&" then
                local d = line:sub(i + 1, i + 1)
                if not d:match("%d") then
                    return nil, "'" .. op .. "&' must be followed by a handle digit in " .. show(line)
                end
                redirects[#redirects + 1] = { fd = fd, mode = op:sub(1, 1) .. "&", dup = tonumber(d) }
                i = i + 2
            else
                local target, nxt = read_target(line, i, op)
                if not target then return nil, nxt .. " in " .. show(line) end
                redirects[#redirects + 1] = { fd = fd, mode = op, target = target }
                i = nxt
            end
        else
            push(c, c:match("%d") ~= nil)
            i = i + 1
        end
    end
    local ok, err = finish(nil)
    if not ok then return nil, err .. " in " .. show(line) end
    return commands
end

-- simple(line, opts) -> argv, command | nil, message: a line that holds
-- exactly one command (redirections allowed, no & && | ||).
function M.simple(line, opts)
    local cmds, err = M.parse(line, opts)
    if not cmds then return nil, err end
    if #cmds ~= 1 then
        return nil, "expected one command, found " .. #cmds .. " (joined by '" .. cmds[1].op .. "')"
    end
    return cmds[1].argv, cmds[1]
end

-- How a program name resolves: case-insensitive, with or without .exe,
-- bare or with a path.  "C:\WINNT\system32\SC.EXE" -> "sc"
function M.program_key(name)
    local base = name:match("([^\\/:]*)$") or name
    base = base:lower()
    return (base:gsub("%.exe$", ""))
end

return M
