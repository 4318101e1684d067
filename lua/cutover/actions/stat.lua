-- stat: facts about a path; never changes anything.
local util = require("cutover.util")

return {
    summary = "Read facts about a path (exists, type, mode, size, checksum)",
    description = [[
Returns `stat` with `exists`, `type` (file, directory, link, other),
`isdir`, `isreg`, `mode` ('0644'), `size`, `mtime`, `uid`, `gid` and, for a
regular file when `checksum` is true (the default), `checksum` (sha256).
Never changes anything and never fails because the path is missing.]],
    args = {
        path = { type = "path", required = true, doc = "the path on the host" },
        follow = { type = "bool", default = false, doc = "follow a final symlink" },
        checksum = { type = "bool", default = true, doc = "compute the sha256 of a regular file" },
    },
    returns = { stat = "table described above" },
    check_mode = "Runs as usual: a read-only probe.",
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local st, err, code = ctx.conn:stat(args.path, args.follow)
        if not st then
            if code == 2 or code == 20 then return { changed = false, stat = { exists = false } } end
            return { failed = true, msg = err }
        end
        local out = { exists = true, type = st.type, isdir = st.type == "directory",
                      isreg = st.type == "file", islnk = st.type == "link",
                      mode = util.format_mode(st.mode), size = st.size,
                      mtime = st.mtime, uid = st.uid, gid = st.gid }
        if args.checksum and st.type == "file" then out.checksum = ctx.conn:sha256(args.path) end
        return { changed = false, stat = out }
    end,
}
