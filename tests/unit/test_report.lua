-- cutover.report on a large journal written through cutover.journal:
-- 500 hosts x 20 steps in batches of 50 stay under 5 MB; text from hosts
-- is escaped (it cannot add markup or a script); a secret the process
-- knows is masked even where a row held it unmasked.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local journal = require("cutover.journal")
local report = require("cutover.report")
local redact = require("cutover.secrets.redact")
local json = require("cutover.core.json")

-- under memcheck 2 batches: the same code, a tenth of the rows
local HOSTS, STEPS, BATCH = T.scale(500, 100), 20, 50

local function big_journal(path)
    local j = assert(journal.open(path))
    local id = "20260101-000000-abcd"
    j:new_run({ id = id, command = "run", playbook = "/srv/p.yml", playbook_digest = string.rep("a", 64),
                inventory = "/srv/inv.yml", inventory_digest = string.rep("b", 64),
                extra_vars = {}, options = { forks = "50" }, version = "test" })
    local t = require("cutover.core.sys").time() - 200
    j:exec("BEGIN")
    for b = 0, HOSTS / BATCH - 1 do
        local names = {}
        for i = 1, BATCH do names[i] = string.format("host%03d.example.org", b * BATCH + i) end
        j:event(id, nil, "batch", "rollout", json.encode({ play = 1, batch = b + 1, of = HOSTS / BATCH,
                                                            hosts = setmetatable(names, { __jsontype = "array" }) }))
        for i, name in ipairs(names) do
            j:host_status(id, name, name == "host007.example.org" and "failed" or "ok",
                          name == "host007.example.org" and "step-05" or nil, nil)
            for s = 1, STEPS do
                local seq = j:intent({ run = id, host = name, play = 1, step = string.format("step-%02d", s),
                                       occurrence = 1, name = "step " .. s, action = "shell", digest = "d",
                                       idempotent = false })
                local lines = {}
                for k = 1, 30 do lines[k] = "line " .. k .. " of the output of step " .. s end
                local failed = name == "host007.example.org" and s == 5
                local res = { changed = s % 3 == 0, stdout = table.concat(lines, "\n"),
                              msg = failed and "<script>alert(1)</script> went wrong" or nil,
                              stderr = failed and "token=hunter2-secret-value" or nil, failed = failed or nil }
                j:exec("UPDATE steps SET started = ?, ended = ? WHERE seq = ?", t, t + 1.5, seq)
                j:result(seq, failed and "failed" or (res.changed and "changed" or "ok"), res.changed,
                         json.encode(res), nil, nil)
                j:exec("UPDATE steps SET ended = ? WHERE seq = ?", t + 1.5, seq)
                if failed then break end
                t = t + 0.01
            end
            if i == 1 then j:event(id, name, "approve", "go", "--approve by tester") end
        end
    end
    j:exec("COMMIT")
    j:run_status(id, "failed", 1)
    return j, id
end

local dir = T.tmpdir()
local j, id = big_journal(dir .. "/journal.db")

T.test(HOSTS .. " hosts x 20 steps: the report stays under 5 MB and names every host", function()
    redact.register("hunter2-secret-value")
    local path = (os.getenv("CUTOVER_REPORT_KEEP") or dir) .. "/big.html"
    assert(report.write(j, id, path, "html"))
    local html = assert(T.read(path))
    T.ok(#html < 5 * 1024 * 1024, "under 5 MB: " .. #html .. " bytes")
    for i = 1, HOSTS do
        local name = string.format("host%03d.example.org", i)
        T.ok(html:find(">" .. name .. "<", 1, true), "host " .. name .. " has its section")
    end
    -- the output heads: the first lines, not all 30
    -- (T.ok, not T.contains: a failure must not print 4 MB)
    local function has(needle) return html:find(needle, 1, true) ~= nil end
    T.ok(has("line 1 of the output of step 20"), "the head of the output")
    T.ok(not has("line 13 of the output"), "not past the head")
    -- text from hosts is escaped
    -- (the one script element is the report's own filter)
    T.eq(select(2, html:lower():gsub("<script", "")), 1, "no script from a host's message")
    T.ok(has("<script>" .. report.FILTER_JS .. "</script>"), "the one script is the filter")
    T.ok(has("&lt;script&gt;alert(1)&lt;/script&gt; went wrong"), "the message, escaped")
    -- a secret the process knows is masked, even where the row held it
    T.ok(not has("hunter2-secret-value"), "the secret is not in the page")
    T.ok(has("token=********"), "masked")
    -- one bar per step in the timeline
    local bars = select(2, html:gsub("<rect class=\"[a-z]+\" x=[^>]*><title>", ""))
    T.eq(bars, HOSTS * STEPS - (STEPS - 5), "one bar per step run (host007 stopped at step 5)")
    T.ok(has(("batch %d/%d"):format(HOSTS / BATCH, HOSTS / BATCH)), "the last batch is marked")
    redact.reset()
end)

T.test("report --format json: the same hosts and steps", function()
    local d = assert(report.collect(j, id))
    T.eq(#d.hosts, HOSTS, "hosts")
    T.eq(#d.hosts[1].steps, STEPS, "steps of the first host")
    T.eq(#d.batches, HOSTS / BATCH, "batches")
    local text = report.json(d)
    T.ok(json.decode(text).run.id == id, "decodes")
end)

T.test("plan versus actual: every kind of difference, loops as one step, occurrences in order", function()
    local rec = {
        file = "/p.plan", body_sha256 = "x", created = "2026-12-05T09:00:00Z", user = "op",
        stale = { { host = "h3", step = "a", why = "predicted changed, now ok" } },
        hosts = {
            { name = "h1", steps = {
                { play = 1, id = "a", status = "changed", changed = true },          -- was ok
                { play = 1, id = "b", status = "ok" },                               -- was changed
                { play = 1, id = "c", status = "ok" },                               -- as planned
                { play = 1, id = "l", item = "x", status = "ok" },                   -- a loop: one step
                { play = 1, id = "l", item = "y", status = "changed", changed = true },
                { play = 1, id = "h", status = "changed" },                          -- handler, twice
                { play = 1, id = "h", status = "changed" },
                { play = 1, id = "u", status = "unknown", at_apply = true },         -- decided at apply
                { play = 1, id = "f", status = "ok", at_apply = true },              -- never ran
            } },
            { name = "h3", steps = { { play = 1, id = "a", status = "changed" } } },
        },
    }
    local rows = {
        { host = "h1", play = 1, step = "a", occurrence = 1, status = "ok" },
        { host = "h1", play = 1, step = "b", occurrence = 1, status = "changed" },
        { host = "h1", play = 1, step = "c", occurrence = 1, status = "ok" },
        { host = "h1", play = 1, step = "l", occurrence = 1, status = "changed" },
        { host = "h1", play = 1, step = "h", occurrence = 1, status = "changed" },
        { host = "h1", play = 1, step = "h", occurrence = 2, status = "failed" },
        { host = "h1", play = 1, step = "u", occurrence = 1, status = "changed" },
        { host = "h1", play = 1, step = "extra", occurrence = 1, status = "ok" },
    }
    local p = report.plan_versus_actual(rec, rows)
    local got = {}
    for _, h in ipairs(p.hosts) do
        for _, st in ipairs(h.steps) do
            got[#got + 1] = h.name .. " " .. st.id .. " " .. tostring(st.planned) .. "->" .. tostring(st.actual) ..
                " " .. tostring(st.difference)
        end
    end
    T.eq(table.concat(got, "\n"), table.concat({
        "h1 a changed->ok planned a change, was ok",
        "h1 b ok->changed unplanned change",
        "h1 c ok->ok nil",
        "h1 l changed->changed nil",
        "h1 h changed->changed nil",
        "h1 h changed->failed planned changed, was failed",
        "h1 u unknown->changed nil",
        "h1 f ok->nil planned but not run",
        "h1 extra nil->ok not in the plan",
        "h3 a changed->nil planned but not run" }, "\n"))
    T.eq(p.differences, 6)
    T.eq(p.hosts[2].stale, "refused as stale at step 'a': predicted changed, now ok")
end)

T.done()
