-- engine.play: one play: its hosts in order, batches (serial,
-- max_fail_percentage), at most --forks tasks at once, each host's
-- connection, facts and steps.
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local vars = require("cutover.vars")
local output = require("cutover.output")
local connections = require("cutover.connection")
local util = require("cutover.util")
local json = require("cutover.core.json")
local redact = require("cutover.secrets.redact")
local facts_mod = require("cutover.facts")

local Run = {}

local function interrupted() return loop.interrupts() > 0 end

-- Remote facts (facts.lua, docs/facts.md): one round trip at the start
-- of the host's first play that wants them, kept for the run (a later
-- play gathers again only for subsets not yet read) and in the journal.
-- POSIX SSH hosts gather unless the play says gather_facts: false; the
-- local connection only when it says true; cmd.exe hosts never (win_facts).
-- A host resumed with a step in flight is not contacted before that step
-- (it may be rebooting), so it has no gathered facts.  Returns false when
-- gathering failed (the host is reported failed).
function Run:gather_facts(hs, play)
    local conn = hs.conn
    local kind = conn and conn.kind
    local on = play.gather_facts
    if on == nil then on = kind == "ssh" end
    if not on or (kind ~= "ssh" and kind ~= "local") then return true end
    if self.resume and self.resume.inflight and self.resume.inflight[hs.name] then return true end
    local want = facts_mod.resolve_subset(play.gather_subset)
    local have = hs.gathered
    if have and (have.want.hardware or not want.hardware) and (have.want.network or not want.network) then
        return true
    end
    local t0 = loop.now()
    self.running[hs.name] = { host = hs.name, step = "gather facts", started = t0 }
    local f, err, code = facts_mod.gather(conn, want)
    self.running[hs.name] = nil
    if not f then
        local lost = code == "connection" or nil
        local result = { failed = true, unreachable = lost, interrupted = interrupted() or nil,
                         msg = tostring(err):find(hs.name, 1, true) and tostring(err) or (hs.name .. ": " ..
                             tostring(err)) }
        self:report(hs, { id = "gather_facts", name = "gather facts", action = "gather_facts" }, result, t0)
        local st = self.stats.per_host[hs.name]
        if result.interrupted then st.interrupted_at = "gather_facts" else st.failed_at = "gather_facts" end
        st.unreachable = lost
        self.failed_hosts[hs.name] = true
        return false
    end
    hs.gathered = { want = want, facts = f }
    if self.journal then
        -- a failed write (a full disk) shows up, named, at the next step
        pcall(self.journal.event, self.journal, self.run_id, hs.name, "facts", play.name,
              redact.json_line(json.encode(redact.value(f))))
    end
    return true
end

-- The gather_facts / setup action: the host's facts read again now,
-- replacing what expressions see for the rest of its run.  Returns the
-- step's result.
function Run:refresh_facts(hs, subset)
    local conn = hs.conn
    local kind = conn and conn.kind
    if kind ~= "ssh" and kind ~= "local" then
        return { failed = true, msg = "gather_facts needs a POSIX host (SSH or local); " ..
                 tostring(kind) .. " hosts have their own (win_facts)" }
    end
    local want, werr = facts_mod.resolve_subset(subset)
    if not want then return { failed = true, msg = werr } end
    local f, err, code = facts_mod.gather(conn, want)
    if not f then
        return { failed = true, unreachable = code == "connection" or nil, interrupted = interrupted() or nil,
                 msg = tostring(err) }
    end
    -- what was read replaces what was known; facts of a subset not read
    -- this time stay as they were (as Ansible's fact cache does)
    local old = hs.gathered or { want = {}, facts = {} }
    local merged, changed = util.copy(old.facts), {}
    for k, v in pairs(f) do
        if not util.deep_equal(v, merged[k]) then changed[#changed + 1] = k end
        merged[k] = v
    end
    table.sort(changed)
    hs.gathered = { want = { hardware = want.hardware or old.want.hardware,
        network = want.network or old.want.network },
                    facts = merged }
    local specials = hs.scope.specials
    specials.facts = self:host_facts(hs)
    specials.ansible_facts = specials.facts
    if self.journal then
        self.journal:event(self.run_id, hs.name, "facts", hs.play and hs.play.name or nil,
                           redact.json_line(json.encode(redact.value(f))))
    end
    local names = { "min" }
    if want.hardware then names[#names + 1] = "hardware" end
    if want.network then names[#names + 1] = "network" end
    return { changed = false, gathered = names, changed_facts = changed }
end

-- What is known of the host, read-only in expressions.  The local
-- connection runs on the controller, so its uname and user are the
-- host's; over SSH what the connection knows, and the gathered facts:
-- never the controller's hostname or user.
function Run:host_facts(hs)
    local conn = hs.conn
    local kind = conn and conn.kind
    local facts
    if kind == "local" or kind == nil then
        local u = sys.uname() or {}
        facts = {
            name = hs.name, hostname = u.node, system = u.system, kernel = u.release,
            architecture = u.machine, user = (sys.user()), connection = kind,
        }
    else
        local st = conn.settings or {}
        facts = { name = hs.name, address = st.host, port = st.port, user = st.user, connection = kind }
    end
    for k, v in pairs(hs.gathered and hs.gathered.facts or {}) do
        if facts[k] == nil or k == "hostname" then facts[k] = v end
    end
    return facts_mod.freeze(facts, "facts")
end

-- All hosts of one play.
-- Hosts of a play in the order the play asks for.
local function ordered(hosts, order)
    local out = util.copy(hosts)
    if order == "sorted" then table.sort(out)
    elseif order == "reverse_sorted" then table.sort(out, function(a, b) return a > b end)
    elseif order == "reverse_inventory" then
        for i = 1, #out // 2 do out[i], out[#out - i + 1] = out[#out - i + 1], out[i] end
    elseif order == "shuffle" then
        for i = #out, 2, -1 do
            local j = math.random(i)
            out[i], out[j] = out[j], out[i]
        end
    end
    return out
end

-- Batch sizes for `serial` (a count, "N%", or a list; the last repeats).
local function batches(hosts, serial)
    if not serial then return { hosts } end
    local out, i, k = {}, 1, 1
    while i <= #hosts do
        local spec = serial[math.min(k, #serial)]
        local size
        if type(spec) == "string" then
            size = math.max(1, math.floor(#hosts * tonumber(spec:match("%d+")) / 100))
        else
            size = spec
        end
        local batch = {}
        for j = i, math.min(#hosts, i + size - 1) do batch[#batch + 1] = hosts[j] end
        out[#out + 1] = batch
        i = i + size
        k = k + 1
    end
    return out
end

-- Runs one batch: at most `forks` hosts at once, one task per slot, each
-- taking the next host of the batch.
function Run:batch(play, hosts)
    local next_host = 1
    local forks = math.max(1, self.opts.forks or 50)
    for _ = 1, math.min(forks, #hosts) do
        loop.spawn(function()
            while next_host <= #hosts do
                local name = hosts[next_host]
                next_host = next_host + 1
                if self.abort then
                    self:never_started(name, self.abort)
                else
                    self.active = (self.active or 0) + 1
                    self.peak_active = math.max(self.peak_active or 0, self.active)
                    local ok, err = xpcall(self.host_play, debug.traceback, self, play, name)
                    self.active = self.active - 1
                    if not ok and require("cutover.journal").is_write_error(err) then
                        self:journal_broken(name, err)
                    elseif not ok then
                        output.error("internal error on host " .. name .. ": " .. tostring(err))
                        self.failed_hosts[name] = true
                        self.stats.per_host[name].failed_at = "internal error"
                    end
                    if self.reporter.host_end then
                        local st = self.stats.per_host[name] or {}
                        self.reporter:host_end(name, st.parked_at and "parked" or
                            ((self.failed_hosts[name] or st.interrupted_at) and "failed") or "done")
                    end
                    -- more hosts than forks: one that is done gives up its
                    -- connection now, so open sockets and memory stay
                    -- bounded by forks, not by the play's hosts
                    if next_host <= #hosts then
                        self:release_host(name)
                        self:collect_finished()
                    end
                end
            end
        end)
    end
    loop.run(function() self.reporter:tick(self.running, loop.now()) end, 0.25)
    self.reporter:tick({}, loop.now())
end

-- The journal refused a write (a full disk, a file-size limit): nothing
-- more may run unrecorded.  The host stops where it is, no host starts,
-- and the run's record is left as a crash leaves it, so `cutover resume`
-- takes it from there once there is room.
function Run:journal_broken(name, err)
    local st = self:host_stats(name)
    local step = st.journal_step or "?"
    self.failed_hosts[name] = true
    st.failed_at = step
    st.stopped_why = "the journal cannot be written"
    if not self.journal_error then
        self.journal_error = err
        self.abort = "stopped: the journal cannot be written"
        self.stop_run = self.abort
        output.error(string.format(
            "host %s, step '%s': %s\n" ..
            "  The journal cannot be written (is its disk full, or a file-size limit reached?).\n" ..
            "  The run stops: no further step starts on any host.  Steps already recorded are safe;\n" ..
            "  '%s' may or may not have taken effect.  Make room, then: cutover resume %s",
            name, step, tostring(err), step, self.run_id or ""))
    else
        output.error(string.format("host %s, step '%s': stopped, the journal cannot be written",
                                   name, step))
    end
end

function Run:never_started(name, why)
    self:host_stats(name).never_started = why
end

function Run:host_stats(name)
    local st = self.stats.per_host[name]
    if not st then
        st = {}
        self.stats.per_host[name] = st
        self.stats.hosts[#self.stats.hosts + 1] = name
    end
    return st
end

-- The play's hosts that run: within --limit, not failed in an earlier
-- play, not finished before a resume.  Warns about patterns matching
-- nothing.
function Run:play_hosts(play)
    local names, unknown = self.inventory:select(play.hosts)
    for _, u in ipairs(unknown) do
        self.reporter:warn("play '" .. play.name .. "': hosts pattern '" .. u .. "' matched no host")
    end
    local hosts = {}
    for _, h in ipairs(names) do
        if (not self.opts.limit or self.limit[h]) and not self.failed_hosts[h]
            and not (self.resume and self.resume.finished[h]) then
            hosts[#hosts + 1] = h
        end
    end
    return hosts
end

-- A rolling batch is done with its hosts for this play: close their
-- sessions so that sockets and memory stay bounded by the batch size,
-- not the inventory size (a later play reconnects).  What stays per host
-- is its registered values and its recap counts (the step occurrence
-- counts are per play: this play is over for it).
function Run:release_batch(batch)
    for _, name in ipairs(batch) do self:release_host(name) end
    -- a full collection between batches returns the batch's
    -- garbage before the next one allocates (a few ms)
    self:collect_all()
end

-- A full collection; the heap it leaves is collect_finished's baseline.
function Run:collect_all()
    collectgarbage("collect")
    self.heap_after_collect = collectgarbage("count")
end

-- A host that gave up its slot leaves its state (the tables of its
-- steps, its connection's) to the collector.  That state lived long
-- enough to be promoted to the old generation, which only a full
-- collection returns, so with many hosts per slot the finished hosts'
-- state piled up until the batch ended (the 1,000-host soak: about 1.5
-- MB at 50 slots).  A full collection once the heap has grown by a
-- sixteenth (at least 128 KB) since the last one bounds that pile.  The
-- heap is measured after a minor collection: the young garbage the
-- running hosts make is returned by those anyway, and counted it would
-- set off a full collection at nearly every finished host.
function Run:collect_finished()
    collectgarbage("step")
    local now = collectgarbage("count")
    local last = self.heap_after_collect
    if not last then
        self.heap_after_collect = now   -- the first finished host: a baseline
    elseif now - last > math.max(128, last / 16) then
        self:collect_all()
    end
end

-- One host is done with this play (its handlers too): its session is
-- closed and it reconnects when a later play needs it.
function Run:release_host(name)
    local hs = self.hosts[name]
    if hs then
        if hs.conn then hs.conn:close() end
        hs.conn, hs.scope, hs.released = nil, nil, true
        hs.occurrences, hs.last_result = nil, nil
    end
end

-- After batch b of n: whether later batches start.  Hosts parked at a
-- gate hold them back; failures stop the rollout as the play says
-- (any_errors_fatal, max_fail_percentage, a whole batch failed).
function Run:judge_batch(play, batch, b, n)
    local failed, parked = 0, {}
    for _, name in ipairs(batch) do
        local st = self.stats.per_host[name]
        if st and st.parked_at then
            parked[#parked + 1] = name .. " at gate " .. st.parked_gate
        elseif self.failed_hosts[name] then
            failed = failed + 1
        end
    end
    if n > 1 then self.reporter:batch_end(play, b, n, failed, #parked) end
    if #parked > 0 and b < n and not self.abort then
        -- a rolling upgrade waits for its gate before going on
        self.abort = "waiting: " .. table.concat(parked, ", ") ..
            " (later batches start when the run is resumed)"
        self.reporter:warn("play '" .. play.name .. "': " .. self.abort)
    end
    if failed > 0 and not self.abort then
        local pct = failed * 100 / #batch
        if play.any_errors_fatal then
            self.abort = "stopped: any_errors_fatal after a failure in batch " .. b
        elseif play.max_fail_percentage and pct > play.max_fail_percentage then
            self.abort = string.format("stopped: %d of %d hosts failed in batch %d (%.0f%%, more than " ..
                "max_fail_percentage %s%%)",
                                       failed, #batch, b, pct, tostring(play.max_fail_percentage))
        elseif failed == #batch and n > 1 then
            self.abort = "stopped: every host of batch " .. b .. " failed"
        end
        if self.abort then self.reporter:warn("play '" .. play.name .. "': " .. self.abort) end
    end
end

-- Batch b of n: its hosts run, then the rollout is judged.
function Run:run_batch(play, batch, b, n)
    if n > 1 then self.reporter:batch_start(play, b, n, batch) end
    if self.journal then
        -- for the report's timeline; a failed write shows up at the next step
        pcall(self.journal.event, self.journal, self.run_id, nil, "batch", play.name,
              json.encode({ play = self.play_state and self.play_state.index, batch = b, of = n,
                            hosts = setmetatable(util.copy(batch), { __jsontype = "array" }) }))
    end
    self.once = {}
    self:batch(play, batch)
    if n > 1 then self:release_batch(batch) end
    self:judge_batch(play, batch, b, n)
end

-- All hosts of one play, batch by batch.
function Run:play(play)
    local hosts = self:play_hosts(play)
    if #hosts == 0 then
        self.reporter:warn("play '" .. play.name .. "': no hosts to run on")
        return
    end
    self:warn_unhonoured_vars(hosts)
    hosts = ordered(hosts, play.order)
    self.reporter:play_start(play, hosts)
    self.play_state = play
    self.abort = nil
    self.fatal = nil
    local list = batches(hosts, play.serial)
    for b, batch in ipairs(list) do
        if interrupted() then
            for _, name in ipairs(batch) do self:never_started(name, "interrupted") end
        elseif self.abort then
            for _, name in ipairs(batch) do self:never_started(name, self.abort) end
        else
            self:run_batch(play, batch, b, #list)
        end
    end
    -- the run stops at a play whose rollout was stopped
    if self.abort then self.stop_run = self.abort end
end

-- One warning per run for each ansible_* variable of these hosts that
-- cutover does not act on, naming it and a host that has it.
function Run:warn_unhonoured_vars(hosts)
    self.warned_vars = self.warned_vars or {}
    local found, names = {}, {}
    for _, h in ipairs(hosts) do
        for k in pairs(self:connection_vars(h)) do
            if type(k) == "string" and k:match("^ansible_") and not connections.HONOURED[k]
                and not self.warned_vars[k] then
                if not found[k] then found[k] = {}; names[#names + 1] = k end
                table.insert(found[k], h)
            end
        end
    end
    table.sort(names)
    for _, k in ipairs(names) do
        self.warned_vars[k] = true
        local on = found[k]
        self.reporter:warn("inventory variable " .. k .. " (on " .. on[1] ..
            (#on > 1 and (" and " .. (#on - 1) .. " more host(s)") or "") .. ") is not honoured by cutover: " ..
            (connections.WHY_NOT_HONOURED[k] or "it is ignored"))
    end
end

-- Variables that choose a host's connection: group vars, then host vars.
function Run:connection_vars(name)
    local h = self.inventory.hosts[name]
    local hostvars = {}
    local groups = h.implicit and {} or self.inventory:group_layers(name)
    for i = #groups, 1, -1 do
        for k, v in pairs(groups[i].vars) do hostvars[k] = v end
    end
    for k, v in pairs(h.vars) do hostvars[k] = v end
    return hostvars
end

function Run:host_state(name)
    local hs = self.hosts[name]
    if hs and hs.released then
        -- released at the end of an earlier play's batch
        hs.conn, hs.unreachable_msg = connections.open(name, self:connection_vars(name), self.opts)
        hs.released = nil
    end
    if hs then return hs end
    hs = { name = name, registered = {}, notified = {}, started = self.opts.start_at == nil }
    local conn, err = connections.open(name, self:connection_vars(name), self.opts)
    hs.conn = conn
    hs.unreachable_msg = err
    self.hosts[name] = hs
    self:host_stats(name)
    return hs
end

function Run:host_play(play, name)
    local hs = self:host_state(name)
    local h = self.inventory.hosts[name]
    local layers = {
        { vars = self.opts.extra_vars or {} },
        { vars = hs.registered, literal = true, writable = true },
        { vars = self.secrets.prompted, literal = true },
        { vars = play.vars, is_play_vars = true },
        { vars = h.vars },
    }
    for _, l in ipairs(self.inventory:group_layers(name)) do layers[#layers + 1] = l end
    local specials = {
        inventory_hostname = name,
        secret = self.secrets:table(),
        check_mode = self.opts.check == true,
    }
    hs.scope = vars.new(specials, layers)
    if hs.conn and hs.conn.open and not (self.resume and self.resume.inflight and self.resume.inflight[name]) then
        -- connect before the first step, so an unreachable host is
        -- reported as such and takes no part
        local t0 = loop.now()
        self.running[name] = { host = name, step = "connect", started = t0 }
        local ok, err = hs.conn:open()
        self.running[name] = nil
        if not ok then
            self:report(hs, { id = "connect", name = "connect", action = "connect" },
                        { failed = true, unreachable = true, msg = err }, t0)
            self.stats.per_host[name].failed_at = "connect"
            self.stats.per_host[name].unreachable = true
            self.failed_hosts[name] = true
            return
        end
    end
    if not self:gather_facts(hs, play) then return end
    specials.facts = self:host_facts(hs)
    specials.ansible_facts = specials.facts
    hs.notified = {}
    hs.play = play
    local ok = self:steps(hs, play.steps)
    -- handlers run at the end of the play, in the order they are defined
    if ok and not interrupted() then ok = self:run_handlers(hs) end
    if not ok then self.failed_hosts[name] = true end
end

return { methods = Run }
