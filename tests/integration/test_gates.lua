-- Approval gates: park (exit 4), approve from a second process, answers,
-- advance approval, prompts on a terminal, locks held while parked.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local json = require("cutover.core.json")

local function setup(book, hosts)
    local d = T.tmpdir()
    local lines = { "all:", "  vars: { ansible_connection: local }", "  hosts:" }
    for _, h in ipairs(hosts or { "a", "b" }) do lines[#lines + 1] = "    " .. h .. ": {}" end
    T.write(d .. "/inv.yml", table.concat(lines, "\n") .. "\n")
    T.write(d .. "/p.yml", book:gsub("@D@", d))
    return d
end

local function cutover(d, args, opts)
    opts = opts or {}
    local all = {}
    for _, a in ipairs(args) do all[#all + 1] = a end
    if args[1] == "run" then
        all[#all + 1] = "-i"
        all[#all + 1] = d .. "/inv.yml"
    end
    opts.env = { XDG_STATE_HOME = d .. "/state" }
    return T.run(all, opts)
end

local function log(d) return T.read(d .. "/log") or "" end

local function sorted_lines(s)
    local t = {}
    for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
    table.sort(t)
    return table.concat(t, " ")
end

local GATED = [[
- hosts: all
  steps:
    - shell: "echo before-{{ inventory_hostname }} >> @D@/log"
    - id: confirm
      pause: { gate: go, prompt: "Proceed?" }
    - shell: "echo after-{{ inventory_hostname }} >> @D@/log"
]]

T.test("without a terminal hosts park at the gate (exit 4); a second process approves", function()
    local d = setup(GATED)
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked")
    T.match(r.stdout, "parked%s+a%s+confirm", "a parked")
    T.match(r.stdout, "parked%s+b%s+confirm", "b parked")
    local id = r.stdout:match("%[run (%S+)%]")
    T.contains(r.stdout, "cutover resume " .. id .. " --approve go\n", "how to approve all")
    T.contains(r.stdout, "--approve go@a", "how to approve one")
    T.eq(sorted_lines(log(d)), "before-a before-b", "nothing after the gate ran")
    r = cutover(d, { "resume", id, "--approve", "go@a", "--non-interactive" })
    T.eq(r.rc, 4, "b still waits")
    T.eq(sorted_lines(log(d)), "after-a before-a before-b", "a went on")
    r = cutover(d, { "resume", "--approve", "go", "--non-interactive" })
    T.eq(r.rc, 0, "done: " .. r.stdout)
    T.eq(sorted_lines(log(d)), "after-a after-b before-a before-b", "each step once")
    local show = json.decode(cutover(d, { "show", id, "--format", "json" }).stdout)
    local approvals = {}
    for _, e in ipairs(show.events) do
        if e.kind == "approve" then
            approvals[#approvals + 1] = e.name .. "@" .. e.host
            T.ok(e.os_user ~= nil and e.time ~= nil, "who and when recorded")
        end
    end
    table.sort(approvals)
    T.eq(table.concat(approvals, " "), "go@a go@b", "each approval recorded")
end)

T.test("--approve on run approves in advance", function()
    local d = setup(GATED)
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive", "--approve", "go" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout)
    T.eq(sorted_lines(log(d)), "after-a after-b before-a before-b", "ran through")
end)

T.test("a parked run keeps its hosts locked; abort releases them", function()
    local d = setup(GATED)
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked")
    local id = r.stdout:match("%[run (%S+)%]")
    local other = cutover(d, { "run", d .. "/p.yml", "--non-interactive", "--approve", "go" })
    T.eq(other.rc, 3, "refused while parked")
    T.contains(other.stderr, "locked by run " .. id, "names the parked run")
    T.eq(cutover(d, { "abort", id }).rc, 0, "abort")
    other = cutover(d, { "run", d .. "/p.yml", "--non-interactive", "--approve", "go" })
    T.eq(other.rc, 0, "runs after abort")
end)

T.test("resume shows which steps were done before the restart, ok ones too", function()
    local d = setup([[
- hosts: all
  steps:
    - id: look
      command: "true"
      changed_when: false
    - id: write
      shell: "echo before >> @D@/log"
    - id: confirm
      pause: { gate: go, prompt: "Proceed?" }
]], { "a" })
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked")
    r = cutover(d, { "resume", "--approve", "go", "--non-interactive" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.match(r.stdout, "ok%s+a%s+look[^\n]*\n%s+done before the restart", "the ok step")
    T.match(r.stdout, "changed%s+a%s+write[^\n]*\n%s+done before the restart", "the changed step")
    T.eq(log(d), "before\n", "neither ran again")
end)

T.test("choices and --answer: the answer is registered; a wrong one fails", function()
    local d = setup([[
- hosts: all
  steps:
    - id: colour
      pause: { gate: colour, prompt: "Which colour?", choices: [red, blue] }
      register: c
    - shell: "echo {{ inventory_hostname }}-{{ c.answer }} >> @D@/log"
]], { "a" })
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked")
    T.contains(r.stdout, "answer one of red, blue:", "the hint names the choices")
    T.contains(r.stdout, "--answer colour=red", "and the option")
    T.ok(not r.stdout:find("--approve colour", 1, true), "no --approve hint for a gate that needs a value")
    r = cutover(d, { "resume", "--approve", "colour", "--non-interactive" })
    T.eq(r.rc, 4, "--approve alone does not answer a gate with choices")
    T.eq(log(d), "", "nothing after the gate ran")
    r = cutover(d, { "resume", "--answer", "colour=green", "--non-interactive" })
    T.eq(r.rc, 1, "not a choice")
    T.contains(r.stdout, "'green' is not one of red, blue", "message")
    r = cutover(d, { "resume", "--answer", "colour=blue", "--non-interactive" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout)
    T.eq(log(d), "a-blue\n", "the answer was used")
end)

T.test("a secret answer: needs a vault, is sealed in the journal, and a later resume has it", function()
    local secret = "Gate P@ss \"&^<>| word"
    local d = setup([[
- hosts: all
  steps:
    - id: pw
      pause: { gate: password, prompt: "The service password?", secret: true }
      register: pw
    - id: later
      pause: { gate: later, prompt: "Go on?" }
    - copy: { dest: "@D@/pw.txt", content: "{{ pw.answer }}" }
    - command: { argv: [echo, "{{ pw.answer }}"] }
]], { "a" })
    -- without a vault the run refuses to start: the answer could not be kept
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 2, "refused without a vault")
    T.contains(r.stderr, "there is no vault at", "says why")
    T.write(d .. "/pass", "vault pass\n")
    local venv = { XDG_STATE_HOME = d .. "/state", CUTOVER_VAULT = d .. "/vault",
                   CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass" }
    T.eq(T.run({ "vault", "set", "unused" }, { env = venv, stdin = "x\n" }).rc, 0, "vault created")
    r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--non-interactive" }, { env = venv })
    T.eq(r.rc, 4, "parked at the secret gate")
    r = T.run({ "resume", "--answer-stdin", "password", "--non-interactive" }, { env = venv, stdin = secret .. "\n" })
    T.eq(r.rc, 4, "parked at the next gate")
    local out = r.stdout .. r.stderr
    -- a new process: the answer comes back from the journal, unsealed
    r = T.run({ "resume", "--approve", "later", "--non-interactive", "-v", "--format", "json" }, { env = venv })
    T.eq(r.rc, 0, "exit code: " .. #r.stdout .. " bytes of output")
    T.eq(T.read(d .. "/pw.txt"), secret, "the real answer reached the later step")
    out = out .. r.stdout .. r.stderr
    local everything = out .. (T.read(d .. "/state/cutover/journal.db") or "") ..
        (T.read(d .. "/state/cutover/journal.db-wal") or "")
    T.ok(not everything:find(secret, 1, true), "the secret is nowhere in the output or journal")
    T.contains(out, "********", "it is masked")
end)

T.test("vars_prompt: asked on a terminal (private: no echo, masked); -e answers it; no terminal refuses", function()
    local d = setup([[
- hosts: all
  vars_prompt:
    - name: release
      prompt: "Release to install"
      private: false
      default: "2.4.1"
    - name: token
      prompt: "Deploy token"
  steps:
    - copy: { dest: "@D@/out.txt", content: "{{ release }} {{ token }}" }
    - debug: { msg: "token is {{ token }}" }
]], { "a" })
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 2, "refused without answers")
    T.contains(r.stderr, "vars_prompt 'release' needs an answer and there is no terminal", "says which")
    T.eq(T.read(d .. "/out.txt"), nil, "nothing ran")
    r = cutover(d, { "run", d .. "/p.yml", "--non-interactive", "-e", "release=3.0", "-e", "token=tk-ABCDEF" })
    T.eq(r.rc, 0, "answered with -e: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/out.txt"), "3.0 tk-ABCDEF", "used")
    -- on a terminal: the release defaults on an empty line; the token is
    -- typed without echo and never shown.  The vault holds the token (a
    -- private prompt is captured only sealed with its key).
    T.write(d .. "/pass", "vault pass\n")
    local venv = { XDG_STATE_HOME = d .. "/state2", CUTOVER_VAULT = d .. "/vault",
                   CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass" }
    T.eq(T.run({ "vault", "set", "unused" }, { env = venv, stdin = "x\n" }).rc, 0, "vault created")
    local t = T.dialogue(d, T.cutover .. " run p.yml -i inv.yml",
        { { "Release to install [2.4.1]:", "" }, { "Deploy token:", "tk-SECRET9" } },
        { XDG_STATE_HOME = d .. "/state2", CUTOVER_VAULT = d .. "/vault", CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass" })
    T.eq(t.rc, 0, "ran: " .. t.screen)
    T.eq(T.read(d .. "/out.txt"), "2.4.1 tk-SECRET9", "answers used")
    T.ok(not t.screen:find("tk-SECRET9", 1, true), "the private answer is never shown")
    T.contains(t.screen, "token is ********", "masked")
end)

T.test("no vault and a secret gate on a terminal: cutover offers to create one", function()
    local d = setup([[
- hosts: all
  steps:
    - id: pw
      pause: { gate: password, prompt: "Password?", secret: true }
      register: pw
    - copy: { dest: "@D@/pw.txt", content: "{{ pw.answer }}" }
]], { "a" })
    local t = T.dialogue(d, T.cutover .. " run p.yml -i inv.yml",
        { { "Create one now", "yes" }, { "New vault passphrase for", "vault pw" },
          { "Same passphrase again:", "vault pw" }, { "Password?", "Typed S3cret" } },
        { XDG_STATE_HOME = d .. "/state", CUTOVER_VAULT = d .. "/new.vault" })
    T.contains(t.screen, "There is no vault at " .. d .. "/new.vault. Create one now", "offered")
    T.eq(t.rc, 0, "ran: " .. t.screen)
    T.ok(T.read(d .. "/new.vault") ~= nil, "the vault was created")
    T.eq(T.read(d .. "/pw.txt"), "Typed S3cret", "the answer was used")
    T.ok(not t.screen:find("Typed S3cret", 1, true) and not t.screen:find("vault pw", 1, true),
         "neither the answer nor the passphrase was echoed")
end)

T.test("serial: a parked host holds back the next batch until it is approved", function()
    local d = setup([[
- hosts: all
  serial: 1
  steps:
    - shell: "echo before-{{ inventory_hostname }} >> @D@/log"
    - pause: { gate: next, prompt: "Go on?" }
    - shell: "echo after-{{ inventory_hostname }} >> @D@/log"
]])
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked")
    T.match(r.stdout, "b[^\n]*never started %(waiting: a at gate next", "b waits for a")
    T.eq(log(d), "before-a\n", "only a started")
    r = cutover(d, { "resume", "--approve", "next@a", "--non-interactive" })
    T.eq(r.rc, 4, "b now parks at its own gate")
    T.eq(log(d), "before-a\nafter-a\nbefore-b\n", "a finished, b started")
    r = cutover(d, { "resume", "--approve", "next", "--non-interactive" })
    T.eq(r.rc, 0, "done")
    T.eq(log(d), "before-a\nafter-a\nbefore-b\nafter-b\n", "in order, once each")
end)

T.test("on a terminal the operator is asked, one host at a time, naming it", function()
    local d = setup(GATED)
    -- script(1) gives cutover a terminal; answers arrive once asked
    local t = T.dialogue(d, T.cutover .. " run p.yml -i inv.yml",
        { { "gate 'go': Proceed? [yes/no]", "yes" }, { "gate 'go': Proceed? [yes/no]", "no" } },
        { XDG_STATE_HOME = d .. "/state" })
    local out = t.screen .. "rc=" .. tostring(t.rc)
    local at_a = out:find("%[a%] gate 'go': Proceed%? %[yes/no%]")
    local at_b = out:find("%[b%] gate 'go': Proceed%? %[yes/no%]")
    T.ok(at_a and at_b, "both hosts asked by name: " .. out)
    -- whichever host reached the gate first was asked first, and said yes
    local first = at_a < at_b and "a" or "b"
    local second = first == "a" and "b" or "a"
    T.contains(out, "rc=1", "the second host was refused")
    T.match(out, "gate 'go' not approved by", "says so")
    T.eq(sorted_lines(log(d)), "after-" .. first .. " before-a before-b", "only the approved host went on")
    T.match(out, "failed%s+" .. second .. "%s+confirm", "the other one failed at the gate")
end)

T.test("a file holding a gate imported twice, a role with a gate used twice: each gate its own id", function()
    local d = setup([[
- hosts: all
  steps:
    - { name: first, import_steps: inc/confirm.yml, vars: { word: one } }
    - { name: second, import_steps: inc/confirm.yml, vars: { word: two } }
    - { name: r1, include_role: { name: gated } }
    - { name: r2, include_role: { name: gated } }
]], { "a" })
    T.sh("mkdir -p " .. d .. "/inc " .. d .. "/roles/gated/steps")
    T.write(d .. "/inc/confirm.yml", "- id: ask\n  pause: { gate: go, prompt: 'Go?' }\n" ..
        "- id: said\n  shell: 'echo {{ word }} >> " .. d .. "/log'\n")
    T.write(d .. "/roles/gated/steps/main.yml", "- id: ask\n  pause: { gate: go, prompt: 'Role go?' }\n" ..
        "- id: did\n  shell: 'echo role >> " .. d .. "/log'\n")
    local r = cutover(d, { "run", d .. "/p.yml", "--non-interactive" })
    T.eq(r.rc, 4, "parked at the first: " .. r.stdout .. r.stderr)
    local id = r.stdout:match("%[run (%S+)%]")
    T.contains(r.stdout, "--approve first.go\n", "the gate's id is under the import's")
    T.eq(log(d), "", "nothing after the gate ran")
    r = cutover(d, { "resume", id, "--approve", "go", "--non-interactive" })
    T.eq(r.rc, 4, "the bare name approves neither")
    T.eq(log(d), "")
    r = cutover(d, { "resume", id, "--approve", "first.go", "--non-interactive" })
    T.eq(r.rc, 4, "the second still waits: " .. r.stdout)
    T.contains(r.stdout, "--approve second.go\n")
    T.eq(log(d), "one\n", "approving one did not approve the other")
    r = cutover(d, { "resume", id, "--approve", "second.go", "--non-interactive" })
    T.eq(r.rc, 4, "the role's gate")
    T.contains(r.stdout, "--approve r1.go\n")
    T.eq(log(d), "one\ntwo\n")
    r = cutover(d, { "resume", id, "--approve", "r1.go@a", "--non-interactive" })
    T.eq(r.rc, 4, "the role's second use")
    T.contains(r.stdout, "--approve r2.go\n")
    r = cutover(d, { "resume", id, "--approve", "r2.go", "--non-interactive" })
    T.eq(r.rc, 0, "done: " .. r.stdout .. r.stderr)
    T.eq(log(d), "one\ntwo\nrole\nrole\n", "each step once")
    local show = json.decode(cutover(d, { "show", id, "--format", "json" }).stdout)
    local approvals = {}
    for _, e in ipairs(show.events) do
        if e.kind == "approve" then approvals[#approvals + 1] = e.name .. "@" .. e.host end
    end
    T.eq(table.concat(approvals, " "), "first.go@a second.go@a r1.go@a r2.go@a")
    -- the same gate name twice in one file is still an error
    T.write(d .. "/inc/confirm.yml", "- id: ask\n  pause: { gate: go, prompt: 'Go?' }\n" ..
        "- id: ask2\n  pause: { gate: go, prompt: 'Go?' }\n")
    r = cutover(d, { "lint", d .. "/p.yml" })
    T.eq(r.rc, 2)
    T.contains(r.stderr, d .. "/inc/confirm.yml:4:12: step 'ask2': gate 'first.go' is already used at " ..
        d .. "/inc/confirm.yml:2:12")
end)

T.done()
