-- user and group with the real useradd, usermod, userdel, groupadd and
-- chpasswd, inside a mount namespace of the test's own where /etc is a
-- copy and /home, /var/log and /var/mail are empty tmpfs: the machine's
-- accounts are never touched.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local proc = require("cutover.core.proc")

local HASH = "$6$saltsalt$Jx0CkLEHcBDqvtjNbK8iB0hc0QeJ0kD6d4mOFkkXyzE1pQfbqE1h0PZhGqtV3YrDLTxlX3cQFi2Q3I1xR0lOa/"

-- Runs each of steps (a list of {label, argv-words}) inside one private
-- namespace; after each, dumps the accounts.  Returns per label:
-- {rc=, results=, passwd=, group=, shadow=, groups=}.
local function in_private_etc(d, steps)
    T.state = T.state or T.tmpdir()
    local lines = { "set -u", "mount --make-rprivate /", "cp -a /etc " .. d .. "/etc",
                    "mount --bind " .. d .. "/etc /etc",
                    "for m in /home /var/log /var/mail; do mount -t tmpfs none $m; done" }
    for _, s in ipairs(steps) do
        local label, words = s[1], {}
        for _, a in ipairs(s[2]) do words[#words + 1] = "'" .. a:gsub("'", "'\\''") .. "'" end
        lines[#lines + 1] = string.format("'%s' %s --format json > %s/%s.json 2> %s/%s.err; echo $? > %s/%s.rc",
            T.cutover, table.concat(words, " "), d, label, d, label, d, label)
        lines[#lines + 1] = string.format("getent passwd deploy > %s/%s.passwd; getent group ops > %s/%s.group; " ..
            "getent shadow deploy | cut -d: -f2 > %s/%s.shadow; id -Gn deploy > %s/%s.groups 2>/dev/null; " ..
            "ls -d /home/deploy > %s/%s.home 2>/dev/null; :", d, label, d, label, d, label, d, label, d, label)
    end
    local r = assert(proc.run({ argv = { "unshare", "--mount", "--", "/bin/sh", "-c", table.concat(lines, "\n") },
                                timeout = 120, env = { NO_COLOR = "1", XDG_STATE_HOME = T.state,
                                                       XDG_DATA_HOME = T.state .. "/data" } }))
    T.eq(r.rc, 0, "the private namespace (needs root): " .. r.stderr)
    local out = {}
    for _, s in ipairs(steps) do
        local l = s[1]
        local results = {}
        for _, e in ipairs(T.events(T.read(d .. "/" .. l .. ".json") or "")) do
            if e.event == "host_result" then results[#results + 1] = e end
        end
        local function f(ext) return ((T.read(d .. "/" .. l .. "." .. ext) or ""):gsub("\n$", "")) end
        out[l] = { rc = tonumber(f("rc")), results = results, passwd = f("passwd"), group = f("group"),
                   shadow = f("shadow"), groups = f("groups"), home = f("home"), stdout = T.read(d .. "/" .. l ..
                       ".json"),
                   stderr = f("err") }
    end
    return out
end

T.test("group and user: check predicts, the run creates, the next run changes nothing; usermod; userdel", function()
    local d = T.tmpdir()
    local create = H.book(d, [[
- hosts: localhost
  steps:
    - id: ops-group
      group: { name: ops, gid: 4242 }
    - id: deploy
      user:
        name: deploy
        uid: 4243
        group: ops
        groups: [adm]
        shell: /bin/sh
        comment: Deploy bot
        password: "]] .. HASH .. [["
]], "create.yml")
    local modify = H.book(d, [[
- hosts: localhost
  steps:
    - id: deploy
      user: { name: deploy, shell: /bin/bash, groups: "users", append: true }
]], "modify.yml")
    local exact = H.book(d, [[
- hosts: localhost
  steps:
    - id: deploy
      user: { name: deploy, groups: [users] }
]], "exact.yml")
    local remove = H.book(d, [[
- hosts: localhost
  steps:
    - id: deploy
      user: { name: deploy, state: absent, remove: true }
    - id: ops-group
      group: { name: ops, state: absent }
]], "remove.yml")
    local o = in_private_etc(d, {
        { "check", { "run", create, "--check", "--diff" } },
        { "create", { "run", create } },
        { "again", { "run", create } },
        { "check-modify", { "run", modify, "--check" } },
        { "modify", { "run", modify } },
        { "exact", { "run", exact } },
        { "remove", { "run", remove } },
    })
    T.eq(o.check.rc, 0, "check: " .. o.check.stderr)
    -- the group does not exist before the run: the user step cannot know
    H.expect_statuses(o.check.results, { ["ops-group"] = "changed", deploy = "unknown" }, "check")
    T.eq(H.by_key(o.check.results).deploy.result.msg, "group 'ops' does not exist yet", "says why")
    T.eq(o.check.passwd, "", "check created no user")
    T.eq(o.check.group, "", "nor a group")
    T.not_contains(o.check.stdout, HASH, "the hash is never shown")
    T.eq(o.create.rc, 0, "create: " .. o.create.stderr)
    H.expect_statuses(o.create.results, { ["ops-group"] = "changed", deploy = "changed" }, "create")
    T.eq(o.create.group, "ops:x:4242:", "the group")
    T.eq(o.create.passwd, "deploy:x:4243:4242:Deploy bot:/home/deploy:/bin/sh", "the user")
    T.eq(o.create.shadow, HASH, "the password hash")
    T.eq(o.create.groups, "ops adm", "primary and supplementary groups")
    T.eq(o.create.home, "/home/deploy", "the home folder made")
    T.not_contains(o.create.stdout, HASH, "the hash is never shown")
    T.eq(o.again.rc, 0, "again")
    T.eq(H.count(o.again.results, "changed"), 0, "the next run changes nothing")
    H.expect_statuses(o["check-modify"].results, { deploy = "changed" }, "check of modify")
    T.eq(H.by_key(o["check-modify"].results).deploy.result.msg, "would set groups users (added), shell /bin/bash",
        "what it would do")
    T.eq(o["check-modify"].passwd, "deploy:x:4243:4242:Deploy bot:/home/deploy:/bin/sh", "check changed nothing")
    H.expect_statuses(o.modify.results, { deploy = "changed" }, "modify")
    T.eq(o.modify.passwd, "deploy:x:4243:4242:Deploy bot:/home/deploy:/bin/bash", "the shell changed")
    T.eq(o.modify.groups, "ops adm users", "append adds a group and keeps the others")
    T.eq(o.exact.groups, "ops users", "without append the groups are exactly these")
    H.expect_statuses(o.remove.results, { deploy = "changed", ["ops-group"] = "changed" }, "remove")
    T.eq(o.remove.passwd, "", "the user gone")
    T.eq(o.remove.group, "", "the group gone")
    T.eq(o.remove.home, "", "with its home")
end)

T.test("a missing primary group: unknown in check mode, a failure for real; bad arguments at lint", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: deploy
      user: { name: deploy, group: no-such-group-zz }
]])
    local o = in_private_etc(d, { { "check", { "run", book, "--check" } }, { "real", { "run", book } } })
    T.eq(o.check.rc, 0, "check exit")
    T.eq(H.by_key(o.check.results).deploy.status, "unknown", "check: unknown (an earlier step may create it)")
    T.eq(H.by_key(o.check.results).deploy.result.msg, "group 'no-such-group-zz' does not exist yet", "check")
    T.eq(o.real.rc, 1, "real exit")
    T.eq(H.by_key(o.real.results).deploy.result.msg, "group 'no-such-group-zz' does not exist", "real")
    T.eq(o.real.passwd, "", "no user")
    H.lint_refuses(d, { { "user: { name: 'bad name' }", "name must be a user name" },
                         { "user: { name: x, append: true }", "append needs 'groups'" },
                         { "user: { name: x, remove: true }", "remove is for state absent" },
                         { "user: { name: x, shell: 'a:b' }", "shell must not hold ':'" },
                         { "group: { name: 'a b' }", "name must be a group name" } })
end)

T.done()
