-- cutover report / run --report: a real multi-host run over SSH (loopback
-- sshd) with a diff, an approved gate and a failure, rendered by headless
-- Chromium.  The page must hold every host and step, the failure text and
-- the approval, load nothing (a strict Content-Security-Policy, no URL of
-- any kind) and draw something.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local C = dofile(tests_dir .. "/lib/chromium.lua")(T)
local json = require("cutover.core.json")
local fs = require("cutover.core.fs")
S.install(T)

local srv = S.start(T)
srv:trust()

local HOSTS = 5

local function inventory(dir)
    local lines = { "all:", "  vars:", "    ansible_host: " .. srv.address,
                    "    ansible_port: " .. srv.port, "    ansible_user: " .. srv.user,
                    "    ansible_ssh_private_key_file: " .. srv.key, "  hosts:" }
    for i = 1, HOSTS do lines[#lines + 1] = "    web" .. i .. ": {}" end
    return T.write(dir .. "/inv.yml", table.concat(lines, "\n") .. "\n")
end

local STEPS = { "prepare", "write-conf", "approve-restart", "break-web3", "restart", "verify" }

local function book(d)
    -- max_fail_percentage 0 with serial 2: web3 fails in batch 2, so web5
    -- (batch 3) never starts
    return T.write(d .. "/p.yml", string.format([[
- name: rolling conf change
  hosts: all
  serial: 2
  max_fail_percentage: 0
  steps:
    - id: prepare
      shell: "mkdir -p %s/{{ inventory_hostname }} && echo old > %s/{{ inventory_hostname }}/app.conf"
    - id: write-conf
      copy: { dest: "%s/{{ inventory_hostname }}/app.conf", content: "new-setting-{{ inventory_hostname }}\n" }
    - id: approve-restart
      pause: { gate: restart, prompt: "Restart the app?" }
    - id: break-web3
      shell: "echo 'disk quota exceeded on web3' >&2; exit 3"
      when: inventory_hostname == "web3"
    - id: restart
      command: { argv: [echo, restarted] }
    - id: verify
      shell: "cat %s/{{ inventory_hostname }}/app.conf"
]], d, d, d, d))
end

local function env(d) return { HOME = d, SSH_AUTH_SOCK = "" } end

local function pass(d, args)
    local all = { "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts }
    for _, a in ipairs(args) do all[#all + 1] = a end
    return T.run(all, { env = env(d), timeout = 120 })
end

local function last_run(d)
    local r = T.run({ "history", "--format", "json" }, { env = env(d) })
    return json.decode(r.stdout).runs[1].id
end

local d = S.target(T)
inventory(d)
book(d)
local run_out = nil
T.test("run --report writes the report at the end of a real run", function()
    local r = pass(d, { "-D", "--approve", "restart", "--report", d .. "/run.html" })
    run_out = r.stdout .. r.stderr
    T.eq(r.rc, 1, "web3 failed: " .. run_out)
    local html = T.read(d .. "/run.html")
    T.ok(html ~= nil, "the report was written: " .. run_out)
    T.contains(html, "disk quota exceeded on web3", "the failure text")
    T.contains(html, last_run(d), "the run id")
end)

T.test("cutover report: every host, every step, the failure, the approval, in Chromium's DOM", function()
    local id = last_run(d)
    local r = T.run({ "report", id, "-o", d .. "/report.html" }, { env = env(d) })
    T.eq(r.rc, 0, "report: " .. r.stderr)
    local html = assert(T.read(d .. "/report.html"))
    local dom = C.dump_dom(d .. "/report.html")
    T.contains(dom, "<svg", "the timeline is in the DOM")
    for i = 1, HOSTS do T.contains(dom, "web" .. i, "host web" .. i) end
    for _, s in ipairs(STEPS) do T.contains(dom, s, "step " .. s) end
    -- every step of every host that ran has its bar in the timeline
    for i = 1, 4 do
        for _, s in ipairs({ "prepare", "write-conf", "approve-restart" }) do
            T.contains(dom, "<title>web" .. i .. ": " .. s .. ", ", "bar of " .. s .. " on web" .. i)
        end
    end
    T.contains(dom, "<title>web3: break-web3, failed", "web3's failing bar")
    T.contains(dom, "disk quota exceeded on web3", "the failure text")
    -- the approval: gate, host, who
    T.match(dom, "<td>restart</td><td>web1</td><td[^>]*>approved</td><td>root</td>", "web1's approval")
    T.match(dom, "<td>restart</td><td>web4</td><td[^>]*>approved</td>", "web4's approval")
    -- web5 never started, and why
    T.match(dom, "web5</a></td><td[^>]*>never started</td>", "web5 never started")
    T.contains(dom, "max_fail_percentage", "why web5 never started")
    -- the diff of the copy (from -D)
    T.contains(dom, "+new-setting-web1", "web1's diff")
    T.contains(dom, "-old", "the old line in the diff")
    -- batches in the timeline
    T.contains(dom, "batch 2/3", "batch 2 of 3 is marked")
    -- the summary: who, playbook digest, exit code
    local digest = fs.sha256 and fs.sha256(d .. "/p.yml")
    if digest then T.contains(dom, digest, "the playbook's digest") end
    T.contains(dom, "(exit code 1)", "the exit code")
    T.eq(html:find("run --report", 1, true), nil, "no stray text")
end)

T.test("the report loads nothing: a strict CSP, no URL, one script allowed by its hash", function()
    local html = assert(T.read(d .. "/report.html"))
    local csp = html:match('<meta http%-equiv="Content%-Security%-Policy" content="([^"]*)">')
    T.ok(csp ~= nil, "a Content-Security-Policy meta tag")
    T.ok(html:find("<head>") < html:find("Content-Security-Policy", 1, true), "the policy is in the head")
    T.ok(html:find("Content-Security-Policy", 1, true) < html:find("<style>", 1, true), "before any style")
    T.contains(csp, "default-src 'none'", "everything not named is refused")
    -- one inline script, allowed by the sha256 of its text and nothing
    -- else (no 'unsafe-inline' for scripts, no source)
    local _, scripts = html:lower():gsub("<script", "")
    T.eq(scripts, 1, "one script element")
    local js = html:match("<script>(.-)</script>")
    T.ok(js ~= nil, "an inline script without attributes")
    local digest = require("cutover.core.crypto").sha256(js):gsub("%x%x", function(x) return string.char(tonumber(x,
        16)) end)
    local want = "'sha256-" .. require("cutover.core.vault").to_base64(digest) .. "'"
    -- every directive refuses all but inline style and that script
    local seen = {}
    for directive in csp:gmatch("[^;]+") do
        local name, value = directive:match("^%s*(%S+)%s+(.-)%s*$")
        T.ok(name ~= nil, "a directive: " .. directive)
        seen[name] = true
        T.eq(value, name == "style-src" and "'unsafe-inline'" or name == "script-src" and want or "'none'",
             "directive " .. name)
    end
    T.ok(seen["script-src"], "script-src names the script's hash")
    T.not_contains(csp, "http", "no origin is allowed")
    T.not_contains(html, "://", "no URL of any kind")
    T.not_contains(js, "fetch", "the script fetches nothing")
    T.not_contains(js:lower(), "xmlhttprequest", "the script fetches nothing")
    -- the page reads fully without the script: no host is hidden, the
    -- filter bar is
    T.not_contains(html, " hidden><summary>", "no host hidden in the file")
    T.contains(html, '<p id="filter" hidden>', "the filter bar waits for the script")
    T.not_contains(html:lower(), "@import", "no CSS import")
    T.not_contains(html:lower(), "url(", "no CSS url()")
    T.not_contains(html:lower(), " src=", "no src attribute")
    -- Chromium keeps the policy
    local dom = C.dump_dom(d .. "/report.html")
    T.contains(dom, "default-src 'none'", "the DOM keeps the policy")
    -- and runs the script under it (a wrong hash would block it): the
    -- filter bar shows, and a fragment filters the hosts
    T.contains(dom, '<p id="filter">', "the script ran: the filter bar shows")
    T.contains(dom, "5 of 5 hosts shown")
    dom = C.dump_dom(d .. "/report.html#result=failed")
    T.contains(dom, "1 of 5 hosts shown", "filtered by result")
    T.match(dom, '<details class="host" id="host%-%d" data%-host="web3" data%-result="failed" open="">', "web3 shown")
    T.match(dom, '<details class="host" id="host%-%d" data%-host="web1" data%-result="ok" hidden="">', "web1 hidden")
    dom = C.dump_dom(d .. "/report.html#q=WEB4")
    T.contains(dom, "1 of 5 hosts shown", "filtered by name")
    T.match(dom, 'data%-host="web4" data%-result="[^"]*"[^>]*><summary>', "web4 shown")
    T.match(dom, 'data%-host="web2" data%-result="ok" hidden="">', "web2 hidden")
end)

T.test("the screenshot is not blank", function()
    local png = d .. "/report.png"
    C.screenshot(d .. "/report.html", png, 1280, 900)
    local img = assert(T.read(png), "the PNG was written")
    T.eq(img:sub(1, 8), "\137PNG\r\n\26\n", "a PNG")
    T.write(d .. "/blank.html", "<!DOCTYPE html><html><body></body></html>")
    C.screenshot(d .. "/blank.html", d .. "/blank.png", 1280, 900)
    local blank = assert(T.read(d .. "/blank.png"))
    T.ok(#img > 5 * #blank, string.format("the report draws something (%d bytes against a blank page's %d)", #img,
        #blank))
    local out = os.getenv("CUTOVER_DOCS_SHOTS")
    if out and out ~= "" then
        -- the screenshot in docs/ is made here (scripts/screenshots.sh)
        C.screenshot(d .. "/report.html", out .. "/report.png", 1280, 1400)
    end
end)

T.test("report --format json: the same data", function()
    local id = last_run(d)
    local r = T.run({ "report", id, "--format", "json", "-o", "-" }, { env = env(d) })
    T.eq(r.rc, 0, "json: " .. r.stderr)
    local data = json.decode(r.stdout)
    T.eq(data.run.id, id, "run id")
    T.eq(data.run.exit_code, 1, "exit code")
    T.eq(#data.hosts, HOSTS, "every host")
    local by = {}
    for _, h in ipairs(data.hosts) do by[h.name] = h end
    T.eq(by.web3.status, "failed", "web3 failed")
    T.eq(by.web3.failed_at, "break-web3", "at")
    T.eq(by.web5.status, "pending", "web5 never started")
    T.eq(#by.web5.steps, 0, "web5 ran nothing")
    local names = {}
    for _, s in ipairs(by.web1.steps) do names[#names + 1] = s.id end
    T.eq(table.concat(names, " "), "prepare write-conf approve-restart break-web3 restart verify",
        "web1's steps in order")
    T.contains(by.web1.steps[2].diff or "", "+new-setting-web1", "the diff in JSON")
    -- batch 3 never started (the failure in batch 2 stopped the play)
    T.eq(#data.batches, 2, "two batches started")
    T.eq(data.batches[2].of, 3, "of three")
    T.eq(table.concat(data.batches[2].hosts, " "), "web3 web4", "batch 2's hosts")
end)

T.test("report: bad input is a usage error, never a traceback", function()
    local r = T.run({ "report", "no-such-run", "-o", d .. "/x.html" }, { env = env(d) })
    T.eq(r.rc, 2, "unknown run")
    T.contains(r.stderr, "no run 'no-such-run'", "names the run")
    r = T.run({ "report", last_run(d) }, { env = env(d) })
    T.eq(r.rc, 2, "no -o")
    r = T.run({ "report", last_run(d), "-o", d .. "/x", "--format", "pdf" }, { env = env(d) })
    T.eq(r.rc, 2, "bad format")
    r = T.run({ "report", last_run(d), "-o", d .. "/no/such/dir/x.html" }, { env = env(d) })
    T.eq(r.rc, 2, "unwritable path")
    T.contains(r.stderr, "no/such/dir/x.html", "names the file")
    T.not_contains(r.stderr, "traceback", "no traceback")
    r = pass(d, { "--no-journal", "--report", d .. "/y.html" })
    T.eq(r.rc, 2, "--report needs the journal")
end)

T.test("resume --report: a run parked at its gate, approved at resume, reported", function()
    local r = pass(d, { "--non-interactive" })
    T.eq(r.rc, 4, "parked at the gate: " .. r.stdout .. r.stderr)
    local id = last_run(d)
    r = T.run({ "resume", id, "--approve", "restart", "--non-interactive", "--report", d .. "/resumed.html" },
              { env = env(d), timeout = 120 })
    T.eq(r.rc, 1, "web3 fails after the approval: " .. r.stdout .. r.stderr)
    local html = T.read(d .. "/resumed.html")
    T.ok(html ~= nil, "the report was written")
    T.contains(html, "cutover run " .. id, "of the resumed run")
    T.match(html, "<td>restart</td><td>web1</td><td class=\"ok\">approved</td><td>root</td>", "the approval at resume")
    T.contains(html, "disk quota exceeded on web3", "the failure after it")
end)

T.done()
