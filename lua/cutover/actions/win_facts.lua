-- win_facts: what a Windows host is, read without changing anything.
local host = require("cutover.windows.host")

return {
    summary = "Read a Windows host's name, domain role, boot time and login account",
    description = [[
Runs `set`, `net accounts` and `net statistics server` and returns
`win`: `computer_name`, `role` (SERVER, PRIMARY or BACKUP), `is_dc`,
`boot` (the "Statistics since" time, which changes at every boot),
`login_user`, `login_domain` and `login_is_local` (the SSH login account
is local to the host: it would be lost with the SAM on promotion).]],
    args = {},
    returns = { win = "the table described above" },
    check_mode = "Runs as usual: read-only.",
    read_only = true,
    idempotent = true,
    run = function(ctx, args)
        local facts, err = host.facts(ctx)
        if not facts then return { failed = true, msg = err } end
        return { changed = false, win = facts }
    end,
}
