-- The apt action's pure parts (lua/cutover/actions/apt.lua): apt-get -s
-- output as a plan, Debian version order, dpkg's conffile messages; and
-- the package action's refusal of every manager but apt.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local apt = require("cutover.actions.apt")
local package = require("cutover.actions.package")

T.test("apt-get -s output: installs, upgrades, downgrades, removals and purges with versions", function()
    local out = table.concat({
        "NOTE: This is only a simulation!",
        "Reading package lists...",
        "The following packages will be upgraded:",
        "  cutover-demo",
        "Inst cutover-dep (1.0 cutover-lab:lab [all])",
        "Inst cutover-demo [1.0] (1.1 cutover-lab:lab [all])",
        "Inst libold:amd64 [2:1.4-2] (2:1.3-1 Debian:12.8/stable [amd64])",
        "Remv foo [0.9-1]",
        "Purg bar [1:2.0~rc1-3]",
        "Conf cutover-dep (1.0 cutover-lab:lab [all])",
        "Conf cutover-demo (1.1 cutover-lab:lab [all])",
    }, "\n") .. "\n"
    local p = apt.parse_simulation(out)
    T.eq(#p, 5, "five packages")
    local by = {}
    for _, e in ipairs(p) do by[e.name] = e end
    T.eq(by["cutover-dep"].action, "install", "new dependency")
    T.eq(by["cutover-dep"].from, nil, "no old version")
    T.eq(by["cutover-dep"].to, "1.0", "its version")
    T.eq(by["cutover-demo"].action, "upgrade", "upgrade")
    T.eq(by["cutover-demo"].from .. ">" .. by["cutover-demo"].to, "1.0>1.1", "versions")
    T.eq(by["libold:amd64"].action, "downgrade", "downgrade (epoch kept, upstream lower)")
    T.eq(by.foo.action, "remove", "remove")
    T.eq(by.foo.from, "0.9-1", "removed version")
    T.eq(by.bar.action, "purge", "purge")
    T.eq(by.bar.from, "1:2.0~rc1-3", "purged version")
    T.eq(p[1].name, "bar", "sorted by name")
    T.eq(#apt.parse_simulation("Reading package lists...\n0 upgraded, 0 newly installed, 0 to remove.\n"), 0, "nothing")
end)

T.test("Debian version order", function()
    local cases = {
        { "1.0", "1.1", -1 }, { "1.1", "1.0", 1 }, { "1.0", "1.0", 0 }, { "1.0~rc1", "1.0", -1 },
        { "1:0.9", "2.0", 1 }, { "1.0-2", "1.0-10", -1 }, { "1.0a", "1.0", 1 }, { "1.0+b1", "1.0", 1 },
        { "2.36-9+deb12u4", "2.36-9+deb12u10", -1 }, { "1.0-1~bpo12+1", "1.0-1", -1 },
    }
    for _, c in ipairs(cases) do T.eq(apt.version_cmp(c[1], c[2]), c[3], c[1] .. " vs " .. c[2]) end
end)

T.test("dpkg's conffile decisions, from the lines its log gained", function()
    local kept, replaced = apt.conffile_reports(table.concat({
        "2026-12-05 12:22:49 upgrade cutover-demod:all 1.0 1.1",
        "2026-12-05 12:22:49 status half-configured cutover-demod:all 1.1",
        "2026-12-05 12:22:50 conffile /etc/cutover-demod.conf keep",
        "2026-12-05 12:22:50 conffile /etc/other.conf install",
        "2026-12-05 12:22:51 status installed cutover-demod:all 1.1",
    }, "\n"))
    T.eq(table.concat(kept, ","), "/etc/cutover-demod.conf", "kept")
    T.eq(table.concat(replaced, ","), "/etc/other.conf", "replaced")
end)

T.test("package: any manager but apt fails naming the host and the manager, running nothing", function()
    for _, m in ipairs({ "dnf", "zypper", "apk" }) do
        local ran = false
        local ctx = { host = "web7", check = false,
                      scope = { get = function(_, k) if k == "facts" then return { pkg_mgr = m } end end },
                      conn = { exec = function() ran = true; return { rc = 0, stdout = "", stderr = "" } end } }
        local r = package.run(ctx, { name = { "nginx" }, state = "present", use = "auto" })
        T.eq(r.failed, true, m .. ": failed")
        T.contains(r.msg, "web7", m .. ": names the host")
        T.contains(r.msg, "the package manager is " .. m, m .. ": names the manager")
        T.eq(ran, false, m .. ": nothing ran on the host")
    end
    -- no facts: the host is asked, with the facts' own probe
    local ctx = { host = "db1", scope = { get = function() return nil end },
                  conn = { exec = function() return { rc = 0, stdout = "pacman\n", stderr = "" } end } }
    local r = package.run(ctx, { name = { "nginx" }, use = "auto" })
    T.contains(r.msg, "package on db1: the package manager is pacman", "probed")
end)

T.test("cache_valid_time: the lists' age, and no package list at all counts as never updated", function()
    local aptget = require("cutover.actions.lib.aptget")
    local conn = require("cutover.connection.local").new("localhost")
    local proc = require("cutover.core.proc")
    local fs = require("cutover.core.fs")
    local d = T.tmpdir()
    local lists, stamp = d .. "/lists", d .. "/update-success-stamp"
    local function sh(cmd) T.eq(proc.run({ shell = cmd }).rc, 0, cmd) end
    -- what apt leaves before any update (a fresh image, or lists removed
    -- just now): a new folder, a lock, a partial/ folder, no list
    sh("mkdir -p " .. lists .. "/partial && touch " .. lists .. "/lock")
    T.ok(aptget.cache_age(conn, lists, stamp) > 1e9, "no list: never updated, though the folder is new")
    sh("touch " .. stamp)
    T.ok(aptget.cache_age(conn, lists, stamp) > 1e9, "no list: a stamp alone does not make a cache")
    fs.remove(stamp)
    -- lists there: the folder's age
    sh("touch " .. lists .. "/10.0.2.100_._Packages && touch -d '-300 seconds' " .. lists)
    local age = aptget.cache_age(conn, lists, stamp)
    T.ok(age >= 299 and age < 400, "the folder's age: " .. age)
    -- the stamp, when there, wins
    sh("touch -d '-50 seconds' " .. stamp)
    age = aptget.cache_age(conn, lists, stamp)
    T.ok(age >= 49 and age < 150, "the stamp's age: " .. age)
    -- compressed lists count too
    sh("rm " .. lists .. "/10.0.2.100_._Packages && touch " .. lists ..
       "/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4")
    age = aptget.cache_age(conn, lists, stamp)
    T.ok(age >= 49 and age < 150, "a compressed list: " .. age)
end)

T.done()
