-- sysctl on a real kernel: the run happens in a UTS namespace of its own
-- (unshare --uts), where kernel.domainname is private, so the test sets a
-- real parameter with real sysctl -w and leaves the machine's alone.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local proc = require("cutover.core.proc")

local machine_domain = T.read("/proc/sys/kernel/domainname")

-- Runs the playbook, then prints the namespace's domainname after it:
-- returns rc, events, host results, the domainname inside.
local function run_in_uts(dir, args)
    T.state = T.state or T.tmpdir()
    local words = {}
    for _, a in ipairs(args) do words[#words + 1] = "'" .. a:gsub("'", "'\\''") .. "'" end
    local script = string.format("hostname x >/dev/null 2>&1; sysctl -qw kernel.domainname=before-%s; " ..
        "'%s' %s --format json > %s/out.json 2> %s/err; echo rc=$?; cat /proc/sys/kernel/domainname",
        "test", T.cutover, table.concat(words, " "), dir, dir)
    local r = assert(proc.run({ argv = { "unshare", "--uts", "--", "/bin/sh", "-c", script }, timeout = 60,
                                env = { NO_COLOR = "1", XDG_STATE_HOME = T.state, XDG_DATA_HOME = T.state ..
                                    "/data" } }))
    T.eq(r.rc, 0, "unshare ran (needs root): " .. r.stderr)
    local rc = tonumber(r.stdout:match("rc=(%d+)"))
    local domain = r.stdout:match("rc=%d+\n(.-)\n$")
    local events = T.events(T.read(dir .. "/out.json") or "")
    local results = {}
    for _, e in ipairs(events) do if e.event == "host_result" then results[#results + 1] = e end end
    return rc, results, domain
end

T.test("present: file line and running value; check predicts both and changes neither; then no change", function()
    local d = T.tmpdir()
    T.write(d .. "/99.conf", "# tuning\nkernel.domainname=old\nvm.swappiness = 10\n")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: dom
      sysctl: { name: kernel.domainname, value: cutover-test, sysctl_file: "@T@/99.conf" }
]])
    local rc, check, domain = run_in_uts(d, { "run", book, "--check", "--diff" })
    T.eq(rc, 0, "check exit")
    H.expect_statuses(check, { dom = "changed" }, "check")
    T.eq(domain, "before-test", "check mode set nothing")
    T.eq(T.read(d .. "/99.conf"), "# tuning\nkernel.domainname=old\nvm.swappiness = 10\n", "nor wrote the file")
    T.contains(check[1].diff, "+kernel.domainname = cutover-test", "the file diff")
    T.contains(check[1].diff, "kernel.domainname = before-test -> kernel.domainname = cutover-test",
        "the running value")
    local real
    rc, real, domain = run_in_uts(d, { "run", book })
    T.eq(rc, 0, "run exit")
    H.expect_statuses(real, { dom = "changed" }, "real")
    T.eq(domain, "cutover-test", "the running value set")
    T.eq(T.read(d .. "/99.conf"), "# tuning\nkernel.domainname = cutover-test\nvm.swappiness = 10\n", "the file")
    T.eq(T.read("/proc/sys/kernel/domainname"), machine_domain, "the machine's own value untouched")
end)

T.test("only the running value differs, then only the file; absent; an unknown key", function()
    local d = T.tmpdir()
    T.write(d .. "/99.conf", "kernel.domainname = before-test\n")
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: same
      sysctl: { name: kernel.domainname, value: before-test, sysctl_file: "@T@/99.conf" }
    - id: unknown
      sysctl: { name: kernel.no_such_key_zz, value: "1", sysctl_file: "@T@/99.conf" }
      ignore_errors: true
    - id: unknown-ignored
      sysctl: { name: kernel.no_such_key_zz, value: "1", sysctl_file: "@T@/other.conf", ignoreerrors: true }
    - id: gone
      sysctl: { name: vm.nothing, state: absent, sysctl_file: "@T@/99.conf" }
]])
    local rc, res, domain = run_in_uts(d, { "run", book })
    T.eq(rc, 0, "exit")
    local by = H.by_key(res)
    T.eq(by.same.status, "ok", "file and running value already right")
    T.eq(by.unknown.status, "ignored", "an unknown key fails")
    T.contains(by.unknown.result.msg, "sysctl -n kernel.no_such_key_zz", "names the key")
    T.eq(by["unknown-ignored"].status, "changed", "ignoreerrors: the file still written")
    T.eq(T.read(d .. "/other.conf"), "kernel.no_such_key_zz = 1\n", "the file")
    T.eq(by.gone.status, "ok", "absent and not there: ok")
    T.eq(domain, "before-test", "unchanged")
end)

T.test("bad arguments at lint", function()
    local d = T.tmpdir()
    H.lint_refuses(d, { { "sysctl: { name: 'a b', value: '1' }", "name must be a parameter" },
                         { "sysctl: { name: vm.swappiness }", "state present needs 'value'" } })
end)

T.done()
