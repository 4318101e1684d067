-- Shared by uri and get_url: one HTTP(S) request made on the host with
-- curl, through the host's connection (local, SSH, under become too).
-- (Not an action: not listed in actions/init.lua.)
--
-- Everything that may be secret (the URL, the password, the headers, the
-- body) goes to curl as a config file on its stdin (`curl -q --config -`),
-- never on its command line (`ps` shows it to every user of the host) nor
-- in its environment.  `-q` first keeps the host user's ~/.curlrc out.
-- Only http and https are allowed, for redirects too.
local crypto = require("cutover.core.crypto")
local json = require("cutover.core.json")
local redact = require("cutover.secrets.redact")
local vault = require("cutover.core.vault")
local util = require("cutover.util")

local M = {}

-- Bytes of response body kept (content, json); the rest is read and
-- dropped, and the result says it was cut.
M.MAX_CONTENT = 1024 * 1024
-- curl reads a config line of at most 100 KiB: the body travels in one.
M.MAX_BODY = 64 * 1024

M.ARGS = {
    url = { type = "string", required = true, doc = "http:// or https:// URL, requested from the host" },
    headers = { type = "dict", default = {}, doc = "request headers (NAME: value); values of Authorization, Cookie and *token*/*key*/*secret* headers are masked in output" },
    url_username = { type = "string", doc = "user for HTTP authentication" },
    url_password = { type = "string", doc = "its password (sent to curl on stdin; masked in all output)" },
    force_basic_auth = { type = "bool", default = false, doc = "send Basic credentials with the first request instead of waiting for the server's 401 challenge" },
    validate_certs = { type = "bool", default = true, doc = "verify the server's TLS certificate (false: for test hosts only)" },
    ca_path = { type = "path", doc = "a CA bundle file on the host to verify the server against" },
}

local SECRET_HEADER = { "auth", "cookie", "token", "key", "secret", "pass", "session" }

-- The lint-time checks of the shared arguments; nil or the message.
function M.validate(args)
    local url = args.url
    if type(url) == "string" and not url:find("{{", 1, true) then
        if not url:match("^[hH][tT][tT][pP][sS]?://[^/%s]") then
            return "url must start with http:// or https:// (got '" .. M.display_url(url) .. "')"
        end
        if url:find("[%c%s]") then return "url must not hold spaces or control characters" end
    end
    for name, v in pairs(args.headers or {}) do
        if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+%-.^_`|~]+$") then
            return "header name '" .. tostring(name) .. "' is not a valid HTTP header name"
        end
        if type(v) == "table" then return "header '" .. name .. "' must have a text value" end
        if tostring(v):find("[\r\n\0]") then return "header '" .. name .. "' must be one line" end
    end
    if args.url_username and tostring(args.url_username):find("[:%c]") then
        return "url_username must not hold ':' or control characters"
    end
    if args.url_password and not args.url_username then return "url_password needs url_username" end
    if args.url_password and tostring(args.url_password):find("[\r\n\0]") then
        return "url_password must be one line"
    end
end

-- The URL as shown: a password in it replaced by the mask.
function M.display_url(url)
    return (tostring(url):gsub("^(%a[%w+.-]*://[^/@:]*):[^/@]*@", "%1:" .. redact.MASK .. "@"))
end

-- Registers the values that must never be shown: the password, a
-- password inside the URL, and the values of credential-like headers.
function M.register_secrets(args)
    if args.url_password and args.url_password ~= "" then
        redact.register(tostring(args.url_password))
        -- the Authorization header curl makes of it (a server may echo it)
        redact.register(vault.to_base64(tostring(args.url_username) .. ":" .. tostring(args.url_password)))
    end
    local inurl = tostring(args.url or ""):match("^%a[%w+.-]*://[^/@:]*:([^/@]+)@")
    if inurl then redact.register(inurl) end
    for name, v in pairs(args.headers or {}) do
        local n = tostring(name):lower()
        for _, w in ipairs(SECRET_HEADER) do
            if n:find(w, 1, true) then
                local s = tostring(v)
                redact.register(s)
                -- "Bearer TOKEN", "Basic B64": the credential alone too
                local cred = s:match("^%a+%s+(%S+)$")
                if cred and #cred >= 8 then redact.register(cred) end
                break
            end
        end
    end
end

-- A value as a quoted string of curl's config syntax.
local ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\v"] = "\\v" }
local function cq(s)
    s = tostring(s)
    assert(not s:find("\0", 1, true), "a NUL byte cannot go to curl")
    return '"' .. s:gsub('[\\"\n\r\t\v]', ESC) .. '"'
end

local function lowered(t)
    local out = {}
    for k, v in pairs(t or {}) do out[tostring(k):lower()] = tostring(v) end
    return out
end

-- The config text for curl.  req: url, method (GET ...), headers (NAME ->
-- value), body (text or nil), content_type (default for a body), user,
-- password, basic (force Basic), insecure, ca_path, follow (bool),
-- timeout (whole request) or read_timeout (connect + stalled transfer),
-- head (HEAD request), dump (write headers to stdout), write_out.
function M.config(req)
    local lines = {
        "silent", "show-error", "globoff",
        "proto = " .. cq("=http,https"), "proto-redir = " .. cq("=http,https"),
        "url = " .. cq(req.url),
        -- no "Expect: 100-continue" wait before a body
        "header = " .. cq("Expect:"),
    }
    local function add(s) lines[#lines + 1] = s end
    if req.head then
        add("head")
    else
        add("request = " .. cq(req.method or "GET"))
        if req.dump then add("dump-header = " .. cq("-")) end
    end
    local have = lowered(req.headers)
    for _, name in ipairs(util.sorted_keys(req.headers or {})) do
        add("header = " .. cq(tostring(name) .. ": " .. tostring(req.headers[name])))
    end
    if req.body then
        if req.content_type and not have["content-type"] then
            add("header = " .. cq("Content-Type: " .. req.content_type))
        end
        add("data-raw = " .. cq(req.body))
    end
    if req.user then
        add("user = " .. cq(req.user .. ":" .. (req.password or "")))
        add(req.basic and "basic" or "anyauth")
    end
    if req.insecure then add("insecure") end
    if req.ca_path then add("cacert = " .. cq(req.ca_path)) end
    if req.follow then add("location"); add("max-redirs = 10") end
    if req.timeout then
        add("max-time = " .. string.format("%d", math.max(1, math.ceil(req.timeout))))
    end
    if req.read_timeout then
        local t = string.format("%d", math.max(1, math.ceil(req.read_timeout)))
        add("connect-timeout = " .. t)
        add("speed-limit = 1")
        add("speed-time = " .. t)
    end
    if req.write_out then add("write-out = " .. cq(req.write_out)) end
    return table.concat(lines, "\n") .. "\n"
end

-- curl's exit codes worth a sentence of their own
local CURL_WHY = {
    [6] = "cannot resolve the host name",
    [7] = "cannot connect",
    [28] = "timed out",
    [35] = "TLS handshake failed",
    [47] = "too many redirects",
    [51] = "the certificate does not match the host name",
    [60] = "the server's certificate is not trusted",
    [77] = "cannot read the CA bundle",
}

-- The failure text for a curl exit status and its stderr.
function M.curl_failure(host, rc, stderr)
    if rc == 127 then
        return "curl is not installed on " .. tostring(host) ..
            ": install curl there, or run the step on the controller with 'delegate_to: localhost'"
    end
    local line = util.trim(tostring(stderr or "")):match("[^\n]*") or ""
    local why = CURL_WHY[rc]
    local msg = (why and (why .. " (" .. line .. ")") or (line ~= "" and line or ("curl exit code " .. rc)))
    if rc == 60 or rc == 51 then
        msg = msg .. "; give ca_path, or validate_certs: false for a test host"
    end
    return msg
end

-- Response headers left out of results: secrets (Set-Cookie) and values
-- that change with every response, which would make a saved plan's
-- prediction stale although nothing on the host moved.
local DROP = { ["set-cookie"] = true, ["set-cookie2"] = true, date = true, age = true, expires = true,
               ["keep-alive"] = true, connection = true, ["cf-ray"] = true, ["x-runtime"] = true,
               ["x-response-time"] = true, ["server-timing"] = true, traceparent = true, tracestate = true,
               ["x-amz-id-2"] = true, nel = true, ["report-to"] = true }
local function volatile(name)
    return DROP[name] or name:find("request%-?id$") ~= nil or name:find("correlation%-?id$") ~= nil or
        name:find("trace", 1, true) ~= nil
end

-- Parses the header blocks at the start of out: `finals` final
-- responses (1xx interim answers and a proxy's CONNECT answer skipped).
-- Returns the last block's headers (lowercase names) and where the body
-- starts.
local function parse_headers(out, finals, connect)
    local pos, last = 1, {}
    local seen, skipped_connect = 0, not connect
    while seen < finals and out:sub(pos, pos + 4) == "HTTP/" do
        local e, after = out:find("\r?\n\r?\n", pos)
        if not e then break end
        local block = out:sub(pos, e)
        pos = after + 1
        local code = tonumber(block:match("^HTTP/%S+%s+(%d%d%d)"))
        if code and code >= 200 then
            if not skipped_connect then
                skipped_connect = true
            else
                seen = seen + 1
                last = {}
                local n = 0
                for line in block:gmatch("[^\r\n]+") do
                    local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
                    if k then k = k:lower() end
                    if k and n < 100 and not volatile(k) then
                        n = n + 1
                        last[k] = last[k] and (last[k] .. ", " .. v) or v
                    end
                end
            end
        end
    end
    return last, pos
end

-- Makes one request on the host.  Returns a table: status, url (after
-- redirects), elapsed (s), redirects, headers (final response, lowercase
-- names, Set-Cookie and per-response values left out), content (at most MAX_CONTENT bytes),
-- truncated | nil, message.
function M.request(ctx, req)
    local conn = ctx.conn
    if conn.kind == "windows" then return nil, "requests are made with curl on POSIX hosts" end
    local mark = "__cutover_http_" .. crypto.random_hex(6) .. "="
    req.dump = not req.head
    req.write_out = "%{stderr}\n" .. mark ..
        "%{http_code} %{http_connect} %{num_redirects} %{time_total} %{url_effective}\n"
    local r, err = conn:exec({ argv = { "curl", "-q", "--config", "-" }, stdin = M.config(req),
                               timeout = (req.timeout or 60) + 30, max_output = M.MAX_CONTENT + 256 * 1024 })
    if not r then
        -- the local connection cannot start a program it cannot find
        if tostring(err):find("cannot run 'curl'", 1, true) then return nil, M.curl_failure(ctx.host, 127) end
        return nil, err
    end
    local stderr = r.stderr or ""
    local i = stderr:find("\n" .. mark, 1, true)
    local info = i and stderr:sub(i + 1 + #mark) or ""
    local before = i and stderr:sub(1, i - 1) or stderr
    if r.interrupted then return nil, "interrupted" end
    if r.timed_out then return nil, "no answer within " .. math.floor((req.timeout or 60) + 30) .. " s" end
    if r.rc ~= 0 then return nil, M.curl_failure(ctx.host, r.rc, before) end
    local code, connect, redirects, elapsed, url = info:match("^(%d+) (%d+) (%d+) (%S+) (%S*)")
    if not code then return nil, "curl printed no status: " .. util.trim(before):sub(1, 300) end
    local headers, body_at = parse_headers(r.stdout, tonumber(redirects) + 1, connect ~= "000")
    local content = req.head and "" or r.stdout:sub(body_at)
    local truncated = r.stdout_truncated or #content > M.MAX_CONTENT
    if #content > M.MAX_CONTENT then content = content:sub(1, M.MAX_CONTENT) end
    return {
        status = tonumber(code), url = url, redirects = tonumber(redirects),
        elapsed = math.floor((tonumber(elapsed) or 0) * 1000 + 0.5) / 1000,
        headers = headers, content = content, truncated = truncated or nil,
    }
end

-- The decoded body when the response says it is JSON (nil otherwise).
function M.decode_json(res)
    local ct = (res.headers["content-type"] or ""):lower()
    if res.truncated or not (ct:find("json", 1, true)) then return nil end
    local v = json.decode(res.content)
    return v
end

-- The start of a body for an error message: one line, printable.
function M.excerpt(content, n)
    local s = tostring(content or ""):sub(1, n or 200):gsub("[%c]+", " ")
    return util.trim(s)
end

-- The request as args give it (shared argument names).
function M.base_request(args)
    return {
        url = args.url, headers = args.headers,
        user = args.url_username, password = args.url_password, basic = args.force_basic_auth,
        insecure = args.validate_certs == false, ca_path = args.ca_path,
    }
end

return M
