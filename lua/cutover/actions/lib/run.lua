-- Shared by command and shell: creates/removes, check mode, the result.
-- (Not an action: not listed in actions/init.lua.)
local pattern = require("cutover.core.pattern")

local M = {}

-- stdout_lines is made when an expression reads it, not with every
-- result: a capped 8 MiB output of short lines was a million strings
-- kept per step, journaled and printed twice.  It is never stored in the
-- result (so never journaled); the split is cached per result.
local line_cache = setmetatable({}, { __mode = "k" })
local lazy_lines = {
    __index = function(t, k)
        if k ~= "stdout_lines" then return nil end
        local lines = line_cache[t]
        if not lines then
            local out = rawget(t, "stdout")
            lines = pattern.lines(type(out) == "string" and out or "", true)
            line_cache[t] = lines
        end
        return lines
    end,
}

-- Gives a command's result (and each item's, for a loop) its lazy
-- stdout_lines; used for new results and for results replayed from the
-- journal.  Returns result.
function M.with_lines(result)
    if type(result) ~= "table" then return result end
    if type(rawget(result, "stdout")) == "string" and getmetatable(result) == nil then
        setmetatable(result, lazy_lines)
    end
    if type(rawget(result, "results")) == "table" then
        for _, item in ipairs(result.results) do M.with_lines(item) end
    end
    return result
end

M.RETURNS = {
    rc = "exit code (128 + N when killed by signal N)",
    stdout = "standard output (capped; see stdout_truncated)",
    stderr = "standard error (capped)",
    stdout_lines = "stdout split into lines, empty lines left out (made when read; not in the journal or JSON events)",
    cmd = "what was run",
    timed_out = "true when the timeout stopped it",
    duration = "seconds",
}

function M.execute(ctx, args, what, display)
    if args.creates then
        local st = ctx.conn:stat(args.creates, true)
        if st then return { changed = false, skipped = true, msg = args.creates .. " exists" } end
    end
    if args.removes then
        local st = ctx.conn:stat(args.removes, true)
        if not st then return { changed = false, skipped = true, msg = args.removes .. " does not exist" } end
    end
    if ctx.check then
        return { unknown = true, msg = "would run: " .. display }
    end
    what.stdin = args.stdin
    what.cwd = args.chdir
    what.timeout = args.timeout
    local r, err = ctx.conn:exec(what)
    if not r then return { failed = true, rc = 127, msg = err, cmd = display } end
    local result = {
        changed = true, rc = r.rc, stdout = r.stdout, stderr = r.stderr,
        cmd = display, duration = r.duration,
        timed_out = r.timed_out, interrupted = r.interrupted,
        stdout_truncated = r.stdout_truncated or nil,
        stderr_truncated = r.stderr_truncated or nil,
    }
    result.stdout = result.stdout:gsub("\n$", "")
    result.stderr = result.stderr:gsub("\n$", "")
    if r.timed_out then
        result.failed = true
        result.msg = "timed out after " .. args.timeout .. "s"
    elseif r.interrupted then
        result.failed = true
        result.msg = "interrupted"
    elseif r.rc ~= 0 then
        result.failed = true
        result.msg = "exit code " .. r.rc
    end
    -- a stopped command that could not be stopped on the host says so
    if r.stop_note then result.msg = result.msg .. "; " .. r.stop_note end
    if r.stdout_truncated or r.stderr_truncated then
        local which = r.stdout_truncated and (r.stderr_truncated and "stdout and stderr" or "stdout") or "stderr"
        result.warning = which .. " cut at the output cap (--max-output); the rest was read and dropped"
    end
    return M.with_lines(result)
end

return M
