-- Integration: control flow of the runner on the local connection: blocks,
-- loops, retries, conditions, handlers, tags, --start-at, variables and
-- run_once, with exact outcomes.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)

-- The ids of the host_result events, in order, joined by spaces.
local function ran(results)
    local ids = {}
    for _, e in ipairs(results) do
        ids[#ids + 1] = e.step .. (e.item and ("[" .. e.item .. "]") or "")
    end
    return table.concat(ids, " ")
end

T.test("block/rescue/always: rescue recovers the host; always runs", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: blk
      block:
        - { id: b1, shell: "echo b1 >> @T@/log" }
        - { id: boom, command: "false" }
        - { id: b3, shell: "echo b3 >> @T@/log" }
      rescue:
        - { id: r1, shell: "echo rescue >> @T@/log" }
      always:
        - { id: a1, shell: "echo always >> @T@/log" }
    - { id: after, shell: "echo after >> @T@/log" }
]])
    local r, ev, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "recovered host: exit 0; " .. r.stderr)
    T.eq(ran(res), "b1 boom r1 a1 after")
    T.eq(H.by_key(res).boom.status, "failed")
    T.eq(T.read(d .. "/log"), "b1\nrescue\nalways\nafter\n")
    T.eq(ev[#ev].hosts.localhost.failed_at, nil, "no failed_at once rescued")
    local t = T.run({ "run", book })
    T.eq(t.rc, 0)
    T.not_contains(t.stdout, "failed at")
end)

T.test("block/rescue/always: success skips rescue; always runs", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - block:
        - { id: b1, shell: "echo b1 >> @T@/log" }
      rescue:
        - { id: r1, shell: "echo rescue >> @T@/log" }
      always:
        - { id: a1, shell: "echo always >> @T@/log" }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0)
    T.eq(ran(res), "b1 a1")
    T.eq(T.read(d .. "/log"), "b1\nalways\n")
end)

T.test("block/rescue/always: failure in rescue fails the host; always still runs", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - block:
        - { id: boom, command: "false" }
      rescue:
        - { id: r1, shell: "echo rescue >> @T@/log" }
        - { id: r2, fail: "rescue gave up" }
      always:
        - { id: a1, shell: "echo always >> @T@/log" }
    - { id: after, shell: "echo after >> @T@/log" }
- hosts: localhost
  steps:
    - { id: next-play, shell: "echo next >> @T@/log" }
]])
    local r, ev, res = H.run_json({ "run", book })
    T.eq(r.rc, 1)
    T.eq(ran(res), "boom r1 r2 a1")
    T.eq(T.read(d .. "/log"), "rescue\nalways\n")
    T.eq(ev[#ev].hosts.localhost.failed_at, "r2")
    -- and without rescue: always runs, the host fails
    local book2 = H.book(d, [[
- hosts: localhost
  steps:
    - block:
        - { id: boom, command: "false" }
      always:
        - { id: a1, shell: "echo always2 >> @T@/log2" }
    - { id: after, shell: "echo after >> @T@/log2" }
]], "p2.yml")
    local r2, _, res2 = H.run_json({ "run", book2 })
    T.eq(r2.rc, 1)
    T.eq(ran(res2), "boom a1")
    T.eq(T.read(d .. "/log2"), "always2\n")
end)

T.test("loops: loop_var, a {{ list }}, register of a loop", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  vars:
    names: [alpha, beta, gamma]
  steps:
    - id: files
      copy: { dest: "@T@/{{ f }}.txt", content: "{{ f }} #{{ loop_index }}\n" }
      loop: "{{ names }}"
      loop_var: f
      register: made
    - id: count
      assert:
        that:
          - "#made.results == 3"
          - made.results[2].item == "beta"
          - made.results[2].changed
          - made.changed
    - id: literal
      command: echo {{ item.n }}
      loop: [{ n: 1 }, { n: 2 }]
      register: echoed
    - id: outputs
      debug: { msg: "{{ echoed.results[1].stdout }},{{ echoed.results[2].stdout }}" }
    - id: empty
      debug: { msg: never }
      loop: []
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, r.stderr)
    T.eq(ran(res), 'files[alpha] files[beta] files[gamma] count literal[{"n":1}] ' ..
                   'literal[{"n":2}] outputs')
    T.eq(T.read(d .. "/alpha.txt"), "alpha #1\n")
    T.eq(T.read(d .. "/gamma.txt"), "gamma #3\n")
    T.eq(H.by_key(res).outputs.result.msg, "1,2")
    -- second run: every item ok, the register says unchanged
    local _, _, again = H.run_json({ "run", book })
    T.eq(H.by_key(again)["files [beta]"].status, "ok")
    T.eq(H.by_key(again).count.status, "failed", "made.results[2].changed is false now")
    -- looping over something not a list fails clearly
    local bad = H.book(d, [[
- hosts: localhost
  vars: { one: "text" }
  steps:
    - { id: l, debug: { msg: x }, loop: "{{ one }}" }
]], "bad.yml")
    local rb, _, rbres = H.run_json({ "run", bad })
    T.eq(rb.rc, 1)
    T.eq(rbres[1].result.msg, "loop: expected a list, got string")
end)

T.test("until/retries/delay: succeeds on the 3rd attempt; gives up after retries", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: count
      shell: "n=$(cat @T@/n 2>/dev/null || echo 0); n=$((n + 1)); echo $n > @T@/n; echo $n"
      register: c
      until: c.stdout == "3"
      retries: 5
      delay: 0.1
    - id: never
      command: "false"
      until: result.rc == 0
      retries: 2
      delay: 0
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 1)
    local k = H.by_key(res)
    T.eq(k.count.status, "changed")
    T.eq(k.count.result.attempts, 3)
    T.eq(k.count.result.stdout, "3")
    T.eq(T.read(d .. "/n"), "3\n")
    T.eq(k.never.status, "failed")
    T.eq(k.never.result.attempts, 3)
    T.eq(k.never.result.msg, "still not true after 3 attempts: until result.rc == 0")
    T.sh("rm " .. d .. "/n")
    local t = T.run({ "run", book })
    T.contains(t.stdout, "count (3 attempts)")
end)

T.test("failed_when / changed_when / ignore_errors", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: exit2-ok
      command: sh -c "exit 2"
      failed_when: result.rc > 2
    - id: output-fails
      command: echo ERROR in output
      register: o
      failed_when: contains(o.stdout, "ERROR")
      ignore_errors: true
    - id: not-changed
      command: "true"
      changed_when: false
    - id: changed-by-output
      shell: echo updated
      changed_when: result.stdout == "updated"
    - id: unchanged-by-output
      shell: echo same
      changed_when: result.stdout == "updated"
    - id: ignored
      command: "false"
      ignore_errors: true
    - id: still-running
      debug: { msg: "o.failed={{ o.failed }}" }
]])
    local r, ev, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, r.stderr)
    H.expect_statuses(res, {
        ["exit2-ok"] = "changed", ["output-fails"] = "ignored",
        ["not-changed"] = "ok", ["changed-by-output"] = "changed",
        ["unchanged-by-output"] = "ok", ignored = "ignored", ["still-running"] = "ok",
    })
    local k = H.by_key(res)
    T.eq(k["exit2-ok"].result.msg, nil, "no 'exit code' message once failed_when says ok")
    T.eq(k["output-fails"].result.msg, 'failed_when: contains(o.stdout, "ERROR")')
    T.eq(k["output-fails"].failed, false)
    T.eq(k["output-fails"].ignored, true)
    T.eq(k["still-running"].result.msg, "o.failed=true")
    T.eq(ev[#ev].hosts.localhost.ignored, 2)
end)

T.test("when: true, false, a list, and an undefined variable", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  vars: { n: 3, on: true }
  steps:
    - { id: yes-bool, debug: { msg: a }, when: true }
    - { id: no-bool, debug: { msg: b }, when: false }
    - { id: yes-expr, debug: { msg: c }, when: n > 2 and on }
    - { id: list-all, debug: { msg: d }, when: [n == 3, on] }
    - { id: list-one-false, debug: { msg: e }, when: [n == 3, not on] }
    - { id: braces, debug: { msg: f }, when: "{{ n == 3 }}" }
    - { id: undefined, debug: { msg: g }, when: nosuch_var == 1 }
    - { id: after, debug: { msg: h } }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 1)
    H.expect_statuses(res, {
        ["yes-bool"] = "ok", ["no-bool"] = "skipped", ["yes-expr"] = "ok",
        ["list-all"] = "ok", ["list-one-false"] = "skipped", braces = "ok",
        undefined = "failed",
    })
    local msg = H.by_key(res).undefined.result.msg
    T.contains(msg, "undefined variable 'nosuch_var'")
    T.contains(msg, "when:")
end)

T.test("handlers: only on change, once, at the end, in definition order", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: c1
      copy: { dest: "@T@/one", content: "1" }
      notify: [second, first]
    - id: c2
      copy: { dest: "@T@/two", content: "2" }
      notify: second
    - id: quiet
      command: "true"
      changed_when: false
      notify: third
    - id: last
      shell: "echo steps-done >> @T@/log"
      changed_when: false
  handlers:
    - { name: first, shell: "echo first >> @T@/log" }
    - { name: third, shell: "echo third >> @T@/log" }
    - { name: second, shell: "echo second >> @T@/log" }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, r.stderr)
    T.eq(ran(res), "c1 c2 quiet last first second")
    T.eq(T.read(d .. "/log"), "steps-done\nfirst\nsecond\n")
    -- nothing changed: no handler runs
    local r2, _, res2 = H.run_json({ "run", book })
    T.eq(r2.rc, 0)
    T.eq(ran(res2), "c1 c2 quiet last")
    T.eq(T.read(d .. "/log"), "steps-done\nfirst\nsecond\nsteps-done\n")
    -- a failed host runs no handlers
    local book3 = H.book(d, [[
- hosts: localhost
  steps:
    - { id: c, copy: { dest: "@T@/three", content: "3" }, notify: h }
    - { id: boom, command: "false" }
  handlers:
    - { name: h, shell: "echo handler >> @T@/log3" }
]], "p3.yml")
    local r3, _, res3 = H.run_json({ "run", book3 })
    T.eq(r3.rc, 1)
    T.eq(ran(res3), "c boom")
    T.ok(not H.exists(d .. "/log3"), "handler did not run")
end)

T.test("tags: --tags, --skip-tags, always, never", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: s-a, debug: { msg: a }, tags: a }
    - { id: s-b, debug: { msg: b }, tags: [b, shared] }
    - { id: s-none, debug: { msg: none } }
    - { id: s-always, debug: { msg: always }, tags: always }
    - { id: s-never, debug: { msg: never }, tags: never }
    - { id: s-never-x, debug: { msg: never-x }, tags: [never, x] }
    - block:
        - { id: s-inner, debug: { msg: inner } }
      tags: blk
]])
    local cases = {
        { {}, "s-a s-b s-none s-always s-inner" },
        { { "--tags", "a" }, "s-a s-always" },
        { { "--tags", "a,blk" }, "s-a s-always s-inner" },
        { { "-t", "a", "-t", "shared" }, "s-a s-b s-always" },
        { { "--tags", "x" }, "s-always s-never-x" },
        { { "--tags", "never" }, "s-always s-never s-never-x" },
        { { "--skip-tags", "b" }, "s-a s-none s-always s-inner" },
        { { "--skip-tags", "always,blk" }, "s-a s-b s-none" },
        { { "--tags", "all" }, "s-a s-b s-none s-always s-inner" },
        { { "--tags", "untagged" }, "s-none s-always" },
        { { "--tags", "a", "--skip-tags", "always" }, "s-a" },
        { { "--tags", "nosuch" }, "s-always" },
    }
    for _, c in ipairs(cases) do
        local args = H.plus({ "run", book }, table.unpack(c[1]))
        local r, _, res = H.run_json(args)
        T.eq(r.rc, 0, table.concat(c[1], " "))
        T.eq(ran(res), c[2], "steps run with " .. table.concat(c[1], " "))
    end
end)

T.test("--start-at: by id, by name, and matching nothing", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: one, shell: "echo one >> @T@/log" }
    - { name: The second step, shell: "echo two >> @T@/log" }
    - block:
        - { id: three, shell: "echo three >> @T@/log" }
        - { id: four, shell: "echo four >> @T@/log" }
    - { id: five, shell: "echo five >> @T@/log" }
]])
    local r, _, res = H.run_json({ "run", book, "--start-at", "the-second-step" })
    T.eq(r.rc, 0)
    T.eq(ran(res), "the-second-step three four five")
    r, _, res = H.run_json({ "run", book, "--start-at", "The second step" })
    T.eq(ran(res), "the-second-step three four five")
    r, _, res = H.run_json({ "run", book, "--start-at", "four" })
    T.eq(ran(res), "four five", "start inside a block")
    T.eq(T.read(d .. "/log"),
         "two\nthree\nfour\nfive\ntwo\nthree\nfour\nfive\nfour\nfive\n")
    local t = T.run({ "run", book, "--start-at", "fiev" })
    T.eq(t.rc, 2, "a --start-at that matches nothing is a usage error")
    T.eq(t.stdout, "")
    T.contains(t.stderr, "--start-at 'fiev' matches no step id or name (did you mean 'five'?); nothing ran")
    T.eq(T.read(d .. "/log"),
         "two\nthree\nfour\nfive\ntwo\nthree\nfour\nfive\nfour\nfive\n", "nothing ran")
end)

T.test("variables: step vars, set_fact and -e precedence", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  vars: { x: play, y: play, z: play, w: play }
  steps:
    - id: play-var
      debug: { msg: "{{ x }}" }
    - id: step-var
      debug: { msg: "{{ x }}/{{ z }}" }
      vars: { x: step, z: "{{ w }}-derived" }
    - id: step-var-gone
      debug: { msg: "{{ x }}" }
    - id: facts
      set_fact: { x: fact, y: fact }
    - id: after-fact
      debug: { msg: "{{ x }},{{ y }}" }
    - id: step-under-fact
      debug: { msg: "{{ x }}" }
      vars: { x: step }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, r.stderr)
    local k = H.by_key(res)
    T.eq(k["play-var"].result.msg, "play")
    T.eq(k["step-var"].result.msg, "step/play-derived")
    T.eq(k["step-var-gone"].result.msg, "play")
    T.eq(k["after-fact"].result.msg, "fact,fact", "set_fact beats play vars")
    T.eq(k["step-under-fact"].result.msg, "fact", "set_fact beats step vars")
    r, _, res = H.run_json({ "run", book, "-e", "x=extra" })
    k = H.by_key(res)
    T.eq(k["play-var"].result.msg, "extra")
    T.eq(k["step-var"].result.msg, "extra/play-derived", "-e beats step vars")
    T.eq(k["after-fact"].result.msg, "extra,fact", "-e beats set_fact")
end)

T.test("-e NAME=VALUE, -e @file.yml, -e '{a: 1}'", function()
    local d = T.tmpdir()
    T.write(d .. "/vars.yml", "list: [1, 2, 3]\nnested: { k: v }\nname: from-file\n")
    local book = H.book(d, [[
- hosts: localhost
  vars: { name: play, num: 0 }
  steps:
    - id: show
      debug: { msg: "{{ name }}|{{ type(num) }}:{{ num }}|{{ #list }}|{{ nested.k }}|{{ eq }}" }
]])
    local r, _, res = H.run_json({ "run", book, "-e", "@" .. d .. "/vars.yml",
                                  "-e", "{num: 7}", "-e", "eq=a=b c" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(res[1].result.msg, "from-file|number:7|3|v|a=b c")
    -- later -e wins; NAME=VALUE is text
    r, _, res = H.run_json({ "run", book, "-e", "@" .. d .. "/vars.yml", "-e", "name=cli",
                             "-e", "num=5", "-e", "eq=", "-e", "{list: [1]}" })
    T.eq(res[1].result.msg, "cli|string:5|1|v|")
    -- bad -e: usage error, nothing runs
    local bad = T.run({ "run", book, "-e", "no equals sign" })
    T.eq(bad.rc, 2)
    T.contains(bad.stderr, "expected NAME=VALUE, @FILE.yml or a {mapping}")
    T.eq(bad.stdout, "")
    local missing = T.run({ "run", book, "-e", "@" .. d .. "/nope.yml" })
    T.eq(missing.rc, 2)
    T.contains(missing.stderr, "nope.yml")
end)

T.test("run_once with two hosts: runs on the first, both see its result", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", [[
all:
  hosts:
    h1: { ansible_connection: local }
    h2: { ansible_connection: local }
]])
    local book = H.book(d, [[
- hosts: all
  steps:
    - id: once
      shell: "echo {{ inventory_hostname }} >> @T@/once.log; echo ran-on-{{ inventory_hostname }}"
      run_once: true
      register: o
    - id: every
      shell: "echo {{ inventory_hostname }}:{{ o.stdout }} >> @T@/every.log"
]])
    local r, _, res = H.run_json({ "run", book, "-i", d .. "/inv.yml" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(T.read(d .. "/once.log"), "h1\n")
    local lines = {}
    for l in T.read(d .. "/every.log"):gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    T.eq(table.concat(lines, " "), "h1:ran-on-h1 h2:ran-on-h1")
    local k = H.by_key(res, true)
    T.eq(k["h1 once"].status, "changed")
    T.eq(k["h2 once"].status, "changed")
    T.contains(k["h2 once"].result.msg, "(run once, on h1)")
end)

T.test("check_mode per step, and no_log", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: always-real
      copy: { dest: "@T@/real", content: "r" }
      check_mode: false
    - id: always-check
      copy: { dest: "@T@/dry", content: "d" }
      check_mode: true
    - id: secret
      command: echo s3cret-value
      no_log: true
    - id: flag
      debug: { msg: "check_mode={{ check_mode }}" }
]])
    local r, _, res = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, r.stderr)
    H.expect_statuses(res, { ["always-real"] = "changed", ["always-check"] = "changed",
                             secret = "unknown", flag = "ok" })
    T.eq(T.read(d .. "/real"), "r", "check_mode: false writes even under --check")
    T.ok(not H.exists(d .. "/dry"))
    T.eq(H.by_key(res).flag.result.msg, "check_mode=true")
    r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0)
    H.expect_statuses(res, { ["always-real"] = "ok", ["always-check"] = "changed",
                             secret = "changed", flag = "ok" })
    T.ok(not H.exists(d .. "/dry"), "check_mode: true never writes")
    T.eq(H.by_key(res).secret.result.msg, "(output hidden: no_log)")
    T.not_contains(r.stdout, "s3cret-value")
    local t = T.run({ "run", book, "-v" })
    T.not_contains(t.stdout, "s3cret-value")
end)

T.test("two hosts: one fails, the other finishes; the failed one sits out later plays", function()
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", [[
all:
  hosts:
    good: { ansible_connection: local }
    bad: { ansible_connection: local }
]])
    local book = H.book(d, [[
- hosts: all
  steps:
    - id: maybe
      command: "{{ inventory_hostname == 'bad' and 'false' or 'true' }}"
    - id: mark
      shell: "echo {{ inventory_hostname }} >> @T@/play1"
- hosts: all
  steps:
    - id: mark2
      shell: "echo {{ inventory_hostname }} >> @T@/play2"
]])
    local r, ev, res = H.run_json({ "run", book, "-i", d .. "/inv.yml" })
    T.eq(r.rc, 1)
    T.eq(T.read(d .. "/play1"), "good\n")
    T.eq(T.read(d .. "/play2"), "good\n")
    local k = H.by_key(res, true)
    T.eq(k["bad maybe"].status, "failed")
    T.eq(k["bad mark"], nil)
    T.eq(ev[#ev].hosts.bad.failed_at, "maybe")
    T.eq(ev[#ev].hosts.good.failed_at, nil)
end)

-- Issue 10, item 4: the expression budget holds in a real run, and the
-- controller as a whole has a memory ceiling.
local fs = require("cutover.core.fs")
T.test("item4: a loop over a templated variable stops at the budget in a run", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  vars:
    x: "{{ 1 }}"
  steps:
    - id: spin
      when: "(function() local n = 0 for i = 1, 3e7 do n = n + x end return true end)()"
      shell: "echo ran >> @T@/log"
    - { id: after, shell: "echo after >> @T@/log" }
]])
    local r, _, res = H.run_json({ "run", book }, { timeout = 120 })
    T.eq(r.rc, 1, "the host failed; " .. r.stderr)
    local spin = H.by_key(res).spin
    T.eq(spin.status, "failed", "the condition failed")
    T.contains(spin.result.msg, "instruction limit exceeded", "named")
    T.eq(fs.stat(d .. "/log"), nil, "nothing ran")
end)

T.test("item4: the controller's memory ceiling fails the step, not the process", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - set_fact: { a1: "{{ string.rep('a', 10 * 1024 * 1024) }}" }
    - set_fact: { a2: "{{ string.rep('b', 10 * 1024 * 1024) }}" }
    - set_fact: { a3: "{{ string.rep('c', 10 * 1024 * 1024) }}" }
    - set_fact: { a4: "{{ string.rep('d', 10 * 1024 * 1024) }}" }
    - set_fact: { a5: "{{ string.rep('e', 10 * 1024 * 1024) }}" }
    - set_fact: { a6: "{{ string.rep('f', 10 * 1024 * 1024) }}" }
    - set_fact: { a7: "{{ string.rep('g', 10 * 1024 * 1024) }}" }
    - { id: after, shell: "echo after >> @T@/log" }
]])
    local r = T.run({ "run", book }, { env = { CUTOVER_MEMORY_LIMIT = "64" } })
    T.eq(r.rc, 1, "a step failed, cleanly; " .. r.stderr)
    T.contains(r.stdout, "memory limit exceeded", "said")
    T.eq(fs.stat(d .. "/log"), nil, "the run stopped there")
    r = T.run({ "run", book }, { env = { CUTOVER_MEMORY_LIMIT = "lots" } })
    T.eq(r.rc, 2, "a bad setting is a usage error")
    T.contains(r.stderr, "CUTOVER_MEMORY_LIMIT must be a whole number of MiB", "named")
    -- 70 MiB of facts through the journal: slow under ASan on a loaded
    -- machine, so a wider bound against a hang than T.run's 60 s
    r = T.run({ "run", book }, { timeout = 300 })
    T.eq(r.rc, 0, "under the default ceiling both fit; " .. r.stderr)
end)

T.done()
