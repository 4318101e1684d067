-- Integration: every action on the local connection, in a real run and in
-- --check, with exact outcomes.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

-- A target folder with known content, and a playbook folder beside it.
local function fixture()
    local d = T.tmpdir()
    local t = d .. "/target"
    local p = d .. "/book"
    assert(fs.mkdir(t, 493))
    assert(fs.mkdir(p, 493))
    assert(fs.mkdir(p .. "/files", 493))
    assert(fs.mkdir(p .. "/templates", 493))
    assert(fs.mkdir(t .. "/existing_dir", 493))
    T.write(t .. "/keep.txt", "same\n", 420)
    T.write(t .. "/keep2.txt", "same\n", 420)
    T.write(t .. "/old.txt", "old\n", 384)
    T.write(t .. "/gone.txt", "bye\n", 420)
    T.write(t .. "/moded.txt", "m\n", 384)
    T.write(p .. "/files/src.txt", "from the controller\n\tbytes: \1\2\3\n", 420)
    T.write(p .. "/templates/app.conf.tmpl",
            "# for {{ inventory_hostname }}\nport = {{ port }}\n" ..
            "workers = {{ settings.workers * 2 }}\nname = {{ name }}\n")
    return d, t, p
end

local ALL_ACTIONS = [[
- name: every action
  hosts: localhost
  vars:
    port: 8080
    name: demo
    settings: { workers: 3 }
  steps:
    - id: cmd-echo
      command: echo hello
    - id: cmd-creates
      command:
        cmd: touch {{ target }}/never1
        creates: "{{ target }}/keep.txt"
    - id: cmd-removes
      command:
        cmd: touch {{ target }}/never2
        removes: "{{ target }}/nonexistent"
    - id: shell
      shell: echo hi > {{ target }}/shell.out
    - id: shell-creates
      shell:
        cmd: echo no > {{ target }}/never3
        creates: "{{ target }}/keep.txt"
    - id: copy-new
      copy: { dest: "{{ target }}/new.txt", content: "new\n" }
    - id: copy-same
      copy: { dest: "{{ target }}/keep.txt", content: "same\n" }
    - id: copy-update
      copy: { dest: "{{ target }}/old.txt", content: "updated\n" }
    - id: copy-mode
      copy: { dest: "{{ target }}/keep2.txt", content: "same\n", mode: "0600" }
    - id: copy-src
      copy: { src: files/src.txt, dest: "{{ target }}/src-copy.txt", mode: 0640 }
    - id: template
      template: { src: templates/app.conf.tmpl, dest: "{{ target }}/app.conf", mode: "0640" }
    - id: dir-new
      file: { path: "{{ target }}/sub/deeper", state: directory, mode: "0750" }
    - id: dir-exists
      file: { path: "{{ target }}/existing_dir", state: directory }
    - id: absent
      file: { path: "{{ target }}/gone.txt", state: absent }
    - id: absent-missing
      file: { path: "{{ target }}/never-there", state: absent }
    - id: touch
      file: { path: "{{ target }}/touched.txt", state: touch }
    - id: file-mode
      file: { path: "{{ target }}/moded.txt", mode: "0640" }
    - id: file-ok
      file: { path: "{{ target }}/keep.txt", state: file }
    - id: stat
      stat: { path: "{{ target }}/keep.txt" }
      register: st
    - id: stat-missing
      stat: { path: "{{ target }}/nope" }
      register: st2
    - id: assert
      assert:
        that:
          - st.stat.exists
          - st.stat.size == 5
          - st.stat.mode == "0644"
          - not st2.stat.exists
    - id: set-fact
      set_fact: { answer: 42 }
    - id: debug
      debug: { msg: "answer={{ answer }}" }
    - id: debug-var
      debug: { var: answer + 1 }
    - id: wait-path-there
      wait_for: { path: "{{ target }}/keep.txt", timeout: 5 }
    - id: wait-path-later
      wait_for: { path: "{{ target }}/new.txt", timeout: 5 }
    - id: wait-port-started
      wait_for: { port: "{{ open_port }}", timeout: 5 }
    - id: wait-port-stopped
      wait_for: { port: "{{ closed_port }}", state: stopped, timeout: 5 }
    - id: fail-skipped
      fail: { msg: never }
      when: false
]]

T.test("every action: --check changes nothing and predicts the real run", function()
    local d, t, p = fixture()
    local book = H.book(p, ALL_ACTIONS)
    local port, stop = H.listener(d)
    local closed = H.closed_port()
    local args = { "run", book, "-e", "target=" .. t, "-e", "open_port=" .. port,
                   "-e", "closed_port=" .. closed }

    local before = T.snapshot(t)
    local rc, ev, check = H.run_json(H.plus(args, "--check"))
    T.eq(rc.rc, 0, "check exit code; stderr: " .. rc.stderr)
    T.same_snapshot(before, T.snapshot(t), "check mode")
    T.eq(ev[1].event, "run_start")
    T.eq(ev[1].check, true, "run_start.check")
    local want_check = {
        ["cmd-echo"] = "unknown", ["cmd-creates"] = "skipped",
        ["cmd-removes"] = "skipped", shell = "unknown",
        ["shell-creates"] = "skipped",
        ["copy-new"] = "changed", ["copy-same"] = "ok",
        ["copy-update"] = "changed", ["copy-mode"] = "changed",
        ["copy-src"] = "changed", template = "changed",
        ["dir-new"] = "changed", ["dir-exists"] = "ok",
        absent = "changed", ["absent-missing"] = "ok", touch = "changed",
        ["file-mode"] = "changed", ["file-ok"] = "ok",
        stat = "ok", ["stat-missing"] = "ok", assert = "ok",
        ["set-fact"] = "ok", debug = "ok", ["debug-var"] = "ok",
        ["wait-path-there"] = "ok", ["wait-path-later"] = "unknown",
        ["wait-port-started"] = "ok", ["wait-port-stopped"] = "ok",
        ["fail-skipped"] = "skipped",
    }
    H.expect_statuses(check, want_check, "check")
    local c = H.by_key(check)
    T.eq(c["cmd-echo"].result.msg, "would run: echo hello")
    T.eq(c["cmd-creates"].result.msg, t .. "/keep.txt exists")
    T.eq(c["copy-new"].result.msg, "would create")
    T.eq(c["copy-update"].result.msg, "would update content")
    T.eq(c["copy-mode"].result.msg, "would change mode")
    T.eq(c["dir-new"].result.msg, "would create")
    T.eq(c.absent.result.msg, "would remove file")
    T.eq(c.touch.result.msg, "would create")
    T.eq(c["file-mode"].result.msg, "would change mode")
    T.eq(c["wait-path-later"].result.msg,
         "would wait up to 5s for " .. t .. "/new.txt to be present")
    T.eq(c.debug.result.msg, "answer=42")
    T.eq(c["debug-var"].result.msg, "answer + 1 = 43")
    T.eq(ev[#ev].event, "run_end")
    T.eq(ev[#ev].exit_code, 0)

    local rr, _, real = H.run_json(args)
    T.eq(rr.rc, 0, "real exit code; stderr: " .. rr.stderr)
    local want_real = {}
    for k, v in pairs(want_check) do want_real[k] = v end
    want_real["cmd-echo"] = "changed"
    want_real.shell = "changed"
    want_real["wait-path-later"] = "ok"
    H.expect_statuses(real, want_real, "real")
    T.ok(H.check_predicts(check, real) == 29, "29 steps compared")
    local r = H.by_key(real)
    T.eq(r["cmd-echo"].result.stdout, "hello")
    T.eq(r["cmd-echo"].result.rc, 0)

    -- exactly the predicted changes, on disk
    T.eq(T.read(t .. "/new.txt"), "new\n")
    T.eq(H.mode(t .. "/new.txt"), "0644", "new file default mode")
    T.eq(T.read(t .. "/old.txt"), "updated\n")
    T.eq(H.mode(t .. "/old.txt"), "0600", "updated file keeps its mode")
    T.eq(H.mode(t .. "/keep2.txt"), "0600")
    T.eq(T.read(t .. "/src-copy.txt"), T.read(p .. "/files/src.txt"))
    T.eq(H.mode(t .. "/src-copy.txt"), "0640")
    T.eq(T.read(t .. "/app.conf"),
         "# for localhost\nport = 8080\nworkers = 6\nname = demo\n")
    T.eq(H.mode(t .. "/app.conf"), "0640")
    T.eq(fs.stat(t .. "/sub/deeper").type, "directory")
    T.eq(H.mode(t .. "/sub/deeper"), "0750")
    T.ok(not H.exists(t .. "/gone.txt"), "gone.txt removed")
    T.eq(fs.stat(t .. "/touched.txt").size, 0)
    T.eq(H.mode(t .. "/moded.txt"), "0640")
    T.eq(T.read(t .. "/shell.out"), "hi\n")
    for _, n in ipairs({ "never1", "never2", "never3", "never-there" }) do
        T.ok(not H.exists(t .. "/" .. n), n .. " must not exist")
    end

    -- idempotence: a second real run changes nothing but touch and the
    -- commands; a check run after it predicts the same
    local r2r, _, real2 = H.run_json(args)
    T.eq(r2r.rc, 0, "second run exit code")
    local want2 = {}
    for k, v in pairs(want_real) do want2[k] = v == "changed" and "ok" or v end
    want2["cmd-echo"], want2.shell, want2.touch = "changed", "changed", "changed"
    H.expect_statuses(real2, want2, "second run")
    local snap = T.snapshot(t)
    local _, _, check2 = H.run_json(H.plus(args, "--check"))
    T.same_snapshot(snap, T.snapshot(t), "second check")
    local w3 = {}
    for k, v in pairs(want2) do w3[k] = v end
    w3["cmd-echo"], w3.shell = "unknown", "unknown"
    H.expect_statuses(check2, w3, "check after the run")
    stop()
end)

T.test("modes: YAML 0644, '0644', '644' and 0600 on new and existing files", function()
    local d = T.tmpdir()
    T.write(d .. "/exists.txt", "x", 420)
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: int, copy: { dest: "@T@/a", content: "a", mode: 0644 } }
    - { id: str, copy: { dest: "@T@/b", content: "b", mode: "0644" } }
    - { id: short, copy: { dest: "@T@/c", content: "c", mode: "644" } }
    - { id: private, copy: { dest: "@T@/e", content: "e", mode: 0600 } }
    - { id: same, copy: { dest: "@T@/exists.txt", content: "x", mode: 0644 } }
    - { id: dir, file: { path: "@T@/dir", state: directory, mode: 0700 } }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "exit code; " .. r.stderr)
    H.expect_statuses(res, { int = "changed", str = "changed", short = "changed",
                             private = "changed", same = "ok", dir = "changed" })
    T.eq(H.mode(d .. "/a"), "0644")
    T.eq(H.mode(d .. "/b"), "0644")
    T.eq(H.mode(d .. "/c"), "0644")
    T.eq(H.mode(d .. "/e"), "0600")
    T.eq(H.mode(d .. "/dir"), "0700")
    T.eq(H.by_key(res).int.result.mode, "0644")
    local _, _, again = H.run_json({ "run", book })
    for _, e in ipairs(again) do T.eq(e.changed, false, "second run " .. e.step) end
end)

T.test("command: text form has no shell expansion; argv is passed as is", function()
    local d = T.tmpdir()
    T.write(d .. "/a-file", "")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: home, command: echo $HOME }
    - { id: glob, command: { cmd: echo *, chdir: "@T@" } }
    - { id: quotes, command: "printf '%s|' 'a  b' \"c $d\" e\\ f" }
    - id: argv
      command:
        argv: [printf, "%s|", "a b", "$HOME", "*", "x;y", 12]
    - { id: pipe, command: echo a | cat }
    - { id: shell, shell: "echo $((1 + 2)) | cat" }
]])
    local r, _, res = H.run_json({ "run", book }, { env = { HOME = "/home/nobody-here" } })
    T.eq(r.rc, 0, "exit code; " .. r.stderr)
    local k = H.by_key(res)
    T.eq(k.home.result.stdout, "$HOME")
    T.eq(k.glob.result.stdout, "*")
    T.eq(k.quotes.result.stdout, "a  b|c $d|e f|")
    T.eq(k.argv.result.stdout, "a b|$HOME|*|x;y|12|")
    T.eq(k.pipe.result.stdout, "a | cat")
    T.eq(k.shell.result.stdout, "3")
    T.eq(k.home.status, "changed")
end)

T.test("command: non-zero exit fails with rc; the host stops", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: three
      command: sh -c "echo out; echo err >&2; exit 3"
    - id: after
      copy: { dest: "@T@/after", content: "x" }
]])
    local r, ev, res = H.run_json({ "run", book })
    T.eq(r.rc, 1, "exit code")
    T.eq(#res, 1, "one result: the host stopped")
    local e = res[1]
    T.eq(e.status, "failed")
    T.eq(e.failed, true)
    T.eq(e.result.rc, 3)
    T.eq(e.result.msg, "exit code 3")
    T.eq(e.result.stdout, "out")
    T.eq(e.result.stderr, "err")
    T.ok(not H.exists(d .. "/after"), "later steps did not run")
    T.eq(ev[#ev].exit_code, 1)
    -- text output names the failure and shows stderr
    local t = T.run({ "run", book })
    T.eq(t.rc, 1)
    T.match(t.stdout, "failed%s+localhost%s+three")
    T.contains(t.stdout, "exit code 3")
    T.contains(t.stdout, "stderr: err")
    T.contains(t.stdout, "failed at three")
end)

T.test("command: timeout stops the program and fails 'timed out'", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: slow
      command: { cmd: sleep 20, timeout: 1 }
    - id: slow-shell
      shell: { cmd: "sleep 20; echo never", timeout: 0.5 }
      ignore_errors: true
]])
    local t0 = os.time()
    local r, _, res = H.run_json({ "run", book })
    T.ok(os.time() - t0 < 10, "stopped well before 20 s")
    T.eq(r.rc, 1)
    T.eq(#res, 1)
    T.eq(res[1].status, "failed")
    T.eq(res[1].result.msg, "timed out after 1s")
    T.eq(res[1].result.timed_out, true)
    T.eq(res[1].result.rc, 128 + 15, "killed by SIGTERM")
end)

T.test("command: stdin, chdir, missing program", function()
    local d = T.tmpdir()
    local real = fs.realpath(d)
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: stdin
      command: { argv: [cat], stdin: "line one\nline two\n" }
      register: fed
    - id: lines
      assert: { that: "fed.stdout_lines[2] == 'line two' and #fed.stdout_lines == 2" }
    - id: chdir
      command: { cmd: pwd, chdir: "@T@" }
    - id: shell-chdir
      shell: { cmd: "ls", chdir: "@T@" }
    - id: missing
      command: no-such-program-cutover-test --flag
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 1, "exit code")
    local k = H.by_key(res)
    T.eq(k.stdin.result.stdout, "line one\nline two")
    T.eq(k.lines.status, "ok")
    T.eq(k.chdir.result.stdout, real)
    T.eq(k["shell-chdir"].result.stdout, "p.yml")
    T.eq(k.missing.status, "failed")
    T.eq(k.missing.result.rc, 127)
    T.contains(k.missing.result.msg, "no-such-program-cutover-test")
    T.contains(k.missing.result.msg, "No such file or directory")
    local t = T.run({ "run", book })
    T.contains(t.stdout, "cannot run 'no-such-program-cutover-test'")
end)

T.test("command/shell creates and removes, real and check", function()
    local d = T.tmpdir()
    T.write(d .. "/flag", "")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: c-skip, command: { cmd: "touch @T@/x1", creates: "@T@/flag" } }
    - { id: c-run, command: { cmd: "touch @T@/x2", creates: "@T@/x2" } }
    - { id: r-skip, shell: { cmd: "touch @T@/x3", removes: "@T@/none" } }
    - { id: r-run, shell: { cmd: "rm @T@/flag", removes: "@T@/flag" } }
]])
    local snap = T.snapshot(d)
    local _, _, check = H.run_json({ "run", book, "--check" })
    T.same_snapshot(snap, T.snapshot(d))
    H.expect_statuses(check, { ["c-skip"] = "skipped", ["c-run"] = "unknown",
                               ["r-skip"] = "skipped", ["r-run"] = "unknown" })
    local r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0)
    H.expect_statuses(real, { ["c-skip"] = "skipped", ["c-run"] = "changed",
                              ["r-skip"] = "skipped", ["r-run"] = "changed" })
    H.check_predicts(check, real)
    T.ok(H.exists(d .. "/x2") and not H.exists(d .. "/x1") and not H.exists(d .. "/x3"))
    T.ok(not H.exists(d .. "/flag"))
    local _, _, again = H.run_json({ "run", book })
    H.expect_statuses(again, { ["c-skip"] = "changed", ["c-run"] = "skipped",
                               ["r-skip"] = "skipped", ["r-run"] = "skipped" })
end)

T.test("copy --diff shows a unified diff (check and real, text and JSON)", function()
    local d = T.tmpdir()
    T.write(d .. "/conf", "a\nb\nc\n", 420)
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: edit
      copy: { dest: "@T@/conf", content: "a\nB\nc\n" }
    - id: create
      copy: { dest: "@T@/fresh", content: "one\n", mode: "0600" }
]])
    local snap = T.snapshot(d)
    local c = T.run({ "run", book, "--check", "--diff" })
    T.eq(c.rc, 0, c.stderr)
    T.same_snapshot(snap, T.snapshot(d))
    T.contains(c.stdout, "--- " .. d .. "/conf\n")
    T.contains(c.stdout, "+++ " .. d .. "/conf\n")
    T.match(c.stdout, "\n%s+@@ %-1,3 %+1,3 @@\n%s+ a\n%s+%-b\n%s+%+B\n%s+ c\n")
    T.contains(c.stdout, "--- /dev/null")
    T.contains(c.stdout, "+one")
    T.contains(c.stdout, "0600")
    -- no diff without --diff
    local nd = T.run({ "run", book, "--check" })
    T.not_contains(nd.stdout, "+++")
    local r, _, res = H.run_json({ "run", book, "--diff" })
    T.eq(r.rc, 0)
    local e = H.by_key(res).edit
    T.eq(type(e.diff), "string", "diff field")
    T.contains(e.diff, "-b\n+B\n")
    T.eq(T.read(d .. "/conf"), "a\nB\nc\n")
    local _, _, again = H.run_json({ "run", book, "--diff" })
    T.eq(H.by_key(again).edit.diff, nil, "no diff when nothing changes")
end)

T.test("file: each state, and its errors", function()
    local d = T.tmpdir()
    T.write(d .. "/f", "x", 420)
    assert(fs.mkdir(d .. "/tree", 493))
    T.write(d .. "/tree/inner", "y")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: abs-tree, file: { path: "@T@/tree", state: absent } }
    - { id: dir-chmod, file: { path: "@T@/newdir", state: directory } }
    - { id: touch-existing, file: { path: "@T@/f", state: touch, mode: "0600" } }
    - { id: missing-file, file: { path: "@T@/nope" }, ignore_errors: true }
    - { id: dir-over-file, file: { path: "@T@/f", state: directory }, ignore_errors: true }
]])
    local snap = T.snapshot(d)
    local _, _, check = H.run_json({ "run", book, "--check" })
    T.same_snapshot(snap, T.snapshot(d))
    local want = { ["abs-tree"] = "changed", ["dir-chmod"] = "changed",
                   ["touch-existing"] = "changed", ["missing-file"] = "ignored",
                   ["dir-over-file"] = "ignored" }
    H.expect_statuses(check, want, "check")
    T.eq(H.by_key(check)["abs-tree"].result.msg, "would remove directory")
    T.eq(H.by_key(check)["touch-existing"].result.msg, "would update time")
    local r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0)
    H.expect_statuses(real, want, "real")
    local k = H.by_key(real)
    T.eq(k["missing-file"].result.msg, d .. "/nope does not exist (use state: touch to create it)")
    T.eq(k["dir-over-file"].result.msg, d .. "/f exists and is a file")
    T.ok(not H.exists(d .. "/tree"))
    T.eq(H.mode(d .. "/f"), "0600")
    T.eq(T.read(d .. "/f"), "x", "touch keeps content")
end)

T.test("fail and assert: fail in check mode too; unknown results make assert unknown", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: probe, command: "true", register: out }
    - { id: uses, assert: { that: out.rc == 0 } }
    - { id: bad, assert: { that: [1 == 1, 1 == 2], fail_msg: "arithmetic broke" } }
]])
    local c, _, check = H.run_json({ "run", book, "--check" })
    T.eq(c.rc, 1, "check exit code")
    H.expect_statuses(check, { probe = "unknown", uses = "unknown", bad = "failed" })
    T.eq(H.by_key(check).uses.result.msg, "'out.rc == 0': depends on 'out', unknown in check mode")
    T.eq(H.by_key(check).bad.result.msg, "arithmetic broke")
    local r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 1)
    H.expect_statuses(real, { probe = "changed", uses = "ok", bad = "failed" })
    local fbook = H.book(d, [[
- hosts: localhost
  steps:
    - { id: stop, fail: "stopping on purpose" }
]], "f.yml")
    for _, mode in ipairs({ "--check", "-v" }) do
        local f, _, fres = H.run_json({ "run", fbook, mode })
        T.eq(f.rc, 1, "fail exit code " .. mode)
        T.eq(fres[1].status, "failed")
        T.eq(fres[1].result.msg, "stopping on purpose")
    end
end)

T.test("wait_for: times out, and waits for a path created meanwhile", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: bg
      shell: "(sleep 1; touch @T@/late) >/dev/null 2>&1 &"
    - id: late
      wait_for: { path: "@T@/late", timeout: 10, sleep: 0.1 }
      register: w
    - { id: waited, assert: { that: w.elapsed > 0.5 } }
    - id: gone
      wait_for: { path: "@T@/late", state: absent, timeout: 0.5, sleep: 0.1 }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 1)
    H.expect_statuses(res, { bg = "changed", late = "ok", waited = "ok", gone = "failed" })
    T.eq(H.by_key(res).gone.result.msg,
         "timed out after 0.5s waiting for " .. d .. "/late to be absent")
end)

T.test("copy/template keep the owner of a file they replace (as root)", function()
    if T.sh("id -u").stdout ~= "0\n" then print("# skipped: not root"); return end
    local d = T.tmpdir()
    T.write(d .. "/owned", "old\n", 416)
    T.write(d .. "/t.tmpl", "{{ 1 + 1 }}\n")
    T.write(d .. "/owned2", "old\n", 416)
    T.eq(T.sh("chown 65534:65534 " .. d .. "/owned " .. d .. "/owned2; echo $?").stdout, "0\n")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: c, copy: { dest: "@T@/owned", content: "new\n" } }
    - { id: t, template: { src: t.tmpl, dest: "@T@/owned2", mode: "0600" } }
    - { id: n, copy: { dest: "@T@/fresh", content: "x" } }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, r.stderr)
    H.expect_statuses(res, { c = "changed", t = "changed", n = "changed" })
    T.eq(T.read(d .. "/owned"), "new\n")
    T.eq(T.read(d .. "/owned2"), "2\n")
    for _, f in ipairs({ "owned", "owned2" }) do
        local st = fs.stat(d .. "/" .. f)
        T.eq(st.uid, 65534, f .. " owner")
        T.eq(st.gid, 65534, f .. " group")
    end
    T.eq(H.mode(d .. "/owned"), "0640")
    T.eq(H.mode(d .. "/owned2"), "0600")
    T.eq(fs.stat(d .. "/fresh").uid, 0, "a new file belongs to the runner")
end)

T.test("template and copy errors: undefined variable names the line; missing src", function()
    local d = T.tmpdir()
    T.write(d .. "/t.tmpl", "line one\nvalue = {{ nosuch }}\n")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - { id: t, template: { src: t.tmpl, dest: "@T@/out" }, ignore_errors: true }
    - { id: c, copy: { src: nope.txt, dest: "@T@/out2" }, ignore_errors: true }
    - { id: p, copy: { dest: "@T@/no/such/dir/f", content: "x" }, ignore_errors: true }
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, r.stderr)
    local k = H.by_key(res)
    T.eq(k.t.status, "ignored")
    T.contains(k.t.result.msg, d .. "/t.tmpl:2: ")
    T.contains(k.t.result.msg, "undefined variable 'nosuch'")
    T.eq(k.c.status, "ignored")
    T.contains(k.c.result.msg, "src: ")
    T.contains(k.c.result.msg, "nope.txt")
    T.eq(k.p.status, "ignored")
    T.contains(k.p.result.msg, d .. "/no/such/dir/f")
    T.ok(not H.exists(d .. "/out") and not H.exists(d .. "/out2"))
end)

T.test("item 16: a cyclic or non-data value from an expression fails the step clearly (no traceback)", function()
    local d = T.tmpdir()
    local cases = {
        { "set_fact: { a: \"{{ (function() local t = {} t.t = t return t end)() }}\" }", "contains itself" },
        { "set_fact: { a: \"{{ { x = { (function() local t = {} t[1] = t return t end)() } } }}\" }",
            "contains itself" },
        { "debug: { msg: \"x {{ (function() local t = {} t.t = t return t end)() }}\" }", "contains itself" },
        { "set_fact: { a: \"{{ string.upper }}\" }", "a function" },
        { "debug: { msg: \"{{ { f = string.upper } }}\" }", "a function" },
        { "debug: { var: \"(function() local t = {} t.t = t return t end)()\" }", "contains itself" },
    }
    for i, c in ipairs(cases) do
        local book = H.book(d, "- hosts: localhost\n  steps:\n    - id: bad\n      " .. c[1] ..
                               "\n    - id: after\n      debug: { msg: after }\n", "p" .. i .. ".yml")
        local r, _, res = H.run_json({ "run", book })
        T.eq(r.rc, 1, "case " .. i .. ": exit code (stderr: " .. r.stderr .. ")")
        T.not_contains(r.stderr, "traceback", "case " .. i .. ": no traceback")
        T.not_contains(r.stderr, "internal error", "case " .. i .. ": not an internal error")
        local k = H.by_key(res)
        T.eq(k.bad and k.bad.status, "failed", "case " .. i .. ": the step fails")
        T.contains(k.bad.result.msg, c[2], "case " .. i .. ": message")
        T.eq(k.after, nil, "case " .. i .. ": the host stops")
    end
    -- the same table twice (not a cycle) is fine
    local book = H.book(d, "- hosts: localhost\n  steps:\n    - set_fact: { a: \"{{ (function() " ..
        "local t = {1} return { t, t } end)() }}\" }\n    - debug: { msg: \"{{ a[2][1] }}\" }\n", "ok.yml")
    local r = T.run({ "run", book })
    T.eq(r.rc, 0, "shared, not cyclic (stderr: " .. r.stderr .. ")")
end)

T.test("item 17: --check as an unprivileged local user predicts Permission denied instead of a change", function()
    -- the run itself as nobody (tests run as root): a folder nobody can
    -- read the playbook from, a root-owned target, nobody's own state
    local d = T.tmpdir()
    assert(fs.chmod(d, 493))
    local locked = d .. "/locked"
    assert(fs.mkdir(locked, 493))
    T.write(locked .. "/old.txt", "old\n", 420)
    local state = d .. "/state"
    assert(fs.mkdir(state, 448))
    T.sh("chown 65534 " .. state)
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: copy
      copy: { dest: "@T@/locked/x", content: "x\n" }
      ignore_errors: true
    - id: template
      template: { src: "@T@/t.j2", dest: "@T@/locked/t.conf" }
      ignore_errors: true
    - id: file
      file: { path: "@T@/locked/old.txt", mode: "0600" }
      ignore_errors: true
    - id: own
      copy: { dest: "@T@/state/mine", content: "x\n" }
]])
    T.write(d .. "/t.j2", "t\n", 420)
    assert(fs.chmod(book, 420))
    local function as_nobody(extra)
        local r = T.sh("/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups -- /usr/bin/env -i " ..
            "PATH=/usr/bin:/bin HOME=" .. state .. " XDG_STATE_HOME=" .. state .. " XDG_DATA_HOME=" .. state ..
            " NO_COLOR=1 " .. T.cutover .. " run " .. book .. " --format json " .. extra)
        local results = {}
        for line in r.stdout:gmatch("[^\n]+") do
            local e = require("cutover.core.json").decode(line)
            if e and e.event == "host_result" then results[#results + 1] = e end
        end
        return r, H.by_key(results)
    end
    local before = T.snapshot(locked)
    local cr, check = as_nobody("--check")
    T.eq(cr.rc, 0, "check exit code (stderr: " .. cr.stderr .. ")")
    local rr, real = as_nobody("")
    T.eq(rr.rc, 0, "real exit code (stderr: " .. rr.stderr .. ")")
    T.same_snapshot(before, T.snapshot(locked), "nothing written")
    for _, id in ipairs({ "copy", "template", "file", "own" }) do
        T.ok(check[id] and real[id], id .. " in both runs")
        T.eq(check[id].status, real[id].status, id .. ": check said " .. check[id].status .. " (" ..
             tostring(check[id].result.msg) .. "), the real run " .. real[id].status)
    end
    T.eq(check.copy.status, "ignored", "copy: failure predicted")
    T.contains(check.copy.result.msg, "would fail: " .. locked .. " is not writable by nobody", "copy: why")
    T.contains(check.file.result.msg, "would fail: " .. locked .. "/old.txt is not owned by nobody", "file: why")
    T.eq(check.own.status, "changed", "its own folder: a change")
end)

T.test("item 17: command previews show argv shell-quoted", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: argv
      command: { argv: [bash, -c, "echo a && echo b", "it's", ""] }
    - id: text
      command: "printf '%s-' 'two words'"
]])
    local r, _, res = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check (stderr: " .. r.stderr .. ")")
    local k = H.by_key(res)
    T.eq(k.argv.result.msg, [[would run: bash -c 'echo a && echo b' 'it'\''s' '']], "argv preview")
    T.eq(k.text.result.msg, [[would run: printf '%s-' 'two words']], "text preview")
    r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "real run")
    T.eq(H.by_key(res).argv.result.cmd, [[bash -c 'echo a && echo b' 'it'\''s' '']], "cmd as run")
end)

T.done()
