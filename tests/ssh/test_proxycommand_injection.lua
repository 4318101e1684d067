-- Safety item 3: shell injection through ProxyCommand tokens.  A host
-- name, address or user name with shell metacharacters must be refused
-- before any %-token is expanded into a ProxyCommand (OpenSSH 9.6 does
-- the same, CVE-2023-51385), even in --check, with an error naming the
-- host.  Each case writes its own marker file if the shell ever runs
-- what the name smuggles in.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
S.install(T)
local fs = require("cutover.core.fs")

local srv = S.start(T)

-- Runs a one-step playbook (in --check and for real) against an
-- inventory; returns the two results.
local function run_both(d, inv, config)
    T.write(d .. "/inv.yml", inv)
    T.write(d .. "/ssh_config", config or "Host *\n    ProxyCommand nc %h %p\n")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: \"echo ran >> " .. d .. "/ran\"\n")
    local out = {}
    for _, extra in ipairs({ "--check", "" }) do
        local args = { "run", d .. "/p.yml", "-i", d .. "/inv.yml", "-F", d .. "/ssh_config",
                       "--known-hosts", d .. "/kh" }
        if extra ~= "" then args[#args + 1] = extra end
        out[#out + 1] = T.run(args, { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 60 })
    end
    return out
end

local function no_marker(d, what)
    local names = fs.list(d) or {}
    for _, n in ipairs(names) do
        T.ok(not n:match("^X"), what .. ": the shell ran the injected command (" .. d .. "/" .. n .. " exists)")
    end
end

local function refused(results, host, value, what)
    for _, r in ipairs(results) do
        T.eq(r.rc, 1, what .. ": exit code (a host failed): " .. r.stdout .. r.stderr)
        T.contains(r.stdout, "host " .. host .. ": ", what .. ": the error names the host: " .. r.stdout ..
                   " (exit " .. tostring(r.rc) .. ", stderr: " .. r.stderr .. ")")
        T.contains(r.stdout, "'" .. value .. "'", what .. ": the error quotes the value: " .. r.stdout)
        T.contains(r.stdout, "shell metacharacter", what .. ": the error says why: " .. r.stdout)
        T.not_contains(r.stdout .. r.stderr, "traceback", what .. ": no traceback")
    end
end

T.test("shell injection through ProxyCommand tokens: %h from the inventory name, ansible_host, HostName", function()
    local d = T.tmpdir()
    -- the inventory name is the address (%h and %n)
    local name = "web-$(touch${IFS}" .. d .. "/Xh)"
    refused(run_both(d, "all:\n  hosts:\n    '" .. name .. "': {}\n"), name, name, "inventory name")
    no_marker(d, "inventory name")
    -- other metacharacters, through ansible_host
    local cases = {
        "10.0.0.1;touch${IFS}" .. d .. "/Xa1",
        "`touch${IFS}" .. d .. "/Xa2`",
        "h|touch${IFS}" .. d .. "/Xa3",
        "h&&touch${IFS}" .. d .. "/Xa4",
        "h>" .. d .. "/Xa5",
        "-oProxyCommand=touch${IFS}" .. d .. "/Xa6",
    }
    for i, addr in ipairs(cases) do
        local inv = "all:\n  hosts:\n    web" .. i .. ":\n      ansible_host: '" .. addr .. "'\n"
        refused(run_both(d, inv), "web" .. i, addr, "ansible_host " .. addr)
    end
    no_marker(d, "ansible_host")
    -- a HostName from the SSH config with metacharacters (%h after HostName)
    local hn = "a$(touch${IFS}" .. d .. "/Xc)"
    refused(run_both(d, "all:\n  hosts:\n    cfg1: {}\n",
        "Host cfg1\n    HostName " .. hn .. "\n    ProxyCommand nc %h %p\n"), "cfg1", hn, "HostName")
    no_marker(d, "HostName")
end)

T.test("shell injection through ProxyCommand tokens: %n, %r, %p and a jump host's %h", function()
    local d = T.tmpdir()
    -- %n: the HostName is harmless, the name looked up is not
    local n = "n$(touch${IFS}" .. d .. "/Xn)"
    refused(run_both(d, "all:\n  hosts:\n    web:\n      ansible_host: '" .. n .. "'\n",
        "Host *\n    HostName 127.0.0.1\n    ProxyCommand nc %n %p\n"), "web", n, "%n")
    -- %r: the user, from the inventory and from the SSH config
    local u = "u$(touch${IFS}" .. d .. "/Xr1)"
    refused(run_both(d, "all:\n  hosts:\n    web:\n      ansible_host: 127.0.0.1\n      ansible_user: '" .. u .. "'\n",
        "Host *\n    ProxyCommand echo %r; nc %h %p\n"), "web", u, "%r from ansible_user")
    local u2 = "u`touch${IFS}" .. d .. "/Xr2`"
    refused(run_both(d, "all:\n  hosts:\n    web: { ansible_host: 127.0.0.1 }\n",
        "Host *\n    User \"" .. u2 .. "\"\n    ProxyCommand echo %r; nc %h %p\n"), "web", u2, "%r from User")
    local u3 = "u -oProxyCommand=touch" .. d .. "/Xr3"
    refused(run_both(d, "all:\n  hosts:\n    web:\n      ansible_host: 127.0.0.1\n      ansible_user: '" .. u3 .. "'\n",
        "Host *\n    ProxyCommand ssh -l %r -W %h:%p nowhere\n"), "web", u3, "%r with an option")
    -- the inventory's own ProxyCommand too
    refused(run_both(d, "all:\n  hosts:\n    web:\n      ansible_host: 127.0.0.1\n      ansible_user: '" .. u ..
        "'\n" ..
        "      cutover_proxy_command: 'echo %r; nc %h %p'\n", "\n"), "web", u, "%r, cutover_proxy_command")
    -- %p: a port that is not a number is refused, not run (nor taken as 22)
    local p = "22;touch${IFS}" .. d .. "/Xp"
    for _, r in ipairs(run_both(d,
        "all:\n  hosts:\n    web:\n      ansible_host: 127.0.0.1\n      ansible_port: '" .. p .. "'\n")) do
        T.eq(r.rc, 2, "%p: refused when the inventory loads: " .. r.stdout .. r.stderr)
        T.contains(r.stderr, "host 'web': ansible_port must be a port number from 1 to 65535, got '" .. p .. "'",
            "%p: message: " .. r.stderr)
    end
    -- a jump host whose own ProxyCommand (from the SSH config) expands its %h
    local j = "op@j$(touch${IFS}" .. d .. "/Xj)"
    refused(run_both(d, "all:\n  hosts:\n    web:\n      ansible_host: 127.0.0.1\n      cutover_proxy_jump: '" ..
        j .. "'\n"),
        "web", "j$(touch${IFS}" .. d .. "/Xj)", "jump host")
    no_marker(d, "%n %r %p jump")
end)

T.test("ProxyCommand tokens: ordinary names, addresses and users still work", function()
    -- the token values cutover hands the shell, seen by a real sshd login
    local d = S.target(T)
    T.write(d .. "/kh", srv:known_line())
    T.write(d .. "/ssh_config", string.format(
        "Host web_1.example\n    HostName %s\n    ProxyCommand sh -c 'echo \"%%h %%p %%r %%n\" > %s/tokens; " ..
        "exec ssh -F /dev/null -i %s -o UserKnownHostsFile=%s/kh -o BatchMode=yes -p %%p -l %%r -W %%h:%%p %s'\n",
        srv.address, d, srv.key, d, srv.address))
    T.write(d .. "/inv.yml", string.format("all:\n  hosts:\n    web1:\n      ansible_host: web_1.example\n" ..
        "      ansible_port: %d\n      ansible_user: %s\n      ansible_ssh_private_key_file: %s\n", srv.port,
            srv.user, srv.key))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: \"echo ran > " .. d .. "/ran\"\n")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "-F", d .. "/ssh_config", "--known-hosts", d ..
        "/kh" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/tokens"), string.format("%s %d %s web_1.example\n", srv.address, srv.port, srv.user), "tokens")
    T.eq(T.read(d .. "/ran"), "ran\n", "the step ran through the ProxyCommand")
end)

T.done()
