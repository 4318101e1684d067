-- Integration: every shipped playbook (playbooks/*.yml) against a fresh
-- target folder: --check changes nothing and exits 0; the real run makes
-- exactly the changes --check predicted; a second --check predicts none.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

local dir = tests_dir .. "/../playbooks"
local books = {}
for _, n in ipairs(assert(fs.list(dir))) do
    -- the Windows playbook needs the lab: tests/lab covers it; the Debian
    -- upgrade needs a Debian host: tests/vm/test_apt.lua runs it on the VM lab
    if n:match("%.yml$") and n ~= "exchange55-dcpromo.yml" and n ~= "debian-rolling-upgrade.yml" then
        books[#books + 1] = n
    end
end
table.sort(books)

T.test("there are shipped playbooks", function()
    T.ok(#books >= 1, "at least one playbook in " .. dir)
end)

local function changed_keys(results)
    local out = {}
    for k, e in pairs(H.by_key(results, true)) do
        if e.changed then out[#out + 1] = k end
    end
    table.sort(out)
    return table.concat(out, ", ")
end

-- check, real, check again, with `extra` -e arguments; returns the
-- results of the three runs.
local function cycle(book, target, extra)
    local args = H.plus({ "run", dir .. "/" .. book, "-e", "target=" .. target }, table.unpack(extra or {}))
    local before = T.snapshot(target)
    local rc, evc, check = H.run_json(H.plus(args, "--check", "--diff"))
    T.eq(rc.rc, 0, book .. ": --check exit code; stderr: " .. rc.stderr)
    T.eq(evc[1].check, true)
    T.same_snapshot(before, T.snapshot(target), book .. ": --check")
    T.ok(#check > 0, book .. ": --check reported steps")
    for _, e in ipairs(check) do
        T.ok(not e.failed, book .. ": step " .. e.step .. " failed in check: " .. tostring(e.result.msg))
    end

    local rr, _, real = H.run_json(args)
    T.eq(rr.rc, 0, book .. ": real run exit code; stderr: " .. rr.stderr)
    H.check_predicts(check, real, book .. ":")
    -- every change predicted happened, and no other (unknowns aside)
    for k, e in pairs(H.by_key(check, true)) do
        if e.changed then T.eq(H.by_key(real, true)[k].changed, true, book .. ": " .. k) end
    end

    local snap = T.snapshot(target)
    local r2, _, again = H.run_json(H.plus(args, "--check"))
    T.eq(r2.rc, 0, book .. ": second --check exit code")
    T.same_snapshot(snap, T.snapshot(target), book .. ": second --check")
    T.eq(changed_keys(again), "", book .. ": second --check predicts no change")
    for _, e in ipairs(again) do
        T.ok(not e.failed, book .. ": step " .. e.step .. " failed in the second check")
    end
    return check, real, again
end

for _, book in ipairs(books) do
    T.test(book .. ": --check is exact on a fresh target, then idempotent", function()
        local target = T.tmpdir()
        local check, real = cycle(book, target)
        T.ok(H.count(real, "changed") >= H.count(check, "changed"),
             book .. ": at least the predicted changes")
        -- a real run on the result changes nothing that --check can see
        local r, _, real2 = H.run_json({ "run", dir .. "/" .. book, "-e", "target=" .. target })
        T.eq(r.rc, 0)
        for _, e in ipairs(real2) do
            if e.changed then
                T.ok(e.action == "command" or e.action == "shell",
                     book .. ": step " .. e.step .. " changed on a rerun")
            end
        end
    end)
end

T.test("local-upgrade-demo.yml: an upgrade from an older release", function()
    local target = T.tmpdir()
    local book = "local-upgrade-demo.yml"
    local r = T.run({ "run", dir .. "/" .. book, "-e", "target=" .. target, "-e", "release=2.4.0" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(T.read(target .. "/current.txt"), "2.4.0\n")
    local check, real = cycle(book, target)
    local c = H.by_key(check)
    T.eq(c["switch-the-current-release"].status, "changed")
    T.eq(c["switch-the-current-release"].result.msg, "would update content")
    T.contains(c["switch-the-current-release"].diff, "-2.4.0\n+2.4.1\n")
    T.eq(c["render-the-service-configuration"].status, "changed")
    T.eq(c["create-the-folder-layout [log]"].status, "ok")
    T.eq(c["reload-the-service"].status, "unknown")
    T.eq(H.by_key(real)["reload-the-service"].status, "changed")
    T.eq(T.read(target .. "/current.txt"), "2.4.1\n")
    local log = T.read(target .. "/log/reloads.log")
    local n = 0
    for _ in log:gmatch("reloaded release ") do n = n + 1 end
    T.eq(n, 2, "reloaded once per release")
    T.contains(log, "reloaded release 2.4.1 at ")
    T.ok(fs.stat(target .. "/releases/2.4.0/MANIFEST"), "the old release stays")
end)

T.done()
