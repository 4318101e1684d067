-- copy: puts a file on the host from literal content or a controller file.
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local content = require("cutover.actions.lib.content")

return {
    summary = "Write a file from literal content or from a file on the controller",
    description = [[
Makes `dest` hold exactly the given bytes: `content` (text in the
playbook) or `src` (a file on the controller, relative to the playbook's
folder).  The file is replaced atomically and only when its checksum
differs; `mode` is applied when given (octal, e.g. '0644'), otherwise an
existing file keeps its mode and a new one gets 0644.  `owner` and
`group` (names resolved on the host, or numbers) are applied too; an
existing file otherwise keeps its owner and group where the login user
may set them.  `validate` (a command with `%s`, e.g. `visudo -cf %s`) must
accept the new content before it replaces the old: in check mode it reads
the content on `/dev/stdin`, for real a private file beside `dest`.
`backup: true` keeps the old file as `DEST.YYYYMMDD-HHMMSS~`.  With --diff
the change is shown as a unified diff.]],
    args = {
        dest = { type = "path", required = true, doc = "file to write on the host" },
        content = { type = "string", doc = "the file's content" },
        src = { type = "path", doc = "controller file to copy (relative to the playbook)" },
        mode = { type = "mode", doc = "permission bits, e.g. '0644'" },
        owner = content.ARGS.owner, group = content.ARGS.group,
        backup = content.ARGS.backup, validate = content.ARGS.validate,
    },
    one_of = { { "content", "src" } },
    validate = content.validate_args,
    returns = content.RETURNS,
    check_mode = "Exact: compares checksums and modes and reports the change it would make (with a diff under " ..
        "--diff); writes nothing. A change the login user may not make (a folder it cannot write, or whose " ..
        "nearest existing parent it cannot write; a file it does not own for a mode change) is predicted as the " ..
        "failure it would be, asked of the host with `test -w`.",
    reads_files = function(args, dir) return args.src and { util.join_path(dir, args.src) } or {} end,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local data = args.content
        if args.src then
            local err
            -- ctx.read_file records the file for saved plans
            data, err = (ctx.read_file or fs.read)(util.join_path(ctx.playbook_dir, args.src))
            if not data then return { failed = true, msg = "src: " .. err } end
        end
        return content.ensure(ctx, args.dest, data, args.mode, args)
    end,
}
