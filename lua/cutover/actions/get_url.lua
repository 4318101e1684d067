-- get_url: downloads a file on the host (curl there, through the host's
-- connection) into a private temporary file beside dest, verifies it,
-- and installs it atomically with its mode, owner and group.  The request
-- is built by actions/lib/http.lua (secrets on curl's stdin); owner and group
-- are resolved by actions/lib/owner.lua, check-mode refusals by probe.lua.
local http = require("cutover.actions.lib.http")
local owner = require("cutover.actions.lib.owner")
local probe = require("cutover.actions.lib.probe")
local util = require("cutover.util")

local ALGOS = { sha256 = 64, sha1 = 40, sha512 = 128, md5 = 32 }

-- "sha256:HEX" -> "sha256", "hex" | "sha256", nil, "URL"; nil, message.
local function parse_checksum(s)
    local algo, rest = tostring(s):match("^(%w+):(.+)$")
    if not algo or not ALGOS[algo:lower()] then
        return nil, "checksum must be ALGORITHM:HEX or ALGORITHM:URL with sha256, sha1, sha512 or md5 (e.g. " ..
            "sha256:9f86d0...)"
    end
    algo = algo:lower()
    if rest:match("^[hH][tT][tT][pP][sS]?://") then return algo, nil, rest end
    if not rest:match("^%x+$") or #rest ~= ALGOS[algo] then
        return nil, "checksum " .. algo .. ":... must be " .. ALGOS[algo] .. " hex digits (or a URL of a checksum file)"
    end
    return algo, rest:lower()
end

local function validate(args)
    local e = http.validate(args)
    if e then return e end
    if args.checksum and args.checksum ~= "" then
        local ok, cerr = parse_checksum(args.checksum)
        if not ok then return cerr end
    end
end

-- The file name a URL names (its path's last part), or nil.
local function url_name(url)
    local path = tostring(url):gsub("[?#].*$", ""):match("^%a[%w+.-]*://[^/]+(/.*)$") or ""
    local name = path:match("([^/]+)$")
    if not name or name == "." or name == ".." then return nil end
    return name
end

-- The expected digest from a checksum file at `url` (fetched from the
-- host): the line naming the downloaded file, or the only digest.
local function remote_digest(ctx, args, algo, url, name)
    local req = http.base_request(args)
    req.url, req.method, req.timeout, req.follow = url, "GET", args.timeout, true
    local res, err = http.request(ctx, req)
    if not res then return nil, "checksum file " .. http.display_url(url) .. ": " .. err end
    if res.status ~= 200 then
        return nil, "checksum file " .. http.display_url(url) .. ": status " .. res.status
    end
    local only, count = nil, 0
    for line in res.content:gmatch("[^\r\n]+") do
        local hex, file = line:match("^%s*(%x+)%s+%*?(.-)%s*$")
        if not hex then hex = line:match("^%s*(%x+)%s*$") end
        if hex and #hex == ALGOS[algo] then
            count = count + 1
            only = hex:lower()
            if file and name and (file == name or file:gsub("^%./", "") == name or file:match("([^/]+)$") == name) then
                return hex:lower()
            end
        end
    end
    if count == 1 then return only end
    return nil, "checksum file " .. http.display_url(url) .. " has no " .. algo .. " line for " .. tostring(name)
end

-- Runs on the host: downloads into a private temporary file beside $1,
-- checks the status and the digest, then installs it (or keeps dest
-- when it is identical).  The temporary file is removed on every path,
-- a signal included.  $1 dest  $2 mode ("" keep)  $3 uid:gid ("" none)
-- $4 algorithm  $5 expected digest ("" none).  curl reads its config
-- (URL, credentials, headers) on stdin.  Prints "KEY value" lines.
local SCRIPT = [=[
d=$1; mode=$2; own=$3; algo=$4; want=$5
umask 077
t=$(mktemp "$d.cutover-XXXXXX") || exit 90
trap 'rm -f -- "$t"' EXIT
trap 'exit 130' HUP INT TERM
rc=0
code=$(curl -q --config - --output "$t" --write-out '%{http_code}') || rc=$?
if [ "$rc" != 0 ]; then echo "curl $rc"; exit 91; fi
if [ "$code" != 200 ]; then echo "status $code"; head -c 200 -- "$t"; exit 92; fi
got=$("${algo}sum" < "$t") || exit 93
got=${got%% *}
echo "digest $got"
echo "size $(wc -c < "$t")"
if [ -n "$want" ] && [ "$got" != "$want" ]; then exit 94; fi
if [ -f "$d" ] && cmp -s -- "$t" "$d"; then echo same; exit 0; fi
if [ -n "$mode" ]; then
  chmod "$mode" "$t" || exit 95
elif [ -e "$d" ]; then
  chmod --reference="$d" "$t" && { chown --reference="$d" "$t" 2>/dev/null || :; } || exit 95
else
  chmod 644 "$t" || exit 95
fi
if [ -n "$own" ]; then chown -- "$own" "$t" || exit 95; fi
mv -f -- "$t" "$d" || exit 96
echo installed
]=]

local function line_of(text, key)
    return (tostring(text or "")):match("\n?" .. key .. " ([^\n]*)")
end

-- Brings an existing dest's mode and owner in line (either may be nil:
-- nothing to do).  Returns true | nil, message.
local function settle(ctx, dest, mode, ids)
    if mode then
        local ok, err = ctx.conn:chmod(dest, mode)
        if not ok then return nil, err end
    end
    if ids then return owner.apply(ctx, dest, ids) end
    return true
end

-- One run: g = { dest, st (its stat or nil), shown (the URL as shown),
-- algo, want (the expected digest or nil), ids (owner and group wanted),
-- result }

-- dest, or the file the URL names in a dest folder: dest, its stat | nil,
-- the failure
local function resolve_dest(conn, url, dest)
    local st, err, code = conn:stat(dest, true)
    if not st and code ~= 2 then return nil, { failed = true, msg = tostring(err) } end
    if st and st.type == "directory" then
        local name = url_name(url)
        if not name then return nil, { failed = true, msg = dest .. " is a folder and the URL names no file" } end
        dest = dest:gsub("/+$", "") .. "/" .. name
        st, err, code = conn:stat(dest, true)
        if not st and code ~= 2 then return nil, { failed = true, msg = tostring(err) } end
        if st and st.type == "directory" then return nil, { failed = true, msg = dest .. " is a folder" } end
    end
    if st and st.type ~= "file" then return nil, { failed = true, msg = dest .. " is a " .. st.type ..
        ", not a file" } end
    return dest, st
end

-- The checksum's algorithm and expected digest (fetched when it is a
-- URL): algo, digest or nil | nil, nil, the failure
local function expected_digest(ctx, args, dest)
    local algo, want = "sha256", nil
    if args.checksum and args.checksum ~= "" then
        local sum_url
        algo, want, sum_url = parse_checksum(args.checksum)
        if sum_url then
            local derr
            want, derr = remote_digest(ctx, args, algo, sum_url, url_name(args.url))
            if not want then return nil, nil, { failed = true, msg = derr, dest = dest } end
        end
    end
    return algo, want
end

-- dest present: is a download needed?  -> true | false | nil, the failure
local function needs_download(ctx, args, g)
    local dest, result = g.dest, g.result
    local fetch = true
    if g.st then
        if g.want then
            local r, serr = ctx.conn:exec({ argv = { g.algo .. "sum", "--", dest }, timeout = 300 })
            if not r then return nil, { failed = true, msg = serr } end
            if r.rc ~= 0 then return nil, { failed = true, msg = g.algo .. "sum " .. dest .. ": " ..
                util.trim(r.stderr) } end
            local have = r.stdout:match("^(%x+)")
            fetch = have ~= g.want
            if not fetch then result.checksum = have; result.msg = "checksum matches" end
        elseif not args.force then
            fetch = false
            result.msg = "dest exists (force: false)"
        end
    end
    return fetch
end

-- No download: bring mode, owner and group in line
local function settle_only(ctx, args, g)
    local dest, st, ids, result = g.dest, g.st, g.ids, g.result
    local mode_changes = args.mode ~= nil and st.mode ~= args.mode
    local owner_changes = owner.differs(st, ids)
    result.mode = util.format_mode(args.mode or st.mode)
    if not mode_changes and not owner_changes then return result end
    result.changed = true
    if ctx.diff then
        result.diff = { path = dest,
            before_mode = mode_changes and util.format_mode(st.mode) or nil,
            after_mode = mode_changes and util.format_mode(args.mode) or nil,
            before_owner = owner_changes and owner.describe(st) or nil,
            after_owner = owner_changes and owner.describe(st, ids) or nil }
    end
    if ctx.check then
        local refused = (mode_changes and probe.refusal(ctx, dest, "owner")) or
            (owner_changes and owner.refusal(ctx, dest, ids))
        if refused then return { failed = true, msg = refused, dest = dest, diff = result.diff } end
        result.msg = mode_changes and "would change mode" or "would change owner"
        return result
    end
    local settled, serr = settle(ctx, dest, mode_changes and args.mode, owner_changes and ids)
    if not settled then return { failed = true, msg = serr, dest = dest } end
    return result
end

-- Check mode, a download needed: HEAD asks whether it would succeed
local function predict_download(ctx, args, g, req)
    local dest, st, shown, algo, want, ids, result = g.dest, g.st, g.shown, g.algo, g.want, g.ids, g.result
    local refused = probe.refusal(ctx, dest, "write")
    if refused then return { failed = true, msg = refused, dest = dest } end
    if st and not want then
        return { unknown = true, dest = dest, url = shown,
                 msg = "would download " .. shown .. " and replace " .. dest .. " if it differs" }
    end
    req.head, req.timeout = true, args.timeout + 20
    local res, herr = http.request(ctx, req)
    if not res then
        return { unknown = true, dest = dest, url = shown, msg = "HEAD " .. shown .. ": " .. herr ..
                 " (decided at apply time)" }
    end
    if res.status ~= 200 then
        return { unknown = true, dest = dest, url = shown, msg = "HEAD " .. shown .. " answered " ..
                 res.status .. " (decided at apply time)" }
    end
    local size = tonumber(res.headers["content-length"])
    result.changed = true
    result.size = size
    result.mode = util.format_mode(args.mode or (st and st.mode) or 420)
    result.msg = "would download " .. shown .. (size and (" (" .. size .. " bytes)") or "") ..
        (st and (" to replace " .. dest .. " (its checksum differs)") or (" to " .. dest))
    if ctx.diff then
        result.diff = { path = dest,
            before_state = st and (dest .. ": " .. st.size .. " bytes, " .. algo .. " differs") or "absent",
            after_state = "downloaded from " .. shown .. (size and (", " .. size .. " bytes") or "") ..
                (want and (", " .. algo .. " " .. want) or "") }
        if args.mode and (not st or st.mode ~= args.mode) then
            result.diff.before_mode = st and util.format_mode(st.mode) or nil
            result.diff.after_mode = util.format_mode(args.mode)
        end
        if ids and owner.differs(st, ids) then
            result.diff.before_owner = st and owner.describe(st) or nil
            result.diff.after_owner = owner.describe(st, ids)
        end
    end
    return result
end

-- The download script's failures, from its exit code -> the failure or nil
local function download_failure(ctx, g, r, out)
    local dest, shown, algo, want = g.dest, g.shown, g.algo, g.want
    local fail = { failed = true, dest = dest, url = shown }
    if r.interrupted then fail.msg = "interrupted (the temporary file was removed)"; fail.interrupted =
        true; return fail end
    if r.rc == 90 then fail.msg = "cannot create a temporary file beside " .. dest .. ": " ..
        util.trim(r.stderr); return fail end
    if r.rc == 91 then
        local crc = tonumber(line_of(out, "curl")) or -1
        fail.msg = "GET " .. shown .. ": " .. http.curl_failure(ctx.host, crc, r.stderr)
        return fail
    end
    if r.rc == 127 then fail.msg = http.curl_failure(ctx.host, 127, r.stderr); return fail end
    if r.rc == 92 then
        local status = line_of(out, "status") or "?"
        local body = out:gsub("^status [^\n]*\n?", "")
        local start = http.excerpt(body)
        fail.status = tonumber(status)
        fail.msg = "GET " .. shown .. ": status " .. status .. " (expected 200)" .. (start ~= "" and (": " ..
            start) or "") ..
            "; " .. dest .. " left as it was"
        return fail
    end
    local digest = line_of(out, "digest")
    if r.rc == 94 then
        fail.msg = "checksum mismatch: " .. shown .. " has " .. algo .. " " .. tostring(digest) .. ", expected " ..
            tostring(want) .. "; " .. dest .. " left as it was"
        return fail
    end
    if r.rc ~= 0 then
        fail.msg = "installing " .. dest .. " failed (step " .. r.rc .. "): " .. util.trim(r.stderr):sub(1, 300)
        return fail
    end
end

-- The download, verified and installed by SCRIPT on the host
local function download(ctx, args, g, req)
    local conn, dest, st, shown, algo, want, ids, result = ctx.conn, g.dest, g.st, g.shown, g.algo, g.want, g.ids,
        g.result
    req.read_timeout = args.timeout
    local own = ""
    if ids then own = (ids.uid and tostring(ids.uid) or "") .. (ids.gid and (":" .. ids.gid) or "") end
    ctx.progress("downloading " .. shown)
    local r, xerr = conn:exec({
        argv = { "/bin/sh", "-c", SCRIPT, "sh", dest, args.mode and string.format("%o", args.mode) or "",
                 own, algo, want or "" },
        stdin = http.config(req), timeout = 24 * 3600,
    })
    if not r then return { failed = true, msg = "GET " .. shown .. ": " .. tostring(xerr), dest = dest } end
    local out = r.stdout or ""
    local failure = download_failure(ctx, g, r, out)
    if failure then return failure end
    local digest, size = line_of(out, "digest"), tonumber(line_of(out, "size"))
    result.checksum, result.size = digest, size
    if out:find("\nsame", 1, true) or out:find("^same") then
        -- the same bytes: dest stays; its mode and owner brought in line
        local st2 = conn:stat(dest, true) or st
        local mode_changes = args.mode ~= nil and st2.mode ~= args.mode
        local owner_changes = owner.differs(st2, ids)
        result.mode = util.format_mode(args.mode or st2.mode)
        result.msg = "the download is identical to " .. dest
        local settled, serr = settle(ctx, dest, mode_changes and args.mode, owner_changes and ids)
        if not settled then return { failed = true, msg = serr, dest = dest } end
        result.changed = mode_changes or owner_changes
        return result
    end
    result.changed, result.downloaded = true, true
    result.mode = util.format_mode(args.mode or (st and st.mode) or 420)
    result.msg = "downloaded " .. tostring(size) .. " bytes"
    if ctx.diff then
        result.diff = { path = dest,
            before_state = st and (dest .. ": " .. st.size .. " bytes") or "absent",
            after_state = "downloaded from " .. shown .. ", " .. tostring(size) .. " bytes, " .. algo .. " " ..
                tostring(digest) }
    end
    return result
end

return {
    summary = "Download a file on the host from an HTTP(S) URL, checksum verified",
    description = [[
Downloads `url` on the host (with `curl` there, through its connection:
SSH, under become too, or the local one) into a private temporary file
beside `dest`, checks that the answer is 200 and, with `checksum`, the
file's digest, and only then renames it over `dest` with `mode`, `owner`
and `group` (an existing file otherwise keeps its mode and owner; a new
one gets 0644).  The temporary file is removed on every path: a failed
download, a digest mismatch (`dest` is left as it was), an interrupt.
A downloaded file identical to `dest` leaves it in place (ok).  `dest`
may be a folder: the file then takes the URL's last path part as name.

When `dest` exists it is not downloaded again if `checksum` is given and
matches it, or if no checksum is given and `force` is false (as in
Ansible); mode, owner and group are still brought in line.  `checksum` is
`sha256:HEX` (also sha1, sha512, md5), or `sha256:URL` of a checksum file
(`HEX  NAME` lines, as sha256sum prints; the line for the URL's file
name, or the only digest).  `timeout` bounds connecting and any stall of
the transfer, not a long download.  `headers`, `url_username`,
`url_password`, `force_basic_auth`, `validate_certs` and `ca_path` work as
in uri (secrets on curl's stdin, masked in all output).]],
    args = {
        url = http.ARGS.url,
        dest = { type = "path", required = true, doc = "file (or existing folder) on the host" },
        checksum = { type = "string", doc = "ALGORITHM:HEX or ALGORITHM:URL (sha256, sha1, sha512, md5)" },
        mode = { type = "mode", doc = "permission bits, e.g. '0644'" },
        owner = owner.ARGS.owner, group = owner.ARGS.group,
        force = { type = "bool", default = false, doc = "download again even when dest exists (without checksum)" },
        timeout = { type = "number", positive = true, default = 10, doc =
            "seconds to connect, and of a stalled transfer" },
        headers = http.ARGS.headers,
        url_username = http.ARGS.url_username,
        url_password = http.ARGS.url_password,
        force_basic_auth = http.ARGS.force_basic_auth,
        validate_certs = http.ARGS.validate_certs,
        ca_path = http.ARGS.ca_path,
    },
    validate = validate,
    returns = {
        dest = "the file on the host", url = "the URL (a password in it masked)",
        checksum = "sha256 of the file, when it was read (or the checksum's algorithm's digest)",
        size = "bytes downloaded", mode = "permission bits, as text ('0644')",
        downloaded = "whether the file was downloaded in this run",
    },
    check_mode = "Exact where it can be: dest present with a matching checksum, or present without checksum and " ..
        "force false, is ok (mode/owner changes predicted); otherwise the URL is asked with a HEAD request (it " ..
        "only reads): 200 predicts the download (changed), anything else makes the step unknown; dest present " ..
        "with force and no checksum is unknown (the download decides). A folder the user may not write is " ..
        "predicted as the failure it would be. Nothing is written.",
    idempotent = true,
    run = function(ctx, args)
        local conn = ctx.conn
        if conn.kind == "windows" then return { failed = true, msg = "get_url needs a POSIX host with curl" } end
        http.register_secrets(args)
        local verr = validate(args)
        if verr then return { failed = true, msg = verr } end
        local shown = http.display_url(args.url)
        local dest, st = resolve_dest(conn, args.url, args.dest)
        if not dest then return st end
        local result = { dest = dest, url = shown, changed = false, downloaded = false }
        local algo, want, failure = expected_digest(ctx, args, dest)
        if not algo then return failure end
        local ids, iderr, unknown = owner.wanted(ctx, args)
        if iderr then return { failed = not unknown, unknown = unknown and true or nil, msg = dest .. ": " ..
            iderr } end
        local g = { dest = dest, st = st, shown = shown, algo = algo, want = want, ids = ids, result = result }
        local fetch
        fetch, failure = needs_download(ctx, args, g)
        if fetch == nil then return failure end
        if not fetch then return settle_only(ctx, args, g) end
        local req = http.base_request(args)
        req.url, req.method, req.follow = args.url, "GET", true
        if ctx.check then return predict_download(ctx, args, g, req) end
        return download(ctx, args, g, req)
    end,
}
