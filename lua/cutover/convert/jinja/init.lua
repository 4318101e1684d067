-- convert.jinja: translates the common subset of Ansible's Jinja
-- expressions into cutover's sandboxed Lua expressions (docs/convert.md).
-- What it does not understand is an error naming the construct, never a
-- guess: the caller reports it.
--
--   M.expr(src, ctx)       a Jinja expression -> Lua text | nil, why
--   M.condition(src, ctx)  the same, for a boolean context (when:, if)
--   M.text(s, ctx)         a string with {{ }} parts -> cutover text | nil, why
--   M.template(text, ctx)  a .j2 file -> cutover template text, problems
--
-- ctx.bools: names whose every known value is a boolean (so `when: flag`
-- needs no truthiness test).
local common = require("cutover.convert.jinja.common")
local translate = require("cutover.convert.jinja.translate")

local M = {}

M.lua_string = common.lua_string
M.expr, M.text_expr, M.condition = translate.expr, translate.text_expr, translate.condition
M.template = require("cutover.convert.jinja.template").template

-- Escapes text so that cutover shows it literally (no {{ }} rendering).
function M.literal(s)
    return (s:gsub("{([{%%#])", "{{ '{%1' }}"))
end

-- A string with {{ }} parts: each part translated; the text between is
-- kept (with any '{%' or '{#' written so cutover shows it literally).
function M.text(s, ctx)
    if not s:find("{[{%%#]") then return s end
    -- one {{ }} and nothing else gives the value itself (a list, a boolean)
    local whole = s:match("^{{(.*)}}$")
    local alone = whole and not whole:find("{{", 1, true) and not whole:find("}}", 1, true)
    local out, i = {}, 1
    while true do
        local a = s:find("{[{%%#]", i)
        if not a then out[#out + 1] = s:sub(i); break end
        local mark = s:sub(a + 1, a + 1)
        if mark ~= "{" then
            return nil, "'{" .. mark .. "' in a string (Jinja statements and comments belong in template files)"
        end
        out[#out + 1] = s:sub(i, a - 1)
        local b = s:find("}}", a + 2, true)
        if not b then return nil, "'{{' without '}}'" end
        local inner = s:sub(a + 2, b - 1)
        if inner:sub(1, 1) == "-" or inner:sub(-1) == "-" then return nil, "whitespace control ('{{-') in a string" end
        local lua, err = (alone and M.expr or M.text_expr)(inner, ctx)
        if not lua then return nil, err .. " in '{{" .. inner .. "}}'" end
        out[#out + 1] = "{{ " .. lua .. " }}"
        i = b + 2
    end
    return table.concat(out)
end

return M
