-- wait_for_connection: waits until the host accepts a connection and
-- runs a command.
local loop = require("cutover.core.loop")
local reconnect = require("cutover.actions.lib.reconnect")

return {
    summary = "Wait until the host accepts a connection and runs a command",
    description = [[
Reconnects and runs a trivial command (`true`, or `probe_command`) every
`sleep` seconds until it succeeds, for at most `timeout` seconds.  Use it
after an operation that drops the host for a while.  Shows progress while
it waits.]],
    args = {
        timeout = { type = "number", positive = true, default = 600, doc = "seconds before failing" },
        delay = { type = "number", default = 0, doc = "seconds before the first try" },
        sleep = { type = "number", default = 1, doc = "seconds between tries" },
        connect_timeout = { type = "number", positive = true, default = 10, doc = "seconds for each try" },
        probe_command = { type = "string", default = "true", doc = "command that must succeed" },
    },
    returns = { elapsed = "seconds waited" },
    check_mode = "Tries once without waiting: ok when the host answers now, otherwise unknown.",
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local start = loop.now()
        if ctx.check then
            local id = reconnect.identity(ctx.conn, args.probe_command, args.connect_timeout)
            if id or ctx.conn.kind == "local" then return { changed = false, elapsed = 0 } end
            return { unknown = true, msg = "the host does not answer now; would wait up to " .. args.timeout .. "s" }
        end
        if args.delay > 0 then loop.sleep(args.delay) end
        local ok, err = reconnect.wait(ctx, {
            command = args.probe_command .. " && echo up", timeout = args.timeout,
            sleep = args.sleep, connect_timeout = args.connect_timeout,
        })
        if not ok then return { failed = true, msg = err, elapsed = loop.now() - start } end
        return { changed = false, elapsed = loop.now() - start }
    end,
}
