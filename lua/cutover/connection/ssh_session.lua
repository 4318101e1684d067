-- connection.ssh_session: a POSIX SSH host's steps through its persistent
-- runners (connection/session.lua): the login user's, and one per become
-- user.  These are methods of connection.ssh's Conn, installed by
-- require("cutover.connection.ssh_session")(Conn, M, lock, unlock), where M
-- is connection.ssh (its on_warning and GRACE, which the engine and tests
-- may set) and lock/unlock its per-connection lock.
local loop = require("cutover.core.loop")
local become = require("cutover.connection.become")
local session_runner = require("cutover.connection.session")

return function(Conn, M, lock, unlock)

local function become_key(spec) return spec.user .. "\0" .. (spec.flags or "") end

-- A step under become in that user's own session, when it has one
-- (sudo started once per connection and user).  false: it has none, the
-- caller wraps the command in sudo.
function Conn:run_as(line, opts)
    local spec = self.become
    local st = self.settings
    if st.session == false or self.no_session or spec.method == "su" or spec.user == st.user then return false end
    if self.no_become_session and self.no_become_session[become_key(spec)] then return false end
    -- (before the lock: the first use probes sudo with commands of its own)
    local cmd, preamble = become.session_command(self, spec, st.user)
    if not cmd then
        if preamble then return nil, preamble, "become" end  -- sudo refused: the message
        return false
    end
    lock(self)
    local ok, r, err, code = pcall(function()
        local res, e, c
        for attempt = 1, 2 do
            local started
            res, e, c, started = self:run_session(line, opts or {}, spec)
            if res or res == false then break end
            if started or c ~= "connection" or attempt == 2 then break end
        end
        return res, e, c
    end)
    unlock(self)
    if not ok then error(r, 0) end
    return r, err, code
end

-- The persistent runners (connection/session.lua), opened on first use
-- after each connect: the login user's (self.session_runner), and one
-- per become user (sudo started once, its password sent once on the
-- channel's stdin).  Returns the runner, or nil when this host runs one
-- channel per step (turned off, not POSIX, or it failed: a warning says
-- so once), or nil, message, code when the connection is gone.
function Conn:runner(as)
    local st = self.settings
    if st.shell == "cmd" or st.session == false or self.no_session then return nil end
    if as then return self:become_runner(as) end
    if self.session_runner and not self.session_runner.dead then return self.session_runner end
    self.session_runner = nil
    local r, err, code = session_runner.open(self.session, self.name, st.timeout)
    if r then
        self.session_runner = r
        return r
    end
    if code == "connection" then return nil, err, code end
    if code == "timeout" or code == "interrupted" then return nil, M.not_started(self.name, err, code), code end
    self:give_up_session(err)
    return nil
end

-- A session start cut short by its timeout or a Ctrl-C: the step is not
-- run at all (no fallback to a channel of its own after a Ctrl-C).
function M.not_started(name, err, code)
    return name .. ": the persistent session did not start (" ..
        (code == "interrupted" and "interrupted" or tostring(err)) .. "); the step was not run"
end

function Conn:become_runner(spec)
    local key = become_key(spec)
    self.become_runners = self.become_runners or {}
    self.no_become_session = self.no_become_session or {}
    if self.no_become_session[key] then return nil end
    local r = self.become_runners[key]
    if r and not r.dead then return r end
    self.become_runners[key] = nil
    local cmd, preamble, prompt = become.session_command(self, spec, self.settings.user)
    if not cmd then
        self.no_become_session[key] = true
        return nil
    end
    local err, code
    r, err, code = session_runner.open(self.session, self.name, self.settings.timeout,
        { command = cmd, preamble = preamble, prompt = prompt, shell = "/bin/sh" })
    if r then
        r.as = spec
        self.become_runners[key] = r
        return r
    end
    if code == "connection" then return nil, err, code end
    if code == "timeout" or code == "interrupted" then return nil, M.not_started(self.name, err, code), code end
    self.no_become_session[key] = true
    M.on_warning(self.name .. ": no persistent session as " .. spec.user .. " (" .. tostring(err) ..
        "); running sudo once per step as that user")
    return nil
end

function Conn:close_runners()
    if self.session_runner then self.session_runner:close() end
    self.session_runner = nil
    for _, r in pairs(self.become_runners or {}) do r:close() end
    self.become_runners = nil
end

function Conn:give_up_session(why, runner)
    if runner and runner.as then
        -- a become runner: that user's steps go back to sudo per step
        runner:close()
        local key = become_key(runner.as)
        if self.become_runners then self.become_runners[key] = nil end
        self.no_become_session = self.no_become_session or {}
        if not self.no_become_session[key] then
            self.no_become_session[key] = true
            M.on_warning(self.name .. ": the persistent session as " .. runner.as.user .. " ended (" ..
                tostring(why) .. "); running sudo once per step as that user")
        end
        return
    end
    if self.session_runner then self.session_runner:close() end
    self.session_runner = nil
    if not self.no_session then
        self.no_session = true
        M.on_warning(self.name .. ": the persistent session is not available (" .. tostring(why) ..
            "); running one SSH channel per step on this host")
    end
end

-- One step through a runner (as: a become spec, or nil for the login
-- user).  Returns result | nil, message, code, started (false: the step
-- never started, safe to run again) | false (no runner: use a channel
-- of its own).
function Conn:run_session(line, opts, as)
    local ok, err, code = self:open()
    if not ok then return nil, err, code, false end
    local runner
    runner, err, code = self:runner(as)
    if not runner then
        if code == "timeout" or code == "interrupted" then
            -- the half-open session channel is in an unknown state
            self:drop_session()
            return nil, err, code, false
        end
        if err then self.session = nil; return nil, err, code, false end
        return false
    end
    local t0 = loop.now()
    local deadline = opts.timeout and opts.timeout > 0 and (t0 + opts.timeout) or nil
    local function left() return deadline and math.max(0.001, deadline - loop.now()) or nil end
    local in_stdin, maybe
    ok, err, code = runner:ready()
    if ok then
        ok, err, code, in_stdin, maybe = runner:send(line, opts.stdin,
            opts.max_output or self.settings.max_output or session_runner.DEFAULT_CAP, { timeout = left() },
            opts.argv_line and not as)
    end
    if not ok and not in_stdin and maybe then
        -- part of the request left: the host may yet get all of it and
        -- run the step, so it is never run again; the SSH connection is
        -- closed (the next step reconnects)
        self:drop_session()
        return nil, tostring(err) .. " (sending the command to the session stopped partway; " ..
            "it may or may not have taken effect)", "connection", true
    end
    if not ok and not in_stdin then
        -- the command's lines were not received whole: the step never started
        if code == "connection" then self.session = nil; self:close_runners(); return nil, err, code, false end
        self:give_up_session(err, runner)
        return false
    end
    local pid, r, late
    if not ok then
        -- its stdin was cut short: the step may be running (it started on
        -- the lines); a timeout or Ctrl-C stops it below, with its pid
        -- if that came (the session itself is given up: it waits for the
        -- rest of those bytes)
        if code == "timeout" or code == "interrupted" then
            pid = runner:started({ timeout = 5, uninterruptible = true })
        end
    else
        pid, err, code = runner:started({ timeout = left() })
        if not pid and (code == "timeout" or code == "interrupted") then
            -- the request arrived whole: the step may have started, its
            -- start line on the way (written just before it runs).  Wait
            -- for that line, a Ctrl-C notwithstanding (bounded), so the
            -- step is stopped below, or known never to have started.
            local p2, err2, code2 = runner:started({ timeout = M.GRACE + 10, uninterruptible = true })
            if p2 then
                pid, late = p2, true   -- and code says why it is stopped
            elseif code2 == "eof" or code2 == "notstarted" then
                -- the session ended with no start line: the step never ran
                self:give_up_session(err2, runner)
                return nil, self.name .. ": " .. (code == "timeout" and "timed out" or "interrupted") ..
                    " before the step started; the step was not run", code, false
            end
        end
    end
    if ok and not pid and (code == "eof" or code == "notstarted") then
        -- the remote shell ended with no P line: the step writes that
        -- line before it runs, and what it wrote comes through before the
        -- end (the connection is up), so it never started
        self:give_up_session(err, runner)
        return false
    end
    if ok and pid and not late then r, err, code = runner:result({ timeout = left() }, t0) end
    if r then return r end
    if code == "timeout" or code == "interrupted" then return self:stop_session_step(runner, pid, code, as, t0) end
    return self:session_step_lost(runner, err, code)
end

-- A session step that timed out or was interrupted: stop its process
-- group (over a second channel, as the step's user); the step's reply
-- then arrives with what it wrote before it was stopped.  -> the result
function Conn:stop_session_step(runner, pid, code, as, t0)
    local stopped = pid and pid > 1 and self:stop_group(pid, as)
    local after
    if stopped and not runner.dead and self.session ~= nil then
        after = runner:result({ timeout = M.GRACE + 10, uninterruptible = true }, t0)
    end
    if not after then
        -- the reply never came: the session is in an unknown state
        self:drop_session()
        after = { rc = -1, stdout = "", stderr = "", duration = loop.now() - t0 }
    end
    after[code == "timeout" and "timed_out" or "interrupted"] = true
    if not stopped then
        after.stop_note = "the command may still be running on " .. self.name ..
            (pid and " (stopping its process group failed)" or " (its process id never arrived)")
    end
    return after
end

-- A session step sent whole whose reply did not come: whether it ran is
-- not known.  -> nil, message, "connection", true (it may have started)
function Conn:session_step_lost(runner, err, code)
    if code == "connection" then
        self.session = nil
        self:close_runners()
    else
        self:give_up_session(err, runner)
        if code == "eof" then
            -- the server closed the session's channel (a ChannelTimeout,
            -- a killed shell): as for a channel of its own; the
            -- connection may be going too, so the next step reconnects
            self:drop_session()
            return nil, self.name .. ": the command ended without an exit status (the session or channel " ..
                "was closed; it may or may not have taken effect)", "connection", true
        end
    end
    return nil, tostring(err) .. " (connection lost while the command ran; it may or may not have taken effect)",
        "connection", true
end

end
