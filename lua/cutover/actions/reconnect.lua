-- Shared by reboot and wait_for_connection: wait until a host answers a
-- command again, optionally with a boot identity different from a given
-- one.  (Not an action: not listed in actions/init.lua.)
local loop = require("cutover.core.loop")
local util = require("cutover.util")

local M = {}

-- Runs the identity command; returns its trimmed output or nil, message.
function M.identity(conn, command, timeout)
    local r, err, code = conn:exec({ shell = command, timeout = timeout })
    if not r then return nil, err, code end
    if r.rc ~= 0 then return nil, "'" .. command .. "' failed with exit code " .. r.rc .. ": " .. util.trim(r.stderr) end
    local id = util.trim(r.stdout)
    if id == "" then return nil, "'" .. command .. "' printed nothing" end
    return id
end

-- Refusals that end the wait at once (a changed host key) or after a
-- few in a row (authentication: an sshd may refuse while the machine is
-- still starting, but not for long).
M.AUTH_REFUSALS = 3

-- Polls until the host answers (and, with `old_id`, answers with another
-- identity).  Returns true, new_id, went_down, last_old | nil, message;
-- last_old: loop.now() when the old identity last answered (nil: never).
function M.wait(ctx, opts)
    opts.old_id = opts.old_id or opts.old
    local start = loop.now()
    local went_down = false
    local last_err
    local auth_refusals = 0
    local last_old
    while true do
        local elapsed = loop.now() - start
        if elapsed >= opts.timeout then
            if opts.old_id and not went_down then
                return nil, string.format("the host did not go down within %ds (boot identity still %s)",
                                          opts.timeout, opts.old_id)
            end
            return nil, string.format("the host did not come back within %ds (last error: %s)",
                                      opts.timeout, last_err or "none")
        end
        if ctx.interrupted() then return nil, "interrupted" end
        ctx.conn:close()
        local id, err, code
        if opts.identity then
            id, err, code = opts.identity()
        else
            id, err, code = M.identity(ctx.conn, opts.command, opts.connect_timeout)
        end
        if code == "hostkey" then
            return nil, "the host came back with a host key cutover does not trust: " .. tostring(err)
        end
        auth_refusals = code == "auth" and auth_refusals + 1 or 0
        if auth_refusals >= M.AUTH_REFUSALS then
            return nil, string.format("the host came back but refused authentication %d times in a row: %s",
                                      auth_refusals, tostring(err))
        end
        if id and (not opts.old_id or id ~= opts.old_id) then
            return true, id, went_down or (opts.old_id ~= nil), last_old
        end
        if id then
            last_old = loop.now()
            ctx.progress(string.format("waiting for the host to go down (%ds)", math.floor(elapsed)))
        else
            went_down = true
            last_err = err
            ctx.progress(string.format("waiting for the host to come back (%ds): %s", math.floor(elapsed), err))
        end
        loop.sleep(opts.sleep)
    end
end

return M
