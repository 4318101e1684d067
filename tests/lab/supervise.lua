-- lab.supervise: `cutover-lab supervise HOSTDIR`, a host's power and
-- boot (contract section 4 "Reboot" and section 8 "Clock and boots").
-- It boots the host (DC policy, AUTO_START services), then runs its sshd
-- and mail daemon; a reboot request (reboot.request, written by shutdown
-- or dcpromo) stops both and every SSH session, waits the reboot time,
-- and boots again.  SIGTERM stops everything.
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local loop = require("cutover.core.loop")
local net = require("cutover.core.net")
local sys = require("cutover.core.sys")
local los = require("lab.os")
local state = require("lab.state")
local services = require("lab.services")

local M = {}

local function log(fmt, ...)
    io.stdout:write(os.date("%H:%M:%S ") .. string.format(fmt, ...) .. "\n")
    io.stdout:flush()
end

local function set_run(dir, run)
    assert(fs.write(dir .. "/run.json", json.encode(run) .. "\n"))
end

-- Every descendant of pid (from /proc), children before grandchildren.
local function descendants(pid)
    local parent = {}
    for _, n in ipairs(fs.list("/proc") or {}) do
        if n:match("^%d+$") then
            local stat = fs.read("/proc/" .. n .. "/stat")
            local ppid = stat and stat:match("%) %S+ (%d+)")
            if ppid then parent[tonumber(n)] = tonumber(ppid) end
        end
    end
    local out, frontier = {}, { [pid] = true }
    for _ = 1, 16 do
        local nxt, any = {}, false
        for child, p in pairs(parent) do
            if frontier[p] then
                out[#out + 1] = child
                nxt[child] = true
                any = true
            end
        end
        if not any then break end
        frontier = nxt
    end
    return out
end

-- Stops a child: SIGTERM, then SIGKILL after grace seconds; reaps it.
local function stop_child(pid, grace)
    if not pid then return end
    sys.kill(pid, 15)
    local deadline = loop.now() + grace
    while loop.now() < deadline do
        if los.reap(pid) then return end
        loop.sleep(0.02)
    end
    sys.kill(pid, 9)
    for _ = 1, 100 do
        if los.reap(pid) then return end
        loop.sleep(0.01)
    end
end

local Host = {}
Host.__index = Host

-- sshd and every session it serves go down at once.
function Host:stop_sshd()
    if not self.sshd then return end
    local kids = descendants(self.sshd)
    sys.kill(self.sshd, 9)
    for _, k in ipairs(kids) do sys.kill(k, 9) end
    stop_child(self.sshd, 1)
    self.sshd = nil
end

function Host:stop_mail()
    stop_child(self.mail, 2)
    self.mail = nil
end

function Host:start_sshd()
    local cfg = self.cfg
    for _ = 1, 3 do
        self.sshd = assert(los.spawn({ "/usr/sbin/sshd", "-D", "-f",
                                       self.dir .. "/sshd_config", "-E",
                                       self.dir .. "/sshd.log" },
                                     self.dir .. "/supervisor.log"))
        local deadline = loop.now() + 10
        while loop.now() < deadline do
            if net.probe_tcp(cfg.address, cfg.ssh_port, 0.5) then
                return true
            end
            if los.reap(self.sshd) then break end
            loop.sleep(0.02)
        end
        log("sshd did not start; retrying")
        self:stop_sshd()
        loop.sleep(0.5)
    end
    return false
end

function Host:start_mail()
    self.mail = assert(los.spawn({ self.cfg.exe, "mail", self.dir },
                                 self.dir .. "/mail.log"))
end

-- Power on: clock, DC policy, services, logins; then SSH and mail.
function Host:boot()
    do
        local lock, st = state.open(self.dir)
        if st.fresh then
            -- the first boot happens at the KB's date, however long
            -- after `create` the supervisor starts
            st.fresh = nil
            st.clock_offset = state.EPOCH - os.time()
        else
            local now = state.now(st)
            if now < st.boot_time + 120 then
                st.clock_offset = st.clock_offset +
                                  (st.boot_time + 120 - now)
            end
        end
        st.boot_time = state.now(st)
        services.boot(st)
        -- a local login account is gone with the SAM
        local keys = fs.read(self.dir .. "/authorized_keys.lab") or ""
        if st.login.domain:upper() ~= state.DOMAIN and st.role ~= "SERVER" then
            keys = ""
        end
        assert(fs.write(self.dir .. "/authorized_keys", keys))
        state.save(st)
        lock:unlock()
    end
    if not self:start_sshd() then return false end
    self:start_mail()
    set_run(self.dir, { status = "up", sshd = self.sshd, mail = self.mail,
                        supervisor = sys.getpid() })
    log("up")
    return true
end

function Host:shutdown()
    set_run(self.dir, { status = "rebooting", supervisor = sys.getpid() })
    self:stop_mail()
    self:stop_sshd()
end

function M.main(dir)
    assert(fs.write(dir .. "/supervisor.pid", tostring(sys.getpid()) .. "\n"))
    local self = setmetatable({ dir = dir, cfg = state.config(dir) }, Host)
    local request = state.paths(dir).reboot
    fs.remove(request)
    if not self:boot() then
        self:shutdown()
        return 1
    end
    while loop.interrupts() == 0 do
        if fs.stat(request) then
            log("reboot requested")
            -- let the session that asked finish its output
            loop.sleep(0.3)
            fs.remove(request)
            self:shutdown()
            local lock, st = state.open(dir)
            local seconds = tonumber(st.knobs.reboot_seconds) or 3
            lock:unlock()
            log("down for %.1f s", seconds)
            if not loop.sleep(seconds) then break end
            if not self:boot() then break end
        end
        if self.mail and los.reap(self.mail) then
            log("mail daemon exited; restarting it")
            self:start_mail()
        end
        if self.sshd and los.reap(self.sshd) then
            log("sshd exited; restarting it")
            self.sshd = nil
            self:start_sshd()
        end
        loop.sleep(0.1)
    end
    log("stopping")
    self:shutdown()
    fs.remove(dir .. "/run.json")
    fs.remove(dir .. "/supervisor.pid")
    return 0
end

return M
