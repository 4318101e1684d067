-- windows.parse: parsers for what the Windows 2000 tools print
-- (contract: ../shared/targets/windows2000-exchange55.md, section 4), and
-- the secedit INF reader and writer.
--
-- Tolerance: CRLF, LF or CR line endings, trailing spaces and tabs,
-- blank lines, spaces or tabs between a key and its ':' are all
-- accepted.  Anything else unexpected is reported: every parser returns
-- a table, or nil and a message naming the tool, the line number and
-- the line ("sc qc: line 4: START_TYPE: expected '<number> <name>', got
-- 'bogus'").  A parser never raises on any input (strings of any bytes);
-- a non-string input gives nil, message.  Values are never reformatted
-- beyond trimming.
--
-- One file per tool: sc.lua, net.lua, inf.lua (secedit), dumpel.lua;
-- `set` here; common.lua has what they share.
local common = require("cutover.windows.parse.common")
local is_blank, check_text, fail = common.is_blank, common.check_text, common.fail

local M = {}

M.lines, M.show = common.lines, common.show

-- (one require per line: require also returns where the module came from,
-- which a call last in a table constructor would add to the list)
local sc = require("cutover.windows.parse.sc")
local net = require("cutover.windows.parse.net")
local inf = require("cutover.windows.parse.inf")
local dumpel = require("cutover.windows.parse.dumpel")
for _, part in ipairs({ sc, net, inf, dumpel }) do
    for k, f in pairs(part) do M[k] = f end
end

-- Other names for the same parsers.
M.net_result = M.net_service
M.secedit_inf = M.inf

-- ---------------------------------------------------------------- set

-- env(text) -> { NAME = value } from the output of `set` (names as
-- printed; lookups should be case-insensitive) | nil, message.
function M.env(text)
    local ok, err = check_text("set", text)
    if not ok then return nil, err end
    local env = {}
    for n, line in ipairs(M.lines(text)) do
        if not is_blank(line) then
            local k, v = line:match("^([^=]+)=(.*)$")
            if not k then return fail("set", n, line, "expected NAME=value, got") end
            env[k] = v
        end
    end
    return env
end

return M
