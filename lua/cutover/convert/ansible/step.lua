-- convert.ansible.step: one task (or block) as a step: its keywords,
-- loop, become, name and id; a task that cannot be converted becomes a
-- failing step.  Part of the converter in init.lua: these are its methods.
local yaml = require("cutover.core.yaml")
local util = require("cutover.util")
local jinja = require("cutover.convert.jinja")
local Y = require("cutover.convert.yaml_out")
local common = require("cutover.convert.ansible.common")
local bad, ordered_keys, is_map_value = common.bad, common.ordered_keys, common.is_map_value
local strip_fqcn, cond_value = common.strip_fqcn, common.cond_value

local C = {}

-- Task keywords: how each one converts.
--   same       copied (strings translated)        cond   a condition
--   drop       left out and reported (display or privilege only)
--   special    handled in the code
local TASK_KEYWORDS = {
    name = "special", when = "cond", register = "same", notify = "same", ignore_errors = "same",
    changed_when = "cond", failed_when = "cond", ["until"] = "cond", retries = "same", delay = "same",
    vars = "special", tags = "same", no_log = "same", run_once = "same", delegate_to = "same",
    check_mode = "same", loop = "special", loop_control = "special", args = "special",
    become = "special", become_user = "special", become_method = "special", become_flags = "special",
    block = "special", rescue = "special", always = "special",
    diff = "drop", throttle = "drop", debugger = "drop", collections = "drop",
}
-- Keywords that change what a task does and have no cutover equivalent.
local BLOCKING_KEYWORDS = {
    environment = true, async = true, poll = true, delegate_facts = true, any_errors_fatal = true,
    connection = true, remote_user = true, port = true, timeout = true, ignore_unreachable = true,
    local_action = true, action = true, listen = true, module_defaults = true, vars_prompt = true,
}
local LOOP_PLUGINS = { with_items = true, with_list = true }

-- A step that fails with the original task: what replaces a task that
-- cannot be converted faithfully.
function C:fail_step(src, t, why, keep_name)
    local where = self:at(src, t)
    local text = self:original_text(src, t)
    local m = Y.map()
    local name = type(t) == "table" and type(t.name) == "string" and t.name or nil
    -- a handler keeps its name: the steps that notify it still lint
    m:put("name", jinja.literal(((keep_name and name) and "" or "NOT CONVERTED: ") .. (name or where)))
    self:claim_name(m)
    m:put("fail", Y.map():put("msg", jinja.literal("not converted from Ansible (" .. why .. "): " .. where ..
        "\n" .. text)))
    return m
end

-- A step name is its id: a name used twice in one output file gets an id.
function C:claim_name(m)
    local name = m:get("name")
    if type(name) ~= "string" then return end
    local ids = self.ids
    local slug = util.slug(name)
    if ids[slug] then
        local n = 2
        while ids[slug .. "-" .. n] do n = n + 1 end
        m:put("id", slug .. "-" .. n)
        ids[slug .. "-" .. n] = true
    else
        ids[slug] = true
    end
end

function C:has_template(v)
    if type(v) == "string" then return v:find("{{", 1, true) ~= nil end
    if type(v) == "table" then
        for _, x in pairs(v) do if self:has_template(x) then return true end end
    end
    return false
end

function C:loop(src, t, step)
    local lp = t.loop
    local plugin
    for k in pairs(t) do
        if type(k) == "string" and k:match("^with_") then
            if not LOOP_PLUGINS[k] then error({ convert = "'" .. k .. "' loops" }, 0) end
            if lp ~= nil then error({ convert = "two loops" }, 0) end
            lp, plugin = t[k], k
        end
    end
    if lp == nil then return end
    if type(lp) == "string" then
        local inner = lp:match("^%s*{{(.*)}}%s*$")
        if not inner or inner:find("{{", 1, true) then error({ convert =
            "a loop that is not one {{ }} expression" }, 0) end
        local lua, err = jinja.expr(inner, self.jctx)
        if not lua then error({ convert = err .. " in the loop" }, 0) end
        if plugin == "with_items" then lua = "flatten(" .. lua .. ", 1)" end
        step:put("loop", "{{ " .. lua .. " }}")
    elseif type(lp) == "table" and plugin == "with_items" and self:has_template(lp) then
        -- items that are lists after rendering are flattened too
        local parts = {}
        for i, x in ipairs(lp) do
            if type(x) == "string" then
                local inner = x:match("^{{(.*)}}$")
                if inner and not inner:find("{{", 1, true) then
                    local lua, err = jinja.expr(inner, self.jctx)
                    if not lua then error({ convert = err .. " in the loop" }, 0) end
                    parts[i] = lua
                elseif x:find("{{", 1, true) then
                    error({ convert = "a with_items item mixing text and {{ }}" }, 0)
                else
                    parts[i] = jinja.lua_string(x)
                end
            elseif type(x) == "number" or type(x) == "boolean" then
                parts[i] = tostring(x)
            else
                error({ convert = "with_items of mappings or lists beside {{ }} items" }, 0)
            end
        end
        step:put("loop", "{{ flatten({" .. table.concat(parts, ", ") .. "}, 1) }}")
    elseif type(lp) == "table" then
        local items = self:value(src, lp)
        if plugin == "with_items" then
            local flat = {}
            for _, x in ipairs(items) do
                if type(x) == "table" and not Y.is_map(x) then
                    for _, y in ipairs(x) do flat[#flat + 1] = y end
                else flat[#flat + 1] = x end
            end
            items = flat
        end
        step:put("loop", items)
    else
        error({ convert = "a loop over " .. type(lp) }, 0)
    end
    local lc = t.loop_control
    if type(lc) == "table" then
        for _, k in ipairs(ordered_keys(src, lc)) do
            if k == "loop_var" then step:put("loop_var", lc[k])
            elseif k == "label" then self:report(self:at(src, lc, k),
                "loop_control 'label': left out (output shows the item)")
            else error({ convert = "loop_control '" .. k .. "'" }, 0) end
        end
    end
end

-- become: the keywords carry over (docs/become.md); a method cutover does
-- not have makes the step fail.
function C:become(src, t, into)
    if t.become == nil and t.become_user == nil and t.become_method == nil and t.become_flags == nil then return end
    if t.become_method ~= nil and t.become_method ~= "sudo" and t.become_method ~= "su" then
        error({ convert = "become_method '" .. tostring(t.become_method) .. "' (cutover has sudo and su)" }, 0)
    end
    if t.become ~= nil then
        if type(t.become) == "boolean" then into:put("become", t.become)
        else into:put("become", cond_value(self, t.become)) end
    end
    for _, k in ipairs({ "become_user", "become_method", "become_flags" }) do
        if t[k] ~= nil then into:put(k, self:value(src, t[k])) end
    end
end

-- Converts one task (or block) into a step; a task that cannot be
-- converted becomes a fail step.
function C:step(src, t, ctx)
    if type(t) ~= "table" or t == yaml.null or not is_map_value(src, t) then
        bad(self:at(src, t) .. ": a task must be a mapping")
    end
    local mark = #self.problems
    local ok, out = self:try(function() return self:step_body(src, t, ctx) end)
    if ok then self:claim_name(out); return out end
    for i = #self.problems, mark + 1, -1 do self.problems[i] = nil end
    self:report(self:at(src, t), (type(t.name) == "string" and ("task '" .. t.name .. "': ") or "task: ") ..
        out .. ": the step fails instead")
    return self:fail_step(src, t, out, ctx.handler)
end

-- The task's module: its one key that is no task keyword (raises
-- convert for a keyword cutover does not have, or two modules).
local function module_key(src, t, ctx)
    local mkey
    for _, k in ipairs(ordered_keys(src, t)) do
        if type(k) ~= "string" then error({ convert = "a key that is not text" }, 0) end
        local kind = TASK_KEYWORDS[k]
        if kind == nil and not k:match("^with_") then
            if k == "listen" and ctx.handler then
                -- below
            elseif BLOCKING_KEYWORDS[k] then error({ convert = "'" .. k .. "'" }, 0)
            elseif mkey then error({ convert = "two modules ('" .. mkey .. "' and '" .. k .. "')" }, 0)
            else mkey = k end
        end
    end
    return mkey
end

-- The step's name: the task's (translated, or kept as plain text), or
-- for a handler known only by its topic, the topic.
function C:step_name(src, t, ctx, step)
    if t.name == nil and ctx.handler and t.listen ~= nil then
        -- a handler known only by its topic is named after it
        local topic = type(t.listen) == "table" and t.listen[1] or t.listen
        if type(topic) == "string" then step:put("name", topic) end
    end
    if type(t.name) == "table" then error({ convert = "a name that is not text" }, 0) end
    if t.name ~= nil then
        local ok, name = self:try(function() return self:value(src, t.name) end)
        if not ok then
            self:report(self:at(src, t, "name"), "name: " .. name .. ": kept as plain text")
            name = jinja.literal(tostring(t.name))
        end
        step:put("name", type(name) == "string" and name or tostring(name))
    end
end

-- What the step does: a block's parts, meta, an include or import of
-- tasks or a role, or the module as an action.
function C:step_action(src, t, mkey, ctx, step)
    local is_block = t.block ~= nil
    if is_block then
        if mkey then error({ convert = "a block with a module" }, 0) end
        for _, part in ipairs({ "block", "rescue", "always" }) do
            if t[part] ~= nil then step:put(part, self:steps(src, t[part], ctx, t, part)) end
        end
    elseif not mkey then
        error({ convert = "no module" }, 0)
    else
        local m = strip_fqcn(mkey)
        if m == "meta" then
            if t.meta ~= "flush_handlers" then error({ convert = "meta: " .. tostring(t.meta) }, 0) end
            step:put("meta", "flush_handlers")
        elseif m == "include_tasks" or m == "import_tasks" then
            self:include(src, t, mkey, m == "include_tasks" and "include_steps" or "import_steps", ctx, step)
        elseif m == "include_role" or m == "import_role" then
            local arg = t[mkey]
            local name = type(arg) == "table" and arg.name or arg
            if type(arg) == "table" then
                for k in pairs(arg) do if k ~= "name" then error({ convert = mkey .. " '" .. k .. "'" }, 0) end end
            end
            if type(name) ~= "string" or name:find("{{", 1, true) then error({ convert = mkey ..
                " without a plain name" }, 0) end
            self:role(name, src, t, mkey)
            step:put(m, name)
        else
            local action, args = self:module(src, t, mkey, ctx)
            if action == "template" and self.bad_templates[self.last_file] then
                error({ convert = "its template did not convert (see the template's lines above)" }, 0)
            end
            step:put(action, args)
        end
    end
end

-- notify: handler names; a listen topic becomes the names of its handlers
function C:notify_names(src, v)
    local names = {}
    for _, n in ipairs(type(v) == "table" and v or { v }) do
        if type(n) ~= "string" then error({ convert =
            "notify of something that is not a handler name" }, 0) end
        if self.listen[n] then
            for _, h in ipairs(self.listen[n]) do names[#names + 1] = h end
        else
            names[#names + 1] = self:value(src, n)
        end
    end
    return (#names == 1 and type(v) ~= "table") and names[1] or names
end

-- The task keywords that carry over (conditions translated), in order.
function C:step_keywords(src, t, step)
    for _, k in ipairs({ "when", "register", "notify", "ignore_errors", "changed_when", "failed_when", "until",
                         "retries", "delay", "tags", "no_log", "run_once", "delegate_to", "check_mode" }) do
        local v = t[k]
        if (k == "retries" or k == "delay") and v ~= nil and t["until"] == nil then
            -- without until Ansible does not retry; cutover refuses them
            self:report(self:at(src, t, k), "'" .. k .. "' without 'until': left out (Ansible ignores it)")
            v = nil
        end
        if v ~= nil and v ~= yaml.null then
            if TASK_KEYWORDS[k] == "cond" then
                step:put(k, cond_value(self, v))
            elseif k == "ignore_errors" and type(v) == "string" then
                step:put(k, cond_value(self, v))
            elseif k == "notify" then
                step:put(k, self:notify_names(src, v))
            else
                step:put(k, self:value(src, v))
            end
        end
    end
end

function C:step_body(src, t, ctx)
    local step = Y.map()
    local mkey = module_key(src, t, ctx)
    self:step_name(src, t, ctx, step)
    self:become(src, t, step)
    for _, k in ipairs(ordered_keys(src, t)) do
        if TASK_KEYWORDS[k] == "drop" then self:report(self:at(src, t, k), "'" .. k .. "': left out") end
    end
    if t.listen ~= nil then
        -- notify by topic becomes notify by the names of its handlers
        if not ctx.handler or type(step:get("name")) ~= "string" then error({ convert = "'listen'" }, 0) end
        for _, topic in ipairs(type(t.listen) == "table" and t.listen or { t.listen }) do
            self.listen[topic] = self.listen[topic] or {}
            table.insert(self.listen[topic], step:get("name"))
        end
    end
    self:step_action(src, t, mkey, ctx, step)
    self:loop(src, t, step)
    self:step_keywords(src, t, step)
    if t.vars ~= nil then
        local vars = self:value(src, t.vars)
        self:note_types(t.vars)
        step:put("vars", vars)
    end
    return step
end

function C:steps(src, list, ctx, parent, key)
    if list == nil or list == yaml.null then return {} end
    if type(list) ~= "table" or is_map_value(src, list) then
        bad((parent and self:at(src, parent, key) or self:at(src, list)) .. ": '" .. (key or "tasks") ..
            "' must be a list of tasks")
    end
    local out = {}
    for i, t in ipairs(list) do
        if type(t) ~= "table" then bad(self:at(src, list) .. ": item " .. i .. " of '" .. (key or "tasks") ..
            "' must be a task (a mapping)") end
        out[#out + 1] = self:step(src, t, ctx)
    end
    return out
end

return { methods = C }
