-- file: directories, removal, touch, links, modes, owner and group.
local util = require("cutover.util")
local crypto = require("cutover.core.crypto")
local probe = require("cutover.actions.lib.probe")
local owner = require("cutover.actions.lib.owner")

-- Check mode, a src missing now while an earlier step would change the
-- host: it may be made before this step runs for real.
local NOT_YET = "now (an earlier step would change the host and may create it; the run fails if it does not)"

-- $1 path, $2 src, $3 kind (link|hard): what stands at path now.
-- Prints "same", "absent", "nosrc" or "other TYPE TARGET".
local LINK_STATE = [=[
p=$1; src=$2; kind=$3
if [ "$kind" = hard ]; then
  [ -e "$src" ] || { echo nosrc; exit 0; }
else
  case $src in /*) s=$src ;; *) s=${p%/*}/$src; [ "${p%/*}" = "$p" ] && s=$src ;; esac
  [ -e "$s" ] || [ -L "$s" ] || echo nosrc-soft
fi
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo absent; exit 0; fi
if [ -L "$p" ]; then
  t=$(readlink -- "$p")
  [ "$kind" = link ] && [ "$t" = "$src" ] && { echo same; exit 0; }
  echo "other link $t"; exit 0
fi
if [ "$kind" = hard ] && [ "$(stat -c %d:%i -- "$src")" = "$(stat -c %d:%i -- "$p")" ]; then echo same; exit 0; fi
if [ -d "$p" ]; then echo "other directory"; else echo "other file"; fi
]=]

-- $1 path, $2 src, $3 kind: makes the link beside path and renames it
-- over path (atomic: the path is never missing).
local MAKE_LINK = [=[
p=$1; src=$2; kind=$3; t=$4
if [ "$kind" = hard ]; then ln -- "$src" "$t"; else ln -s -- "$src" "$t"; fi || exit 1
mv -fT -- "$t" "$p" || { rm -f -- "$t"; exit 1; }
]=]

-- $1 dir, $2 mode (octal or -), $3 uid (or -), $4 gid (or -): how many
-- paths under dir differ (links are not given modes).
local TREE_DIFFERS = [=[
d=$1; m=$2; u=$3; g=$4
set --
[ "$u" != - ] && set -- "$@" -o ! -uid "$u"
[ "$g" != - ] && set -- "$@" -o ! -gid "$g"
[ "$m" != - ] && set -- "$@" -o "(" ! -type l ! -perm "$m" ")"
shift
find "$d" -mindepth 1 "(" "$@" ")" -print 2>/dev/null | wc -l
]=]

local function sh(ctx, script, ...)
    return ctx.conn:exec({ argv = { "/bin/sh", "-c", script, "sh", ... }, timeout = 300 })
end

local function validate(args)
    local state = args.state or "file"
    local linky = state == "link" or state == "hard"
    if linky and not args.src then return "state " .. state .. " needs 'src'" end
    if args.src and not linky then return "src is for state link or hard" end
    if args.recurse and state ~= "directory" then return "recurse is for state directory" end
    if args.force and not linky then return "force is for state link or hard" end
    if state == "hard" and args.mode then return "mode does not apply to a hard link (it is the file's own)" end
end

-- One run of the action: f = { ctx, args, conn, path, state, st (the
-- path's stat or nil), ids (owner and group wanted), before (its type or
-- "absent"), result }

-- result.diff under --diff
local function diff(f, after_state, after_mode, before_state)
    local st, ids = f.st, f.ids
    if f.ctx.diff then
        f.result.diff = { path = f.path, before_state = before_state or f.before, after_state = after_state,
                          before_mode = st and util.format_mode(st.mode) or nil,
                          after_mode = after_mode and util.format_mode(after_mode) or nil }
        if ids and owner.differs(st, ids) then
            f.result.diff.before_owner = st and owner.describe(st) or nil
            f.result.diff.after_owner = owner.describe(st, ids)
        end
    end
end

-- owner and group of an existing path (or one just made)
local function apply_owner(f, no_follow, existed)
    if not f.ids or (existed and not owner.differs(f.st, f.ids)) then return true end
    return owner.apply(f.ctx, f.path, f.ids, { no_follow = no_follow, recurse = f.args.recurse })
end

-- Check mode: the failure the change would be, or nil
local function predicted(f, how)
    local ctx, path, st, ids = f.ctx, f.path, f.st, f.ids
    local refused = probe.refusal(ctx, path, how)
    if not refused and st and ids and owner.differs(st, ids) then refused = owner.refusal(ctx, path, ids) end
    if refused then return { failed = true, msg = refused, path = path, diff = f.result.diff } end
end

-- Check mode, a change to the path: the refusal writing it would meet,
-- or the result saying what the change would be
local function would(f, msg)
    local refused = probe.refusal(f.ctx, f.path, "write")
    if refused then return { failed = true, msg = refused, path = f.path, diff = f.result.diff } end
    f.result.msg = msg
    return f.result
end

-- state absent: remove the path
local function make_absent(f)
    local ctx, conn, path, st, result, before = f.ctx, f.conn, f.path, f.st, f.result, f.before
    if not st then return result end
    result.changed = true
    diff(f, "absent")
    if ctx.check then return would(f, "would remove " .. before) end
    local ok, rerr = conn:remove(path)
    if not ok then return { failed = true, msg = rerr } end
    return result
end

-- state link or hard: a link made beside the path and renamed over it
local function make_link(f)
    local ctx, args, path, state, st, ids, result = f.ctx, f.args, f.path, f.state, f.st, f.ids, f.result
    local before = f.before
    local r, lerr = sh(ctx, LINK_STATE, path, args.src, state)
    if not r then return { failed = true, msg = lerr } end
    local nosrc_soft = r.stdout:find("nosrc-soft", 1, true) ~= nil
    local now = r.stdout:gsub("nosrc%-soft\n", ""):gsub("\n$", "")
    if now == "nosrc" and ctx.check and ctx.earlier_change then
        return { unknown = true, path = path, state = state,
                 msg = "src " .. args.src .. " does not exist " .. NOT_YET }
    end
    if now == "nosrc" then
        return { failed = true, msg = "src " .. args.src .. " does not exist (a hard link needs its file)" }
    end
    local what = state == "link" and ("link -> " .. args.src) or ("hard link to " .. args.src)
    if now == "same" then
        if ids and owner.differs(st, ids) then
            result.changed = true
            diff(f, what, nil, what)
            if ctx.check then return predicted(f, "owner") or result end
            local ok, oerr = apply_owner(f, true, true)
            if not ok then return { failed = true, msg = oerr } end
        end
        return result
    end
    local kind, target = now:match("^other (%S+) ?(.*)$")
    if kind == "directory" then
        return { failed = true, msg = path .. " is a directory; a link cannot replace it" }
    end
    if kind and not args.force then
        return { failed = true, msg = path .. " exists and is a " ..
            (kind == "link" and ("link to " .. target) or kind) .. "; force: true replaces it" }
    end
    if nosrc_soft and not args.force then
        if ctx.check and ctx.earlier_change then
            return { unknown = true, path = path, state = state,
                     msg = "src " .. args.src .. " does not exist " .. NOT_YET }
        end
        return { failed = true, msg = "src " .. args.src ..
            " does not exist; force: true makes a dangling link" }
    end
    result.changed = true
    diff(f, what, nil, kind == "link" and ("link -> " .. target) or before)
    if ctx.check then return would(f, "would make " .. what) end
    local tmp = path .. ".cutover-" .. crypto.random_hex(6)
    local m, merr = sh(ctx, MAKE_LINK, path, args.src, state, tmp)
    if not m then return { failed = true, msg = merr } end
    if m.rc ~= 0 then
        return { failed = true, msg = path .. ": " .. util.trim(m.stderr):gsub("%.cutover%-%x+", "") }
    end
    local ok, oerr = apply_owner(f, true, false)
    if not ok then return { failed = true, msg = oerr } end
    return result
end

-- state directory: create it, or its mode and owner (recurse: the tree under it)
local function make_directory(f)
    local ctx, args, conn, path, st, ids, result = f.ctx, f.args, f.conn, f.path, f.st, f.ids, f.result
    if st and st.type ~= "directory" then
        return { failed = true, msg = path .. " exists and is a " .. st.type }
    end
    local mode_change = st and args.mode and st.mode ~= args.mode
    local owner_change = st and owner.differs(st, ids)
    local tree_changes = 0
    if st and args.recurse and (args.mode or ids) then
        local r = sh(ctx, TREE_DIFFERS, path, args.mode and string.format("%o", args.mode) or "-",
                     ids and ids.uid and tostring(ids.uid) or "-", ids and ids.gid and tostring(ids.gid) or "-")
        tree_changes = tonumber(r and r.rc == 0 and r.stdout:match("%d+")) or 0
    end
    if st and not mode_change and not owner_change and tree_changes == 0 then
        result.mode = util.format_mode(st.mode)
        return result
    end
    result.changed = true
    diff(f, "directory", args.mode or (st and st.mode) or 493)
    result.mode = util.format_mode(args.mode or (st and st.mode) or 493)
    if tree_changes > 0 then result.tree_changes = tree_changes end
    if ctx.check then
        local failure = predicted(f, st and "owner" or "mkdir")
        if failure then return failure end
        result.msg = not st and "would create" or
            (tree_changes > 0 and ("would change " .. tree_changes .. " path(s) under it") or
             mode_change and "would change mode" or "would change owner")
        return result
    end
    if not st then
        local ok, merr = conn:mkdir_p(path, args.mode or 493)
        if not ok then return { failed = true, msg = merr } end
        if args.mode then conn:chmod(path, args.mode) end
    elseif args.mode and (mode_change or tree_changes > 0) then
        local ok, cerr = conn:chmod(path, args.mode)
        if not ok then return { failed = true, msg = cerr } end
        if args.recurse then
            local r = sh(ctx, 'find "$1" -mindepth 1 ! -type l -exec chmod "$2" {} +', path,
                         string.format("%o", args.mode))
            if not r or r.rc ~= 0 then
                return { failed = true, msg = path .. ": chmod under it failed: " ..
                         (r and util.trim(r.stderr) or "no connection") }
            end
        end
    end
    local ok, oerr = apply_owner(f, false, st ~= nil and tree_changes == 0)
    if not ok then return { failed = true, msg = oerr } end
    return result
end

-- state touch: create an empty file or update its time
local function make_touch(f)
    local ctx, args, conn, path, st, ids, result = f.ctx, f.args, f.conn, f.path, f.st, f.ids, f.result
    if st and st.type == "directory" then return { failed = true, msg = path .. " is a directory" } end
    result.changed = true
    diff(f, st and "file (time updated)" or "file", args.mode)
    if ctx.check then
        local refused = probe.refusal(ctx, path, st and "touch" or "write")
        if not refused and args.mode and st and st.mode ~= args.mode then
            refused = probe.refusal(ctx, path, "owner")
        end
        if not refused and st and ids and owner.differs(st, ids) then refused = owner.refusal(ctx, path,
            ids) end
        if refused then return { failed = true, msg = refused, path = path, diff = result.diff } end
        result.msg = st and "would update time" or "would create"
        return result
    end
    local ok, terr = conn:touch(path)
    if not ok then return { failed = true, msg = terr } end
    if args.mode and (not st or st.mode ~= args.mode) then conn:chmod(path, args.mode) end
    local ook, oerr = apply_owner(f, false, st ~= nil)
    if not ook then return { failed = true, msg = oerr } end
    return result
end

-- state file: an existing file's mode and owner
local function make_file(f)
    local ctx, args, conn, path, st, ids, result = f.ctx, f.args, f.conn, f.path, f.st, f.ids, f.result
    if not st then return { failed = true, msg = path .. " does not exist (use state: touch to create it)" } end
    if st.type ~= "file" then return { failed = true, msg = path .. " is a " .. st.type .. ", not a file" } end
    result.mode = util.format_mode(st.mode)
    local mode_change = args.mode and st.mode ~= args.mode
    local owner_change = owner.differs(st, ids)
    if mode_change or owner_change then
        result.changed = true
        result.mode = util.format_mode(args.mode or st.mode)
        diff(f, "file", args.mode)
        if ctx.check then
            local failure = predicted(f, "owner")
            if failure then return failure end
            result.msg = mode_change and "would change mode" or "would change owner"
            return result
        end
        if mode_change then
            local ok, cerr = conn:chmod(path, args.mode)
            if not ok then return { failed = true, msg = cerr } end
        end
        local ok, oerr = apply_owner(f, false, true)
        if not ok then return { failed = true, msg = oerr } end
    end
    return result
end

return {
    summary = "Make a path a directory, a file with a mode, a link, absent, or touched",
    description = [[
`state: directory` creates the folder and its parents (`recurse: true`
also gives everything under it `mode`, `owner` and `group`, links
excepted for the mode); `state: absent` removes the path (folders with
their contents); `state: touch` creates an empty file or updates its time
(always a change); `state: file` (the default) requires the file to exist
and applies `mode`, `owner` and `group`.  `state: link` makes `path` a
symbolic link to `src`; `state: hard` a hard link to the file `src`.  The
link is made beside the path and renamed over it, so the path is never
missing; a file or another link standing there is replaced only with
`force: true` (a folder never), and a symbolic link to a missing `src`
is made only with `force: true`.  `owner` and `group` are names
resolved on the host, or numbers.]],
    args = {
        path = { type = "path", required = true, doc = "the path on the host" },
        state = { type = "string", default = "file",
                  choices = { "file", "directory", "absent", "touch", "link", "hard" },
                  doc = "what the path should be" },
        mode = { type = "mode", doc = "permission bits, e.g. '0755'" },
        owner = owner.ARGS.owner,
        group = owner.ARGS.group,
        src = { type = "path", doc = "the link's target (state link or hard)" },
        force = { type = "bool", default = false, doc = "replace a file or link at path; allow a dangling link" },
        recurse = { type = "bool", default = false, doc = "state directory: mode, owner and group for the whole tree" },
    },
    validate = validate,
    returns = { path = "the path", state = "the state asked for", mode = "resulting mode ('0755')" },
    check_mode = "Exact: stats the path (and for links, what stands there; for recurse, how many paths under it " ..
        "differ) and reports what would change (before/after state, mode and owner under --diff); changes " ..
        "nothing. A change the login user may not make (removing or creating in a folder it cannot write, a mode " ..
        "on a path it does not own, an owner change without root, a group it is not in) is predicted as the " ..
        "failure it would be. A link whose src is missing (without force) is unknown when an earlier step of the " ..
        "run would change the host (it may create the src), else the failure it would be.",
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local conn, path, state = ctx.conn, args.path, args.state
        local st, err, code = conn:stat(path)
        if not st and code ~= 2 then return { failed = true, msg = err } end
        local ids, iderr, unknown = owner.wanted(ctx, args)
        if iderr then return { failed = not unknown, unknown = unknown and true or nil, msg = path .. ": " ..
            iderr } end
        local f = { ctx = ctx, args = args, conn = conn, path = path, state = state, st = st, ids = ids,
                    before = st and st.type or "absent", result = { path = path, state = state, changed = false } }
        if state == "absent" then return make_absent(f) end
        if state == "link" or state == "hard" then return make_link(f) end
        if state == "directory" then return make_directory(f) end
        if state == "touch" then return make_touch(f) end
        return make_file(f)
    end,
}
