-- convert.jinja.common: what the translation's parts share: Lua's
-- keywords, the Ansible names cutover renames or does not have, result
-- fields that are booleans, the error for what does not translate, Lua
-- string literals and patterns, and which expressions are plain paths.

local M = {}

local LUA_KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
    local nil not or repeat return then true until while]]):gmatch("%a+") do
    LUA_KEYWORDS[w] = true
end

-- Ansible names with a cutover equivalent, and those with none.
local RENAMED = {
    ansible_check_mode = "check_mode",
    ansible_hostname = "facts.hostname",
    ansible_system = "facts.system",
    ansible_kernel = "facts.kernel",
    ansible_architecture = "facts.architecture",
    ansible_managed = "'Ansible managed'",  -- Ansible's default text
}
local NO_EQUIVALENT = {
    hostvars = true, groups = true, group_names = true, play_hosts = true,
    omit = true, lookup = true, query = true, q = true, range = true,
    loop = true, environment = true, vars = true,
    now = true, undef = true, namespace = true, lipsum = true, dict = true,
    cycler = true, joiner = true,
}

-- Result fields that are booleans (registered results, stat).
local BOOL_FIELDS = {
    changed = true, failed = true, skipped = true, exists = true,
    isdir = true, isreg = true, islnk = true, rebooted = true,
    timed_out = true, check_mode = true,
}

local function fail(msg) error({ convert = msg }, 0) end

local function lua_string(s)
    return "'" .. s:gsub("[\\'\n\r\t%z]", function(c)
        return ({ ["\\"] = "\\\\", ["'"] = "\\'", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\0"] = "\\0" })[c]
    end) .. "'"
end

-- Lua pattern for a plain text (magic characters escaped)
local function pattern_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- a name, attribute or constant index chain: safe to write twice
local function simple_path(node)
    if node.k == "name" then return true end
    if node.k == "attr" then return simple_path(node.obj) end
    if node.k == "index" then return (node.key.k == "num" or node.key.k == "str") and simple_path(node.obj) end
    if node.k == "paren" then return simple_path(node.a) end
    return false
end

M.LUA_KEYWORDS, M.RENAMED, M.NO_EQUIVALENT, M.BOOL_FIELDS = LUA_KEYWORDS, RENAMED, NO_EQUIVALENT, BOOL_FIELDS
M.fail, M.lua_string, M.pattern_escape, M.simple_path = fail, lua_string, pattern_escape, simple_path

return M
