-- Units of lua/cutover/windows/cmdline.lua (building cmd.exe command
-- lines) against tests/lib/cmdparse.lua (the host side: cmd.exe
-- then CommandLineToArgvW), with the contract's cmd-args.json.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local cmdline = require("cutover.windows.cmdline")
local cmdparse = dofile(tests_dir .. "/lib/cmdparse.lua")
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")

local function show(s) return string.format("%q", s) end

local function same_list(got, want, what)
    T.eq(type(got), "table", what)
    for i = 1, math.max(#got, #want) do
        T.eq(got[i], want[i], (what or "list") .. "[" .. i .. "]")
    end
end

-- The program receives exactly argv (the host side of a built line).
local function roundtrip(argv)
    local line, err = cmdline.build(argv)
    if not line then error("build refused " .. show(argv[#argv]) .. ": " .. err, 2) end
    local got, perr = cmdparse.simple(line)
    if not got then error("parse of " .. show(line) .. " failed: " .. perr, 2) end
    same_list(got, argv, "argv of " .. show(line))
    T.ok(line:sub(1, 1) ~= '"', "line does not start with a quote")
    T.eq(cmdline.end_state(line), "outside", "end state of " .. show(line))
    return line
end

-- ------------------------------------------------------------------
-- cmd-args.json, read at test time

local args_file = tests_dir .. "/fixtures/cmd-args.json"
local cases = assert(json.decode(assert(fs.read(args_file))))

T.test("cmd-args.json: every 'roundtrip' string reaches the program intact", function()
    T.ok(#cases.roundtrip >= 40, "the file lists the round-trip strings")
    for _, s in ipairs(cases.roundtrip) do
        roundtrip({ "prog", s })
        -- also between other arguments, and twice in a row
        roundtrip({ "prog", "a", s, "b" })
        roundtrip({ "prog", s, s })
    end
end)

T.test("cmd-args.json: every 'refuse' string is refused with its index and reason", function()
    T.ok(#cases.refuse >= 5, "the file lists the refused strings")
    for _, s in ipairs(cases.refuse) do
        local line, err = cmdline.build({ "prog", "x", s })
        T.eq(line, nil, "line for " .. show(s))
        T.match(err, "^argument 3 holds ", "message for " .. show(s))
        T.match(err, "pass it on stdin instead$", "message for " .. show(s))
        -- the value itself is never echoed (it may be a secret)
        T.not_contains(err, s, "message for " .. show(s))
    end
end)

T.test("cmd-args.json: the refusals name the reason", function()
    T.eq(select(2, cmdline.build({ "prog", "x", "per%cent" })),
         "argument 3 holds '%', which cmd.exe would expand: pass it on stdin instead")
    T.eq(select(2, cmdline.build({ "prog", "line\nbreak" })),
         "argument 2 holds a line break, which would end the command line: pass it on stdin instead")
    T.eq(select(2, cmdline.build({ "prog", "cr\rhere" })),
         "argument 2 holds a line break, which would end the command line: pass it on stdin instead")
    T.eq(select(2, cmdline.build({ "prog", "a", "b", "nul\0char" })),
         "argument 4 holds a NUL byte, which no command line can carry: pass it on stdin instead")
end)

-- ------------------------------------------------------------------
-- exact lines

T.test("build: exact lines", function()
    local want = {
        { { "hostname" }, "hostname" },
        { { "sc", "qc", "MSExchangeIS" }, "sc qc MSExchangeIS" },
        { { "sc", "query", "type=", "service", "state=", "all" }, "sc query type= service state= all" },
        { { "sc", "config", "MSExchangeIS", "obj=", "CORP\\exchsvc", "password=", "Svc P@ss\"&^<>|x" },
          [[sc config MSExchangeIS obj= CORP\exchsvc password= "Svc P@ss\"^&^^^<^>^|x^"]] },
        { { "net", "use", "\\\\EXCH01\\IPC$", "pass word&1", "/user:CORP\\exchsvc" },
          [[net use \\EXCH01\IPC$ "pass word&1" /user:CORP\exchsvc]] },
        { { "net", "start", "Microsoft Exchange Information Store" },
          [[net start "Microsoft Exchange Information Store"]] },
        { { "type", "C:\\Program Files\\x\\" }, [[type "C:\Program Files\x\\"]] },
        { { "prog", "" }, [[prog ""]] },
        { { "prog", "\"" }, [[prog \^"]] },
        { { "prog", "a\"b c" }, [[prog "a\"b c^"]] },
        { { "prog", "a\"b c\"d e" }, [[prog "a\"b c\^"d e^"]] },
        { { "prog", "x\\\\\"" }, [[prog x\\\\\^"]] },
        { { "prog", 42 }, "prog 42" },
        { { "D:\\ENG\\SERVER\\SETUP\\I386\\UPDATE.EXE" }, [[D:\ENG\SERVER\SETUP\I386\UPDATE.EXE]] },
    }
    for _, case in ipairs(want) do
        T.eq(roundtrip((function()
            local argv = {}
            for i, a in ipairs(case[1]) do argv[i] = tostring(a) end
            return argv
        end)()), case[2], "line")
        T.eq(cmdline.build(case[1]), case[2], "line")
    end
end)

T.test("quote_arg: the C runtime form alone", function()
    T.eq(cmdline.quote_arg("plain"), "plain")
    T.eq(cmdline.quote_arg(""), '""')
    T.eq(cmdline.quote_arg("a b"), '"a b"')
    T.eq(cmdline.quote_arg("a\\b"), "a\\b")
    T.eq(cmdline.quote_arg("a b\\"), '"a b\\\\"')
    T.eq(cmdline.quote_arg("a\\\"b"), 'a\\\\\\"b')
    T.eq(cmdline.quote_arg("&"), '"&"')
end)

T.test("build: refusals of the program and of non-text", function()
    local function err(argv) return select(2, cmdline.build(argv)) end
    T.eq(err({}), "no program to run (argv is empty)")
    T.eq(err(nil), "no program to run (argv is empty)")
    T.eq(err({ "" }), "argument 1 (the program) is empty")
    T.eq(err({ "C:\\Program Files\\x.exe" }),
         "argument 1 (the program) holds a space or tab: use a path without spaces (an 8.3 short name)")
    T.eq(err({ '"prog"' }), "argument 1 (the program) holds '\"', which cmd.exe would take as a quote")
    T.eq(err({ "a&b" }), "argument 1 (the program) holds '&', which cmd.exe would take as an operator")
    T.eq(err({ "a=b" }), "argument 1 (the program) holds '=', which cmd.exe takes as the end of a command name")
    T.eq(err({ "%COMSPEC%" }),
        "argument 1 (the program) holds '%', which cmd.exe would expand: pass it on stdin instead")
    T.eq(err({ "prog", {} }), "argument 2 is a table, not text")
    T.eq(err({ "prog", true }), "argument 2 is a boolean, not text")
    T.eq(err({ "prog", 1.5 }), "argument 2 is a non-integer number")
    T.eq(err({ "prog", string.rep("x", 2100) }),
         "the command line is 2105 characters long; cmd.exe on Windows 2000 accepts at most 2047: "
         .. "send the data on stdin instead")
    T.ok(cmdline.build({ "prog", string.rep("x", 2042) }), "2047 characters pass")
end)

-- ------------------------------------------------------------------
-- random arguments: every combination of the dangerous characters

T.test("build: random arguments round-trip (5000 argv lists)", function()
    math.randomseed(20010518)
    local alphabet = { "a", "b", " ", "\t", "\\", "\\", '"', '"', "&", "|", "<", ">", "^",
                       "(", ")", "!", ";", ",", "=", "'", "@", "x", "1", "2", "*", "?", "/", "\1", "\255" }
    for _ = 1, T.scale(5000, 1000) do
        local argv = { "prog" }
        for _ = 1, math.random(1, 4) do
            local buf = {}
            for _ = 1, math.random(0, 10) do buf[#buf + 1] = alphabet[math.random(#alphabet)] end
            argv[#argv + 1] = table.concat(buf)
        end
        roundtrip(argv)
    end
end)

-- ------------------------------------------------------------------
-- redirections and composition

T.test("redirect_stdout: the program's arguments are unchanged", function()
    local base = assert(cmdline.build({ "prog", "Svc P@ss\"&^<>|x", "a\"b" }))
    local line = assert(cmdline.redirect_stdout(base, "C:\\TEMP\\out.txt"))
    T.eq(line, base .. " > C:\\TEMP\\out.txt")
    local argv, cmd = assert(cmdparse.simple(line))
    same_list(argv, { "prog", "Svc P@ss\"&^<>|x", "a\"b" }, "argv")
    T.eq(#cmd.redirects, 1)
    T.eq(cmd.redirects[1].fd, 1)
    T.eq(cmd.redirects[1].mode, ">")
    T.eq(cmd.redirects[1].target, "C:\\TEMP\\out.txt")

    line = assert(cmdline.redirect_stdout(base, "C:\\Documents and Settings\\a&b.txt", true))
    T.eq(line, base .. ' >> "C:\\Documents and Settings\\a&b.txt"')
    argv, cmd = assert(cmdparse.simple(line))
    same_list(argv, { "prog", "Svc P@ss\"&^<>|x", "a\"b" }, "argv")
    T.eq(cmd.redirects[1].mode, ">>")
    T.eq(cmd.redirects[1].target, "C:\\Documents and Settings\\a&b.txt")

    T.eq(cmdline.redirect_stdout("hostname", "nul"), "hostname > nul")
end)

T.test("redirect_stdout: refusals", function()
    local function err(line, path) return select(2, cmdline.redirect_stdout(line, path)) end
    T.eq(err("prog", "a\"b"), "redirection target holds '\"'")
    T.eq(err("prog", "%TEMP%\\x"), "redirection target holds '%', which cmd.exe would expand")
    T.eq(err("prog", "a\nb"), "redirection target holds a control character")
    T.eq(err("prog", ""), "redirection target: expected a non-empty path")
    T.eq(err("prog", nil), "redirection target: expected a non-empty path")
    T.eq(err("", "x"), "redirect_stdout: no command line")
    T.eq(err('prog "open', "x"), "redirect_stdout: the command line ends inside a quoted span: '>' would not redirect")
    T.eq(err("prog ^", "x"), "redirect_stdout: the command line ends inside a ^ escape: '>' would not redirect")
end)

T.test("write_stdin_to: the more > FILE idiom", function()
    T.eq(cmdline.write_stdin_to("C:\\TEMP\\answer.txt"), "more > C:\\TEMP\\answer.txt")
    T.eq(cmdline.write_stdin_to("C:\\WINNT\\SYSVOL\\sysvol\\corp.example\\Policies\\" ..
        "{6AC1786C-016F-11D2-945F-00C04fB984F9}"
        .. "\\MACHINE\\Microsoft\\Windows NT\\SecEdit\\GptTmpl.inf"),
        'more > "C:\\WINNT\\SYSVOL\\sysvol\\corp.example\\Policies\\{6AC1786C-016F-11D2-945F-00C04fB984F9}'
        .. '\\MACHINE\\Microsoft\\Windows NT\\SecEdit\\GptTmpl.inf"')
    T.eq(cmdline.write_stdin_to("C:\\TEMP\\a.txt", true), "more >> C:\\TEMP\\a.txt")
    local argv, cmd = assert(cmdparse.simple(cmdline.write_stdin_to("C:\\TEMP\\my file.txt")))
    same_list(argv, { "more" }, "argv")
    T.eq(cmd.redirects[1].target, "C:\\TEMP\\my file.txt")
    T.eq(select(2, cmdline.write_stdin_to("C:\\%TEMP%")), "redirection target holds '%', which cmd.exe would expand")
end)

T.test("more_content: CRLF everywhere, final CRLF added", function()
    T.eq(cmdline.more_content("a\nb"), "a\r\nb\r\n")
    T.eq(cmdline.more_content("a\r\nb\r\n"), "a\r\nb\r\n")
    T.eq(cmdline.more_content("a\rb\n\n"), "a\r\nb\r\n\r\n")
    T.eq(cmdline.more_content("tab\there"), "tab\there\r\n")
    T.eq(cmdline.more_content(""), "")
end)

T.test("built lines compose with & && || and redirections", function()
    local a = assert(cmdline.build({ "sc", "config", "X", "password=", "p\"w&1" }))
    local b = assert(cmdline.build({ "net", "start", "A \"B\" C" }))
    local cmds = assert(cmdparse.parse(a .. " 2>&1 && " .. b .. " || " .. b .. " & hostname > nul"))
    T.eq(#cmds, 4)
    same_list(cmds[1].argv, { "sc", "config", "X", "password=", "p\"w&1" }, "first")
    T.eq(cmds[1].op, "&&")
    T.eq(cmds[1].redirects[1].fd, 2)
    T.eq(cmds[1].redirects[1].mode, ">&")
    T.eq(cmds[1].redirects[1].dup, 1)
    same_list(cmds[2].argv, { "net", "start", "A \"B\" C" }, "second")
    T.eq(cmds[2].op, "||")
    same_list(cmds[3].argv, { "net", "start", "A \"B\" C" }, "third")
    T.eq(cmds[3].op, "&")
    same_list(cmds[4].argv, { "hostname" }, "fourth")
    T.eq(cmds[4].op, nil)
    T.eq(cmds[4].redirects[1].target, "nul")
end)

-- ------------------------------------------------------------------
-- encodings for secret masking

T.test("encodings: every form of a value on a built line", function()
    local e = cmdline.encodings("Svc P@ss\"&^<>|x")
    local set = {}
    for _, s in ipairs(e) do set[s] = true end
    T.ok(set["Svc P@ss\"&^<>|x"], "raw")
    T.ok(set['"Svc P@ss\\"&^<>|x"'], "C runtime form")
    T.ok(set['"Svc P@ss\\"^&^^^<^>^|x^"'], "line form")
    T.ok(set['Svc P@ss\\"&^<>|x'], "C runtime inside")
    T.ok(set['Svc P@ss\\"^&^^^<^>^|x'], "line inside")
    for i = 2, #e do T.ok(#e[i - 1] >= #e[i], "longest first") end
    same_list(cmdline.encodings("plain"), { "plain" }, "plain")
    same_list(cmdline.encodings(""), {}, "empty")
    same_list(cmdline.encodings("a%b"), { "a%b" }, "refused value")
    same_list(cmdline.encodings(1234), { "1234" }, "number")
end)

T.test("encodings: masking them removes every random secret from its line", function()
    math.randomseed(3521)
    local alphabet = { "Q", "Z", " ", "\\", '"', "&", "^", "<", ">", "|", "9" }
    for _ = 1, T.scale(2000, 400) do
        local buf = {}
        for _ = 1, math.random(1, 8) do buf[#buf + 1] = alphabet[math.random(#alphabet)] end
        local secret = table.concat(buf)
        if secret:find("[^ ]") then
            local line = assert(cmdline.build({ "sc", "config", "S", "password=", secret }))
            local masked = line
            for _, form in ipairs(cmdline.encodings(secret)) do
                local a, b = masked:find(form, 1, true)
                while a do
                    masked = masked:sub(1, a - 1) .. "\0" .. masked:sub(b + 1)
                    a, b = masked:find(form, a + 1, true)
                end
            end
            T.eq(masked, "sc config S password= \0", "masked line of " .. show(secret))
        end
    end
end)

-- ------------------------------------------------------------------
-- cmdparse on its own: the host side as the contract describes it

T.test("cmdparse.expand: %NAME%", function()
    local env = { COMPUTERNAME = "EXCH01", SystemRoot = "C:\\WINNT", TEMP = "C:\\TEMP" }
    T.eq(cmdparse.expand("echo %computername%", env), "echo EXCH01")
    T.eq(cmdparse.expand("%SYSTEMROOT%\\ntds", env), "C:\\WINNT\\ntds")
    T.eq(cmdparse.expand("a%UNDEFINED%b", env), "a%UNDEFINED%b")
    T.eq(cmdparse.expand("%UNDEFINED%TEMP%", env), "%UNDEFINEDC:\\TEMP")
    T.eq(cmdparse.expand("100%", env), "100%")
    T.eq(cmdparse.expand("%%TEMP%", env), "%C:\\TEMP")
    T.eq(cmdparse.expand("\"%TEMP%\"", env), "\"C:\\TEMP\"")
    T.eq(cmdparse.expand("%TEMP%", nil), "%TEMP%")
    local argv = assert(cmdparse.simple("type %TEMP%\\x.txt", { env = env }))
    same_list(argv, { "type", "C:\\TEMP\\x.txt" }, "expanded argv")
end)

T.test("cmdparse.split_args: CommandLineToArgvW rules", function()
    local split_cases = {
        { "", {} },
        { "   ", {} },
        { "a b\tc", { "a", "b", "c" } },
        { [["a b" c]], { "a b", "c" } },
        { [[a"b c"d]], { "ab cd" } },
        { [[\"a]], { '"a' } },
        { [[a\\b]], { "a\\\\b" } },
        { [[a\\"b c"]], { "a\\b c" } },
        { [[a\\\"b]], { 'a\\"b' } },
        { [["a""b"]], { 'a"b' } },
        { [["a""b c" d]], { 'a"b c', "d" } },
        { [["" x]], { "", "x" } },
        { [["unclosed span]], { "unclosed span" } },
        { [[trailing\]], { "trailing\\" } },
    }
    for _, c in ipairs(split_cases) do same_list(cmdparse.split_args(c[1]), c[2], "split of " .. show(c[1])) end
end)

T.test("cmdparse.parse: quotes, carets, operators, redirections", function()
    local argv, cmd = assert(cmdparse.simple('echo "a & b" ^& c^^ d^'))
    same_list(argv, { "echo", "a & b", "&", "c^", "d" }, "argv")
    T.eq(cmd.args, ' "a & b" & c^ d')

    argv, cmd = assert(cmdparse.simple("prog a 2>nul >out.txt <in.txt b"))
    same_list(argv, { "prog", "a", "b" }, "argv")
    T.eq(#cmd.redirects, 3)
    T.eq(cmd.redirects[1].fd, 2); T.eq(cmd.redirects[1].target, "nul")
    T.eq(cmd.redirects[2].fd, 1); T.eq(cmd.redirects[2].target, "out.txt")
    T.eq(cmd.redirects[3].fd, 0); T.eq(cmd.redirects[3].mode, "<"); T.eq(cmd.redirects[3].target, "in.txt")

    -- a digit is a handle only when it stands alone before '>'
    argv, cmd = assert(cmdparse.simple("echo a2>x"))
    same_list(argv, { "echo", "a2" }, "argv")
    T.eq(cmd.redirects[1].fd, 1)
    argv, cmd = assert(cmdparse.simple('echo "2">x'))
    same_list(argv, { "echo", "2" }, "quoted digit")
    T.eq(cmd.redirects[1].fd, 1)

    -- a quoted target may hold spaces and operators; a plain one carets
    argv, cmd = assert(cmdparse.simple('more > "C:\\a b&c.txt"'))
    T.eq(cmd.redirects[1].target, "C:\\a b&c.txt")
    argv, cmd = assert(cmdparse.simple("more >C:\\a^&b.txt"))
    T.eq(cmd.redirects[1].target, "C:\\a&b.txt")

    -- a quoted program name; program_key
    argv = assert(cmdparse.simple('"C:\\Program Files\\x.exe" a'))
    same_list(argv, { "C:\\Program Files\\x.exe", "a" }, "quoted program")
    T.eq(cmdparse.program_key("C:\\WINNT\\system32\\SC.EXE"), "sc")
    T.eq(cmdparse.program_key("Net"), "net")
    T.eq(cmdparse.program_key("dumpel.exe"), "dumpel")

    local cmds = assert(cmdparse.parse("a|b||c&d&&e"))
    T.eq(#cmds, 5)
    local ops = {}
    for i, c in ipairs(cmds) do ops[i] = tostring(c.op) end
    T.eq(table.concat(ops, " "), "| || & && nil")
end)

T.test("cmdparse.parse: errors", function()
    local function err(line) return select(2, cmdparse.parse(line)) end
    T.eq(err(""), "empty command line in ''")
    T.eq(err("   "), "empty command line in '   '")
    T.eq(err("& hostname"), "nothing before '&' in '& hostname'")
    T.eq(err("hostname &&"), "nothing after '&&' in 'hostname &&'")
    T.eq(err("more >"), "redirection '>' without a target in 'more >'")
    T.eq(err("more > & x"), "redirection '>' without a target in 'more > & x'")
    T.eq(err('more > "C:\\x'), "unclosed quote in the target of '>' in 'more > \"C:\\x'")
    T.eq(err('more > ""'), "redirection '>' with an empty target in 'more > \"\"'")
    T.eq(err('more > C:\\a^"b'), "a ^\" inside the target of '>' in 'more > C:\\a^\"b'")
    T.eq(err('more > C:\\a"b"'), "a quote inside the target of '>' in 'more > C:\\a\"b\"'")
    T.eq(err("prog 2>&x"), "'>&' must be followed by a handle digit in 'prog 2>&x'")
    T.eq(err("> x"), "redirection or operator without a command in '> x'")
    T.eq(err("a\nb"), "command line holds a line break or NUL")
    T.eq(err(nil), "command line: expected text")
    T.eq(select(2, cmdparse.simple("a & b")), "expected one command, found 2 (joined by '&')")
end)

T.test("cmdparse: random lines never raise", function()
    math.randomseed(7)
    local alphabet = { "a", " ", "\t", "\\", '"', "&", "|", "<", ">", "^", "%", "1", "2", "(", ")", "\0", "\n", "\255" }
    for _ = 1, T.scale(5000, 1000) do
        local buf = {}
        for _ = 1, math.random(0, 16) do buf[#buf + 1] = alphabet[math.random(#alphabet)] end
        local line = table.concat(buf)
        local ok, r, e = pcall(cmdparse.parse, line, { env = { A = "x%y" } })
        T.ok(ok, "parse raised on " .. show(line) .. ": " .. tostring(r))
        T.ok(type(r) == "table" or (r == nil and type(e) == "string"), "result for " .. show(line))
        ok = pcall(cmdline.end_state, line)
        T.ok(ok, "end_state raised on " .. show(line))
    end
end)

T.done()
