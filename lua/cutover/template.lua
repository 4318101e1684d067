-- template: the files the `template` action renders.  Text with
--   {{ expr }}                       a value
--   {% if c %} {% elif c %} {% else %} {% end %}   (endif also closes)
--   {% for x in list %} {% for k, v in pairs(t) %} {% end %}   (or endfor)
--   {# comment #}
-- and whitespace control: a '-' inside the mark ({%- -%}, {{- -}},
-- {#- -#}) removes the white space (newlines too) on that side.  A line
-- that holds only {% %} tags and comments leaves no line in the output.
--
-- Expressions and conditions are the sandboxed expressions of
-- lua/cutover/expr.lua; a whole file renders under one sandbox budget.
-- Jinja syntax this does not have ({% macro %}, {% include %}, filters)
-- is an error naming it, never copied through.
local expr = require("cutover.expr")
local sandbox = require("cutover.core.sandbox")
local json = require("cutover.core.json")
local yaml_null = require("cutover.core.yaml").null

local M = {}

M.MAX_DEPTH = 64

local JINJA_ONLY = {
    macro = "there are no macros: repeat the text or build it with an expression",
    endmacro = "there are no macros",
    include = "render the other file with its own template step",
    import = "render the other file with its own template step",
    from = "render the other file with its own template step",
    extends = "there is no template inheritance",
    block = "there is no template inheritance",
    endblock = "there is no template inheritance",
    set = "set variables in the playbook (vars, set_fact)",
    raw = "write the text as {{ '{%' }} where it must appear literally",
    endraw = "write the text as {{ '{%' }} where it must appear literally",
    filter = "call a helper (docs/expressions.md)",
    call = "there are no macros",
    with = "set variables in the playbook (vars, set_fact)",
    autoescape = "templates are not escaped",
    ["do"] = "expressions have no side effects",
    ["break"] = "filter the list instead: {% for x in filter(list, f) %}",
    continue = "filter the list instead: {% for x in filter(list, f) %}",
}

-- line and column of byte i of s, counting from the last known point
local function position(s, i, memo)
    local line, col_start, at = memo.line, memo.col_start, memo.at
    while true do
        local nl = s:find("\n", at, true)
        if not nl or nl >= i then break end
        line, col_start, at = line + 1, nl + 1, nl + 1
    end
    memo.line, memo.col_start, memo.at = line, col_start, at
    return line, i - col_start + 1
end

local function rtrim(t)
    local e = #t
    while e > 0 and t:find("^%s", e) do e = e - 1 end
    return t:sub(1, e)
end

local function ltrim(t)
    local b = 1
    while b <= #t and t:find("^%s", b) do b = b + 1 end
    return t:sub(b)
end

-- A line that holds only {% %} tags and comments (and white space)
-- leaves nothing in the output: not its indentation, not its newline.
local function drop_tag_lines(toks)
    local i = 1
    while i <= #toks do
        if toks[i].text then
            i = i + 1
        else
            local j, only_blocks = i, true
            while j <= #toks and not toks[j].text do
                if toks[j].kind == "expr" then only_blocks = false end
                j = j + 1
            end
            local prev, nxt = toks[i - 1], toks[j]
            local tail_ok, head_ok = prev == nil, nxt == nil
            local last_nl
            if prev then
                last_nl = prev.text:match(".*()\n")
                local tail = prev.text:sub((last_nl or 0) + 1)
                tail_ok = tail:find("^[ \t]*$") ~= nil and (last_nl ~= nil or i == 2 or prev.line_start)
            end
            if nxt then head_ok = nxt.text:find("^[ \t]*\r?\n") ~= nil or
                                  (j == #toks and nxt.text:find("^[ \t]*$") ~= nil) end
            if only_blocks and tail_ok and head_ok then
                if prev then prev.text = prev.text:sub(1, last_nl or 0) end
                if nxt then
                    nxt.text = nxt.text:gsub("^[ \t]*\r?\n?", "", 1)
                    nxt.line_start = true  -- what is left begins a line
                end
            end
            i = j
        end
    end
    local out = {}
    for _, t in ipairs(toks) do
        if not (t.text == "" or t.kind == "comment") then out[#out + 1] = t end
    end
    return out
end

-- Splits the text into a flat list of tokens:
--   { text = s } | { kind = "expr"|"stmt", code = s, line, col }
-- Returns tokens | nil, message, line, col.
local function tokenize(s)
    local toks, pos, memo = {}, 1, { line = 1, col_start = 1, at = 1 }
    local strip_next = false   -- the last tag ended with '-'
    -- returns the token added, if any
    local function add_text(t)
        if strip_next then t = ltrim(t) end
        strip_next = false
        if t ~= "" then
            toks[#toks + 1] = { text = t }
            return toks[#toks]
        end
    end
    while true do
        local i = s:find("{[{%%#]", pos)
        if not i then add_text(s:sub(pos)); return drop_tag_lines(toks) end
        local mark = s:sub(i + 1, i + 1)
        local line, col = position(s, i, memo)
        local close = mark == "{" and "}}" or (mark .. "}")
        local j = s:find(close, i + 2, true)
        local what = "{" .. mark
        if not j then
            return nil, "'" .. what .. "' without a closing '" .. close .. "'", line, col
        end
        if mark == "{" then
            -- "{{ {a=1} }}": extend to the last "}}" of a run of braces
            while s:sub(j + 2, j + 2) == "}" do j = j + 1 end
        end
        local inner = s:sub(i + 2, j - 1)
        local lstrip = inner:sub(1, 1) == "-"
        local rstrip = #inner > (lstrip and 1 or 0) and inner:sub(-1) == "-"
        if lstrip then inner = inner:sub(2) end
        if rstrip then inner = inner:sub(1, -2) end
        local added = add_text(s:sub(pos, i - 1))
        if lstrip and added then
            added.text = rtrim(added.text)
            if added.text == "" then toks[#toks] = nil end
        end
        local code = inner:match("^%s*(.-)%s*$")
        if mark == "{" then
            if code == "" then return nil, "empty '{{ }}'", line, col end
            toks[#toks + 1] = { kind = "expr", code = code, line = line, col = col }
        elseif mark == "%" then
            if code == "" then return nil, "empty '{% %}'", line, col end
            toks[#toks + 1] = { kind = "stmt", code = code, line = line, col = col }
        else
            toks[#toks + 1] = { kind = "comment" }
        end
        strip_next = rstrip
        pos = j + #close
    end
end

local function check_code(code, line, col)
    local _, err = expr.compile(code)
    if err then return nil, "bad expression '" .. code .. "': " .. err, line, col end
    return true
end

-- The tags of M.parse.  The parse's stack holds { node, body } (body:
-- where the next parts go); each tag function takes the stack, the
-- stack's top, the token t and the text after the keyword, and returns
-- nil, or the error: message, line, col.

local function too_deep(stack, t)
    if #stack > M.MAX_DEPTH then return "blocks nested more than " .. M.MAX_DEPTH .. " deep", t.line, t.col end
end

local function tag_if(stack, top, t, rest)
    if rest == "" then return "'{% if %}' needs a condition", t.line, t.col end
    local ok, e, l, c = check_code(rest, t.line, t.col)
    if not ok then return e, l, c end
    e, l, c = too_deep(stack, t)
    if e then return e, l, c end
    local node = { kind = "if", branches = { { cond = rest, body = {}, line = t.line } },
                   line = t.line, col = t.col }
    top.body[#top.body + 1] = node
    stack[#stack + 1] = { node = node, body = node.branches[1].body }
end

local function tag_elif(_, top, t, rest, here)
    local n = top.node
    if n.kind ~= "if" then return here .. " outside an '{% if %}'", t.line, t.col end
    if n.else_body then return here .. " after '{% else %}'", t.line, t.col end
    if rest == "" then return here .. " needs a condition", t.line, t.col end
    local ok, e, l, c = check_code(rest, t.line, t.col)
    if not ok then return e, l, c end
    local b = { cond = rest, body = {}, line = t.line }
    n.branches[#n.branches + 1] = b
    top.body = b.body
end

local function tag_else(_, top, t, rest)
    local n = top.node
    if n.kind ~= "if" then return "'{% else %}' outside an '{% if %}'", t.line, t.col end
    if n.else_body then return "a second '{% else %}'", t.line, t.col end
    if rest ~= "" then return "'{% else %}' takes no condition (write '{% elif " .. rest ..
        " %}')", t.line, t.col end
    n.else_body = {}
    top.body = n.else_body
end

local function tag_for(stack, top, t, rest)
    local a, b, src = rest:match("^([%a_][%w_]*)%s*,%s*([%a_][%w_]*)%s+in%s+(.+)$")
    if not a then
        a, src = rest:match("^([%a_][%w_]*)%s+in%s+(.+)$")
    end
    if not a then
        return "'{% for %}' must be 'for x in list' or 'for k, v in pairs(t)'", t.line, t.col
    end
    local mode = b and "pairs" or "items"
    local inner = src:match("^pairs%s*(%b())$")
    if inner then mode = b and "pairs" or "keys"; src = inner:sub(2, -2)
    else
        inner = src:match("^ipairs%s*(%b())$")
        if inner then mode = b and "ipairs" or "items"; src = inner:sub(2, -2) end
    end
    local ok, e, l, c = check_code(src, t.line, t.col)
    if not ok then return e, l, c end
    e, l, c = too_deep(stack, t)
    if e then return e, l, c end
    local node = { kind = "for", a = a, b = b, src = src, mode = mode, body = {},
                   line = t.line, col = t.col }
    top.body[#top.body + 1] = node
    stack[#stack + 1] = { node = node, body = node.body }
end

-- end, endif, endfor (kw: which)
local function tag_end(stack, top, t, rest, here, kw)
    local n = top.node
    if #stack == 1 then return here .. " without an open '{% if %}' or '{% for %}'", t.line, t.col end
    if (kw == "endif" and n.kind ~= "if") or (kw == "endfor" and n.kind ~= "for") then
        return here .. " closes the '{% " .. n.kind .. " %}' of line " .. n.line ..
            " (write '{% end %}')", t.line, t.col
    end
    if rest ~= "" then return here .. " takes nothing after it", t.line, t.col end
    stack[#stack] = nil
end

local TAGS = { ["if"] = tag_if, elif = tag_elif, ["elseif"] = tag_elif, ["else"] = tag_else, ["for"] = tag_for,
               ["end"] = tag_end, endif = tag_end, endfor = tag_end }

-- A {% %} token -> nil | message, line, col
local function statement(stack, t)
    local top = stack[#stack]
    local kw = t.code:match("^([%a_][%w_]*)") or ""
    local rest = t.code:sub(#kw + 1):match("^%s*(.-)$")
    local here = "'{% " .. kw .. " %}'"
    local tag = TAGS[kw]
    if tag then return tag(stack, top, t, rest, here, kw) end
    if JINJA_ONLY[kw] then
        return here .. " is Jinja syntax that cutover templates do not have: " .. JINJA_ONLY[kw],
            t.line, t.col
    end
    return "unknown tag '{% " .. t.code .. " %}' (cutover templates have if, elif, else, for and end)",
        t.line, t.col
end

-- Parses text into a tree.  Returns tree | nil, message, line, col.
function M.parse(s)
    local toks, terr, tl, tc = tokenize(s)
    if not toks then return nil, terr, tl, tc end
    local root = { body = {} }
    local stack = { { node = root, body = root.body } }
    for _, t in ipairs(toks) do
        local top = stack[#stack]
        if t.text then
            top.body[#top.body + 1] = { text = t.text }
        elseif t.kind == "expr" then
            local ok, e, l, c = check_code(t.code, t.line, t.col)
            if not ok then return nil, e, l, c end
            top.body[#top.body + 1] = { code = t.code, line = t.line, col = t.col }
        else
            local e, l, c = statement(stack, t)
            if e then return nil, e, l, c end
        end
    end
    if #stack > 1 then
        local n = stack[#stack].node
        return nil, "'{% " .. n.kind .. " %}' is never closed (add '{% end %}')", n.line, n.col
    end
    return root
end

local function truthy(v) return v ~= nil and v ~= false and v ~= yaml_null end

-- The error raised inside the render: a table the caller recognises.
local render_error_mt = {}
local function fail(line, msg, unknown)
    error(setmetatable({ line = line, msg = msg, unknown = unknown }, render_error_mt), 0)
end

local function sorted_keys(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks, function(x, y)
        if type(x) == type(y) and (type(x) == "number" or type(x) == "string") then return x < y end
        return type(x) == "number"
    end)
    return ks
end

local render_body

local function render_node(n, scope, out)
    if n.text then out[#out + 1] = n.text; return end
    if n.code then
        local ok, v, unknown = expr.eval_data(n.code, scope)
        if not ok then fail(n.line, v, unknown) end
        if v == nil then fail(n.line, "'" .. n.code .. "' is nil") end
        if v == yaml_null then v = "" end
        out[#out + 1] = type(v) == "table" and json.encode(v) or tostring(v)
        return
    end
    if n.kind == "if" then
        for _, b in ipairs(n.branches) do
            local ok, v, unknown = expr.eval(b.cond, scope)
            if not ok then fail(b.line, v, unknown) end
            if truthy(v) then return render_body(b.body, scope, out) end
        end
        if n.else_body then render_body(n.else_body, scope, out) end
        return
    end
    -- for
    local ok, list, unknown = expr.eval(n.src, scope)
    if not ok then fail(n.line, list, unknown) end
    if list == nil or list == yaml_null then return end
    if type(list) ~= "table" then
        fail(n.line, "'{% for %}': '" .. n.src .. "' gives " .. type(list) .. ", not a list or a mapping")
    end
    if n.mode == "items" or n.mode == "ipairs" then
        if n.mode == "items" and #list == 0 and next(list) ~= nil then
            fail(n.line, "'{% for %}': '" .. n.src .. "' is a mapping: write 'for k, v in pairs(" .. n.src .. ")'")
        end
        for i, x in ipairs(list) do
            local vars = n.b and { [n.a] = i, [n.b] = x } or { [n.a] = x }
            render_body(n.body, scope:with(vars), out)
        end
    else
        for _, k in ipairs(sorted_keys(list)) do
            local vars = n.b and { [n.a] = k, [n.b] = list[k] } or { [n.a] = k }
            render_body(n.body, scope:with(vars), out)
        end
    end
end

render_body = function(body, scope, out)
    for _, n in ipairs(body) do render_node(n, scope, out) end
end

-- Renders text (already parsed or not) in scope, the whole of it under
-- one sandbox budget.
-- Returns true, text | false, message, line, unknowable_name
function M.render(tree, scope)
    if type(tree) == "string" then
        local t, err, line = M.parse(tree)
        if not t then return false, err, line end
        tree = t
    end
    local out = {}
    local ok, e = sandbox.call(render_body, expr.MAX_INSTRUCTIONS, expr.MAX_BYTES, tree.body, scope, out)
    if ok then return true, table.concat(out) end
    if getmetatable(e) == render_error_mt then return false, e.msg, e.line, e.unknown end
    if type(e) == "table" and e.unknowable then
        return false, tostring(e), nil, e.unknowable
    end
    e = tostring(e):gsub("^[^:]*:%d+: ", "")
    if e == "not enough memory" then e = "memory limit exceeded" end
    return false, e
end

return M
