-- group: a local group present (with a gid) or absent, through groupadd,
-- groupmod and groupdel on the host.
local function validate(args)
    if not args.name:match("^[%a_][%w_%.%-]*%$?$") then return "name must be a group name such as 'www-data'" end
end

-- $1 name: prints "NAME:x:GID:MEMBERS" or nothing
local GETENT = 'getent group -- "$1" || :'

return {
    summary = "Make a local group present (with its gid) or absent",
    description = [[
Reads the group with `getent group` and makes it match: `groupadd`
(`--gid`, `--system`) when it is missing, `groupmod --gid` when its gid
differs, `groupdel` with `state: absent`.  Needs root on the host (with
become once it exists).]],
    args = {
        name = { type = "string", required = true, doc = "the group" },
        state = { type = "string", default = "present", choices = { "present", "absent" }, doc = "whether it exists" },
        gid = { type = "int", doc = "its group id" },
        system = { type = "bool", default = false, doc = "a system group (a gid from the system range) when created" },
    },
    validate = validate,
    returns = { gid = "the group's id", name = "the group" },
    check_mode = "Exact: reads the group with getent and reports what groupadd, groupmod or groupdel would " ..
        "change; changes nothing.",
    idempotent = true,
    run = function(ctx, args)
        local conn = ctx.conn
        local function run(argv)
            local r, err = conn:exec({ argv = argv, timeout = 120 })
            if not r then return nil, err end
            if r.rc ~= 0 then return nil, argv[1] .. ": " .. ((r.stderr ~= "" and r.stderr or r.stdout):gsub("\n.*",
                "")) end
            return r
        end
        local r, err = run({ "/bin/sh", "-c", GETENT, "sh", args.name })
        if not r then return { failed = true, msg = err } end
        local gid = tonumber(r.stdout:match("^[^:]*:[^:]*:(%d+):"))
        local result = { name = args.name, gid = gid, changed = false }
        local argv
        if args.state == "absent" then
            if not gid then return result end
            argv = { "groupdel", "--", args.name }
            result.msg = "would remove group " .. args.name
        elseif not gid then
            argv = { "groupadd" }
            if args.gid then argv[#argv + 1] = "--gid"; argv[#argv + 1] = tostring(args.gid) end
            if args.system then argv[#argv + 1] = "--system" end
            argv[#argv + 1] = "--"
            argv[#argv + 1] = args.name
            result.msg = "would create group " .. args.name
        elseif args.gid and args.gid ~= gid then
            argv = { "groupmod", "--gid", tostring(args.gid), "--", args.name }
            result.msg = "would change the gid of " .. args.name .. " from " .. gid .. " to " .. args.gid
        else
            return result
        end
        result.changed = true
        if ctx.diff then
            result.diff = { path = "group " .. args.name, before_state = gid and ("gid " .. gid) or "absent",
                            after_state = args.state == "absent" and "absent" or ("gid " ..
                                tostring(args.gid or "(new)")) }
        end
        if ctx.check then return result end
        result.msg = nil
        local ok, rerr = run(argv)
        if not ok then return { failed = true, msg = rerr } end
        r = run({ "/bin/sh", "-c", GETENT, "sh", args.name })
        result.gid = r and tonumber(r.stdout:match("^[^:]*:[^:]*:(%d+):")) or nil
        return result
    end,
}
