-- lint: the checks of `cutover lint PLAYBOOK -i INVENTORY` that need the
-- inventory: every play's `hosts:` pattern matches at least one host, and
-- every variable an expression reads is defined somewhere the run could
-- find it (play, block and step vars, vars_prompt, register, set_fact,
-- loop variables, the inventory's host and group vars, -e, the special
-- names and the expression helpers).
--
-- The variable check is a union over the whole playbook and inventory:
-- a name defined for one host or in one play counts everywhere, so it
-- reports no false positive for a name that exists, only names that can
-- exist nowhere (a typo, a variable that was renamed).
local expr = require("cutover.expr")
local playbook = require("cutover.load.playbook")
local util = require("cutover.util")

local M = {}

-- Names the runner provides to every host (engine/, vars.lua).
local SPECIALS = { "inventory_hostname", "secret", "check_mode", "facts", "ansible_facts",
                   "play_hosts", "loop_index", "item" }

local LUA_WORDS = {}
for _, w in ipairs({ "and", "break", "do", "else", "elseif", "end", "false",
                     "for", "function", "goto", "if", "in", "local", "nil",
                     "not", "or", "repeat", "return", "then", "true",
                     "until", "while", "_ENV", "self" }) do
    LUA_WORDS[w] = true
end

-- Skips a string literal or a comment that starts at i; returns the index
-- after it, or nil when none starts there.
local function skip_literal(code, i)
    local c = code:sub(i, i)
    if c == "'" or c == '"' then
        local j = i + 1
        while j <= #code do
            local d = code:sub(j, j)
            if d == "\\" then j = j + 2
            elseif d == c then return j + 1
            else j = j + 1 end
        end
        return #code + 1
    end
    local long = code:match("^%[(=*)%[", i)
    if long then
        local close = code:find("]" .. long .. "]", i, true)
        return close and close + #long + 2 or #code + 1
    end
    if code:sub(i, i + 1) == "--" then
        local lc = code:match("^%-%-%[(=*)%[", i)
        if lc then
            local close = code:find("]" .. lc .. "]", i, true)
            return close and close + #lc + 2 or #code + 1
        end
        local nl = code:find("\n", i, true)
        return nl and nl + 1 or #code + 1
    end
    return nil
end

-- The free names an expression reads: identifiers that are not a field
-- (after '.' or ':'), not a table key ('{ k = v }'), not a keyword and not
-- declared inside it (local, function parameters, for variables).
function M.free_names(code)
    local tokens, i = {}, 1
    while i <= #code do
        local after = skip_literal(code, i)
        if after then
            tokens[#tokens + 1] = { kind = "literal" }
            i = after
        else
            local name = code:match("^[%a_][%w_]*", i)
            if name then
                tokens[#tokens + 1] = { kind = "name", text = name }
                i = i + #name
            else
                local num = code:match("^%d[%w%.]*", i)
                if num then
                    tokens[#tokens + 1] = { kind = "number" }
                    i = i + #num
                elseif code:match("^%s", i) then
                    i = i + 1
                else
                    local op = code:match("^%.%.%.?", i) or code:match("^[=~<>]=", i)
                        or code:match("^::", i) or code:sub(i, i)
                    tokens[#tokens + 1] = { kind = "op", text = op }
                    i = i + #op
                end
            end
        end
    end
    -- names declared inside the expression: local a, b / for k, v in /
    -- function f(a, b) and function(a, b)
    local declared = {}
    local function names_from(k)
        while tokens[k] and tokens[k].kind == "name" do
            declared[tokens[k].text] = true
            if not (tokens[k + 1] and tokens[k + 1].text == ",") then break end
            k = k + 2
        end
    end
    for k, t in ipairs(tokens) do
        if t.kind == "name" and (t.text == "local" or t.text == "for") then
            names_from(tokens[k + 1] and tokens[k + 1].text == "function" and k + 2 or k + 1)
        elseif t.kind == "name" and t.text == "function" then
            local j = k + 1
            while tokens[j] and (tokens[j].kind == "name" or tokens[j].text == "." or tokens[j].text == ":") do
                j = j + 1
            end
            if tokens[j] and tokens[j].text == "(" then names_from(j + 1) end
        end
    end
    -- default(x, d): x may be undefined (docs/expressions.md)
    for k, t in ipairs(tokens) do
        local prev = tokens[k - 1]
        if t.kind == "name" and t.text == "default" and tokens[k + 1] and tokens[k + 1].text == "(" and
                not (prev and (prev.text == "." or prev.text == ":")) then
            local depth, j = 0, k + 2
            while tokens[j] and not (depth == 0 and (tokens[j].text == "," or tokens[j].text == ")")) do
                local op = tokens[j].text
                if op == "(" or op == "{" or op == "[" then depth = depth + 1
                elseif op == ")" or op == "}" or op == "]" then depth = depth - 1 end
                tokens[j].guarded = true
                j = j + 1
            end
        end
    end
    local out, seen = {}, {}
    for k, t in ipairs(tokens) do
        if t.kind == "name" and not LUA_WORDS[t.text] and not declared[t.text] and not t.guarded then
            local prev, nxt = tokens[k - 1], tokens[k + 1]
            local field = prev and prev.kind == "op" and (prev.text == "." or prev.text == ":")
            local key = nxt and nxt.kind == "op" and nxt.text == "=" and prev and
                        prev.kind == "op" and (prev.text == "{" or prev.text == "," or prev.text == ";")
            if not field and not key and not seen[t.text] then
                seen[t.text] = true
                out[#out + 1] = t.text
            end
        end
    end
    return out
end

-- Every name the playbook defines, walking its YAML as written.
local function playbook_names(doc, names, depth)
    depth = depth or 0
    if type(doc) ~= "table" or depth > 64 then return end
    for k, v in pairs(doc) do
        if (k == "register" or k == "loop_var") and type(v) == "string" then
            names[v] = true
        elseif (k == "vars" or k == "set_fact") and type(v) == "table" then
            for name in pairs(v) do
                if type(name) == "string" then names[name] = true end
            end
        elseif k == "vars_prompt" and type(v) == "table" then
            for _, p in ipairs(v) do
                if type(p) == "table" and type(p.name) == "string" then names[p.name] = true end
            end
        end
        playbook_names(v, names, depth + 1)
    end
end

local function known_names(book, inv, extra)
    local names = {}
    for _, n in ipairs(SPECIALS) do names[n] = true end
    for n in pairs(expr.HELPERS) do names[n] = true end
    for n in pairs(extra or {}) do names[n] = true end
    playbook_names(book.source.value, names)
    -- imported and included steps files, roles, vars files
    for _, src in ipairs(book.sources or {}) do playbook_names(src.value, names) end
    for n in pairs(book.defined_names or {}) do names[n] = true end
    for _, h in pairs(inv.hosts) do
        for n in pairs(h.vars or {}) do names[n] = true end
    end
    for _, g in pairs(inv.groups) do
        for n in pairs(g.vars or {}) do names[n] = true end
    end
    return names
end

-- Returns a list of "FILE:LINE:COL: message" (empty when all is well).
function M.check(book, inv, extra)
    local errors = {}
    for _, play in ipairs(book.plays) do
        if play.hosts and not expr.has_template(play.hosts) then
            local ok, hosts = pcall(inv.select, inv, play.hosts)
            if ok and type(hosts) == "table" and #hosts == 0 then
                errors[#errors + 1] = play.hosts_where .. ": play '" .. play.name ..
                    "': hosts '" .. play.hosts .. "' matches no host of the inventory"
            end
        end
    end
    local names = known_names(book, inv, extra)
    local candidates = util.sorted_keys(names)
    local reported = {}
    for _, use in ipairs(book.expression_uses or {}) do
        local codes = use.kind == "template" and expr.template_codes(use.text) or { use.text }
        for _, code in ipairs(codes) do
            for _, n in ipairs(M.free_names(code)) do
                local key = use.where .. n
                if not names[n] and not reported[key] then
                    reported[key] = true
                    errors[#errors + 1] = use.where .. ": " .. use.label ..
                        ": undefined variable '" .. n .. "'" .. util.did_you_mean(n, candidates)
                end
            end
        end
    end
    playbook.sort_errors(errors)
    return errors
end

return M
