-- lineinfile: one line of a text file present (replacing the line a
-- pattern selects) or absent.  The edit is textedit.edit_line; the write
-- is content.ensure (atomic, idempotent by checksum, exact in check mode).
local textedit = require("cutover.actions.lib.textedit")
local content = require("cutover.actions.lib.content")

local function validate(args)
    local state = args.state or "present"
    if args.regexp and args.search_string then return "takes only one of 'regexp' and 'search_string'" end
    if args.backrefs and not args.regexp then return "backrefs needs 'regexp'" end
    if state == "present" and args.line == nil then return "state present needs 'line'" end
    if state == "absent" and args.line == nil and not args.regexp and not args.search_string then
        return "state absent needs 'regexp', 'search_string' or 'line'"
    end
    if args.line and args.line:find("\n", 1, true) then
        return "line must be one line (blockinfile writes several)"
    end
    if args.backrefs and args.line and args.line:match("\\%d") then
        return "line: '" .. args.line:match("\\%d") .. "' is regular-expression syntax; write '%" ..
            args.line:match("\\(%d)") .. "' for a capture of regexp"
    end
    return textedit.check_args(args, { "regexp", "insertafter", "insertbefore" })
end

return {
    summary = "Make one line of a text file present (replacing a matched line) or absent",
    description = [[
With `state: present` (the default) the file holds `line`: the last line
`regexp` (a Lua pattern) or `search_string` (plain text) selects is
replaced by it (`firstmatch: true`: the first); when nothing is selected
and `line` is not already in the file, it is inserted after the last line
`insertafter` matches, before the last line `insertbefore` matches
(`BOF`: at the start), or at the end.  `backrefs: true` fills `%1`..`%9`
in `line` from regexp's captures and leaves the file alone when regexp
matches nothing.  With `state: absent` every line selected by `regexp`,
`search_string` or equal to `line` is removed.  A missing file is
created only with `create: true` (mode `mode`, default 0644).  Patterns
are Lua patterns, not regular expressions: `\d` is refused with the
pattern to write instead (`%d`).  Files over 8 MiB are refused.  `owner`, `group`,
`validate` and `backup` work as in copy.]],
    args = textedit.args({
        state_doc = "whether the line is there",
        line = { type = "string", doc = "the line the file must hold (without newline)" },
        regexp = { type = "string", doc = "Lua pattern selecting the line to replace or remove" },
        search_string = { type = "string", doc = "plain text selecting the line to replace or remove" },
        firstmatch = { type = "bool", default = false, doc = "use the first match, not the last" },
        backrefs = { type = "bool", default = false, doc = "fill %1..%9 in line from regexp's captures" },
    }),
    validate = validate,
    returns = content.RETURNS,
    check_mode = textedit.CHECK_MODE,
    idempotent = true,
    run = function(ctx, args)
        return textedit.apply(ctx, args, args.state == "absent",
                              function(text) return textedit.edit_line(text, args) end)
    end,
}
