-- file: directories, removal, touch and modes.
local util = require("cutover.util")
local probe = require("cutover.actions.probe")

return {
    summary = "Make a path a directory, a file with a mode, absent, or touched",
    description = [[
`state: directory` creates the folder and its parents; `state: absent`
removes the path (folders with their contents); `state: touch` creates an
empty file or updates its time (always a change); `state: file` (the
default) requires the file to exist and applies `mode`.]],
    args = {
        path = { type = "path", required = true, doc = "the path on the host" },
        state = { type = "string", default = "file", choices = { "file", "directory", "absent", "touch" },
                  doc = "what the path should be" },
        mode = { type = "mode", doc = "permission bits, e.g. '0755'" },
    },
    returns = { path = "the path", state = "the state asked for", mode = "resulting mode ('0755')" },
    check_mode = "Exact: stats the path and reports what would change (before/after state under --diff); changes nothing. A change the login user may not make (removing or creating in a folder it cannot write, a mode on a path it does not own) is predicted as the failure it would be.",
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local conn, path, state = ctx.conn, args.path, args.state
        local st, err, code = conn:stat(path)
        if not st and code ~= 2 then return { failed = true, msg = err } end
        local before = st and st.type or "absent"
        local result = { path = path, state = state, changed = false }
        local function diff(after_state, after_mode)
            if ctx.diff then
                result.diff = { path = path, before_state = before, after_state = after_state,
                                before_mode = st and util.format_mode(st.mode) or nil,
                                after_mode = after_mode and util.format_mode(after_mode) or nil }
            end
        end
        if state == "absent" then
            if not st then return result end
            result.changed = true
            diff("absent")
            if ctx.check then
                local refused = probe.refusal(ctx, path, "write")
                if refused then return { failed = true, msg = refused, path = path, diff = result.diff } end
                result.msg = "would remove " .. before
                return result
            end
            local ok, rerr = conn:remove(path)
            if not ok then return { failed = true, msg = rerr } end
            return result
        end
        if state == "directory" then
            if st and st.type ~= "directory" then
                return { failed = true, msg = path .. " exists and is a " .. st.type }
            end
            local mode_change = st and args.mode and st.mode ~= args.mode
            if st and not mode_change then result.mode = util.format_mode(st.mode); return result end
            result.changed = true
            diff("directory", args.mode or (st and st.mode) or 493)
            result.mode = util.format_mode(args.mode or (st and st.mode) or 493)
            if ctx.check then
                local refused = probe.refusal(ctx, path, st and "owner" or "mkdir")
                if refused then return { failed = true, msg = refused, path = path, diff = result.diff } end
                result.msg = st and "would change mode" or "would create"
                return result
            end
            if not st then
                local ok, merr = conn:mkdir_p(path, args.mode or 493)
                if not ok then return { failed = true, msg = merr } end
                if args.mode then conn:chmod(path, args.mode) end
            else
                local ok, cerr = conn:chmod(path, args.mode)
                if not ok then return { failed = true, msg = cerr } end
            end
            return result
        end
        if state == "touch" then
            if st and st.type == "directory" then return { failed = true, msg = path .. " is a directory" } end
            result.changed = true
            diff(st and "file (time updated)" or "file", args.mode)
            if ctx.check then
                local refused = probe.refusal(ctx, path, st and "touch" or "write")
                if not refused and args.mode and st and st.mode ~= args.mode then
                    refused = probe.refusal(ctx, path, "owner")
                end
                if refused then return { failed = true, msg = refused, path = path, diff = result.diff } end
                result.msg = st and "would update time" or "would create"
                return result
            end
            local ok, terr = conn:touch(path)
            if not ok then return { failed = true, msg = terr } end
            if args.mode and (not st or st.mode ~= args.mode) then conn:chmod(path, args.mode) end
            return result
        end
        -- state == "file"
        if not st then return { failed = true, msg = path .. " does not exist (use state: touch to create it)" } end
        if st.type ~= "file" then return { failed = true, msg = path .. " is a " .. st.type .. ", not a file" } end
        result.mode = util.format_mode(st.mode)
        if args.mode and st.mode ~= args.mode then
            result.changed = true
            result.mode = util.format_mode(args.mode)
            diff("file", args.mode)
            if ctx.check then
                local refused = probe.refusal(ctx, path, "owner")
                if refused then return { failed = true, msg = refused, path = path, diff = result.diff } end
                result.msg = "would change mode"
                return result
            end
            local ok, cerr = conn:chmod(path, args.mode)
            if not ok then return { failed = true, msg = cerr } end
        end
        return result
    end,
}
