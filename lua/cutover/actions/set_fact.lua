-- set_fact: sets variables for the rest of this host's run.
return {
    summary = "Set variables for the rest of the host's run",
    description = [[
Each key becomes a variable for this host, with precedence above play and
inventory variables and below extra vars (-e).  Values are rendered once,
when the step runs.]],
    any_args = true,
    args = {},
    returns = { facts = "the variables set" },
    check_mode = "Runs as usual: it only changes the controller's variables.",
    controller = true,
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        for k, v in pairs(args) do
            if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
                return { failed = true, msg = "'" .. tostring(k) .. "' is not a valid variable name" }
            end
            if ctx.scope.specials and ctx.scope.specials[k] ~= nil then
                -- facts, inventory_hostname, ...: a set_fact would be shadowed
                return { failed = true, msg = "'" .. k .. "' is set by cutover and cannot be changed" }
            end
            ctx.scope:set(k, v)
        end
        return { changed = false, facts = args }
    end,
}
