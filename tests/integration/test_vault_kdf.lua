-- Integration: the vault's low-cost key derivation for tests (issue 11).
-- Argon2id at MODERATE (256 MiB) per vault open made the suite slow; the
-- test build (cutover-faults) may derive at libsodium's minimum cost when
-- CUTOVER_TEST_VAULT_KDF=1, and says so in the vault's header.  The
-- shipped cutover ignores the variable, never creates such a vault, and
-- refuses to open one (exit 3), naming the file.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")

local TEST_BUILD = binary:gsub("cutover$", "cutover-faults")

local function setup()
    local d = T.tmpdir()
    T.write(d .. "/pass", "correct horse battery\n")
    local env = { HOME = d, XDG_DATA_HOME = d .. "/data", XDG_STATE_HOME = d .. "/state",
                  CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass", NO_COLOR = "1" }
    return d, env
end

-- Runs bin with exactly env (and the harness's PATH); not T.run, which
-- picks the binary itself.
local function run(bin, args, env, stdin)
    local argv = { bin }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local e = { PATH = os.getenv("PATH") or "/usr/bin:/bin" }
    for k, v in pairs(env) do e[k] = v end
    return assert(proc.run({ argv = argv, env = e, stdin = stdin, timeout = 120 }))
end

local function header(path)
    return (assert(fs.read(path, 65536)):match("^[^\n]*"))
end

T.test("the shipped cutover ignores CUTOVER_TEST_VAULT_KDF: MODERATE, no mark", function()
    local d, env = setup()
    env.CUTOVER_TEST_VAULT_KDF = "1"
    local r = run(binary, { "vault", "set", "a", "--vault", d .. "/v" }, env, "value-one\n")
    T.eq(r.rc, 0, "set: " .. r.stderr)
    T.match(header(d .. "/v"), "^cutover%-vault 1 %S+$", "a plain header")
    r = run(binary, { "vault", "list", "--vault", d .. "/v" }, env)
    T.eq(r.rc, 0, "list: " .. r.stderr)
    T.eq(r.stdout, "a\n")
end)

T.test("the test build with CUTOVER_TEST_VAULT_KDF=1: a vault marked kdf=test, and only then", function()
    local d, env = setup()
    env.CUTOVER_TEST_VAULT_KDF = "1"
    local r = run(TEST_BUILD, { "vault", "set", "a", "--vault", d .. "/low" }, env, "value-one\n")
    T.eq(r.rc, 0, "set: " .. r.stderr)
    T.match(header(d .. "/low"), "^cutover%-vault 1 %S+ kdf=test$", "the header says so")
    r = run(TEST_BUILD, { "vault", "set", "b", "--vault", d .. "/low" }, env, "value-two\n")
    T.eq(r.rc, 0, "set again: " .. r.stderr)
    T.match(header(d .. "/low"), " kdf=test$", "still marked")
    -- the test build opens it without the variable too (the header decides)
    env.CUTOVER_TEST_VAULT_KDF = nil
    r = run(TEST_BUILD, { "vault", "list", "--vault", d .. "/low" }, env)
    T.eq(r.rc, 0, "list: " .. r.stderr)
    T.eq(r.stdout, "a\nb\n")
    -- without the variable the test build makes MODERATE vaults
    r = run(TEST_BUILD, { "vault", "set", "a", "--vault", d .. "/moderate" }, env, "value-one\n")
    T.eq(r.rc, 0, "set: " .. r.stderr)
    T.match(header(d .. "/moderate"), "^cutover%-vault 1 %S+$", "a plain header")
end)

T.test("the shipped cutover refuses a low-cost vault (exit 3), vault commands and runs", function()
    local d, env = setup()
    env.CUTOVER_TEST_VAULT_KDF = "1"
    T.eq(run(TEST_BUILD, { "vault", "set", "db", "--vault", d .. "/low" }, env, "Hunter2-zq9X\n").rc, 0)
    local want = d .. "/low: this vault was made by a test build with the low-cost key derivation " ..
        "(kdf=test: a guess at its passphrase costs almost nothing); refusing to use it. " ..
        "Make a new vault with this cutover (cutover vault set NAME)"
    local r = run(binary, { "vault", "list", "--vault", d .. "/low" }, env)
    T.eq(r.rc, 3, "list rc")
    T.eq(r.stderr, "cutover: " .. want .. "\n")
    T.eq(r.stdout, "")
    r = run(binary, { "vault", "set", "other", "--vault", d .. "/low" }, env, "x\n")
    T.eq(r.rc, 3, "set rc")
    T.eq(r.stderr, "cutover: " .. want .. "\n")
    T.match(header(d .. "/low"), " kdf=test$", "set wrote nothing")
    local book = T.write(d .. "/p.yml", "- hosts: localhost\n  steps:\n" ..
        "    - shell: touch " .. d .. "/ran\n    - debug: { msg: '{{ secret.db }}' }\n")
    r = run(binary, { "run", book, "--no-journal", "--vault", d .. "/low" }, env)
    T.eq(r.rc, 3, "run rc: " .. r.stderr)
    T.contains(r.stderr, want)
    T.ok(not fs.stat(d .. "/ran"), "nothing ran")
    T.not_contains(r.stdout .. r.stderr, "Hunter2-zq9X", "no secret shown")
end)

T.test("the mark is authenticated: removing it makes the vault unreadable", function()
    local d, env = setup()
    env.CUTOVER_TEST_VAULT_KDF = "1"
    T.eq(run(TEST_BUILD, { "vault", "set", "a", "--vault", d .. "/low" }, env, "v\n").rc, 0)
    local text = assert(fs.read(d .. "/low", 65536))
    T.write(d .. "/stripped", (text:gsub(" kdf=test\n", "\n", 1)))
    for _, bin in ipairs({ binary, TEST_BUILD }) do
        local r = run(bin, { "vault", "list", "--vault", d .. "/stripped" }, env)
        T.eq(r.rc, 2, bin .. ": rc")
        T.contains(r.stderr, "wrong vault passphrase", bin)
    end
    T.write(d .. "/other", (text:gsub(" kdf=test\n", " kdf=cheap\n", 1)))
    local r = run(TEST_BUILD, { "vault", "list", "--vault", d .. "/other" }, env)
    T.eq(r.rc, 1, "an unknown mark: rc")
    T.eq(r.stderr, "cutover: " .. d .. "/other: damaged vault file (bad header or data)\n")
end)

T.test("the C module refuses kdf=test outside a test build, whatever the Lua asks", function()
    -- the product with a development Lua folder (CUTOVER_LUA_DIR) whose
    -- vault.lua asks for the test cost anyway: core/vault.c says no
    local d, env = setup()
    local src = tests_dir .. "/../lua"
    assert(proc.run({ argv = { "cp", "-r", src, d .. "/lua" } }).rc == 0)
    local path = d .. "/lua/cutover/secrets/vault.lua"
    local code = assert(fs.read(path, 1024 * 1024))
    local patched, n = code:gsub("\nlocal function use_test_kdf%(%)\n",
        "\nlocal function use_test_kdf() do return true end\n", 1)
    T.eq(n, 1, "the patch applies")
    T.write(path, patched)
    env.CUTOVER_LUA_DIR = d .. "/lua"
    local r = run(binary, { "vault", "set", "a", "--vault", d .. "/v" }, env, "v\n")
    T.ok(r.rc ~= 0, "refused")
    T.contains(r.stderr, "the low-cost test key derivation is only in test builds")
    T.ok(not fs.stat(d .. "/v"), "no vault written")
end)

T.done()
