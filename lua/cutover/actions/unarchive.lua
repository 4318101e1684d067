-- unarchive: unpacks a tar (plain, gz, bz2, xz, zst) or zip archive into a
-- folder on the host.  A tar archive from the controller travels on tar's
-- stdin, so check mode compares it with the folder (`tar --diff`) without
-- writing anything, and the real run leaves no copy behind.
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")
local util = require("cutover.util")

local MAX_ARCHIVE_BYTES = 256 * 1024 * 1024

-- tar's flag for a compressed archive, from its name
local function tar_kind(name)
    local n = name:lower()
    if n:match("%.zip$") then return "zip" end
    if n:match("%.tar%.gz$") or n:match("%.tgz$") then return "tar", "-z" end
    if n:match("%.tar%.bz2$") or n:match("%.tbz2?$") then return "tar", "-j" end
    if n:match("%.tar%.xz$") or n:match("%.txz$") then return "tar", "-J" end
    if n:match("%.tar%.zst$") then return "tar", "--zstd" end
    if n:match("%.tar$") then return "tar", nil end
    return nil
end

local function tar_argv(verb, flag, file, dest, extra)
    local argv = { "tar", verb }
    if flag then argv[#argv + 1] = flag end
    argv[#argv + 1] = "-f"
    argv[#argv + 1] = file
    argv[#argv + 1] = "-C"
    argv[#argv + 1] = dest
    for _, x in ipairs(extra or {}) do argv[#argv + 1] = x end
    return argv
end

local function first_line(r) return ((r.stderr ~= "" and r.stderr or r.stdout):gsub("\n.*", "")) end

return {
    summary = "Unpack a tar or zip archive from the controller or the host into a folder on the host",
    description = [[
`src` is a controller file (relative to the playbook's folder) or, with
`remote_src: true`, a file on the host; `dest` is a folder on the host
that must exist.  The kind comes from the name: .tar, .tar.gz/.tgz,
.tar.bz2, .tar.xz, .tar.zst and .zip.  A tar archive is compared with the
folder first (`tar --diff`: every member's content, mode, time and link
target; not its owner) and unpacked only when something differs, owned
by the login user (`--no-same-owner`: `file` with `recurse` sets owners); from the controller it
goes on tar's stdin, so nothing else is written.  With `creates` the step
does nothing when that path exists.  A zip archive needs `unzip` on the
host; from the controller it is written to a private file and removed
after; without `creates` it is always unpacked (changed), and check mode
reports it as unknown.  `extra_opts` are added to tar's or unzip's
command line.  Controller archives over 256 MiB are refused.]],
    args = {
        src = { type = "path", required = true, doc = "the archive (controller file, or with remote_src on the host)" },
        dest = { type = "path", required = true, doc = "existing folder on the host" },
        remote_src = { type = "bool", default = false, doc = "src is on the host" },
        creates = { type = "path", doc = "do nothing when this path exists on the host" },
        extra_opts = { type = "list", default = {}, doc = "more arguments for tar or unzip" },
    },
    validate = function(args)
        if not tar_kind(args.src) then
            return "src must end in .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .tar.zst or .zip"
        end
    end,
    reads_files = function(args, dir) return args.remote_src and {} or { util.join_path(dir, args.src) } end,
    returns = { dest = "the folder", src = "the archive" },
    check_mode = "Exact for tar archives: `tar --diff` against the folder (the controller's archive on stdin), " ..
        "nothing written. A zip archive without `creates` is unknown.",
    idempotent = true,
    run = function(ctx, args)
        local conn = ctx.conn
        local result = { dest = args.dest, src = args.src, changed = false }
        if args.creates then
            local st, _, code = conn:stat(args.creates)
            if st then result.msg = args.creates .. " exists"; return result end
            if code ~= 2 and code ~= 20 then return { failed = true, msg = "creates: cannot stat " .. args.creates } end
        end
        local dst, derr = conn:stat(args.dest, true)
        if not dst then return { failed = true, msg = "dest " .. args.dest .. ": " .. tostring(derr) } end
        if dst.type ~= "directory" then return { failed = true, msg = "dest " .. args.dest .. " is not a folder" } end
        local kind, flag = tar_kind(args.src)
        local data
        if not args.remote_src then
            local path = util.join_path(ctx.playbook_dir, args.src)
            local err
            local lst = fs.stat(path, true)
            if lst and lst.size > MAX_ARCHIVE_BYTES then
                return { failed = true, msg = "src " .. path .. " is over the limit of " .. MAX_ARCHIVE_BYTES ..
                    " bytes" }
            end
            -- ctx.read_file records the file for saved plans
            data, err = (ctx.read_file or fs.read)(path)
            if not data then return { failed = true, msg = "src: " .. tostring(err) } end
        else
            local st, err = conn:stat(args.src, true)
            if not st then return { failed = true, msg = "src " .. args.src .. ": " .. tostring(err) } end
        end
        local file = args.remote_src and args.src or "-"
        if kind == "tar" then
            local d, err = conn:exec({ argv = tar_argv("--diff", flag, file, args.dest), stdin = data, timeout = 600 })
            if not d then return { failed = true, msg = err } end
            -- 0: the same; 1: differs (missing members included); 2: trouble
            if d.rc == 0 then return result end
            if d.rc ~= 1 then return { failed = true, msg = "tar --diff: " .. first_line(d) } end
            -- owners are not unpacked (--no-same-owner), so not compared
            local n = 0
            for line in (d.stdout .. "\n" .. d.stderr):gmatch("[^\n]+") do
                if not line:match(": [UG]id differs$") then n = n + 1 end
            end
            if n == 0 then return result end
            result.changed = true
            result.differences = n
            if ctx.check then result.msg = "would unpack (" .. n .. " difference(s))"; return result end
            local extra = { "--no-same-owner" }
            for _, o in ipairs(args.extra_opts) do extra[#extra + 1] = o end
            local x, xerr = conn:exec({ argv = tar_argv("-x", flag, file, args.dest, extra),
                                        stdin = data, timeout = 3600 })
            if not x then return { failed = true, msg = xerr } end
            if x.rc ~= 0 then return { failed = true, msg = "tar -x: " .. first_line(x) } end
            return result
        end
        -- zip
        if ctx.check then return { unknown = true, msg = "a zip archive is compared only by unpacking it" } end
        local archive = args.src
        if not args.remote_src then
            archive = args.dest:gsub("/+$", "") .. "/.cutover-" .. crypto.random_hex(6) .. ".zip"
            local ok, werr = conn:write_file(archive, data, 384)
            if not ok then return { failed = true, msg = werr } end
        end
        local argv = { "unzip", "-o", "-q" }
        for _, x in ipairs(args.extra_opts) do argv[#argv + 1] = x end
        argv[#argv + 1] = archive
        argv[#argv + 1] = "-d"
        argv[#argv + 1] = args.dest
        local x, xerr = conn:exec({ argv = argv, timeout = 3600 })
        if not args.remote_src then conn:exec({ argv = { "rm", "-f", "--", archive }, timeout = 60 }) end
        if not x then return { failed = true, msg = xerr } end
        if x.rc ~= 0 then
            if x.rc == 127 then return { failed = true, msg = "unzip is not installed on " .. tostring(ctx.host) } end
            return { failed = true, msg = "unzip: " .. first_line(x) }
        end
        result.changed = true
        return result
    end,
}
