-- win_eventlog: events of a Windows event log, by id and source.
local host = require("cutover.windows.host")
local parse = require("cutover.windows.parse")

return {
    summary = "Read events of a Windows event log (dumpel), by id and source",
    description = [[
Runs `dumpel -l LOG [-e ID] [-m SOURCE]` and returns the matching events,
oldest first, and their `count`.  The log only grows, so a playbook takes
the count before an action and passes it as `after` later: `new` then
holds only the events logged since.]],
    args = {
        log = { type = "string", default = "application", choices = { "application", "system" }, doc = "which log" },
        event_id = { type = "int", doc = "keep this event id" },
        source = { type = "string", doc = "keep this source" },
        after = { type = "int", default = 0, doc = "the count taken earlier: only later events are 'new'" },
    },
    returns = { count = "matching events", events = "all of them", new = "those after `after`" },
    check_mode = "Runs as usual: read-only.",
    read_only = true,
    idempotent = true,
    run = function(ctx, args)
        local argv = { "dumpel", "-l", args.log }
        if args.event_id then argv[#argv + 1] = "-e"; argv[#argv + 1] = tostring(args.event_id) end
        if args.source then argv[#argv + 1] = "-m"; argv[#argv + 1] = args.source end
        local events, err = host.parsed(ctx, argv, parse.dumpel)
        if not events then return { failed = true, msg = err } end
        local new = {}
        for i = args.after + 1, #events do new[#new + 1] = events[i] end
        return { changed = false, count = #events, events = events, new = new }
    end,
}
