-- cutover apply FILE: run a saved plan (the work: cutover.plan.apply).
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local prepare = require("cutover.cli.prepare")

local function cmd_apply(args)
    local o, pos = options.parse(args, options.APPLY)
    if not o then return options.usage_error(pos, "apply") end
    if o.help then print(help.text.apply); return 0 end
    if #pos ~= 1 then return options.usage_error("apply needs exactly one plan FILE", "apply") end
    local bad = options.check_run(o, "apply")
    if bad then return bad end
    if not o["no-journal"] then
        -- a damaged journal is refused before anything runs
        local j = options.open_journal(o)
        if not j then return engine.EXIT_USAGE end
        local ok = require("cutover.history").verified(j, "apply a plan with it")
        j:close()
        if not ok then return engine.EXIT_REFUSED end
    end
    return require("cutover.plan").apply(pos[1], o, prepare.plan_env())
end

return cmd_apply
