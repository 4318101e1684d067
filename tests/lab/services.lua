-- lab.services: the service control manager of a lab host: logon checks,
-- starting with dependencies, stopping with dependents, and the boot
-- sequence (contract sections 3, 4 "Reboot" and 8).
local state = require("lab.state")

local M = {}

M.LOGON_TEXT = "The service did not start due to a logon failure."
M.DEP_TEXT = "The dependency service or group failed to start."

-- Can the service log on?  -> true | false, reason
function M.logon_ok(st, svc)
    if svc.account:lower() == "localsystem" then return true end
    local a = state.account(st, svc.account)
    if not a then return false, "no such account" end
    if svc.password_invalid or svc.password ~= a.password then
        return false, "bad password"
    end
    if not state.has_right(st, "SeServiceLogonRight", a.sid) then
        return false, "no SeServiceLogonRight"
    end
    return true
end

local function log_7000(st, svc)
    state.log_event(st, "system", {
        type = 1, category = 0, id = 7000,
        source = "Service Control Manager", user = "N/A",
        description = "The " .. svc.display .. " service failed to start " ..
            "due to the following error: " .. M.LOGON_TEXT })
end

local function log_7001(st, svc, dep)
    state.log_event(st, "system", {
        type = 1, category = 0, id = 7001,
        source = "Service Control Manager", user = "N/A",
        description = "The " .. svc.display .. " service depends on the " ..
            dep.display .. " service which failed to start because of " ..
            "the following error: " .. M.LOGON_TEXT })
end

-- Starts svc and, first, its stopped dependencies.  started: list that
-- receives every service started.  -> true | false, code (1069, 1068,
-- 1058), the service that failed
function M.start(st, svc, started, depth)
    depth = depth or 0
    if depth > 32 then return false, 1068, svc end
    if svc.state == "RUNNING" then return true end
    if svc.start == "DISABLED" then return false, 1058, svc end
    for _, dname in ipairs(svc.deps or {}) do
        local dep = state.service(st, dname)
        if dep and dep.state ~= "RUNNING" then
            local ok = M.start(st, dep, started, depth + 1)
            if not ok then
                svc.exit_code = 1068
                log_7001(st, svc, dep)
                return false, 1068, svc
            end
        end
    end
    if not M.logon_ok(st, svc) then
        svc.exit_code = 1069
        log_7000(st, svc)
        return false, 1069, svc
    end
    svc.state = "RUNNING"
    svc.exit_code = 0
    started[#started + 1] = svc
    return true
end

-- The running services that depend on svc, deepest first (the order
-- in which to stop them).
function M.dependents(st, svc)
    local order, seen = {}, {}
    local function visit(s, depth)
        if depth > 32 then return end
        for _, other in ipairs(st.services) do
            if other.state == "RUNNING" and not seen[other.name] then
                for _, d in ipairs(other.deps or {}) do
                    if d:lower() == s.name:lower() then
                        seen[other.name] = true
                        visit(other, depth + 1)
                        order[#order + 1] = other
                        break
                    end
                end
            end
        end
    end
    visit(svc, 0)
    return order
end

-- Is any Exchange service running?
function M.exchange_running(st)
    for _, s in ipairs(st.services) do
        if s.name:match("^MSExchange") and s.state == "RUNNING" then
            return true
        end
    end
    return false
end

-- The boot sequence after power-on: DC policy, then every AUTO_START
-- service in dependency order; failures stay stopped (7000/7001).
function M.boot(st)
    for _, s in ipairs(st.services) do
        s.state = "STOPPED"
    end
    st.net_use = {}
    -- Stamped with the boot time, not "now": creating a lab and its first
    -- boot may straddle a second, and the boot's own events belong to it.
    state.log_event(st, "system", {
        time = st.boot_time,
        type = 4, category = 0, id = 6005, source = "EventLog",
        user = "N/A", description = "The Event log service was started." })
    if st.role ~= "SERVER" then state.apply_dc_policy(st) end
    local attempted = {}
    local function boot_start(s, depth)
        if attempted[s.name] or depth > 32 then return end
        attempted[s.name] = true
        for _, dname in ipairs(s.deps or {}) do
            local dep = state.service(st, dname)
            if dep then boot_start(dep, depth + 1) end
        end
        for _, dname in ipairs(s.deps or {}) do
            local dep = state.service(st, dname)
            if dep and dep.state ~= "RUNNING" then
                s.exit_code = 1068
                log_7001(st, s, dep)
                return
            end
        end
        if M.logon_ok(st, s) then
            s.state = "RUNNING"
            s.exit_code = 0
        else
            s.exit_code = 1069
            log_7000(st, s)
        end
    end
    for _, s in ipairs(st.services) do
        if s.start == "AUTO_START" then boot_start(s, 0) end
    end
end

return M
