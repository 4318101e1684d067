-- connection: opens the connection a host's variables ask for.
-- ansible_connection: local (the default for localhost and 127.0.0.1) or
-- ssh (the default for every other host).  Connections open lazily: the
-- SSH handshake happens at the host's first step (Conn:open()).
local sys = require("cutover.core.sys")
local fs = require("cutover.core.fs")
local ssh_config = require("cutover.ssh_config")
local util = require("cutover.util")

local M = {}

-- The ansible_* inventory variables cutover acts on.  A run warns once
-- about each other one its hosts carry (an inventory brought from Ansible
-- must not lose a setting silently).
M.HONOURED = {}
for _, k in ipairs({ "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port", "ansible_user",
                     "ansible_ssh_user", "ansible_password", "ansible_ssh_pass", "ansible_private_key_file",
                     "ansible_ssh_private_key_file", "ansible_ssh_common_args", "ansible_ssh_extra_args",
                     "ansible_timeout", "ansible_ssh_timeout", "ansible_ssh_known_hosts_file",
                     "ansible_connection", "ansible_shell_type", "ansible_become", "ansible_become_user",
                     "ansible_become_method", "ansible_become_flags", "ansible_become_password",
                     "ansible_become_pass" }) do
    M.HONOURED[k] = true
end

-- Why some are not, where there is more to say than "ignored".
M.WHY_NOT_HONOURED = {
    ansible_python_interpreter = "cutover runs no Python on hosts",
    ansible_ssh_pipelining = "cutover sends each step on one channel already",
    ansible_pipelining = "cutover sends each step on one channel already",
}

local function home()
    return os.getenv("HOME") or "/root"
end

local function expand(path)
    if type(path) ~= "string" then return path end
    if path:sub(1, 2) == "~/" then return home() .. path:sub(2) end
    return path
end
M.expand = expand

-- The OpenSSH client config in force: opts.ssh_config (-F FILE), else
-- ~/.ssh/config when it exists.  Read once per path.  Returns config |
-- nil (none) | nil, "FILE:LINE: message".
local ssh_configs = {}
function M.ssh_config(opts)
    local path = opts and opts.ssh_config
    if not path then
        path = home() .. "/.ssh/config"
        if not fs.stat(path, true) then return nil end
    end
    if ssh_configs[path] == nil then
        local cfg, err = ssh_config.load(path)
        ssh_configs[path] = cfg or { error = err }
    end
    local c = ssh_configs[path]
    if c.error then return nil, c.error end
    return c
end

-- Jump hosts -> the chain's last hop, each hop's proxy_jump being the
-- one before it.  Each hop is looked up in the config too, as ssh -J
-- does; the first hop is reached as ssh would reach it, through its own
-- ProxyJump or ProxyCommand in the config, if it has one.
local function jump_chain(cfg, hops, depth)
    local jump
    for i, hop in ipairs(hops or {}) do
        local ok, err = ssh_config.check_hostname(hop.host)
        if not ok then return nil, "jump host: " .. err end
        local jc = cfg and cfg:lookup(hop.host, { user = hop.user, port = hop.port }) or {}
        local h = { host = jc.hostname or hop.host, port = hop.port or jc.port or 22,
                    user = hop.user or jc.user or (sys.user()), proxy_jump = jump }
        ok, err = ssh_config.check_hostname(h.host)
        if ok then ok, err = ssh_config.check_user(h.user) end
        if not ok then return nil, "jump host " .. hop.host .. ": " .. err end
        if i == 1 and jc.proxy_jump then
            if depth >= ssh_config.MAX_HOPS then
                return nil, "the jump hosts' own ProxyJump settings nest more than " ..
                    ssh_config.MAX_HOPS .. " deep (a loop through '" .. hop.host .. "'?)"
            end
            local before, jerr = jump_chain(cfg, jc.proxy_jump, depth + 1)
            if jerr then return nil, jerr end
            h.proxy_jump = before
        elseif i == 1 and jc.proxy_command then
            h.proxy_command, err = ssh_config.expand_proxy_command(jc.proxy_command, h.host, h.port, h.user, hop.host)
            if not h.proxy_command then return nil, "jump host " .. hop.host .. ": " .. err end
        end
        jump = h
    end
    return jump
end

-- The key files to offer: the inventory's, else the SSH config's
-- IdentityFile ones that exist, else ssh's default ones that exist.
local function key_files(v, sc)
    local keys = {}
    local explicit = v.ansible_ssh_private_key_file or v.ansible_private_key_file
    if explicit then keys[#keys + 1] = expand(tostring(explicit)) end
    if not explicit and sc.identity_files then
        -- as ssh: configured identities that do not exist are skipped,
        -- and the default ones are not added
        explicit = true
        for _, p in ipairs(sc.identity_files) do
            if fs.stat(p, true) then keys[#keys + 1] = p end
        end
    end
    if not explicit then
        for _, k in ipairs({ "id_ed25519", "id_ecdsa", "id_rsa" }) do
            local p = home() .. "/.ssh/" .. k
            if fs.stat(p, true) then keys[#keys + 1] = p end
        end
    end
    return keys
end

-- Jump hosts and ProxyCommand: from the inventory, else from the SSH
-- config.  Returns hops, command (false: turned off) | nil, nil, message.
local function proxy_settings(v, sc)
    -- jump hosts: from the inventory (cutover_proxy_jump, or -J / -o
    -- ProxyJump= in ansible_ssh_common_args, Ansible's way), else from
    -- the SSH config
    local hops
    local spec = v.cutover_proxy_jump
    local common = v.ansible_ssh_common_args or v.ansible_ssh_extra_args
    if spec == nil and type(common) == "string" then
        spec = common:match("%-J%s*['\"]?([^%s'\"]+)") or common:match("ProxyJump=['\"]?([^%s'\"]+)")
    end
    if type(spec) == "string" and spec ~= "none" then
        local perr
        hops, perr = ssh_config.parse_jump(spec)
        if not hops then return nil, nil, "cannot read the jump hosts '" .. spec .. "': " .. perr end
    end
    -- a ProxyCommand: cutover_proxy_command, or -o ProxyCommand="..." in
    -- ansible_ssh_common_args; "none" turns off the config's
    local command = v.cutover_proxy_command
    if command == nil and type(common) == "string" then
        command = common:match("ProxyCommand=\"([^\"]*)\"") or common:match("ProxyCommand='([^']*)'")
            or common:match("ProxyCommand=([^%s'\"]+)")
    end
    if command == "none" then
        command = false
    elseif command ~= nil then
        -- (the config's was checked when it was read)
        if type(command) ~= "string" or command == "" then
            return nil, nil, "the ProxyCommand must be a command line, got " .. tostring(command)
        end
        local pc_ok, terr = ssh_config.check_proxy_command(command)
        if not pc_ok then return nil, nil, "ProxyCommand: " .. terr end
        if hops then return nil, nil, "both a jump host and a ProxyCommand are set in the inventory; keep one" end
    end
    if spec == nil and command == nil then
        hops, command = sc.proxy_jump, sc.proxy_command
    end
    return hops, command
end

-- The persistent session: cutover_session, which CUTOVER_SESSION=0 turns
-- off.  Returns true, false or nil (not set) | nil, message.
local function session_setting(v)
    local session = v.cutover_session
    if session == "true" or session == "false" then session = session == "true" end
    if session ~= nil and type(session) ~= "boolean" then
        return nil, "cutover_session must be true or false, got " .. tostring(session)
    end
    -- CUTOVER_SESSION=0 turns the session off for every host of the run
    -- (the suites run once so; an operator's switch when a host's shell
    -- misbehaves); it never turns on what the inventory turned off
    local env = os.getenv("CUTOVER_SESSION")
    if env == "0" then
        session = false
    elseif env ~= nil and env ~= "" and env ~= "1" then
        return nil, "CUTOVER_SESSION must be 0 or 1, got '" .. env .. "'"
    end
    return session
end

-- The SSH settings for a host, from its variables and the run's options.
-- Inventory variables win over ~/.ssh/config (or -F), which wins over the
-- defaults.  The config is looked up by ansible_host (else the inventory
-- name), and its HostName applies to that name, as ssh would do.
-- Returns settings | nil, message (a bad config file).
function M.ssh_settings(name, v, opts)
    opts = opts or {}
    local cfg, cerr = M.ssh_config(opts)
    if cerr then return nil, cerr end
    local target = tostring(v.ansible_host or v.ansible_ssh_host or name)
    local iuser = v.ansible_user or v.ansible_ssh_user
    local iport = v.ansible_port or v.ansible_ssh_port
    -- names that could smuggle shell syntax into a ProxyCommand's tokens
    -- are refused before anything is looked up or expanded (no real host
    -- name, address or login has them)
    local ok, uerr = ssh_config.check_hostname(target)
    if ok and iuser ~= nil then ok, uerr = ssh_config.check_user(iuser) end
    if not ok then return nil, uerr end
    if iport ~= nil then
        -- before the SSH config is looked up with it
        local _, perr = util.port_number(v.ansible_port ~= nil and "ansible_port" or "ansible_ssh_port", iport)
        if perr then return nil, perr end
    end
    local sc = cfg and cfg:lookup(target, { user = iuser, port = iport }) or {}
    local keys = key_files(v, sc)
    local user = iuser or sc.user
    if user == nil then user = (sys.user()) end
    ok, uerr = ssh_config.check_user(user)
    if ok and sc.hostname then ok, uerr = ssh_config.check_hostname(sc.hostname) end
    if not ok then return nil, uerr end
    local sock = os.getenv("SSH_AUTH_SOCK")
    local hops, command, xerr = proxy_settings(v, sc)
    if xerr then return nil, xerr end
    local jump, jerr = jump_chain(cfg, hops, 0)
    if jerr then return nil, jerr end
    local host = sc.hostname or target
    local port, perr = util.port_number(iport ~= nil and (v.ansible_port ~= nil and "ansible_port" or
        "ansible_ssh_port")
                                        or "the SSH config's Port", iport or sc.port or 22)
    if not port then return nil, perr end
    local session, serr = session_setting(v)
    if serr then return nil, serr end
    local tname = v.ansible_timeout ~= nil and "ansible_timeout" or "ansible_ssh_timeout"
    local timeout, terr = util.seconds(tname, v.ansible_timeout or v.ansible_ssh_timeout or 30)
    if not timeout then return nil, terr end
    if command then
        local eerr
        command, eerr = ssh_config.expand_proxy_command(command, host, port, user, target)
        if not command then return nil, eerr end
    end
    return {
        host = host,
        port = port,
        user = tostring(user),
        keys = keys,
        agent = sock ~= nil and sock ~= "" and v.cutover_ssh_agent ~= false,
        password = v.ansible_password or v.ansible_ssh_pass or opts.ssh_password,
        known_hosts = expand(opts.known_hosts or v.ansible_ssh_known_hosts_file
            or v.cutover_known_hosts or (home() .. "/.ssh/known_hosts")),
        accept_new = opts.accept_new_host_keys == true,
        timeout = timeout,
        max_output = opts.max_output,
        proxy_jump = jump,
        proxy_command = command or nil,
        sftp = v.cutover_sftp ~= false,
        session = session ~= false,
    }
end

-- An address as one spelling per machine where that is sure without
-- asking DNS: lower case, no brackets or trailing dot, IPv4-mapped IPv6
-- as IPv4, octets without leading zeros, and every loopback spelling
-- (localhost, 127.0.0.0/8, ::1, ::ffff:127.x) as 127.0.0.1.
local function normal_address(a)
    a = tostring(a):lower():gsub("^%[(.*)%]$", "%1"):gsub("%.$", "")
    a = a:gsub("^::ffff:(%d+%.%d+%.%d+%.%d+)$", "%1"):gsub("^0:0:0:0:0:ffff:(%d+%.%d+%.%d+%.%d+)$", "%1")
    local q = { a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #q == 4 then
        for i = 1, 4 do q[i] = tostring(math.tointeger(tonumber(q[i]))) end
        a = table.concat(q, ".")
        if q[1] == "127" then return "127.0.0.1" end
    end
    if a == "localhost" or a:match("%.localhost$") or a == "::1" or a == "0:0:0:0:0:0:0:1" then
        return "127.0.0.1"
    end
    return a
end
M.normal_address = normal_address

-- The machine a host's connection reaches, for the journal's locks:
-- "local@CONTROLLER" for the local connection, "USER@ADDRESS:PORT" for
-- SSH (with " via ..." and the jump host's, or " via ProxyCommand",
-- since an address behind a jump host is on another network).  nil when
-- the settings cannot be built (the host fails when it connects).
function M.machine(name, hostvars, opts)
    local kind = hostvars.ansible_connection
    if kind == nil then
        kind = (name == "localhost" or name == "127.0.0.1") and "local" or "ssh"
    end
    if kind == "local" then return "local@" .. tostring((sys.uname() or {}).node) end
    local settings = M.ssh_settings(name, hostvars, opts)
    if not settings then return nil end
    local function key(h)
        local k = tostring(h.user) .. "@" .. normal_address(h.host) .. ":" .. tostring(h.port)
        if h.proxy_jump then return k .. " via " .. key(h.proxy_jump) end
        if h.proxy_command then return k .. " via ProxyCommand" end
        return k
    end
    return key(settings)
end

function M.open(name, hostvars, opts)
    local kind = hostvars.ansible_connection
    if kind == nil then
        kind = (name == "localhost" or name == "127.0.0.1") and "local" or "ssh"
    end
    if kind == "local" then
        return require("cutover.connection.local").new(name, opts)
    end
    if kind == "ssh" or kind == "paramiko" or kind == "openssh" then
        local shell = hostvars.ansible_shell_type or "sh"
        if shell ~= "sh" and shell ~= "cmd" then
            return nil, "host " .. name .. ": ansible_shell_type '" .. tostring(shell) ..
                "' is not supported (sh for POSIX hosts, cmd for Windows hosts)"
        end
        local settings, serr = M.ssh_settings(name, hostvars, opts)
        if not settings then return nil, "host " .. name .. ": " .. serr end
        if shell == "cmd" then
            return require("cutover.connection.windows").new(name, settings)
        end
        return require("cutover.connection.ssh").new(name, settings)
    end
    return nil, "host " .. name .. ": unknown ansible_connection '" .. tostring(kind) .. "' (expected local or ssh)"
end

return M
