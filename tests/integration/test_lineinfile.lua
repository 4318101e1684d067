-- lineinfile and blockinfile end to end (local connection): the check run
-- predicts exactly what the real run changes and touches nothing; a second
-- run changes nothing; create, mode, missing files and bad arguments.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

local SSHD_CONFIG = "Port 22\n#PermitRootLogin yes\nPasswordAuthentication yes\nUsePAM yes"

local BOOK = [[
- hosts: localhost
  steps:
    - id: root-login
      lineinfile: { path: "@T@/sshd_config", regexp: '^#?PermitRootLogin', line: "PermitRootLogin no" }
    - id: port
      lineinfile: { path: "@T@/sshd_config", regexp: '^Port (%d+)$', line: "Port 2222 # was %1", backrefs: true }
    - id: no-pam
      lineinfile: { path: "@T@/sshd_config", regexp: '^UsePAM', state: absent }
    - id: banner
      lineinfile: { path: "@T@/sshd_config", line: "Banner /etc/issue.net", insertafter: '^Port' }
    - id: match-block
      blockinfile:
        path: "@T@/sshd_config"
        block: |
          Match User backup
            ForceCommand /usr/bin/rsync
    - id: motd
      lineinfile: { path: "@T@/motd", line: "managed by cutover", create: true, mode: "0640" }
]]

local WANT = "Port 2222 # was 22\nBanner /etc/issue.net\nPermitRootLogin no\nPasswordAuthentication yes\n" ..
             "# BEGIN CUTOVER MANAGED BLOCK\nMatch User backup\n  ForceCommand /usr/bin/rsync\n" ..
             "# END CUTOVER MANAGED BLOCK\n"

T.test("check predicts every edit and writes nothing; the real run makes them; the next changes nothing", function()
    local d = T.tmpdir()
    T.write(d .. "/sshd_config", SSHD_CONFIG, 384)
    local book = H.book(d, BOOK)
    local before = T.snapshot(d)
    local r, _, check = H.run_json({ "run", book, "--check", "--diff" })
    T.eq(r.rc, 0, "check exit: " .. r.stderr)
    T.same_snapshot(T.snapshot(d), before, "check mode wrote nothing")
    H.expect_statuses(check, { ["root-login"] = "changed", port = "changed", ["no-pam"] = "changed",
                               banner = "changed", ["match-block"] = "changed", motd = "changed" }, "check")
    local diff = H.by_key(check)["root-login"].diff
    T.contains(diff, "-#PermitRootLogin yes\n+PermitRootLogin no\n", "the diff shows the edit")
    T.contains(H.by_key(check)["match-block"].diff, "+  ForceCommand /usr/bin/rsync\n", "and the block")
    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "real exit: " .. r.stderr)
    H.check_predicts(check, real)
    T.eq(T.read(d .. "/sshd_config"), WANT, "the edited file")
    T.eq(H.mode(d .. "/sshd_config"), "0600", "an edit keeps the file's mode")
    T.eq(T.read(d .. "/motd"), "managed by cutover\n", "created")
    T.eq(H.mode(d .. "/motd"), "0640", "with its mode")
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "second run")
    T.eq(H.count(real, "changed"), 0, "the second run changes nothing")
    r, _, check = H.run_json({ "run", book, "--check" })
    T.eq(H.count(check, "changed") + H.count(check, "unknown"), 0, "a converged host: check predicts nothing")
end)

T.test("missing files, a mode-only change, and a lone marker", function()
    local d = T.tmpdir()
    T.write(d .. "/f", "x\n", 420)
    T.write(d .. "/broken", "a\n# BEGIN CUTOVER MANAGED BLOCK\nb\n", 420)
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: missing
      lineinfile: { path: "@T@/nope", line: "x" }
      ignore_errors: true
    - id: missing-absent
      lineinfile: { path: "@T@/nope", line: "x", state: absent }
    - id: missing-block-absent
      blockinfile: { path: "@T@/nope", state: absent }
    - id: mode-only
      lineinfile: { path: "@T@/f", line: "x", mode: "0600" }
    - id: lone-marker
      blockinfile: { path: "@T@/broken", block: "y" }
      ignore_errors: true
    - id: a-folder
      lineinfile: { path: "@T@", line: "x" }
      ignore_errors: true
]])
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "exit: " .. r.stderr)
    H.expect_statuses(res, { missing = "ignored", ["missing-absent"] = "ok", ["missing-block-absent"] = "ok",
                             ["mode-only"] = "changed", ["lone-marker"] = "ignored", ["a-folder"] = "ignored" })
    local by = H.by_key(res)
    T.eq(by.missing.result.msg, d .. "/nope does not exist (create: true creates it)", "missing file")
    T.eq(fs.stat(d .. "/nope"), nil, "not created")
    T.eq(H.mode(d .. "/f"), "0600", "mode applied")
    T.eq(T.read(d .. "/f"), "x\n", "content kept")
    T.contains(by["lone-marker"].result.msg, "line 2 holds the begin marker", "lone marker")
    T.eq(T.read(d .. "/broken"), "a\n# BEGIN CUTOVER MANAGED BLOCK\nb\n", "a lone marker changes nothing")
    T.contains(by["a-folder"].result.msg, "is a directory, not a file", "a folder")
end)

T.test("bad arguments are refused at lint, naming file, line and step", function()
    local d = T.tmpdir()
    local cases = {
        { "lineinfile: { path: /x, regexp: '^\\s*Port', line: 'Port 1' }",
            "regexp: '\\s' is regular-expression syntax" },
        { "lineinfile: { path: /x, regexp: '^a', search_string: 'a', line: 'b' }",
            "takes only one of 'regexp' and 'search_string'" },
        { "lineinfile: { path: /x, line: 'b', backrefs: true }", "backrefs needs 'regexp'" },
        { "lineinfile: { path: /x, regexp: '^(a)', line: '\\1', backrefs: true }", "write '%1'" },
        { "lineinfile: { path: /x, regexp: '^a' }", "state present needs 'line'" },
        { "lineinfile: { path: /x, line: 'a', insertafter: '[' }", "insertafter: " },
        { "blockinfile: { path: /x, block: 'a', marker: '# managed' }", "marker must contain '{mark}'" },
        { "blockinfile: { path: /x, block: 'a', marker_begin: X, marker_end: X }",
            "marker_begin and marker_end must differ" },
    }
    H.lint_refuses(d, cases)
end)

T.done()
