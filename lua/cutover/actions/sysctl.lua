-- sysctl: a kernel parameter's value, kept in a sysctl file and (with
-- reload) set in the running kernel.  The file edit is lineinfile's
-- (textedit.edit_line through content.ensure); the running value is read
-- with `sysctl -n` and set with `sysctl -w` for this key alone.
local textedit = require("cutover.actions.lib.textedit")
local content = require("cutover.actions.lib.content")

local function validate(args)
    local state = args.state or "present"
    if not args.name:match("^[%w_][%w_%.%-/]*$") then
        return "name must be a parameter such as net.ipv4.ip_forward"
    end
    if state == "present" and args.value == nil then return "state present needs 'value'" end
    if args.value and args.value:find("[\n\r]") then return "value must be one line" end
end

-- "1\t2  3" and "1 2 3" are the same value (the kernel prints tabs)
local function normal(v) return (tostring(v):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end

-- The key as a Lua pattern: dots and dashes literal; a / may stand for a .
local function key_pattern(name)
    return "^%s*" .. name:gsub("[%.%-/]", function(c)
        if c == "-" then return "%-" end
        return "[%./]"
    end) .. "%s*="
end

return {
    summary = "Set a kernel parameter now and keep it in a sysctl file",
    description = [[
With `state: present` (the default) the file `sysctl_file` holds the line
`NAME = VALUE` (replacing the line that sets NAME, or added at its end;
the file is created when missing) and, with `reload: true` (the default),
the running kernel has that value: it is read with `sysctl -n NAME` and
set with `sysctl -w NAME=VALUE` (this key alone, not the whole file) when
it differs.  With `state: absent` the line is removed from the file; the
running value is left as it is.  Values compare with runs of whitespace
as one space.  `ignoreerrors: true` lets a key the kernel does not have
leave the file edit done and the step ok.]],
    args = {
        name = { type = "string", required = true, doc = "the parameter, e.g. net.ipv4.ip_forward" },
        value = { type = "string", doc = "its value" },
        state = { type = "string", default = "present", choices = { "present", "absent" },
                  doc = "whether the file sets it" },
        sysctl_file = { type = "path", default = "/etc/sysctl.d/99-cutover.conf",
                        doc = "the file that keeps it across reboots" },
        reload = { type = "bool", default = true, doc = "set the running value too" },
        ignoreerrors = { type = "bool", default = false, doc = "an unknown key is not a failure" },
    },
    validate = validate,
    returns = { value = "the running value after the step", file_changed = "whether the file changed",
                running_changed = "whether the running value changed" },
    check_mode = "Exact: computes the file edit (with a diff under --diff) and reads the running value; writes " ..
        "and sets nothing. A file the login user may not write is predicted as the failure it would be.",
    idempotent = true,
    run = function(ctx, args)
        local conn = ctx.conn
        if type(args.value) ~= "nil" then args.value = tostring(args.value) end
        local line = args.value and (args.name .. " = " .. args.value)
        -- the file
        local st, err, code = conn:stat(args.sysctl_file, true)
        if not st and code ~= 2 then return { failed = true, msg = err } end
        local text = ""
        if st then
            if st.type ~= "file" then return { failed = true, msg = args.sysctl_file .. " is a " .. st.type } end
            text, err = conn:read_file(args.sysctl_file, textedit.MAX_FILE_BYTES)
            if not text then return { failed = true, msg = err } end
        end
        local new = text
        if args.state == "absent" then
            if st then new = textedit.edit_line(text, { state = "absent", regexp = key_pattern(args.name) }) end
        else
            new = textedit.edit_line(text, { state = "present", regexp = key_pattern(args.name), line = line })
        end
        local result = { changed = false, file_changed = false, running_changed = false }
        if new ~= text then
            local written = content.ensure(ctx, args.sysctl_file, new, nil)
            if written.failed then return written end
            result.diff = written.diff
            result.file_changed = written.changed
        end
        -- the running kernel
        if args.state == "present" and args.reload then
            local r, rerr = conn:exec({ argv = { "sysctl", "-n", args.name }, timeout = 60 })
            if not r then return { failed = true, msg = rerr } end
            if r.rc ~= 0 then
                local why = (r.stderr:gsub("\n.*", ""))
                if args.ignoreerrors then
                    result.msg = "the kernel has no " .. args.name .. " (ignoreerrors): " .. why
                    result.changed = result.file_changed
                    return result
                end
                return { failed = true, msg = "sysctl -n " .. args.name .. ": " .. why }
            end
            local now = normal(r.stdout)
            result.value = now
            if now ~= normal(args.value) then
                result.running_changed = true
                if ctx.diff then
                    result.diff = result.diff or { path = args.sysctl_file }
                    result.diff.before_state = args.name .. " = " .. now
                    result.diff.after_state = args.name .. " = " .. normal(args.value)
                end
                if not ctx.check then
                    local w, werr = conn:exec({ argv = { "sysctl", "-w", args.name .. "=" .. args.value },
                        timeout = 60 })
                    if not w then return { failed = true, msg = werr } end
                    if w.rc ~= 0 then
                        return { failed = true, msg = "sysctl -w " .. args.name .. ": " .. (w.stderr:gsub("\n.*", "")),
                                 file_changed = result.file_changed }
                    end
                    result.value = normal(args.value)
                end
            end
        end
        result.changed = result.file_changed or result.running_changed
        if ctx.check and result.changed then
            result.msg = "would change " .. (result.file_changed and args.sysctl_file or "") ..
                (result.file_changed and result.running_changed and " and " or "") ..
                (result.running_changed and "the running value" or "")
        end
        return result
    end,
}
