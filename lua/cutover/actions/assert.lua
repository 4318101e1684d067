-- assert: every condition must hold.
local expr = require("cutover.expr")

return {
    summary = "Fail unless every condition holds",
    description = [[
`that` is one Lua expression or a list of them, evaluated like `when:`.
The step fails with `fail_msg` (or the first false condition) when one
is false.]],
    args = {
        that = { type = "list", scalar_ok = true, required = true, raw = true, doc = "conditions (Lua expressions)" },
        fail_msg = { type = "string", doc = "message when a condition is false" },
        success_msg = { type = "string", doc = "message when all hold" },
        quiet = { type = "bool", default = false, doc = "no message on success" },
    },
    returns = { msg = "the message", evaluated = "the conditions checked" },
    check_mode = "Runs as usual (it changes nothing); a condition that reads a result unknown in check mode makes " ..
        "the step unknown.",
    controller = true,
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        for _, c in ipairs(args.that) do
            local ok, v, unknown = expr.condition(c, ctx.scope)
            if not ok then
                if unknown then return { unknown = true, msg = v } end
                return { failed = true, msg = v }
            end
            if not v then
                return { failed = true, msg = args.fail_msg or ("assertion failed: " .. tostring(c)),
                         assertion = tostring(c) }
            end
        end
        return { changed = false, msg = not args.quiet and (args.success_msg or "all assertions passed") or nil }
    end,
}
