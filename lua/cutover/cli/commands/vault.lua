-- cutover vault set NAME | list | rm NAME (the work: cutover.secrets.vault).
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

local VAULT_OPTS = { vault = { nil, true }, help = { "h" } }

-- cutover vault set NAME | list | rm NAME (the work: cutover.secrets.vault).
local function cmd_vault(args)
    local o, pos = options.parse(args, VAULT_OPTS)
    if not o then return options.usage_error(pos, "vault") end
    if o.help then print(help.text.vault); return 0 end
    local want = ({ set = 2, list = 1, rm = 2 })[pos[1] or ""]
    if not want then return options.usage_error("vault needs set NAME, list or rm NAME", "vault") end
    if #pos ~= want then
        return options.usage_error("usage: cutover vault " .. pos[1] .. (want == 2 and " NAME" or ""), "vault")
    end
    local vault = require("cutover.secrets.vault")
    if pos[2] and not vault.valid_name(pos[2]) then
        return options.usage_error("bad secret name '" .. pos[2] .. "': letters, digits and _, not starting with a digit", "vault")
    end
    return vault.command(pos[1], pos[2], o.vault)
end

return cmd_vault
