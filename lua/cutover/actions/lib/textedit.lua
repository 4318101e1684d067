-- Shared by lineinfile and blockinfile: the edit itself, as a pure
-- function of the file's text, so that check mode, --diff and the real
-- run all see the same new text (content.ensure then writes it, or says
-- it would).  Patterns are Lua patterns run by core/pattern.c, the same
-- bounded matcher as the expression helpers.  (Not an action.)
local pattern = require("cutover.core.pattern")
local helpers = require("cutover.expr_helpers")
local content = require("cutover.actions.lib.content")

local M = {}

-- Bytes of a file these actions read and rewrite; a larger file is an
-- error, not a silent truncation.
M.MAX_FILE_BYTES = 8 * 1024 * 1024

-- The text as lines (without "\n") and whether its last line ended in one.
local function split(text)
    local lines = {}
    if text == "" then return lines, true end
    local ends_in_newline = text:sub(-1) == "\n"
    local s = ends_in_newline and text or text .. "\n"
    for l in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    return lines, ends_in_newline
end

local function join(lines, ends_in_newline)
    if #lines == 0 then return "" end
    return table.concat(lines, "\n") .. (ends_in_newline and "\n" or "")
end

-- A pattern argument: checked for regular-expression syntax, and tried
-- once so that a malformed one fails before any file is read.
function M.check_pattern(argname, p)
    local ok, err = pcall(helpers.check_lua_pattern, argname, p)
    if not ok then return nil, err end
    local tried, terr = pcall(pattern.find, "", p)
    if not tried then return nil, argname .. ": " .. tostring(terr):gsub("^.-:%d+: ", "") end
    return true
end

local function find(line, p)
    local ok, s = pcall(pattern.find, line, p)
    if not ok then error(tostring(s):gsub("^.-:%d+: ", ""), 0) end
    return s ~= nil
end

-- The index of the last line matching pred (the first with firstmatch).
local function index_of(lines, pred, firstmatch)
    local found
    for i, l in ipairs(lines) do
        if pred(l) then
            if firstmatch then return i end
            found = i
        end
    end
    return found
end

-- Where a new line or block goes: 1-based index to insert at.
local function insert_position(lines, o)
    if o.insertbefore == "BOF" then return 1 end
    if o.insertbefore then
        local i = index_of(lines, function(l) return find(l, o.insertbefore) end, o.firstmatch)
        if i then return i end
    elseif o.insertafter and o.insertafter ~= "EOF" then
        local i = index_of(lines, function(l) return find(l, o.insertafter) end, o.firstmatch)
        if i then return i + 1 end
    end
    return #lines + 1
end

-- `line` with %1..%9 replaced by the captures of regexp in subject and
-- %0 by the whole match; %% is a percent sign.
local function expand_backrefs(subject, regexp, line)
    local r = { pattern.find(subject, regexp) }
    local whole = subject:sub(r[1], r[2])
    return (line:gsub("%%([%d%%])", function(c)
        if c == "%" then return "%" end
        local n = tonumber(c)
        if n == 0 then return whole end
        local cap = r[n + 2]
        if cap == nil then error("line: %" .. c .. " names no capture of regexp", 0) end
        return tostring(cap)
    end))
end

-- lineinfile's edit.  o: regexp, search_string, line, state, insertafter,
-- insertbefore, backrefs, firstmatch.  Returns new text, message.
function M.edit_line(text, o)
    local lines, ends_in_newline = split(text)
    local function selected(l)
        if o.regexp then return find(l, o.regexp) end
        if o.search_string then return l:find(o.search_string, 1, true) ~= nil end
        return l == o.line
    end
    if o.state == "absent" then
        local kept, removed = {}, 0
        for _, l in ipairs(lines) do
            if selected(l) then removed = removed + 1 else kept[#kept + 1] = l end
        end
        if removed == 0 then return text, "no line matched" end
        return join(kept, ends_in_newline), removed .. (removed == 1 and " line" or " lines") .. " removed"
    end
    local i = (o.regexp or o.search_string) and index_of(lines, selected, o.firstmatch)
    if i then
        local new = o.backrefs and expand_backrefs(lines[i], o.regexp, o.line) or o.line
        if lines[i] == new then return text, "line already present" end
        lines[i] = new
        return join(lines, ends_in_newline), "line " .. i .. " replaced"
    end
    if o.backrefs then return text, "regexp matched no line (backrefs: nothing added)" end
    for _, l in ipairs(lines) do
        if l == o.line then return text, "line already present" end
    end
    local at = insert_position(lines, o)
    table.insert(lines, at, o.line)
    -- a line added at the end gets its newline (and so does the old last line)
    if at == #lines then ends_in_newline = true end
    return join(lines, ends_in_newline), "line added"
end

-- blockinfile's edit.  o: block, begin_marker, end_marker, state,
-- insertafter, insertbefore.  Returns new text, message | nil, error.
function M.edit_block(text, o)
    local lines, ends_in_newline = split(text)
    local function is(i, marker) return (lines[i]:gsub("\r$", "")) == marker end
    local b, e
    for i = 1, #lines do
        if is(i, o.begin_marker) then b = i end      -- the last begin marker
    end
    for i = (b or #lines) + 1, #lines do
        if is(i, o.end_marker) then e = i; break end  -- the end marker after it
    end
    if b and not e then
        return nil, "line " .. b .. " holds the begin marker '" .. o.begin_marker ..
            "' but no end marker follows it; mend the file or change marker"
    end
    if not b then
        for i = 1, #lines do
            if is(i, o.end_marker) then
                return nil, "line " .. i .. " holds the end marker '" .. o.end_marker ..
                    "' with no begin marker before it; mend the file or change marker"
            end
        end
    end
    local new_block = {}
    if o.state ~= "absent" and o.block ~= "" then
        new_block[1] = o.begin_marker
        local body = o.block:sub(-1) == "\n" and o.block:sub(1, -2) or o.block
        for l in (body .. "\n"):gmatch("([^\n]*)\n") do new_block[#new_block + 1] = l end
        new_block[#new_block + 1] = o.end_marker
    end
    local out = {}
    local at, msg
    if b then
        for i = 1, b - 1 do out[#out + 1] = lines[i] end
        at = #out + 1
        for _, l in ipairs(new_block) do out[#out + 1] = l end
        for i = e + 1, #lines do out[#out + 1] = lines[i] end
        msg = #new_block == 0 and "block removed" or "block replaced"
    else
        if #new_block == 0 then return text, "no block to remove" end
        at = insert_position(lines, o)
        for i = 1, at - 1 do out[#out + 1] = lines[i] end
        for _, l in ipairs(new_block) do out[#out + 1] = l end
        for i = at, #lines do out[#out + 1] = lines[i] end
        msg = "block inserted"
    end
    if at + #new_block > #out then ends_in_newline = true end
    local new = join(out, ends_in_newline)
    if new == text then return text, "block already present" end
    return new, msg
end

-- The arguments lineinfile and blockinfile share, with the action's own.
function M.args(own)
    local a = {
        path = { type = "path", required = true, doc = "the file on the host" },
        state = { type = "string", default = "present", choices = { "present", "absent" }, doc = own.state_doc },
        insertafter = { type = "string", doc = "Lua pattern (or EOF): insert after its last match" },
        insertbefore = { type = "string", doc = "Lua pattern (or BOF): insert before its last match" },
        create = { type = "bool", default = false, doc = "create the file when it is missing" },
        mode = { type = "mode", doc = "permission bits, e.g. '0644'" },
        owner = content.ARGS.owner, group = content.ARGS.group,
        backup = content.ARGS.backup, validate = content.ARGS.validate,
    }
    for k, v in pairs(own) do if k ~= "state_doc" then a[k] = v end end
    return a
end

M.CHECK_MODE = "Exact: reads the file, computes the edit and reports it (with a diff under --diff); writes " ..
    "nothing. A write the login user may not make is predicted as the failure it would be. A missing file " ..
    "(without create) is unknown when an earlier step of the run would change the host (a package or a copy " ..
    "may put it there), else the failure it would be."

-- Checks shared by both actions' validate: insertafter/insertbefore
-- together, validate's %s, and each pattern argument in names.
function M.check_args(args, names)
    if args.insertafter and args.insertbefore then return "takes only one of 'insertafter' and 'insertbefore'" end
    local verr = content.validate_args(args)
    if verr then return verr end
    for _, k in ipairs(names) do
        local p = args[k]
        if p and not (k == "insertafter" and p == "EOF") and not (k == "insertbefore" and p == "BOF") then
            local ok, err = M.check_pattern(k, p)
            if not ok then return err end
        end
    end
end

-- The action around an edit, shared by lineinfile and blockinfile: reads
-- args.path (a missing one is created only with args.create, and is
-- nothing to do when absent_is_done), edits it with edit(text) -> new,
-- message | nil, error, and writes it with content.ensure.
function M.apply(ctx, args, absent_is_done, edit)
    local conn = ctx.conn
    local st, err, code = conn:stat(args.path, true)
    if not st and code ~= 2 then return { failed = true, msg = err } end
    local text = ""
    if not st then
        if absent_is_done then return { changed = false, msg = args.path .. " does not exist" } end
        if not args.create then
            if ctx.check and ctx.earlier_change then
                -- a package or a copy before this step may put it there
                return { unknown = true, msg = args.path .. " does not exist now (an earlier step would change " ..
                         "the host and may create it; the run fails if it does not)" }
            end
            return { failed = true, msg = args.path .. " does not exist (create: true creates it)" }
        end
    elseif st.type ~= "file" then
        return { failed = true, msg = args.path .. " is a " .. st.type .. ", not a file" }
    else
        text, err = conn:read_file(args.path, M.MAX_FILE_BYTES)
        if not text then return { failed = true, msg = err } end
    end
    local ok, new, msg = pcall(edit, text)
    if not ok then return { failed = true, msg = args.path .. ": " .. tostring(new) } end
    if new == nil then return { failed = true, msg = args.path .. ": " .. msg } end
    local result = content.ensure(ctx, args.path, new, args.mode, args)
    if not result.failed then result.msg = (result.changed and ctx.check and "would change: " or "") .. msg end
    return result
end

return M
