-- debug: prints a message or a variable.
local expr = require("cutover.expr")
local json = require("cutover.core.json")

return {
    summary = "Print a message or the value of an expression",
    description = [[
`msg` is printed as given (after {{ }} rendering); `var` is a Lua
expression whose value is printed (tables as JSON).]],
    free_form = "msg",
    args = {
        msg = { type = "any", doc = "text to print" },
        var = { type = "string", raw = true, doc = "expression to print" },
    },
    returns = { msg = "what was printed" },
    check_mode = "Runs as usual.",
    controller = true,
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        if args.var then
            local ok, v, unknown = expr.eval_data(args.var, ctx.scope)
            if not ok then
                if unknown then return { unknown = true, msg = v } end
                return { failed = true, msg = v }
            end
            if type(v) == "table" then v = json.encode(v) end
            return { changed = false, msg = args.var .. " = " .. tostring(v) }
        end
        local m = args.msg
        if type(m) == "table" then m = json.encode(m) end
        return { changed = false, msg = m == nil and "Hello world!" or tostring(m) }
    end,
}
