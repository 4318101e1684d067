-- engine.block: lists of steps: a step dispatched to its kind (block
-- with rescue/always, include/import with loops, an action step),
-- include_steps with a templated file name, handlers.
local loop = require("cutover.core.loop")
local expr = require("cutover.expr")
local util = require("cutover.util")

local Run = {}

local function interrupted() return loop.interrupts() > 0 end

-- The steps of an include_steps whose file name is a template: rendered
-- in the host's scope (with the include's loop item), read and checked
-- as an imported file is, once per run and file, and journaled (resume
-- and saved plans check it).  Returns the steps, or nil after reporting
-- the failure (unknown in check mode: nil, true).
local MAX_DYNAMIC_DEPTH = 16

function Run:dynamic_steps(hs, step)
    local function fail(msg, unknown)
        self:report(hs, step, unknown and { unknown = true, msg = msg } or { failed = true, msg = msg }, loop.now())
        if not unknown then self.stats.per_host[hs.name].failed_at = step.id end
        return nil, unknown
    end
    local ok, name, unknown = expr.render(step.dynamic_file, self:scope_for(hs, step))
    if not ok then return fail("include_steps: the file name '" .. step.dynamic_file .. "': " .. name, unknown) end
    name = tostring(name)
    if name == "" then return fail("include_steps: the file name '" .. step.dynamic_file .. "' gave an empty name") end
    if (hs.dynamic_depth or 0) >= MAX_DYNAMIC_DEPTH then
        return fail("include_steps: includes nested deeper than " .. MAX_DYNAMIC_DEPTH .. " levels")
    end
    -- the name may come from data (a registered result, a host's
    -- variable): it stays inside the folder of the file naming it
    local depth, escapes = 0, name:sub(1, 1) == "/" or name:find("[\0\n]") ~= nil
    for seg in name:gmatch("[^/]+") do
        if seg == ".." then depth = depth - 1 elseif seg ~= "." then depth = depth + 1 end
        if depth < 0 then escapes = true end
    end
    if escapes then
        return fail("include_steps: '" .. name .. "' (from '" .. step.dynamic_file .. "') leaves the folder of " ..
            (step.source and step.source.path or "the file naming it") .. " (a name given by {{ }} must stay inside it: " ..
            "no absolute path, no '..' above it)")
    end
    local path = util.join_path(step.dynamic_base, name)
    self.dynamic = self.dynamic or {}
    local cache = self.dynamic[step] or {}
    self.dynamic[step] = cache
    local got = cache[path]
    if not got then
        local fs = require("cutover.core.fs")
        local st = fs.stat(path)
        if type(st) ~= "table" or st.type ~= "file" then
            got = { err = "include_steps: " .. path .. ": no such file (from '" .. step.dynamic_file .. "')" }
        else
            local list, files = require("cutover.load.playbook").load_steps(path, step, self.book,
                                                                      hs.play and hs.play.handler_names)
            if not list then
                got = { err = "include_steps: " .. path .. ": " .. table.concat(files, "; ") }
            else
                got = { steps = list }
                for _, f in ipairs(files) do
                    self.files_read = self.files_read or {}
                    if self.files_read[f.abs] ~= f.digest then
                        self.files_read[f.abs] = f.digest
                        if self.journal then self.journal:event(self.run_id, nil, "file", f.abs, f.digest) end
                        if self.opts.on_file_read then self.opts.on_file_read(f.abs, f.digest) end
                    end
                end
                -- what the include carries reaches its steps (their own win)
                local function push(list2, v, field)
                    for _, s2 in ipairs(list2) do
                        if s2.block then
                            push(s2.block, v, field); push(s2.rescue, v, field); push(s2.always, v, field)
                        else
                            local merged = {}
                            for k, x in pairs(v or {}) do merged[k] = x end
                            for k, x in pairs(s2[field] or {}) do merged[k] = x end
                            s2[field] = merged
                        end
                        s2.role_dir = s2.role_dir or step.role_dir
                    end
                end
                push(list, step.vars, "vars")
                push(list, step.defaults, "defaults")
            end
        end
        cache[path] = got
    end
    if got.err then return fail(got.err) end
    return got.steps
end

-- Runs the steps of an include (static or dynamic) once.
function Run:include_body(hs, step)
    if not step.dynamic_file then return self:steps(hs, step.block) end
    local list, unknown = self:dynamic_steps(hs, step)
    if not list then return unknown == true end
    hs.dynamic_depth = (hs.dynamic_depth or 0) + 1
    local ok = self:steps(hs, list)
    hs.dynamic_depth = hs.dynamic_depth - 1
    return ok
end

-- include_steps / include_role with a loop: the included steps run once
-- per item, with the item (and loop_index) in their scope; `when` is
-- asked per item.
function Run:include_loop(hs, step)
    if not hs.started then
        -- --start-at inside: walk the steps once to find the start (a
        -- file named at run time is not looked into)
        return step.dynamic_file ~= nil or self:steps(hs, step.block)
    end
    local scope = self:scope_for(hs, step)
    local ok, v, unknown = expr.render_value(step.include_loop, scope)
    local bad
    if not ok then
        bad = unknown and { unknown = true, msg = "loop: " .. v } or { failed = true, msg = "loop: " .. v }
    elseif type(v) ~= "table" or not util.is_list(v) then
        bad = { failed = true, msg = "loop: expected a list, got " .. type(v) }
    end
    if bad then
        self:report(hs, step, bad, loop.now())
        if bad.failed then
            self.stats.per_host[hs.name].failed_at = step.id
            return false
        end
        return true
    end
    hs.include_items = hs.include_items or {}
    local result = true
    for i, item in ipairs(v) do
        local layer = { [step.loop_var or "item"] = item, loop_index = i }
        hs.include_items[#hs.include_items + 1] = layer
        local run_it = true
        if step.when ~= nil then
            local cok, cv, cunknown = expr.condition(step.when, self:scope_for(hs, step))
            if not cok then
                hs.include_items[#hs.include_items] = nil
                self:report(hs, step, cunknown and { unknown = true, msg = "when: " .. cv }
                            or { failed = true, msg = "when: " .. cv }, loop.now())
                if not cunknown then
                    self.stats.per_host[hs.name].failed_at = step.id
                    return false
                end
                return true
            end
            run_it = cv
        end
        local one = (not run_it) or self:include_body(hs, step)
        hs.include_items[#hs.include_items] = nil
        if not one then result = false; break end
    end
    return result
end

-- The handlers notified so far, in the order they are defined (at the
-- end of the play, and at meta: flush_handlers).  Returns false when
-- one failed.
function Run:run_handlers(hs)
    local play = hs.play
    if not play then return true end
    local ok = true
    for _, handler in ipairs(play.handlers) do
        if hs.notified[handler.name] or hs.notified[handler.id] then
            if not self:step(hs, handler) then ok = false; break end
        end
    end
    hs.notified = {}
    return ok
end

-- Runs a list of steps; returns false when the host failed.
function Run:steps(hs, list)
    for _, step in ipairs(list) do
        if not self:step(hs, step) then return false end
    end
    return true
end

function Run:step(hs, step)
    if hs.halted then return false end
    if interrupted() then
        if not self.stats.per_host[hs.name].interrupted_at then
            self.stats.per_host[hs.name].interrupted_at = step.id
        end
        return false
    end
    if self.fatal and self.fatal ~= hs.name then
        -- any_errors_fatal: another host failed; stop at this boundary
        local st = self.stats.per_host[hs.name]
        if not st.stopped_at then
            st.stopped_at = step.id
            st.stopped_why = "any_errors_fatal: " .. self.fatal .. " failed"
        end
        return false
    end
    if step.meta == "flush_handlers" then
        -- the handlers notified so far run here, then are forgotten
        if not hs.started or not self:tags_allow(step) then return true end
        return self:run_handlers(hs)
    end
    if step.include_loop ~= nil then return self:include_loop(hs, step) end
    if step.dynamic_file and not hs.started then return true end
    if step.block or step.dynamic_file then
        if step.when ~= nil and hs.started then
            local ok, v, unknown = expr.condition(step.when, self:scope_for(hs, step))
            if not ok then
                local r = unknown and { unknown = true, msg = "when: " .. v } or { failed = true, msg = "when: " .. v }
                self:report(hs, step, r, loop.now())
                if not unknown then
                    self.stats.per_host[hs.name].failed_at = step.id
                    return false
                end
                return true
            end
            if not v then return true end
        end
        -- a failure that a rescue will handle is not fatal to the others
        if #step.rescue > 0 then hs.in_rescue = (hs.in_rescue or 0) + 1 end
        local ok = self:include_body(hs, step)
        if #step.rescue > 0 then hs.in_rescue = hs.in_rescue - 1 end
        if hs.halted then return false end
        if not ok and not interrupted() and #step.rescue > 0 then
            -- the failure is handled: the host carries on after rescue
            hs.recovered = true
            self.stats.per_host[hs.name].failed_at = nil
            ok = self:steps(hs, step.rescue)
        end
        if not interrupted() then
            local always_ok = self:steps(hs, step.always)
            ok = ok and always_ok
        end
        return ok
    end
    if not hs.started then
        if step.id == self.opts.start_at or step.name == self.opts.start_at then
            hs.started = true
        else
            return true
        end
    end
    if not self:tags_allow(step) then return true end
    if self.journal then return self:journaled_step(hs, step) end
    return self:action_step(hs, step)
end

return { methods = Run, MAX_DYNAMIC_DEPTH = MAX_DYNAMIC_DEPTH }
