-- file's links, owner, group and recurse; copy/template's owner, group,
-- backup and validate (local connection, as root: real chown).  Every
-- case runs --check first (nothing written, the change predicted), then
-- for real, then again (nothing changes).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")

local NOBODY = tonumber(assert(proc.run({ argv = { "id", "-u", "nobody" } })).stdout)
local NOGROUP = tonumber(assert(proc.run({ shell = "getent group nogroup | cut -d: -f3" })).stdout)

local function readlink(p)
    local r = proc.run({ argv = { "readlink", "--", p } })
    return r.rc == 0 and r.stdout:gsub("\n$", "") or nil
end

local function inode(p)
    return (proc.run({ argv = { "stat", "-c", "%d:%i", "--", p } }).stdout:gsub("\n$", ""))
end

-- check (writes nothing, predicts), real (as predicted), again (no change)
local function converge(d, book, want)
    local before = T.snapshot(d)
    local r, _, check = H.run_json({ "run", book, "--check", "--diff" })
    T.eq(r.rc, want.rc or 0, "check exit: " .. r.stdout .. r.stderr)
    T.same_snapshot(T.snapshot(d), before, "check mode wrote nothing")
    H.expect_statuses(check, want.check or want.real, "check")
    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, want.rc or 0, "real exit: " .. r.stdout .. r.stderr)
    H.expect_statuses(real, want.real, "real")
    local again
    r, _, again = H.run_json({ "run", book })
    T.eq(H.count(again, "changed"), 0, "the next run changes nothing")
    return check, real
end

T.test("state link: made, kept, retargeted only with force; a file or folder in the way", function()
    local d = T.tmpdir()
    T.write(d .. "/target-a", "a")
    T.write(d .. "/target-b", "b")
    T.write(d .. "/a-file", "keep me")
    assert(fs.mkdir(d .. "/a-dir", 493))
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: new
      file: { path: "@T@/current", src: "@T@/target-a", state: link }
    - id: relative
      file: { path: "@T@/rel", src: "target-b", state: link }
    - id: file-in-way
      file: { path: "@T@/a-file", src: "@T@/target-a", state: link }
      ignore_errors: true
    - id: dir-in-way
      file: { path: "@T@/a-dir", src: "@T@/target-a", state: link, force: true }
      ignore_errors: true
    - id: dangling
      file: { path: "@T@/dangling", src: "@T@/nope", state: link }
      ignore_errors: true
]])
    -- check: the missing src may be made by a step before it (new and
    -- relative would change the host): unknown, not the failure
    local check = converge(d, book, { real = { new = "changed", relative = "changed", ["file-in-way"] = "ignored",
                                               ["dir-in-way"] = "ignored", dangling = "ignored" },
                                      check = { new = "changed", relative = "changed", ["file-in-way"] = "ignored",
                                                ["dir-in-way"] = "ignored", dangling = "unknown" } })
    T.eq(readlink(d .. "/current"), d .. "/target-a", "the link")
    T.eq(readlink(d .. "/rel"), "target-b", "a relative link keeps its text")
    T.eq(T.read(d .. "/a-file"), "keep me", "a file is not replaced without force")
    T.eq(fs.stat(d .. "/dangling"), nil, "no dangling link without force")
    T.contains(H.by_key(check).new.diff, "state absent -> link -> " .. d .. "/target-a", "the diff")
    -- retarget: refused without force, done with it; dangling with force
    local book2 = H.book(d, [[
- hosts: localhost
  steps:
    - id: retarget
      file: { path: "@T@/current", src: "@T@/target-b", state: link }
      ignore_errors: true
]], "p2.yml")
    local _, _, res = H.run_json({ "run", book2 })
    T.eq(H.by_key(res).retarget.status, "ignored", "retarget without force")
    T.contains(H.by_key(res).retarget.result.msg, "exists and is a link to " .. d ..
        "/target-a; force: true replaces it",
               "says what is there")
    T.eq(readlink(d .. "/current"), d .. "/target-a", "unchanged")
    local book3 = H.book(d, [[
- hosts: localhost
  steps:
    - id: retarget
      file: { path: "@T@/current", src: "@T@/target-b", state: link, force: true }
    - id: over-file
      file: { path: "@T@/a-file", src: "@T@/target-a", state: link, force: true }
    - id: dangling
      file: { path: "@T@/dangling", src: "@T@/nope", state: link, force: true }
]], "p3.yml")
    converge(d, book3, { real = { retarget = "changed", ["over-file"] = "changed", dangling = "changed" } })
    T.eq(readlink(d .. "/current"), d .. "/target-b", "retargeted")
    T.eq(readlink(d .. "/a-file"), d .. "/target-a", "the file replaced by a link")
    T.eq(readlink(d .. "/dangling"), d .. "/nope", "dangling with force")
    for _, n in ipairs(fs.list(d)) do T.ok(not n:find("cutover", 1, true), "no temporary link left: " .. n) end
end)

T.test("state hard: one inode; a missing src is an error", function()
    local d = T.tmpdir()
    T.write(d .. "/data", "x")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: hard
      file: { path: "@T@/alias", src: "@T@/data", state: hard }
    - id: missing
      file: { path: "@T@/alias2", src: "@T@/nope", state: hard }
      ignore_errors: true
]])
    local _, real = converge(d, book, { real = { hard = "changed", missing = "ignored" },
                                        check = { hard = "changed", missing = "unknown" } })
    T.eq(inode(d .. "/alias"), inode(d .. "/data"), "the same file")
    T.contains(H.by_key(real).missing.result.msg, "does not exist", "missing src")
end)

T.test("owner and group by name and number, on files, folders and a whole tree", function()
    local d = T.tmpdir()
    T.write(d .. "/f", "x", 420)
    assert(fs.mkdir(d .. "/tree", 493))
    assert(fs.mkdir(d .. "/tree/sub", 493))
    T.write(d .. "/tree/sub/g", "y", 420)
    assert(proc.run({ argv = { "ln", "-s", "/etc/hostname", d .. "/tree/link" } }))
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: file-owner
      file: { path: "@T@/f", owner: nobody, group: nogroup, mode: "0600" }
    - id: tree
      file: { path: "@T@/tree", state: directory, owner: "%d", group: nogroup, mode: "0750", recurse: true }
    - id: new-dir
      file: { path: "@T@/new", state: directory, owner: nobody }
]], NOBODY))
    local check = converge(d, book, { real = { ["file-owner"] = "changed", tree = "changed",
        ["new-dir"] = "changed" } })
    T.contains(H.by_key(check)["file-owner"].diff, "owner 0:0 -> " .. NOBODY .. ":" .. NOGROUP,
        "the diff names the owner change")
    local st = fs.stat(d .. "/f")
    T.eq(st.uid .. ":" .. st.gid .. " " .. st.mode, NOBODY .. ":" .. NOGROUP .. " 384", "file")
    for _, p in ipairs({ "/tree", "/tree/sub", "/tree/sub/g" }) do
        st = fs.stat(d .. p)
        T.eq(st.uid .. ":" .. st.gid .. " " .. st.mode, NOBODY .. ":" .. NOGROUP .. " 488", p)
    end
    T.eq(fs.stat(d .. "/tree/link").uid, NOBODY, "the link itself is given the owner")
    T.eq(fs.stat("/etc/hostname").uid, 0, "not what it points at")
    T.eq(fs.stat(d .. "/new").uid, NOBODY, "a new folder gets its owner")
end)

T.test("an unknown user or group: unknown in check mode (an earlier step may create it), a failure for real", function()
    local d = T.tmpdir()
    T.write(d .. "/f", "x")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: bad-user
      file: { path: "@T@/f", owner: no-such-user-zz }
      ignore_errors: true
    - id: bad-group
      copy: { dest: "@T@/g", content: "y", group: no-such-group-zz }
      ignore_errors: true
]])
    for _, mode in ipairs({ "--check", nil }) do
        local _, _, res = H.run_json({ "run", book, mode })
        local by = H.by_key(res)
        local tail = mode and " yet" or ""
        T.eq(by["bad-user"].result.msg, d .. "/f: user 'no-such-user-zz' does not exist" .. tail, "user " ..
            tostring(mode))
        T.eq(by["bad-group"].result.msg, d .. "/g: group 'no-such-group-zz' does not exist" .. tail, "group " ..
            tostring(mode))
        T.eq(by["bad-user"].status, mode and "unknown" or "ignored", "status " .. tostring(mode))
    end
    T.eq(fs.stat(d .. "/g"), nil, "nothing written")
end)

T.test("copy and template: owner, group, backup, and validate before the old file is replaced", function()
    local d = T.tmpdir()
    T.write(d .. "/sudoers", "good old\n", 288)
    T.write(d .. "/t.j2", "hello {{ 'world' }} ok\n")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: good
      copy: { dest: "@T@/sudoers", content: "good new\n", validate: "grep -q ^good %s", backup: true }
    - id: bad
      copy: { dest: "@T@/sudoers", content: "broken\n", validate: "grep -q ^good %s" }
      ignore_errors: true
    - id: templ
      template: { src: t.j2, dest: "@T@/t.out", owner: nobody, group: nogroup, validate: "grep -q world %s" }
]])
    local check = converge(d, book, { real = { good = "changed", bad = "ignored", templ = "changed" } })
    T.contains(H.by_key(check).bad.result.msg,
        "would fail: validate 'grep -q ^good %s' refused the new content (exit 1)",
               "check predicts the refusal")
    T.eq(T.read(d .. "/sudoers"), "good new\n", "the good content, not the refused one")
    T.eq(H.mode(d .. "/sudoers"), "0440", "the mode kept")
    local backups = {}
    for _, n in ipairs(fs.list(d)) do if n:match("^sudoers%.%d+%-%d+~$") then backups[#backups + 1] = n end end
    T.eq(#backups, 1, "one backup")
    T.eq(T.read(d .. "/" .. backups[1]), "good old\n", "the old content in it")
    local st = fs.stat(d .. "/t.out")
    T.eq(st.uid .. ":" .. st.gid, NOBODY .. ":" .. NOGROUP, "template owner")
    for _, n in ipairs(fs.list(d)) do T.ok(not n:find("cutover%-validate"), "no validate file left: " .. n) end
end)

T.test("bad file arguments are refused at lint", function()
    local d = T.tmpdir()
    local cases = {
        { "file: { path: /x, state: link }", "state link needs 'src'" },
        { "file: { path: /x, src: /y }", "src is for state link or hard" },
        { "file: { path: /x, recurse: true }", "recurse is for state directory" },
        { "file: { path: /x, state: hard, src: /y, mode: '0644' }", "mode does not apply to a hard link" },
        { "copy: { dest: /x, content: y, validate: 'visudo -c' }", "validate must contain %s" },
    }
    H.lint_refuses(d, cases)
end)

T.done()
