-- wait_for: waits for a path or a TCP port.
local loop = require("cutover.core.loop")

return {
    summary = "Wait until a path exists (or is gone) or a TCP port answers (or stops)",
    description = [[
With `path`: waits for it to exist (`state: present`, the default) or to
be gone (`state: absent`).  With `port`: waits for a TCP connection to
`host` (default 127.0.0.1) to succeed (`state: started`) or to be refused
(`state: stopped`).  Checks every `sleep` seconds after an initial
`delay`; fails after `timeout` seconds.  Shows progress while it waits.]],
    args = {
        path = { type = "path", doc = "path on the host" },
        port = { type = "int", doc = "TCP port" },
        host = { type = "string", default = "127.0.0.1", doc = "address for port checks" },
        state = { type = "string", choices = { "present", "absent", "started", "stopped" },
            doc = "present/absent for paths, started/stopped for ports" },
        timeout = { type = "number", positive = true, default = 300, doc = "seconds before failing" },
        delay = { type = "number", default = 0, doc = "seconds before the first check" },
        sleep = { type = "number", default = 1, doc = "seconds between checks" },
    },
    one_of = { { "path", "port" } },
    validate = function(args)
        if args.path and args.state and args.state ~= "present" and args.state ~= "absent" then
            return "state must be present or absent with path"
        end
        if args.port and args.state and args.state ~= "started" and args.state ~= "stopped" then
            return "state must be started or stopped with port"
        end
        if args.port and (args.port < 1 or args.port > 65535) then return "port must be 1 to 65535" end
    end,
    returns = { elapsed = "seconds waited" },
    check_mode = "Checks once without waiting: reports ok when the condition already holds, otherwise unknown " ..
        "(\"would wait up to TIMEOUT s\").",
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local state = args.state or (args.path and "present" or "started")
        local what
        local function holds()
            if args.path then
                local st = ctx.conn:stat(args.path, true)
                return (st ~= nil) == (state == "present")
            end
            local ok = ctx.conn:probe_tcp(args.host, args.port, math.min(args.sleep + 1, 5))
            return (ok ~= nil) == (state == "started")
        end
        if args.path then what = args.path .. " to be " .. state
        else what = args.host .. ":" .. args.port .. " to be " .. state end
        if ctx.check then
            if holds() then return { changed = false, elapsed = 0 } end
            return { unknown = true, msg = "would wait up to " .. args.timeout .. "s for " .. what }
        end
        local start = loop.now()
        if args.delay > 0 then loop.sleep(args.delay) end
        while true do
            if holds() then return { changed = false, elapsed = loop.now() - start } end
            if loop.now() - start >= args.timeout then
                return { failed = true, msg = "timed out after " .. args.timeout .. "s waiting for " .. what,
                         elapsed = loop.now() - start }
            end
            if ctx.interrupted() then return { failed = true, interrupted = true, msg = "interrupted" } end
            ctx.progress("waiting for " .. what)
            loop.sleep(math.min(args.sleep, math.max(0.01, args.timeout - (loop.now() - start))))
        end
    end,
}
