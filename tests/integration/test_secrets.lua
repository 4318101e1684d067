-- Integration: the vault commands and {{ secret.NAME }} end to end, and
-- the secret-leak test: a run that uses secrets everywhere and fails on
-- purpose, then every byte cutover wrote is searched for the values and
-- their encodings.  Failure messages never show a value (lengths and
-- digests only).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local util = require("cutover.util")

local SIMPLE = "Hunter2-zq9X"
local COMPLEX = "p@ss w'o\"rd \\ &^<>|% end\n2nd-Line_kq7!"

-- A folder with its own HOME, XDG dirs, vault and passphrase file.
local function setup()
    local d = T.tmpdir()
    for _, sub in ipairs({ "home", "data", "state", "target" }) do
        assert(fs.mkdir(d .. "/" .. sub, 448))
    end
    T.write(d .. "/pass", "correct horse battery\nsecond line ignored\n")
    local env = {
        HOME = d .. "/home", XDG_DATA_HOME = d .. "/data",
        XDG_STATE_HOME = d .. "/state", PATH = os.getenv("PATH") or "/usr/bin:/bin",
        CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass",
    }
    return d, env, d .. "/data/secrets.vault"
end

local function set(vault, env, name, value)
    local args = { "vault", "set", name }
    if vault then args[#args + 1] = "--vault"; args[#args + 1] = vault end
    return T.run(args, { env = env, stdin = value .. "\n" })
end

-- Every form of a value that must never be printed.
local function forms(value)
    local out = {}
    local function add(s)
        if #s > 0 then
            out[#out + 1] = s
            out[#out + 1] = util.sh_quote(s)
            out[#out + 1] = json.encode(s):sub(2, -2)
            -- as the HTML report would escape it
            out[#out + 1] = (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                                   ['"'] = "&quot;", ["'"] = "&#39;" }))
        end
    end
    add(value)
    for line in value:gmatch("[^\n]+") do add(line) end
    return out
end

-- Fails when any form of any secret is in text; says which, not what.
local function no_leak(text, what)
    for _, secret in ipairs({ SIMPLE, COMPLEX }) do
        for i, f in ipairs(forms(secret)) do
            if text:find(f, 1, true) then
                error(string.format("%s: leaks form %d (%d bytes, sha256 %s) of a secret",
                                    what, i, #f, crypto.sha256(f):sub(1, 12)), 2)
            end
        end
    end
end

-- T.contains and T.eq show the text on failure; output that may hold a
-- secret is checked with these, which show only lengths.
local function has(text, needle, what)
    if not text:find(needle, 1, true) then
        error(string.format("%s: %d bytes of output lack %q", what or "output", #text, needle), 2)
    end
end

local function same(got, want, what)
    if got ~= want then
        error(string.format("%s: %d bytes (sha256 %s), expected %q", what or "output", #got,
                            crypto.sha256(got):sub(1, 12), want), 2)
    end
end

-- Every file under dir (recursively), except skip.
local function files_under(dir, skip, out)
    out = out or {}
    for _, n in ipairs(fs.list(dir) or {}) do
        local p = dir .. "/" .. n
        local st = fs.stat(p)
        if st.type == "directory" then files_under(p, skip, out)
        elseif st.type == "file" and p ~= skip then out[#out + 1] = p end
    end
    return out
end

T.test("vault set, list, rm; --vault; exit codes", function()
    local d, env, vault = setup()
    local r = set(vault, env, "db_password", SIMPLE)
    T.eq(r.rc, 0, "set rc")
    same(r.stdout, "set db_password in " .. vault .. "\n")
    T.eq(fs.stat(vault).mode, 384, "vault mode 0600")
    r = set(vault, env, "other", "x-value-y")
    T.eq(r.rc, 0, "second set")
    r = set(vault, env, "other", "x-value-z")
    same(r.stdout, "replaced other in " .. vault .. "\n")
    r = T.run({ "vault", "list", "--vault", vault }, { env = env })
    T.eq(r.rc, 0, "list rc")
    same(r.stdout, "db_password\nother\n", "list")
    no_leak(r.stdout .. r.stderr, "list")
    r = T.run({ "vault", "rm", "other", "--vault", vault }, { env = env })
    T.eq(r.rc, 0, "rm rc")
    r = T.run({ "vault", "rm", "other", "--vault", vault }, { env = env })
    T.eq(r.rc, 1, "rm of a missing name")
    has(r.stderr, "no secret 'other' in the vault " .. vault)
    r = T.run({ "vault", "list", "--vault", vault }, { env = env })
    same(r.stdout, "db_password\n", "after rm")
    -- CUTOVER_VAULT names the vault when --vault does not
    local env2 = util.copy(env)
    env2.CUTOVER_VAULT = vault
    r = T.run({ "vault", "list" }, { env = env2 })
    same(r.stdout, "db_password\n", "CUTOVER_VAULT")
    -- the default: $XDG_DATA_HOME/cutover/vault, folder 0700
    r = set(nil, env, "d", "default-location")
    T.eq(r.rc, 0, "default vault")
    T.eq(fs.stat(d .. "/data/cutover").mode, 448, "folder 0700")
    T.eq(fs.stat(d .. "/data/cutover/vault").mode, 384, "file 0600")
    -- usage errors
    T.eq(T.run({ "vault" }, { env = env }).rc, 2, "no subcommand")
    T.eq(T.run({ "vault", "set", "1x", "--vault", vault }, { env = env }).rc, 2, "bad name")
    T.eq(T.run({ "vault", "list", "extra", "--vault", vault }, { env = env }).rc, 2, "extra arg")
    T.eq(set(vault, env, "empty", "").rc, 2, "empty value")
    r = T.run({ "vault", "--help" }, { env = env })
    T.eq(r.rc, 0, "--help")
    has(r.stdout, "cutover vault set NAME")
    -- wrong passphrase: exit 2 (invalid input, as run says) and says so
    T.write(d .. "/wrong", "not the passphrase\n")
    env2 = util.copy(env)
    env2.CUTOVER_VAULT_PASSWORD_FILE = d .. "/wrong"
    r = T.run({ "vault", "list", "--vault", vault }, { env = env2 })
    T.eq(r.rc, 2, "wrong passphrase rc")
    has(r.stderr, "wrong vault passphrase")
    same(r.stdout, "")
end)

T.test("no terminal and no passphrase file: a clear error; no secret used: no vault opened", function()
    local d, env, vault = setup()
    T.eq(set(vault, env, "db_password", SIMPLE).rc, 0)
    local bare = util.copy(env)
    bare.CUTOVER_VAULT_PASSWORD_FILE = nil
    -- setsid: no controlling terminal, so /dev/tty cannot be opened
    local r = assert(proc.run({ argv = { "setsid", "-w", binary, "vault", "list", "--vault", vault },
                                env = bare, timeout = 60 }))
    T.eq(r.rc, 2, "rc")
    has(r.stderr, "cannot ask for the vault passphrase")
    has(r.stderr, "CUTOVER_VAULT_PASSWORD_FILE")
    -- a run that reads no secret never opens (or asks for) the vault,
    -- even a broken one
    T.write(d .. "/broken.vault", "garbage\n")
    local book = H.book(d, "- hosts: localhost\n  steps:\n    - debug: { msg: plain }\n")
    r = assert(proc.run({ argv = { "setsid", "-w", binary, "run", book, "--no-journal",
                                   "--vault", d .. "/broken.vault" },
                          env = bare, timeout = 60 }))
    T.eq(r.rc, 0, "run without secrets: " .. r.stderr)
    -- a run that reads one without a way to ask refuses to start, clearly
    book = H.book(d, "- hosts: localhost\n  steps:\n    - debug: { msg: '{{ secret.db_password }}' }\n", "s.yml")
    r = assert(proc.run({ argv = { "setsid", "-w", binary, "run", book, "--no-journal", "--vault", vault },
                          env = bare, timeout = 60 }))
    T.eq(r.rc, 2, "run needing a secret: refused before anything ran")
    has(r.stderr, "cannot ask for the vault passphrase")
end)

T.test("{{ secret.NAME }}: the value reaches the host; unknown names fail clearly", function()
    local d, env, vault = setup()
    T.eq(set(vault, env, "db_password", SIMPLE).rc, 0)
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - copy: { dest: "@T@/target/pw.txt", content: "{{ secret.db_password }}" }
    - debug: { msg: "{{ secret.no_such }}" }
]])
    -- a name the vault lacks, and no terminal to ask: refused at start
    local r = T.run({ "run", book, "--vault", vault }, { env = env })
    T.eq(r.rc, 2, "rc")
    T.ok(T.read(d .. "/target/pw.txt") == nil, "nothing ran")
    has(r.stderr, "secret no_such not in the vault " .. vault .. " and no terminal to ask")
    no_leak(r.stdout .. r.stderr, "run output")
    book = H.book(d, [[
- hosts: localhost
  steps:
    - copy: { dest: "@T@/target/pw.txt", content: "{{ secret.db_password }}" }
]], "ok.yml")
    r = T.run({ "run", book, "--vault", vault }, { env = env })
    T.eq(r.rc, 0, "rc")
    T.ok(T.read(d .. "/target/pw.txt") == SIMPLE, "the file holds the value")
    no_leak(r.stdout .. r.stderr, "run output")
    -- wrong passphrase: refused before anything runs, saying so
    T.write(d .. "/wrong", "nope\n")
    local env2 = util.copy(env)
    env2.CUTOVER_VAULT_PASSWORD_FILE = d .. "/wrong"
    r = T.run({ "run", book, "--vault", vault }, { env = env2 })
    T.eq(r.rc, 2, "wrong passphrase")
    has(r.stderr, "wrong vault passphrase")
end)

local LEAKY = [[
- hosts: localhost
  steps:
    - name: "print {{ secret.db_password }}"
      command: { argv: [printf, "%s|%s\n", "{{ secret.db_password }}", "{{ secret.complex }}"] }
      register: printed
    - name: shell
      shell: echo "{{ secret.db_password }}"
    - copy:
        dest: "@T@/target/conf.txt"
        content: "password={{ secret.db_password }}\n{{ secret.complex }}\n"
    - debug: { msg: "db {{ secret.db_password }} / {{ secret.complex }}" }
    - debug: { msg: "{{ printed.stdout }}" }
    - debug: { msg: "{{ item }}" }
      loop: ["{{ secret.db_password }}", "{{ secret.complex }}"]
    - name: fails with the secret on stderr
      command: { argv: [sh, -c, 'printf "%s" "$1" >&2; echo "$2" >&2; exit 4', x, "{{ secret.complex }}", "{{ secret.db_password }}"] }
      ignore_errors: true
    - assert:
        that: "1 == 2"
        fail_msg: "bad: {{ secret.db_password }} {{ secret.complex }}"
      ignore_errors: true
    - debug: { msg: "{{ error('no: ' .. secret.complex .. secret.db_password) }}" }
      ignore_errors: true
    - set_fact: { both: "{{ secret.db_password }}{{ secret.complex }}" }
    - debug: { msg: "{{ to_json({ a = both }) }}" }
    - fail: { msg: "stop {{ secret.db_password }} {{ secret.complex }}" }
]]

T.test("secret leak: no value or encoding in anything cutover writes", function()
    local d, env, vault = setup()
    T.eq(set(vault, env, "db_password", SIMPLE).rc, 0, "set simple")
    T.eq(set(vault, env, "complex", COMPLEX).rc, 0, "set complex")
    local book = H.book(d, LEAKY)
    local written = {}
    -- text, with diffs and stdout
    local r = T.run({ "run", book, "-D", "-v", "--vault", vault, "--report", d .. "/state/run-report.html" },
        { env = env })
    T.eq(r.rc, 1, "text run fails at the end: " .. #r.stdout)
    has(r.stdout, "********", "text masks")
    has(r.stdout, "failed at fail", "text run went to the end")
    written[#written + 1] = { "text stdout", r.stdout }
    written[#written + 1] = { "text stderr", r.stderr }
    -- the step really received the values
    local conf = T.read(d .. "/target/conf.txt")
    T.ok(conf == "password=" .. SIMPLE .. "\n" .. COMPLEX .. "\n", "copy content is the real value")
    fs.remove(d .. "/target/conf.txt")
    -- JSON events
    local jr = T.run({ "run", book, "-D", "-v", "--vault", vault, "--format", "json" }, { env = env })
    local parsed, events = pcall(T.events, jr.stdout)
    T.ok(parsed, "every line of the JSON output is JSON (" .. #jr.stdout .. " bytes)")
    T.eq(jr.rc, 1, "json run")
    T.ok(#events > 10, "events")
    has(jr.stdout, "********", "json masks")
    written[#written + 1] = { "json stdout", jr.stdout }
    written[#written + 1] = { "json stderr", jr.stderr }
    -- a check run and a failing --limit (an error message on stderr)
    r = T.run({ "run", book, "--check", "-D", "--vault", vault }, { env = env })
    written[#written + 1] = { "check stdout", r.stdout }
    written[#written + 1] = { "check stderr", r.stderr }
    -- a saved plan, its review, and resume/show of the journal
    r = T.run({ "plan", book, "--vault", vault, "-o", d .. "/state/leaky.plan.json" }, { env = env })
    written[#written + 1] = { "plan stdout", r.stdout }
    written[#written + 1] = { "plan stderr", r.stderr }
    T.ok(T.read(d .. "/state/leaky.plan.json") ~= nil, "the plan was written: rc " .. r.rc .. " " .. r.stderr)
    r = T.run({ "show-plan", d .. "/state/leaky.plan.json" }, { env = env })
    written[#written + 1] = { "show-plan", r.stdout .. r.stderr }
    -- the plan applied: its predictions (step names holding the secret)
    -- go into the journal and the run's report (plan versus actual)
    r = T.run({ "apply", d .. "/state/leaky.plan.json", "--vault", vault }, { env = env })
    written[#written + 1] = { "apply stdout", r.stdout }
    written[#written + 1] = { "apply stderr", r.stderr }
    local applied = r.stdout:match("%[run (%S+)%]")
    T.ok(applied, "the plan was applied: rc " .. r.rc .. " " .. r.stderr)
    local arep = T.run({ "report", applied, "-o", "-" }, { env = env }).stdout
    has(arep, "Plan versus actual", "the applied run's report compares with the plan")
    arep = T.run({ "report", applied, "--format", "json", "-o", "-" }, { env = env }).stdout
    has(json.decode(arep).plan and arep, "print ********", "a planned step's name is there, masked")
    r = T.run({ "history", "--format", "json" }, { env = env })
    local runs = json.decode(r.stdout).runs
    for _, run in ipairs(runs) do
        local sh = T.run({ "show", run.id, "--format", "json" }, { env = env })
        written[#written + 1] = { "show " .. run.id, sh.stdout .. sh.stderr }
        -- the run's report, HTML and JSON
        local rep = T.run({ "report", run.id, "-o", "-" }, { env = env })
        written[#written + 1] = { "report " .. run.id, rep.stdout .. rep.stderr }
        rep = T.run({ "report", run.id, "--format", "json", "-o", "-" }, { env = env })
        written[#written + 1] = { "report json " .. run.id, rep.stdout .. rep.stderr }
    end
    -- everything cutover left under its state and data folders
    for _, p in ipairs(files_under(d .. "/state", nil)) do
        written[#written + 1] = { p, T.read(p) }
    end
    for _, p in ipairs(files_under(d .. "/data", vault)) do
        written[#written + 1] = { p, T.read(p) }
    end
    T.ok(T.read(d .. "/state/run-report.html") ~= nil, "run --report wrote its report")
    has(T.read(d .. "/state/run-report.html"), "********", "the report masks")
    for _, w in ipairs(written) do no_leak(w[2], w[1]) end
end)

T.done()
