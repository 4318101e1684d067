-- shell: runs a command line through /bin/sh.
local run = require("cutover.actions.lib.run")

return {
    summary = "Run a command line through /bin/sh",
    description = [[
Runs `/bin/sh -c CMD`, so pipes, redirections and expansion work.  Prefer
`command` when none of that is needed.  Fails when the exit code is not 0,
unless failed_when says otherwise.]],
    free_form = "cmd",
    args = {
        cmd = { type = "string", required = true, doc = "the shell command line" },
        chdir = { type = "path", doc = "run in this folder" },
        creates = { type = "path", doc = "skip when this path exists" },
        removes = { type = "path", doc = "skip when this path does not exist" },
        stdin = { type = "string", doc = "text fed to the command's input" },
        timeout = { type = "number", positive = true, doc = "seconds before the command is stopped (TERM, then KILL)" },
    },
    returns = run.RETURNS,
    check_mode = "Unknowable, as for command: nothing runs, unless `creates`/`removes` decide the skip.",
    run = function(ctx, args)
        return run.execute(ctx, args, { shell = args.cmd }, args.cmd)
    end,
}
