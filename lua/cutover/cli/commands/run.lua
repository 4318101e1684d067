-- cutover run PLAYBOOK [OPTIONS]: a run (the work: cutover.engine).
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local prepare = require("cutover.cli.prepare")

local function cmd_run(args)
    local o, pos = options.parse(args, options.RUN)
    if not o then return options.usage_error(pos, "run") end
    if o.help then print(help.text.run); return 0 end
    if #pos ~= 1 then return options.usage_error("run needs exactly one PLAYBOOK", "run") end
    local bad = options.check_run(o, "run")
    if bad then return bad end
    if o.report and o["no-journal"] then
        return options.usage_error("--report reads the run from the journal: it cannot go with --no-journal", "run")
    end
    local ev, eerr = prepare.extra_vars(o["extra-vars"])
    if not ev then options.print_errors({ eerr }); return engine.EXIT_USAGE end
    local book, inv, opts = prepare.run(o, pos[1], ev)
    if not book then return inv end
    return engine.run(book, inv, opts)
end

return cmd_run
