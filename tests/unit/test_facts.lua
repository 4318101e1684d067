-- facts.lua's parser on answers of hosts this machine is not: another
-- family, quoting in os-release, a mount point with a space, no `ip`, an
-- answer cut short, and one that is not the script's at all.  (The real
-- script against real hosts: tests/ssh/test_facts.lua, tests/vm.)
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local facts = require("cutover.facts")
local proc = require("cutover.core.proc")

local TOK = "--cutover-facts-0123--"
local function answer(sections)
    local out = {}
    for _, s in ipairs(sections) do
        out[#out + 1] = TOK .. " " .. s[1]
        for _, l in ipairs(s[2]) do out[#out + 1] = l end
    end
    return table.concat(out, "\n") .. "\n"
end
local ALL = { hardware = true, network = true }

local ROCKY = {
    { "os_release", { 'NAME="Rocky Linux"', 'ID="rocky"', 'ID_LIKE="rhel centos fedora"',
                      'VERSION_ID="9.3"', 'PRETTY_NAME="Rocky Linux 9.3 (Blue \\"Onyx\\")"' } },
    { "uname", { "Linux", "db1.corp.example", "5.14.0-362.el9.x86_64", "x86_64", "#1 SMP" } },
    { "fqdn", { "" } },
    { "user", { "deploy", "1001", "1001", "/home/deploy" } },
    { "boot", { "5f0c1d9e-1111-2222-3333-444455556666", "12345.67 23456.78" } },
    { "init", { "systemd" } },
    { "pkg", { "dnf" } },
    { "meminfo", { "MemTotal:        8041232 kB", "MemFree:          512000 kB", "SwapTotal:             0 kB" } },
    { "cpus", { "4" } },
    { "df", { "Filesystem     1024-blocks    Used Available Capacity Mounted on",
              "/dev/sda2          10000000 4000000   6000000      40% /",
              "/dev/sdb1              2048    1024      1024      50% /srv/my data" } },
    { "mounts", { "/dev/sda2 / xfs rw,relatime 0 0", "/dev/sdb1 /srv/my\\040data ext4 ro 0 0" } },
    { "end", {} },
}

T.test("another family: os-release quoting and ID_LIKE, Ansible's names, a mount point with a space", function()
    local f = assert(facts.parse(answer(ROCKY), TOK, { hardware = true }))
    T.eq(f.distribution, "Rocky", "distribution")
    T.eq(f.os_family, "RedHat", "os_family")
    T.eq(f.distribution_version, "9.3", "version")
    T.eq(f.distribution_major_version, "9", "major")
    T.eq(f.os_release.PRETTY_NAME, 'Rocky Linux 9.3 (Blue "Onyx")', "escaped quotes")
    T.eq(f.hostname, "db1", "hostname")
    T.eq(f.fqdn, "db1.corp.example", "fqdn falls back to uname -n")
    T.eq(f.domain, "corp.example", "domain")
    T.eq(f.pkg_mgr, "dnf", "pkg_mgr")
    T.eq(f.uptime_seconds, 12345, "uptime")
    T.eq(f.memtotal_mb, 7852, "memtotal_mb")
    T.eq(f.swaptotal_mb, 0, "swap")
    T.eq(f.memavailable_mb, nil, "absent, not guessed")
    T.eq(f.processor_vcpus, 4, "cpus")
    T.eq(#f.mounts, 2, "mounts")
    T.eq(f.mounts[2].mount, "/srv/my data", "mount point with a space")
    T.eq(f.mounts[2].fstype, "ext4", "its type from /proc/mounts")
    T.eq(f.mounts[2].options, "ro", "its options")
    T.eq(f.mounts[1].size_available, 6000000 * 1024, "bytes")
    T.eq(f.interfaces, nil, "network not asked for")
    T.eq(f.facts_truncated, nil, "complete")
end)

T.test("network: ip -o addr and the default routes; no ip on the host gives none", function()
    local s = {
        { "uname", { "Linux", "gw", "6.1.0", "aarch64", "#1" } },
        { "addr", {
            "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
            "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever",
            "2: br-lan    inet 192.168.7.1/23 brd 192.168.7.255 scope global br-lan\\       valid_lft forever",
            "2: br-lan    inet 10.9.0.1/16 scope global secondary br-lan\\       valid_lft forever",
            "2: br-lan    inet6 2001:db8::1/64 scope global \\       valid_lft forever",
            "2: br-lan    inet6 fe80::1/64 scope link \\       valid_lft forever",
            "3: veth0@if9    inet 172.17.0.1/30 scope global veth0\\       valid_lft forever" } },
        { "route4", { "default via 192.168.6.254 dev br-lan proto static metric 100" } },
        { "route6", { "default via fe80::ff dev br-lan metric 1024 pref medium" } },
        { "mac", { "br-lan 02:00:00:00:00:01", "lo 00:00:00:00:00:00", "veth0 02:00:00:00:00:02" } },
        { "end", {} },
    }
    local f = assert(facts.parse(answer(s), TOK, ALL))
    T.eq(table.concat(f.interfaces, ","), "br-lan,lo,veth0", "interfaces")
    T.eq(f.br_lan.ipv4.address, "192.168.7.1", "primary address")
    T.eq(f.br_lan.ipv4.netmask, "255.255.254.0", "netmask of /23")
    T.eq(f.br_lan.ipv4_secondaries[1].address, "10.9.0.1", "secondary")
    T.eq(f.veth0.ipv4.prefix, "30", "name without @ifN")
    T.eq(f.default_ipv4.gateway, "192.168.6.254", "gateway")
    T.eq(f.default_ipv4.interface, "br-lan", "interface")
    T.eq(f.default_ipv4.address, "192.168.7.1", "address of the interface")
    T.eq(f.default_ipv4.macaddress, "02:00:00:00:00:01", "mac")
    T.eq(f.default_ipv6.address, "2001:db8::1", "global v6 address")
    T.eq(table.concat(f.all_ipv4_addresses, ","), "192.168.7.1,10.9.0.1,172.17.0.1", "no loopback")
    T.eq(table.concat(f.all_ipv6_addresses, ","), "2001:db8::1", "no loopback, no link-local")
    T.eq(f.distribution, "Linux", "no os-release: the system name")

    local bare = assert(facts.parse(answer({ { "uname", { "Linux", "x", "1", "x86_64", "#1" } },
                                             { "mac", { "eth0 02:00:00:00:00:03" } }, { "end", {} } }), TOK, ALL))
    T.eq(#bare.interfaces, 1, "interfaces from /sys only")
    T.eq(bare.eth0.ipv4, nil, "no address without ip")
    T.eq(next(bare.default_ipv4), nil, "no default route known")
end)

T.test("an answer cut short is marked; one without the script's sections is an error", function()
    local full = answer(ROCKY)
    local cut = full:sub(1, full:find(TOK .. " end", 1, true) - 1)
    local f = assert(facts.parse(cut, TOK, ALL))
    T.eq(f.facts_truncated, true, "truncated")
    local f2, err = facts.parse("Welcome to the bastion!\nLinux\n", TOK, ALL)
    T.eq(f2, nil, "not facts")
    T.contains(err, "no uname section", "message")
    -- another run's token does not count as a section head
    local foreign = {}
    for l in full:gmatch("[^\n]+") do
        foreign[#foreign + 1] = l:sub(1, #TOK) == TOK and ("--cutover-facts-9999--" .. l:sub(#TOK + 1)) or l
    end
    local f3 = facts.parse(table.concat(foreign, "\n"), TOK, ALL)
    T.eq(f3, nil, "foreign token")
end)

T.test("subsets", function()
    local w = assert(facts.resolve_subset(nil))
    T.ok(w.hardware and w.network, "default all")
    w = assert(facts.resolve_subset({ "min" }))
    T.ok(not w.hardware and not w.network, "min")
    w = assert(facts.resolve_subset({ "network" }))
    T.ok(not w.hardware and w.network, "network only")
    w = assert(facts.resolve_subset({ "all", "!hardware" }))
    T.ok(not w.hardware and w.network, "all but hardware")
    w = assert(facts.resolve_subset({ "!network" }))
    T.ok(w.hardware and not w.network, "!network alone")
    local _, err = facts.resolve_subset({ "netwrk" })
    T.contains(err, "did you mean 'network'", "suggestion")
end)

T.test("the script is POSIX sh: dash runs it here and its answer parses", function()
    local r = assert(proc.run({ argv = { "dash", "-c", facts.SCRIPT, "x", TOK, "hardware", "network" }, timeout = 30 }))
    T.eq(r.rc, 0, "exit (stderr: " .. r.stderr .. ")")
    local f = assert(facts.parse(r.stdout, TOK, ALL))
    T.eq(f.facts_truncated, nil, "complete")
    T.ok(#f.mounts > 0, "mounts")
end)

T.done()
