-- convert.ansible.module_args: a task's module and its arguments (mapping
-- or key=value free form) as a cutover action and its arguments, by the
-- module map.  Part of the converter in init.lua: these are its methods.
local yaml = require("cutover.core.yaml")
local util = require("cutover.util")
local jinja = require("cutover.convert.jinja")
local Y = require("cutover.convert.yaml_out")
local MODULES = require("cutover.convert.ansible.module_map")
local regex = require("cutover.convert.ansible.regex")
local common = require("cutover.convert.ansible.common")
local ordered_keys, is_map_value, strip_fqcn = common.ordered_keys, common.is_map_value, common.strip_fqcn
local basename = common.basename

local C = {}

-- Words of a free form, split at white space outside quotes and {{ }}
-- (quotes are removed, as Ansible's parser does).
local function words(s)
    local out, cur, i, q, depth, any = {}, {}, 1, nil, 0, false
    while i <= #s do
        local c = s:sub(i, i)
        if q then
            if c == q then q = nil else cur[#cur + 1] = c end
        elseif s:sub(i, i + 1) == "{{" then
            depth = depth + 1; cur[#cur + 1] = "{{"; i = i + 1; any = true
        elseif s:sub(i, i + 1) == "}}" and depth > 0 then
            depth = depth - 1; cur[#cur + 1] = "}}"; i = i + 1
        elseif depth == 0 and (c == "'" or c == '"') then
            q = c; any = true
        elseif depth == 0 and c:match("%s") then
            if #cur > 0 or any then out[#out + 1] = table.concat(cur) end
            cur, any = {}, false
        else
            cur[#cur + 1] = c; any = true
        end
        i = i + 1
    end
    if q then return nil, "an unclosed quote in '" .. s .. "'" end
    if #cur > 0 or any then out[#out + 1] = table.concat(cur) end
    return out
end

-- Parses Ansible's key=value free form (`path=/x state=directory`).
local function kv_args(s)
    local ws, err = words(s)
    if not ws then return nil, err end
    local out, order = {}, {}
    for _, w in ipairs(ws) do
        local k, v = w:match("^([%a_][%w_]*)=(.*)$")
        if not k then return nil, "the free-form text '" .. s .. "'" end
        out[k] = v
        order[#order + 1] = k
    end
    return out, order
end

-- Takes creates=, chdir=... out of a command's free form.
local function split_free(s, keys)
    local extra = {}
    local set = {}
    for _, k in ipairs(keys) do set[k] = true end
    -- only words written as key=value (no quotes, {{ }} allowed) are taken
    local ws = words(s) or {}
    for _, w in ipairs(ws) do
        local k, v = w:match("^([%a_]+)=(.*)$")
        if k and set[k] then
            -- taken out of the command line when written there as is
            local piece = k .. "=" .. v
            local at = s:find(" " .. piece, 1, true)
            if at then
                extra[k] = v
                s = s:sub(1, at - 1) .. s:sub(at + 1 + #piece)
            elseif s:sub(1, #piece) == piece then
                extra[k] = v
                s = s:sub(#piece + 1):gsub("^%s+", "")
            end
        end
    end
    return s, extra
end

local function mode_text(v)
    if type(v) == "number" and math.type(v) == "integer" then return string.format("0%o", v) end
    if type(v) == "string" and v:match("^0?[0-7][0-7][0-7]$") then return #v == 3 and "0" .. v or v end
    return nil
end

-- The arguments as given: a mapping, or a free-form string (a command
-- line with creates=... taken out, or key=value words), then the task's
-- args:.  Returns them and the key order of key=value words.
function C:given_args(src, t, row, raw)
    local given, free_order = {}, nil
    if type(raw) == "string" then
        if row.free then
            local text, extra = split_free(raw, row.free_keys or {})
            given[row.free] = text
            for k, v in pairs(extra) do given[k] = v end
        elseif row.any or row.args then
            local kv, korder = kv_args(raw)
            if not kv then error({ convert = korder }, 0) end
            given, free_order = kv, korder
        end
    elseif type(raw) == "table" and raw ~= yaml.null then
        if not is_map_value(src, raw) then error({ convert = "module arguments that are not a mapping" }, 0) end
        for k, v in pairs(raw) do given[k] = v end
    elseif raw ~= nil and raw ~= yaml.null then
        error({ convert = "module arguments that are not a mapping" }, 0)
    end
    if type(t.args) == "table" then for k, v in pairs(t.args) do given[k] = v end end
    return given, free_order
end

-- set_fact: every argument is a variable, in the order written.
function C:set_fact_args(src, raw, given, free_order)
    local args = Y.map()
    for _, k in ipairs(type(raw) == "table" and ordered_keys(src, raw) or free_order or util.sorted_keys(given)) do
        if k == "cacheable" then
            self:report(self:at(src, raw, k), "set_fact's 'cacheable': left out (cutover has no fact cache)")
        elseif type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
            error({ convert = "set_fact name '" .. tostring(k) .. "'" }, 0)
        else
            args:put(k, self:value(src, given[k]))
        end
    end
    return args
end

-- The order the arguments convert in: as written (a free form's own
-- argument first), then the task's args:.
local function args_order(src, t, row, raw, given, free_order)
    local order = type(raw) == "table" and ordered_keys(src, raw) or free_order
    if not order then
        order = { row.free }
        for _, k in ipairs(util.sorted_keys(given)) do if k ~= row.free then order[#order + 1] = k end end
    end
    if type(t.args) == "table" then for _, k in ipairs(ordered_keys(src, t.args)) do order[#order + 1] = k end end
    return order
end

-- One argument k (value given[k]) into args under its cutover name, by
-- the module's row: modes, regular expressions, backrefs lines, limited
-- values, conditions and expressions each their own way.
function C:module_arg(src, row, mkey, raw, given, k, args)
    local v = given[k]
    local to = row.args[k]
    if mkey == "debug" and k == "verbosity" then
        self:report(self:at(src, raw, k), "debug's 'verbosity': left out (the message always shows)")
    elseif not to then
        error({ convert = "argument '" .. tostring(k) .. "' of " .. mkey .. " has no cutover equivalent" }, 0)
    elseif v == yaml.null then
        -- an explicit null is the default
    elseif to == "mode" then
        local m = mode_text(v)
        if not m then error({ convert = "mode '" .. tostring(v) .. "' (only octal modes convert)" }, 0) end
        args:put("mode", m)
    elseif row.regex and row.regex[k] and v ~= row.regex[k] then
        if type(v) ~= "string" or v:find("{{", 1, true) then
            error({ convert = k .. " that is not a plain regular expression" }, 0)
        end
        local lua, why = regex.regex_to_lua(v)
        if not lua then error({ convert = k .. " '" .. v .. "': " .. why ..
            " has no Lua pattern equivalent" }, 0) end
        args:put(to, lua)
    elseif mkey:match("lineinfile$") and k == "line" and (given.backrefs == true or
        given.backrefs == "yes") then
        if type(v) ~= "string" or v:find("{{", 1, true) then
            error({ convert = "a backrefs line with {{ }}" }, 0)
        end
        -- \1 and \g<1> become %1; a literal % is %%
        local line = v:gsub("%%", "%%%%"):gsub("\\g<(%d)>", "%%%1"):gsub("\\(%d)", "%%%1")
        args:put(to, line)
    elseif row.values and row.values[k] then
        local okv = false
        for _, x in ipairs(row.values[k]) do if x == v then okv = true end end
        if not okv then error({ convert = k .. "=" .. tostring(v) .. " of " .. mkey }, 0) end
        args:put(to, v)
    elseif row.conditions and row.conditions[k] then
        local list = type(v) == "table" and v or { v }
        local out = {}
        for i, c in ipairs(list) do
            if type(c) == "boolean" then out[i] = c else
                local lua, err = jinja.condition(tostring(c), self.jctx)
                if not lua then error({ convert = err .. " in '" .. tostring(c) .. "'" }, 0) end
                out[i] = lua
            end
        end
        args:put(to, type(v) == "table" and out or out[1])
    elseif row.exprs and row.exprs[k] then
        local lua, err = jinja.expr(tostring(v), self.jctx)
        if not lua then error({ convert = err .. " in '" .. tostring(v) .. "'" }, 0) end
        args:put(to, lua)
    else
        args:put(to, self:value(src, v))
    end
end

-- files: a relative src is looked up as Ansible does and converted
function C:module_src(row, args, ctx)
    local s = args:get("src")
    local path, st = self:find_file(s, row.lookup, ctx)
    if not path then error({ convert = row.lookup:sub(1, -2) .. " source '" .. s ..
        "' not found or not a plain path" }, 0) end
    if st.type ~= "file" then error({ convert = "source '" .. s .. "' is a " .. st.type ..
        " (only single files convert)" }, 0) end
    local rel = self:file_out(path, row.action == "template")
    if not rel then error({ convert = "source '" .. s .. "' is outside the playbook's folder" }, 0) end
    -- cutover looks in a role's templates/ and files/ (then the
    -- role's folder) for a role step, else from the playbook's folder
    local rd = ctx.role_dir and (ctx.role_dir .. "/")
    if rd and path:sub(1, #rd) == rd then
        local inner = path:sub(#rd + 1)
        args:put("src", inner:match("^templates/(.+)$") or inner:match("^files/(.+)$") or inner)
    else
        args:put("src", rel)
    end
    local dest = args:get("dest")
    if type(dest) == "string" and dest:sub(-1) == "/" then args:put("dest", dest .. basename(s)) end
end

-- pause: an approval gate
function C:pause_gate(src, t, args)
    -- a gate name is unique in a playbook: a repeated one gets a number
    local gate = util.slug(type(t.name) == "string" and t.name or ("pause " .. select(2, self:at(src, t))))
    if self.gates[gate] then
        local n = 2
        while self.gates[gate .. "-" .. n] do n = n + 1 end
        gate = gate .. "-" .. n
    end
    self.gates[gate] = true
    local m = Y.map():put("gate", gate)
    if args:get("prompt") then m:put("prompt", args:get("prompt")) end
    return m
end

-- The action part of a task: returns action name, args | raises convert.
function C:module(src, t, mkey, ctx)
    local row = MODULES[strip_fqcn(mkey)]
    local raw = t[mkey]
    if not row then error({ convert = "module '" .. tostring(mkey) .. "' has no cutover action" }, 0) end
    local given, free_order = self:given_args(src, t, row, raw)
    if row.any then return row.action, self:set_fact_args(src, raw, given, free_order) end
    local args = Y.map()
    local seen = {}
    for _, k in ipairs(args_order(src, t, row, raw, given, free_order)) do
        if not seen[k] then
            seen[k] = true
            self:module_arg(src, row, mkey, raw, given, k, args)
        end
    end
    for k, v in pairs(row.defaults or {}) do
        if args:get(k) == nil then args:put(k, v) end
    end
    if row.lookup and type(args:get("src")) == "string" then self:module_src(row, args, ctx) end
    if mkey == "pause" then args = self:pause_gate(src, t, args) end
    return row.action, args
end

return { methods = C }
