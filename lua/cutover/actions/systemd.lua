-- systemd: a unit's state (started, stopped, restarted, reloaded),
-- whether it starts at boot, and whether it is masked, through systemctl
-- on the host.  `service` (service.lua) uses it on systemd hosts.
local util = require("cutover.util")

-- Seconds a start or restart may take to reach "active".
local ACTIVE_WAIT = 90

local function validate(args)
    if not args.name:match("^[%w_%.@:%-\\]+$") then return "name must be a unit name such as nginx or nginx.service" end
    if args.state == nil and args.enabled == nil and args.masked == nil and not args.daemon_reload then
        return "needs 'state', 'enabled', 'masked' or 'daemon_reload'"
    end
end

-- systemctl show NAME: the fields this action reads
local function show(conn, name)
    local r, err = conn:exec({ argv = { "systemctl", "show", "--no-pager",
        "-p", "LoadState", "-p", "ActiveState", "-p", "SubState", "-p", "UnitFileState", "--", name }, timeout = 60 })
    if not r then return nil, err end
    if r.rc == 127 then return nil, "systemctl is not on this host (not a systemd host)" end
    if r.rc ~= 0 then return nil, "systemctl show " .. name .. ": " .. util.trim(r.stderr) end
    local s = {}
    for k, v in r.stdout:gmatch("(%w+)=([^\n]*)") do s[k] = v end
    return s
end

-- The last lines the unit logged, for a failure's message.
local function journal_tail(conn, name)
    local r = conn:exec({ argv = { "journalctl", "--no-pager", "-n", "10", "-o", "cat", "-u", name }, timeout = 60 })
    if type(r) ~= "table" or r.rc ~= 0 or util.trim(r.stdout) == "" then return "" end
    return "; its last log lines:\n" .. util.trim(r.stdout)
end

local ENABLED = { enabled = true, ["enabled-runtime"] = true, alias = true, indirect = true, generated = true }

-- systemctl with these words -> true | nil, its error
local function systemctl(conn, ...)
    local argv = { "systemctl", ... }
    local r, err = conn:exec({ argv = argv, timeout = 300 })
    if not r then return nil, err end
    if r.rc ~= 0 then
        return nil, table.concat(argv, " ") .. ": " .. util.trim(r.stderr ~= "" and r.stderr or r.stdout)
    end
    return true
end

-- The systemctl commands that bring the unit (shown as s) where args
-- say: the list, whether to wait for "active" after them | nil, the failure
local function commands(args, s)
    local name = args.name
    local todo = {}
    if args.masked ~= nil and (s.UnitFileState == "masked") ~= args.masked then
        todo[#todo + 1] = args.masked and { "mask", "--", name } or { "unmask", "--", name }
    end
    if args.enabled ~= nil then
        local on = ENABLED[s.UnitFileState] == true
        if args.enabled and s.UnitFileState == "static" then
            return nil, { failed = true, msg = "unit " .. name .. " is static: it has no [Install] section to enable" }
        end
        if on ~= args.enabled and not (args.masked and not args.enabled) then
            todo[#todo + 1] = args.enabled and { "enable", "--", name } or { "disable", "--", name }
        end
    end
    local active = s.ActiveState == "active" or s.ActiveState == "reloading"
    local wait_active = false
    if args.state == "started" and not active then
        todo[#todo + 1] = { "start", "--", name }; wait_active = true
    elseif args.state == "stopped" and (active or s.ActiveState == "activating") then
        todo[#todo + 1] = { "stop", "--", name }
    elseif args.state == "restarted" then
        todo[#todo + 1] = { "restart", "--", name }; wait_active = true
    elseif args.state == "reloaded" then
        todo[#todo + 1] = { "reload", "--", name }
    end
    return todo, wait_active
end

-- Waits (visibly, up to ACTIVE_WAIT s) until the unit is active -> its
-- state | nil, the failure
local function wait_until_active(ctx, name)
    local conn = ctx.conn
    local waited = 0
    while true do
        local s = show(conn, name) or {}
        if s.ActiveState == "active" then return s end
        if s.ActiveState == "failed" or waited >= ACTIVE_WAIT then
            return nil, { failed = true, status = s,
                          msg = "unit " .. name .. " is " .. tostring(s.ActiveState) .. " (" ..
                              tostring(s.SubState) ..
                              ")" .. (waited >= ACTIVE_WAIT and (" after " .. ACTIVE_WAIT .. " s") or "") ..
                              journal_tail(conn, name) }
        end
        if ctx.progress then ctx.progress("waiting for " .. name .. " to be active (" .. waited .. " s)") end
        require("cutover.core.loop").sleep(1)
        waited = waited + 1
    end
end

return {
    summary = "Start, stop, restart or reload a systemd unit; enable, disable or mask it",
    description = [[
Reads the unit with `systemctl show` and makes it match: `state: started`
starts it when it is not active and waits (up to 90 s) until it is; a unit
that fails to start fails the step with its last journal lines.
`stopped` stops an active unit; `restarted` and `reloaded` always act (a
change).  `enabled` enables or disables it at boot (a static unit cannot
be enabled: an error), `masked` masks or unmasks it.  `daemon_reload: true`
runs `systemctl daemon-reload` first (needed after a unit file changed; not
counted as a change).  Needs root for changes (become).  `service` does the
same on a systemd host, and drives init scripts where systemd does not run.]],
    args = {
        name = { type = "string", required = true, doc = "the unit (nginx or nginx.service)" },
        state = { type = "string", choices = { "started", "stopped", "restarted", "reloaded" },
                  doc = "what the unit should be, or do" },
        enabled = { type = "bool", doc = "start it at boot" },
        masked = { type = "bool", doc = "masked (cannot be started at all)" },
        daemon_reload = { type = "bool", default = false, doc = "systemctl daemon-reload first" },
    },
    validate = validate,
    returns = { status = "ActiveState, SubState, UnitFileState and LoadState after the step" },
    check_mode = "Exact for started, stopped, enabled and masked (read with systemctl show); restarted and " ..
        "reloaded are always predicted as changes. A unit the host does not have yet (an earlier step may install " ..
        "it) is unknown. daemon_reload is not run, so a unit file an earlier step would write is not seen.",
    idempotent = true,
    run = function(ctx, args)
        local conn, name = ctx.conn, args.name
        if args.daemon_reload and not ctx.check then
            local ok, err = systemctl(conn, "daemon-reload")
            if not ok then return { failed = true, msg = err } end
        end
        local s, err = show(conn, name)
        if not s then return { failed = true, msg = err } end
        if s.LoadState == "not-found" then
            if ctx.check then return { unknown = true, msg = "unit " .. name .. " is not on the host (yet)" } end
            return { failed = true, msg = "unit " .. name .. " is not on the host" }
        end
        local todo, wait_active = commands(args, s)
        if not todo then return wait_active end
        local result = { changed = #todo > 0, status = s }
        if #todo == 0 then return result end
        local verbs = {}
        for _, t in ipairs(todo) do verbs[#verbs + 1] = t[1] end
        if ctx.diff then
            result.diff = { path = "unit " .. name,
                            before_state = s.ActiveState .. ", " .. tostring(s.UnitFileState),
                            after_state = table.concat(verbs, ", ") }
        end
        if ctx.check then result.msg = "would " .. table.concat(verbs, ", "); return result end
        for _, t in ipairs(todo) do
            local ok, serr = systemctl(conn, table.unpack(t))
            if not ok then return { failed = true, msg = serr .. journal_tail(conn, name) } end
        end
        if wait_active then
            local failure
            s, failure = wait_until_active(ctx, name)
            if not s then return failure end
        else
            s = show(conn, name) or s
        end
        result.status = s
        result.msg = table.concat(verbs, ", ")
        return result
    end,
}
