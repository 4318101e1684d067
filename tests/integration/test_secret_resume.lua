-- Integration: secrets across a resume.  Values captured in one process
-- (secret gate answers, results holding vault values, -e secrets,
-- private prompts) are sealed in the journal; a later process (a resume,
-- after a park or a kill -9) must have the real values, mask them in
-- everything it writes, and refuse rather than use a masked copy.
-- Failure messages never show a value (lengths and digests only).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local util = require("cutover.util")

-- A folder with an inventory of one local host "a", its own journal,
-- vault and passphrase file.  Returns d, env.
local function setup(book, extra_files)
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", "all:\n  vars: { ansible_connection: local }\n  hosts:\n    a: {}\n")
    T.write(d .. "/p.yml", (book:gsub("@D@", d)))
    for name, text in pairs(extra_files or {}) do T.write(d .. "/" .. name, (text:gsub("@D@", d))) end
    T.write(d .. "/pass", "vault pass phrase\n")
    local env = { XDG_STATE_HOME = d .. "/state", XDG_DATA_HOME = d .. "/data",
                  CUTOVER_VAULT = d .. "/vault", CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass",
                  PATH = os.getenv("PATH") or "/usr/bin:/bin" }
    return d, env
end

local function cutover(d, env, args, opts)
    opts = opts or {}
    local all = {}
    for _, a in ipairs(args) do all[#all + 1] = a end
    if args[1] == "run" or args[1] == "plan" then
        all[#all + 1] = "-i"
        all[#all + 1] = d .. "/inv.yml"
    end
    local e = util.copy(env)
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return T.run(all, { env = e, stdin = opts.stdin })
end

local function vault_set(d, env, name, value)
    local r = cutover(d, env, { "vault", "set", name }, { stdin = value .. "\n" })
    T.eq(r.rc, 0, "vault set " .. name .. ": " .. r.stderr)
end

-- Fails when text holds any of the values (raw, sh-quoted, JSON-escaped);
-- says which value and where, never the value.
local function no_leak(text, values, what)
    for i, v in ipairs(values) do
        for _, f in ipairs({ v, util.sh_quote(v), json.encode(v):sub(2, -2) }) do
            if text:find(f, 1, true) then
                error(string.format("%s: leaks secret #%d (%d bytes, sha256 %s)", what, i, #v,
                                    crypto.sha256(v):sub(1, 12)), 2)
            end
        end
    end
end

-- Everything the journal holds on disk.
local function journal_bytes(d)
    local p = d .. "/state/cutover/journal.db"
    return (T.read(p) or "") .. (T.read(p .. "-wal") or "")
end

local function run_id(r) return r.stdout:match("%[run (%S+)%]") end

local function same(got, want, what)
    if got ~= want then
        error(string.format("%s: got %s bytes (sha256 %s), expected %d bytes", what,
            got and #got or "nil", got and crypto.sha256(got):sub(1, 12) or "-", #want), 2)
    end
end

------------------------------------------------------------------ item 1

local GATE_BOOK = [[
- hosts: all
  steps:
    - id: pw
      pause: { gate: password, prompt: "The service password?", secret: true }
      register: g
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - id: echo
      shell: "echo {{ g.answer }}"
      register: echoed
    - id: fact
      set_fact: { copy_of: "{{ g.answer }}" }
    - id: items
      debug: { msg: "item {{ item }}" }
      loop: ["{{ g.answer }}"]
    - id: show-fact
      debug: { msg: "fact {{ copy_of }} {{ echoed.stdout }}" }
    - id: write
      copy: { dest: "@D@/pw.txt", content: "{{ g.answer }}" }
]]

T.test("item1_gate_answer_after_resume: a secret answer stays masked after kill -9 and resume", function()
    local answer = "Gate-Answer-7qzK"
    local d, env = setup(GATE_BOOK)
    vault_set(d, env, "unused", "unused-value-1")
    -- answered and approved in the first process, killed after set_fact
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "--answer-stdin", "password",
                                "--approve", "later" },
                      { stdin = answer .. "\n", env = { CUTOVER_FAULT = "kill-after:fact@a" } })
    T.ok(r.rc ~= 0, "killed")
    local out = r.stdout .. r.stderr
    T.eq(T.read(d .. "/pw.txt"), nil, "killed before the copy")
    -- a new process: every value comes back from the journal
    r = cutover(d, env, { "resume", "--non-interactive", "-v" })
    T.eq(r.rc, 0, "resume: " .. #r.stdout .. " bytes")
    same(T.read(d .. "/pw.txt"), answer, "the real answer reached the copy")
    T.contains(r.stdout, "done before the restart", "replayed")
    T.contains(r.stdout, "********", "masked")
    out = out .. r.stdout .. r.stderr
    local id = run_id(r)
    local show = cutover(d, env, { "show", id })
    local show_json = cutover(d, env, { "show", id, "--format", "json" })
    T.eq(show_json.rc, 0, "show json")
    no_leak(out, { answer }, "run and resume output")
    no_leak(show.stdout .. show.stderr, { answer }, "cutover show")
    no_leak(show_json.stdout, { answer }, "cutover show --format json")
    no_leak(journal_bytes(d), { answer }, "journal")
end)

T.test("item1_gate_answer_after_resume: parked, answered, parked again, resumed with --format json", function()
    local answer = "Json-Gate-Ans-55x"
    local d, env = setup(GATE_BOOK)
    vault_set(d, env, "unused", "unused-value-1")
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked at the secret gate")
    local id = run_id(r)
    r = cutover(d, env, { "resume", id, "--answer-stdin", "password", "--non-interactive" },
                { stdin = answer .. "\n" })
    T.eq(r.rc, 4, "parked at the next gate")
    local out = r.stdout .. r.stderr
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive", "-v", "--format", "json" })
    T.eq(r.rc, 0, "resume: " .. #r.stdout .. " bytes")
    out = out .. r.stdout .. r.stderr
    same(T.read(d .. "/pw.txt"), answer, "the real answer reached the copy")
    local events = T.events(r.stdout)
    local msgs = {}
    for _, e in ipairs(events) do
        if e.event == "host_result" and e.step == "show-fact" then msgs[#msgs + 1] = e.result.msg end
    end
    T.eq(msgs[1], "fact ******** ********", "the set_fact copy and the echoed output are masked")
    local show = cutover(d, env, { "show", id })
    local show_json = cutover(d, env, { "show", id, "--format", "json" })
    no_leak(out, { answer }, "resume output")
    no_leak(show.stdout .. show.stderr, { answer }, "cutover show")
    no_leak(show_json.stdout, { answer }, "cutover show --format json")
    no_leak(journal_bytes(d), { answer }, "journal")
end)

T.test("item1_mark_done_replays_sealed: --mark-done of a failed step replays its real (sealed) result", function()
    local api = "Api-Key-93kdQ"
    local d, env = setup([[
- hosts: all
  steps:
    - id: fetch
      shell: "printf %s '{{ secret.api }}'; exit 3"
      register: r
    - id: first
      copy: { dest: "@D@/api1.txt", content: "{{ r.stdout }}" }
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - id: second
      copy: { dest: "@D@/api2.txt", content: "{{ r.stdout }}" }
]])
    vault_set(d, env, "api", api)
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 1, "the step failed")
    local out = r.stdout .. r.stderr
    local id = run_id(r)
    r = cutover(d, env, { "resume", id, "--mark-done", "fetch", "--non-interactive" })
    T.eq(r.rc, 4, "marked done, then parked: " .. #r.stdout)
    out = out .. r.stdout .. r.stderr
    same(T.read(d .. "/api1.txt"), api, "the marked step's real stdout, not the mask")
    -- a later process replays the marked row: still the real value
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive", "-v" })
    T.eq(r.rc, 0, "resume")
    out = out .. r.stdout .. r.stderr
    same(T.read(d .. "/api2.txt"), api, "the marked row keeps the sealed value")
    no_leak(out, { api }, "output")
    no_leak(journal_bytes(d), { api }, "journal")
end)

------------------------------------------------------------------ item 6

T.test("item6_unopenable_sealed_refuses: a recreated vault cannot open the sealed answer: exit 3, no mask deployed",
    function()
    local answer = "Sealed-Ans-0pq"
    local d, env = setup(GATE_BOOK)
    vault_set(d, env, "unused", "unused-value-1")
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "--answer-stdin", "password" },
                      { stdin = answer .. "\n" })
    T.eq(r.rc, 4, "parked at the next gate")
    local id = run_id(r)
    -- the vault is recreated: same passphrase, new salt, so another key
    T.ok(fs.remove(d .. "/vault"), "vault removed")
    vault_set(d, env, "unused", "unused-value-1")
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" })
    T.eq(r.rc, 3, "refused: " .. r.stderr)
    T.contains(r.stderr, "step 'pw'", "names the step")
    T.contains(r.stderr, "'g'", "names the value (its register)")
    T.contains(r.stderr, "cannot be opened", "says why")
    T.eq(T.read(d .. "/pw.txt"), nil, "nothing deployed (no mask in a file)")
    T.not_contains(r.stdout, "done before the restart", "nothing replayed")
    -- the run is still there to resume with the right vault
    T.eq(json.decode(cutover(d, env, { "show", id, "--format", "json" }).stdout).run.status, "parked",
         "the run is left as it was")
end)

T.test("item6_unopenable_sealed_refuses: a private prompt's sealed answer that cannot be opened", function()
    local d, env = setup([[
- hosts: all
  vars_prompt:
    - name: token
      prompt: "Deploy token"
  steps:
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - id: write
      copy: { dest: "@D@/tok.txt", content: "{{ token }}" }
]])
    vault_set(d, env, "unused", "unused-value-1")
    -- on a terminal the prompt is asked; without one -e answers it
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "-e", "token=Prompt-Tok-8811" })
    T.eq(r.rc, 4, "parked: " .. r.stderr)
    local id = run_id(r)
    T.ok(fs.remove(d .. "/vault"), "vault removed")
    vault_set(d, env, "unused", "unused-value-1")
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" })
    T.eq(r.rc, 3, "refused: " .. r.stderr)
    T.contains(r.stderr, "token", "names the value")
    T.eq(T.read(d .. "/tok.txt"), nil, "nothing deployed")
end)

------------------------------------------------------------------ item 7

local EV_BOOK = [[
- hosts: all
  vars_prompt:
    - name: token
      prompt: "Deploy token"
  steps:
    - id: uses-vault
      debug: { msg: "db {{ secret.dbpw }}" }
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - id: write
      copy: { dest: "@D@/ev.txt", content: "{{ file_token }}|{{ match }}|{{ token }}|{{ plain }}" }
]]

local FILE_TOKEN, VAULT_VAL, PROMPT_ANS = "File-Tok-55qA", "Vault-Val-x81B", "Prompt-Ans-3kC"

T.test("item7_extra_vars_sealed: -e @FILE, -e matching a vault value and a private prompt's -e answer are sealed, " ..
    "not in clear", function()
    local d, env = setup(EV_BOOK, { ["vars.yml"] = "file_token: " .. FILE_TOKEN .. "\n" })
    vault_set(d, env, "dbpw", VAULT_VAL)
    local args = { "-e", "@" .. d .. "/vars.yml", "-e", "match=" .. VAULT_VAL, "-e", "token=" .. PROMPT_ANS,
                   "-e", "plain=visible-value" }
    local all = { "run", d .. "/p.yml", "--non-interactive" }
    for _, a in ipairs(args) do all[#all + 1] = a end
    local r = cutover(d, env, all)
    T.eq(r.rc, 4, "parked at the gate: " .. r.stderr)
    local out = r.stdout .. r.stderr
    local id = run_id(r)
    local secrets = { FILE_TOKEN, VAULT_VAL, PROMPT_ANS }
    no_leak(journal_bytes(d), secrets, "journal")
    local show = cutover(d, env, { "show", id, "--format", "json" })
    T.eq(show.rc, 0, "show")
    no_leak(show.stdout, secrets, "cutover show --format json")
    local ev = json.decode(show.stdout).run.extra_vars
    T.eq(ev.file_token, "********", "the file's value is masked in the record")
    T.eq(ev.match, "********", "a vault value is masked in the record")
    T.eq(ev.token, "********", "a private prompt's answer is masked in the record")
    T.eq(ev.plain, "visible-value", "other -e values stay readable")
    -- resume has the real values back
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" })
    T.eq(r.rc, 0, "resume: " .. r.stderr)
    out = out .. r.stdout .. r.stderr
    same(T.read(d .. "/ev.txt"), FILE_TOKEN .. "|" .. VAULT_VAL .. "|" .. PROMPT_ANS .. "|visible-value",
         "the real values were used after the resume")
    no_leak(out, { VAULT_VAL, PROMPT_ANS }, "output")
    no_leak(journal_bytes(d), secrets, "journal after the resume")
end)

T.test("item7_extra_vars_sealed: -e @FILE without a vault: masked in the journal, read again on resume", function()
    local d, env = setup([[
- hosts: all
  steps:
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - id: write
      copy: { dest: "@D@/ev.txt", content: "{{ file_token }}" }
]], { ["vars.yml"] = "file_token: " .. FILE_TOKEN .. "\n" })
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "-e", "@" .. d .. "/vars.yml" })
    T.eq(r.rc, 4, "parked: " .. r.stderr)
    local id = run_id(r)
    no_leak(journal_bytes(d), { FILE_TOKEN }, "journal")
    no_leak(cutover(d, env, { "show", id, "--format", "json" }).stdout, { FILE_TOKEN }, "show --format json")
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" })
    T.eq(r.rc, 0, "resume: " .. r.stderr)
    same(T.read(d .. "/ev.txt"), FILE_TOKEN, "the file was read again")
end)

T.test("item7_extra_vars_sealed: saved plans mask secret -e values and do not hash them plainly", function()
    local d, env = setup(EV_BOOK, { ["vars.yml"] = "file_token: " .. FILE_TOKEN .. "\n" })
    vault_set(d, env, "dbpw", VAULT_VAL)
    local ev_args = { "-e", "@" .. d .. "/vars.yml", "-e", "match=" .. VAULT_VAL, "-e", "token=" .. PROMPT_ANS,
                      "-e", "plain=visible-value" }
    local all = { "plan", d .. "/p.yml", "-o", d .. "/p.plan" }
    for _, a in ipairs(ev_args) do all[#all + 1] = a end
    local r = cutover(d, env, all)
    T.ok(T.read(d .. "/p.plan") ~= nil, "plan written: " .. r.stderr)
    local text = T.read(d .. "/p.plan")
    no_leak(text, { FILE_TOKEN, VAULT_VAL, PROMPT_ANS }, "plan file")
    local plan = json.decode(text)
    T.eq(plan.extra_vars.values.file_token, "********", "file value masked")
    T.eq(plan.extra_vars.values.plain, "visible-value", "plain value kept")
    local ev = { file_token = FILE_TOKEN, match = VAULT_VAL, token = PROMPT_ANS, plain = "visible-value" }
    T.ok(plan.extra_vars.sha256 ~= crypto.sha256(json.encode(ev)), "the digest is not a plain hash of the values")
    -- apply with the same -e accepts the plan's digest
    all = { "apply", d .. "/p.plan", "--non-interactive", "--approve", "later" }
    for _, a in ipairs(ev_args) do all[#all + 1] = a end
    r = cutover(d, env, all)
    T.not_contains(r.stderr, "extra vars changed", "same extra vars accepted")
    T.eq(r.rc, 0, "applied: " .. r.stderr)
    -- a different value is noticed
    all = { "apply", d .. "/p.plan", "--non-interactive", "--approve", "later", "-e", "@" .. d .. "/vars.yml",
            "-e", "match=other", "-e", "token=" .. PROMPT_ANS, "-e", "plain=visible-value" }
    r = cutover(d, env, all)
    T.eq(r.rc, 3, "changed extra vars refused")
    T.contains(r.stderr, "extra vars changed", "says why")
end)

T.test("item6_unopenable_sealed_refuses: no vault, or a wrong passphrase, on resume: exit 3", function()
    local answer = "Sealed-Ans-7rt"
    local d, env = setup(GATE_BOOK)
    vault_set(d, env, "unused", "unused-value-1")
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "--answer-stdin", "password" },
                      { stdin = answer .. "\n" })
    T.eq(r.rc, 4, "parked at the next gate")
    local id = run_id(r)
    T.write(d .. "/wrong", "not the passphrase\n")
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" },
                { env = { CUTOVER_VAULT_PASSWORD_FILE = d .. "/wrong" } })
    T.eq(r.rc, 3, "wrong passphrase: refused: " .. r.stderr)
    T.contains(r.stderr, "wrong vault passphrase", "says why")
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" },
                { env = { CUTOVER_VAULT = d .. "/no-such.vault" } })
    T.eq(r.rc, 3, "no vault: refused: " .. r.stderr)
    T.contains(r.stderr, "no vault at " .. d .. "/no-such.vault", "says why")
    T.eq(T.read(d .. "/pw.txt"), nil, "nothing deployed")
    -- with the right vault it goes on
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" })
    T.eq(r.rc, 0, "the right vault: " .. r.stderr)
    same(T.read(d .. "/pw.txt"), answer, "the real answer")
end)

T.test("item7_extra_vars_sealed: -e holding a vault value when the playbook reads no secret", function()
    local d, env = setup([[
- hosts: all
  steps:
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - id: write
      copy: { dest: "@D@/ev.txt", content: "{{ pw }}" }
]])
    vault_set(d, env, "dbpw", VAULT_VAL)
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "-e", "pw=" .. VAULT_VAL })
    T.eq(r.rc, 4, "parked: " .. r.stderr)
    local id = run_id(r)
    no_leak(journal_bytes(d), { VAULT_VAL }, "journal")
    no_leak(cutover(d, env, { "show", id, "--format", "json" }).stdout, { VAULT_VAL }, "show --format json")
    r = cutover(d, env, { "resume", id, "--approve", "later", "--non-interactive" })
    T.eq(r.rc, 0, "resume: " .. r.stderr)
    same(T.read(d .. "/ev.txt"), VAULT_VAL, "the real value after the resume")
end)

----------------------------------------------------------------- item 12

-- Runs p.yml (first step writes @D@/first.txt) and expects a refusal
-- before any step ran, naming the secret and where it is used.
local function refused_before_start(d, env, args, name, where)
    local all = { "run", d .. "/p.yml", "--non-interactive" }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    local r = cutover(d, env, all)
    T.eq(r.rc, 2, "refused before it started: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/first.txt"), nil, "no step ran")
    T.contains(r.stderr, name, "names the secret")
    T.contains(r.stderr, where, "says where it is used")
    return r
end

T.test("item12_secrets_resolved_before_start: a secret named only in a template file", function()
    local d, env = setup([[
- hosts: all
  steps:
    - id: first
      copy: { dest: "@D@/first.txt", content: "ran" }
    - id: render
      template: { src: conf.j2, dest: "@D@/conf.txt" }
]], { ["conf.j2"] = "user=app\npassword={{ secret.tpl_pw }}\n" })
    vault_set(d, env, "other", "other-value-1")
    refused_before_start(d, env, nil, "tpl_pw", d .. "/conf.j2:2")
    -- once the vault has it, the run has it (the vault is opened for it)
    vault_set(d, env, "tpl_pw", "Tpl-Secret-19z")
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 0, "runs: " .. r.stdout .. r.stderr)
    same(T.read(d .. "/conf.txt"), "user=app\npassword=Tpl-Secret-19z\n", "rendered with the secret")
    no_leak(r.stdout .. r.stderr, { "Tpl-Secret-19z" }, "output")
end)

T.test("item12_secrets_resolved_before_start: a secret named only in an inventory variable", function()
    local d, env = setup([[
- hosts: all
  steps:
    - id: first
      copy: { dest: "@D@/first.txt", content: "ran" }
    - id: use
      copy: { dest: "@D@/inv.txt", content: "{{ db_pass }}" }
]])
    T.write(d .. "/inv.yml", "all:\n  vars: { ansible_connection: local }\n  hosts:\n" ..
        "    a: { db_pass: \"{{ secret.inv_pw }}\" }\n")
    vault_set(d, env, "other", "other-value-1")
    refused_before_start(d, env, nil, "inv_pw", "inventory variable 'db_pass' of host a")
    vault_set(d, env, "inv_pw", "Inv-Secret-22y")
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 0, "runs: " .. r.stdout .. r.stderr)
    same(T.read(d .. "/inv.txt"), "Inv-Secret-22y", "the inventory variable had the secret")
end)

T.test("item12_secrets_resolved_before_start: a secret named only in -e, and in group_vars", function()
    local d, env = setup([[
- hosts: all
  steps:
    - id: first
      copy: { dest: "@D@/first.txt", content: "ran" }
    - id: use
      copy: { dest: "@D@/ev.txt", content: "{{ pw }} {{ gv }}" }
]])
    fs.mkdir(d .. "/group_vars", 448)
    T.write(d .. "/group_vars/all.yml", "gv: \"{{ secret.gv_pw }}\"\n")
    vault_set(d, env, "gv_pw", "Group-Secret-4w")
    refused_before_start(d, env, { "-e", "pw={{ secret.ev_pw }}" }, "ev_pw", "-e pw")
    vault_set(d, env, "ev_pw", "Ev-Secret-31x")
    T.ok(fs.remove(d .. "/first.txt") or true, "")
    local r = cutover(d, env, { "run", d .. "/p.yml", "--non-interactive", "-e", "pw={{ secret.ev_pw }}" })
    T.eq(r.rc, 0, "runs: " .. r.stdout .. r.stderr)
    same(T.read(d .. "/ev.txt"), "Ev-Secret-31x Group-Secret-4w", "both secrets reached the step")
end)

T.done()
