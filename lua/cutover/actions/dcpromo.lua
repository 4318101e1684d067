-- dcpromo: promotes a Windows 2000 member server to an additional domain
-- controller of an existing domain, and waits until it is back as one.
local host = require("cutover.windows.host")
local reconnect = require("cutover.actions.lib.reconnect")
local redact = require("cutover.secrets.redact")
local util = require("cutover.util")
local loop = require("cutover.core.loop")

local LOG = "C:\\WINNT\\debug\\dcpromo.log"

local function answer_text(a)
    return table.concat({
        "[DCInstall]",
        "ReplicaOrNewDomain=Replica",
        "ReplicaDomainDNSName=" .. a.domain_dns_name,
        "UserName=" .. a.admin_user,
        "Password=" .. a.admin_password,
        "UserDomain=" .. a.domain_netbios_name,
        "DatabasePath=%systemroot%\\ntds",
        "LogPath=%systemroot%\\ntds",
        "SYSVOLPath=%systemroot%\\sysvol",
        "SafeModeAdminPassword=" .. a.safe_mode_password,
        "RebootOnSuccess=yes",
    }, "\r\n") .. "\r\n"
end

-- Did dcpromo scrub the passwords from the answer file?
local function scrubbed(text)
    for line in (text or ""):gmatch("[^\r\n]+") do
        local k, v = line:match("^%s*([^=]+)=(.*)$")
        if k then
            k = util.trim(k):lower()
            if (k == "password" or k == "safemodeadminpassword") and util.trim(v) ~= "" then return false end
        end
    end
    return true
end

local function last_log_line(ctx)
    local data = ctx.conn:read_file(LOG)
    if not data then return nil end
    local last
    for line in data:gmatch("[^\r\n]+") do last = line end
    return last
end

-- The host's facts; a host that does not answer (a resume while it
-- reboots) is waited for.
local function facts_when_up(ctx, args)
    local facts = host.facts(ctx)
    if facts then return facts end
    -- the facts that answered end the wait: not read a second time
    local ok, f = reconnect.wait(ctx, {
        timeout = args.reboot_timeout, sleep = args.sleep,
        identity = function() local e; facts, e = host.facts(ctx); return facts and "up", e end,
    })
    if not ok then return nil, f end
    return facts
end

-- After dcpromo succeeded: waits for a boot other than boot_before (the
-- promotion's reboot), then checks the role and that the answer file
-- lost its passwords, and removes it.  Returns the step's result.
local function after_reboot(ctx, args, boot_before)
    ctx.progress("waiting for the reboot")
    local back, after = reconnect.wait(ctx, {
        old = boot_before, timeout = args.reboot_timeout, sleep = args.sleep,
        identity = function() return host.boot_id(ctx) end,
    })
    if not back then return { failed = true, changed = true, msg = after } end
    local now, ferr = host.facts(ctx)
    if not now then return { failed = true, changed = true, msg = ferr } end
    local answer = ctx.conn:read_file(args.answer_file)
    ctx.conn:remove(args.answer_file)
    if not now.is_dc then
        return { failed = true, changed = true, role = now.role,
                 msg = "the promotion did not take effect (role " .. tostring(now.role) .. "): " ..
                     tostring(last_log_line(ctx)) }
    end
    if answer and not scrubbed(answer) then
        return { failed = true, changed = true, role = now.role,
                 msg = "promoted, but the answer file still held a password (removed now)" }
    end
    return { changed = true, role = now.role, boot_before = boot_before, boot_after = after }
end

-- Run again after a restart, on a host this step promoted: the
-- promotion's reboot may not have come yet (the controller stopped
-- between dcpromo's end and the reboot).  Going on then would run the
-- next steps on a host about to go down, so wait for a boot other than
-- the one before dcpromo, as the first run would have.
local function promoted_before_restart(ctx, args, facts, boot_before)
    local waited = facts.boot == boot_before
    local res = after_reboot(ctx, args, boot_before)
    if not res.failed then
        res.msg = "already a domain controller (" .. res.role .. "), promoted before the restart: " ..
            (waited and "waited for its reboot" or "its reboot came during the restart")
    end
    return res
end

return {
    summary = "Promote a Windows 2000 server to a domain controller and wait until it is back as one",
    description = [[
Writes the answer file (an additional DC in an existing domain) through
the command's stdin (`more > FILE`: the passwords never go on a command
line), runs `dcpromo /answer:FILE`, and then waits for the reboot
(`RebootOnSuccess=yes`) until the host answers with a new boot time and
`net accounts` says it is a domain controller.  It checks that dcpromo
scrubbed the passwords from the answer file and removes the file.  A
dropped connection while dcpromo runs is expected (the reboot); the log
and the role after the reboot decide.  A failure before the promotion
took effect (wrong domain credentials) fails the step with dcpromo's
log line and changes nothing.  On a host that is already a domain
controller it does nothing: dcpromo there would start a demotion, which
destroys Exchange (Q260698).  The boot before dcpromo is journaled: run
again after the controller stopped, on a host this step promoted, it
waits for the promotion's reboot if it has not come yet, and then checks
and removes the answer file as the first run would have.]],
    args = {
        domain_dns_name = { type = "string", required = true, doc = "corp.example" },
        domain_netbios_name = { type = "string", required = true, doc = "CORP" },
        admin_user = { type = "string", required = true, doc = "a domain admin (admin)" },
        admin_password = { type = "string", required = true, doc = "its password (secret)" },
        safe_mode_password = { type = "string", required = true, doc =
            "Directory Services Restore Mode password (secret)" },
        answer_file = { type = "string", default = "C:\\TEMP\\cutover-dcpromo.txt",
            doc = "where the answer file goes" },
        reboot_timeout = { type = "number", positive = true, default = 1800,
            doc = "seconds for the promotion's reboot" },
        connect_timeout = { type = "number", positive = true, default = 10, doc = "seconds per reconnection try" },
        sleep = { type = "number", default = 2, doc = "seconds between tries" },
    },
    returns = { role = "the role after", boot_before = "boot time before", boot_after = "after",
                elapsed = "seconds" },
    check_mode = "Unknowable: nothing is promoted (a host that is already a domain controller is reported ok); " ..
        "the steps after it are decided at apply time.",
    -- safe after a restart: on a host already promoted it does nothing
    idempotent = true,
    -- in check mode, what the host answers after this is unknown too
    pivot = true,
    run = function(ctx, args)
        redact.register(args.admin_password)
        redact.register(args.safe_mode_password)
        local facts, err = facts_when_up(ctx, args)
        if not facts then return { failed = true, msg = err } end
        local before = ctx.before_restart
        if facts.is_dc and before and before.boot then
            -- this step promoted the host before the controller stopped
            ctx.remember(before)  -- (should it stop again before the end)
            return promoted_before_restart(ctx, args, facts, before.boot)
        end
        if facts.is_dc then
            return { changed = false, role = facts.role,
                     msg = "already a domain controller (" .. facts.role .. "): nothing to do" }
        end
        if ctx.check then
            return { unknown = true, msg = "would promote " .. facts.computer_name ..
                     " to a domain controller of " .. args.domain_dns_name }
        end
        local start = loop.now()
        -- the boot before: a resume after a stop from here on waits for
        -- the promotion's reboot instead of going on before it
        ctx.remember({ boot = facts.boot })
        local ok, werr = ctx.conn:write_file(args.answer_file, answer_text(args))
        if not ok then return { failed = true, msg = "answer file: " .. werr } end
        ctx.progress("dcpromo running")
        local r = host.run(ctx, { "dcpromo", "/answer:" .. args.answer_file }, { timeout = args.reboot_timeout })
        if r and r.rc ~= 0 then
            local line = last_log_line(ctx) or util.trim(r.stdout .. r.stderr)
            local answer = ctx.conn:read_file(args.answer_file)
            ctx.conn:remove(args.answer_file)
            return { failed = true, role = facts.role,
                     msg = "dcpromo failed: " .. tostring(line) ..
                         (scrubbed(answer) and "" or " (and the answer file still held a password: removed)") }
        end
        local res = after_reboot(ctx, args, facts.boot)
        if not res.failed then
            res.elapsed, res.msg = loop.now() - start, "promoted: role " .. res.role
        end
        return res
    end,
}
