-- facts: what a POSIX host is, read in one round trip (docs/facts.md).
-- One sh script (no python, nothing installed) prints sections of raw
-- text, each headed by a random token line; Lua parses them into Ansible's
-- fact names.  Every section is capped on the host (head -n), the whole
-- output by the exec's max_output; what is missing on a host (no `ip`, no
-- /proc) is left out, never guessed.
local crypto = require("cutover.core.crypto")
local pattern = require("cutover.core.pattern")
local util = require("cutover.util")
local expr = require("cutover.expr")

local M = {}

M.SUBSETS = { "all", "min", "hardware", "network" }

-- The gathered facts Ansible has under the same name (ansible_X in an
-- Ansible playbook is facts.X here; the converter reads this list).
-- Per-interface facts (ansible_eth0) depend on the host and are not here.
M.ANSIBLE_NAMES = {}
for n in ([[system nodename hostname fqdn domain kernel kernel_version architecture
    machine os_family distribution distribution_version distribution_major_version
    distribution_release user_id user_uid user_gid user_dir uptime_seconds
    service_mgr pkg_mgr memtotal_mb memfree_mb swaptotal_mb swapfree_mb
    processor_vcpus processor_nproc mounts interfaces default_ipv4 default_ipv6
    all_ipv4_addresses all_ipv6_addresses]]):gmatch("%S+") do
    M.ANSIBLE_NAMES[n] = true
end
M.MAX_OUTPUT = 512 * 1024
M.TIMEOUT = 60

-- $1 the section token, then the subsets to gather beyond min.
M.SCRIPT = [[
T=$1; shift; hw=; nw=
for s in "$@"; do case $s in hardware) hw=1 ;; network) nw=1 ;; esac; done
sec() { printf '%s %s\n' "$T" "$1"; }
cap() { head -n "${1:-400}"; }
sec os_release; { cat /etc/os-release || cat /usr/lib/os-release; } 2>/dev/null | cap 100
sec debian_version; cat /etc/debian_version 2>/dev/null | cap 1
sec uname; uname -s; uname -n; uname -r; uname -m; uname -v
sec fqdn; hostname -f 2>/dev/null | cap 1
sec user; id -un; id -u; id -g; printf '%s\n' "$HOME"
sec boot; cat /proc/sys/kernel/random/boot_id 2>/dev/null | cap 1; cat /proc/uptime 2>/dev/null | cap 1
sec init; if [ -d /run/systemd/system ]; then echo systemd; else cat /proc/1/comm 2>/dev/null | cap 1; fi
sec pkg; for p in apt-get dnf yum zypper apk pacman; do
    if command -v "$p" >/dev/null 2>&1; then echo "$p"; break; fi; done
if [ -n "$hw" ]; then
    sec meminfo; grep -E '^(MemTotal|MemFree|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo 2>/dev/null | cap 10
    sec cpus; getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c '^processor' /proc/cpuinfo 2>/dev/null
    sec df; df -P -k 2>/dev/null | cap
    sec mounts; cap </proc/mounts 2>/dev/null
fi
if [ -n "$nw" ]; then
    if command -v ip >/dev/null 2>&1; then
        sec addr; ip -o addr show 2>/dev/null | cap
        sec route4; ip -4 route show default 2>/dev/null | cap 10
        sec route6; ip -6 route show default 2>/dev/null | cap 10
    fi
    sec mac; for d in /sys/class/net/*; do
        [ -r "$d/address" ] && printf '%s %s\n' "${d##*/}" "$(cat "$d/address")"; done | cap 100
fi
sec end
exit 0
]]

-- Subsets as asked (a list of names, "!name" to leave one out) -> the set
-- gathered beyond min | nil, message.
function M.resolve_subset(list)
    local want = { hardware = true, network = true }
    if list == nil then return want end
    local explicit = {}
    for _, s in ipairs(list) do
        local neg, name = s:match("^(!?)(.*)$")
        if name == "all" then
            if neg == "" then want.hardware, want.network = true, true end
        elseif name == "min" then
            if neg == "!" then return nil, "'!min' is not possible: the min facts are always gathered" end
        elseif name == "hardware" or name == "network" then
            explicit[name] = neg == ""
        else
            return nil, "unknown gather_subset '" .. s .. "'" .. util.did_you_mean(name, M.SUBSETS) ..
                " (known: " .. table.concat(M.SUBSETS, ", ") .. ", each also as !NAME)"
        end
    end
    -- a list that names only some subsets gathers just those (and min)
    local only = false
    for _, s in ipairs(list) do if s == "min" or s == "hardware" or s == "network" then only = true end end
    for _, s in ipairs(list) do if s == "all" then only = false end end
    if only then want = { hardware = false, network = false } end
    for k, v in pairs(explicit) do want[k] = v end
    return want
end

-- os-release values: KEY=value, KEY="value", KEY='value' (shell quoting,
-- the subset os-release(5) allows)
local function os_release(lines)
    local t = {}
    for _, l in ipairs(lines) do
        local k, v = l:match("^([%u%d_]+)=(.*)$")
        if k then
            local q = v:sub(1, 1)
            if (q == '"' or q == "'") and v:sub(-1) == q and #v >= 2 then
                v = v:sub(2, -2)
                if q == '"' then v = v:gsub("\\([\"\\`$])", "%1") end
            end
            t[k] = v
        end
    end
    return t
end

local DISTRIBUTIONS = {
    debian = "Debian", ubuntu = "Ubuntu", raspbian = "Debian", linuxmint = "Linux Mint",
    centos = "CentOS", rhel = "RedHat", fedora = "Fedora", rocky = "Rocky",
    almalinux = "AlmaLinux", ol = "OracleLinux", amzn = "Amazon", sles = "SLES",
    ["opensuse-leap"] = "openSUSE Leap", ["opensuse-tumbleweed"] = "openSUSE Tumbleweed",
    alpine = "Alpine", arch = "Archlinux", gentoo = "Gentoo",
}
local FAMILIES = {
    debian = "Debian", ubuntu = "Debian", raspbian = "Debian", linuxmint = "Debian",
    centos = "RedHat", rhel = "RedHat", fedora = "RedHat", rocky = "RedHat",
    almalinux = "RedHat", ol = "RedHat", amzn = "RedHat", sles = "Suse",
    suse = "Suse", opensuse = "Suse", ["opensuse-leap"] = "Suse",
    ["opensuse-tumbleweed"] = "Suse", alpine = "Alpine", arch = "Archlinux",
    gentoo = "Gentoo",
}

local function distribution(f, osr, debian_version)
    local id = osr.ID and osr.ID:lower()
    f.distribution = (id and DISTRIBUTIONS[id]) or osr.NAME or f.system
    local family = id and FAMILIES[id]
    if not family then
        for like in (osr.ID_LIKE or ""):lower():gmatch("%S+") do
            family = family or FAMILIES[like]
        end
    end
    f.os_family = family or f.distribution
    local version = osr.VERSION_ID
    -- Debian's point release is in /etc/debian_version ("12.5"), as Ansible reads it
    if id == "debian" and debian_version and debian_version:match("^%d+%.%d+$") then version = debian_version end
    f.distribution_version = version
    f.distribution_major_version = version and version:match("^(%d+)")
    f.distribution_release = osr.VERSION_CODENAME or osr.UBUNTU_CODENAME
    f.os_release = osr
end

local function netmask(prefix)
    local bits = tonumber(prefix)
    if not bits or bits > 32 then return nil end
    local m = bits == 0 and 0 or ((0xffffffff << (32 - bits)) & 0xffffffff)
    return string.format("%d.%d.%d.%d", m >> 24, (m >> 16) & 255, (m >> 8) & 255, m & 255)
end

local function network(f, s)
    local ifs, order = {}, {}
    local function iface(name)
        name = name:gsub("@.*$", "")
        if not ifs[name] then
            ifs[name] = { device = name, ipv6 = setmetatable({}, { __jsontype = "array" }) }
            order[#order + 1] = name
        end
        return ifs[name]
    end
    local all4, all6 = {}, {}
    for _, l in ipairs(s.addr or {}) do
        local name, fam, addr, prefix, rest = l:match("^%d+:%s+(%S+)%s+(inet6?)%s+([^/%s]+)/(%d+)(.*)$")
        if name then
            local i = iface(name)
            local scope = rest:match("scope%s+(%S+)")
            if fam == "inet" then
                local a = { address = addr, prefix = prefix, netmask = netmask(prefix) }
                if not i.ipv4 then i.ipv4 = a
                else
                    i.ipv4_secondaries = i.ipv4_secondaries or setmetatable({}, { __jsontype = "array" })
                    i.ipv4_secondaries[#i.ipv4_secondaries + 1] = a
                end
                if scope ~= "host" then all4[#all4 + 1] = addr end
            else
                i.ipv6[#i.ipv6 + 1] = { address = addr, prefix = prefix, scope = scope }
                if scope ~= "host" and scope ~= "link" then all6[#all6 + 1] = addr end
            end
        end
    end
    for _, l in ipairs(s.mac or {}) do
        local name, mac = l:match("^(%S+)%s+(%S+)$")
        if name then iface(name).macaddress = mac end
    end
    local function default(lines, fam)
        for _, l in ipairs(lines or {}) do
            local dev = l:match("%sdev%s+(%S+)")
            if l:match("^default%s") and dev then
                local i = ifs[dev] or {}
                local d = { interface = dev, gateway = l:match("%svia%s+(%S+)"), macaddress = i.macaddress }
                if fam == 4 then
                    local a = i.ipv4 or {}
                    d.address = l:match("%ssrc%s+(%S+)") or a.address
                    d.prefix, d.netmask = a.prefix, a.netmask
                else
                    for _, a in ipairs(i.ipv6 or {}) do
                        if a.scope == "global" and not d.address then d.address, d.prefix = a.address, a.prefix end
                    end
                end
                return d
            end
        end
        return {}
    end
    f.default_ipv4 = default(s.route4, 4)
    f.default_ipv6 = default(s.route6, 6)
    table.sort(order)
    f.interfaces = setmetatable(order, { __jsontype = "array" })
    f.all_ipv4_addresses = setmetatable(all4, { __jsontype = "array" })
    f.all_ipv6_addresses = setmetatable(all6, { __jsontype = "array" })
    -- as Ansible: each interface is also a fact of its own (eth0, br_lan),
    -- unless its name is taken by another fact
    for name, i in pairs(ifs) do
        local key = name:gsub("[^%w_]", "_")
        if f[key] == nil then f[key] = i end
    end
end

local function unescape_mount(s)
    return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8) % 256) end))
end

local function hardware(f, s)
    local mem = {}
    for _, l in ipairs(s.meminfo or {}) do
        local k, kb = l:match("^(%w+):%s+(%d+)")
        if k then mem[k] = math.tointeger(tonumber(kb)) // 1024 end
    end
    f.memtotal_mb, f.memfree_mb, f.memavailable_mb = mem.MemTotal, mem.MemFree, mem.MemAvailable
    f.swaptotal_mb, f.swapfree_mb = mem.SwapTotal, mem.SwapFree
    local cpus = math.tointeger(tonumber((s.cpus or {})[1] or ""))
    f.processor_vcpus, f.processor_nproc = cpus, cpus
    local info = {}
    for _, l in ipairs(s.mounts or {}) do
        local dev, mnt, fstype, opts = l:match("^(%S+)%s+(%S+)%s+(%S+)%s+(%S+)")
        if dev then info[unescape_mount(mnt)] = { fstype = fstype, options = opts } end
    end
    local mounts = setmetatable({}, { __jsontype = "array" })
    for i, l in ipairs(s.df or {}) do
        local dev, total, _, avail, mnt = l:match("^(%S+)%s+(%d+)%s+(%d+)%s+(%d+)%s+%d+%%%s+(.+)$")
        if i > 1 and dev then
            local m = info[mnt] or {}
            mounts[#mounts + 1] = {
                mount = mnt, device = dev, fstype = m.fstype, options = m.options,
                size_total = math.tointeger(tonumber(total)) * 1024,
                size_available = math.tointeger(tonumber(avail)) * 1024,
            }
        end
    end
    f.mounts = mounts
end

-- The script's output -> facts | nil, message.  want: resolve_subset's set.
function M.parse(text, token, want)
    local sections, current = {}, nil
    local head = token .. " "
    for _, l in ipairs(pattern.lines(text)) do
        if l:sub(1, #head) == head then
            current = l:sub(#head + 1)
            sections[current] = sections[current] or {}
        elseif current then
            local t = sections[current]
            t[#t + 1] = l
        end
    end
    if not sections.uname or #sections.uname < 4 then
        return nil, "the host's answer has no uname section (is it a POSIX host with sh and uname?)"
    end
    local f = {}
    local u = sections.uname
    f.system, f.nodename, f.kernel, f.machine, f.kernel_version = u[1], u[2], u[3], u[4], u[5]
    f.architecture = f.machine
    f.hostname = f.nodename:match("^[^.]*")
    local fqdn = (sections.fqdn or {})[1]
    f.fqdn = (fqdn and fqdn ~= "") and fqdn or f.nodename
    f.domain = f.fqdn:match("^[^.]+%.(.+)$") or ""
    distribution(f, os_release(sections.os_release or {}), (sections.debian_version or {})[1])
    local id = sections.user or {}
    f.user_id, f.user_uid, f.user_gid, f.user_dir = id[1], math.tointeger(tonumber(id[2] or "")),
        math.tointeger(tonumber(id[3] or "")), id[4]
    local boot = sections.boot or {}
    f.boot_id = boot[1] and boot[1]:match("^%x[%x%-]+$")
    local up = (boot[2] or boot[1] or ""):match("^(%d+)%.?%d*%s")
    f.uptime_seconds = up and math.tointeger(tonumber(up))
    f.service_mgr = (sections.init or {})[1]
    local pkg = (sections.pkg or {})[1]
    f.pkg_mgr = pkg == "apt-get" and "apt" or pkg
    local gathered = { "min" }
    if want.hardware then hardware(f, sections); gathered[#gathered + 1] = "hardware" end
    if want.network then network(f, sections); gathered[#gathered + 1] = "network" end
    f.gather_subset = setmetatable(gathered, { __jsontype = "array" })
    if not sections["end"] then f.facts_truncated = true end
    return f
end

-- Gathers the facts of the host behind conn (one command) -> facts | nil,
-- message, code (the connection's: "connection" when it was lost).
function M.gather(conn, want)
    local token = "--cutover-facts-" .. crypto.random_hex(8) .. "--"
    local argv = { "/bin/sh", "-c", M.SCRIPT, "cutover-facts", token }
    if want.hardware then argv[#argv + 1] = "hardware" end
    if want.network then argv[#argv + 1] = "network" end
    local r, err, code = conn:exec({ argv = argv, timeout = M.TIMEOUT, max_output = M.MAX_OUTPUT })
    if not r then return nil, err, code end
    if r.interrupted then return nil, "interrupted while gathering facts" end
    if r.timed_out then return nil, "gathering facts timed out after " .. M.TIMEOUT .. " s" end
    if r.rc ~= 0 then
        return nil, "gathering facts: exit code " .. tostring(r.rc) .. ": " .. util.trim(r.stderr:sub(1, 400))
    end
    return M.parse(r.stdout, token, want)
end

-- A read-only view of v, nested tables too (expressions cannot change facts).
function M.freeze(v, name)
    if type(v) ~= "table" then return v end
    local data = {}
    for k, x in pairs(v) do data[k] = M.freeze(x, name) end
    local mt = getmetatable(v)
    if mt then setmetatable(data, mt) end
    return expr.freeze(data, name)
end

return M
