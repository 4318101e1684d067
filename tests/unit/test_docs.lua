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

T.test("bash completion and the man page name every command of --help", function()
    local help = T.run({ "--help" }).stdout
    local completion = assert(T.read(tests_dir .. "/../scripts/completion.bash"))
    local man = assert(T.read(tests_dir .. "/../docs/man/cutover.1"))
    local commands = completion:match('local commands="([^"]*)"')
    T.ok(commands ~= nil, "completion lists commands")
    local n = 0
    for line in help:match("Commands:\n(.-)\n\n"):gmatch("[^\n]+") do
        local cmd = line:match("^%s%s([%w%-]+)")
        n = n + 1
        T.ok((" " .. commands .. " "):find(" " .. cmd .. " ", 1, true), "completion knows '" .. cmd .. "'")
        T.ok(man:find(cmd, 1, true), "the man page names '" .. cmd .. "'")
    end
    T.ok(n >= 14, "found the commands in --help (" .. n .. ")")
end)

T.test("the man page and bash completion name every option of run --help and resume --help", function()
    local completion = assert(T.read(tests_dir .. "/../scripts/completion.bash"))
    local man = assert(T.read(tests_dir .. "/../docs/man/cutover.1")):gsub("\\%-", "-")
    local n = 0
    for _, cmd in ipairs({ "run", "resume" }) do
        local help = T.run({ cmd, "--help" }).stdout
        for opt in help:gmatch("%-%-[%w][%w%-]*") do
            if opt ~= "--help" then
                n = n + 1
                T.ok(man:find(opt, 1, true), "the man page names " .. cmd .. " " .. opt)
                T.ok(completion:find(opt, 1, true), "completion knows " .. cmd .. " " .. opt)
            end
        end
    end
    T.ok(n >= 30, "found the options in --help (" .. n .. ")")
end)

T.done()
