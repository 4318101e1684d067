-- docs/actions.md must be what `cutover doc --all --format markdown`
-- prints today (regenerate with scripts/gen-docs.sh).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)

T.test("docs/actions.md matches cutover doc --all", function()
    local file = assert(T.read(tests_dir .. "/../docs/actions.md"))
    local body = file:match("^# Actions\n\n.-\n\n(.*)$")
    T.ok(body ~= nil, "docs/actions.md has its header")
    local r = T.run({ "doc", "--all", "--format", "markdown" })
    T.eq(r.rc, 0, "exit code")
    T.eq(body, r.stdout, "docs/actions.md (run scripts/gen-docs.sh)")
end)

T.test("every action documents arguments, returns and check mode", function()
    local r = T.run({ "modules" })
    for name in r.stdout:gmatch("(%S+)%s+[^\n]*\n") do
        local d = T.run({ "doc", name })
        T.eq(d.rc, 0, "doc " .. name)
        T.contains(d.stdout, "Arguments:", name)
        T.contains(d.stdout, "Returns:", name)
        T.contains(d.stdout, "Check mode:", name)
    end
end)

T.done()
