-- Check mode and handlers: a step whose result check mode cannot know
-- (a command, a lineinfile on a file a package would install) may notify
-- its handler for real.  The dry run reports that handler as unknown
-- where it would run, instead of leaving it out (which predicted "no
-- restart" for a run that restarts).  A handler notified by a change is
-- predicted as usual; one notified by nothing is not reported.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

T.test("a handler notified by an unknown step is unknown in check, runs for real", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: edit
      command: "touch @T@/edited"
      notify: restart
    - id: same
      file: { path: "@T@", state: directory }
      notify: reload
    - meta: flush_handlers
    - id: after
      copy: { content: "x", dest: "@T@/after" }
  handlers:
    - name: restart
      command: "touch @T@/restarted"
    - name: reload
      command: "touch @T@/reloaded"
]])
    local before = T.snapshot(d)
    local r, _, check = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    T.same_snapshot(T.snapshot(d), before, "check mode wrote nothing")
    H.expect_statuses(check, { edit = "unknown", same = "ok", restart = "unknown", after = "changed" }, "check")
    T.contains(H.by_key(check).restart.result.msg, "notified by 'edit'", "says by whom")
    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "real:")
    H.expect_statuses(real, { edit = "changed", same = "ok", restart = "changed", after = "changed" }, "real")
    T.ok(fs.stat(d .. "/restarted") ~= nil and fs.stat(d .. "/reloaded") == nil, "the handler ran, the other not")
end)

T.test("a handler notified by a change and by an unknown step is predicted as usual; the play's end too", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: maybe
      command: "true"
      notify: restart
    - id: surely
      copy: { content: "x", dest: "@T@/conf" }
      notify: restart
    - id: maybe-2
      command: "true"
      notify: reload
  handlers:
    - name: restart
      copy: { content: "r", dest: "@T@/restarted" }
    - name: reload
      copy: { content: "r", dest: "@T@/reloaded" }
]])
    local r, _, check = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    H.expect_statuses(check, { maybe = "unknown", surely = "changed", ["maybe-2"] = "unknown",
                               restart = "changed", reload = "unknown" }, "check")
    T.eq(H.by_key(check).restart.result.msg, "would create", "the handler itself predicted")
end)

T.done()
