-- Unit (the suite itself): every test that writes a sudoers drop-in
-- (S.sudoers, tests/lib/sshd.lua) holds ctest's "sudoers" resource lock.
-- Their drop-ins all grant rules to the same login user, and sudo takes
-- the last rule that matches: one test's "ALL=(ALL) ALL" beside
-- another's NOPASSWD made that other test ask for a password (seen as
-- FLAKY ssh.test_become and ssh.test_http).  Read from ctest's own view
-- of the build this test runs from.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local proc = require("cutover.core.proc")
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")

local build_dir = binary:match("^(.*)/[^/]+$")

local function locks_by_test()
    local r = proc.run({ argv = { "ctest", "--test-dir", build_dir, "--show-only=json-v1" }, timeout = 60 })
    T.eq(r.rc, 0, "ctest --show-only: " .. r.stderr)
    local doc = assert(json.decode(r.stdout))
    local locks = {}
    for _, t in ipairs(doc.tests) do
        local held = {}
        for _, p in ipairs(t.properties or {}) do
            if p.name == "RESOURCE_LOCK" then
                for _, v in ipairs(p.value) do held[v] = true end
            end
        end
        locks[t.name] = held
    end
    return locks
end

T.test("each ssh test that writes a sudoers drop-in holds the sudoers lock", function()
    local locks = locks_by_test()
    local users = 0
    for _, name in ipairs(assert(fs.list(tests_dir .. "/ssh"))) do
        local test = name:match("^(test_.*)%.lua$")
        local body = test and fs.read(tests_dir .. "/ssh/" .. name)
        if body and body:find("S.sudoers(", 1, true) then
            users = users + 1
            local held = locks["ssh." .. test]
            T.ok(held ~= nil, "ctest knows ssh." .. test)
            T.ok(held and held.sudoers, "ssh." .. test .. " holds the sudoers lock")
        end
    end
    T.ok(users >= 4, "the tests that write drop-ins were found: " .. users)
end)

T.done()
