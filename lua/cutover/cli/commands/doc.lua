-- cutover doc ACTION | --all: an action's documentation (cutover.docs).
local actions = require("cutover.actions")
local docs = require("cutover.docs")
local util = require("cutover.util")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

local DOC_OPTS = { all = {}, format = { nil, true }, help = { "h" } }

local function cmd_doc(args)
    local o, pos = options.parse(args, DOC_OPTS)
    if not o then return options.usage_error(pos, "doc") end
    if o.help then print(help.text.doc); return 0 end
    local fmt = o.format or "text"
    if fmt ~= "text" and fmt ~= "markdown" then return options.usage_error("--format must be text or markdown", "doc") end
    local names = pos
    if o.all then names = actions.names() end
    if #names == 0 then return options.usage_error("doc needs an ACTION (see 'cutover modules')", "doc") end
    for i, name in ipairs(names) do
        if not actions.exists(name) then
            return options.usage_error("no action '" .. name .. "'" .. util.did_you_mean(name, actions.names()), "doc")
        end
        if i > 1 then io.stdout:write("\n") end
        io.stdout:write(docs.action(name, fmt))
    end
    return 0
end

return cmd_doc
