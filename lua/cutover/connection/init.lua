-- connection: opens the connection a host's variables ask for.
-- ansible_connection: local (the default for localhost and 127.0.0.1) or
-- ssh (the default for every other host).  Connections open lazily: the
-- SSH handshake happens at the host's first step (Conn:open()).
local sys = require("cutover.core.sys")
local fs = require("cutover.core.fs")

local M = {}

local function home()
    return os.getenv("HOME") or "/root"
end

local function expand(path)
    if type(path) ~= "string" then return path end
    if path:sub(1, 2) == "~/" then return home() .. path:sub(2) end
    return path
end
M.expand = expand

-- The SSH settings for a host, from its variables and the run's options.
function M.ssh_settings(name, v, opts)
    opts = opts or {}
    local keys = {}
    local explicit = v.ansible_ssh_private_key_file or v.ansible_private_key_file
    if explicit then keys[#keys + 1] = expand(tostring(explicit)) end
    if not explicit then
        for _, k in ipairs({ "id_ed25519", "id_ecdsa", "id_rsa" }) do
            local p = home() .. "/.ssh/" .. k
            if fs.stat(p, true) then keys[#keys + 1] = p end
        end
    end
    local user = v.ansible_user or v.ansible_ssh_user
    if user == nil then user = (sys.user()) end
    local sock = os.getenv("SSH_AUTH_SOCK")
    return {
        host = tostring(v.ansible_host or v.ansible_ssh_host or name),
        port = math.tointeger(tonumber(v.ansible_port or v.ansible_ssh_port or 22)) or 22,
        user = tostring(user),
        keys = keys,
        agent = sock ~= nil and sock ~= "" and v.cutover_ssh_agent ~= false,
        password = v.ansible_password or v.ansible_ssh_pass,
        known_hosts = expand(opts.known_hosts or v.ansible_ssh_known_hosts_file
            or v.cutover_known_hosts or (home() .. "/.ssh/known_hosts")),
        accept_new = opts.accept_new_host_keys == true,
        timeout = tonumber(v.ansible_timeout or v.ansible_ssh_timeout or 30) or 30,
        max_output = opts.max_output,
    }
end

function M.open(name, hostvars, opts)
    local kind = hostvars.ansible_connection
    if kind == nil then
        kind = (name == "localhost" or name == "127.0.0.1") and "local" or "ssh"
    end
    if kind == "local" then
        return require("cutover.connection.local").new(name)
    end
    if kind == "ssh" or kind == "paramiko" or kind == "openssh" then
        local shell = hostvars.ansible_shell_type or "sh"
        if shell ~= "sh" then
            return nil, "host " .. name .. ": ansible_shell_type '" .. tostring(shell) ..
                "' is not supported yet (only sh; cmd arrives with the Windows support)"
        end
        return require("cutover.connection.ssh").new(name, M.ssh_settings(name, hostvars, opts))
    end
    return nil, "host " .. name .. ": unknown ansible_connection '" .. tostring(kind) .. "' (expected local or ssh)"
end

return M
