-- cutover inventory --list | --graph [GROUP] | --host HOST (the shapes:
-- cutover.inventory.render).
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")
local prepare = require("cutover.cli.prepare")

local INVENTORY_OPTS = { inventory = { "i", true }, list = {}, graph = {}, host = { nil, true }, help = { "h" } }

local function cmd_inventory(args)
    local o, pos = options.parse(args, INVENTORY_OPTS)
    if not o then return options.usage_error(pos, "inventory") end
    if o.help then print(help.text.inventory); return 0 end
    local n = (o.list and 1 or 0) + (o.graph and 1 or 0) + (o.host and 1 or 0)
    if n ~= 1 then return options.usage_error("inventory needs one of --list, --graph [GROUP] or --host HOST", "inventory") end
    if #pos > (o.graph and 1 or 0) then return options.usage_error("unexpected argument '" .. pos[#pos] .. "'", "inventory") end
    local inv, ierr = prepare.load_inventory(o.inventory)
    if not inv then options.print_errors({ ierr }); return engine.EXIT_USAGE end
    local text, err
    if o.list then text = inv:list_json()
    elseif o.graph then text, err = inv:graph(pos[1])
    else text, err = inv:host_json(o.host) end
    if not text then return options.usage_error(err, "inventory") end
    io.stdout:write(text)
    return 0
end

return cmd_inventory
