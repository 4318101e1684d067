-- inventory.ini: Ansible's INI inventory format ([group],
-- [group:vars], [group:children]); errors are FILE:LINE.
local util = require("cutover.util")
local hostnames = require("cutover.inventory.names")

local M = {}

-- A value written in INI: quoted -> text as written; unquoted: a whole
-- number -> integer, True/False -> boolean, and for ansible_* and
-- cutover_* variables true/false/yes/no (any case) -> boolean.
local function ini_value(name, raw, quoted)
    if quoted then return raw end
    if raw == "0" or raw:match("^%-?[1-9]%d*$") then
        local n = math.tointeger(tonumber(raw))
        if n then return n end
    end
    if raw == "True" then return true end
    if raw == "False" then return false end
    if name:match("^ansible_") or name:match("^cutover_") then
        local l = raw:lower()
        if l == "true" or l == "yes" then return true end
        if l == "false" or l == "no" then return false end
    end
    return raw
end
M.value = ini_value

local ini_words = util.config_words

local function is_var_name(s) return s:match("^[%a_][%w_]*$") ~= nil end

-- "NAME = VALUE" of a [group:vars] section -> name, value | nil, message
local function ini_assignment(line)
    local name, raw = line:match("^([^=]*)=(.*)$")
    if not name then return nil, "expected NAME=VALUE, got '" .. line .. "'" end
    name, raw = util.trim(name), util.trim(raw)
    if not is_var_name(name) then return nil, "bad variable name '" .. name .. "' in '" .. line .. "'" end
    local q = raw:sub(1, 1)
    if q == '"' or q == "'" then
        local close = raw:find(q, 2, true)
        if not close then return nil, "unclosed quote " .. q .. " in '" .. line .. "'" end
        local after = raw:sub(close + 1)
        if after ~= "" and not after:match("^%s+[#;]") then
            return nil, "text after the closing quote in '" .. line .. "'"
        end
        return name, raw:sub(2, close - 1)
    end
    raw = raw:gsub("%s+#.*$", "")
    return name, ini_value(name, raw, false)
end

local SECTION_KINDS = { "children", "vars" }

-- The reading of one INI text: r = { inv, path, lineno, found ({ line,
-- message }, sorted at the end), group and kind (the current section:
-- hosts, vars, children or skip), declared (groups with a [g] or
-- [g:children] section), vars_refs (group -> line of its first
-- [g:vars]), child_refs ({ child, line, parent }) }

local function bad(r, msg) r.found[#r.found + 1] = { r.lineno, r.path .. ":" .. r.lineno .. ": " .. msg } end

-- A [GROUP], [GROUP:vars] or [GROUP:children] line
local function section_header(r, line)
    local inner, rest = line:match("^%[([^%]]*)%](.*)$")
    local name, suffix
    if inner then name, suffix = inner:match("^([^:%s]+):?([^:%s]*)$") end
    if not inner or (rest ~= "" and not rest:match("^%s*[#;]")) or not name
        or (inner:find(":", 1, true) and suffix == "") then
        bad(r, "bad section header '" .. line .. "' (expected [GROUP], [GROUP:vars] or [GROUP:children])")
        r.group, r.kind = nil, "skip"
        return
    end
    suffix = suffix ~= "" and suffix or "hosts"
    if suffix ~= "hosts" and suffix ~= "vars" and suffix ~= "children" then
        bad(r, "section [" .. inner .. "]: unknown type '" .. suffix .. "' (expected children or vars)" ..
            util.did_you_mean(suffix, SECTION_KINDS))
        r.group, r.kind = nil, "skip"
        return
    end
    r.group, r.kind = name, suffix
    r.inv:group(name)
    if r.kind == "vars" then
        r.vars_refs[name] = r.vars_refs[name] or r.lineno
    else
        r.declared[name] = true
    end
end

-- A line of a [GROUP:children] section: one group name
local function child_line(r, line)
    local group = r.group
    local words, err = ini_words(line)
    if not words then bad(r, err)
    elseif #words ~= 1 then
        bad(r, "[" .. group .. ":children]: expected one group name per line, got '" .. line .. "'")
    else
        local child = words[1].text
        if child == group then
            bad(r, "[" .. group .. ":children]: a group cannot be its own child")
        else
            r.child_refs[#r.child_refs + 1] = { child = child, line = r.lineno, parent = group }
            r.inv:link(group, child, r.path .. ":" .. r.lineno)
        end
    end
end

-- A line of a hosts section: a host (or range, host:port) and NAME=VALUE
-- variables
local function host_line(r, line)
    local inv = r.inv
    local words, err = ini_words(line)
    if not words then bad(r, err); return end
    local names, port = hostnames.host_entry(words[1].text)
    if not names then bad(r, port); return end
    local vars, ok = {}, true
    if port then vars.ansible_port = port end
    for i = 2, #words do
        local w = words[i]
        local k, v = w.text:match("^([^=]*)=(.*)$")
        if not k then
            bad(r, "expected NAME=VALUE after the host name, got '" .. w.text .. "'")
            ok = false
        elseif not is_var_name(k) then
            bad(r, "bad variable name '" .. k .. "'")
            ok = false
        else
            vars[k] = ini_value(k, v, w.quoted)
        end
    end
    if ok then
        for _, hn in ipairs(names) do
            inv:add_to_group(hn, r.group)
            for k, v in pairs(vars) do inv.hosts[hn].vars[k] = v end
        end
    end
end

-- As Ansible: a [g:vars] or [p:children] entry must name a group this
-- file (or an earlier inventory source, `existed`) defines
local function undefined_groups(r, existed)
    local undefined, path, declared = r.found, r.path, r.declared
    for name, line in pairs(r.vars_refs) do
        if not existed[name] and not declared[name] then
            undefined[#undefined + 1] = { line, path .. ":" .. line .. ": section [" .. name ..
                ":vars]: group '" .. name .. "' is not defined (no [" .. name .. "] or [" .. name ..
                    ":children] section)" }
        end
    end
    for _, c in ipairs(r.child_refs) do
        if not existed[c.child] and not declared[c.child] then
            undefined[#undefined + 1] = { c.line, path .. ":" .. c.line .. ": [" .. c.parent ..
                ":children]: group '" .. c.child .. "' is not defined (no [" .. c.child .. "] or [" .. c.child ..
                    ":children] section)" }
        end
    end
end

-- Adds the groups and hosts of the INI text (read from path) to inv;
-- problems go to errors as FILE:LINE: message, in line order.
function M.load(inv, path, text, errors)
    local existed = {}
    for g in pairs(inv.groups) do existed[g] = true end
    local r = { inv = inv, path = path, lineno = 0, found = {}, group = "ungrouped", kind = "hosts",
                declared = {}, vars_refs = {}, child_refs = {} }
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        r.lineno = r.lineno + 1
        line = util.trim(line:gsub("\r$", ""))
        local first = line:sub(1, 1)
        if line == "" or first == "#" or first == ";" then
            -- blank or comment
        elseif first == "[" then
            section_header(r, line)
        elseif r.kind == "skip" then
            -- the lines of a bad section: already reported
        elseif r.kind == "vars" then
            local name, value = ini_assignment(line)
            if not name then bad(r, "[" .. r.group .. ":vars]: " .. value)
            else inv.groups[r.group].vars[name] = value end
        elseif r.kind == "children" then
            child_line(r, line)
        else
            host_line(r, line)
        end
    end
    undefined_groups(r, existed)
    local undefined = r.found
    for i, u in ipairs(undefined) do u[3] = i end
    table.sort(undefined, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        return a[3] < b[3]
    end)
    for _, u in ipairs(undefined) do errors[#errors + 1] = u[2] end
end

-- An INI file: named *.ini, or its first line that is not a comment does
-- not look like YAML (a section header, "host var=value", a bare name).
function M.looks(path, text)
    local lower = path:lower()
    if lower:match("%.ini$") then return true end
    if lower:match("%.ya?ml$") or lower:match("%.json$") then return false end
    for line in text:gmatch("[^\n]+") do
        local l = util.trim(line)
        local c = l:sub(1, 1)
        if l ~= "" and c ~= "#" and c ~= ";" then
            if c == "[" then return true end
            if l:match("^%-%-%-") or c == "{" or c == "-" then return false end
            if l:match("^[^%s=]+:%s") or l:match("^[^%s=]+:$") then return false end
            return true
        end
    end
    return false
end

return M
