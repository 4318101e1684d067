-- Shared by copy and template: make a file hold exactly `content` with
-- `mode`.  Idempotent by checksum; atomic write; exact in check mode.
-- (Not an action: not listed in actions/init.lua.)
local crypto = require("cutover.core.crypto")
local util = require("cutover.util")
local probe = require("cutover.actions.probe")

local M = {}

M.MAX_DIFF_BYTES = 1024 * 1024

M.RETURNS = {
    dest = "the file written",
    checksum = "sha256 of the content",
    size = "bytes",
    mode = "permission bits, as text ('0644')",
}

function M.ensure(ctx, dest, content, mode)
    local conn = ctx.conn
    local want = crypto.sha256(content)
    local result = { dest = dest, checksum = want, size = #content,
                     changed = false }
    local st, err, code = conn:stat(dest, true)
    if not st and code ~= 2 then return { failed = true, msg = err } end
    if st and st.type == "directory" then
        return { failed = true, msg = dest .. " is a directory" }
    end
    local old_content
    local content_changes = true
    if st then
        local have = conn:sha256(dest)
        content_changes = have ~= want
    end
    local mode_changes = mode ~= nil and st ~= nil and st.mode ~= mode
    result.mode = util.format_mode(mode or (st and st.mode) or 420)
    if not content_changes and not mode_changes then return result end
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
        result.diff = d
    end
    if ctx.check then
        -- exact: a write the login user may not make is a predicted failure
        local refused = probe.refusal(ctx, dest, content_changes and "write" or "owner")
        if refused then return { failed = true, msg = refused, dest = dest, diff = result.diff } end
        result.msg = st and (content_changes and "would update content" or "would change mode") or "would create"
        return result
    end
    if content_changes then
        local ok, werr = conn:write_file(dest, content, mode)
        if not ok then return { failed = true, msg = werr, dest = dest } end
    else
        local ok, cerr = conn:chmod(dest, mode)
        if not ok then return { failed = true, msg = cerr, dest = dest } end
    end
    return result
end

return M
