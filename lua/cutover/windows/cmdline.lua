-- windows.cmdline: builds the command lines cutover sends to a Windows
-- host, where the SSH server runs each exec request as `cmd.exe /c LINE`
-- (contract: ../shared/targets/windows2000-exchange55.md, sections 2, 8).
--
-- Two parsers stand between an argv list and the program:
--   1. cmd.exe: `"` toggles a quoted span in which everything is literal;
--      outside a span `^` escapes the next character and & | < > are
--      operators; `%NAME%` is expanded everywhere and cannot be escaped.
--      The program receives the rest of its command with the `^` escapes
--      removed and the redirections taken out; the quotes stay.
--   2. the program's C runtime (CommandLineToArgvW rules): whitespace
--      separates; `"` groups; `\"` is a literal quote; 2n backslashes
--      before a quote give n; backslashes elsewhere are literal.
--
-- cmdline.build encodes each argument for (2) first, then escapes the
-- result for (1) while tracking cmd.exe's quote state:
--   * an argument is put in quotes when it is empty or holds a space, a
--     tab or a cmd.exe operator (& | < > ^ ( )); backslashes are doubled
--     only where a quote follows them, and a literal quote is `\"`;
--   * outside a cmd.exe span, every operator character gets a `^`;
--   * a `"` that cmd.exe would otherwise take as the start of a span
--     while the C runtime does not (a literal quote, or the closing quote
--     of an argument after a literal quote flipped cmd.exe's state) is
--     written `^"`, so cmd.exe never sits inside a span between two
--     arguments and every line ends outside one.  Redirections and
--     operators can therefore be appended to any built line.
--   * a line never starts with `"` (the program is a plain word).
-- Refused, with the argument's index and the reason (the value itself is
-- never echoed: it may be a secret): `%` (cmd.exe expands it, and no
-- escape exists in `cmd /c`), line breaks (CR, LF: they end the command)
-- and NUL.  Such values travel on stdin (`more > FILE`).
--
-- The reverse, what the host does with a line, is tests/lib/cmdparse.lua
-- (the unit tests' reference; not shipped).
local M = {}

-- cmd.exe operator characters, escaped with ^ outside a quoted span.
local CMD_SPECIAL = {
    ["&"] = true, ["|"] = true, ["<"] = true, [">"] = true, ["^"] = true,
    ["("] = true, [")"] = true,
}

-- Windows 2000's cmd.exe accepts command lines of at most 2047 characters.
M.MAX_LINE = 2047

local function describe(i)
    if i == 1 then return "argument 1 (the program)" end
    return "argument " .. i
end

-- nil when s can be passed as an argument, else the reason.
local function refusal(s)
    if s:find("%", 1, true) then
        return "holds '%', which cmd.exe would expand: pass it on stdin instead"
    end
    if s:find("[\r\n]") then
        return "holds a line break, which would end the command line: pass it on stdin instead"
    end
    if s:find("\0", 1, true) then
        return "holds a NUL byte, which no command line can carry: pass it on stdin instead"
    end
    return nil
end

-- The C runtime (CommandLineToArgvW) encoding of one argument, before
-- any cmd.exe escaping: "plain", "\"two words\"", "quote\\\"inside".
function M.quote_arg(s)
    local needs_quotes = s == "" or s:find("[ \t&|<>^()]") ~= nil
    local out, pending = {}, 0     -- pending: backslashes not yet written
    for i = 1, #s do
        local c = s:sub(i, i)
        if c == "\\" then
            pending = pending + 1
        elseif c == '"' then
            out[#out + 1] = string.rep("\\", pending * 2 + 1) .. '"'
            pending = 0
        else
            out[#out + 1] = string.rep("\\", pending) .. c
            pending = 0
        end
    end
    if needs_quotes then
        -- the closing quote follows the trailing backslashes: double them
        return '"' .. table.concat(out) .. string.rep("\\", pending * 2) .. '"'
    end
    return table.concat(out) .. string.rep("\\", pending)
end

-- Escapes one C-runtime-encoded argument for cmd.exe, starting (and
-- ending) outside a cmd.exe span.  The CRT string's quotes are
-- classified as it reads them: a literal quote is preceded by an odd
-- number of backslashes; the others open or close its quoted span.
local function cmd_escape(crt)
    local out = {}
    local crt_in, cmd_in = false, false
    local backslashes = 0
    for i = 1, #crt do
        local c = crt:sub(i, i)
        if c == '"' then
            local literal = backslashes % 2 == 1
            if literal then
                if cmd_in then
                    out[#out + 1] = '"'; cmd_in = false
                else
                    out[#out + 1] = '^"'
                end
            elseif not crt_in then
                -- opening quote; cmd.exe is outside here (see invariant)
                out[#out + 1] = '"'; cmd_in = true; crt_in = true
            else
                -- closing quote: leave cmd.exe outside in every case
                if cmd_in then out[#out + 1] = '"' else out[#out + 1] = '^"' end
                cmd_in = false; crt_in = false
            end
            backslashes = 0
        else
            if c == "\\" then backslashes = backslashes + 1 else backslashes = 0 end
            if not cmd_in and CMD_SPECIAL[c] then
                out[#out + 1] = "^" .. c
            else
                out[#out + 1] = c
            end
        end
    end
    assert(not cmd_in and not crt_in, "cmd_escape: unbalanced argument")
    return table.concat(out)
end

-- Exposed for tests and for encodings(): one argument as it appears on
-- a line built by M.build.
function M.encode_arg(s)
    return cmd_escape(M.quote_arg(s))
end

local function as_text(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then
        if math.type(v) == "integer" then return tostring(v) end
        return nil, "is a non-integer number"
    end
    return nil, "is a " .. t .. ", not text"
end

-- The program (argv[1]) must be one plain word: cmd.exe finds the
-- command name itself, and a line must not start with `"`.
local function check_program(p)
    if p == "" then return "is empty" end
    if p:find("[ \t]") then
        return "holds a space or tab: use a path without spaces (an 8.3 short name)"
    end
    if p:find('"', 1, true) then return "holds '\"', which cmd.exe would take as a quote" end
    local op = p:match("[&|<>^()]")
    if op then return "holds '" .. op .. "', which cmd.exe would take as an operator" end
    local sep = p:match("[,;=]")
    if sep then return "holds '" .. sep .. "', which cmd.exe takes as the end of a command name" end
    if p:find("[%c]") then return "holds a control character" end
    return nil
end

-- build(argv) -> line | nil, "argument N ...: reason"
-- argv: list of text (integers are taken as their text); argv[1] is the
-- program (a plain word: `sc`, `C:\WINNT\system32\net.exe`).  Every
-- other element reaches the program exactly, as its own argument.
function M.build(argv)
    if type(argv) ~= "table" or argv[1] == nil then
        return nil, "no program to run (argv is empty)"
    end
    local parts = {}
    for i = 1, #argv do
        local s, why = as_text(argv[i])
        if not s then return nil, describe(i) .. " " .. why end
        why = refusal(s)
        if not why and i == 1 then why = check_program(s) end
        if why then return nil, describe(i) .. " " .. why end
        parts[i] = i == 1 and s or M.encode_arg(s)
    end
    local line = table.concat(parts, " ")
    if #line > M.MAX_LINE then
        return nil, string.format("the command line is %d characters long; cmd.exe on Windows 2000 "
            .. "accepts at most %d: send the data on stdin instead", #line, M.MAX_LINE)
    end
    return line
end

-- cmd.exe's view of a line's end: "outside" | "quoted" (an open span) |
-- "caret" (ends with an escape character).  Lines from M.build always
-- end "outside".
function M.end_state(line)
    local in_quote, i, n = false, 1, #line
    while i <= n do
        local c = line:sub(i, i)
        if c == '"' then
            in_quote = not in_quote
        elseif c == "^" and not in_quote then
            if i == n then return "caret" end
            i = i + 1
        end
        i = i + 1
    end
    return in_quote and "quoted" or "outside"
end

-- A redirection target: a plain path, or a "-quoted one.  Paths with `"`,
-- `%`, control characters, or that are empty, are refused.
function M.redirect_target(path)
    if type(path) ~= "string" or path == "" then
        return nil, "redirection target: expected a non-empty path"
    end
    if path:find('"', 1, true) then return nil, "redirection target holds '\"'" end
    if path:find("%", 1, true) then
        return nil, "redirection target holds '%', which cmd.exe would expand"
    end
    if path:find("%c") then return nil, "redirection target holds a control character" end
    if path:find("^[%w%.:\\/_%-%$~#@!+]+$") then return path end
    return '"' .. path .. '"'
end

-- line .. " > PATH" (">>" with append), for a line that ends outside a
-- quoted span (every line from M.build does).
-- -> line | nil, message
function M.redirect_stdout(line, path, append)
    if type(line) ~= "string" or line == "" then return nil, "redirect_stdout: no command line" end
    local state = M.end_state(line)
    if state ~= "outside" then
        return nil, "redirect_stdout: the command line ends inside a "
            .. (state == "quoted" and "quoted span" or "^ escape") .. ": '>' would not redirect"
    end
    local target, err = M.redirect_target(path)
    if not target then return nil, err end
    return line .. (append and " >> " or " > ") .. target
end

-- The `more > FILE` idiom: the line that writes stdin to path on the
-- host.  The data goes on the exec channel's stdin; `more` turns every
-- line ending into CRLF and adds a final CRLF when missing (see
-- M.more_content).  -> line | nil, message
function M.write_stdin_to(path, append)
    return M.redirect_stdout("more", path, append)
end

-- What `more` writes for the given stdin data (CRLF everywhere, final
-- CRLF added): for check mode predictions and checksums.
function M.more_content(data)
    local s = data:gsub("\r\n", "\n"):gsub("\r", "\n")
    if s ~= "" and s:sub(-1) ~= "\n" then s = s .. "\n" end
    return (s:gsub("\n", "\r\n"))
end

-- Every text under which a value can appear in a command line that
-- M.build made, for secret masking (cutover.secrets.redact: register each):
--   the value itself; its C runtime form (M.quote_arg); its form on the
--   line (M.encode_arg); the last two without their outer quotes, and
--   the C runtime form's inside with trailing backslashes not doubled
--   (the value inside a larger quoted argument, when nothing before it
--   in that argument holds a quote).  Distinct, non-empty, longest
--   first.  A value that M.build refuses yields just itself.
function M.encodings(value)
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" or value == "" then return {} end
    local out, seen = {}, {}
    local function add(s)
        if s and s ~= "" and not seen[s] then
            seen[s] = true
            out[#out + 1] = s
        end
    end
    add(value)
    if not refusal(value) then
        local crt = M.quote_arg(value)
        local line = M.encode_arg(value)
        add(crt)
        add(line)
        add(crt:match('^"(.*)"$'))
        add(line:match('^"(.-)%^?"$'))
        -- the inner text of the C runtime form is the value with its
        -- quotes escaped; backslashes before a closing quote doubled
        add((crt:match('^"(.*)"$') or crt):gsub("\\+$", function(b)
            return string.rep("\\", #b // 2)
        end))
    end
    table.sort(out, function(a, b) return #a > #b end)
    return out
end

return M
