-- get_url on the local connection against a real HTTP server on loopback
-- (tests/lib/httpd.py): checksums (hex and a checksum file), a mismatch
-- or an error status leaving dest as it was and no temporary file, an
-- interrupt (a real SIGINT) removing the temporary file, exact check
-- mode that writes nothing, a second run that changes nothing, --diff,
-- and the argument checks at lint time.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local W = dofile(tests_dir .. "/lib/httpd.lua")
local crypto = require("cutover.core.crypto")
local fs = require("cutover.core.fs")
W.install(T)

local srv = W.start(T)
local PAYLOAD = "release 1.2\n" .. string.rep("0123456789", 5000) .. "\n"
T.write(srv.root .. "/app-1.2.tar", PAYLOAD)
local SUM = crypto.sha256(PAYLOAD)
T.write(srv.root .. "/SHA256SUMS", string.rep("0", 64) .. "  other.tar\n" .. SUM .. "  app-1.2.tar\n")

local function no_temp_files(dir, what)
    for _, n in ipairs(fs.list(dir)) do T.not_contains(n, ".cutover-", what .. ": a temporary file left: " .. n) end
end

T.test("checksum: check predicts and writes nothing; downloaded with its mode; the next run changes nothing", function()
    local d = T.tmpdir()
    assert(fs.mkdir(d .. "/opt", 493))
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: hex
      get_url: { url: "%s/files/app-1.2.tar", dest: "@T@/opt/app.tar", checksum: "sha256:%s", mode: "0640" }
    - id: sums-file
      get_url: { url: "%s/files/app-1.2.tar", dest: "@T@/opt/", checksum: "sha256:%s/files/SHA256SUMS" }
    - id: no-checksum
      get_url: { url: "%s/files/app-1.2.tar", dest: "@T@/opt/plain.tar" }
]], srv.base, SUM, srv.base, srv.base, srv.base))
    local before = T.snapshot(d .. "/opt")
    srv:clear_log()
    local r, _, res = H.run_json({ "run", book, "--check", "--diff" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { hex = "changed", ["sums-file"] = "changed", ["no-checksum"] = "changed" }, "check")
    local by = H.by_key(res)
    T.eq(by.hex.result.msg, "would download " .. srv.base .. "/files/app-1.2.tar (" .. #PAYLOAD .. " bytes) to " ..
         d .. "/opt/app.tar", "what it would do")
    T.contains(by.hex.diff, "0640", "--diff: the mode")
    T.contains(by.hex.diff, "downloaded from " .. srv.base, "--diff: where from")
    T.same_snapshot(T.snapshot(d .. "/opt"), before, "check wrote nothing")
    T.not_contains(srv:log(), "GET /files/app", "check downloaded nothing")
    local real
    r, _, real = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(real, { hex = "changed", ["sums-file"] = "changed", ["no-checksum"] = "changed" }, "run")
    H.check_predicts(res, real, "check vs run")
    T.eq(fs.sha256(d .. "/opt/app.tar"), SUM, "the bytes")
    T.eq(H.mode(d .. "/opt/app.tar"), "0640", "the mode")
    T.eq(fs.sha256(d .. "/opt/app-1.2.tar"), SUM, "dest a folder: the URL's file name")
    T.eq(H.mode(d .. "/opt/plain.tar"), "0644", "a new file without mode: 0644")
    no_temp_files(d .. "/opt", "run")
    local after = T.snapshot(d .. "/opt")
    srv:clear_log()
    r, _, res = H.run_json({ "run", book, "--check" })
    H.expect_statuses(res, { hex = "ok", ["sums-file"] = "ok", ["no-checksum"] = "ok" }, "check of the converged host")
    r, _, res = H.run_json({ "run", book })
    H.expect_statuses(res, { hex = "ok", ["sums-file"] = "ok", ["no-checksum"] = "ok" }, "the next run")
    T.not_contains(srv:log(), "GET /files/app", "nothing downloaded again")
    T.same_snapshot(T.snapshot(d .. "/opt"), after, "nothing touched")
    -- a drifted mode is brought back without a download
    assert(fs.chmod(d .. "/opt/app.tar", 420))
    r, _, res = H.run_json({ "run", book })
    T.eq(H.by_key(res).hex.status, "changed", "the mode put back")
    T.eq(H.mode(d .. "/opt/app.tar"), "0640", "0640 again")
end)

T.test("a checksum mismatch or an error status leaves dest as it was and no temporary file", function()
    local d = T.tmpdir()
    T.write(d .. "/app.tar", "the old release\n", 420)
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: mismatch
      get_url: { url: "%s/files/app-1.2.tar", dest: "@T@/app.tar", checksum: "sha256:%s" }
      ignore_errors: true
    - id: missing
      get_url: { url: "%s/files/nope.tar", dest: "@T@/app.tar", force: true }
      ignore_errors: true
    - id: refused
      get_url: { url: "http://127.0.0.1:%d/x.tar", dest: "@T@/new.tar" }
      ignore_errors: true
]], srv.base, string.rep("ab", 32), srv.base, H.closed_port()))
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { mismatch = "ignored", missing = "ignored", refused = "ignored" }, "run")
    local by = H.by_key(res)
    T.eq(by.mismatch.result.msg, "checksum mismatch: " .. srv.base .. "/files/app-1.2.tar has sha256 " .. SUM ..
         ", expected " .. string.rep("ab", 32) .. "; " .. d .. "/app.tar left as it was", "mismatch message")
    T.eq(by.missing.result.msg, "GET " .. srv.base .. "/files/nope.tar: status 404 (expected 200): no such file; " ..
         d .. "/app.tar left as it was", "404 message")
    T.contains(by.refused.result.msg, "cannot connect", "a closed port")
    T.eq(T.read(d .. "/app.tar"), "the old release\n", "dest untouched")
    T.eq(fs.stat(d .. "/new.tar"), nil, "nothing created")
    no_temp_files(d, "failures")
end)

T.test("an interrupt during the download removes the temporary file", function()
    local d = T.tmpdir()
    H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: slow
      get_url: { url: "%s/slow", dest: "@T@/slow.bin" }
]], srv.base))
    local r = T.sh(string.format([[
cd %s
XDG_STATE_HOME=%s/state NO_COLOR=1 %s run p.yml >out 2>&1 &
pid=$!
i=0
while ! ls | grep -q '^slow.bin.cutover-' && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
ls > seen
kill -INT $pid
wait $pid
echo $? > rc
]], d, d, T.cutover))
    T.eq(r.rc, 0, "driver: " .. r.stdout .. r.stderr)
    T.match(T.read(d .. "/seen"), "slow%.bin%.cutover%-", "the temporary file existed while it downloaded")
    T.eq(T.read(d .. "/rc"), "130\n", "exit code: " .. tostring(T.read(d .. "/out")))
    T.eq(fs.stat(d .. "/slow.bin"), nil, "no dest")
    no_temp_files(d, "after the interrupt")
end)

T.test("bad arguments are refused at lint, naming the step", function()
    local d = T.tmpdir()
    H.lint_refuses(d, {
        { "get_url: { url: 'http://x/a', dest: /tmp/a, checksum: 'sha256:abc' }", "checksum sha256:... must be 64 hex digits" },
        { "get_url: { url: 'http://x/a', dest: /tmp/a, checksum: 'crc32:abcd' }", "checksum must be ALGORITHM:HEX or ALGORITHM:URL" },
        { "get_url: { url: 'file:///etc/shadow', dest: /tmp/a }", "url must start with http:// or https://" },
        { "get_url: { url: 'http://x/a' }", "missing required argument 'dest'" },
        { "get_url: { url: 'http://x/a', dest: /tmp/a, mode: 'rw' }", "argument 'mode'" },
    })
end)

T.done()
