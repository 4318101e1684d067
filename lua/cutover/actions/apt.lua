-- apt: Debian packages through apt-get on the host.  Every change is
-- first simulated with `apt-get -s`; the simulation's list (every package
-- installed, upgraded, downgraded or removed, dependencies included) is
-- the check-mode prediction and the plan the real run carries out, so the
-- two cannot disagree.  `package` dispatches here on the host's package
-- manager (actions/package.lua).  What it runs on the host and how it
-- reads the output is in lib/aptget.lua.
local util = require("cutover.util")
local aptget = require("cutover.actions.lib.aptget")

local q = util.sh_quote
local ENV, LISTS, STAMP = aptget.ENV, aptget.LISTS, aptget.STAMP
local version_cmp, parse_simulation, first_error = aptget.version_cmp, aptget.parse_simulation, aptget.first_error
local installed, wait_lock, apt_options = aptget.installed, aptget.wait_lock, aptget.apt_options
local conffile_reports, describe, version_text = aptget.conffile_reports, aptget.describe, aptget.version_text
local cache_age = aptget.cache_age

local UPGRADE_WORDS = { no = "no", safe = "safe", yes = "safe", full = "full", dist = "dist" }

-- `upgrade` as written (YAML turns yes/no into booleans) -> no|safe|full|dist
local function upgrade_mode(v)
    if v == nil or v == false then return "no" end
    if v == true then return "safe" end
    return UPGRADE_WORDS[tostring(v)]
end

-- "name" or "name=version" -> name, version | nil, why.  Names are
-- Debian's (lower case, digits, + - .; an optional :arch), so no word
-- can reach apt-get as an option.
local function parse_name(s)
    local name, ver = s:match("^([^=]*)=(.*)$")
    name = name or s
    if not (name:match("^[a-z0-9][a-z0-9+.%-]+$") or name:match("^[a-z0-9][a-z0-9+.%-]+:[a-z0-9%-]+$")) then
        return nil, "'" .. s .. "' is not a package name (lower-case letters, digits, + - . and an optional :arch)"
    end
    if ver and not ver:match("^[%w][%w.+~:%-]*$") then
        return nil, "'" .. s .. "': the version after = is not a Debian version"
    end
    return name, ver
end

local function templated(v) return type(v) == "string" and v:find("{{", 1, true) ~= nil end

local function validate(args)
    local up = upgrade_mode(args.upgrade)
    if not up then return "upgrade must be one of no, safe, full, dist (or yes, meaning safe)" end
    local state = args.state or "present"
    local names = args.name or {}
    local pinned = false
    for _, n in ipairs(names) do
        if type(n) ~= "string" and type(n) ~= "number" then return "name must be package names (text)" end
        if not templated(n) then
            local ok, err = parse_name(tostring(n))
            if not ok then return err end
            pinned = pinned or tostring(n):find("=", 1, true) ~= nil
        end
    end
    local update = args.update_cache or args.cache_valid_time ~= nil
    if #names == 0 and up == "no" and not update and not args.autoremove then
        return "needs 'name', 'upgrade', 'update_cache' or 'autoremove'"
    end
    if #names > 0 and up ~= "no" then return "takes 'name' or 'upgrade', not both (use two steps)" end
    if up ~= "no" and args.autoremove then
        return "autoremove with upgrade: put 'autoremove: true' in a step of its own after it (so each is " ..
            "simulated exactly)"
    end
    if pinned and state ~= "present" then return "a version pin (name=version) goes with state present" end
    if args.purge and state ~= "absent" then return "purge goes with state absent" end
    if args.hold ~= nil and #names == 0 then return "hold needs 'name'" end
    if args.hold == true and state == "absent" then return "hold: true with state absent (hold what is installed)" end
    if args.allow_downgrade and state == "absent" then return "allow_downgrade goes with state present or latest" end
end

local M = {
    summary = "Install, upgrade, remove or hold Debian packages with apt-get (exact simulation in check mode)",
    description = [[
Every change is first simulated with `apt-get -s`: the packages it lists
(dependencies included, with their old and new versions) are the check
mode prediction, the `--diff` (each package's version before -> after)
and what the real run does; when the simulation lists nothing, apt-get is
not run at all.

`state: present` installs the named packages that are missing (an
installed one is not upgraded; `name=1.2-1` pins a version: installed, or
changed to, exactly that one; a lower one needs `allow_downgrade`).
`latest` upgrades them to the candidate version.  `absent` removes them
(`purge: true` removes their configuration files too).  `upgrade: safe`
upgrades every package, installing new dependencies but removing none
(`apt-get upgrade --with-new-pkgs`); `full` and `dist` may remove
packages (`apt-get dist-upgrade`).  `autoremove` removes packages nothing
needs any more.  `update_cache` runs `apt-get update` first, unless the
last update is more recent than `cache_valid_time` seconds (which implies
`update_cache`); updating the lists is not counted as a change.  The last
update's time is that of apt's update stamp, else of the lists folder; a
host with no package list at all has never been updated, however new its
lists folder is.

`hold: true` holds the named packages after installing them (`apt-mark
hold`: apt-get then never upgrades or removes them), `hold: false`
releases them first (`apt-mark unhold`) and lets this step change them.
Without it, a step that would change a held package fails naming it
(`allow_change_held_packages: true` allows it without releasing the hold).

Commands run with `DEBIAN_FRONTEND=noninteractive`.  A configuration
file changed on the host that a new version also changes is never
answered silently: `conffiles: keep` (the default) keeps the host's file
(dpkg's `--force-confold`; the package's version is left beside it as
`FILE.dpkg-dist`) and lists it in the result's `conffiles_kept`;
`conffiles: replace` installs the package's file (`--force-confnew`; the
old one is kept as `FILE.dpkg-old`) and lists it in `conffiles_replaced`.
Before changing anything the step waits for dpkg's lock while another
process holds it (up to `lock_timeout` seconds), saying which process it
waits for.  Needs root (become) for every change; the simulation does
not.]],
    free_form = "name",
    args = {
        name = { type = "list", scalar_ok = true, doc = "package names; name=version pins a version" },
        state = { type = "string", default = "present", choices = { "present", "absent", "latest" },
                  doc = "installed, removed, or installed at the newest version" },
        update_cache = { type = "bool", default = false, doc = "apt-get update first" },
        cache_valid_time = { type = "int", doc = "skip the update when the last one is more recent (seconds)" },
        upgrade = { type = "any", doc = "no, safe (yes), full or dist: upgrade every package" },
        autoremove = { type = "bool", default = false, doc = "remove packages nothing needs any more" },
        purge = { type = "bool", default = false, doc = "with state absent: remove configuration files too" },
        allow_downgrade = { type = "bool", default = false, doc = "a pin may name an older version" },
        allow_change_held_packages = { type = "bool", default = false, doc = "held packages may be changed" },
        install_recommends = { type = "bool", doc = "install recommended packages (default: apt's setting)" },
        hold = { type = "bool", doc = "true: hold the packages (apt-mark hold); false: release them first" },
        conffiles = { type = "string", default = "keep", choices = { "keep", "replace" },
                      doc = "a locally changed configuration file the new version also changes: keep it or " ..
                          "replace it" },
        lock_timeout = { type = "int", default = 120, doc = "seconds to wait for dpkg's lock" },
    },
    validate = validate,
    returns = {
        packages = "every package changed (or, in check mode, that would be): name, action (install, upgrade, " ..
            "downgrade, remove, purge), from and to versions",
        held = "packages this step put on hold", unheld = "packages this step released",
        conffiles_kept = "configuration files kept as they were (the package's version is FILE.dpkg-dist)",
        conffiles_replaced = "configuration files replaced (the old one is FILE.dpkg-old)",
        cache_updated = "whether apt-get update ran (in check mode: would run)",
        reboot_required = "whether /var/run/reboot-required exists after the step",
        reboot_required_pkgs = "the packages listed in /var/run/reboot-required.pkgs",
    },
    check_mode = "Exact: the same apt-get -s simulation the real run carries out lists every package that would " ..
        "change, with versions; hold changes are read with dpkg-query. A cache update is made into a private copy " ..
        "of the package lists, so the prediction sees the updated lists and the host's own are untouched. A " ..
        "package that an earlier step's repository or update would make available is not seen.",
    idempotent = true,
    -- for the unit tests (not arguments or docs)
    parse_simulation = function(out) return parse_simulation(out) end,
    version_cmp = function(a, b) return version_cmp(a, b) end,
    conffile_reports = function(out) return conffile_reports(out) end,
}

-- The package lists: apt-get update when asked and the lists are older
-- than cache_valid_time.  In check mode the update goes into a private
-- copy of the lists.  -> true, the private copy's path or nil | nil, message
local function update_lists(ctx, args, result)
    local conn = ctx.conn
    local private_lists
    local update = args.update_cache or args.cache_valid_time ~= nil
    if not (update and (args.cache_valid_time == nil or cache_age(conn) > args.cache_valid_time)) then
        return true, nil
    end
    result.cache_updated = true
    if ctx.check then
        -- a private copy of the lists, updated: the simulation sees
        -- what the real run's update would bring; the host's are kept
        local r, err = conn:exec({ shell = "t=$(mktemp -d /tmp/cutover-apt.XXXXXXXX) && chmod 755 \"$t\" && " ..
            "cp -a " .. LISTS .. "/. \"$t\"/ && mkdir -p \"$t/partial\" && echo \"$t\"", timeout = 120 })
        if not r then return nil, err end
        if r.rc ~= 0 then return nil, "copying the package lists: " .. first_error(r) end
        private_lists = util.trim(r.stdout)
    else
        local left, waited = wait_lock(ctx, args.lock_timeout)
        if not left then return nil, waited end
    end
    local argv = { "apt-get", "-q", "update" }
    if private_lists then
        argv = { "apt-get", "-q", "-o", "Dir::State::Lists=" .. private_lists, "-o", "Dir::Cache::pkgcache=",
                 "-o", "Dir::Cache::srcpkgcache=", "update" }
    end
    local r, err = conn:exec({ argv = argv, env = ENV, timeout = 900 })
    if not r then return nil, err end
    if r.rc ~= 0 or r.stdout:match("\nW: Failed to fetch") or r.stderr:match("Failed to fetch") then
        if private_lists then conn:exec({ argv = { "rm", "-rf", private_lists }, timeout = 60 }) end
        return nil, "apt-get update on " .. tostring(ctx.host) .. ": " .. first_error(r)
    end
    if not ctx.check then conn:exec({ shell = "mkdir -p " .. q(util.dirname(STAMP)) .. " && touch " .. q(STAMP),
        timeout = 60 }) end
    return true, private_lists
end

-- The named packages: names, name -> pinned version | nil, message
local function named_packages(args)
    local names, pins = {}, {}
    for _, n in ipairs(args.name or {}) do
        local name, ver = parse_name(tostring(n))
        if not name then return nil, ver end
        names[#names + 1] = name
        pins[name] = ver
    end
    return names, pins
end

-- The apt-get verb and its words for what the step asks, given what dpkg
-- has (`have`): verb or nil (nothing to do), words
local function apt_verb(args, names, pins, have)
    local up = upgrade_mode(args.upgrade)
    local state = args.state or "present"
    local verb, words = nil, {}
    if #names > 0 then
        if state == "absent" then
            for _, n in ipairs(names) do
                local h = have[(n:gsub(":.*", ""))]
                if h and (h.installed or (args.purge and h.config_only)) then words[#words + 1] = n end
            end
            verb = args.purge and "purge" or "remove"
        else
            for _, n in ipairs(names) do
                local h = have[(n:gsub(":.*", ""))]
                local want = pins[n]
                if state == "latest" or not (h and h.installed) or (want and h.version ~= want) then
                    words[#words + 1] = want and (n .. "=" .. want) or n
                end
            end
            verb = "install"
        end
        if #words == 0 then verb = nil end
        if args.autoremove and not verb then verb = "autoremove" end
    elseif up == "safe" then verb, words = "upgrade", { "--with-new-pkgs" }
    elseif up == "full" or up == "dist" then verb = "dist-upgrade"
    elseif args.autoremove then verb = "autoremove" end
    return verb, words
end

-- The apt-get command line: the simulation (sim) or the real run
-- (lock_left: seconds of lock_timeout left); private_lists in check mode
local function apt_command(args, verb, words, private_lists, sim, lock_left)
    local argv = { "apt-get" }
    if sim then argv[#argv + 1] = "-s" end
    for _, o in ipairs(apt_options(args, lock_left)) do argv[#argv + 1] = o end
    if sim then
        -- the plan shows downgrades and held packages; the checks
        -- below refuse them by name (apt's own error names neither)
        argv[#argv + 1] = "--allow-downgrades"; argv[#argv + 1] = "--allow-change-held-packages"
    end
    if private_lists then
        argv[#argv + 1] = "-o"; argv[#argv + 1] = "Dir::State::Lists=" .. private_lists
    end
    if sim then
        -- the simulation writes nothing, not even apt's binary cache
        for _, o in ipairs({ "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=" }) do
            argv[#argv + 1] = o
        end
    end
    if args.autoremove and (verb == "install" or verb == "remove" or verb == "purge") then
        argv[#argv + 1] = "--autoremove"
    end
    argv[#argv + 1] = verb
    for _, w in ipairs(words) do argv[#argv + 1] = w end
    return argv
end

-- apt-get -s does not stop at what -y would refuse: a downgrade, a held
-- package changed.  Both are refused here, before any change.
-- -> the plan's package names | nil, message
local function refuse_downgrades_and_held(conn, host, args, names, plan)
    local plan_names = {}
    for _, p in ipairs(plan) do plan_names[#plan_names + 1] = p.name end
    local plan_have = installed(conn, plan_names) or {}
    local releasing = {}
    if args.hold == false then for _, n in ipairs(names) do releasing[(n:gsub(":.*", ""))] = true end end
    local downgrades, held = {}, {}
    for _, p in ipairs(plan) do
        local base = p.name:gsub(":.*", "")
        if p.action == "downgrade" then downgrades[#downgrades + 1] = p.name .. " " .. p.from .. " -> " .. p.to end
        local h = plan_have[base]
        if h and h.held and not releasing[base] and not args.allow_change_held_packages then held[#held + 1] =
            p.name end
    end
    if #downgrades > 0 and not args.allow_downgrade then
        return nil, "on " .. host .. " this would downgrade " .. table.concat(downgrades, ", ") ..
            " (allow_downgrade: true allows it)"
    end
    if #held > 0 then
        return nil, "on " .. host .. " this would change held package(s) " .. table.concat(held, ", ") ..
            " (hold: false releases them; allow_change_held_packages: true changes them held)"
    end
    return plan_names
end

-- The named packages to hold and to release: to_hold, to_unhold
local function hold_changes(args, names, have)
    local to_hold, to_unhold = {}, {}
    if args.hold ~= nil then
        for _, n in ipairs(names) do
            local h = have[(n:gsub(":.*", ""))]
            local is_held = h and h.held or false
            if args.hold and not is_held then to_hold[#to_hold + 1] = n end
            if args.hold == false and is_held then to_unhold[#to_unhold + 1] = n end
        end
    end
    return to_hold, to_unhold
end

-- The result's packages, holds, changed and --diff; -> the changes in words
local function record_plan(ctx, host, result, plan, to_hold, to_unhold)
    result.packages = plan
    result.held, result.unheld = to_hold, to_unhold
    result.changed = #plan > 0 or #to_hold > 0 or #to_unhold > 0
    local words_out = {}
    for _, n in ipairs(to_unhold) do words_out[#words_out + 1] = "unhold " .. n end
    for _, p in ipairs(plan) do words_out[#words_out + 1] = describe(p) end
    for _, n in ipairs(to_hold) do words_out[#words_out + 1] = "hold " .. n end
    if ctx.diff and result.changed then
        local before, after = version_text(plan, false), version_text(plan, true)
        for _, n in ipairs(to_unhold) do before = before .. n .. " held\n"; after = after .. n .. " not held\n" end
        for _, n in ipairs(to_hold) do before = before .. n .. " not held\n"; after = after .. n .. " held\n" end
        result.diff = { path = "packages on " .. host, before_header = "packages on " .. host,
                        before = before, after = after }
    end
    return words_out
end

-- reboot_required and reboot_required_pkgs into the result
local function reboot_state(conn, result)
    local r = conn:exec({ shell = "if [ -e /var/run/reboot-required ]; then echo yes; " ..
        "cat /var/run/reboot-required.pkgs 2>/dev/null; fi; true", timeout = 60 })
    local out = r and r.rc == 0 and r.stdout or ""
    result.reboot_required = out:match("^yes") ~= nil
    local pkgs = {}
    for l in out:gsub("^yes\n?", ""):gmatch("[^\n]+") do pkgs[#pkgs + 1] = l end
    result.reboot_required_pkgs = pkgs
end

-- apt-mark hold|unhold the list -> true | nil, message
local function mark(conn, host, what, list)
    if #list == 0 then return true end
    local argv = { "apt-mark", what }
    for _, n in ipairs(list) do argv[#argv + 1] = n end
    local r, merr = conn:exec({ argv = argv, env = ENV, timeout = 120 })
    if not r then return nil, merr end
    if r.rc ~= 0 then return nil, "apt-mark " .. what .. " on " .. host .. ": " .. first_error(r) end
    return true
end

-- The real apt-get run of a non-empty plan: waits for the lock, runs it,
-- reads dpkg's conffile decisions, checks that dpkg now has what the
-- simulation said.  -> true | nil, message
local function carry_out(ctx, args, result, verb, words, plan, plan_names)
    local conn, host = ctx.conn, tostring(ctx.host)
    local left, waited, holder = wait_lock(ctx, args.lock_timeout)
    if not left then return nil, waited end
    if waited > 0 then
        result.lock_waited = waited
        result.lock_holder = holder
    end
    local argv = apt_command(args, verb, words, nil, false, left)
    local size = conn:exec({ shell = "stat -c %s /var/log/dpkg.log 2>/dev/null || echo 0", timeout = 60 })
    size = size and tonumber(util.trim(size.stdout)) or 0
    local r, rerr = conn:exec({ argv = argv, env = ENV, timeout = 3600 })
    if not r then return nil, rerr end
    local log = conn:exec({ shell = "tail -c +" .. (size + 1) ..
        " /var/log/dpkg.log 2>/dev/null | grep ' conffile ' | head -n 1000; true",
                            timeout = 60 })
    result.conffiles_kept, result.conffiles_replaced = conffile_reports(log and log.stdout or "")
    if r.rc ~= 0 then
        return nil, "apt-get " .. verb .. " on " .. host .. " (exit " .. r.rc .. "): " .. first_error(r)
    end
    -- what dpkg now has: the result reports it, not the plan
    local now = installed(conn, plan_names) or {}
    for _, p in ipairs(plan) do
        local h = now[(p.name:gsub(":.*", ""))]
        local v = h and h.installed and h.version or nil
        if (p.action == "remove" or p.action == "purge") then
            if v then return nil, "apt-get " .. verb .. " on " .. host .. " left " .. p.name .. " " .. v ..
                " installed" end
        elseif v ~= p.to then
            return nil, "apt-get " .. verb .. " on " .. host .. ": " .. p.name .. " is at " .. tostring(v) ..
                ", the simulation said " .. tostring(p.to)
        end
    end
    return true
end

-- The message of a real run that changed something
local function done_message(result, words_out)
    local msg = table.concat(words_out, ", ")
    if result.lock_waited then
        msg = msg .. " (waited " .. result.lock_waited .. " s for the dpkg lock, held by process " ..
            tostring(result.lock_holder) .. ")"
    end
    if result.conffiles_kept and #result.conffiles_kept > 0 then
        msg = msg .. "; kept the host's " .. table.concat(result.conffiles_kept, ", ") ..
            " (the package's version is beside it as .dpkg-dist)"
    end
    return msg
end

function M.run(ctx, args)
    local conn = ctx.conn
    local host = tostring(ctx.host)
    local result = { changed = false, packages = {}, held = {}, unheld = {}, cache_updated = false }
    local fail = function(msg) result.failed = true; result.msg = msg; return result end

    local probe = conn:exec({ shell = "command -v apt-get", timeout = 60 })
    if probe and probe.rc ~= 0 then return fail("apt-get is not on " .. host .. " (not a Debian or Ubuntu host)") end

    local updated, private_lists = update_lists(ctx, args, result)
    if not updated then return fail(private_lists) end
    local function cleanup()
        if private_lists then conn:exec({ argv = { "rm", "-rf", private_lists },
            timeout = 60 }); private_lists = nil end
    end

    -- what dpkg has of the named packages
    local names, pins = named_packages(args)
    if not names then cleanup(); return fail(pins) end
    local have, err = installed(conn, names)
    if not have then cleanup(); return fail(err) end
    local verb, words = apt_verb(args, names, pins, have)

    -- the simulation: the plan
    local plan = {}
    if verb then
        local argv = apt_command(args, verb, words, private_lists, true)
        local r, serr = conn:exec({ argv = argv, env = ENV, timeout = 600 })
        cleanup()
        if not r then return fail(serr) end
        if r.rc ~= 0 then
            return fail("apt-get -s " .. verb .. (#words > 0 and (" " .. table.concat(words, " ")) or "") ..
                " on " .. host .. ": " .. first_error(r))
        end
        plan = parse_simulation(r.stdout)
    end
    cleanup()

    local plan_names, rerr = refuse_downgrades_and_held(conn, host, args, names, plan)
    if not plan_names then return fail(rerr) end
    local to_hold, to_unhold = hold_changes(args, names, have)
    local words_out = record_plan(ctx, host, result, plan, to_hold, to_unhold)

    if ctx.check or not result.changed then
        reboot_state(conn, result)
        if result.changed then result.msg = "would " .. table.concat(words_out, ", ") end
        return result
    end

    -- the real run: release holds, the apt-get command, new holds
    local ok, merr = mark(conn, host, "unhold", to_unhold)
    if not ok then return fail(merr) end
    if #plan > 0 then
        ok, merr = carry_out(ctx, args, result, verb, words, plan, plan_names)
        if not ok then return fail(merr) end
    end
    ok, merr = mark(conn, host, "hold", to_hold)
    if not ok then return fail(merr) end
    reboot_state(conn, result)
    result.msg = done_message(result, words_out)
    return result
end

return M
