-- vars: the variables one host sees, in layers.  Highest precedence first:
--   loop variables (item / loop_var), extra vars (-e), registered results
--   and set_fact, play vars, host vars, group vars (children before their
--   parents), then nothing: an undefined name is an error in expressions.
-- Special names always win: inventory_hostname, facts (also ansible_facts),
-- secret, play_hosts.  Below everything: ansible_X for a gathered fact X.
-- Values from vars files, play vars and -e may hold {{ }} themselves; they
-- are rendered when read, in the reader's scope.  Registered results and
-- set_fact values are literal (command output is data, never template).
local expr = require("cutover.expr")

local Scope = {}
Scope.__index = Scope

local M = {}

-- layers: list of { vars = table, literal = bool }, highest first
function M.new(specials, layers)
    return setmetatable({ specials = specials or {}, layers = layers or {},
                          resolving = {} }, Scope)
end

-- A scope with one more layer on top (loop variables).
function Scope:with(vars)
    local layers = { { vars = vars, literal = true } }
    for i, l in ipairs(self.layers) do layers[i + 1] = l end
    return setmetatable({ specials = self.specials, layers = layers,
                          resolving = self.resolving }, Scope)
end

-- Returns the value or nil when undefined.  Raises on a template error
-- inside a variable (expressions call this through the sandbox).
function Scope:get(name)
    local v = self.specials[name]
    if v ~= nil then return v end
    for _, layer in ipairs(self.layers) do
        v = layer.vars[name]
        if v ~= nil then
            if layer.literal then return v end
            if self.resolving[name] then
                error("variable '" .. name .. "' refers to itself", 0)
            end
            self.resolving[name] = true
            -- pcall: a budget or interrupt raised inside must not leave
            -- the name marked as resolving (a false "refers to itself")
            local done, ok, r, unknown = pcall(expr.render_value, v, self)
            self.resolving[name] = nil
            if not done then error(ok, 0) end
            if not ok then
                if unknown then
                    error(setmetatable({ unknowable = unknown }, {
                        __tostring = function() return "depends on '" .. unknown .. "', unknown in check mode" end,
                    }), 0)
                end
                error("in variable '" .. name .. "': " .. r, 0)
            end
            return r
        end
    end
    -- Ansible's injected fact names (ansible_distribution is
    -- ansible_facts.distribution), below every variable; never the
    -- connection's names (ansible_user, ansible_port, ansible_host are
    -- inventory settings, and facts.user is cutover's own)
    local facts = self.specials.facts
    if facts ~= nil and name:sub(1, 8) == "ansible_" and not M.NOT_INJECTED[name:sub(9)] then
        return facts[name:sub(9)]
    end
    return nil
end

-- Facts that have no ansible_<name> variable (docs/facts.md).
M.NOT_INJECTED = { name = true, connection = true, user = true, address = true,
                   port = true, host = true, os_release = true, boot_id = true,
                   gather_subset = true, facts_truncated = true }

-- Writes into the first layer marked `writable` (registered / set_fact).
function Scope:set(name, value)
    for _, layer in ipairs(self.layers) do
        if layer.writable then layer.vars[name] = value; return end
    end
    error("no writable layer")
end

return M
