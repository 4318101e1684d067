-- template: renders a controller file's {{ }} expressions and writes it.
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local template = require("cutover.template")
local content = require("cutover.actions.lib.content")

return {
    summary = "Render a template file on the controller and write it to the host",
    description = [[
Reads `src` (relative to the playbook's folder), renders every
`{{ expression }}` in it with the host's variables (the same sandboxed
expressions as in playbooks), and writes the result to `dest` exactly as
copy does: atomically, only when the checksum differs, with copy's
`owner`, `group`, `validate` and `backup`.  Blocks
`{% if c %}...{% elif c %}...{% else %}...{% end %}` and
`{% for x in list %}...{% end %}` (`for k, v in pairs(t)`), comments
`{# #}` and whitespace control (`{%-`, `-%}`) are available
(docs/playbooks.md, "Templates"); a block left open is an error when the
playbook loads, naming the file, line and column.]],
    args = {
        src = { type = "path", required = true, doc = "template file on the controller" },
        dest = { type = "path", required = true, doc = "file to write on the host" },
        mode = { type = "mode", doc = "permission bits, e.g. '0644'" },
        owner = content.ARGS.owner, group = content.ARGS.group,
        backup = content.ARGS.backup, validate = content.ARGS.validate,
    },
    validate = content.validate_args,
    returns = content.RETURNS,
    check_mode = "Exact, as copy: renders, compares checksums, writes nothing; a write the login user may not " ..
        "make is a predicted failure.",
    reads_files = function(args, dir) return { util.join_path(dir, args.src) } end,
    -- its files hold {{ }}: the secrets they name are resolved before a run
    renders_files = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    -- at load: a template whose blocks do not parse is an error there
    check_files = function(args, dir)
        if type(args.src) ~= "string" or args.src:find("{{", 1, true) then return {} end
        local path = util.join_path(dir, args.src)
        local text = fs.read(path)
        if not text then return {} end  -- the run reports a missing file
        local tree, err, line, col = template.parse(text)
        if not tree then return { path .. ":" .. line .. ":" .. col .. ": " .. err } end
        return {}
    end,
    run = function(ctx, args)
        local path = util.join_path(ctx.playbook_dir, args.src)
        -- ctx.read_file records the file for saved plans
        local text, err = (ctx.read_file or fs.read)(path)
        if not text then return { failed = true, msg = "src: " .. err } end
        local tree, perr, pline, pcol = template.parse(text)
        if not tree then return { failed = true, msg = path .. ":" .. pline .. ":" .. pcol .. ": " .. perr } end
        local ok, v, line, unknown = template.render(tree, ctx.scope)
        if not ok then
            local msg = path .. (line and (":" .. line) or "") .. ": " .. v
            if unknown then return { unknown = true, msg = msg } end
            return { failed = true, msg = msg }
        end
        return content.ensure(ctx, args.dest, v, args.mode, args)
    end,
}
