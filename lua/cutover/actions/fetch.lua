-- fetch: pulls one file from the host into a folder on the controller,
-- verified against the host's own sha256.
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")
local util = require("cutover.util")
local localconn = require("cutover.connection.local")

-- Bytes of one fetched file (held in memory between read and write).
local MAX_FETCH_BYTES = 256 * 1024 * 1024

-- Where the file lands: DEST/HOST/SRC, or with flat DEST (DEST/ + the
-- file's name when DEST ends in a slash).  nil, message when SRC or the
-- host's name would leave DEST.
local function local_path(ctx, args)
    local dest = util.join_path(ctx.playbook_dir or ".", args.dest)
    if args.flat then
        if dest:sub(-1) == "/" then return dest .. (args.src:match("([^/\\]+)$") or "") end
        return dest
    end
    local host = tostring(ctx.host)
    if host == "" or host == "." or host == ".." or host:find("[/\\]") then
        return nil, "host name '" .. host .. "' cannot be a folder name (use flat: true)"
    end
    local rel = args.src:gsub("\\", "/"):gsub("^%a:", ""):gsub("^/+", "")
    for part in rel:gmatch("[^/]+") do
        if part == ".." then return nil, "src " .. args.src .. " has a '..' part (use flat: true)" end
    end
    return dest:gsub("/+$", "") .. "/" .. host .. "/" .. rel
end

return {
    summary = "Copy a file from the host to the controller, checksum verified",
    description = [[
Reads `src` on the host and writes it on the controller under `dest`
(relative to the playbook's folder): as `DEST/HOST/SRC` (one folder per
host, the host's path below it), or with `flat: true` as `dest` itself
(`dest` ending in `/`: the file keeps its name there).  The file is
fetched only when the controller's copy differs from the host's sha256,
and the bytes that arrive are checked against it (a file that changes
during the transfer fails the step).  A missing `src` fails the step
unless `fail_on_missing: false`.  Files over 256 MiB are refused.]],
    args = {
        src = { type = "path", required = true, doc = "the file on the host" },
        dest = { type = "path", required = true, doc = "folder (or with flat, file) on the controller" },
        flat = { type = "bool", default = false, doc = "dest is the file, not a folder per host" },
        fail_on_missing = { type = "bool", default = true, doc = "a missing src fails the step" },
    },
    returns = { dest = "the controller file", checksum = "sha256 of the file", size = "bytes" },
    check_mode = "Exact: compares the host's sha256 with the controller's copy and reports whether it would " ..
        "fetch; writes nothing.",
    idempotent = true,
    run = function(ctx, args)
        local conn = ctx.conn
        local dest, derr = local_path(ctx, args)
        if not dest then return { failed = true, msg = derr } end
        local st, err, code = conn:stat(args.src, true)
        if not st then
            if code == 2 or code == 20 then
                if args.fail_on_missing then
                    return { failed = true, msg = args.src .. " does not exist on " .. tostring(ctx.host) }
                end
                return { changed = false, msg = args.src .. " does not exist (fail_on_missing: false)" }
            end
            return { failed = true, msg = err }
        end
        if st.type ~= "file" then return { failed = true, msg = args.src .. " is a " .. st.type .. ", not a file" } end
        if st.size > MAX_FETCH_BYTES then
            return { failed = true, msg = args.src .. " is " .. st.size .. " bytes, over the limit of " ..
                     MAX_FETCH_BYTES .. " for fetch" }
        end
        local remote_sum, serr = conn:sha256(args.src)
        if not remote_sum then return { failed = true, msg = serr } end
        local result = { dest = dest, checksum = remote_sum, size = st.size, changed = false }
        local lst = fs.stat(dest)
        if lst and lst.type ~= "file" then return { failed = true, msg = dest .. " on the controller is a " ..
            lst.type } end
        if lst and fs.sha256(dest) == remote_sum then return result end
        result.changed = true
        if ctx.check then
            result.msg = lst and "would fetch (the controller's copy differs)" or "would fetch"
            return result
        end
        local data, rerr = conn:read_file(args.src, MAX_FETCH_BYTES)
        if not data then return { failed = true, msg = rerr } end
        if crypto.sha256(data) ~= remote_sum then
            return { failed = true, msg = args.src ..
                " changed during the transfer (its checksum differs); nothing written" }
        end
        local ok, merr = localconn.new():mkdir_p(util.dirname(dest), 493)
        if not ok then return { failed = true, msg = merr } end
        local wok, werr = fs.write(dest, data, 420)
        if not wok then return { failed = true, msg = werr } end
        return result
    end,
}
