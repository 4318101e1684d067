-- A command run on a channel of its own (cutover_session: false, and
-- every host whose shell cannot run the session) whose last output came
-- off the socket while the other stream was being read: the step must
-- still end.  core/ssh/exec.c read stdout, then stderr; libssh2 reads
-- every packet the socket holds whenever either is read, so the final
-- stdout data, the EOF and the close could be queued during the stderr
-- read.  The channel then counted as not at EOF (data still queued),
-- and the exec waited on a socket that had nothing more to give: a step
-- that hung until its timeout (seen under load as a FLAKY
-- ssh.test_transfer).  tests/lib/recv_delay.c, preloaded into cutover,
-- makes each empty read of the socket wait 2 ms, so the command's
-- second line, printed about a millisecond after its first, lands in
-- that moment.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local fs = require("cutover.core.fs")
S.install(T)

local shim = binary:match("^(.*)/[^/]+$") .. "/recv_delay.so"

local srv = S.start(T)
srv:trust()

T.test("a command's last output read while its other stream was drained: every step ends, output whole",
    function()
    T.ok(fs.stat(shim), "the shim is built: " .. shim)
    local d = S.target(T)
    T.write(d .. "/inv.yml", srv:inventory("    cutover_session: false\n"))
    local steps = { "- hosts: all", "  gather_facts: false", "  steps:" }
    local n = 40
    for i = 1, n do
        -- stdout, a busy millisecond or so, stdout again; then the end
        steps[#steps + 1] = "    - shell:"
        steps[#steps + 1] = "        cmd: 'echo a" .. i ..
            "; i=0; while [ $i -lt 400 ]; do i=$((i+1)); done; echo b" .. i .. "'"
        steps[#steps + 1] = "        timeout: 15"
        steps[#steps + 1] = "      register: r" .. i
        steps[#steps + 1] = "    - assert:"
        steps[#steps + 1] = "        that: r" .. i .. ".stdout == \"a" .. i .. "\\nb" .. i .. "\""
    end
    T.write(d .. "/p.yml", table.concat(steps, "\n") .. "\n")
    local asan = os.getenv("ASAN_OPTIONS")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
        { env = { LD_PRELOAD = shim, CUTOVER_TEST_RECV_DELAY_MARK = d .. "/shim-delayed", HOME = d, SSH_AUTH_SOCK = "",
                  -- every read a real one: the controller otherwise skips
                  -- the empty reads that open the race's window
                  CUTOVER_SSH_SKIP_EMPTY_READS = "0",
                  -- (an ASan build checks that its runtime is loaded first)
                  ASAN_OPTIONS = (asan and asan .. ":" or "") .. "verify_asan_link_order=0" },
          timeout = 600 })
    T.ok(fs.stat(d .. "/shim-delayed"), "the shim was loaded into cutover and slowed its empty reads")
    T.eq(r.rc, 0, "every step ended: " .. r.stdout .. r.stderr)
    local _, timed_out = r.stdout:gsub("timed out", "")
    T.eq(timed_out, 0, "no step timed out")
    T.match(r.stdout, "h1%s+" .. (2 * n - n) .. "%s+" .. n .. "%s+0%s+0%s+0%s+0", "recap: 40 changed, 40 ok")
end)

T.done()
