-- One file of the bad-input corpus: `cutover lint FILE` must exit 2 and
-- print exactly the errors given by the file's "# expect: " lines, where
-- FILE stands for the file's path and DIR for the tests folder.  A "# args: ..." line adds arguments
-- (e.g. an inventory) and "# command: run" uses `run` instead of `lint`.
local binary, tests_dir, file = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local text = assert(T.read(file))
local expected = {}
local extra = {}
local command = "lint"
for line in text:gmatch("[^\n]*") do
    local e = line:match("^# expect: (.*)$")
    if e then
        -- FILE: this file; DIR: the tests folder (files it imports)
        e = e:gsub("FILE", (file:gsub("%%", "%%%%")))
        expected[#expected + 1] = (e:gsub("DIR", (tests_dir:gsub("%%", "%%%%"))))
    end
    local a = line:match("^# args: (.*)$")
    if a then for w in a:gmatch("%S+") do extra[#extra + 1] = (w:gsub("DIR", tests_dir)) end end
    local c = line:match("^# command: (%S+)$")
    if c then command = c end
end
assert(#expected > 0, file .. ": no '# expect:' line")
T.test(file, function()
    local args = { command, file }
    for _, a in ipairs(extra) do args[#args + 1] = a end
    local r = T.run(args, { timeout = 30 })
    T.eq(r.stderr, table.concat(expected, "\n") .. "\n", "stderr")
    T.eq(r.rc, 2, "exit code")
end)
T.done()
