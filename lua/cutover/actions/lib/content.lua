-- Shared by copy, template, lineinfile and blockinfile: make a file hold
-- exactly `content` with `mode`, owner and group.  Idempotent by checksum;
-- atomic write; exact in check mode.  (Not an action: not listed in
-- actions/init.lua.)
local crypto = require("cutover.core.crypto")
local util = require("cutover.util")
local probe = require("cutover.actions.lib.probe")
local owner = require("cutover.actions.lib.owner")

local M = {}

M.MAX_DIFF_BYTES = 1024 * 1024

M.RETURNS = {
    dest = "the file written",
    checksum = "sha256 of the content",
    size = "bytes",
    mode = "permission bits, as text ('0644')",
    backup_file = "the copy of the old file (backup: true, when it changed)",
}

-- The arguments copy and template share beyond dest/mode.
M.ARGS = {
    owner = owner.ARGS.owner,
    group = owner.ARGS.group,
    backup = { type = "bool", default = false,
               doc = "keep the old file as DEST.YYYYMMDD-HHMMSS~ before replacing it" },
    validate = { type = "string",
                 doc = "command that must accept the new content before it replaces the old; %s is the file" },
}

function M.validate_args(args)
    if args.validate and not args.validate:find("%s", 1, true) then
        return "validate must contain %s (where the new file goes)"
    end
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs args.validate on content: in check mode on /dev/stdin (nothing is
-- written), for real on a private file beside dest.  nil when accepted,
-- else the failure's text.
local function rejected(ctx, dest, content, validate)
    local conn, target, tmp = ctx.conn, "/dev/stdin", nil
    if not ctx.check then
        tmp = dest .. ".cutover-validate-" .. crypto.random_hex(6)
        local ok, err = conn:write_file(tmp, content, 384)
        if not ok then return "validate: " .. tostring(err) end
        target = tmp
    end
    local line = validate:gsub("%%s", function() return sh_quote(target) end)
    local r, err = conn:exec({ shell = line, stdin = not tmp and content or nil, timeout = 300 })
    if tmp then conn:exec({ argv = { "rm", "-f", "--", tmp }, timeout = 60 }) end
    if not r then return "validate: " .. tostring(err) end
    if r.rc == 0 then return nil end
    local out = util.trim((r.stderr or "") .. (r.stdout or "")):sub(1, 2000)
    return "validate '" .. validate .. "' refused the new content (exit " .. r.rc .. ")" ..
        (out ~= "" and (": " .. out) or "")
end

-- opts: owner, group, backup, validate (the action's arguments)
function M.ensure(ctx, dest, content, mode, opts)
    opts = opts or {}
    local conn = ctx.conn
    local want = crypto.sha256(content)
    local result = { dest = dest, checksum = want, size = #content,
                     changed = false }
    local st, err, code = conn:stat(dest, true)
    if not st and code ~= 2 then return { failed = true, msg = err } end
    if st and st.type == "directory" then
        return { failed = true, msg = dest .. " is a directory" }
    end
    local ids, iderr, unknown = owner.wanted(ctx, opts)
    if iderr then return { failed = not unknown, unknown = unknown and true or nil, msg = dest .. ": " .. iderr } end
    local old_content
    local content_changes = true
    if st then
        local have = conn:sha256(dest)
        content_changes = have ~= want
    end
    local mode_changes = mode ~= nil and st ~= nil and st.mode ~= mode
    local owner_changes = owner.differs(st, ids)
    result.mode = util.format_mode(mode or (st and st.mode) or 420)
    if not content_changes and not mode_changes and not owner_changes then return result end
    result.changed = true
    if ctx.diff then
        local d = { path = dest }
        if content_changes then
            if st and st.size <= M.MAX_DIFF_BYTES then old_content = conn:read_file(dest) end
            d.before = st and (old_content or "(" .. st.size .. " bytes, too large to show)") or ""
            d.after = #content <= M.MAX_DIFF_BYTES and content or "(" .. #content .. " bytes, too large to show)"
            d.before_header = st and dest or "/dev/null"
        end
        if mode_changes or (not st and mode) then
            d.before_mode = st and util.format_mode(st.mode) or nil
            d.after_mode = util.format_mode(mode or 420)
        end
        if owner_changes then
            d.before_owner = st and owner.describe(st) or nil
            d.after_owner = owner.describe(st, ids)
        end
        result.diff = d
    end
    if content_changes and opts.validate then
        local why = rejected(ctx, dest, content, opts.validate)
        if why then return { failed = true, msg = (ctx.check and "would fail: " or "") .. why, dest = dest,
                             diff = result.diff } end
    end
    if ctx.check then
        -- exact: a write the login user may not make is a predicted failure
        local refused = probe.refusal(ctx, dest, content_changes and "write" or "owner")
        if not refused and owner_changes and st then refused = owner.refusal(ctx, dest, ids) end
        if refused then return { failed = true, msg = refused, dest = dest, diff = result.diff } end
        result.msg = st and (content_changes and "would update content" or
                             mode_changes and "would change mode" or "would change owner") or "would create"
        return result
    end
    if content_changes and st and opts.backup then
        local stamp = os.date("!%Y%m%d-%H%M%S")
        local backup = dest .. "." .. stamp .. "~"
        local r, berr = conn:exec({ argv = { "cp", "-p", "--", dest, backup }, timeout = 300 })
        if not r or r.rc ~= 0 then
            return { failed = true, dest = dest,
                     msg = "backup of " .. dest .. " failed: " .. tostring(r and util.trim(r.stderr) or berr) }
        end
        result.backup_file = backup
    end
    if content_changes then
        local ok, werr = conn:write_file(dest, content, mode)
        if not ok then return { failed = true, msg = werr, dest = dest } end
    elseif mode_changes then
        local ok, cerr = conn:chmod(dest, mode)
        if not ok then return { failed = true, msg = cerr, dest = dest } end
    end
    if owner_changes or (content_changes and ids) then
        local ok, oerr = owner.apply(ctx, dest, ids)
        if not ok then return { failed = true, msg = oerr, dest = dest } end
    end
    return result
end

return M
