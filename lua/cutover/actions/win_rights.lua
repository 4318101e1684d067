-- win_rights: every user right of the local policy, read-only.
local host = require("cutover.windows.host")

return {
    summary = "Read every user right of a Windows host's local policy (secedit export)",
    description = [[
Exports the user rights with `secedit /export /areas USER_RIGHTS` to a
temporary file, reads it (UTF-16LE), removes it, and returns `rights`:
right -> list of principals (`*SID` as secedit writes them).  With
`principal` (and `sid`), also `held`: the rights that principal holds.]],
    args = {
        principal = { type = "string", doc = "report the rights this principal holds" },
        sid = { type = "string", doc = "its SID" },
    },
    returns = { rights = "right -> principals", held = "rights of `principal` (a list)" },
    check_mode = "Runs as usual: a read-only probe; its temporary file is removed.",
    read_only = true,
    idempotent = true,
    run = function(ctx, args)
        local rights, err = host.rights(ctx)
        if not rights then return { failed = true, msg = err } end
        local result = { changed = false, rights = rights }
        if args.principal then
            local held = {}
            for right, members in pairs(rights) do
                if host.holds(members, args.principal, args.sid) then held[#held + 1] = right end
            end
            table.sort(held)
            result.held = setmetatable(held, { __jsontype = "array" })
        end
        return result
    end,
}
