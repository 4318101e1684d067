-- command: runs a program with arguments, no shell in between.
local util = require("cutover.util")
local run = require("cutover.actions.lib.run")

return {
    summary = "Run a program with arguments, without a shell",
    description = [[
Runs a program directly: no shell, so no globbing, pipes, redirections or
variable expansion.  Text form: `command: /usr/bin/ls -l /tmp` (split into
words; single and double quotes group, backslash escapes).  Mapping form
takes `argv` (a list) or `cmd` (text).  Fails when the exit code is not 0,
unless failed_when says otherwise.  Always reported as changed when it ran,
unless changed_when says otherwise; `creates`/`removes` make it skip.]],
    free_form = "cmd",
    args = {
        cmd = { type = "string", doc = "the command line, split into words" },
        argv = { type = "list", doc = "program and arguments, one per item" },
        chdir = { type = "path", doc = "run in this folder" },
        creates = { type = "path", doc = "skip when this path exists" },
        removes = { type = "path", doc = "skip when this path does not exist" },
        stdin = { type = "string", doc = "text fed to the program's input" },
        timeout = { type = "number", positive = true, doc = "seconds before the program is stopped (TERM, then KILL)" },
    },
    one_of = { { "cmd", "argv" } },
    returns = run.RETURNS,
    check_mode = "Unknowable: the program is not run and the step is reported as \"unknown in check mode\", " ..
        "except when `creates`/`removes` already decide that it would be skipped. The preview (`would run: ...`, " ..
        "and `cmd`) shows the argv shell-quoted.",
    run = function(ctx, args)
        local argv = args.argv
        if args.cmd then
            local err
            argv, err = util.split_words(args.cmd)
            if not argv then return { failed = true, msg = "cmd: " .. err } end
            if #argv == 0 then return { failed = true, msg = "cmd is empty" } end
        end
        local shown = {}
        for i, a in ipairs(argv) do
            argv[i] = tostring(a)
            -- quoted as a shell would need it: the preview is what runs
            shown[i] = util.sh_quote(argv[i])
        end
        return run.execute(ctx, args, { argv = argv }, table.concat(shown, " "))
    end,
}
