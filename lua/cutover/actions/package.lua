-- package: Ansible's generic package action.  Picks the action for the
-- host's package manager (the pkg_mgr fact, or `use`); only apt exists,
-- so any other manager is an error naming the host and the manager.
local apt = require("cutover.actions.apt")

-- The manager the facts name; without gathered facts, asked of the host
-- with the facts' own test (the first of these on its PATH).
local PROBE = "for p in apt-get dnf yum zypper apk pacman; do " ..
    "if command -v \"$p\" >/dev/null 2>&1; then echo \"$p\"; break; fi; done; true"

local function manager(ctx)
    local facts = ctx.scope and ctx.scope:get("facts")
    local m = type(facts) == "table" and facts.pkg_mgr or nil
    if m then return m end
    local r, err = ctx.conn:exec({ shell = PROBE, timeout = 60 })
    if not r then return nil, err end
    m = (r.stdout:gsub("%s+$", ""))
    if m == "apt-get" then m = "apt" end
    return m ~= "" and m or "none found"
end

local package = {}
for k, v in pairs(apt) do package[k] = v end
package.args = {}
for k, v in pairs(apt.args) do package.args[k] = v end
package.args.use = { type = "string", default = "auto",
                     doc = "the package manager: auto (the host's pkg_mgr fact) or apt" }
package.arg_names = nil
package.summary = "Packages through the host's package manager (only apt: Debian and Ubuntu hosts)"
package.description = [[
Ansible's generic package action: it reads the host's package manager (the
`pkg_mgr` fact, asked of the host when facts were not gathered; `use`
names one instead) and does what `apt` does with the same arguments.
Only apt is supported: on a host whose manager is another one (dnf, yum,
zypper, apk, pacman) the step fails naming the host and the manager,
before anything is run.  See `apt` for the arguments and the check mode.]]
package.run = function(ctx, args)
    local m, err = args.use ~= "auto" and args.use or nil, nil
    if not m then m, err = manager(ctx) end
    if not m then return { failed = true, msg = err } end
    if m ~= "apt" then
        return { failed = true, msg = "package on " .. tostring(ctx.host) .. ": the package manager is " .. m ..
                 "; cutover's package action supports only apt (Debian, Ubuntu)" }
    end
    local a = {}
    for k, v in pairs(args) do if k ~= "use" then a[k] = v end end
    return apt.run(ctx, a)
end
return package
