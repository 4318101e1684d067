-- actions.lib.aptget: apt-get and dpkg on a host, for the apt action:
-- the environment and options of its commands, their output parsed
-- (apt-get -s, dpkg-query, dpkg.log, errors), the installed packages,
-- dpkg's lock waited for, the package lists' age.
local util = require("cutover.util")
local loop = require("cutover.core.loop")

local q = util.sh_quote

local M = {}

-- Runs non-interactive, in the C locale (apt's messages are parsed)
local ENV = { DEBIAN_FRONTEND = "noninteractive", APT_LISTCHANGES_FRONTEND = "none", LC_ALL = "C" }
M.ENV = ENV
local LISTS = "/var/lib/apt/lists"
M.LISTS = LISTS
local STAMP = "/var/lib/apt/periodic/update-success-stamp"
M.STAMP = STAMP
local LOCKS = { "/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", LISTS .. "/lock" }

-- Debian version order (cutover.debversion); a version apt printed that
-- does not parse counts as newer, never as a downgrade.
function M.version_cmp(a, b)
    return require("cutover.debversion").compare(a, b) or 1
end

-- apt-get -s output -> list of { name, from, to, action }
function M.parse_simulation(out)
    local list = {}
    for line in out:gmatch("[^\n]+") do
        local name, rest = line:match("^Inst (%S+) (.*)$")
        if name then
            local old = rest:match("^%[([^%]]*)%]")
            local new = rest:match("%((%S+)")
            local action = "install"
            if old then action = M.version_cmp(new or "", old) < 0 and "downgrade" or "upgrade" end
            list[#list + 1] = { name = name, from = old, to = new, action = action }
        else
            local verb, rname, ver = line:match("^(%u%l%l%l) (%S+) %[([^%]]*)%]")
            if verb == "Remv" or verb == "Purg" then
                list[#list + 1] = { name = rname, from = ver, action = verb == "Purg" and "purge" or "remove" }
            elseif line:match("^Purg %S+$") then
                list[#list + 1] = { name = line:match("^Purg (%S+)"), action = "purge" }
            end
        end
    end
    table.sort(list, function(a, b) return a.name < b.name end)
    return list
end

function M.first_error(r)
    local text = r.stderr ~= "" and r.stderr or r.stdout
    local lines = {}
    for l in text:gmatch("[^\n]+") do
        if l:match("^E: ") or l:match("^W: ") or #lines == 0 and l:match("%S") then lines[#lines + 1] = l end
    end
    return util.trim(table.concat(lines, "\n"))
end

-- The named packages as dpkg knows them: name -> { version, status, held }
function M.installed(conn, names)
    local out = {}
    if #names == 0 then return out end
    local argv = { "dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n" }
    for _, n in ipairs(names) do argv[#argv + 1] = (n:gsub(":.*", "")) end
    local r, err = conn:exec({ argv = argv, env = ENV, timeout = 120 })
    if not r then return nil, err end
    if r.rc == 127 then return nil, "dpkg-query is not on this host (not a Debian host)" end
    for line in r.stdout:gmatch("[^\n]+") do
        local name, ver, abbrev = line:match("^([^\t]+)\t([^\t]*)\t(%S*)")
        if name then
            local s = abbrev:sub(2, 2)
            out[name] = { version = ver, held = abbrev:sub(1, 1) == "h",
                          installed = s == "i" or s == "W" or s == "t", config_only = s == "c" }
        end
    end
    return out
end

-- Who holds one of dpkg's or apt's locks: "PID COMMAND", or "".  Read
-- from /proc/locks (the locks are fcntl locks; no tool beyond awk).
local LOCK_PROBE = "for f in " .. table.concat(LOCKS, " ") .. "; do [ -e \"$f\" ] || continue; " ..
    "i=$(stat -c %i \"$f\") || continue; " ..
    "p=$(awk -v i=\"$i\" '{for(k=2;k<=NF;k++) if ($k ~ (\":\" i \"$\")) {print $(k-1); exit}}' /proc/locks); " ..
    "if [ -n \"$p\" ]; then echo \"$p $(cat /proc/$p/comm 2>/dev/null)\"; exit 0; fi; done; exit 0"

-- Waits (visibly) until no process holds the locks; returns the seconds
-- left of lock_timeout, the seconds waited, the holder seen | nil, message.
function M.wait_lock(ctx, timeout)
    local waited, seen = 0, nil
    while true do
        local r, err = ctx.conn:exec({ shell = LOCK_PROBE, timeout = 60 })
        if not r then return nil, err end
        local holder = util.trim(r.stdout)
        if holder == "" then return math.max(timeout - waited, 10), waited, seen end
        seen = holder
        local pid, comm = holder:match("^(%d+)%s*(.*)$")
        local who = "process " .. tostring(pid) .. (comm ~= "" and (" (" .. comm .. ")") or "")
        if waited >= timeout then
            return nil, "the dpkg lock on " .. tostring(ctx.host) .. " is still held by " .. who ..
                " after " .. waited .. " s (lock_timeout)"
        end
        if ctx.interrupted and ctx.interrupted() then return nil, "interrupted while waiting for the dpkg lock" end
        if ctx.progress then ctx.progress("waiting for the dpkg lock, held by " .. who .. " (" .. waited .. " s)") end
        loop.sleep(2)
        waited = waited + 2
    end
end

-- The options every apt-get command of the step gets.
function M.apt_options(args, real_lock_timeout)
    local o = { "-y", "-q" }
    if real_lock_timeout then
        o[#o + 1] = "-o"; o[#o + 1] = "DPkg::Lock::Timeout=" .. math.floor(real_lock_timeout)
    end
    if args.conffiles == "replace" then
        o[#o + 1] = "-o"; o[#o + 1] = "Dpkg::Options::=--force-confdef"
        o[#o + 1] = "-o"; o[#o + 1] = "Dpkg::Options::=--force-confnew"
    else
        o[#o + 1] = "-o"; o[#o + 1] = "Dpkg::Options::=--force-confdef"
        o[#o + 1] = "-o"; o[#o + 1] = "Dpkg::Options::=--force-confold"
    end
    if args.allow_downgrade then o[#o + 1] = "--allow-downgrades" end
    if args.allow_change_held_packages or args.hold == false then o[#o + 1] = "--allow-change-held-packages" end
    if args.install_recommends == true then o[#o + 1] = "--install-recommends"
    elseif args.install_recommends == false then o[#o + 1] = "--no-install-recommends" end
    return o
end

-- dpkg's decisions on conffiles, from the lines of /var/log/dpkg.log the
-- run added ("DATE TIME conffile PATH keep|install"): kept, replaced.
-- (With --force-confold dpkg prints nothing about them; its log says.)
function M.conffile_reports(log)
    local kept, replaced = {}, {}
    for line in log:gmatch("[^\n]+") do
        local path, what = line:match(" conffile (%S+) (%a+)$")
        if what == "keep" then kept[#kept + 1] = path
        elseif what == "install" then replaced[#replaced + 1] = path end
    end
    return kept, replaced
end

function M.describe(p)
    if p.action == "install" then return "install " .. p.name .. " " .. tostring(p.to) end
    if p.action == "remove" or p.action == "purge" then
        return p.action .. " " .. p.name .. (p.from and (" " .. p.from) or "")
    end
    return p.action .. " " .. p.name .. " " .. tostring(p.from) .. " -> " .. tostring(p.to)
end

function M.version_text(list, after)
    local lines = {}
    for _, p in ipairs(list) do
        local v = after and p.to or p.from
        if after and (p.action == "remove" or p.action == "purge") then v = nil end
        lines[#lines + 1] = p.name .. " " .. (v or "(not installed)")
    end
    return table.concat(lines, "\n") .. "\n"
end

-- Seconds since the package lists were last updated (for
-- cache_valid_time): the update stamp's age, else the lists folder's.  A
-- host with no package list at all has never been updated, whatever its
-- folder's date (a fresh image, or lists just removed): as old as can be.
-- lists, stamp: other paths, for tests.
function M.cache_age(conn, lists, stamp)
    lists, stamp = lists or LISTS, stamp or STAMP
    local r = conn:exec({ shell = "now=$(date +%s); t=0; for f in " .. q(lists) .. "/*_Packages*; do " ..
        "[ -e \"$f\" ] && t=$(stat -c %Y " .. q(stamp) .. " 2>/dev/null || stat -c %Y " .. q(lists) ..
        " 2>/dev/null || echo 0); break; done; echo $((now - t))", timeout = 60 })
    return r and r.rc == 0 and tonumber(util.trim(r.stdout)) or math.huge
end

return M
