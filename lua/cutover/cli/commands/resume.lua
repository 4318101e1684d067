-- cutover resume [RUN]: continue a run from the journal (the work:
-- cutover.history.resume).
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local prepare = require("cutover.cli.prepare")

local function cmd_resume(args)
    local o, pos = options.parse(args, options.RESUME)
    if not o then return options.usage_error(pos, "resume") end
    if o.help then print(help.text.resume); return 0 end
    if #pos > 1 then return options.usage_error("resume takes at most one RUN id", "resume") end
    local bad = options.check_run(o, "resume")
    if bad then return bad end
    local j = options.open_journal(o)
    if not j then return engine.EXIT_USAGE end
    local function prepare_recorded(recorded, book_path, ev)
        recorded.journal = o.journal
        return prepare.run(recorded, book_path, ev)
    end
    return require("cutover.history").resume(j, pos[1], o, prepare_recorded)
end

return cmd_resume
