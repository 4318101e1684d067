-- win_facts: what a Windows host is, read without changing anything.
local host = require("cutover.windows.host")

return {
    summary = "Read a Windows host's name, domain role, boot time and login account",
    description = [[
Runs `set`, `net accounts` and `net statistics server` and returns
`win`: `computer_name`, `role` (SERVER, PRIMARY or BACKUP), `is_dc`,
`boot` (the "Statistics since" time, which changes at every boot),
`login_user`, `login_domain` and `login_is_local` (the SSH login account
is local to the host: it would be lost with the SAM on promotion), and
`services`: every service (`sc query type= service state= all`) as
`{name, display_name, state, state_name}`, in the order sc lists them.]],
    args = {},
    returns = { win = "the table described above" },
    check_mode = "Runs as usual: read-only.",
    read_only = true,
    idempotent = true,
    run = function(ctx)
        local facts, err = host.facts(ctx)
        if not facts then return { failed = true, msg = err } end
        local list, lerr = host.services(ctx)
        if not list then return { failed = true, msg = lerr } end
        local services = {}
        for _, s in ipairs(list) do
            services[#services + 1] = { name = s.name, display_name = s.display_name,
                                        state = s.state, state_name = s.state_name }
        end
        facts.services = services
        return { changed = false, win = facts }
    end,
}
