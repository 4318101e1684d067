-- Check mode and a path an earlier step would create (local connection).
-- A dry run writes nothing, so a link to a release folder that an
-- earlier step creates, or a lineinfile on a file that an earlier step
-- (a package, a copy) puts there, finds the path missing.  That is not
-- the failure the real run would have: the step is unknown, and only
-- when an earlier step of the run would change the host; on a host where
-- nothing earlier would change, the missing path is predicted as the
-- failure it is.  On the converged host the dry run is exact again.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)

local BOOK = [[
- hosts: localhost
  steps:
    - id: release
      file: { path: "@T@/releases/1", state: directory, mode: "0750" }
    - id: current
      file: { src: "@T@/releases/1", path: "@T@/current", state: link }
    - id: page
      copy: { content: "port=8081\n", dest: "@T@/releases/1/page", mode: "0640" }
    - id: port
      lineinfile: { path: "@T@/releases/1/page", regexp: "^port=", line: "port=8081" }
]]

T.test("a path an earlier step would create: unknown in check, made by the run, exact once converged", function()
    local d = T.tmpdir()
    local book = H.book(d, BOOK)
    local before = T.snapshot(d)
    local r, _, check = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check exit: " .. r.stdout .. r.stderr)
    T.same_snapshot(T.snapshot(d), before, "check mode wrote nothing")
    H.expect_statuses(check, { release = "changed", current = "unknown", page = "changed",
                               port = "unknown" }, "check")
    local k = H.by_key(check)
    T.contains(k.current.result.msg, d .. "/releases/1 does not exist", "says what is missing")
    T.contains(k.current.result.msg, "an earlier step", "and why it is not a failure")
    T.contains(k.port.result.msg, d .. "/releases/1/page does not exist", "lineinfile: says what is missing")

    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "real:")
    H.expect_statuses(real, { release = "changed", current = "changed", page = "changed", port = "ok" }, "real")
    T.eq((T.sh("readlink " .. d .. "/current").stdout:gsub("\n$", "")), d .. "/releases/1", "the link")
    T.eq(T.read(d .. "/releases/1/page"),
         "port=8081\n", "the file")

    local again
    r, _, again = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check on the converged host")
    T.eq(H.count(again, "changed") + H.count(again, "unknown"), 0, "converged: no change and nothing unknown")
end)

T.test("no earlier change: a missing path is the failure the real run would have", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: kept
      file: { path: "@T@", state: directory }
    - id: dangling
      file: { src: "@T@/nope", path: "@T@/link", state: link }
      ignore_errors: true
    - id: edit
      lineinfile: { path: "@T@/nope", line: "x" }
      ignore_errors: true
    - id: edit-block
      blockinfile: { path: "@T@/nope", block: "x" }
      ignore_errors: true
]])
    local r, _, check = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check exit: " .. r.stdout .. r.stderr)
    local want = { kept = "ok", dangling = "ignored", edit = "ignored", ["edit-block"] = "ignored" }
    H.expect_statuses(check, want, "check")
    local k = H.by_key(check)
    T.eq(k.dangling.result.msg, "src " .. d .. "/nope does not exist; force: true makes a dangling link", "the link")
    T.eq(k.edit.result.msg, d .. "/nope does not exist (create: true creates it)", "lineinfile")
    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.check_predicts(check, real, "real:")
    H.expect_statuses(real, want, "real")
end)

T.test("a hard link and a block edit of files made later or never: unknown in check, failures for real", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: folder
      file: { path: "@T@/data", state: directory }
    - id: hard
      file: { src: "@T@/data/file", path: "@T@/hard", state: hard }
      ignore_errors: true
    - id: block
      blockinfile: { path: "@T@/data/conf", block: "x" }
      ignore_errors: true
    - id: file
      copy: { content: "x", dest: "@T@/data/file" }
]])
    local r, _, check = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check exit: " .. r.stdout .. r.stderr)
    H.expect_statuses(check, { folder = "changed", hard = "unknown", block = "unknown", file = "changed" }, "check")
    T.contains(H.by_key(check).hard.result.msg, d .. "/data/file does not exist", "says what is missing")
    T.contains(H.by_key(check).block.result.msg, d .. "/data/conf does not exist now (an earlier step", "blockinfile")
    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "the failures are ignored")
    H.check_predicts(check, real, "real:")
    H.expect_statuses(real, { folder = "changed", hard = "ignored", block = "ignored", file = "changed" }, "real")
    T.eq(H.by_key(real).block.result.msg, d .. "/data/conf does not exist (create: true creates it)", "block: why")
    T.eq(H.by_key(real).hard.result.msg, "src " .. d .. "/data/file does not exist (a hard link needs its file)", "why")
end)
T.done()
