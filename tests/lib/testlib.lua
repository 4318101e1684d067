-- testlib: the small harness every Lua test uses.  Loaded with dofile by
-- tests run through cutover_luatest, which passes:
--   ... = CUTOVER_BINARY, TESTS_DIR
-- A test file calls T.test(name, fn) for each case and T.done() at the end;
-- T.done() raises (failing the ctest) when any case failed.
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")
local loop = require("cutover.core.loop")

local T = { passed = 0, failed = 0, tmpdirs = {} }

-- Under valgrind (the memcheck label, tests/CMakeLists.txt) a loop that
-- only repeats work for its count (fuzz-style cases, scale figures) runs
-- T.scale(n, small) times: every code path still runs under memcheck,
-- without the hundredfold slowdown of repeating it.  The normal and ASan
-- runs keep n.
T.memcheck = os.getenv("CUTOVER_TEST_MEMCHECK") == "1"
-- In a sanitizer build (tests/CMakeLists.txt): a peer tool run only to
-- compare with (ansible-playbook) is left to the normal build.
T.sanitize = os.getenv("CUTOVER_TEST_SANITIZE") == "1"
function T.scale(n, small)
    if T.memcheck then return math.min(n, small) end
    return n
end

function T.setup(binary, tests_dir)
    T.cutover = binary
    -- the test build: the product plus crash points (CUTOVER_FAULT) and
    -- the vault's low-cost key derivation (CUTOVER_TEST_VAULT_KDF)
    T.test_build = binary and binary:gsub("cutover$", "cutover-faults")
    T.dir = tests_dir
    return T
end

-- Argon2id at MODERATE takes 256 MiB and most of a second per vault
-- open; runs given a vault passphrase file use the test build, whose
-- vaults are made at the low test cost and say so in their header
-- (docs/security.md).  The shipped cutover refuses such a vault, so a
-- case that opens it with T.cutover must use T.test_build instead.

local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
end

function T.eq(got, want, what)
    if got ~= want then
        error((what or "value") .. ": expected " .. show(want) .. ", got " .. show(got), 2)
    end
end

function T.ok(cond, what)
    if not cond then error((what or "condition") .. " does not hold", 2) end
end

function T.match(s, pattern, what)
    if type(s) ~= "string" or not s:find(pattern) then
        error((what or "text") .. ": " .. show(s) .. " does not match " .. show(pattern), 2)
    end
end

function T.contains(s, needle, what)
    if type(s) ~= "string" or not s:find(needle, 1, true) then
        error((what or "text") .. ": " .. show(s) .. " does not contain " .. show(needle), 2)
    end
end

function T.not_contains(s, needle, what)
    if type(s) == "string" and s:find(needle, 1, true) then
        error((what or "text") .. ": " .. show(s) .. " contains " .. show(needle), 2)
    end
end

-- The end of a stream, at most n bytes, for a failure report.
local function tail(s, n)
    if #s <= n then return s end
    return "[... " .. (#s - n) .. " bytes before]" .. s:sub(-n)
end

-- A case's wall time, after its name when it took a second or more: the
-- suite's time (scripts/test.sh) is found case by case from the logs.
local function took(t0)
    local s = loop.now() - t0
    if s < 1 then return "" end
    return string.format(" [%.1f s]", s)
end

function T.test(name, fn)
    T.last = nil
    local t0 = loop.now()
    local ok, err = xpcall(fn, debug.traceback)
    if ok then
        T.passed = T.passed + 1
        print("ok - " .. name .. took(t0))
    else
        T.failed = T.failed + 1
        print("not ok - " .. name .. took(t0) .. "\n  " .. tostring(err):gsub("\n", "\n  "))
        -- what the case's last cutover run said: a failure seen once in
        -- CI must carry enough to explain it
        local r = T.last
        if r then
            print((("  last run: %s\n  exit %s%s\n  stdout: %s\n  stderr: %s"):format(
                table.concat(r.argv, " "), tostring(r.rc), r.signal and (" (signal " .. r.signal .. ")") or "",
                tail(r.stdout or "", 3000), tail(r.stderr or "", 2000)):gsub("\n", "\n  ")))
        end
    end
end

function T.done()
    for _, d in ipairs(T.tmpdirs) do proc.run({ argv = { "rm", "-rf", d } }) end
    print(string.format("%d passed, %d failed", T.passed, T.failed))
    if T.failed > 0 then error(T.failed .. " test(s) failed", 0) end
end

-- A fresh temporary folder, removed by T.done().
function T.tmpdir()
    local base = os.getenv("TMPDIR") or "/tmp"
    local d = base .. "/cutover-test-" .. crypto.random_hex(6)
    assert(fs.mkdir(d, 448))
    T.tmpdirs[#T.tmpdirs + 1] = d
    return d
end

function T.write(path, content, mode)
    assert(fs.write(path, content, mode))
    return path
end

function T.read(path)
    return fs.read(path)
end

-- ASAN_OPTIONS for a run under strace: LeakSanitizer cannot run under
-- ptrace (an ASan build would fail at exit); every other test of that
-- build checks leaks.
function T.asan_no_leak_check()
    local asan = os.getenv("ASAN_OPTIONS")
    return (asan and asan ~= "" and asan .. ":" or "") .. "detect_leaks=0"
end

-- Runs the cutover binary; returns {rc=, stdout=, stderr=}.
-- opts: env, stdin, timeout (default 60 s), product (true: the shipped
-- binary even for a vault run).
function T.run(args, opts)
    opts = opts or {}
    -- crash points (CUTOVER_FAULT) and the low-cost vault exist only in
    -- the test build
    local bin = T.cutover
    local vault_run = opts.env and opts.env.CUTOVER_VAULT_PASSWORD_FILE
        and not opts.product
    if opts.env and opts.env.CUTOVER_FAULT or vault_run then
        bin = T.test_build
    end
    -- opts.wrap: a command that runs cutover (strace, valgrind), as argv
    local argv = {}
    for _, a in ipairs(opts.wrap or {}) do argv[#argv + 1] = a end
    argv[#argv + 1] = bin
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    -- each test file has its own journal (runs lock their hosts there)
    T.state = T.state or T.tmpdir()
    local env = { NO_COLOR = "1", XDG_STATE_HOME = T.state, XDG_DATA_HOME = T.state .. "/data" }
    if vault_run then env.CUTOVER_TEST_VAULT_KDF = "1" end
    for k, v in pairs(opts.env or {}) do env[k] = v end
    local r = assert(proc.run({ argv = argv, env = env, stdin = opts.stdin,
                                timeout = opts.timeout or 60, cwd = opts.cwd }))
    T.last = { argv = args, rc = r.rc, signal = r.signal, stdout = r.stdout, stderr = r.stderr }
    return r
end

-- opts: timeout (default 60 s)
function T.sh(cmd, opts)
    T.state = T.state or T.tmpdir()
    return assert(proc.run({ shell = cmd, timeout = opts and opts.timeout or 60,
                             env = { XDG_STATE_HOME = T.state, XDG_DATA_HOME = T.state .. "/data" } }))
end

-- Runs a shell command line on a real terminal (script(1)) and answers
-- its prompts: dialogue is a list of { "text to wait for", "typed line" }.
-- Each line is typed only once its prompt shows (waiting up to 60 s), not
-- after a guessed delay, so a slow machine cannot type ahead of a prompt.
-- env: extra variables.  Returns { rc=, screen= } (what the terminal
-- showed, echo included); a prompt that never came is an error naming it.
function T.dialogue(dir, cmdline, dialogue, env)
    T.state = T.state or T.tmpdir()
    local q = function(x) return "'" .. x:gsub("'", "'\\''") .. "'" end
    local lines = { "set -u", "cd " .. q(dir), "rm -f .tty.in .tty.out", "mkfifo .tty.in", ": > .tty.out",
        "script -qfec " .. q(cmdline) .. " .tty.out < .tty.in > /dev/null 2>&1 &",
        "spid=$!", "exec 3> .tty.in",
        -- count: the prompt's n-th appearance (a prompt asked twice)
        "wait_for() { i=0; while [ \"$(grep -cF -- \"$1\" .tty.out)\" -lt \"$2\" ]; do " ..
        "i=$((i+1)); if [ $i -gt 600 ] || ! kill -0 $spid 2>/dev/null; then " ..
        "echo \"NO PROMPT: $1\" >&2; break; fi; sleep 0.1; done; }" }
    local seen = {}
    for _, step in ipairs(dialogue) do
        seen[step[1]] = (seen[step[1]] or 0) + 1
        lines[#lines + 1] = "wait_for " .. q(step[1]) .. " " .. seen[step[1]] .. "; printf '%s\\n' " ..
            q(step[2]) .. " >&3"
    end
    lines[#lines + 1] = "exec 3>&-"
    lines[#lines + 1] = "wait $spid; echo $? > .tty.rc"
    local e = { NO_COLOR = "1", XDG_STATE_HOME = T.state, XDG_DATA_HOME = T.state .. "/data" }
    for k, v in pairs(env or {}) do e[k] = v end
    local r = assert(proc.run({ shell = table.concat(lines, "\n"), env = e, timeout = 300 }))
    local screen = fs.read(dir .. "/.tty.out") or ""
    local missing = r.stderr:match("NO PROMPT: ([^\n]*)")
    if missing then
        error("the prompt '" .. missing .. "' never showed; the terminal showed:\n" .. screen, 2)
    end
    return { rc = tonumber((fs.read(dir .. "/.tty.rc") or ""):match("%d+")), screen = screen }
end

-- Everything under dir: path -> "type mode size sha256" (links: target).
function T.snapshot(dir)
    local out = {}
    local function walk(p, rel)
        local st = fs.stat(p)
        local key = rel == "" and "." or rel
        if st.type == "file" then
            out[key] = string.format("file %o %d %s %.9f", st.mode, st.size, fs.sha256(p), st.mtime)
        elseif st.type == "directory" then
            out[key] = string.format("dir %o %.9f", st.mode, st.mtime)
            for _, n in ipairs(fs.list(p)) do walk(p .. "/" .. n, rel == "" and n or rel .. "/" .. n) end
        else
            out[key] = st.type .. string.format(" %o", st.mode)
        end
    end
    walk(dir, "")
    return out
end

function T.same_snapshot(a, b, what)
    for k, v in pairs(a) do
        if b[k] ~= v then error((what or "tree") .. ": " .. k .. " changed: " .. v .. " -> " .. tostring(b[k]), 2) end
    end
    for k, v in pairs(b) do
        if a[k] == nil then error((what or "tree") .. ": " .. k .. " appeared: " .. v, 2) end
    end
end

-- Parses --format json output into a list of events.
function T.events(stdout)
    local json = require("cutover.core.json")
    local out = {}
    for line in stdout:gmatch("[^\n]+") do out[#out + 1] = assert(json.decode(line)) end
    return out
end

return T
