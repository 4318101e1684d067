-- cutover lint PLAYBOOK [-i INVENTORY [-e VARS]]: the whole check, nothing
-- runs (the inventory checks: cutover.lint).
local playbook = require("cutover.load.playbook")
local lint = require("cutover.lint")
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local prepare = require("cutover.cli.prepare")

local LINT_OPTS = options.pick({ "inventory", "extra-vars", "help" })

local function cmd_lint(args)
    local o, pos = options.parse(args, LINT_OPTS)
    if not o then return options.usage_error(pos, "lint") end
    if o.help then print(help.text.lint); return 0 end
    if #pos ~= 1 then return options.usage_error("lint needs exactly one PLAYBOOK", "lint") end
    local book, errs = playbook.load(pos[1])
    if not book then options.print_errors(errs); return engine.EXIT_USAGE end
    if o.inventory then
        local inv, ierr = prepare.load_inventory(o.inventory)
        if not inv then options.print_errors({ ierr }); return engine.EXIT_USAGE end
        local extra, eerr = prepare.extra_vars(o["extra-vars"])
        if not extra then return options.usage_error(eerr, "lint") end
        local problems = lint.check(book, inv, extra)
        if #problems > 0 then options.print_errors(problems); return engine.EXIT_USAGE end
    end
    print(string.format("%s: ok (%d play%s, %d step%s)", pos[1], #book.plays,
        #book.plays == 1 and "" or "s", book.step_count, book.step_count == 1 and "" or "s"))
    return 0
end

return cmd_lint
