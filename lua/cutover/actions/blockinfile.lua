-- blockinfile: a block of lines between two marker lines, present or
-- absent.  The edit is textedit.edit_block; the write is content.ensure.
local textedit = require("cutover.actions.lib.textedit")
local content = require("cutover.actions.lib.content")

local DEFAULT_MARKER = "# {mark} CUTOVER MANAGED BLOCK"

local function marker_line(args, mark)
    local marker = args.marker or DEFAULT_MARKER
    local i, j = marker:find("{mark}", 1, true)
    return marker:sub(1, i - 1) .. mark .. marker:sub(j + 1)
end

local function validate(args)
    local marker = args.marker or DEFAULT_MARKER
    if not marker:find("{mark}", 1, true) then return "marker must contain '{mark}'" end
    if marker:find("\n", 1, true) then return "marker must be one line" end
    local b, e = args.marker_begin or "BEGIN", args.marker_end or "END"
    if b == e then return "marker_begin and marker_end must differ" end
    return textedit.check_args(args, { "insertafter", "insertbefore" })
end

return {
    summary = "Keep a block of lines between two marker lines in a text file, or remove it",
    description = [[
The block sits between the lines `marker` gives with `{mark}` replaced by
`marker_begin` and `marker_end` (default `# BEGIN CUTOVER MANAGED BLOCK`
and `# END CUTOVER MANAGED BLOCK`; a file Ansible managed keeps its block
with `marker: "# {mark} ANSIBLE MANAGED BLOCK"`).  With `state: present`
(the default) an existing block is replaced by `block`; otherwise the block
is inserted after the last line `insertafter` (a Lua pattern) matches,
before the last line `insertbefore` matches (`BOF`: at the start), or at
the end.  An empty `block`, or `state: absent`, removes the block and its
markers.  A begin marker without its end marker (or the reverse) is an
error naming the line, never a guess.  A missing file is created only
with `create: true`.  Files over 8 MiB are refused.  `owner`, `group`,
`validate` and `backup` work as in copy.]],
    args = textedit.args({
        state_doc = "whether the block is there",
        block = { type = "string", default = "", doc = "the lines between the markers" },
        marker = { type = "string", doc = "marker line template with {mark} (default '" .. DEFAULT_MARKER .. "')" },
        marker_begin = { type = "string", default = "BEGIN", doc = "{mark} in the first marker" },
        marker_end = { type = "string", default = "END", doc = "{mark} in the last marker" },
    }),
    validate = validate,
    returns = content.RETURNS,
    check_mode = textedit.CHECK_MODE,
    idempotent = true,
    run = function(ctx, args)
        return textedit.apply(ctx, args, args.state == "absent" or args.block == "", function(text)
            return textedit.edit_block(text, {
                block = args.block, state = args.state,
                begin_marker = marker_line(args, args.marker_begin),
                end_marker = marker_line(args, args.marker_end),
                insertafter = args.insertafter, insertbefore = args.insertbefore })
        end)
    end,
}
