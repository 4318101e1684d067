-- template: renders a controller file's {{ }} expressions and writes it.
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local expr = require("cutover.expr")
local content = require("cutover.actions.content")

return {
    summary = "Render a template file on the controller and write it to the host",
    description = [[
Reads `src` (relative to the playbook's folder), renders every
`{{ expression }}` in it with the host's variables (the same sandboxed
expressions as in playbooks), and writes the result to `dest` exactly as
copy does: atomically, only when the checksum differs.]],
    args = {
        src = { type = "path", required = true, doc = "template file on the controller" },
        dest = { type = "path", required = true, doc = "file to write on the host" },
        mode = { type = "mode", doc = "permission bits, e.g. '0644'" },
    },
    returns = content.RETURNS,
    check_mode = "Exact, as copy: renders, compares checksums, writes nothing; a write the login user may not make is a predicted failure.",
    reads_files = function(args, dir) return { util.join_path(dir, args.src) } end,
    -- its files hold {{ }}: the secrets they name are resolved before a run
    renders_files = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(ctx, args)
        local path = util.join_path(ctx.playbook_dir, args.src)
        -- ctx.read_file records the file for saved plans
        local text, err = (ctx.read_file or fs.read)(path)
        if not text then return { failed = true, msg = "src: " .. err } end
        local out = {}
        -- Render line by line so an error can name the template's line.
        local lineno = 0
        for line in (text .. "\n"):gmatch("(.-\n)") do
            lineno = lineno + 1
            local ok, v, unknown = expr.render(line, ctx.scope)
            if not ok then
                if unknown then return { unknown = true, msg = path .. ":" .. lineno .. ": " .. v } end
                return { failed = true, msg = path .. ":" .. lineno .. ": " .. v }
            end
            if type(v) ~= "string" then v = tostring(v) end
            out[#out + 1] = v
        end
        local rendered = table.concat(out)
        rendered = rendered:sub(1, #rendered - 1)  -- the "\n" added above
        return content.ensure(ctx, args.dest, rendered, args.mode)
    end,
}
