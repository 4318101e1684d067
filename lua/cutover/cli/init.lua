-- cli: `cutover COMMAND ...`.  Each command is a file in cli/commands/;
-- options.lua parses (one table of the options run, resume, plan and
-- apply share), prepare.lua turns options into what a run needs, and
-- help.lua holds the help texts.
local util = require("cutover.util")
local engine = require("cutover.engine")
local output = require("cutover.output")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local history = require("cutover.cli.commands.history")
local plan = require("cutover.cli.commands.plan")
local prepare = require("cutover.cli.prepare")

local M = {}

M.VERSION = help.VERSION
M.absolute = prepare.absolute
M.inventory_digest = prepare.inventory_digest

local COMMANDS = {
    run = require("cutover.cli.commands.run"),
    lint = require("cutover.cli.commands.lint"),
    modules = require("cutover.cli.commands.modules"),
    doc = require("cutover.cli.commands.doc"),
    inventory = require("cutover.cli.commands.inventory"),
    history = history.history, show = history.show, unlock = history.unlock, abort = history.abort,
    report = require("cutover.cli.commands.report"),
    resume = require("cutover.cli.commands.resume"),
    plan = plan.plan, ["show-plan"] = plan.show,
    apply = require("cutover.cli.commands.apply"),
    vault = require("cutover.cli.commands.vault"),
    convert = require("cutover.cli.commands.convert"),
}

function M.main(argv)
    local first = argv[1]
    if first == nil or first == "-h" or first == "--help" or first == "help" then
        if first == "help" and argv[2] and help.text[argv[2]] then print(help.text[argv[2]]); return 0 end
        print(help.text.main)
        return first == nil and engine.EXIT_USAGE or 0
    end
    if first == "--version" or first == "version" then
        print("cutover " .. help.VERSION)
        return 0
    end
    local cmd = COMMANDS[first]
    if not cmd then
        local names = util.sorted_keys(COMMANDS)
        return options.usage_error("unknown command '" .. first .. "'" .. util.did_you_mean(first, names))
    end
    local rest = {}
    for i = 2, #argv do rest[#rest + 1] = argv[i] end
    -- A journal that cannot be read or written (a full disk, a size
    -- limit) is the operator's to fix, not a crash: say so and stop.
    local ok, code = xpcall(cmd, function(err)
        if require("cutover.journal").is_write_error(err) then return err end
        return debug.traceback(err, 2)
    end, rest)
    if ok then return code end
    if require("cutover.journal").is_write_error(code) then
        output.error(tostring(code) .. "\n" ..
            "  (is its disk full, or a file-size limit reached?  Nothing after this point was done.)")
        return engine.EXIT_FAILED
    end
    error(code, 0)
end

return M
