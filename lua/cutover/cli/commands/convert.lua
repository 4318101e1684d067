-- cutover convert ansible PLAYBOOK [-o OUT] (docs/convert.md).
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

-- cutover convert ansible PLAYBOOK [-o OUT] (the work: cutover.convert.ansible)
local CONVERT_OPTS = { output = { "o", true }, help = { "h" } }
local function cmd_convert(args)
    local o, pos = options.parse(args, CONVERT_OPTS)
    if not o then return options.usage_error(pos, "convert") end
    if o.help then print(help.text.convert); return 0 end
    if pos[1] ~= "ansible" then return options.usage_error("convert needs a source format: convert ansible PLAYBOOK", "convert") end
    if #pos ~= 2 then return options.usage_error("convert ansible needs exactly one PLAYBOOK", "convert") end
    return require("cutover.convert.ansible").main(pos[2], o.output)
end

return cmd_convert
