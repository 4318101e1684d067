-- win_reboot: reboots a Windows host and waits for its new boot.
local host = require("cutover.windows.host")
local reconnect = require("cutover.actions.lib.reconnect")
local loop = require("cutover.core.loop")

return {
    summary = "Reboot a Windows host and wait until it is back with a new boot time",
    description = [[
Reads the boot time (`net statistics server`), runs `shutdown /L /R /T:0
/Y /C`, and reconnects until the host answers with a different boot time
(a host that still answers with the old one has not gone down yet).]],
    args = {
        reboot_timeout = { type = "number", positive = true, default = 1800, doc = "seconds to go down and come back" },
        connect_timeout = { type = "number", positive = true, default = 10, doc = "seconds per reconnection try" },
        sleep = { type = "number", default = 2, doc = "seconds between tries" },
    },
    returns = { boot_before = "boot time before", boot_after = "after", elapsed = "seconds" },
    check_mode = "Unknowable: nothing is rebooted; what follows is decided at apply time.",
    -- in check mode, what the host answers after this is unknown too
    pivot = true,
    run = function(ctx, args)
        if ctx.check then return { unknown = true, msg = "would reboot the host" } end
        local before, err = host.boot_id(ctx)
        if not before then return { failed = true, msg = "cannot read the boot time: " .. err } end
        local start = loop.now()
        ctx.progress("rebooting")
        host.run(ctx, { "shutdown", "/L", "/R", "/T:0", "/Y", "/C" }, { timeout = 30 })
        local ok, after = reconnect.wait(ctx, {
            command = "net statistics server", old_id = nil, timeout = args.reboot_timeout,
            sleep = args.sleep, connect_timeout = args.connect_timeout,
            identity = function() return host.boot_id(ctx) end, old = before,
        })
        if not ok then return { failed = true, changed = true, msg = after, boot_before = before } end
        return { changed = true, boot_before = before, boot_after = after, elapsed = loop.now() - start }
    end,
}
