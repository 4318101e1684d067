-- uri on the local connection against a real HTTP(S) server on loopback
-- (tests/lib/httpd.py): statuses, JSON, bodies, until/retries, basic auth
-- with the password in no output, journal, command line or environment
-- (a curl wrapper first in PATH records what curl was given), TLS
-- verification against a self-signed certificate, check mode, and the
-- argument checks at lint time.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local H = dofile(tests_dir .. "/integration/common.lua")(T)
local W = dofile(tests_dir .. "/lib/httpd.lua")
local crypto = require("cutover.core.crypto")
local proc = require("cutover.core.proc")
W.install(T)

local srv = W.start(T)
local tls = W.start(T, { tls = true })

-- A folder with a `curl` that records its arguments and environment,
-- then runs the real one.  Returns the folder.
local function curl_wrapper()
    local d = T.tmpdir()
    assert(require("cutover.core.fs").chmod(d, 511))
    local real = proc.run({ shell = "command -v curl" }).stdout:gsub("%s+$", "")
    T.write(d .. "/curl", "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " .. d .. "/argv.log\nenv >> " .. d ..
        "/env.log\nexec " .. real .. " \"$@\"\n", 493)
    return d
end

T.test("statuses, JSON, redirects, bodies and headers", function()
    local d = T.tmpdir()
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: json
      uri: { url: "%s/redirect?to=/json", return_content: true }
      register: j
    - id: seen
      assert: { that: [ "j.json.status == 'ok'", "j.json.n == 3", "j.status == 200", "j.redirected",
                        "j.url == '%s/json'", "j.content_type == 'application/json'",
                        "j.headers['x-test-server'] == 'cutover'", "j.content:find('items')" ] }
    - id: no-content
      uri: { url: "%s/json" }
      register: nc
    - id: seen2
      assert: { that: [ "nc.content == nil", "nc.json.n == 3" ] }
    - id: accepted
      uri: { url: "%s/status/404", status_code: [200, 404] }
    - id: mismatch
      uri: { url: "%s/status/503" }
      ignore_errors: true
    - id: post-json
      uri: { url: "%s/echo", method: POST, body_format: json, body: { name: web1, port: 80 }, headers: { X-Trace: abc } }
      register: pj
    - id: post-form
      uri: { url: "%s/echo", method: put, body_format: form-urlencoded, body: { a: "1 2", b: "x&y" } }
      register: pf
    - id: seen3
      assert: { that: [ "pj.json.method == 'POST'", "pj.json.body == '{\"name\":\"web1\",\"port\":80}'",
                        "pj.json.headers['content-type'] == 'application/json'", "pj.json.headers['x-trace'] == 'abc'",
                        "pf.json.method == 'PUT'", "pf.json.body == 'a=1%%202&b=x%%26y'",
                        "pf.json.headers['content-type'] == 'application/x-www-form-urlencoded'" ] }
    - id: no-follow
      uri: { url: "%s/redirect?to=/json", follow_redirects: none, status_code: 302 }
    - id: head
      uri: { url: "%s/json", method: HEAD }
      register: hd
    - id: seen4
      assert: { that: [ "hd.status == 200", "hd.content_length == 45" ] }
]], srv.base, srv.base, srv.base, srv.base, srv.base, srv.base, srv.base, srv.base, srv.base))
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { json = "ok", seen = "ok", ["no-content"] = "ok", seen2 = "ok", accepted = "ok",
                             mismatch = "ignored", ["post-json"] = "changed", ["post-form"] = "changed", seen3 = "ok",
                             ["no-follow"] = "ok", head = "ok", seen4 = "ok" }, "run")
    local by = H.by_key(res)
    T.eq(by.mismatch.result.msg, "GET " .. srv.base .. "/status/503: status 503 (expected 200): status 503: the body says why",
         "a status not expected: the status and the start of the body")
    T.eq(by.mismatch.result.status, 503, "the status is in the result")
end)

T.test("check mode: GET is sent (exact), POST is not and is reported as what it would send", function()
    local d = T.tmpdir()
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: health
      uri: { url: "%s/json" }
      register: h
    - id: uses-it
      debug: { msg: "n={{ h.json.n }}" }
    - id: drain
      uri: { url: "%s/echo", method: POST, body: "drain=web1" }
      register: dr
    - id: after-drain
      debug: { msg: "{{ dr.status }}" }
]], srv.base, srv.base))
    srv:clear_log()
    local r, _, res = H.run_json({ "run", book, "--check" })
    T.eq(r.rc, 0, "check: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { health = "ok", ["uses-it"] = "ok", drain = "unknown", ["after-drain"] = "unknown" }, "check")
    local by = H.by_key(res)
    T.eq(by.drain.result.msg, "would send POST " .. srv.base .. "/echo with a 10-byte body (not sent in check mode)", "what it would send")
    T.eq(srv:log(), "GET /json auth=no\n", "only the GET reached the server")
    r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run")
    T.contains(srv:log(), "POST /echo", "the real run sends it")
end)

T.test("a saved plan with a health check stays valid: per-response headers are not predictions", function()
    local d = T.tmpdir()
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: health
      uri: { url: "%s/json" }
      register: h
    - id: marker
      copy: { dest: "@T@/marker", content: "n={{ h.json.n }}\n" }
]], srv.base))
    local r = T.run({ "plan", book, "-o", d .. "/p.plan" })
    T.eq(r.rc, 0, "plan: " .. r.stdout .. r.stderr)
    -- the server's Date header moves on a second
    local t0 = os.time()
    while os.time() == t0 do require("cutover.core.loop").sleep(0.05) end
    r = T.run({ "apply", d .. "/p.plan" })
    T.eq(r.rc, 0, "apply: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/marker"), "n=3\n", "applied")
end)

T.test("until/retries: a health check that turns healthy on the third try; one that never does", function()
    local d = T.tmpdir()
    local key = crypto.random_hex(4)
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: wait-healthy
      uri: { url: "%s/flaky/%s/2", status_code: [200, 503] }
      register: h
      until: h.status == 200 and h.json.ready
      retries: 5
      delay: 0
    - id: never
      uri: { url: "%s/status/503" }
      register: n
      until: n.status == 200
      retries: 2
      delay: 0
      ignore_errors: true
]], srv.base, key, srv.base))
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    local by = H.by_key(res)
    T.eq(by["wait-healthy"].status, "ok", "healthy in the end")
    T.eq(by["wait-healthy"].result.attempts, 3, "on the third attempt")
    T.eq(by["wait-healthy"].result.json.attempt, 3, "the server saw three requests")
    T.eq(by.never.status, "ignored", "never healthy")
    T.contains(by.never.result.msg, "still not true after 3 attempts", "says so")
end)

T.test("basic auth: the password is in no output, journal, command line or environment", function()
    local d = T.tmpdir()
    local wrap = curl_wrapper()
    local pw = "pw-" .. crypto.random_hex(8)
    local hash = crypto.sha256(pw)
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: login
      uri: { url: "%s/auth/ops/%s", url_username: ops, url_password: "%s", force_basic_auth: true }
    - id: challenge
      uri: { url: "%s/auth/ops/%s", url_username: ops, url_password: "%s" }
    - id: echoed
      uri: { url: "%s/echo", url_username: ops, url_password: "%s", force_basic_auth: true, return_content: true,
             headers: { Authorization-Extra: "Bearer tok-%s" } }
    - id: wrong
      uri: { url: "%s/auth/ops/%s", url_username: ops, url_password: "not-it-%s", force_basic_auth: true }
      ignore_errors: true
    - id: in-url
      uri: { url: "http://ops:%s@127.0.0.1:%d/auth/ops/%s", force_basic_auth: true }
      ignore_errors: true
]], srv.base, hash, pw, srv.base, hash, pw, srv.base, pw, pw, srv.base, hash, pw, pw, srv.port, hash))
    srv:clear_log()
    local r, _, res = H.run_json({ "run", book }, { env = { PATH = wrap .. ":" .. os.getenv("PATH") } })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { login = "ok", challenge = "ok", echoed = "ok", wrong = "ignored", ["in-url"] = "ok" }, "run")
    local by = H.by_key(res)
    T.contains(by.wrong.result.msg, "status 401 (expected 200)", "a refused login says so")
    T.contains(srv:log(), "GET /auth/ops/" .. hash .. " auth=no\nGET /auth/ops/" .. hash .. " auth=yes",
               "without force_basic_auth: sent after the server's challenge")
    local argv = T.read(wrap .. "/argv.log")
    T.ok(argv ~= nil, "the wrapper ran (curl came from PATH)")
    for line in argv:gmatch("[^\n]+") do T.eq(line, "-q --config -", "curl's whole command line") end
    T.not_contains(T.read(wrap .. "/env.log"), pw, "curl's environment")
    T.not_contains(r.stdout .. r.stderr, pw, "output")
    T.not_contains(r.stdout, "tok-" .. pw, "the echoed header")
    T.contains(by.echoed.result.content, "********", "the echoed Authorization is masked")
    local found = proc.run({ shell = "grep -rl -F -- '" .. pw .. "' " .. T.state .. " 2>/dev/null" })
    T.eq(found.stdout, "", "no file of the journal holds the password")
    local text = T.run({ "run", book }, { env = { PATH = wrap .. ":" .. os.getenv("PATH") } })
    T.not_contains(text.stdout .. text.stderr, pw, "text output")
    T.eq(by["in-url"].result.url, "http://ops:********@127.0.0.1:" .. srv.port .. "/auth/ops/" .. hash,
         "the URL's password masked")
end)

T.test("TLS: a self-signed certificate fails clearly unless validate_certs: false or ca_path trusts it", function()
    local d = T.tmpdir()
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: verified
      uri: { url: "%s/json" }
      ignore_errors: true
    - id: unverified
      uri: { url: "%s/json", validate_certs: false }
      register: u
    - id: trusted
      uri: { url: "%s/json", ca_path: "%s" }
]], tls.base, tls.base, tls.base, tls.cert))
    local r, _, res = H.run_json({ "run", book })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    H.expect_statuses(res, { verified = "ignored", unverified = "ok", trusted = "ok" }, "run")
    local by = H.by_key(res)
    T.contains(by.verified.result.msg, "GET " .. tls.base .. "/json: the server's certificate is not trusted",
               "the failure says why")
    T.contains(by.verified.result.msg, "validate_certs: false", "and what to do")
    T.eq(by.unverified.result.json.status, "ok", "validate_certs: false reaches the server")
end)

T.test("a redirect to another protocol is refused; the host user's ~/.curlrc is not read", function()
    local d = T.tmpdir()
    T.write(d .. "/.curlrc", 'header = "X-Injected: from-curlrc"\n')
    local book = H.book(d, string.format([[
- hosts: localhost
  steps:
    - id: to-file
      uri: { url: "%s/redirect?to=file:///etc/passwd", follow_redirects: all, return_content: true }
      ignore_errors: true
    - id: to-ftp
      uri: { url: "%s/redirect?to=ftp://127.0.0.1:%d/x", follow_redirects: all }
      ignore_errors: true
    - id: echo
      uri: { url: "%s/echo" }
      register: e
]], srv.base, srv.base, H.closed_port(), srv.base))
    local r, _, res = H.run_json({ "run", book }, { env = { HOME = d } })
    T.eq(r.rc, 0, "run: " .. r.stdout .. r.stderr)
    local by = H.by_key(res)
    T.eq(by["to-file"].status, "ignored", "the redirect to file:// fails")
    T.not_contains(r.stdout, "root:x:0:0", "no local file read")
    T.contains(by["to-file"].result.msg, "file", "says which protocol")
    T.eq(by["to-ftp"].status, "ignored", "the redirect to ftp:// fails")
    T.contains(by["to-ftp"].result.msg, 'Protocol "ftp" not supported or disabled', "refused before connecting")
    T.eq(by.echo.result.json.headers["x-injected"], nil, "~/.curlrc ignored")
end)

T.test("no curl on the host: a clear error naming the host", function()
    local d = T.tmpdir()
    local book = H.book(d, "- hosts: localhost\n  steps:\n    - id: u\n      uri: { url: \"" .. srv.base .. "/json\" }\n")
    local r, _, res = H.run_json({ "run", book }, { env = { PATH = d } })
    T.eq(r.rc, 1, "a failed host")
    T.eq(H.by_key(res).u.result.msg, "GET " .. srv.base .. "/json: curl is not installed on localhost: install curl " ..
         "there, or run the step on the controller with 'delegate_to: localhost'", "the message")
end)

T.test("bad arguments are refused at lint, naming the step", function()
    local d = T.tmpdir()
    H.lint_refuses(d, {
        { "uri: { url: 'ftp://x/y' }", "url must start with http:// or https://" },
        { "uri: { url: 'http://x/', status_code: [200, 99] }", "status_code must be HTTP status codes (100-599), not '99'" },
        { "uri: { url: 'http://x/', method: 'GET /x' }", "method must be a word" },
        { "uri: { url: 'http://x/', body_format: xml }", "argument 'body_format' must be one of raw, json, form-urlencoded" },
        { "uri: { url: 'http://x/', follow_redirects: sometimes }", "follow_redirects must be safe, all, none, true or false" },
        { "uri: { url: 'http://x/', url_password: p }", "url_password needs url_username" },
        { "uri: { url: 'http://x/', headers: { 'Bad Name': v } }", "header name 'Bad Name' is not a valid HTTP header name" },
        { "uri: { url: 'http://x/', body: { a: 1 } }", "a raw body must be text" },
        { "uri: { url: 'http://x/', timeout: 0 }", "argument 'timeout' must be more than 0 seconds" },
        { "uri: { url: 'http://x/', bodyformat: json }", "unknown argument 'bodyformat' (did you mean 'body_format'?)" },
    })
end)

T.done()
