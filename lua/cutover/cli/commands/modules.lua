-- cutover modules: every action with its summary.
local actions = require("cutover.actions")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

local NO_OPTS = { help = { "h" } }

local function cmd_modules(args)
    local o, pos = options.parse(args, NO_OPTS)
    if not o then return options.usage_error(pos, "modules") end
    if o.help then print(help.text.modules); return 0 end
    for _, name in ipairs(actions.names()) do
        print(string.format("%-10s  %s", name, actions.get(name).summary))
    end
    return 0
end

return cmd_modules
