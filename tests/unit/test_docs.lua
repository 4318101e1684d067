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

-- The keywords of a docs/playbooks.md table (the first column's `name`s).
local function doc_keywords(doc, heading)
    local section = doc:match("\n## " .. heading .. "\n(.-)\n## ")
    assert(section, "docs/playbooks.md has '## " .. heading .. "'")
    local out = {}
    for k in section:gmatch("\n| `([%w_]+)` |") do out[#out + 1] = k end
    return out
end

local function lint_text(text)
    local d = T.tmpdir()
    T.write(d .. "/p.yml", text)
    return T.run({ "lint", d .. "/p.yml" })
end

T.test("every play and step keyword docs/playbooks.md names is one the loader accepts", function()
    local doc = assert(T.read(tests_dir .. "/../docs/playbooks.md"))
    local play_keys = doc_keywords(doc, "Play keywords")
    local step_keys = doc_keywords(doc, "Step keywords")
    T.ok(#play_keys >= 10 and #step_keys >= 15, "found the tables (" .. #play_keys .. ", " .. #step_keys .. ")")
    for _, k in ipairs(play_keys) do
        local r = lint_text("- hosts: localhost\n  " .. k .. ": null\n  steps: [ { debug: { msg: x } } ]\n")
        T.not_contains(r.stderr, "unknown play keyword '" .. k .. "'", "play keyword " .. k)
    end
    for _, k in ipairs(step_keys) do
        local r = lint_text("- hosts: localhost\n  steps:\n    - debug: { msg: x }\n      " .. k .. ": null\n")
        T.not_contains(r.stderr, "unknown keyword or action '" .. k .. "'", "step keyword " .. k)
    end
    -- the check can fail: an undocumented word is refused
    T.contains(lint_text("- hosts: localhost\n  environment: null\n  steps: [ { debug: { msg: x } } ]\n").stderr,
               "unknown play keyword 'environment'", "the loader refuses what no doc names")
end)

T.test("every option docs/cli.md shows is one its command accepts", function()
    local doc = assert(T.read(tests_dir .. "/../docs/cli.md"))
    local synopsis = doc:match("```\n(.-)```")
    local n = 0
    local cmd
    for line in synopsis:gmatch("[^\n]+") do
        cmd = line:match("^cutover ([%w%-]+)") or cmd
        if cmd and not cmd:find("^%-") then
            for opt in line:gmatch("[%s%[|](%-%-[%w][%w%-]*)") do
                if opt ~= "--help" and opt ~= "--version" then
                    n = n + 1
                    local r = T.run({ cmd, opt })
                    T.not_contains(r.stderr, "unknown option '" .. opt .. "'", "cutover " .. cmd .. " " .. opt)
                end
            end
        end
    end
    T.ok(n >= 15, "found the options (" .. n .. ")")
    T.contains(T.run({ "run", "--environment" }).stderr, "unknown option '--environment'", "the check can fail")
end)

T.done()
