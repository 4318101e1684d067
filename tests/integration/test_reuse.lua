-- Integration: reuse on the local connection: import_steps and
-- include_steps (two levels, positions, ids), roles (defaults, vars,
-- handlers, templates, dependencies), import_playbook, vars_files,
-- meta: flush_handlers, lint -i over all of them, and resume refusing an
-- edited imported file.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)

local function ran(results)
    local ids = {}
    for _, e in ipairs(results) do
        ids[#ids + 1] = e.step .. (e.item and ("[" .. e.item .. "]") or "")
    end
    return table.concat(ids, " ")
end

local function files(d, map)
    for name, text in pairs(map) do
        local dir = (d .. "/" .. name):match("^(.*)/[^/]*$")
        T.sh("mkdir -p '" .. dir .. "'")
        T.write(d .. "/" .. name, (text:gsub("@T@", d)))
    end
end

T.test("import_steps two levels deep, one file imported twice, include_steps with a loop", function()
    local d = T.tmpdir()
    files(d, {
        ["inc/a.yml"] = [[
- id: first
  shell: "echo a-{{ who }} >> @T@/log"
- name: nested
  import_steps: b.yml
]],
        ["inc/b.yml"] = [[
- id: deep
  shell: "echo b-{{ who }} >> @T@/log"
]],
        ["inc/each.yml"] = [[
- id: one
  shell: "echo each-{{ item }}-{{ loop_index }} >> @T@/log"
]],
    })
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - name: setup
      import_steps: inc/a.yml
      vars: { who: one }
    - name: again
      import_steps: inc/a.yml
      vars: { who: two }
    - name: each
      include_steps: inc/each.yml
      loop: [x, y]
    - name: never
      include_steps: inc/each.yml
      loop: [z]
      when: false
    - name: not either
      import_steps: inc/each.yml
      vars: { skip_it: true }
      when: not skip_it
]])
    local r, _, res = H.run_json({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    T.eq(ran(res), "setup.first setup.nested.deep again.first again.nested.deep each.one each.one")
    T.eq(T.read(d .. "/log"), "a-one\nb-one\na-two\nb-two\neach-x-1\neach-y-2\n")
end)

T.test("an error two imports deep names the file, line, column and the chain", function()
    local d = T.tmpdir()
    files(d, {
        ["inc/a.yml"] = "- id: first\n  command: 'true'\n- name: nested\n  import_steps: b.yml\n",
        ["inc/b.yml"] = "- id: deep\n  command: 'true'\n  retries: 2\n",
    })
    local book = H.book(d, "- hosts: localhost\n  steps:\n    - name: setup\n      import_steps: inc/a.yml\n")
    local r = T.run({ "lint", book })
    T.eq(r.rc, 2, "invalid")
    T.eq(r.stderr, d .. "/inc/b.yml:3:3: step 'deep': 'retries' needs 'until' (imported at " ..
        d .. "/inc/a.yml:4:3, imported at " .. book .. ":4:7)\n")
    r = T.run({ "run", book, "--no-journal" })
    T.eq(r.rc, 2, "run refuses it too")
    -- the same through two includes (one looping)
    T.write(d .. "/inc/c.yml", "- name: nested\n  include_steps: b.yml\n  loop: [1, 2]\n")
    book = H.book(d, "- hosts: localhost\n  steps:\n    - { id: a, command: 'true' }\n" ..
                     "    - name: outer\n      include_steps: inc/c.yml\n", "inc.yml")
    r = T.run({ "lint", book })
    T.eq(r.rc, 2, "invalid")
    T.eq(r.stderr, d .. "/inc/b.yml:3:3: step 'deep': 'retries' needs 'until' (included at " ..
        d .. "/inc/c.yml:2:3, included at " .. book .. ":5:7)\n")
end)

T.test("include_steps with a templated file name: resolved per host at run time, journaled, clear errors", function()
    local d = T.tmpdir()
    files(d, {
        ["inc/web.yml"] = "- id: w\n  shell: 'echo web-{{ inventory_hostname }}-{{ item }} >> @T@/log'\n",
        ["inc/db.yml"] = "- id: d\n  shell: 'echo db-{{ inventory_hostname }}-{{ item }} >> @T@/log'\n",
        ["inc/bad.yml"] = "- id: b\n  command: 'true'\n  retries: 2\n",
        ["inv.yml"] = [[
all:
  vars: { ansible_connection: local }
  hosts:
    h1: { kind: web }
    h2: { kind: db }
]],
    })
    local book = H.book(d, [[
- hosts: all
  steps:
    - name: per kind
      include_steps: "inc/{{ kind }}.yml"
      loop: [x, y]
    - { id: after, shell: "echo after-{{ inventory_hostname }} >> @T@/log" }
]])
    local env = { XDG_STATE_HOME = d .. "/state" }
    local r = T.run({ "lint", book, "-i", d .. "/inv.yml" })
    T.eq(r.rc, 0, "lint accepts it: " .. r.stderr)
    local _, res
    r, _, res = H.run_json({ "run", book, "-i", d .. "/inv.yml", "--forks", "1" }, { env = env, timeout = 60 })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    T.eq(T.read(d .. "/log"), "web-h1-x\nweb-h1-y\nafter-h1\ndb-h2-x\ndb-h2-y\nafter-h2\n")
    local st = H.statuses(res, true)
    T.eq(st["h1 per-kind.w"], "changed", "the step id is under the include's")
    T.eq(st["h2 per-kind.d"], "changed")
    -- the resolved files are in the journal: resume refuses an edited one
    T.sh("rm -f " .. d .. "/log")
    r = T.run({ "run", book, "-i", d .. "/inv.yml", "--forks", "1" },
        { env = { XDG_STATE_HOME = d .. "/state", CUTOVER_FAULT = "kill-after:after@h1" }, timeout = 60 })
    T.eq(r.rc, 137, "killed after h1: " .. r.stderr)
    T.write(d .. "/inc/web.yml", T.read(d .. "/inc/web.yml") .. "# edited\n")
    r = T.run({ "resume" }, { env = env, timeout = 60 })
    T.eq(r.rc, 3, "refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, "cutover: file " .. require("cutover.core.fs").realpath(d .. "/inc/web.yml") ..
               " changed since run", "names the included file")
    T.write(d .. "/inc/web.yml", (T.read(d .. "/inc/web.yml"):gsub("# edited\n$", "")))
    r = T.run({ "resume" }, { env = env, timeout = 60 })
    T.eq(r.rc, 0, "resumed with the file as it was: " .. r.stderr)
    T.eq(T.read(d .. "/log"), "web-h1-x\nweb-h1-y\nafter-h1\ndb-h2-x\ndb-h2-y\nafter-h2\n", "h1 not run again")
    -- a file that is not there, a bad file, a template that fails: the
    -- host fails naming the step, the host and the file
    T.write(d .. "/inv.yml", "all:\n  vars: { ansible_connection: local }\n  hosts:\n" ..
        "    h1: { kind: nope }\n    h2: { kind: bad }\n    h3: {}\n    h4: { kind: ../../inc/web }\n")
    r, _, res = H.run_json({ "run", book, "-i", d .. "/inv.yml", "--no-journal" })
    T.eq(r.rc, 1, "hosts failed: " .. r.stderr)
    local by = H.by_key(res, true)
    T.eq(by["h1 per-kind"].status, "failed")
    T.contains(by["h1 per-kind"].result.msg, "include_steps: " .. d .. "/inc/nope.yml: ")
    T.contains(by["h1 per-kind"].result.msg, "no such file")
    T.eq(by["h2 per-kind"].status, "failed")
    T.contains(by["h2 per-kind"].result.msg, d .. "/inc/bad.yml:3:3: step 'b': 'retries' needs 'until' (included at " ..
        book .. ":4:7)")
    T.eq(by["h3 per-kind"].status, "failed")
    T.contains(by["h3 per-kind"].result.msg, "undefined variable 'kind'")
    -- a name from data cannot leave the folder of the file naming it
    T.eq(by["h4 per-kind"].status, "failed")
    T.contains(by["h4 per-kind"].result.msg, "include_steps: 'inc/../../inc/web.yml' (from 'inc/{{ kind }}.yml') " ..
        "leaves the folder of " .. book)
    T.eq(by["h1 after"], nil, "the failed hosts went no further")
    T.not_contains(r.stdout .. r.stderr, "traceback")
    -- import_steps stays static: a template is refused when it loads
    T.write(book, "- hosts: all\n  steps:\n    - import_steps: 'inc/{{ kind }}.yml'\n")
    r = T.run({ "lint", book })
    T.eq(r.rc, 2)
    T.contains(r.stderr, "import_steps: the file name must be written out")
end)

T.test("step ids do not move when unrelated steps are reordered", function()
    local d = T.tmpdir()
    files(d, { ["inc/a.yml"] = "- command: 'true'\n- name: Second one\n  command: 'true'\n" })
    local one = H.book(d, [[
- hosts: localhost
  steps:
    - { name: unrelated A, command: "true" }
    - { name: imp, import_steps: inc/a.yml }
    - { name: unrelated B, command: "true" }
    - { import_steps: inc/a.yml }
]], "one.yml")
    local two = H.book(d, [[
- hosts: localhost
  steps:
    - { import_steps: inc/a.yml }
    - { name: unrelated B, command: "true" }
    - { name: imp, import_steps: inc/a.yml }
    - { name: unrelated A, command: "true" }
]], "two.yml")
    local function ids(path)
        local _, _, res = H.run_json({ "run", path, "--no-journal" })
        local out = {}
        for _, e in ipairs(res) do out[#out + 1] = e.step end
        table.sort(out)
        return table.concat(out, " ")
    end
    local a = ids(one)
    T.eq(a, "imp.command-true imp.second-one import-steps-inc-a-yml.command-true " ..
            "import-steps-inc-a-yml.second-one unrelated-a unrelated-b")
    T.eq(ids(two), a, "same ids after the reordering")
end)

T.test("a role: dependencies first, defaults under vars, handlers, templates", function()
    local d = T.tmpdir()
    files(d, {
        ["roles/web/steps/main.yml"] = [[
- id: conf
  template: { src: app.j2, dest: "@T@/app-{{ port }}.conf" }
  notify: restart web
- id: data
  copy: { src: data.txt, dest: "@T@/data.txt" }
]],
        ["roles/web/defaults/main.yml"] = "port: 80\nlabel: default\n",
        ["roles/web/vars/main.yml"] = "label: from-vars\n",
        ["roles/web/handlers/main.yml"] = "- name: restart web\n  shell: 'echo restarted-{{ port }} >> @T@/log'\n",
        ["roles/web/templates/app.j2"] = "port={{ port }} label={{ label }}\n",
        ["roles/web/files/data.txt"] = "static\n",
        ["roles/web/meta/main.yml"] = "dependencies:\n  - base\n",
        ["roles/base/tasks/main.yml"] = "- id: basic\n  shell: 'echo base >> @T@/log'\n",
    })
    local book = H.book(d, [[
- hosts: localhost
  vars: { label: play }
  roles:
    - web
  steps:
    - id: after
      shell: "echo after >> @T@/log"
- hosts: localhost
  vars: { port: 8080 }
  steps:
    - name: again
      include_role: { name: web }
      vars: { label: given }
]])
    local r, _, res = H.run_json({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    T.eq(ran(res), "web.base.basic web.conf web.data after web.restart-web " ..
                   "again.base.basic again.conf again.data again.restart-web")
    T.eq(T.read(d .. "/app-80.conf"), "port=80 label=from-vars\n", "role defaults; role vars over play vars")
    T.eq(T.read(d .. "/app-8080.conf"), "port=8080 label=given\n", "play vars over defaults; given vars over role vars")
    T.eq(T.read(d .. "/data.txt"), "static\n", "copy from the role's files/")
    T.eq(T.read(d .. "/log"), "base\nafter\nrestarted-80\nbase\nrestarted-8080\n")
end)

T.test("a step of a {{ }}-named include in flight at a crash: the guard names it and --mark-done takes it", function()
    local d = T.tmpdir()
    files(d, { ["inc/slow.yml"] = "- id: s2\n  shell: 'echo s2 >> @T@/count; touch @T@/marker; sleep 30'\n" ..
                                  "- id: s3\n  shell: 'echo s3 >> @T@/count'\n" })
    local book = H.book(d, [[
- hosts: localhost
  vars: { which: slow }
  steps:
    - { id: s1, shell: "echo s1 >> @T@/count" }
    - { name: dyn, include_steps: "inc/{{ which }}.yml" }
    - { id: s4, shell: "echo s4 >> @T@/count" }
]])
    local r = T.sh(string.format(
        "XDG_STATE_HOME=%s/state %s run %s > %s/out 2>&1 & pid=$!; n=0; " ..
        "while [ ! -e %s/marker ] && [ $n -lt 1500 ]; do sleep 0.02; n=$((n+1)); done; kill -KILL $pid; wait " ..
            "$pid; echo rc=$?",
        d, T.cutover, book, d, d))
    T.eq(r.stdout, "rc=137\n", "killed in the middle of the step")
    local env = { XDG_STATE_HOME = d .. "/state" }
    r = T.run({ "resume" }, { env = env, timeout = 60 })
    T.eq(r.rc, 1, "the guard stops the host: " .. r.stdout .. r.stderr)
    T.contains(r.stdout .. r.stderr, "--mark-done dyn.s2@localhost")
    r = T.run({ "resume", "--mark-done", "dyn.s2@localhost" }, { env = env, timeout = 60 })
    T.eq(r.rc, 0, "marked done, the rest runs: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/count"), "s1\ns2\ns3\ns4\n")
end)

T.test("include_role/import_role with tasks_from, vars_from, defaults_from, handlers_from", function()
    local d = T.tmpdir()
    files(d, {
        ["roles/app/steps/main.yml"] = "- id: main\n  shell: 'echo main >> @T@/log'\n",
        ["roles/app/tasks/setup.yml"] =
            "- id: setup\n  shell: 'echo setup-{{ level }}-{{ color }} >> @T@/log'\n  notify: alt handler\n",
        ["roles/app/steps/check.yml"] = "- id: check\n  shell: 'echo check-{{ level }}-{{ color }} >> @T@/log'\n",
        ["roles/app/tasks/check.yml"] = "- id: wrong\n  shell: 'echo tasks-not-steps >> @T@/log'\n",
        ["roles/app/defaults/main.yml"] = "color: main-default\n",
        ["roles/app/defaults/alt.yml"] = "color: alt-default\n",
        ["roles/app/vars/main.yml"] = "level: main-vars\n",
        ["roles/app/vars/prod.yml"] = "level: prod\n",
        ["roles/app/handlers/main.yml"] = "- name: main handler\n  shell: 'echo main-handler >> @T@/log'\n",
        ["roles/app/handlers/alt.yml"] = "- name: alt handler\n  shell: 'echo alt-handler >> @T@/log'\n",
    })
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - name: s
      include_role: { name: app, tasks_from: setup, vars_from: prod.yml, defaults_from: alt, handlers_from: alt }
    - name: c
      import_role: { name: app, tasks_from: check.yml }
]])
    local r, _, res = H.run_json({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, "exit code: " .. r.stderr)
    T.eq(ran(res), "s.setup c.check s.alt-handler")
    T.eq(T.read(d .. "/log"), "setup-prod-alt-default\ncheck-main-vars-main-default\nalt-handler\n",
         "tasks/ when steps/ has none; steps/ first; the other files from the named ones, main.yml otherwise")
    -- a file the role does not have: named with the role, and where it was looked for
    T.write(book, "- hosts: localhost\n  steps:\n    - name: s\n" ..
        "      include_role: { name: app, tasks_from: nope, vars_from: gone.yml }\n")
    r = T.run({ "lint", book })
    T.eq(r.rc, 2, "invalid")
    T.eq(r.stderr,
        book .. ":4:7: step 's': role 'app': tasks_from 'nope': no such file (looked for " .. d ..
        "/roles/app/steps/nope.yml, " .. d .. "/roles/app/tasks/nope.yml)\n" ..
        book .. ":4:7: step 's': role 'app': vars_from 'gone.yml': no such file (looked for " .. d ..
        "/roles/app/vars/gone.yml)\n")
    -- a name that leaves the role's folder is refused
    T.write(book, "- hosts: localhost\n  steps:\n    - name: s\n" ..
        "      include_role: { name: app, tasks_from: ../../x, defaults_from: '{{ f }}' }\n")
    r = T.run({ "lint", book })
    T.eq(r.rc, 2, "invalid")
    T.eq(r.stderr,
        book .. ":4:34: step 's': include_role: tasks_from must be a file name of the role (no '/', no {{ }})\n" ..
        book .. ":4:55: step 's': include_role: defaults_from must be a file name of the role (no '/', no {{ }})\n")
end)

T.test("roles from CUTOVER_ROLES_PATH; a missing role is named with where it was looked for", function()
    local d = T.tmpdir()
    files(d, { ["shared/r1/steps/main.yml"] = "- id: hello\n  shell: 'echo r1 >> @T@/log'\n" })
    local book = H.book(d, "- hosts: localhost\n  roles: [r1]\n  steps: []\n")
    local r = T.run({ "run", book, "--no-journal" }, { env = { CUTOVER_ROLES_PATH = "/nonexistent:" .. d ..
        "/shared" } })
    T.eq(r.rc, 0, r.stderr)
    T.eq(T.read(d .. "/log"), "r1\n")
    r = T.run({ "lint", book })
    T.eq(r.rc, 2)
    T.eq(r.stderr, book .. ":2:11: play 1: role 'r1' not found (looked in " .. d ..
        "/roles/r1; set CUTOVER_ROLES_PATH for other folders)\n")
end)

T.test("import_playbook brings in the plays of another file", function()
    local d = T.tmpdir()
    files(d, { ["base.yml"] = "- hosts: localhost\n  steps:\n    - { id: s, shell: 'echo base >> @T@/log' }\n" })
    local book = H.book(d, [[
- import_playbook: base.yml
- hosts: localhost
  steps:
    - { id: s, shell: "echo main >> @T@/log" }
- import_playbook: base.yml
]])
    local r, _, res = H.run_json({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(ran(res), "base.s s base-2.s")
    T.eq(T.read(d .. "/log"), "base\nmain\nbase\n")
    -- an imported playbook in another folder: its roles/, its vars_files
    files(d, {
        ["sub/site.yml"] = "- hosts: localhost\n  vars_files: [v.yml]\n  roles: [r]\n  steps: []\n",
        ["sub/v.yml"] = "word: sub\n",
        ["sub/roles/r/steps/main.yml"] = "- id: rs\n  shell: 'echo r-{{ word }} >> @T@/log2'\n",
    })
    book = H.book(d, "- import_playbook: sub/site.yml\n", "top.yml")
    r, _, res = H.run_json({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(ran(res), "site.r.rs")
    T.eq(T.read(d .. "/log2"), "r-sub\n")
end)

T.test("vars_files: read in order over play vars; lint -i knows their names and role defaults", function()
    local d = T.tmpdir()
    files(d, {
        ["vars/a.yml"] = "x: from-a\ny: from-a\n",
        ["vars/b.yml"] = "y: from-b\n",
        ["roles/r/defaults/main.yml"] = "rdef: d\n",
        ["roles/r/vars/main.yml"] = "rvar: v\n",
        ["roles/r/steps/main.yml"] = "- debug: { msg: '{{ rdef }} {{ rvar }}' }\n",
        ["hosts.yml"] = "all:\n  hosts:\n    localhost: { cutover_connection: local }\n",
    })
    local book = H.book(d, [[
- hosts: localhost
  vars: { x: play, z: play }
  vars_files: [vars/a.yml, vars/b.yml]
  roles: [r]
  steps:
    - shell: "echo {{ x }} {{ y }} {{ z }} > @T@/out"
]])
    local r = T.run({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(T.read(d .. "/out"), "from-a from-b play\n")
    r = T.run({ "lint", book, "-i", d .. "/hosts.yml" })
    T.eq(r.rc, 0, "no false undefined variable: " .. r.stderr)
    T.write(d .. "/roles/r/steps/main.yml", "- debug: { msg: '{{ rdeff }}' }\n")
    r = T.run({ "lint", book, "-i", d .. "/hosts.yml" })
    T.eq(r.rc, 2, "a real typo in a role is still found")
    T.contains(r.stderr, "roles/r/steps/main.yml:1:12: 'debug' step: undefined variable 'rdeff' (did you mean 'rdef'?)")
end)

T.test("meta: flush_handlers runs the notified handlers at that point, once", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: a, shell: "echo a >> @T@/log", notify: h }
    - meta: flush_handlers
    - { id: b, shell: "echo b >> @T@/log" }
    - { id: c, shell: "echo c >> @T@/log", notify: h }
  handlers:
    - { name: h, shell: "echo h >> @T@/log" }
]])
    local r, _, res = H.run_json({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(T.read(d .. "/log"), "a\nh\nb\nc\nh\n")
    T.eq(ran(res), "a h b c h")
end)

T.test("resume refuses when an imported steps file, a role file or a vars file changed", function()
    for _, edited in ipairs({ "inc/a.yml", "roles/r/defaults/main.yml", "vars/v.yml" }) do
        local d = T.tmpdir()
        files(d, {
            ["inc/a.yml"] = "- id: s2\n  shell: 'echo s2 >> @T@/count'\n",
            ["roles/r/defaults/main.yml"] = "rd: 1\n",
            ["roles/r/steps/main.yml"] = "- id: rs\n  shell: 'echo rs-{{ rd }} >> @T@/count'\n",
            ["vars/v.yml"] = "v: 1\n",
        })
        local book = H.book(d, [[
- hosts: localhost
  vars_files: [vars/v.yml]
  steps:
    - { id: s1, shell: "echo s1 >> @T@/count" }
    - { name: imp, import_steps: inc/a.yml }
    - { name: r, include_role: { name: r } }
    - { id: s3, shell: "echo s3-{{ v }} >> @T@/count" }
]])
        local env = { XDG_STATE_HOME = d .. "/state" }
        local r = T.run({ "run", book }, { env = { XDG_STATE_HOME = d .. "/state",
            CUTOVER_FAULT = "kill-after:s1@localhost" }, timeout = 60 })
        T.eq(r.rc, 137, "killed after s1: " .. r.stderr)
        T.write(d .. "/" .. edited, T.read(d .. "/" .. edited) .. "# edited\n")
        r = T.run({ "resume" }, { env = env, timeout = 60 })
        T.eq(r.rc, 3, edited .. ": refused: " .. r.stdout .. r.stderr)
        T.contains(r.stderr, "cutover: file " .. require("cutover.core.fs").realpath(d .. "/" .. edited) ..
                   " changed since run", "names the edited file")
        T.eq(T.read(d .. "/count"), "s1\n", "nothing more ran")
        r = T.run({ "resume", "--accept-changed" }, { env = env, timeout = 60 })
        T.eq(r.rc, 0, "accepted: " .. r.stderr)
        T.eq(T.read(d .. "/count"), "s1\ns2\nrs-1\ns3-1\n")
    end
end)

T.test("a saved plan binds the imported steps file: apply refuses it edited", function()
    local d = T.tmpdir()
    files(d, { ["inc/a.yml"] = "- id: s2\n  shell: 'echo s2 >> @T@/count'\n" })
    local book = H.book(d, "- hosts: localhost\n  steps:\n    - { name: imp, import_steps: inc/a.yml }\n")
    local env = { XDG_STATE_HOME = d .. "/state" }
    local r = T.run({ "plan", book, "-o", d .. "/p.plan" }, { env = env, timeout = 60 })
    T.eq(r.rc, 0, "plan: " .. r.stderr)
    T.write(d .. "/inc/a.yml", T.read(d .. "/inc/a.yml") .. "# edited\n")
    r = T.run({ "apply", d .. "/p.plan" }, { env = env, timeout = 60 })
    T.eq(r.rc, 3, "refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, require("cutover.core.fs").realpath(d .. "/inc/a.yml") .. " read by a step changed")
    T.eq(T.read(d .. "/count"), nil, "nothing ran")
    -- the same for a file an include names with {{ }}: read by the plan's check run
    files(d, { ["inc/b.yml"] = "- id: s3\n  shell: 'echo s3 >> @T@/count'\n" })
    book = H.book(d, "- hosts: localhost\n  vars: { f: b }\n  steps:\n    - { name: dyn, include_steps: 'inc/{{ f " ..
        "}}.yml' }\n", "q.yml")
    r = T.run({ "plan", book, "-o", d .. "/q.plan" }, { env = env, timeout = 60 })
    T.eq(r.rc, 0, "plan: " .. r.stderr)
    T.write(d .. "/inc/b.yml", T.read(d .. "/inc/b.yml") .. "# edited\n")
    r = T.run({ "apply", d .. "/q.plan" }, { env = env, timeout = 60 })
    T.eq(r.rc, 3, "refused: " .. r.stdout .. r.stderr)
    T.contains(r.stderr, require("cutover.core.fs").realpath(d .. "/inc/b.yml") .. " read by a step changed")
    T.eq(T.read(d .. "/count"), nil, "nothing ran")
end)

T.test("a secret named only in an imported file or a vars file is resolved before anything runs", function()
    local d = T.tmpdir()
    T.sh("mkdir -p '" .. d .. "/home' '" .. d .. "/data' '" .. d .. "/state'")
    T.write(d .. "/pass", "correct horse battery\n")
    local env = { HOME = d .. "/home", XDG_DATA_HOME = d .. "/data", XDG_STATE_HOME = d .. "/state",
                  PATH = os.getenv("PATH") or "/usr/bin:/bin", CUTOVER_VAULT_PASSWORD_FILE = d .. "/pass" }
    local vault = d .. "/data/secrets.vault"
    local value = "Zq9-imported-Secret"
    T.eq(T.run({ "vault", "set", "db_pw", "--vault", vault }, { env = env, stdin = value .. "\n" }).rc, 0)
    files(d, {
        ["inc/a.yml"] = "- id: w\n  copy: { dest: '@T@/pw.txt', content: '{{ secret.db_pw }}' }\n",
        ["vars/v.yml"] = "other: '{{ secret.no_such }}'\n",
    })
    local book = H.book(d, [[
- hosts: localhost
  vars_files: [vars/v.yml]
  steps:
    - { id: first, shell: "echo first >> @T@/log" }
    - { name: imp, import_steps: inc/a.yml }
    - { id: last, debug: { msg: "{{ other }}" } }
]])
    local r = T.run({ "run", book, "--vault", vault }, { env = env, timeout = 60 })
    T.eq(r.rc, 2, "refused at start: " .. r.stderr)
    T.contains(r.stderr, "secret no_such not in the vault " .. vault .. " and no terminal to ask")
    T.eq(T.read(d .. "/log"), nil, "nothing ran")
    T.write(d .. "/vars/v.yml", "other: plain\n")
    r = T.run({ "run", book, "--vault", vault }, { env = env, timeout = 60 })
    T.eq(r.rc, 0, "runs: " .. r.stderr)
    T.eq(T.read(d .. "/pw.txt"), value)
    T.not_contains(r.stdout .. r.stderr, value, "the value is not printed")
end)

T.test("a block's vars reach its steps and its when, as an import's do", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  vars: { bv: play }
  steps:
    - block:
        - { id: in, shell: "echo {{ bv }} >> @T@/log" }
        - { id: own, shell: "echo {{ bv }} >> @T@/log", vars: { bv: step } }
      rescue:
        - { id: r, shell: "echo rescue >> @T@/log" }
      vars: { bv: block }
      when: bv == "block"
    - { id: after, shell: "echo {{ bv }} >> @T@/log" }
]])
    local r = T.run({ "run", book, "--no-journal" })
    T.eq(r.rc, 0, r.stdout .. r.stderr)
    T.eq(T.read(d .. "/log"), "block\nstep\nplay\n")
end)

T.done()
