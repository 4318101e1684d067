-- convert.jinja.filters: Jinja filters (x | name), tests (x is name)
-- and Python string methods (x.name()), each a function(emitter, ...)
-- giving Lua text: one row each.
local common = require("cutover.convert.jinja.common")
local LUA_KEYWORDS, fail, lua_string = common.LUA_KEYWORDS, common.fail, common.lua_string
local pattern_escape, simple_path = common.pattern_escape, common.simple_path

-- Filters: name -> function(emitter, node) giving Lua text.  One row each.
local FILTERS = {}
local function arity(node, lo, hi)
    if node.args.kw then fail("'| " .. node.name .. "' with keyword arguments") end
    if #node.args < lo or #node.args > hi then
        fail("'| " .. node.name .. "' with " .. #node.args .. " argument(s)")
    end
end
local function call1(helper)
    return function(e, node) arity(node, 0, 0); return helper .. "(" .. e:emit(node.obj) .. ")" end
end
FILTERS.default = function(e, node)
    arity(node, 0, 2)
    if node.args[2] then fail("'| default(x, true)' (a default for empty values)") end
    local d = node.args[1] and e:emit(node.args[1]) or "''"
    return "default(" .. e:emit(node.obj) .. ", " .. d .. ")"
end
FILTERS.d = FILTERS.default
FILTERS.length = function(e, node) arity(node, 0, 0); return "len(" .. e:emit(node.obj) .. ")" end
FILTERS.count = FILTERS.length
FILTERS.lower = call1("lower")
FILTERS.upper = call1("upper")
FILTERS.trim = call1("trim")
FILTERS.unique = call1("unique")
FILTERS.sort = call1("sort")
FILTERS.min = call1("min")
FILTERS.max = call1("max")
FILTERS.sum = call1("sum")
FILTERS.to_json = call1("to_json")
FILTERS.from_json = call1("from_json")
FILTERS.b64encode = call1("b64encode")
FILTERS.b64decode = call1("b64decode")
FILTERS.basename = call1("basename")
FILTERS.dirname = call1("dirname")
FILTERS.join = function(e, node)
    arity(node, 0, 1)
    return "join(" .. e:emit(node.obj) .. ", " .. (node.args[1] and e:emit(node.args[1]) or "''") .. ")"
end
FILTERS.bool = function(e, node)
    arity(node, 0, 0)
    -- Ansible's bool filter: these texts (any case), 1 and true
    return "contains({'1', 'true', 'yes', 'on'}, lower(tostring(" .. e:emit(node.obj) .. ")))"
end
FILTERS.int = function(e, node)
    arity(node, 0, 0)
    return "math.floor(tonumber(" .. e:emit(node.obj) .. ") or 0)"
end
FILTERS.float = function(e, node)
    arity(node, 0, 0)
    return "(tonumber(" .. e:emit(node.obj) .. ") or 0.0)"
end
FILTERS.string = function(e, node) arity(node, 0, 0); return "tostring(" .. e:emit(node.obj) .. ")" end
FILTERS.list = function(e, node) arity(node, 0, 0); return e:emit(node.obj) end
FILTERS.mandatory = FILTERS.list
FILTERS.first = function(e, node) arity(node, 0, 0); return e:object(node.obj) .. "[1]" end
FILTERS.last = function(e, node)
    arity(node, 0, 0)
    if not simple_path(node.obj) then fail("'| last' of a computed value") end
    local x = e:object(node.obj)
    return x .. "[#" .. x .. "]"
end
FILTERS.flatten = function(e, node)
    arity(node, 0, 1)
    local x = e:emit(node.obj)
    if node.args[1] then return "flatten(" .. x .. ", " .. e:emit(node.args[1]) .. ")" end
    return "flatten(" .. x .. ")"
end
FILTERS.abs = function(e, node) arity(node, 0, 0); return "math.abs(" .. e:emit(node.obj) .. ")" end
FILTERS.replace = function(e, node)
    arity(node, 2, 2)
    local a, b = node.args[1], node.args[2]
    if a.k ~= "str" or b.k ~= "str" or a.v == "" then fail("'| replace' with computed arguments") end
    return "regex_replace(" .. e:emit(node.obj) .. ", " .. lua_string(pattern_escape(a.v)) .. ", " ..
        lua_string((b.v:gsub("%%", "%%%%"))) .. ")"
end
FILTERS.map = function(e, node)
    local a = node.args
    if a.kw then
        local attr = a.kw.attribute
        local n = 0
        for _ in pairs(a.kw) do n = n + 1 end
        if n == 1 and #a == 0 and attr and attr.k == "str" and attr.v:match("^[%a_][%w_]*$") and
            not LUA_KEYWORDS[attr.v] then
            return "map(" .. e:emit(node.obj) .. ", " .. lua_string(attr.v) .. ")"
        end
        fail("'| map' with these keyword arguments")
    end
    if #a == 2 and a[1].k == "str" and a[1].v == "attribute" and a[2].k == "str" and a[2].v:match("^[%a_][%w_]*$")
        and not LUA_KEYWORDS[a[2].v] then
        return "map(" .. e:emit(node.obj) .. ", " .. lua_string(a[2].v) .. ")"
    end
    if #a == 1 and a[1].k == "str" and (a[1].v == "lower" or a[1].v == "upper" or a[1].v == "trim") then
        return "map(" .. e:emit(node.obj) .. ", " .. a[1].v .. ")"
    end
    fail("'| map' other than map('attribute', 'name') or map('lower'/'upper'/'trim')")
end

-- selectattr / rejectattr: a filter with a lambda on the item's field
local function attr_filter(helper)
    return function(e, node)
        local a = node.args
        if a.kw or #a < 1 or a[1].k ~= "str" then fail("'| " .. node.name .. "' without an attribute name") end
        local path = { k = "name", v = "x_" }
        for part in a[1].v:gmatch("[^%.]+") do
            if not part:match("^[%a_][%w_]*$") or LUA_KEYWORDS[part] then fail("'| " .. node.name .. "' of '" ..
                a[1].v .. "'") end
            path = { k = "attr", obj = path, name = part }
        end
        local body
        if #a == 1 then
            body = e:truth(path)
        elseif #a == 2 and a[2].k == "str" and a[2].v == "defined" then
            body = "default(" .. e:emit(path) .. ", nil) ~= nil"
        elseif #a == 3 and a[2].k == "str" and (a[2].v == "equalto" or a[2].v == "==" or a[2].v == "eq")
            and (a[3].k == "str" or a[3].k == "num" or a[3].k == "boolv") then
            body = e:emit(path) .. " == " .. e:emit(a[3])
        else
            fail("'| " .. node.name .. "' with this test")
        end
        return helper .. "(" .. e:emit(node.obj) .. ", " .. lua_string("x_ -> " .. body) .. ")"
    end
end
FILTERS.selectattr = attr_filter("filter")
FILTERS.rejectattr = attr_filter("reject")

-- Tests (`x is NAME`): name -> function(emitter, node) giving Lua text.
local TESTS = {}
TESTS.defined = function(e, node)
    if node.obj.k == "name" then return "defined(" .. lua_string(e:name(node.obj.v)) .. ")" end
    return "default(" .. e:emit(node.obj) .. ", nil) ~= nil"
end
TESTS.undefined = function(e, node) return "not (" .. TESTS.defined(e, node) .. ")" end
TESTS.none = function(e, node) return e:operand(node.obj) .. " == null" end
local function result_field(field, want)
    return function(e, node)
        return "default(" .. e:operand(node.obj) .. "." .. field .. ", false) " .. (want and "==" or "~=") .. " true"
    end
end
TESTS.failed = result_field("failed", true)
TESTS.failure = TESTS.failed
TESTS.succeeded = result_field("failed", false)
TESTS.success = TESTS.succeeded
TESTS.successful = TESTS.succeeded
TESTS.changed = result_field("changed", true)
TESTS.change = TESTS.changed
TESTS.skipped = result_field("skipped", true)
TESTS.skip = TESTS.skipped
TESTS.string = function(e, node) return "type(" .. e:emit(node.obj) .. ") == 'string'" end
TESTS.number = function(e, node) return "type(" .. e:emit(node.obj) .. ") == 'number'" end
TESTS.equalto = function(e, node)
    if #node.args ~= 1 then fail("'is equalto' without one argument") end
    return e:operand(node.obj) .. " == " .. e:operand(node.args[1])
end
TESTS.eq = TESTS.equalto
TESTS["in"] = function(e, node)
    if #node.args ~= 1 then fail("'is in' without one argument") end
    return "contains(" .. e:emit(node.args[1]) .. ", " .. e:emit(node.obj) .. ")"
end

-- Python string methods with a helper: name -> function(emitter, obj, args)
local METHODS = {
    startswith = function(e, obj, a) if #a ~= 1 then fail("startswith() arguments") end
        return "startswith(" .. e:emit(obj) .. ", " .. e:emit(a[1]) .. ")" end,
    endswith = function(e, obj, a) if #a ~= 1 then fail("endswith() arguments") end
        return "endswith(" .. e:emit(obj) .. ", " .. e:emit(a[1]) .. ")" end,
    lower = function(e, obj, a) if #a ~= 0 then fail("lower() arguments") end return "lower(" .. e:emit(obj) .. ")" end,
    upper = function(e, obj, a) if #a ~= 0 then fail("upper() arguments") end return "upper(" .. e:emit(obj) .. ")" end,
    strip = function(e, obj, a) if #a ~= 0 then fail("strip() with arguments") end return "trim(" .. e:emit(obj) ..
        ")" end,
    split = function(e, obj, a)
        if #a ~= 1 then fail("split() without a separator (Python splits on white space)") end
        return "split(" .. e:emit(obj) .. ", " .. e:emit(a[1]) .. ")"
    end,
}

return { FILTERS = FILTERS, TESTS = TESTS, METHODS = METHODS }
