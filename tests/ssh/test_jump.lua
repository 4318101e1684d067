-- ProxyJump: hosts reached through a bastion with direct-tcpip channels.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
S.install(T)

local bastion = S.start(T, { log_level = "DEBUG1" })
local target = S.start(T, { address = "127.0.0.3" })
local inner = S.start(T, { address = "127.0.0.4", log_level = "DEBUG1" })   -- a second hop

local function setup(hostvars)
    local d = S.target(T)
    if type(hostvars) == "function" then hostvars = hostvars(d) end
    T.write(d .. "/kh", bastion:known_line() .. target:known_line())
    -- one key for both servers: the target accepts the bastion's key too
    S.sh("cat " .. bastion.dir .. "/user_key.pub >> " .. target.dir .. "/authorized_keys")
    T.write(d .. "/inv.yml", string.format([[
all:
  vars:
    ansible_host: %s
    ansible_port: %d
    ansible_user: %s
    ansible_ssh_private_key_file: %s
  hosts:
%s]], target.address, target.port, target.user, bastion.key, hostvars))
    T.write(d .. "/p.yml", string.format([[
- hosts: all
  steps:
    - shell: "echo {{ inventory_hostname }} $SSH_CONNECTION >> %s/ran"
    - copy: { dest: "%s/{{ inventory_hostname }}.txt", content: "through the bastion\n" }
]], d, d))
    return d
end

local function tunnels_in_log(srv)
    local n = 0
    for _ in (T.read((srv or bastion).dir .. "/sshd.log") or ""):gmatch("server_request_direct_tcpip") do n = n + 1 end
    return n
end

T.test("cutover_proxy_jump and ansible_ssh_common_args -J / -o ProxyJump=", function()
    local jump = string.format("%s@%s:%d", bastion.user, bastion.address, bastion.port)
    local d = setup(string.format([[
    h1: { cutover_proxy_jump: "%s" }
    h2: { ansible_ssh_common_args: "-J %s" }
    h3: { ansible_ssh_common_args: "-o ProxyJump=%s" }
]], jump, jump, jump))
    local before = tunnels_in_log()
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local ran = T.read(d .. "/ran")
    for _, h in ipairs({ "h1", "h2", "h3" }) do
        T.match(ran, h .. " 127%.0%.0%.%d+ %d+ " .. target.address:gsub("%.", "%%.") .. " " .. target.port, h ..
            " reached the target")
        T.eq(T.read(d .. "/" .. h .. ".txt"), "through the bastion\n", h .. " file")
    end
    T.ok(tunnels_in_log() - before >= 3, "the bastion opened a direct-tcpip channel per host")
end)

T.test("ProxyJump from the SSH config (-F)", function()
    local d = setup("    h1: {}\n")
    T.write(d .. "/ssh_config", string.format([[
Host bastion
    HostName %s
    Port %d
    User %s
Host %s
    ProxyJump bastion
]], bastion.address, bastion.port, bastion.user, target.address))
    local before = tunnels_in_log()
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh", "-F", d ..
        "/ssh_config" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.eq(tunnels_in_log() - before, 1, "one tunnel")
end)

T.test("an idle tunnel does not wake the controller: the pump waits for traffic, not a timer", function()
    -- a 3 s step through the bastion, the controller traced: its polls
    -- that end on a timeout are the live display's ticks (4 a second);
    -- a pump that looked again every 50 ms would add about 60 more
    local d = setup("    h1: {}\n")
    T.write(d .. "/p.yml", [[
- hosts: all
  gather_facts: false
  steps:
    - command: sleep 3
]])
    local jump = string.format("%s@%s:%d", bastion.user, bastion.address, bastion.port)
    T.write(d .. "/inv.yml", T.read(d .. "/inv.yml"):gsub("h1: {}", 'h1: { cutover_proxy_jump: "' .. jump .. '" }'))
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh" },
                    -- LeakSanitizer cannot run under ptrace: the ASan build's
                    -- leak check would fail the traced run's exit code
                    { env = { HOME = d, SSH_AUTH_SOCK = "", ASAN_OPTIONS = "detect_leaks=0" },
                      wrap = { "strace", "-f", "-qq", "-e", "trace=poll,ppoll", "-o", d .. "/strace" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local polls, timed_out = 0, 0
    for line in T.read(d .. "/strace"):gmatch("[^\n]+") do
        if line:find("poll(", 1, true) then polls = polls + 1 end
        if line:find("= 0 (Timeout)", 1, true) then timed_out = timed_out + 1 end
    end
    T.ok(polls > 0, "strace saw the controller's polls")
    T.ok(timed_out < 30, "polls that ended on a timeout while the step slept 3 s: " .. timed_out)
end)

T.test("two hops: bastion, then an inner bastion, then the target (ssh -J a,b)", function()
    local d = setup("    h1: {}\n    h2: {}\n")
    T.write(d .. "/kh", bastion:known_line() .. inner:known_line() .. target:known_line())
    S.sh("cat " .. bastion.dir .. "/user_key.pub >> " .. inner.dir .. "/authorized_keys")
    T.write(d .. "/ssh_config", string.format([[
Host outer
    HostName %s
    Port %d
Host %s
    User %s
    ProxyJump outer,%s:%d
]], bastion.address, bastion.port, target.address, target.user, inner.address, inner.port))
    local outer_before, inner_before = tunnels_in_log(bastion), tunnels_in_log(inner)
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh", "-F", d ..
        "/ssh_config" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local ran = T.read(d .. "/ran")
    for _, h in ipairs({ "h1", "h2" }) do
        T.match(ran, h .. " 127%.0%.0%.%d+ %d+ " .. target.address:gsub("%.", "%%.") .. " " .. target.port,
                h .. " reached the target: " .. ran)
        T.eq(T.read(d .. "/" .. h .. ".txt"), "through the bastion\n", h .. " file")
    end
    T.eq(tunnels_in_log(bastion) - outer_before, 1, "the outer bastion carried one tunnel: to the inner one")
    T.eq(tunnels_in_log(inner) - inner_before, 2, "the inner bastion carried one per host")
end)

T.test("two hops, the second unreachable: the message names both", function()
    local closed = S.closed_port()
    local d = setup(string.format("    h1: { cutover_proxy_jump: \"%s@%s:%d,%s@127.0.0.1:%d\" }\n",
        bastion.user, bastion.address, bastion.port, bastion.user, closed))
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "via jump host " .. bastion.user .. "@127.0.0.1:" .. closed .. ": via jump host " ..
        bastion.user .. "@" .. bastion.address .. ":" .. bastion.port .. ": ", "message: " .. r.stdout)
end)

-- OpenSSH's client as the ProxyCommand, the classic bastion set-up
local function ssh_w(d)
    return string.format("ssh -F /dev/null -i %s -o UserKnownHostsFile=%s/kh -o StrictHostKeyChecking=yes " ..
        "-o BatchMode=yes -o IdentitiesOnly=yes -p %d -l %s -W %%h:%%p %s", bastion.key, d, bastion.port,
        bastion.user, bastion.address)
end

-- ProxyCommand processes of this test (their argv names d/kh; "[=]" so
-- that pgrep's own shell does not match)
local function helpers_left(d)
    return S.sh("pgrep -f -- 'UserKnownHostsFile[=]" .. d .. "/kh' || true")
end

T.test("ProxyCommand (ssh -W %h:%p) from the SSH config; the helper ends with its session", function()
    local d = setup("    h1: {}\n    h2: {}\n")
    -- a helper that would outlive its connection (sleep after ssh -W
    -- ends): only cutover stopping its process group ends it
    T.write(d .. "/ssh_config", string.format("Host %s\n    ProxyCommand sh -c '%s; sleep 300'\n",
        target.address, ssh_w(d)))
    local before = tunnels_in_log()
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh", "-F", d ..
        "/ssh_config" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    for _, h in ipairs({ "h1", "h2" }) do
        T.eq(T.read(d .. "/" .. h .. ".txt"), "through the bastion\n", h .. " file")
    end
    T.eq(tunnels_in_log() - before, 2, "one ssh -W channel through the bastion per host")
    T.eq(helpers_left(d), "", "no ProxyCommand process left")
end)

T.test("ProxyCommand from the inventory; one that fails says so", function()
    local d = setup(function(d)
        return string.format("    h1: { cutover_proxy_command: \"%s\" }\n" ..
            "    h2: { ansible_ssh_common_args: '-o ProxyCommand=\"%s\"' }\n" ..
            "    h3: { cutover_proxy_command: \"echo no route to %%h:%%p >&2; exit 3\" }\n", ssh_w(d), ssh_w(d))
    end)
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 1, "h3 fails: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/h1.txt"), "through the bastion\n", "h1")
    T.eq(T.read(d .. "/h2.txt"), "through the bastion\n", "h2")
    T.contains(r.stderr, "no route to " .. target.address .. ":" .. target.port .. "\n",
        "the helper's stderr, tokens expanded")
    T.match(r.stdout, "h3  connect.-%(through a ProxyCommand; what it wrote is above%)", "h3's error")
    T.eq(helpers_left(d), "", "no ProxyCommand process left")
end)

T.test("a jump host reached through its own ProxyCommand in the SSH config", function()
    local d = setup("    h1: {}\n")
    T.write(d .. "/kh", bastion:known_line() .. inner:known_line() .. target:known_line())
    S.sh("cat " .. bastion.dir .. "/user_key.pub >> " .. inner.dir .. "/authorized_keys")
    -- the bastion is reached by ssh -W through the inner server
    T.write(d .. "/ssh_config", string.format([[
Host %s
    User %s
    ProxyJump jump
Host jump
    HostName %s
    Port %d
    ProxyCommand ssh -F /dev/null -i %s -o UserKnownHostsFile=%s/kh -o BatchMode=yes -p %d -l %s -W %%h:%%p %s
]], target.address, target.user, bastion.address, bastion.port, bastion.key, d, inner.port, inner.user, inner.address))
    local outer_before, inner_before = tunnels_in_log(bastion), tunnels_in_log(inner)
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh", "-F", d ..
        "/ssh_config" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/h1.txt"), "through the bastion\n", "h1 file")
    T.eq(tunnels_in_log(inner) - inner_before, 1, "the ProxyCommand's channel to the bastion")
    T.eq(tunnels_in_log(bastion) - outer_before, 1, "the bastion's channel to the target")
    T.eq(helpers_left(d), "", "no ProxyCommand process left")
end)

T.test("an unreachable bastion: the host is unreachable, saying via which jump host", function()
    local closed = S.closed_port()
    local d = setup(string.format("    h1: { cutover_proxy_jump: \"%s@127.0.0.1:%d\" }\n", bastion.user, closed))
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "via jump host " .. bastion.user .. "@127.0.0.1:" .. closed .. ": 127.0.0.1:" .. closed ..
        ": Connection refused", "message")
end)

T.done()
