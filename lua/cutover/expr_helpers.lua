-- expr_helpers: the helpers of playbook expressions (docs/expressions.md):
-- M.make builds one sandbox's table of them from the list helpers
-- (expr_lists.lua) and the text, data, version and address helpers
-- (expr_values.lua); M.rewrite is the compile-time rewrite of default(x,
-- d).  They run inside the sandbox (lua/cutover/expr.lua) and spend its
-- budget like any Lua code; pattern matching goes through core/pattern.c,
-- which charges its steps.
--
-- A function argument ("f") is a Lua function, a helper, a short lambda
-- "s -> s.name" (compiled once, by expr.lua's compile_lambda) or the name
-- of a field ("name" means s.name).
local yaml_null = require("cutover.core.yaml").null
local lists = require("cutover.expr_lists")
local values = require("cutover.expr_values")

local M = {}

-- Regular-expression syntax Lua patterns do not have: raises a message
-- naming what to write instead (also used by lineinfile and blockinfile).
M.check_lua_pattern = values.check_lua_pattern

-- ctx's checks, and the two argument conversions every group uses
local function context(ctx)
    local arg = ctx.arg

    local function list_arg(fname, i, v)
        if v == yaml_null then return {} end
        arg(fname, i, v, "a list", "table")
        return v
    end

    -- f as a function: a function, a lambda "a -> ...", or a field name.
    local function fn_arg(fname, i, f)
        if type(f) == "function" then return f end
        if type(f) == "string" then
            if f:find("->", 1, true) then
                local fn, err = ctx.lambda(f)
                if not fn then error(fname .. ": argument " .. i .. ": " .. err, 0) end
                return fn
            end
            if f:match("^[%a_][%w_]*$") then
                return function(x)
                    if type(x) ~= "table" then
                        error(fname .. ": an item is " .. type(x) .. ", which has no field '" .. f .. "'", 0)
                    end
                    return x[f]
                end
            end
        end
        error(fname .. ": argument " .. i .. " must be a function, a lambda such as \"s -> s.name\" " ..
              "or a field name, got " .. (type(f) == "string" and ("'" .. f .. "'") or type(f)), 0)
    end
    return { arg = arg, thaw = ctx.thaw, list_arg = list_arg, fn_arg = fn_arg }
end

-- ctx: arg (type check), thaw (view -> plain data), lambda (source -> fn)
function M.make(ctx)
    local c = context(ctx)
    local H = {}
    lists.add(H, c)
    values.add(H, c)
    return H
end

-- Jinja filters people write from habit, and the helper to call instead.
local JINJA_FILTERS = {
    length = "len(x)", d = "default(x, d)", int = "tonumber(x)", float = "tonumber(x)",
    string = "tostring(x)", first = "x[1]", last = "x[#x]", selectattr = "filter(list, f)",
    rejectattr = "reject(list, f)", replace = "regex_replace(s, p, r)", bool = "x == true",
    list = "a list literal {...}", dict2items = "keys(t) / values(t)", combine = "a table literal",
    regex_findall = "regex_search(s, p)", quote = "format('%q', s)", abs = "math.abs(x)",
    round = "math.floor(x + 0.5)", difference = "reject(a, \"x -> contains(b, x)\")",
    intersect = "filter(a, \"x -> contains(b, x)\")", union = "unique(flatten({a, b}))",
}

-- Where the comment that starts at src[i] ends: a long one at its
-- closing brackets, else at the end of the line.
local function comment_end(src, i, n)
    local eq = src:match("^%-%-%[(=*)%[", i)
    local j
    if eq then
        local _, e = src:find("]" .. eq .. "]", i, true)
        j = e or n
    else
        j = src:find("\n", i, true) or n
    end
    return j
end

-- Where the quoted string that starts at src[i] ends (its closing quote,
-- or the end of the line when it has none).
local function quoted_end(src, i, n)
    local c = src:sub(i, i)
    local j = i + 1
    while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
    end
    return j
end

-- The error for Jinja's filter syntax "| name" at src[i] when name is a
-- helper or a Jinja filter (with what to write instead); nil otherwise.
local function filter_syntax(src, i, is_helper)
    local name = src:match("^|%s*([%a_][%w_]*)", i)
    if name and (is_helper(name) or JINJA_FILTERS[name]) then
        local instead = JINJA_FILTERS[name] or (name .. "(x, ...)")
        if name == "default" then instead = "default(x, d)" end
        if is_helper(name) and name ~= "default" then instead = name .. "(x" ..
            (src:match("^|%s*[%a_][%w_]*%s*%(", i) and ", ...)" or ")") end
        return "'| " .. name .. "' is Jinja filter syntax, which expressions do not have: write " ..
            instead .. " instead"
    end
end

-- Rewrites an expression's source before it is compiled:
--   default(x, d)  ->  default(function() return x end, d)
-- so x is evaluated by default itself (an undefined x gives d), and
-- refuses Jinja's filter syntax "x | name" when name is a helper or a
-- Jinja filter.  Strings and comments are copied untouched.
-- is_helper(name) -> true when name is a helper; on_lambda(token) is
-- called with each string literal that holds "->" (a lambda written in
-- the expression).  Returns code | nil, err.
function M.rewrite(src, is_helper, on_lambda)
    if not src:find("default", 1, true) and not src:find("|", 1, true) and
            not src:find("->", 1, true) then
        return src
    end
    local out, i, n = {}, 1, #src
    local depth = 0
    local frames = {}   -- open default( calls: the depth inside their '('
    local last_sig = ""   -- the last significant character copied
    while i <= n do
        local c = src:sub(i, i)
        local long = src:match("^%[(=*)%[", i)
        if c == "-" and src:sub(i + 1, i + 1) == "-" then
            -- a comment: long or to the end of the line
            local j = comment_end(src, i, n)
            out[#out + 1] = src:sub(i, j)
            i = j + 1
        elseif long then
            local _, e = src:find("]" .. long .. "]", i, true)
            e = e or n
            out[#out + 1] = src:sub(i, e)
            if on_lambda and out[#out]:find("->", 1, true) then on_lambda(out[#out]) end
            i = e + 1
            last_sig = "s"
        elseif c == "'" or c == '"' then
            local j = quoted_end(src, i, n)
            out[#out + 1] = src:sub(i, j)
            if on_lambda and out[#out]:find("->", 1, true) then on_lambda(out[#out]) end
            i = j + 1
            last_sig = "s"
        elseif c:match("[%a_]") then
            local word = src:match("^[%a_][%w_]*", i)
            local after = src:match("^%s*()", i + #word)
            if word == "default" and last_sig ~= "." and last_sig ~= ":" and src:sub(after, after) == "(" then
                out[#out + 1] = "default(function() return "
                depth = depth + 1
                frames[#frames + 1] = depth
                i = after + 1
                last_sig = "("
            else
                out[#out + 1] = word
                i = i + #word
                last_sig = "w"
            end
        elseif c == "(" or c == "{" or c == "[" then
            depth = depth + 1
            out[#out + 1] = c
            i = i + 1
            last_sig = c
        elseif c == ")" or c == "}" or c == "]" then
            if frames[#frames] == depth then
                return nil, "default(x, d) needs two arguments: the value and what to give when it is undefined"
            end
            depth = depth - 1
            out[#out + 1] = c
            i = i + 1
            last_sig = c
        elseif c == "," and frames[#frames] == depth then
            frames[#frames] = nil
            out[#out + 1] = " end,"
            i = i + 1
            last_sig = ","
        elseif c == "|" then
            local err = filter_syntax(src, i, is_helper)
            if err then return nil, err end
            out[#out + 1] = c
            i = i + 1
            last_sig = c
        else
            out[#out + 1] = c
            if not c:match("%s") then last_sig = c end
            i = i + 1
        end
    end
    return table.concat(out)
end

return M
