-- Saved plans: cutover plan / show-plan / apply, on the local connection
-- with several local hosts (each with its own target folder).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")

local HOSTS = { "h1", "h2", "h3" }

local INVENTORY = [[
all:
  hosts:
    h1: { ansible_connection: local, target: "@T@/h1" }
    h2: { ansible_connection: local, target: "@T@/h2" }
  children:
    late:
      hosts:
        h3: { ansible_connection: local, target: "@T@/h3" }
]]

-- Every step predictable in check mode.
local BOOK = [[
- name: Release
  hosts: all
  steps:
    - id: write-a
      name: Write a
      copy: { dest: "{{ target }}/a.txt", content: "a\n" }
    - id: render
      name: Render the config
      template: { src: app.conf.j2, dest: "{{ target }}/app.conf", mode: "0640" }
    - id: write-c
      copy: { dest: "{{ target }}/c.txt", content: "c {{ colour }}\n" }
]]

-- A step check mode cannot know (command), then more.
local BOOK_UNKNOWN = [[
- hosts: all
  steps:
    - id: write-a
      copy: { dest: "{{ target }}/a.txt", content: "a\n" }
    - id: migrate
      command: touch {{ target }}/migrated
    - id: write-c
      copy: { dest: "{{ target }}/c.txt", content: "c\n" }
    - id: note
      shell: echo done > {{ target }}/done
]]

local function setup(book)
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", (INVENTORY:gsub("@T@", d)))
    fs.mkdir(d .. "/group_vars", 448)
    T.write(d .. "/group_vars/all.yml", "colour: blue\n")
    T.write(d .. "/app.conf.j2", "release {{ release }} on {{ inventory_hostname }}\n")
    T.write(d .. "/p.yml", book or BOOK)
    for _, h in ipairs(HOSTS) do fs.mkdir(d .. "/" .. h, 493) end
    return d
end

local function plan(d, extra)
    local args = { "plan", d .. "/p.yml", "-i", d .. "/inv.yml", "-e", "release=2.4.1", "-o", d .. "/p.plan" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local r = T.run(args)
    T.eq(r.rc, 0, "plan exit code (stderr: " .. r.stderr .. ")")
    T.contains(r.stdout, "plan written to " .. d .. "/p.plan", "plan says where")
    return assert(json.decode(T.read(d .. "/p.plan")))
end

local function apply(d, extra, format)
    local args = { "apply", d .. "/p.plan" }
    if format then args[#args + 1] = "--format"; args[#args + 1] = format end
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return T.run(args)
end

-- True when no host's target folder holds a file.
local function nothing_applied(d)
    for _, h in ipairs(HOSTS) do
        if #fs.list(d .. "/" .. h) > 0 then return false end
    end
    return true
end

local function host_of(p, name)
    for _, h in ipairs(p.hosts) do if h.name == name then return h end end
end

local function targets(d)
    local snap = {}
    for _, h in ipairs(HOSTS) do snap[h] = T.snapshot(d .. "/" .. h) end
    return snap
end

local function same_targets(a, b)
    for _, h in ipairs(HOSTS) do T.same_snapshot(a[h], b[h], h) end
end

T.test("plan changes nothing and records inputs, steps and digests", function()
    local d = setup()
    local before = targets(d)
    local p = plan(d)
    same_targets(before, targets(d))
    T.eq(p.v, 1, "format version")
    T.eq(p.cutover, "0.1.0", "cutover version")
    T.eq(p.playbook.path, d .. "/p.yml", "playbook path")
    T.eq(p.playbook.sha256, fs.sha256(d .. "/p.yml"), "playbook digest")
    T.eq(p.inventory.path, d .. "/inv.yml", "inventory path")
    local inv_files = {}
    for _, f in ipairs(p.inventory.files) do inv_files[f.path] = f.sha256 end
    T.eq(inv_files[d .. "/inv.yml"], fs.sha256(d .. "/inv.yml"), "inventory file digest")
    T.eq(inv_files[d .. "/group_vars/all.yml"], fs.sha256(d .. "/group_vars/all.yml"), "group_vars digest")
    T.eq(p.extra_vars.values.release, "2.4.1", "extra vars")
    T.eq(p.files[1].path, d .. "/app.conf.j2", "file read by a step")
    T.eq(p.files[1].sha256, fs.sha256(d .. "/app.conf.j2"), "its digest")
    T.eq(#p.hosts, 3, "three hosts")
    local h1 = host_of(p, "h1")
    T.eq(#h1.steps, 3, "three steps")
    T.eq(h1.steps[1].id, "write-a", "step id")
    T.eq(h1.steps[1].status, "changed", "predicted status")
    T.contains(h1.steps[2].diff, "+release 2.4.1 on h1", "predicted diff")
    T.eq(h1.changes, 3, "changes")
    T.eq(h1.at_apply, 0, "nothing decided at apply time")
    T.eq(#h1.facts_sha256, 64, "facts digest")
    T.eq(fs.stat(d .. "/p.plan").mode, 384, "plan is 0600")
end)

T.test("apply with no drift makes exactly the planned changes", function()
    local d = setup()
    T.write(d .. "/h3/a.txt", "a\n")  -- already right on h3: predicted ok
    local p = plan(d)
    T.eq(host_of(p, "h3").steps[1].status, "ok", "h3 write-a predicted ok")
    local r = apply(d, nil, "json")
    T.eq(r.rc, 0, "apply exit code (stderr: " .. r.stderr .. ")")
    local got = {}
    for _, e in ipairs(T.events(r.stdout)) do
        if e.event == "host_result" then got[e.host .. " " .. e.step] = e.status end
    end
    local n = 0
    for _, h in ipairs(p.hosts) do
        for _, s in ipairs(h.steps) do
            n = n + 1
            T.eq(got[h.name .. " " .. s.id], s.status, h.name .. " " .. s.id)
        end
    end
    T.eq(n, 9, "nine planned results")
    for _, h in ipairs(HOSTS) do
        T.eq(T.read(d .. "/" .. h .. "/a.txt"), "a\n", h .. " a.txt")
        T.eq(T.read(d .. "/" .. h .. "/app.conf"), "release 2.4.1 on " .. h .. "\n", h .. " app.conf")
        T.eq(fs.stat(d .. "/" .. h .. "/app.conf").mode, 416, h .. " app.conf mode")
        T.eq(T.read(d .. "/" .. h .. "/c.txt"), "c blue\n", h .. " c.txt")
    end
    T.eq(r.stderr, "", "no warnings")
end)

T.test("drift on one host: it is refused as stale, the others are applied", function()
    local d = setup()
    plan(d)
    T.write(d .. "/h2/a.txt", "changed by hand\n")
    local r = apply(d)
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "host h2 refused: the plan is stale at step 'write-a' (Write a)", "names host and step")
    T.contains(r.stderr, "the predicted diff changed", "says what changed")
    T.not_contains(r.stderr, "host h1", "h1 not refused")
    for _, h in ipairs({ "h1", "h3" }) do
        T.eq(T.read(d .. "/" .. h .. "/app.conf"), "release 2.4.1 on " .. h .. "\n", h .. " applied")
    end
    T.eq(T.read(d .. "/h2/a.txt"), "changed by hand\n", "h2 untouched")
    T.eq(fs.stat(d .. "/h2/app.conf"), nil, "h2 not applied")
    T.not_contains(r.stdout, " h2 ", "h2 not in the real run")
end)

T.test("drift that changes a predicted status names both statuses", function()
    local d = setup()
    plan(d)
    T.write(d .. "/h1/c.txt", "c blue\n")  -- now already right: ok instead of changed
    local r = apply(d)
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "host h1 refused: the plan is stale at step 'write-c': predicted changed, now ok", "status change")
    T.eq(T.read(d .. "/h2/c.txt"), "c blue\n", "h2 applied")
end)

T.test("an edited playbook refuses the whole plan and changes nothing", function()
    local d = setup()
    plan(d)
    T.write(d .. "/p.yml", BOOK:gsub("c {{ colour }}", "c {{ colour }}!"))
    local before = targets(d)
    local r = apply(d)
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "playbook changed: " .. d .. "/p.yml", "reason")
    T.contains(r.stderr, "nothing was run", "nothing ran")
    T.eq(r.stdout, "", "no run output")
    same_targets(before, targets(d))
end)

T.test("an edited template read by a step refuses the whole plan", function()
    local d = setup()
    plan(d)
    T.write(d .. "/app.conf.j2", "release {{ release }}\n")
    local before = targets(d)
    local r = apply(d)
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, d .. "/app.conf.j2 read by a step changed", "reason")
    same_targets(before, targets(d))
end)

T.test("changed extra vars refuse the plan", function()
    local d = setup()
    plan(d)
    local before = targets(d)
    local r = apply(d, { "-e", "release=2.4.2" })
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "extra vars changed", "reason")
    same_targets(before, targets(d))
    -- the same value given again is accepted
    r = apply(d, { "-e", "release=2.4.1" })
    T.eq(r.rc, 0, "same extra vars (stderr: " .. r.stderr .. ")")
end)

T.test("an edited -e @FILE refuses the plan", function()
    local d = setup()
    T.write(d .. "/vars.yml", "release: '3.0'\n")
    local r = T.run({ "plan", d .. "/p.yml", "-i", d .. "/inv.yml", "-e", "@" .. d .. "/vars.yml", "-o", d .. "/p.plan" })
    T.eq(r.rc, 0, "plan")
    T.write(d .. "/vars.yml", "release: '3.1'\n")
    r = apply(d)
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "extra vars changed", "reason")
end)

T.test("changed inventory vars refuse the plan", function()
    local d = setup()
    plan(d)
    T.write(d .. "/group_vars/all.yml", "colour: red\n")
    local r = apply(d)
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "inventory or its vars changed: " .. d .. "/group_vars/all.yml", "reason")
    T.write(d .. "/group_vars/all.yml", "colour: blue\n")
    fs.mkdir(d .. "/host_vars", 448)
    T.write(d .. "/host_vars/h3.yml", "colour: green\n")
    r = apply(d)
    T.eq(r.rc, 3, "a new host_vars file")
    T.contains(r.stderr, "inventory or its vars changed: " .. d .. "/host_vars/h3.yml (new)", "names it")
end)

T.test("options given to apply must match the plan's", function()
    local d = setup()
    plan(d, { "--limit", "h1,h2" })
    local r = apply(d, { "--limit", "h1" })
    T.eq(r.rc, 3, "exit code")
    T.contains(r.stderr, "options changed: --limit h1 (the plan has h1,h2)", "reason")
    r = apply(d)
    T.eq(r.rc, 0, "the plan's own limit")
    T.eq(fs.stat(d .. "/h3/a.txt"), nil, "h3 outside the limit")
    T.eq(T.read(d .. "/h2/a.txt"), "a\n", "h2 applied")
end)

T.test("show-plan renders the plan; --format json prints the file", function()
    local d = setup()
    plan(d)
    local r = T.run({ "show-plan", d .. "/p.plan" })
    T.eq(r.rc, 0, "exit code")
    T.contains(r.stdout, "playbook:   " .. d .. "/p.yml", "playbook")
    T.contains(r.stdout, "extra vars: release=\"2.4.1\"", "extra vars")
    T.contains(r.stdout, d .. "/app.conf.j2", "files read")
    T.contains(r.stdout, "HOST h2: 3 changes predicted", "host header")
    T.match(r.stdout, "changed%s+render  Render the config", "step line")
    T.contains(r.stdout, "+release 2.4.1 on h2", "diff")
    local j = T.run({ "show-plan", d .. "/p.plan", "--format", "json" })
    T.eq(j.rc, 0, "json exit code")
    T.eq(j.stdout, T.read(d .. "/p.plan"), "the file's content")
    local bad = T.run({ "show-plan", d .. "/p.yml" })
    T.eq(bad.rc, 2, "not a plan")
end)

T.test("a host's first unknown result: later steps are decided at apply time, and apply runs them", function()
    local d = setup(BOOK_UNKNOWN)
    local p = plan(d)
    local h1 = host_of(p, "h1")
    T.eq(#h1.steps, 4, "four steps listed")
    T.eq(h1.steps[1].at_apply, nil, "write-a predicted")
    T.eq(h1.steps[2].status, "unknown", "migrate unknown")
    T.eq(h1.steps[2].at_apply, true, "migrate decided at apply time")
    T.eq(h1.steps[3].at_apply, true, "write-c decided at apply time")
    T.eq(h1.steps[4].at_apply, true, "note decided at apply time")
    T.eq(h1.at_apply, 3, "count")
    local s = T.run({ "show-plan", d .. "/p.plan" })
    T.contains(s.stdout, "decided at apply time from here on", "show-plan says so")
    T.match(s.stdout, "at apply%s+write%-c", "later step listed")
    -- a change under a step decided at apply time does not make the host stale
    T.write(d .. "/h2/c.txt", "old\n")
    local r = apply(d)
    T.eq(r.rc, 0, "apply exit code (stderr: " .. r.stderr .. ")")
    for _, h in ipairs(HOSTS) do
        T.ok(fs.stat(d .. "/" .. h .. "/migrated"), h .. " migrate ran")
        T.eq(T.read(d .. "/" .. h .. "/c.txt"), "c\n", h .. " write-c ran")
        T.eq(T.read(d .. "/" .. h .. "/done"), "done\n", h .. " note ran")
    end
end)

T.test("a newer plan format is refused", function()
    local d = setup()
    local p = plan(d)
    p.v = 99
    T.write(d .. "/p.plan", json.encode(p))
    local r = apply(d)
    T.eq(r.rc, 2, "exit code")
    T.contains(r.stderr, "plan format version 99 is newer", "message")
end)

T.test("plans never hold a secret value", function()
    local d = setup([[
- hosts: all
  steps:
    - id: secret-file
      copy: { dest: "{{ target }}/pw.txt", content: "password={{ secret.db_pw }}\n" }
    - id: label
      name: "Step for {{ secret.db_pw }}"
      debug: { msg: "using {{ secret.db_pw }}" }
]])
    local env = { CUTOVER_VAULT = d .. "/vault", CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass" }
    T.write(d .. "/pass", "correct horse battery\n")
    local v = T.run({ "vault", "set", "db_pw" }, { env = env, stdin = "Sup3r-S3cret-Value\n" })
    T.eq(v.rc, 0, "vault set (stderr: " .. v.stderr .. ")")
    local r = T.run({ "plan", d .. "/p.yml", "-i", d .. "/inv.yml", "-e", "release=1", "-o", d .. "/p.plan" },
                    { env = env })
    T.eq(r.rc, 0, "plan (stderr: " .. r.stderr .. ")")
    local text = T.read(d .. "/p.plan")
    T.not_contains(text, "Sup3r-S3cret-Value", "plan file")
    T.not_contains(text, "Sup3r", "plan file (part)")
    T.contains(text, "********", "masked")
    local s = T.run({ "show-plan", d .. "/p.plan" })
    T.not_contains(s.stdout, "Sup3r", "show-plan")
    local a = T.run({ "apply", d .. "/p.plan" }, { env = env })
    T.eq(a.rc, 0, "apply (stderr: " .. a.stderr .. ")")
    T.eq(T.read(d .. "/h1/pw.txt"), "password=Sup3r-S3cret-Value\n", "applied with the real value")
end)

T.test("item 21: plan.lua fails closed when redaction cannot be loaded", function()
    -- the reporters (and redact through them) are already loaded, as in
    -- a run; then the redaction module breaks: loading plan must fail
    -- instead of writing plans unmasked
    for _, m in ipairs({ "output", "engine", "diff", "inventory", "util" }) do require("cutover." .. m) end
    local saved_loaded, saved_preload = package.loaded["cutover.secrets.redact"], package.preload["cutover.secrets.redact"]
    package.loaded["cutover.plan"] = nil
    package.loaded["cutover.secrets.redact"] = nil
    package.preload["cutover.secrets.redact"] = function() error("redaction is broken", 0) end
    local ok, err = pcall(require, "cutover.plan")
    package.loaded["cutover.secrets.redact"], package.preload["cutover.secrets.redact"] = saved_loaded, saved_preload
    package.loaded["cutover.plan"] = nil
    T.ok(not ok, "plan.lua loaded without its redaction")
    T.contains(tostring(err), "redaction is broken", "the error is the redaction's")
    -- and with redaction in place it loads and masks
    local plan = require("cutover.plan")
    T.eq(type(plan.apply), "function", "plan loads with redaction")
end)

T.test("item 14: show-plan escapes terminal control sequences in diffs and messages", function()
    local d = setup([[
- hosts: all
  steps:
    - id: noisy
      copy: { dest: "{{ target }}/n.txt", content: "a\e[2Jb\rc\u009bd\n" }
    - id: says
      fail: { msg: "stop\e]0;title\a here" }
]])
    local r = T.run({ "plan", d .. "/p.yml", "-i", d .. "/inv.yml", "-o", d .. "/p.plan" })
    T.eq(r.rc, 1, "plan (a step is predicted to fail; stderr: " .. r.stderr .. ")")
    local s = T.run({ "show-plan", d .. "/p.plan" })
    T.eq(s.rc, 0, "show-plan")
    local bad = s.stdout:find("[%z\1-\8\11-\31\127]") or s.stdout:find("\194[\128-\159]") or not utf8.len(s.stdout)
    T.ok(not bad, "no raw control character: " .. string.format("%q", s.stdout))
    T.contains(s.stdout, [[+a\x1b[2Jb\x0dc\x9bd]], "the diff, escaped")
    T.contains(s.stdout, [[stop\x1b]0;title\x07 here]], "the message, escaped")
    local j = T.run({ "show-plan", d .. "/p.plan", "--format", "json" })
    T.contains(j.stdout:lower(), [[\u001b[2j]], "JSON keeps it (as JSON escapes)")
end)

T.test("item 16: a plan file with a field of the wrong type is refused with exit 2, not an internal error", function()
    local d = setup()
    local good = plan(d)
    local function mutate(fn)
        local p = json.decode(json.encode(good))
        fn(p)
        return p
    end
    local cases = {
        { "extra_vars", function(p) p.extra_vars = 5 end },
        { "extra_vars.values", function(p) p.extra_vars.values = "x" end },
        { "extra_vars.args[1]", function(p) p.extra_vars.args = { 5 } end },
        { "options", function(p) p.options = 5 end },
        { "options.tags", function(p) p.options.tags = "a" end },
        { "files", function(p) p.files = 5 end },
        { "files[1].path", function(p) p.files[1].path = 5 end },
        { "inventory", function(p) p.inventory = 5 end },
        { "inventory.files[1]", function(p) p.inventory.files = { 5 } end },
        { "playbook.path", function(p) p.playbook.path = 5 end },
        { "hosts[1]", function(p) p.hosts[1] = 5 end },
        { "hosts[2].name", function(p) p.hosts[2].name = { 1 } end },
        { "hosts[1].steps", function(p) p.hosts[1].steps = 5 end },
        { "hosts[1].steps[2]", function(p) p.hosts[1].steps[2] = "x" end },
        { "hosts[1].steps[1].fields", function(p) p.hosts[1].steps[1].fields = 5 end },
        { "hosts[3].steps[1].status", function(p) p.hosts[3].steps[1].status = false end },
        { "check_exit_code", function(p) p.check_exit_code = "0" end },
    }
    for _, c in ipairs(cases) do
        T.write(d .. "/bad.plan", json.encode(mutate(c[2])))
        for _, cmd in ipairs({ "apply", "show-plan" }) do
            local r = T.run({ cmd, d .. "/bad.plan" })
            T.eq(r.rc, 2, cmd .. " with a bad " .. c[1] .. " (stderr: " .. r.stderr .. ")")
            T.contains(r.stderr, d .. "/bad.plan: not a valid cutover plan: '" .. c[1] .. "' must be", cmd .. " " .. c[1])
            T.not_contains(r.stderr, "traceback", cmd .. " " .. c[1] .. ": no traceback")
        end
    end
    T.ok(nothing_applied(d), "nothing was applied")
end)

-- The body digest as a forger would recompute it (the digest is not a
-- signature; the checks at apply are what bind the text to the change).
local function reseal(p)
    local crypto = require("cutover.core.crypto")
    p.body_sha256 = nil
    p.body_sha256 = crypto.sha256(json.encode(json.decode(json.encode(p))))
    return p
end

T.test("item 20: an edited plan is refused: show-plan and apply check the body digest", function()
    local d = setup()
    local p = plan(d)
    T.eq(#p.body_sha256, 64, "the plan carries a body digest")
    local s = T.run({ "show-plan", d .. "/p.plan" })
    T.eq(s.rc, 0, "an untouched plan shows (stderr: " .. s.stderr .. ")")
    -- the shown diff edited, nothing else
    local text = T.read(d .. "/p.plan")
    local edited = text:gsub("%+release 2%.4%.1 on h1", "+release 9.9.9 on h1", 1)
    T.ok(edited ~= text, "edited")
    T.write(d .. "/p.plan", edited)
    local before = targets(d)
    s = T.run({ "show-plan", d .. "/p.plan" })
    T.eq(s.rc, 3, "show-plan refuses an edited plan")
    T.contains(s.stderr, "the plan file was changed after it was written", "says why")
    T.not_contains(s.stdout, "9.9.9", "the edited text is not shown")
    local r = apply(d)
    T.eq(r.rc, 3, "apply refuses it (stderr: " .. r.stderr .. ")")
    T.contains(r.stderr, "the plan file was changed after it was written", "apply says why")
    same_targets(before, targets(d))
end)

T.test("item 20: a resealed plan whose shown diff, status or values differ from the change is refused at apply", function()
    local d = setup()
    local good = plan(d)
    local cases = {
        { "diff", function(p)
            local st = host_of(p, "h1").steps[2]
            st.diff = st.diff:gsub("release 2%.4%.1", "release 9.9.9")
        end, "host h1, step 'render': the diff shown differs" },
        { "status", function(p)
            local st = host_of(p, "h2").steps[1]
            st.status, st.changed = "ok", false
            host_of(p, "h2").changes = 2
            p.totals.changes = p.totals.changes - 1
        end, "host h2, step 'write-a': the status shown differs" },
        { "msg", function(p) host_of(p, "h3").steps[3].msg = "harmless" end,
          "host h3, step 'write-c': the message shown differs" },
        { "count", function(p) host_of(p, "h1").changes = 0 end,
          "host h1: 0 changes shown, its steps predict 3" },
        { "values", function(p) p.extra_vars.values.release = "1.0" end,
          "the extra vars shown differ from the ones apply uses" },
    }
    for _, c in ipairs(cases) do
        local p = json.decode(json.encode(good))
        c[2](p)
        T.write(d .. "/p.plan", json.encode(reseal(p)))
        local before = targets(d)
        local r = apply(d)
        T.eq(r.rc, 3, c[1] .. ": apply refuses (stderr: " .. r.stderr .. ")")
        T.contains(r.stderr, c[3], c[1] .. ": says what")
        T.contains(r.stderr, "nothing was run", c[1] .. ": nothing ran")
        same_targets(before, targets(d))
    end
    -- the same plan, resealed without an edit, still applies
    T.write(d .. "/p.plan", json.encode(reseal(json.decode(json.encode(good)))))
    local r = apply(d)
    T.eq(r.rc, 0, "an unedited plan applies (stderr: " .. r.stderr .. ")")
    T.eq(T.read(d .. "/h1/app.conf"), "release 2.4.1 on h1\n", "applied")
end)

T.test("usage errors", function()
    local r = T.run({ "apply" })
    T.eq(r.rc, 2, "apply without a file")
    r = T.run({ "plan" })
    T.eq(r.rc, 2, "plan without a playbook")
    r = T.run({ "apply", "/nonexistent/p.plan" })
    T.eq(r.rc, 2, "missing plan file")
end)

T.test("report of an applied plan: plan versus actual per host and step, differences marked", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", ("all:\n  hosts:\n    h1: { ansible_connection: local, target: '@T@/h1' }\n" ..
        "    h2: { ansible_connection: local, target: '@T@/h2' }\n"):gsub("@T@", d))
    for _, h in ipairs({ "h1", "h2" }) do
        fs.mkdir(d .. "/" .. h, 493)
        T.write(d .. "/" .. h .. "/same.txt", "x\n")
    end
    -- 'shared' is one file for both hosts: the plan (and apply's re-check)
    -- predicts a change on each, but h1 makes it first (one fork), so on
    -- h2 it is already there: planned a change, was ok
    T.write(d .. "/p.yml", ([[
- hosts: all
  steps:
    - { id: mine, copy: { dest: "{{ target }}/mine.txt", content: "m\n" } }
    - { id: shared, copy: { dest: "@T@/shared.txt", content: "s\n" } }
    - { id: same, copy: { dest: "{{ target }}/same.txt", content: "x\n" } }
    - { id: tick, shell: "echo tick >> {{ target }}/ticks" }
    - { id: last, copy: { dest: "{{ target }}/last.txt", content: "l\n" } }
]]):gsub("@T@", d))
    local r = T.run({ "plan", d .. "/p.yml", "-i", d .. "/inv.yml", "-o", d .. "/p.plan" })
    T.eq(r.rc, 0, "plan: " .. r.stderr)
    r = T.run({ "apply", d .. "/p.plan", "--forks", "1" })
    T.eq(r.rc, 0, "apply: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, "warning: host h2, step 'shared': planned changed, the real run: ok", "apply saw the race")
    local id = r.stdout:match("%[run (%S+)%]")
    T.ok(id, "run id in " .. r.stdout)
    local jr = T.run({ "report", id, "--format", "json", "-o", "-" })
    T.eq(jr.rc, 0, jr.stderr)
    local data = json.decode(jr.stdout)
    local p = data.plan
    T.ok(type(p) == "table", "the report knows the plan it applied")
    T.eq(p.file, fs.realpath(d .. "/p.plan"))
    T.eq(p.body_sha256, json.decode(T.read(d .. "/p.plan")).body_sha256)
    T.eq(p.differences, 1)
    -- the plan lists hosts in the order the check run finished them
    local per_host = {}
    for _, h in ipairs(p.hosts) do
        local lines = {}
        for _, s in ipairs(h.steps) do
            lines[#lines + 1] = h.name .. " " .. s.id .. " " .. tostring(s.planned) .. (s.at_apply and "@apply" or "") ..
                "->" .. tostring(s.actual) .. (s.difference and (" !" .. s.difference) or "")
        end
        per_host[h.name] = table.concat(lines, "\n")
    end
    local got = { per_host.h1, per_host.h2 }
    T.eq(table.concat(got, "\n"), table.concat({
        "h1 mine changed->changed", "h1 shared changed->changed", "h1 same ok->ok",
        "h1 tick unknown@apply->changed", "h1 last changed@apply->changed",
        "h2 mine changed->changed", "h2 shared changed->ok !planned a change, was ok", "h2 same ok->ok",
        "h2 tick unknown@apply->changed", "h2 last changed@apply->changed" }, "\n"))
    local html = T.run({ "report", id, "-o", "-" }).stdout
    T.contains(html, '<h2 id="plan">Plan versus actual</h2>')
    T.contains(html, "<b>1 difference</b>")
    T.contains(html, '<tr class="differs"><td>h2</td><td>shared</td><td class="changed">changed</td>' ..
        '<td class="ok">ok</td><td>planned a change, was ok</td></tr>')
    T.eq(select(2, html:gsub('<tr class="differs"><td>h%d</td><td>%a', "")), 1, "only that step is marked")
    -- a host refused as stale: the report says so, and its steps were
    -- planned but not run
    r = T.run({ "plan", d .. "/p.yml", "-i", d .. "/inv.yml", "-o", d .. "/p2.plan" })
    T.eq(r.rc, 0, "plan: " .. r.stderr)
    T.write(d .. "/h2/same.txt", "hot-fixed\n")
    r = T.run({ "apply", d .. "/p2.plan", "--forks", "1" })
    T.eq(r.rc, 3, "h2 refused: " .. r.stderr)
    id = r.stdout:match("%[run (%S+)%]")
    p = json.decode(T.run({ "report", id, "--format", "json", "-o", "-" }).stdout).plan
    T.eq(p.hosts[1].differences, 0, "h1 went as planned")
    T.contains(p.hosts[2].stale, "refused as stale at step 'same': ")
    T.eq(p.hosts[2].steps[1].difference, "planned but not run")
    T.eq(p.differences, #p.hosts[2].steps)
    html = T.run({ "report", id, "-o", "-" }).stdout
    T.contains(html, '<tr class="differs"><td>h2</td><td colspan="3">-</td><td>refused as stale at step')
    -- a run that applied no plan says nothing of one
    r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml" })
    id = r.stdout:match("%[run (%S+)%]")
    html = T.run({ "report", id, "-o", "-" }).stdout
    T.not_contains(html, "Plan versus actual")
    T.eq(json.decode(T.run({ "report", id, "--format", "json", "-o", "-" }).stdout).plan, nil)
end)

T.done()
