-- Shared by the file actions in check mode: would the login user be
-- allowed to make this change?  A dry run that predicts "changed" for a
-- write the real run cannot make is not exact, so copy, template and file
-- ask the host itself (the real user, its groups, ACLs, read-only mounts:
-- `test -w` answers as the write would) and predict the failure.
-- (Not an action: not listed in actions/init.lua.)
local M = {}

-- How each write is made, and what it needs:
--   write  a new or replaced file: written beside it and renamed, so its
--          folder must be writable (so must a removal's)
--   mkdir  folders and their parents: the nearest existing one writable
-- A folder that does not exist yet is judged by its nearest existing
-- parent: an earlier step may create it (check mode creates nothing),
-- and it could only do so where that parent is writable.
--   owner  chmod: the file's owner (or root)
--   touch  an existing file's time: write access or its owner
local SCRIPT = [=[
p=$1; how=$2
u=$(id -un 2>/dev/null || id -u)
parent() { d=${1%/*}; [ "$d" = "$1" ] && d=.; [ -z "$d" ] && d=/; printf '%s' "$d"; }
case $how in
write|mkdir)
  d=$p; [ "$how" = write ] && d=$(parent "$p")
  while [ ! -e "$d" ]; do d=$(parent "$d"); done
  [ -d "$d" ] || { printf '%s is not a directory\n' "$d"; exit 1; }
  [ -w "$d" ] && [ -x "$d" ] || { printf '%s is not writable by %s\n' "$d" "$u"; exit 1; } ;;
owner)
  [ -O "$p" ] || [ "$(id -u)" = 0 ] || { printf '%s is not owned by %s\n' "$p" "$u"; exit 1; } ;;
touch)
  [ -w "$p" ] || [ -O "$p" ] || { printf '%s is not writable by %s\n' "$p" "$u"; exit 1; } ;;
esac
]=]

-- Returns nil when the change looks possible (or cannot be probed: a
-- Windows host, a lost connection), else the predicted failure's text.
function M.refusal(ctx, path, how)
    local conn = ctx.conn
    if not conn or conn.kind == "windows" or not conn.exec then return nil end
    local r = conn:exec({ argv = { "/bin/sh", "-c", SCRIPT, "sh", path, how }, timeout = 30 })
    if type(r) ~= "table" or r.rc ~= 1 then return nil end
    local why = (r.stdout or ""):gsub("\n.*", "")
    if why == "" then return nil end
    return "would fail: " .. why
end

return M
