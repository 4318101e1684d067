-- cutover report RUN -o FILE: a run as one HTML (or JSON) file
-- (the work: cutover.report).
local engine = require("cutover.engine")
local output = require("cutover.output")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

local REPORT_OPTS = { journal = { nil, true }, format = { nil, true }, output = { "o", true },
                      help = { "h" } }

local function cmd_report(args)
    local o, pos = options.parse(args, REPORT_OPTS)
    if not o then return options.usage_error(pos, "report") end
    if o.help then print(help.text.report); return 0 end
    if #pos ~= 1 then return options.usage_error("report needs exactly one RUN id (see 'cutover history')", "report") end
    if not o.output then return options.usage_error("report needs -o FILE (- for stdout)", "report") end
    local fmt = o.format or "html"
    if fmt ~= "html" and fmt ~= "json" then return options.usage_error("--format must be html or json", "report") end
    local j = options.open_journal(o)
    if not j then return engine.EXIT_USAGE end
    local ok, err = require("cutover.report").write(j, pos[1], o.output, fmt)
    if not ok then
        output.error(err)
        return engine.EXIT_USAGE
    end
    return 0
end

return cmd_report
