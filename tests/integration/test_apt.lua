-- The apt and package actions' arguments: every refusal at lint time,
-- naming the step (the VM test, tests/vm/test_apt.lua, runs them for real).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)

T.test("bad arguments are refused at lint, naming the step", function()
    local d = T.tmpdir()
    H.lint_refuses(d, {
        { "apt: { state: present }", "needs 'name', 'upgrade', 'update_cache' or 'autoremove'" },
        { "apt: { name: '-o APT::Get::Simulate=0' }", "is not a package name" },
        { "apt: { name: [nginx, 'Bad Name'] }", "'Bad Name' is not a package name" },
        { "apt: { name: 'curl;reboot' }", "is not a package name" },
        { "apt: { name: 'curl=1.0 x' }", "is not a Debian version" },
        { "apt: { name: 'curl=-1' }", "is not a Debian version" },
        { "apt: { name: curl, state: installed }", "must be one of present, absent, latest" },
        { "apt: { upgrade: everything }", "upgrade must be one of no, safe, full, dist" },
        { "apt: { name: curl, upgrade: dist }", "takes 'name' or 'upgrade', not both" },
        { "apt: { upgrade: dist, autoremove: true }", "autoremove with upgrade" },
        { "apt: { name: curl=7.88.1-10, state: latest }", "a version pin (name=version) goes with state present" },
        { "apt: { name: curl=7.88.1-10, state: absent }", "a version pin (name=version) goes with state present" },
        { "apt: { name: curl, purge: true }", "purge goes with state absent" },
        { "apt: { hold: true, update_cache: true }", "hold needs 'name'" },
        { "apt: { name: curl, state: absent, hold: true }", "hold: true with state absent" },
        { "apt: { name: curl, conffiles: ask }", "must be one of keep, replace" },
        { "apt: { name: curl, cache_valid_time: soon }", "argument 'cache_valid_time' must be a whole number" },
        { "apt: { name: curl, lock_timout: 5 }", "unknown argument 'lock_timout' (did you mean 'lock_timeout'?)" },
        { "apt: { name: curl, update_cache: maybe }", "argument 'update_cache' must be true or false" },
        { "package: { name: curl, use: yum, purge: true }", "purge goes with state absent" },
        { "package: { state: absent }", "needs 'name'" },
    })
end)

T.test("good arguments lint clean, templates included; cutover doc apt and package", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  vars: { pkgs: [curl, "cutover-demo=1.0"] }
  steps:
    - id: a
      apt: { name: "{{ pkgs }}", update_cache: yes, cache_valid_time: 3600 }
    - id: b
      apt: { name: [curl, cutover-demo=1.1-1, "lib{{ 'x' }}"], allow_downgrade: true, hold: false }
    - id: c
      apt: { upgrade: yes }
    - id: d
      apt: { upgrade: dist, lock_timeout: 10 }
    - id: e
      apt: { autoremove: true }
    - id: f
      apt: { name: nginx, state: absent, purge: true }
    - id: g
      package: { name: nginx, state: latest, conffiles: replace }
    - id: h
      apt: nginx
]])
    local r = T.run({ "lint", book })
    T.eq(r.rc, 0, "lint: " .. r.stderr)
    local doc = T.run({ "doc", "apt" })
    T.eq(doc.rc, 0, "doc apt")
    for _, w in ipairs({ "apt-get -s", "cache_valid_time", "allow_downgrade", "hold", "conffiles", "--force-confold",
                         "reboot_required", "lock_timeout", "Check mode:" }) do
        T.contains(doc.stdout, w, "doc apt: " .. w)
    end
    doc = T.run({ "doc", "package" })
    T.eq(doc.rc, 0, "doc package")
    T.contains(doc.stdout, "pkg_mgr", "doc package names the fact")
end)

T.done()
