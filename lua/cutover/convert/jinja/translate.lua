-- convert.jinja.translate: one Jinja expression as Lua text: a value, a
-- condition, or a value rendered into text.
local parse = require("cutover.convert.jinja.parser")
local E = require("cutover.convert.jinja.emitter")

local M = {}

-- mode: "value", "condition", or "text" (rendered into text: Jinja
-- writes a boolean as True/False, Lua as true/false)
local function run(src, ctx, mode)
    local ok, out = pcall(function()
        local tree = parse(src)
        local e = setmetatable({ ctx = ctx or {} }, E)
        if mode == "condition" then return e:cond(tree) end
        if mode == "text" and e:is_bool(tree) then
            return "(" .. e:emit(tree) .. ") and 'True' or 'False'"
        end
        return e:emit(tree)
    end)
    if ok then return out end
    if type(out) == "table" and out.convert then return nil, out.convert end
    error(out, 0)
end

function M.expr(src, ctx) return run(src, ctx, "value") end
function M.text_expr(src, ctx) return run(src, ctx, "text") end
function M.condition(src, ctx)
    local inner = src:match("^%s*{{(.*)}}%s*$")
    if inner and not inner:find("{{", 1, true) then src = inner end
    return run(src, ctx, "condition")
end

return M
