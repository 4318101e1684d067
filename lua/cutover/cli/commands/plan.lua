-- cutover plan PLAYBOOK -o FILE and show-plan FILE: saved check-mode
-- predictions (the work: cutover.plan).
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local prepare = require("cutover.cli.prepare")

local SHOW_PLAN_OPTS = { format = { nil, true }, help = { "h" } }

local function cmd_plan(args)
    local o, pos = options.parse(args, options.PLAN)
    if not o then return options.usage_error(pos, "plan") end
    if o.help then print(help.text.plan); return 0 end
    if #pos ~= 1 then return options.usage_error("plan needs exactly one PLAYBOOK", "plan") end
    local bad = options.check_run(o, "plan")
    if bad then return bad end
    local ev, eerr = prepare.extra_vars(o["extra-vars"])
    if not ev then options.print_errors({ eerr }); return engine.EXIT_USAGE end
    o["non-interactive"] = true  -- a dry run never stops at a gate
    return require("cutover.plan").plan(o, pos[1], ev, prepare.plan_env())
end

local function cmd_show_plan(args)
    local o, pos = options.parse(args, SHOW_PLAN_OPTS)
    if not o then return options.usage_error(pos, "show-plan") end
    if o.help then print(help.text["show-plan"]); return 0 end
    if #pos ~= 1 then return options.usage_error("show-plan needs exactly one plan FILE", "show-plan") end
    if o.format and o.format ~= "text" and o.format ~= "json" then
        return options.usage_error("--format must be text or json", "show-plan")
    end
    return require("cutover.plan").show(pos[1], o.format)
end

return { plan = cmd_plan, show = cmd_show_plan }
