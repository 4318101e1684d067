-- reboot: reboots the host and waits until it is back with a new boot.
local loop = require("cutover.core.loop")
local reconnect = require("cutover.actions.reconnect")

return {
    summary = "Reboot the host and wait until it is back with a new boot identity",
    description = [[
Reads the host's boot identity (`boot_id_command`, by default the kernel's
boot id), runs `reboot_command`, then reconnects every `sleep` seconds.
The host counts as back only when it answers with a boot identity that
differs from the one before: a host that still answers with the old one
has not gone down yet, never "came back".  Fails after `reboot_timeout`
seconds.  A connection dropped by the reboot command itself is expected.
Shows progress while it waits.  The result gives the new identity and
the time the host was down (`downtime`).  With `become` the reboot
command and every boot identity read run as the become user (sudo's
password, when one is needed, on stdin as for any command).  Refused on
the local connection (it would reboot the controller).]],
    args = {
        reboot_command = { type = "string", default = "sleep 1 && shutdown -r now", doc = "command that reboots the host (it may drop the connection)" },
        boot_id_command = { type = "string", default = "cat /proc/sys/kernel/random/boot_id", doc = "prints an identity that changes at every boot" },
        reboot_timeout = { type = "number", positive = true, default = 600, doc = "seconds for the host to go down and come back" },
        connect_timeout = { type = "number", positive = true, default = 10, doc = "seconds for each reconnection try" },
        pre_reboot_delay = { type = "number", default = 0, doc = "seconds to wait before rebooting" },
        post_reboot_delay = { type = "number", default = 0, doc = "seconds to wait after the host is back" },
        sleep = { type = "number", default = 1, doc = "seconds between reconnection tries" },
    },
    returns = {
        rebooted = "true once the host is back with a new boot identity",
        boot_id_before = "identity before the reboot", boot_id_after = "identity after",
        elapsed = "seconds from the reboot command until the host was back",
        downtime = "seconds the host was down: from its last answer with the old identity (or the reboot command) to its first with the new one (to within `sleep`)",
    },
    check_mode = "Unknowable: nothing is rebooted; the step and what depends on its result are decided at apply time.",
    -- in check mode, what the host answers after this is unknown too
    pivot = true,
    run = function(ctx, args)
        if ctx.conn.kind == "local" then
            return { failed = true, msg = "reboot is refused on the local connection: it would reboot the controller" }
        end
        if ctx.check then return { unknown = true, msg = "would reboot the host" } end
        local before, err = reconnect.identity(ctx.conn, args.boot_id_command, args.connect_timeout)
        if not before then return { failed = true, msg = "cannot read the boot identity: " .. err } end
        if args.pre_reboot_delay > 0 then loop.sleep(args.pre_reboot_delay) end
        local start = loop.now()
        ctx.progress("rebooting")
        -- The command may not return (the connection drops): that is fine.
        ctx.conn:exec({ shell = args.reboot_command, timeout = math.max(5, args.connect_timeout) })
        local ok, after, _, last_old = reconnect.wait(ctx, {
            command = args.boot_id_command, old_id = before, timeout = args.reboot_timeout,
            sleep = args.sleep, connect_timeout = args.connect_timeout,
        })
        if not ok then
            return { failed = true, changed = true, msg = after, boot_id_before = before,
                     elapsed = loop.now() - start }
        end
        -- down: from the last answer with the old identity (or the
        -- reboot command) to the first with the new one
        -- (not rounded: rounded up, it came out longer than `elapsed`;
        -- the message rounds)
        local back = loop.now()
        local downtime = back - math.max(start, last_old or start)
        if args.post_reboot_delay > 0 then loop.sleep(args.post_reboot_delay) end
        return { changed = true, rebooted = true, boot_id_before = before, boot_id_after = after,
                 elapsed = loop.now() - start, downtime = downtime,
                 msg = "back with boot id " .. after .. " after " .. string.format("%.1f", downtime) .. " s down" }
    end,
}
