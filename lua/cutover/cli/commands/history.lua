-- cutover history | show RUN | unlock HOST | abort RUN: the journal's
-- commands (the work: cutover.history).
local engine = require("cutover.engine")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

local M = {}

local JOURNAL_OPTS = { journal = { nil, true }, format = { nil, true }, help = { "h" },
                       limit = { "n", true } }

-- history, show, unlock, abort: parse, open the journal, hand over.
local function journal_command(name, nargs, usage, fn)
    return function(args)
        local o, pos = options.parse(args, JOURNAL_OPTS)
        if not o then return options.usage_error(pos, name) end
        if o.help then print(help.text[name]); return 0 end
        if #pos ~= nargs then return options.usage_error(usage, name) end
        local j = options.open_journal(o)
        if not j then return engine.EXIT_USAGE end
        return fn(require("cutover.history"), j, o, pos)
    end
end

M.history = journal_command("history", 0, "history takes no arguments",
    function(h, j, o) return h.history(j, o.format, o.limit and tonumber(o.limit)) end)
M.show = journal_command("show", 1, "show needs a RUN id (see 'cutover history')",
    function(h, j, o, pos) return h.show(j, pos[1], o.format) end)

M.unlock = journal_command("unlock", 1, "unlock needs a HOST",
    function(h, j, _, pos) return h.unlock(j, pos[1]) end)
M.abort = journal_command("abort", 1, "abort needs a RUN id",
    function(h, j, _, pos) return h.abort(j, pos[1]) end)

return M
