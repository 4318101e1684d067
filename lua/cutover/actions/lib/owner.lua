-- Shared by file, copy, template, lineinfile and blockinfile: `owner` and
-- `group`, by name or number.  Names are resolved on the host (its users,
-- not the controller's); an unknown name fails the step in check mode too.
-- (Not an action: not listed in actions/init.lua.)
local M = {}

M.ARGS = {
    owner = { type = "string", doc = "user that owns the path (name or uid), resolved on the host" },
    group = { type = "string", doc = "group of the path (name or gid), resolved on the host" },
}

-- $1 owner, $2 group ("" when not asked): prints "UID GID" ("-" for
-- not asked) or the reason and exit 3.
local RESOLVE = [=[
uid=-; gid=-
if [ -n "$1" ]; then
  case $1 in
  *[!0-9]*) uid=$(id -u -- "$1" 2>/dev/null) || { printf "user '%s' does not exist\n" "$1"; exit 3; } ;;
  *) uid=$1 ;;
  esac
fi
if [ -n "$2" ]; then
  case $2 in
  *[!0-9]*) gid=$(getent group -- "$2" 2>/dev/null | cut -d: -f3)
            [ -n "$gid" ] || { printf "group '%s' does not exist\n" "$2"; exit 3; } ;;
  *) gid=$2 ;;
  esac
fi
echo "$uid $gid"
]=]

-- Would the login user be allowed to give $1 uid $2 and gid $3 ("-": keep)?
local PROBE = [=[
p=$1; uid=$2; gid=$3
me=$(id -u)
[ "$me" = 0 ] && exit 0
u=$(id -un 2>/dev/null || echo "$me")
if [ "$uid" != - ] && [ "$uid" != "$(stat -c %u -- "$p" 2>/dev/null || echo "$me")" ]; then
  printf 'changing the owner of %s needs root (the login user is %s)\n' "$p" "$u"; exit 1
fi
if [ "$gid" != - ]; then
  [ -e "$p" ] && [ ! -O "$p" ] && { printf '%s is not owned by %s\n' "$p" "$u"; exit 1; }
  case " $(id -G) " in *" $gid "*) ;; *) printf '%s is not in group %s\n' "$u" "$gid"; exit 1 ;; esac
fi
exit 0
]=]

local function sh(ctx, script, ...)
    return ctx.conn:exec({ argv = { "/bin/sh", "-c", script, "sh", ... }, timeout = 60 })
end

-- The ids args.owner and args.group ask for: {uid=, gid=} (nil fields:
-- not asked), or nil when neither is asked; nil, message on failure.
function M.wanted(ctx, args)
    if not args.owner and not args.group then return nil end
    if ctx.conn.kind == "windows" then return nil, "owner and group are for POSIX hosts" end
    local r, err = sh(ctx, RESOLVE, args.owner or "", args.group or "")
    if not r then return nil, err end
    if r.rc ~= 0 then
        local why = (r.stdout ~= "" and r.stdout or r.stderr):gsub("\n.*", "")
        -- in check mode an earlier step may be about to create the user
        if ctx.check and r.rc == 3 then return nil, why .. " yet", "unknown" end
        return nil, why
    end
    local uid, gid = r.stdout:match("^(%S+) (%S+)")
    if not uid then return nil, "cannot read the ids of owner/group: " .. r.stdout end
    return { uid = tonumber(uid), gid = tonumber(gid) }
end

-- Whether stat st differs from the wanted ids.
function M.differs(st, ids)
    if not ids then return false end
    if not st then return true end
    return (ids.uid and st.uid ~= ids.uid) or (ids.gid and st.gid ~= ids.gid) or false
end

local function spec(ids)
    return (ids.uid and tostring(ids.uid) or "") .. (ids.gid and (":" .. ids.gid) or "")
end

-- chown; opts.recurse (-R), opts.no_follow (-h: the link itself)
function M.apply(ctx, path, ids, opts)
    if not ids then return true end
    opts = opts or {}
    local argv = { "chown" }
    if opts.recurse then argv[#argv + 1] = "-R" end
    if opts.no_follow then argv[#argv + 1] = "-h" end
    argv[#argv + 1] = spec(ids)
    argv[#argv + 1] = "--"
    argv[#argv + 1] = path
    local r, err = ctx.conn:exec({ argv = argv, timeout = 300 })
    if not r then return nil, err end
    if r.rc ~= 0 then return nil, path .. ": chown: " .. (r.stderr:gsub("^chown: ", ""):gsub("\n.*", "")) end
    return true
end

-- The predicted failure of giving path these ids, or nil.
function M.refusal(ctx, path, ids)
    if not ids then return nil end
    local r = sh(ctx, PROBE, path, ids.uid and tostring(ids.uid) or "-", ids.gid and tostring(ids.gid) or "-")
    if type(r) ~= "table" or r.rc ~= 1 then return nil end
    local why = (r.stdout or ""):gsub("\n.*", "")
    return why ~= "" and ("would fail: " .. why) or nil
end

-- For a diff: "uid:gid" of a stat, or of the wanted ids over it.
function M.describe(st, ids)
    local uid = (ids and ids.uid) or (st and st.uid)
    local gid = (ids and ids.gid) or (st and st.gid)
    if uid == nil and gid == nil then return nil end
    return tostring(uid or "-") .. ":" .. tostring(gid or "-")
end

return M
