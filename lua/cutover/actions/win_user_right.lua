-- win_user_right: a user right of an account, in local policy and, on a
-- domain controller, durable in the Default Domain Controllers Policy.
local host = require("cutover.windows.host")
local parse = require("cutover.windows.parse")

local DC_POLICY = "C:\\WINNT\\SYSVOL\\sysvol\\%s\\Policies\\{6AC1786C-016F-11D2-945F-00C04fB984F9}" ..
                  "\\MACHINE\\Microsoft\\Windows NT\\SecEdit\\GptTmpl.inf"

return {
    summary = "Grant or revoke a user right; on a domain controller, also in the DC policy",
    description = [[
Reads every right with `secedit /export` (the temporary file is removed)
and grants or revokes `right` for `principal` with `ntrights`, which
changes the local policy only.  On a domain controller the local rights
are overwritten by the Default Domain Controllers Policy at every policy
refresh and boot, so with `durable: true` (the default) the template
(`domain`: the DNS name, for its SYSVOL path) is updated too, written
through `more`, and `secedit /refreshpolicy machine_policy /enforce` is
run.  The export lists principals by SID: give `sid` for an account that
is not well known (Everyone, Administrators, Authenticated Users),
otherwise presence is judged by name and a grant is always made.]],
    args = {
        right = { type = "string", required = true, doc = "e.g. SeServiceLogonRight (case-sensitive)" },
        principal = { type = "string", required = true, doc = "DOMAIN\\account, Everyone, ..." },
        sid = { type = "string", doc = "the principal's SID (S-1-5-21-...)" },
        state = { type = "string", default = "present", choices = { "present", "absent" }, doc = "granted or not" },
        durable = { type = "bool", default = true, doc = "on a DC, also in the DC policy template" },
        domain = { type = "string", doc = "the domain's DNS name (for the DC policy path)" },
    },
    returns = { before = "members of the right before", local_changed = "ntrights ran",
                policy_changed = "the DC template was rewritten" },
    check_mode = "Exact: reads the rights (and the DC template) and predicts; writes nothing, and removes the " ..
        "export file it used.",
    idempotent = true,
    run = function(ctx, args)
        local rights, err = host.rights(ctx)
        if not rights then return { failed = true, msg = err } end
        local members = rights[args.right] or {}
        local want = args.state == "present"
        local has = host.holds(members, args.principal, args.sid)
        local result = { changed = false, before = members }
        if has ~= want then
            result.changed, result.local_changed = true, true
            if not ctx.check then
                local r, rerr = host.run(ctx, { "ntrights", want and "+r" or "-r", args.right, "-u", args.principal })
                if not r then return { failed = true, msg = rerr } end
                if r.rc ~= 0 then
                    return { failed = true, msg = "ntrights: " .. (r.stdout .. r.stderr):gsub("%s+$", "") }
                end
            end
        end
        if args.durable then
            local facts, ferr = host.facts(ctx)
            if not facts then return { failed = true, msg = ferr } end
            if facts.is_dc then
                if not args.domain then
                    return { failed = true, msg =
                        "the host is a domain controller: give 'domain' (the DNS name) to make the right durable" }
                end
                local path = DC_POLICY:format(args.domain)
                local data, derr = ctx.conn:read_file(path)
                if not data then return { failed = true, msg = "the DC policy template: " .. derr } end
                local doc, perr = parse.inf(data)
                if not doc then return { failed = true, msg = path .. ": " .. perr } end
                local list = doc.rights[args.right]
                local in_policy = list ~= nil and host.holds(list, args.principal, args.sid)
                -- a right the template does not name keeps its local value
                if list ~= nil and in_policy ~= want or (list == nil and want) then
                    local new = {}
                    for _, m in ipairs(list or {}) do
                        if want or not host.holds({ m }, args.principal, args.sid) then new[#new + 1] = m end
                    end
                    if want then new[#new + 1] = args.sid and ("*" .. args.sid) or args.principal end
                    doc.rights[args.right] = new
                    result.changed, result.policy_changed = true, true
                    if ctx.diff then
                        result.diff = { path = path, before = data, after = parse.write_inf(doc) or "" }
                    end
                    if not ctx.check then
                        local text, werr = parse.write_inf(doc)
                        if not text then return { failed = true, msg = werr } end
                        local ok, wferr = ctx.conn:write_file(path, text)
                        if not ok then return { failed = true, msg = wferr } end
                        local r, rerr = host.run(ctx, { "secedit", "/refreshpolicy", "machine_policy", "/enforce" })
                        if not r or r.rc ~= 0 then
                            return { failed = true, msg = "secedit /refreshpolicy: " .. (rerr or (r.stdout ..
                                r.stderr)) }
                        end
                    end
                end
            end
        end
        if ctx.check and result.changed then
            result.msg = "would " .. (want and "grant " or "revoke ") .. args.right .. " " ..
                (want and "to " or "from ") .. args.principal
        end
        return result
    end,
}
