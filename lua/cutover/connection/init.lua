-- connection: opens the connection a host's variables ask for.
-- ansible_connection: local (the default for localhost) or ssh (the
-- default for every other host; arrives with the SSH transport).
local M = {}

function M.open(name, hostvars)
    local kind = hostvars.ansible_connection
    if kind == nil then
        kind = (name == "localhost" or name == "127.0.0.1") and "local" or "ssh"
    end
    if kind == "local" then
        return require("cutover.connection.local").new(name)
    end
    if kind == "ssh" then
        return nil, "host " .. name .. ": the ssh connection is not available in this version of cutover (use ansible_connection: local)"
    end
    return nil, "host " .. name .. ": unknown ansible_connection '" .. tostring(kind) .. "' (expected local or ssh)"
end

return M
