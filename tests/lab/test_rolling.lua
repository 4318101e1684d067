-- A rolling promotion of three lab hosts (the playbook's serial: 1) where
-- the second host's service account password is wrong: the first host
-- finishes, the second is refused at preflight untouched, the third is
-- never started, and the recap says so.
local binary, tests_dir, lab_binary = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local L = dofile(tests_dir .. "/lab/testlab.lua")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local fs = require("cutover.core.fs")

local lab = L.start(T, lab_binary, { hosts = 3, reboot = 1, dcpromo = 0.3 })
local S = lab.secrets
local BOOK = tests_dir .. "/../playbooks/exchange55-dcpromo.yml"
local INV = lab.dir .. "/inventory.yml"

T.test("serial 1: host one finishes, host two is refused untouched, host three never starts", function()
    local d = T.tmpdir()
    T.write(d .. "/pass", "lab vault\n")
    local env = { CUTOVER_VAULT = d .. "/vault", CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass",
                  XDG_STATE_HOME = d .. "/state" }
    for name, value in pairs(S) do
        T.eq(T.run({ "vault", "set", name }, { env = env, stdin = value }).rc, 0, "vault " .. name)
    end
    -- host two's domain account has another password than the vault's
    local f2 = lab.hosts[2].dir .. "/state.json"
    local st = assert(json.decode(assert(fs.read(f2))))
    st.domain_accounts.exchsvc.password = crypto.sha256("lab-password:someone changed it")
    assert(fs.write(f2, json.encode(st, true)))
    local before2 = assert(fs.read(f2))
    local before3 = assert(fs.read(lab.hosts[3].dir .. "/state.json"))

    local r = T.run({ "run", BOOK, "-i", INV, "--non-interactive", "--approve", "promote" },
                    { env = env, timeout = 180 })
    T.eq(r.rc, 4, "host one parks at the SP3 gate: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "exch02[^\n]*never started %(waiting: exch01 at gate sp3_reinstall", "the others wait")
    lab:ssh(1, "net stop MSExchangeSA /y")
    lab:must(1, "D:\\ENG\\SERVER\\SETUP\\I386\\UPDATE.EXE")
    r = T.run({ "resume", "--approve", "sp3_reinstall", "--non-interactive" }, { env = env, timeout = 180 })
    T.eq(r.rc, 1, "the rollout stops at host two: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "exch02[^\n]*failed at refuse%-password", "recap: host two refused")
    T.match(r.stdout, "exch03[^\n]*never started %(stopped: 1 of 1 hosts failed in batch 2",
        "recap: host three never started")
    T.contains(r.stdout, "does not verify", "why host two was refused")
    T.eq(assert(json.decode(lab:file(1, "state.json"))).role, "BACKUP", "host one promoted")
    local after2 = assert(json.decode(assert(fs.read(f2))))
    local b2 = assert(json.decode(before2))
    T.eq(after2.role, "SERVER", "host two still a member server")
    T.eq(json.encode(after2.services), json.encode(b2.services), "host two's services untouched")
    T.eq(json.encode(after2.rights), json.encode(b2.rights), "host two's rights untouched")
    T.eq(fs.read(lab.hosts[3].dir .. "/state.json"), before3, "host three untouched")
end)

T.done()
