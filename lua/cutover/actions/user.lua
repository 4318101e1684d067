-- user: a local account present (uid, primary group, groups, shell, home,
-- comment, password hash) or absent, through useradd, usermod, userdel and
-- chpasswd on the host.  The password hash goes on chpasswd's stdin,
-- never on a command line (other users of the host can read those).
local function validate(args)
    if not args.name:match("^[%a_][%w_%.%-]*%$?$") then return "name must be a user name such as 'deploy'" end
    if args.append and not args.groups then return "append needs 'groups'" end
    if args.remove and args.state ~= "absent" then return "remove is for state absent" end
    for _, k in ipairs({ "shell", "home", "comment" }) do
        if args[k] and args[k]:find("[:\n]") then return k .. " must not hold ':' or a newline" end
    end
end

-- $1 name: "passwd-line\n--\nsupplementary group names\n--\nhash" (root
-- sees the hash; others get an empty field)
local READ = [=[
getent passwd -- "$1" || exit 0
echo --
id -Gn -- "$1" 2>/dev/null
echo --
getent shadow -- "$1" 2>/dev/null | cut -d: -f2
]=]

local function list_of(v)
    if v == nil then return nil end
    if type(v) == "string" then
        local out = {}
        for g in v:gmatch("[^,%s]+") do out[#out + 1] = g end
        return out
    end
    local out = {}
    for _, g in ipairs(v) do out[#out + 1] = tostring(g) end
    return out
end

local function set_of(list)
    local s = {}
    for _, x in ipairs(list or {}) do s[x] = true end
    return s
end

-- A command on the host -> its result | nil, the first line of its error
local function run_cmd(conn, argv, stdin)
    local r, err = conn:exec({ argv = argv, stdin = stdin, timeout = 300 })
    if not r then return nil, err end
    if r.rc ~= 0 then
        return nil, argv[1] .. ": " .. ((r.stderr ~= "" and r.stderr or r.stdout):gsub("\n.*", ""))
    end
    return r
end

-- The account as the host has it: { uid, gid, comment, home, shell, groups,
-- hash } | false (no such user) | nil, message
local function read_user(conn, user)
    local r, err = run_cmd(conn, { "/bin/sh", "-c", READ, "sh", user })
    if not r then return nil, err end
    local pw, groups, hash = r.stdout:match("^(.-)\n%-%-\n(.-)\n?%-%-\n(.-)\n?$")
    if not pw or pw == "" then return false end
    local name, _, uid, gid, gecos, home,
        shell = pw:match("^([^:]*):([^:]*):(%d+):(%d+):([^:]*):([^:]*):([^:\n]*)")
    if not name then return nil, "cannot read getent passwd: " .. pw end
    local g = {}
    for x in (groups or ""):gmatch("%S+") do g[#g + 1] = x end
    return { uid = tonumber(uid), gid = tonumber(gid), comment = gecos, home = home, shell = shell,
             groups = g, hash = hash }
end

-- The supplementary groups option (groups, append), when they differ
local function groups_change(args, have, want_groups, opt, opts, changes)
    -- id -Gn: the primary group first, then the supplementary ones
    local current = set_of(have and have.groups)
    local missing, extra = {}, false
    for _, g in ipairs(want_groups) do if not current[g] then missing[#missing + 1] = g end end
    if have and not args.append then
        local wanted = set_of(want_groups)
        for i = 2, #have.groups do
            if not wanted[have.groups[i]] then extra = true end
        end
    end
    if #missing > 0 or extra then
        if args.append and have then opts[#opts + 1] = "--append" end
        opt("--groups", table.concat(want_groups, ","))
        changes[#changes + 1] = "groups " .. table.concat(want_groups, ",") ..
            (args.append and " (added)" or "")
    end
end

-- state present: the useradd or usermod command line (nil: nothing to
-- run), the changes in words added to `changes` -> argv | nil, the failure
local function present_argv(ctx, args, have, changes, result)
    local argv
    local want_groups = list_of(args.groups)
    local opts = {}
    local function opt(flag, value) opts[#opts + 1] = flag; opts[#opts + 1] = value end
    if args.uid and (not have or have.uid ~= args.uid) then
        opt("--uid", tostring(args.uid)); changes[#changes + 1] = "uid " .. args.uid
    end
    if args.group then
        local gr = run_cmd(ctx.conn, { "/bin/sh", "-c", 'getent group -- "$1" | cut -d: -f3', "sh", args.group })
        local gid = gr and tonumber(gr.stdout:match("%d+"))
        if not gid then
            -- in check mode an earlier step may be about to create it
            if ctx.check then
                return nil, { unknown = true, msg = "group '" .. args.group .. "' does not exist yet" }
            end
            return nil, { failed = true, msg = "group '" .. args.group .. "' does not exist" }
        end
        if not have or have.gid ~= gid then opt("--gid", args.group); changes[#changes + 1] = "group " ..
            args.group end
    end
    if want_groups then groups_change(args, have, want_groups, opt, opts, changes) end
    if args.shell and (not have or have.shell ~= args.shell) then
        opt("--shell", args.shell); changes[#changes + 1] = "shell " .. args.shell
    end
    if args.home and (not have or have.home ~= args.home) then
        opt("--home", args.home); changes[#changes + 1] = "home " .. args.home
    end
    if args.comment and (not have or have.comment ~= args.comment) then
        opt("--comment", args.comment); changes[#changes + 1] = "comment"
    end
    if not have then
        argv = { "useradd" }
        if args.system then argv[#argv + 1] = "--system" end
        argv[#argv + 1] = args.create_home and "--create-home" or "--no-create-home"
        table.insert(changes, 1, "create user")
    elseif #opts > 0 then
        argv = { "usermod" }
    end
    if argv then
        for _, o in ipairs(opts) do argv[#argv + 1] = o end
        argv[#argv + 1] = "--"
        argv[#argv + 1] = args.name
    end
    if args.password and (not have or have.hash ~= args.password) then
        changes[#changes + 1] = "password"
        result.password_changed = true
    end
    return argv
end

return {
    summary = "Make a local user present (uid, groups, shell, home, password hash) or absent",
    description = [[
Reads the account with `getent passwd`, `id -Gn` and `getent shadow`, and
makes it match: `useradd` when missing (`create_home`, `system`),
`usermod` for what differs (`uid`, primary `group`, `groups`: exactly
these supplementary groups, or with `append: true` at least these;
`shell`, `home`, `comment`), `chpasswd -e` for `password` (a crypt hash,
as in /etc/shadow, passed on stdin and never shown), and `userdel`
(`remove: true` also deletes the home folder) with `state: absent`.
Needs root on the host.]],
    args = {
        name = { type = "string", required = true, doc = "the user" },
        state = { type = "string", default = "present", choices = { "present", "absent" }, doc = "whether it exists" },
        uid = { type = "int", doc = "its user id" },
        group = { type = "string", doc = "primary group (name or gid)" },
        groups = { type = "list", scalar_ok = true,
            doc = "supplementary groups (a list, or names separated by commas)" },
        append = { type = "bool", default = false, doc = "add to groups instead of setting them exactly" },
        shell = { type = "string", doc = "login shell" },
        home = { type = "string", doc = "home folder" },
        create_home = { type = "bool", default = true, doc = "make the home folder when creating the user" },
        system = { type = "bool", default = false, doc = "a system account when created" },
        comment = { type = "string", doc = "the GECOS field" },
        password = { type = "string", doc = "crypt hash for /etc/shadow (never shown)" },
        remove = { type = "bool", default = false, doc = "state absent: delete the home folder too" },
    },
    validate = validate,
    returns = { uid = "the user's id", name = "the user", home = "its home", shell = "its shell",
                groups = "its supplementary groups" },
    check_mode = "Exact: reads the account and reports every field useradd, usermod, chpasswd or userdel would " ..
        "change (the password only as changed, never its value); changes nothing.",
    idempotent = true,
    run = function(ctx, args)
        local conn = ctx.conn
        local have, err = read_user(conn, args.name)
        if have == nil then return { failed = true, msg = err } end
        local result = { name = args.name, changed = false }
        local changes, argv = {}
        if args.state == "absent" then
            if not have then return result end
            argv = { "userdel" }
            if args.remove then argv[#argv + 1] = "--remove" end
            argv[#argv + 1] = "--"
            argv[#argv + 1] = args.name
            changes[1] = "remove user" .. (args.remove and " and its home" or "")
        else
            local failure
            argv, failure = present_argv(ctx, args, have, changes, result)
            if failure then return failure end
        end
        if #changes == 0 then
            result.uid, result.home, result.shell, result.groups = have.uid, have.home, have.shell, have.groups
            return result
        end
        result.changed = true
        local modify = have and args.state ~= "absent"
        result.msg = (ctx.check and "would " or "") .. (modify and "set " or "") .. table.concat(changes, ", ")
        if ctx.diff then
            result.diff = { path = "user " .. args.name,
                            before_state = have and ("uid " .. have.uid .. ", shell " .. have.shell .. ", home " ..
                                have.home .. ", groups " .. table.concat(have.groups, ",")) or "absent",
                            after_state = table.concat(changes, ", ") }
        end
        if ctx.check then return result end
        if argv then
            local ok, rerr = run_cmd(conn, argv)
            if not ok then return { failed = true, msg = rerr } end
        end
        if result.password_changed then
            local ok = run_cmd(conn, { "chpasswd", "-e" }, args.name .. ":" .. args.password .. "\n")
            -- the error text of chpasswd could hold the line: say only that it failed
            if not ok then return { failed = true, msg = "chpasswd: setting the password of " .. args.name ..
                " failed" } end
        end
        local now = read_user(conn, args.name)
        if now then result.uid, result.home, result.shell, result.groups = now.uid, now.home, now.shell, now.groups end
        return result
    end,
}
