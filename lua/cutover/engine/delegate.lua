-- engine.delegate: the connections of delegated steps (delegate_to),
-- a pool of their own.
local connections = require("cutover.connection")

local Run = {}

-- The connection a delegated step uses: its own pool, so a delegate's
-- session is never the one its own host is using at that moment.
function Run:delegate(name)
    self.delegates = self.delegates or {}
    local conn = self.delegates[name]
    if conn then return conn end
    local h = self.inventory.hosts[name]
    if not h then
        if name == "localhost" or name == "127.0.0.1" then
            conn = connections.open(name, { ansible_connection = "local" }, self.opts)
            self.delegates[name] = conn
            return conn
        end
        return nil, "delegate_to: no host '" .. name .. "' in the inventory"
    end
    local err
    conn, err = connections.open(name, self:connection_vars(name), self.opts)
    if not conn then return nil, "delegate_to " .. name .. ": " .. err end
    self.delegates[name] = conn
    return conn
end

return { methods = Run }
