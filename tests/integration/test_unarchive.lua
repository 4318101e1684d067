-- unarchive: tar archives compared with tar --diff (exact check mode,
-- nothing written), unpacked only when they differ; remote_src; creates;
-- zip through unzip.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

-- the tree's paths, types, modes, sizes and contents (tar keeps whole
-- seconds of mtime: left out)
local function same_tree(got, want, what)
    local function strip(snap)
        local out = {}
        for k, v in pairs(snap) do out[k] = (v:gsub(" [%d.]+$", "")) end
        return out
    end
    T.same_snapshot(strip(T.snapshot(got)), strip(T.snapshot(want)), what)
end

-- a tree to pack: files, a subfolder, a link, a mode
local function make_tree(d)
    assert(fs.mkdir(d .. "/tree", 493))
    assert(fs.mkdir(d .. "/tree/app", 493))
    T.write(d .. "/tree/app/run.sh", "#!/bin/sh\necho run\n", 493)
    T.write(d .. "/tree/app/conf", "x=1\n", 416)
    T.sh("ln -s run.sh " .. d .. "/tree/app/start")
    T.sh("cd " .. d .. "/tree && tar -czf ../app.tar.gz app && tar -cJf ../app.tar.xz app && zip -qry ../app.zip app")
end

T.test("tar.gz from the controller: check predicts and writes nothing; unpacked; then ok; a drifted file restored",
    function()
    local d = T.tmpdir()
    make_tree(d)
    assert(fs.mkdir(d .. "/dest", 493))
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: unpack
      unarchive: { src: app.tar.gz, dest: "@T@/dest" }
]])
    local before = T.snapshot(d .. "/dest")
    local r, _, res = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check: " .. r.stderr)
    H.expect_statuses(res, { unpack = "changed" }, "check")
    T.same_snapshot(T.snapshot(d .. "/dest"), before, "check wrote nothing")
    r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run")
    H.expect_statuses(res, { unpack = "changed" }, "run")
    same_tree(d .. "/dest/app", d .. "/tree/app", "the tree unpacked exactly")
    r, _, res = H.run_json({ "run", book })
    H.expect_statuses(res, { unpack = "ok" }, "the next run")
    T.write(d .. "/dest/app/conf", "x=2\n", 416)
    r, _, res = H.run_json({ "run", book, "--check" })
    H.expect_statuses(res, { unpack = "changed" }, "a drifted file is a difference")
    T.eq(T.read(d .. "/dest/app/conf"), "x=2\n", "check left it")
    r, _, res = H.run_json({ "run", book })
    T.eq(T.read(d .. "/dest/app/conf"), "x=1\n", "restored")
end)

T.test("remote_src tar.xz, creates, zip, and the errors", function()
    local d = T.tmpdir()
    make_tree(d)
    for _, n in ipairs({ "a", "b", "c" }) do assert(fs.mkdir(d .. "/" .. n, 493)) end
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: remote
      unarchive: { src: "@T@/app.tar.xz", dest: "@T@/a", remote_src: true }
    - id: creates
      unarchive: { src: app.tar.gz, dest: "@T@/b", creates: "@T@/a/app" }
    - id: zip
      unarchive: { src: app.zip, dest: "@T@/c" }
    - id: no-dest
      unarchive: { src: app.tar.gz, dest: "@T@/nope" }
      ignore_errors: true
    - id: bad-archive
      unarchive: { src: p.yml.tar, dest: "@T@/c" }
      ignore_errors: true
]])
    T.write(d .. "/p.yml.tar", "this is not a tar archive\n")
    local r, _, res = H.run_json({ "run", book, "--check" })
    H.expect_statuses(res, { remote = "changed", creates = "changed", zip = "unknown", ["no-dest"] = "ignored",
                             ["bad-archive"] = "ignored" }, "check")
    r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stderr)
    H.expect_statuses(res, { remote = "changed", creates = "ok", zip = "changed", ["no-dest"] = "ignored",
                             ["bad-archive"] = "ignored" }, "run")
    local by = H.by_key(res)
    same_tree(d .. "/a/app", d .. "/tree/app", "remote_src unpacked")
    T.eq(fs.list(d .. "/b")[1], nil, "creates: nothing unpacked")
    T.eq(T.read(d .. "/c/app/run.sh"), "#!/bin/sh\necho run\n", "zip unpacked")
    T.eq(#fs.list(d .. "/c"), 1, "no copy of the zip left: " .. table.concat(fs.list(d .. "/c"), " "))
    T.contains(by["no-dest"].result.msg, "dest " .. d .. "/nope", "a missing dest named")
    T.contains(by["bad-archive"].result.msg, "tar --diff: ", "a bad archive says so")
    local b2 = H.book(d, "- hosts: localhost\n  steps:\n    - id: s\n      unarchive: { src: x.rar, dest: /tmp }\n",
        "b.yml")
    r = T.run({ "lint", b2 })
    T.eq(r.rc, 2, "lint")
    T.contains(r.stderr, b2 .. ":4:", "file and line")
    T.contains(r.stderr, "src must end in .tar", "why")
end)

T.done()
