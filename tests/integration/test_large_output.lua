-- Issue 10, item 15: large command output stays cheap.  A capped 8 MiB
-- output of short lines used to cost ~450 MB of controller memory and a
-- 20-60 MB journal (a million stdout_lines strings, journaled and printed).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")

local function env(d, extra)
    local e = { XDG_STATE_HOME = d .. "/state" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
end

T.test("item15: 8 MiB of short lines: a small journal, bounded memory, show works", function()
    local d = T.tmpdir()
    local book = H.book(d, [[
- hosts: localhost
  steps:
    - id: big
      shell: "seq 1 2000000 | head -c 8388608"
    - { id: after, shell: "echo after > @T@/after" }
]])
    -- peak memory from GNU time, around the real binary
    local r = assert(proc.run({ argv = { "/usr/bin/time", "-f", "maxrss_kb=%M", T.cutover, "run", book },
                                env = { NO_COLOR = "1", XDG_STATE_HOME = d .. "/state" }, timeout = 120 }))
    T.eq(r.rc, 0, r.stderr:sub(-2000))
    T.eq(T.read(d .. "/after"), "after\n", "the run went on")
    local kb = tonumber(r.stderr:match("maxrss_kb=(%d+)"))
    print(string.format("# controller peak RSS: %.1f MB", kb / 1024))
    if not os.getenv("ASAN_OPTIONS") then
        -- generous: the output itself is 8 MiB, read once and kept twice
        T.ok(kb < 160 * 1024, "peak RSS " .. kb .. " KB (was ~450 MB)")
    end
    local size = fs.stat(d .. "/state/cutover/journal.db").size
    print(string.format("# journal: %.1f KB", size / 1024))
    T.ok(size < 1024 * 1024, "journal " .. size .. " bytes (was 20 MB and more)")
    local hist = T.run({ "history", "--format", "json" }, { env = env(d) })
    local id = hist.stdout:match('"id":"([%w%-]+)"')
    T.ok(id ~= nil, "a run id: " .. hist.stdout)
    local show = T.run({ "show", id, "--format", "json" }, { env = env(d) })
    T.eq(show.rc, 0, show.stderr)
    T.contains(show.stdout, "bytes not kept in the journal", "the middle is elided, and says so")
    T.contains(show.stdout, "1\\n2\\n3\\n", "the head is kept")
end)

T.test("item15: a registered output is whole, and stdout_lines is made when read", function()
    local d = T.tmpdir()
    local text = [[
- hosts: localhost
  steps:
    - id: small
      shell: "printf 'a\n\nb\r\nc'"
      register: small
    - id: big
      shell: "seq 1 300000"
      register: big
    - id: check
      assert:
        that:
          - "#small.stdout_lines == 3"
          - "small.stdout_lines[2] == 'b'"
          - "small.stdout_lines[3] == 'c'"
          - "#big.stdout_lines == 300000"
          - "big.stdout_lines[300000] == '300000'"
    - id: loop
      shell: "echo {{ item }}; echo x"
      loop: [one, two]
      register: each
    - id: check-loop
      assert:
        that: "each.results[2].stdout_lines[1] == 'two' and #each.results[1].stdout_lines == 2"
    - { id: write, copy: { dest: "@T@/lines", content: "{{ #big.stdout_lines }} {{ #big.stdout }}" } }
]]
    local book = H.book(d, text)
    local r, _, res = H.run_json({ "run", book }, { env = env(d), timeout = 120 })
    T.eq(r.rc, 0, r.stderr .. r.stdout:sub(-3000))
    T.eq(T.read(d .. "/lines"), "300000 " .. #T.sh("seq 1 300000").stdout - 1, "whole output registered")
    local big = H.by_key(res).big
    T.eq(big.result.stdout_lines, nil, "not in the JSON events")
    -- replayed after a crash: the registered value is whole, lines included
    d = T.tmpdir()
    book = H.book(d, text)
    r = T.run({ "run", book }, { env = env(d, { CUTOVER_FAULT = "kill-after:big@localhost" }), timeout = 120 })
    T.eq(r.signal, 9, "killed after 'big'")
    r = T.run({ "resume" }, { env = env(d), timeout = 120 })
    T.eq(r.rc, 0, r.stderr .. r.stdout:sub(-3000))
    T.eq(T.read(d .. "/lines"), "300000 " .. #T.sh("seq 1 300000").stdout - 1, "replayed whole, with its lines")
end)

T.done()
