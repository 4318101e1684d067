-- service: Ansible's general service action.  On a systemd host it is the
-- systemd action; on a host without systemd running (sysvinit, a
-- container) it drives the init script through `service` and `update-rc.d`,
-- with the same states, the same exact check mode and the same result.
local systemd = require("cutover.actions.systemd")
local util = require("cutover.util")

-- Seconds a started service has to answer `status` with "running".
local RUNNING_WAIT = 30
-- The runlevels whose links say "starts at boot" (Debian's defaults).
local BOOT_LEVELS = "2345"

-- "systemd" or "sysvinit": the gathered fact when there is one, else one
-- probe for a running systemd (systemctl alone proves nothing: containers
-- have it without systemd running).
local function manager(ctx, args)
    if args.use ~= "auto" then return args.use end
    local ok, facts = pcall(function() return ctx.scope and ctx.scope:get("facts") end)
    local known = ok and facts and facts.service_mgr
    if known then return known == "systemd" and "systemd" or "sysvinit" end
    local r, err = ctx.conn:exec({ shell = "test -d /run/systemd/system", timeout = 60 })
    if not r then return nil, err end
    return r.rc == 0 and "systemd" or "sysvinit"
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Whether the init script reports the service running: LSB status codes,
-- 0 running, 1-3 not running (dead with a pid file, a lock file, or just
-- stopped); anything else is an error with what the script said.
local function sysv_running(conn, name)
    local r, err = conn:exec({ argv = { "service", name, "status" }, timeout = 60 })
    if not r then return nil, err end
    if r.rc == 127 then return nil, "the 'service' command is not on this host" end
    if r.rc == 0 then return true end
    if r.rc >= 1 and r.rc <= 3 then return false end
    return nil, "service " .. name .. " status: exit " .. r.rc .. ": " ..
        util.trim(r.stderr ~= "" and r.stderr or r.stdout):sub(1, 400)
end

-- Whether the script starts at boot: an S link in a multi-user runlevel.
-- Returns enabled, has_links (no links at all: never registered).
local function sysv_enabled(conn, name)
    local r, err = conn:exec({ shell = "for f in /etc/rc[0-6S].d/[SK][0-9][0-9]" .. q(name) ..
        "; do [ -e \"$f\" ] || [ -L \"$f\" ] && echo \"$f\"; done; :", timeout = 60 })
    if not r then return nil, err end
    local enabled, any = false, false
    for path in r.stdout:gmatch("[^\n]+") do
        any = true
        local level, kind = path:match("/etc/rc(.)%.d/([SK])")
        if kind == "S" and level and BOOT_LEVELS:find(level, 1, true) then enabled = true end
    end
    return enabled, any
end

local function sysv_run(ctx, args)
    local conn, name = ctx.conn, args.name
    if args.masked ~= nil or args.daemon_reload then
        return { failed = true, msg = (args.masked ~= nil and "masked" or "daemon_reload") ..
                 " needs systemd, and " .. tostring(ctx.host) .. " runs without it (sysvinit: " ..
                 "/etc/init.d scripts)" }
    end
    if not conn:stat("/etc/init.d/" .. name, true) then
        if ctx.check then return { unknown = true, msg = "/etc/init.d/" .. name .. " is not on the host (yet)" } end
        return { failed = true, msg = "service " .. name .. ": there is no /etc/init.d/" .. name ..
                 " on this host (it runs without systemd)" }
    end
    local running, rerr = sysv_running(conn, name)
    if running == nil then return { failed = true, msg = rerr } end
    local enabled, has_links = sysv_enabled(conn, name)
    if enabled == nil then return { failed = true, msg = has_links } end
    local status = { manager = "sysvinit", running = running, enabled = enabled }
    local todo = {}
    if args.enabled ~= nil and enabled ~= args.enabled then
        if args.enabled then
            -- a script never registered gets its default links first
            if not has_links then todo[#todo + 1] = { "update-rc.d", name, "defaults" } end
            todo[#todo + 1] = { "update-rc.d", name, "enable" }
        else
            todo[#todo + 1] = { "update-rc.d", name, "disable" }
        end
    end
    local wait_running = false
    if args.state == "started" and not running then
        todo[#todo + 1] = { "service", name, "start" }; wait_running = true
    elseif args.state == "stopped" and running then
        todo[#todo + 1] = { "service", name, "stop" }
    elseif args.state == "restarted" then
        todo[#todo + 1] = { "service", name, "restart" }; wait_running = true
    elseif args.state == "reloaded" then
        todo[#todo + 1] = { "service", name, "reload" }
    end
    local result = { changed = #todo > 0, status = status }
    if #todo == 0 then return result end
    local verbs, seen = {}, {}
    for _, t in ipairs(todo) do
        local verb = t[1] == "service" and t[3] or (t[3] == "disable" and "disable" or "enable")
        if not seen[verb] then verbs[#verbs + 1], seen[verb] = verb, true end
    end
    if ctx.diff then
        result.diff = { path = "service " .. name,
                        before_state = (running and "running" or "stopped") .. ", " .. (enabled and "enabled" or "disabled"),
                        after_state = table.concat(verbs, ", ") }
    end
    if ctx.check then result.msg = "would " .. table.concat(verbs, ", "); return result end
    for _, t in ipairs(todo) do
        local r, eerr = conn:exec({ argv = t, timeout = 300 })
        if not r then return { failed = true, msg = eerr } end
        if r.rc ~= 0 then
            return { failed = true, msg = table.concat(t, " ") .. ": exit " .. r.rc .. ": " ..
                     util.trim(r.stderr ~= "" and r.stderr or r.stdout):sub(1, 600) }
        end
    end
    if wait_running then
        local waited = 0
        while true do
            running, rerr = sysv_running(conn, name)
            if running then break end
            if running == nil or waited >= RUNNING_WAIT then
                return { failed = true, msg = rerr or ("service " .. name .. " is not running " .. waited ..
                         " s after " .. verbs[#verbs] .. " (its status check says stopped)") }
            end
            if ctx.progress then ctx.progress("waiting for " .. name .. " to run (" .. waited .. " s)") end
            require("cutover.core.loop").sleep(1)
            waited = waited + 1
        end
    end
    status.running = running
    status.enabled = (sysv_enabled(conn, name))
    result.msg = table.concat(verbs, ", ")
    return result
end

local service = {}
for k, v in pairs(systemd) do service[k] = v end
service.args = {}
for k, v in pairs(systemd.args) do service.args[k] = v end
service.args.use = { type = "string", choices = { "auto", "systemd", "sysvinit" }, default = "auto",
                     doc = "the service manager: auto reads the service_mgr fact, else looks for a running systemd" }
service.summary = "Start, stop, restart or reload a service; enable or disable it at boot (systemd or sysvinit)"
service.description = [[
On a host where systemd runs, this is the `systemd` action (see it).  On a
host without systemd (sysvinit, many containers) it drives the
`/etc/init.d` script: `service NAME status` reads the state (LSB exit
codes: 0 running, 1 to 3 stopped), `service NAME start|stop|restart|reload`
changes it, and `update-rc.d NAME enable|disable` (with `defaults` first
for a script that has no links yet) sets whether it starts at boot (an S
link in runlevels 2 to 5).  After start or restart it waits up to 30 s for
`status` to say running.  `masked` and `daemon_reload` need systemd: an
error on such a host.  `use` picks the manager; `auto` takes the gathered
`service_mgr` fact, else checks for `/run/systemd/system`.]]
service.returns = { status = "systemd: the unit's states (see systemd); sysvinit: manager, running, enabled" }
service.check_mode = "Exact for started, stopped and enabled on both managers (systemd: systemctl show; sysvinit: the script's status and the rc links); restarted and reloaded are always predicted as changes. A service the host does not have yet is unknown."
service.run = function(ctx, args)
    local use, err = manager(ctx, args)
    if not use then return { failed = true, msg = err } end
    if use == "systemd" then return systemd.run(ctx, args) end
    return sysv_run(ctx, args)
end
return service
