-- lab.cli: the cutover-lab commands (docs/lab.md).
--   start | stop | reset | status      what an operator runs
--   shell HOSTDIR                      sshd's ForceCommand of a host
--   supervise HOSTDIR                  a host's power: sshd, mail, reboots
--   mail HOSTDIR                       a host's POP3/IMAP4 daemon
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local loop = require("cutover.core.loop")
local net = require("cutover.core.net")
local proc = require("cutover.core.proc")
local sys = require("cutover.core.sys")
local los = require("lab.os")
local state = require("lab.state")

local M = {}

local VARIANTS = {
    ["already-dc"] = true, ["local-service-account"] = true,
    ["local-login-account"] = true, ["localsystem-kms"] = true,
}
local ADDRESS = "127.0.0.1"

local function say(fmt, ...) io.stdout:write(string.format(fmt, ...) .. "\n") end
local function fail(fmt, ...)
    io.stderr:write("cutover-lab: " .. string.format(fmt, ...) .. "\n")
    return 1
end

local function sh(argv)
    local r = assert(proc.run({ argv = argv, timeout = 60 }))
    if r.rc ~= 0 then
        error("cutover-lab: " .. table.concat(argv, " ") .. " failed: " ..
              r.stdout .. r.stderr, 0)
    end
    return r.stdout
end

local function default_dir()
    local base = os.getenv("XDG_STATE_HOME")
    if not base or base == "" then
        base = (os.getenv("HOME") or "/tmp") .. "/.local/state"
    end
    return base .. "/cutover/lab"
end

-- Options: --dir DIR, --hosts N, --variant NAME[@HOST] (repeatable),
-- --dcpromo-seconds S, --reboot-seconds S, --user NAME.
local function parse_opts(argv, from)
    local o = { variants = {} }
    local i = from
    while i <= #argv do
        local a = argv[i]
        local v = argv[i + 1]
        if a == "--dir" and v then o.dir = v
        elseif a == "--hosts" and v then o.hosts = tonumber(v)
        elseif a == "--variant" and v then o.variants[#o.variants + 1] = v
        elseif a == "--dcpromo-seconds" and v then o.dcpromo = tonumber(v)
        elseif a == "--reboot-seconds" and v then o.reboot = tonumber(v)
        elseif a == "--user" and v then o.user = v
        else return nil, "unknown or incomplete option: " .. a end
        i = i + 2
    end
    if o.hosts and (o.hosts < 1 or o.hosts > 20 or o.hosts % 1 ~= 0) then
        return nil, "--hosts takes 1 to 20"
    end
    for _, v in ipairs(o.variants) do
        local name = v:match("^([^@]+)")
        if not VARIANTS[name or ""] then
            return nil, "unknown variant '" .. v .. "' (already-dc, " ..
                "local-service-account, local-login-account, localsystem-kms)"
        end
    end
    o.dir = o.dir or default_dir()
    return o
end

local function host_name(i) return string.format("EXCH%02d", i) end

local function free_port(taken)
    for _ = 1, 200 do
        local p = 20000 + math.random(0, 12000)
        if not taken[p] and not net.probe_tcp(ADDRESS, p, 0.5) then
            local l = los.listen(ADDRESS, p)
            if l then
                l:close()
                taken[p] = true
                return p
            end
        end
    end
    error("cutover-lab: no free loopback port found", 0)
end

local function ensure_user(user)
    if proc.run({ argv = { "id", "-u", user } }).rc == 0 then return end
    sh({ "useradd", "--create-home", "--shell", "/bin/sh", user })
    sh({ "usermod", "-p", "*", user })
end

local function read_lab(dir)
    local text = fs.read(dir .. "/lab.json")
    return text and json.decode(text) or nil
end

local function supervisor_pid(hdir)
    local pid = tonumber((fs.read(hdir .. "/supervisor.pid") or ""):match("%d+"))
    if pid and sys.alive(pid) then
        -- make sure it is ours: its command line names the host folder
        local cmdline = fs.read("/proc/" .. pid .. "/cmdline") or ""
        if cmdline:find(hdir, 1, true) then return pid end
    end
    return nil
end

local function read_secrets(dir)
    local out = {}
    for line in (fs.read(dir .. "/lab-secrets.txt") or ""):gmatch("[^\n]+") do
        local k, v = line:match("^([%w_]+)=(.*)$")
        if k then out[k] = v end
    end
    return out
end

-- Creates one host's folder: state, drives, keys, sshd config.
local function create_host(lab, i, variant, secrets)
    local name = host_name(i)
    local hdir = lab.dir .. "/" .. name
    sh({ "rm", "-rf", hdir })
    assert(fs.mkdir(hdir, 493))
    for _, d in ipairs({ "C/WINNT/debug", "C/WINNT/system32", "C/TEMP",
                         "C/exchsrvr/bin", "D/ENG/SERVER/SETUP/I386" }) do
        assert(state.mkdir_p(hdir .. "/" .. d))
    end
    assert(fs.write(hdir .. "/D/ENG/SERVER/SETUP/I386/UPDATE.EXE",
                    "MZ (cutover lab: Exchange 5.5 SP3 setup)\n"))
    local st = state.new_host(name, i, secrets, variant)
    st.knobs.dcpromo_seconds = lab.dcpromo_seconds
    st.knobs.reboot_seconds = lab.reboot_seconds
    st.fresh = true
    st.dir = hdir
    if variant == "already-dc" then
        local exch = st.domain_accounts.exchsvc.sid
        state.write_dc_policy(st, {
            SeServiceLogonRight = { exch }, SeTcbPrivilege = { exch },
            SeInteractiveLogonRight = { exch }, SeRestorePrivilege = { exch },
            SeNetworkLogonRight = { "S-1-1-0" } })
    end
    state.save(st)
    local taken = lab.taken
    local cfg = { name = name, address = ADDRESS, ssh_port = free_port(taken),
                  pop3_port = free_port(taken), imap_port = free_port(taken),
                  user = lab.user, exe = lab.exe, variant = variant }
    assert(fs.write(hdir .. "/config.json", json.encode(cfg, true) .. "\n"))
    sh({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
         "-f", hdir .. "/host_ed25519" })
    local pub = assert(fs.read(lab.dir .. "/login_key.pub"))
    assert(fs.write(hdir .. "/authorized_keys.lab", pub, 420))
    assert(fs.write(hdir .. "/authorized_keys", pub, 420))
    local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local conf = {
        "Port " .. cfg.ssh_port,
        "ListenAddress " .. ADDRESS,
        "HostKey " .. hdir .. "/host_ed25519",
        "PidFile none",
        "AuthorizedKeysFile " .. hdir .. "/authorized_keys",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "AllowUsers " .. lab.user,
        "PermitTTY no",
        "DisableForwarding yes",
        "PermitUserEnvironment no",
        "LogLevel VERBOSE",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "ForceCommand " .. q(lab.exe) .. " shell " .. q(hdir),
    }
    assert(fs.write(hdir .. "/sshd_config", table.concat(conf, "\n") .. "\n"))
    sh({ "chown", "-R", lab.user .. ":", hdir })
    -- sshd and the supervisor's files stay root's
    sh({ "chown", "root:", hdir .. "/host_ed25519", hdir .. "/sshd_config",
         hdir .. "/config.json" })
    return name, hdir, cfg
end

local function write_inventory(lab, hosts)
    local lines = {
        "# Written by cutover-lab start: the lab's hosts (docs/lab.md).",
        "all:",
        "  vars:",
        "    ansible_shell_type: cmd",
        "    ansible_user: " .. lab.user,
        "    ansible_ssh_private_key_file: " .. lab.dir .. "/login_key",
        "    cutover_known_hosts: " .. lab.dir .. "/known_hosts",
        "    lab_login_account: CORP\\admin",
        "    domain_dns_name: corp.example",
        "    domain_netbios_name: CORP",
        "    domain_admin_user: admin",
        "    mailbox_test_user: CORP\\testuser",
        "    sp3_media: " .. state.SP3_MEDIA,
        "  hosts:",
    }
    local known = {}
    for _, h in ipairs(hosts) do
        local c = h.cfg
        lines[#lines + 1] = "    " .. c.name:lower() .. ":"
        lines[#lines + 1] = "      ansible_host: " .. c.address
        lines[#lines + 1] = "      ansible_port: " .. c.ssh_port
        lines[#lines + 1] = "      pop3_port: " .. c.pop3_port
        lines[#lines + 1] = "      imap_port: " .. c.imap_port
        lines[#lines + 1] = "      mail_host: " .. c.address
        if c.variant == "local-login-account" then
            lines[#lines + 1] = "      lab_login_account: " .. c.name ..
                                "\\admin"
        end
        local pub = assert(fs.read(h.dir .. "/host_ed25519.pub"))
        known[#known + 1] = "[" .. c.address .. "]:" .. c.ssh_port .. " " ..
                            pub:match("^(%S+ %S+)")
    end
    assert(fs.write(lab.dir .. "/inventory.yml",
                    table.concat(lines, "\n") .. "\n"))
    assert(fs.write(lab.dir .. "/known_hosts",
                    table.concat(known, "\n") .. "\n", 420))
end

local function host_dirs(dir)
    local lab = read_lab(dir)
    local out = {}
    for _, name in ipairs(lab and lab.hosts or {}) do
        out[#out + 1] = { name = name, dir = dir .. "/" .. name }
    end
    return out, lab
end

-- Waits until every host is up (its supervisor says so).
local function wait_up(hosts, seconds)
    local deadline = loop.now() + seconds
    for _, h in ipairs(hosts) do
        while true do
            local run = json.decode(fs.read(h.dir .. "/run.json") or "{}")
            if run and run.status == "up" then break end
            if loop.now() > deadline then
                return nil, h.name .. " did not come up; see " .. h.dir ..
                            "/supervisor.log"
            end
            loop.sleep(0.05)
        end
    end
    return true
end

local function launch(_, hosts, exe)
    for _, h in ipairs(hosts) do
        fs.remove(h.dir .. "/run.json")
        fs.remove(h.dir .. "/reboot.request")
        local pid, err = los.spawn({ exe, "supervise", h.dir },
                                   h.dir .. "/supervisor.log")
        if not pid then return nil, err end
    end
    return wait_up(hosts, 60)
end

local function create(o)
    local dir = o.dir
    ensure_user(o.user or "cutover-test")
    fs.mkdir("/run/sshd", 493)
    local existed = fs.stat(dir) ~= nil
    assert(state.mkdir_p(dir))
    assert(fs.chmod(dir, 493))
    local lab = {
        dir = dir, user = o.user or "cutover-test", exe = assert(los.exe()),
        dcpromo_seconds = o.dcpromo or 2, reboot_seconds = o.reboot or 3,
        taken = {}, hosts = {}, variants = o.variants,
        count = o.hosts or 1,
    }
    -- can the login user reach the folder and the binary?
    local r = proc.run({ argv = { "runuser", "-u", lab.user, "--", "test",
                                  "-x", dir, "-a", "-x", lab.exe } })
    if not r or r.rc ~= 0 then
        if not existed then fs.remove(dir) end
        error("cutover-lab: the login user " .. lab.user .. " cannot " ..
              "reach " .. dir .. " or " .. lab.exe .. " (a parent folder " ..
              "is not searchable, e.g. /root); use --dir in a folder " ..
              "such as /var/tmp/cutover-lab", 0)
    end
    local secrets = read_secrets(dir)
    local lines = {}
    for _, k in ipairs(state.SECRET_NAMES) do
        secrets[k] = secrets[k] or state.DEFAULT_SECRETS[k]
        lines[#lines + 1] = k .. "=" .. secrets[k]
    end
    assert(fs.write(dir .. "/lab-secrets.txt",
                    table.concat(lines, "\n") .. "\n", 384))
    if not fs.stat(dir .. "/login_key") then
        sh({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
             "CORP\\admin", "-f", dir .. "/login_key" })
    end
    local hosts = {}
    for i = 1, lab.count do
        local variant = "default"
        for _, v in ipairs(o.variants) do
            local name, at = v:match("^([^@]+)@?(.*)$")
            if at == "" or at:upper() == host_name(i) then variant = name end
        end
        local name, hdir, cfg = create_host(lab, i, variant, secrets)
        hosts[#hosts + 1] = { name = name, dir = hdir, cfg = cfg }
        lab.hosts[#lab.hosts + 1] = name
    end
    lab.taken = nil
    assert(fs.write(dir .. "/lab.json", json.encode(lab, true) .. "\n"))
    write_inventory(lab, hosts)
    return lab, hosts
end

local function cmd_start(o, fresh)
    local existing = read_lab(o.dir)
    local hosts
    if existing and not fresh then
        hosts = host_dirs(o.dir)
        for _, h in ipairs(hosts) do
            if supervisor_pid(h.dir) then
                return fail("the lab in %s is already running " ..
                            "(cutover-lab stop --dir %s)", o.dir, o.dir)
            end
        end
    else
        local _
        _, hosts = create(o)
    end
    local ok, err = launch(o.dir, hosts, assert(los.exe()))
    if not ok then return fail("%s", err) end
    for _, h in ipairs(hosts) do
        local cfg = json.decode(assert(fs.read(h.dir .. "/config.json")))
        say("%s  ssh %s:%d  pop3 %d  imap %d  (%s)", h.name, cfg.address,
            cfg.ssh_port, cfg.pop3_port, cfg.imap_port, cfg.variant)
    end
    say("inventory: %s/inventory.yml", o.dir)
    say("secrets:   %s/lab-secrets.txt", o.dir)
    say("known_hosts: %s/known_hosts", o.dir)
    return 0
end

local function cmd_stop(o)
    local hosts = host_dirs(o.dir)
    if #hosts == 0 then return fail("no lab in %s", o.dir) end
    for _, h in ipairs(hosts) do
        local pid = supervisor_pid(h.dir)
        if pid then sys.kill(pid, 15) end
    end
    for _, h in ipairs(hosts) do
        local deadline = loop.now() + 10
        local pid = supervisor_pid(h.dir)
        while pid and sys.alive(pid) and loop.now() < deadline do
            loop.sleep(0.05)
        end
        if pid and sys.alive(pid) then sys.kill(pid, 9) end
        fs.remove(h.dir .. "/run.json")
    end
    say("stopped: %d host(s) in %s", #hosts, o.dir)
    return 0
end

local function cmd_status(o)
    local hosts, lab = host_dirs(o.dir)
    if not lab then return fail("no lab in %s", o.dir) end
    for _, h in ipairs(hosts) do
        local run = json.decode(fs.read(h.dir .. "/run.json") or "{}") or {}
        local cfg = json.decode(fs.read(h.dir .. "/config.json") or "{}")
        local lock, st = state.open(h.dir)
        lock:unlock()
        local status = supervisor_pid(h.dir) and (run.status or "starting")
                       or "stopped"
        say("%s  %-9s role %-7s ssh %s:%d  pop3 %d  imap %d  booted %s %s",
            h.name, status, st.role, cfg.address, cfg.ssh_port,
            cfg.pop3_port, cfg.imap_port, state.fmt_date(st.boot_time),
            state.fmt_time(st.boot_time))
    end
    return 0
end

function M.main(argv)
    local verb = argv[1]
    if verb == "shell" and argv[2] then
        return require("lab.shell").main(argv[2])
    elseif verb == "supervise" and argv[2] then
        return require("lab.supervise").main(argv[2])
    elseif verb == "mail" and argv[2] then
        return require("lab.mail").main(argv[2])
    end
    local o, err = parse_opts(argv, 2)
    if not o then return fail("%s", err) end
    if verb ~= "status" and los.getuid() ~= 0 then
        return fail("the lab runs sshd and must run as root")
    end
    math.randomseed(os.time() + sys.getpid())
    local ok, res = pcall(function()
        if verb == "start" then return cmd_start(o, false) end
        if verb == "stop" then return cmd_stop(o) end
        if verb == "status" then return cmd_status(o) end
        if verb == "reset" then
            local lab = read_lab(o.dir)
            if lab then
                cmd_stop(o)
                o.hosts = o.hosts or lab.count
                if #o.variants == 0 then o.variants = lab.variants or {} end
                o.dcpromo = o.dcpromo or lab.dcpromo_seconds
                o.reboot = o.reboot or lab.reboot_seconds
                o.user = o.user or lab.user
            end
            return cmd_start(o, true)
        end
        io.stderr:write("usage: cutover-lab start|stop|reset|status " ..
            "[--dir DIR] [--hosts N] [--variant NAME[@HOST]]... " ..
            "[--dcpromo-seconds S] [--reboot-seconds S]\n")
        return 2
    end)
    if not ok then return fail("%s", tostring(res):gsub("^cutover%-lab: ", "")) end
    return res
end

return M
