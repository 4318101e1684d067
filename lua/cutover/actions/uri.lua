-- uri: one HTTP(S) request made from the host (curl on the host, through
-- its connection), checked against the expected status codes.  The
-- request itself is built by actions/http.lua (secrets on curl's stdin).
local json = require("cutover.core.json")
local http = require("cutover.actions.http")
local util = require("cutover.util")

-- Methods that only read: sent in check mode too.
local READS = { GET = true, HEAD = true, OPTIONS = true }

local function status_codes(list, lint)
    local out = {}
    for _, v in ipairs(list or {}) do
        if lint and type(v) == "string" and v:find("{{", 1, true) then v = 200 end
        local n = math.tointeger(tonumber(v))
        if not n or n < 100 or n > 599 then return nil, "status_code must be HTTP status codes (100-599), not '" .. tostring(v) .. "'" end
        out[#out + 1] = n
    end
    if #out == 0 then return nil, "status_code must name at least one status" end
    return out
end

local FOLLOW = { [true] = "all", [false] = "none", all = "all", yes = "all", safe = "safe", none = "none", no = "none" }

local function form_encode(t)
    local parts = {}
    local function enc(s)
        return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
    end
    for _, k in ipairs(util.sorted_keys(t)) do parts[#parts + 1] = enc(k) .. "=" .. enc(t[k]) end
    return table.concat(parts, "&")
end

-- The body as bytes and its default Content-Type; nil, message.
local function encode_body(args)
    local b, fmt = args.body, args.body_format or "raw"
    if b == nil then return nil end
    if fmt == "json" then
        if type(b) == "string" then return b, "application/json" end
        return json.encode(b), "application/json"
    elseif fmt == "form-urlencoded" then
        if type(b) == "string" then return b, "application/x-www-form-urlencoded" end
        if type(b) ~= "table" or (next(b) ~= nil and util.is_list(b)) then
            return nil, "body_format form-urlencoded needs a mapping (or text already encoded)"
        end
        return form_encode(b), "application/x-www-form-urlencoded"
    end
    if type(b) == "table" then return nil, "a raw body must be text (body_format: json sends a mapping or a list)" end
    return tostring(b)
end

local function validate(args)
    local e = http.validate(args)
    if e then return e end
    if args.method and not tostring(args.method):match("^%a+$") then
        return "method must be a word such as GET or POST, not '" .. tostring(args.method) .. "'"
    end
    if args.status_code then
        local _, serr = status_codes(args.status_code, true)
        if serr then return serr end
    end
    if args.follow_redirects ~= nil and FOLLOW[args.follow_redirects] == nil then
        return "follow_redirects must be safe, all, none, true or false"
    end
    local body, berr = encode_body(args)
    if body == nil and berr then return berr end
    if body and #body > http.MAX_BODY then
        return "body is " .. #body .. " bytes; uri sends at most " .. http.MAX_BODY .. " (use copy and a command for more)"
    end
    if body and body:find("\0", 1, true) then return "body must not hold NUL bytes" end
end

return {
    summary = "Make an HTTP(S) request from the host and check its status",
    description = [[
Sends one request from the host itself, with `curl` on the host (through
its connection: SSH, under become too, or the local one); `delegate_to:
localhost` makes it from the controller.  The step fails when the status
is not in `status_code` (default 200), with the status and the start of
the body in the message; with `until`/`retries`/`delay` it is the health
check between the batches of a rolling upgrade:

    - id: healthy
      uri: { url: "http://{{ inventory_hostname }}:8080/health", return_content: true }
      register: health
      until: health.json and health.json.status == "ok"
      retries: 30
      delay: 2

The URL, `url_password`, `headers` and `body` go to curl as a config file
on its stdin, never on a command line or in the environment;
`url_password`, a password in the URL and the values of credential-like
headers (Authorization, Cookie, names with token, key, secret, pass) are
masked in all output.  `body_format: json` sends a mapping or list as
JSON, `form-urlencoded` a mapping as a form (each with its Content-Type
unless `headers` gives one); bodies are at most 64 KiB.  Only http and
https are allowed, redirects included.  `follow_redirects`: `safe` (the
default) follows them for GET, HEAD and OPTIONS only, `all` for every
method, `none` never.  `timeout` bounds the whole request.  A JSON
response (its Content-Type says json) is decoded into `json`; the body is
returned as `content` only with `return_content: true` (at most 1 MiB,
`content_truncated` says when it was cut).  GET, HEAD and OPTIONS report
ok; other methods report changed (use `changed_when` to say otherwise).
A host without curl fails the step saying so (install curl, or use
`delegate_to: localhost`).]],
    args = {
        url = http.ARGS.url,
        method = { type = "string", default = "GET", doc = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ..." },
        body = { type = "any", doc = "the request body: text, or with body_format json/form-urlencoded a mapping" },
        body_format = { type = "string", default = "raw", choices = { "raw", "json", "form-urlencoded" },
                        doc = "how body is encoded" },
        headers = http.ARGS.headers,
        status_code = { type = "list", scalar_ok = true, default = { 200 }, doc = "the statuses that count as success (one or a list)" },
        return_content = { type = "bool", default = false, doc = "return the body as content" },
        timeout = { type = "number", positive = true, default = 30, doc = "seconds for the whole request" },
        follow_redirects = { type = "any", default = "safe", doc = "safe (GET/HEAD/OPTIONS only), all, none (or true/false)" },
        validate_certs = http.ARGS.validate_certs,
        ca_path = http.ARGS.ca_path,
        url_username = http.ARGS.url_username,
        url_password = http.ARGS.url_password,
        force_basic_auth = http.ARGS.force_basic_auth,
    },
    validate = validate,
    returns = {
        status = "the HTTP status of the (last) response",
        url = "the URL answered, after redirects (a password in it masked)",
        redirected = "whether redirects were followed",
        elapsed = "seconds the request took",
        headers = "the final response's headers (lowercase names; Set-Cookie and per-response values such as Date, Age, Expires and request or trace ids left out, so that a saved plan stays valid)",
        content_type = "its Content-Type", content_length = "its Content-Length",
        json = "the decoded body, when the response is JSON",
        content = "the body (return_content: true; at most 1 MiB)",
        content_truncated = "true when content was cut at 1 MiB",
        method = "the method sent",
    },
    check_mode = "GET, HEAD and OPTIONS are sent (they only read), so the status, the json and what depends on them are exact (`until` asks once in check mode, as for every action). Other methods are not sent: the step is unknown, its message says what it would send (method, URL, body size), and what depends on its result is decided at apply time.",
    run = function(ctx, args)
        if ctx.conn.kind == "windows" then return { failed = true, msg = "uri needs a POSIX host with curl" } end
        http.register_secrets(args)
        local verr = validate(args)
        if verr then return { failed = true, msg = verr } end
        local method = tostring(args.method):upper()
        local shown = http.display_url(args.url)
        local codes = status_codes(args.status_code)
        local body, ctype = encode_body(args)
        if ctx.check and not READS[method] then
            return { unknown = true, method = method, url = shown,
                     msg = "would send " .. method .. " " .. shown ..
                         (body and (" with a " .. #body .. "-byte body") or "") .. " (not sent in check mode)" }
        end
        local req = http.base_request(args)
        req.method, req.body, req.content_type, req.timeout = method, body, ctype, args.timeout
        req.head = method == "HEAD"
        local follow = FOLLOW[args.follow_redirects]
        req.follow = follow == "all" or (follow == "safe" and READS[method] == true)
        local res, err = http.request(ctx, req)
        if not res then
            return { failed = true, method = method, url = shown, msg = method .. " " .. shown .. ": " .. err }
        end
        local result = {
            changed = not READS[method], method = method, status = res.status, url = http.display_url(res.url),
            redirected = res.redirects > 0, elapsed = res.elapsed, headers = res.headers,
            content_type = res.headers["content-type"], content_length = tonumber(res.headers["content-length"]),
            json = http.decode_json(res),
        }
        if args.return_content then
            result.content = res.content
            result.content_truncated = res.truncated
        end
        local expected = false
        for _, c in ipairs(codes) do expected = expected or c == res.status end
        if not expected then
            result.failed = true
            local want = {}
            for i, c in ipairs(codes) do want[i] = tostring(c) end
            local start = http.excerpt(res.content)
            result.msg = method .. " " .. shown .. ": status " .. res.status .. " (expected " ..
                table.concat(want, " or ") .. ")" .. (start ~= "" and (": " .. start) or "")
            return result
        end
        result.msg = "HTTP " .. res.status
        return result
    end,
}
