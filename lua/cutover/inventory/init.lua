-- inventory: hosts, groups and their variables, and host patterns.
--
-- Sources (-i): Ansible's YAML format (all / hosts / vars / children),
-- Ansible's INI format ([group], [group:vars], [group:children]), a
-- folder of such files (merged in name order), or a host list "h1,h2,".
-- Beside the inventory, group_vars/NAME and host_vars/NAME (a YAML file,
-- NAME.yml, NAME.yaml, NAME.json, or a folder of them) add variables that
-- win over the ones written in the inventory itself.
-- Without -i the inventory is one host, localhost, on the local connection.
-- Every error names FILE:LINE (INI) or FILE:LINE:COL (YAML).
local source = require("cutover.load.source")
local util = require("cutover.util")
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local yaml_null = require("cutover.core.yaml").null

local Inventory = {}
Inventory.__index = Inventory

local M = {}

-- A host range (web[001:500]) may expand to at most this many names.
M.MAX_RANGE_HOSTS = 100000

local function new()
    -- files_read: every file the inventory was built from, in the order
    -- read (inventory files, group_vars, host_vars; saved plans digest them)
    local inv = setmetatable({ hosts = {}, groups = {}, order = {}, link_where = {}, files_read = {} }, Inventory)
    inv:group("all")
    inv:group("ungrouped")
    inv.groups.all.children.ungrouped = true
    inv.groups.ungrouped.parents.all = true
    return inv
end

function Inventory:group(name)
    local g = self.groups[name]
    if not g then
        g = { name = name, vars = {}, hosts = {}, children = {}, parents = {} }
        self.groups[name] = g
    end
    return g
end

function Inventory:host(name)
    local h = self.hosts[name]
    if not h then
        h = { name = name, vars = {}, groups = {} }
        self.hosts[name] = h
        self.order[#self.order + 1] = name
    end
    return h
end

function Inventory:add_to_group(hostname, groupname)
    local h = self:host(hostname)
    self:group(groupname).hosts[hostname] = true
    h.groups[groupname] = true
end

-- child becomes a child group of parent; where: "FILE:LINE" for errors.
function Inventory:link(parent, child, where)
    self:group(parent).children[child] = true
    self:group(child).parents[parent] = true
    local key = parent .. "\0" .. child
    if where and not self.link_where[key] then self.link_where[key] = where end
end

function M.localhost()
    local inv = new()
    inv:add_to_group("localhost", "ungrouped")
    inv.hosts.localhost.vars.ansible_connection = "local"
    inv.implicit = true
    return inv
end

-- Host names ----------------------------------------------------------------

local LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

-- "web[01:03].example.com" -> { "web01...", "web02...", "web03..." };
-- [START:END] or [START:END:STEP], numbers (zero padding kept) or letters;
-- several ranges in one name multiply.  Returns list | nil, message.
local function expand_ranges(s)
    local open = s:find("[", 1, true)
    if not open then return { s } end
    local close = s:find("]", open + 1, true)
    if not close then return nil, "unclosed range in '" .. s .. "' (expected [START:END])" end
    local inner = s:sub(open + 1, close - 1)
    local head, tail = s:sub(1, open - 1), s:sub(close + 1)
    local parts = {}
    for p in (inner .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = p end
    local what = "range [" .. inner .. "] in '" .. s .. "'"
    if #parts < 2 or #parts > 3 then
        return nil, "bad " .. what .. " (expected [START:END] or [START:END:STEP])"
    end
    local b, e, step = parts[1], parts[2], parts[3]
    if b == "" then b = "0" end
    if e == "" then return nil, "bad " .. what .. ": no END" end
    local st = 1
    if step and step ~= "" then
        st = step:match("^%d+$") and math.tointeger(tonumber(step))
        if not st or st < 1 then return nil, "bad " .. what .. ": STEP must be a whole number of at least 1" end
    end
    local values = {}
    if b:match("^%d+$") and e:match("^%d+$") then
        local fmt = "%d"
        if b:sub(1, 1) == "0" and #b > 1 then
            if #b ~= #e then
                return nil, "bad " .. what .. ": a zero-padded START and END must have the same number of digits"
            end
            fmt = "%0" .. #b .. "d"
        end
        local bi, ei = math.tointeger(tonumber(b)), math.tointeger(tonumber(e))
        if not bi or not ei then return nil, "bad " .. what .. ": number too large" end
        if bi > ei then return nil, "bad " .. what .. ": START is after END" end
        if (ei - bi) // st + 1 > M.MAX_RANGE_HOSTS then
            return nil, what .. " expands to more than " .. M.MAX_RANGE_HOSTS .. " hosts"
        end
        for i = bi, ei, st do values[#values + 1] = string.format(fmt, i) end
    elseif #b == 1 and #e == 1 and LETTERS:find(b, 1, true) and LETTERS:find(e, 1, true) then
        local bi, ei = LETTERS:find(b, 1, true), LETTERS:find(e, 1, true)
        if bi > ei then return nil, "bad " .. what .. ": START is after END" end
        for i = bi, ei, st do values[#values + 1] = LETTERS:sub(i, i) end
    else
        return nil, "bad " .. what .. " (expected numbers like [01:20] or letters like [a:f])"
    end
    local rest, err = expand_ranges(tail)
    if not rest then return nil, err end
    if #values * #rest > M.MAX_RANGE_HOSTS then
        return nil, "'" .. s .. "' expands to more than " .. M.MAX_RANGE_HOSTS .. " hosts"
    end
    local out = {}
    for _, v in ipairs(values) do
        for _, r in ipairs(rest) do out[#out + 1] = head .. v .. r end
    end
    return out
end
M.expand_ranges = expand_ranges

-- "host", "host:2222", "web[01:03]:22", "[::1]:22", "fe80::1"
-- -> names, port | nil, message
local function host_entry(s)
    local port
    local v6, v6port = s:match("^%[(%x*:%x*:[%x:.]*)%]:?(%d*)$")
    if v6 then
        s, port = v6, v6port ~= "" and v6port or nil
    else
        local head, p = s:match("^(.*):(%d+)$")
        if head and head ~= "" then
            local _, opens = head:gsub("%[", "")
            local _, closes = head:gsub("%]", "")
            if opens == closes and not (head:gsub("%b[]", "")):find(":", 1, true) then
                s, port = head, p
            end
        end
    end
    if port then
        port = math.tointeger(tonumber(port))
        if not port or port < 1 or port > 65535 then return nil, "bad port in '" .. s .. "'" end
    end
    if not s:find("[", 1, true) and s:find(":", 1, true) then return { s }, port end  -- IPv6
    local names, err = expand_ranges(s)
    if not names then return nil, err end
    return names, port
end
M.host_entry = host_entry

-- YAML ----------------------------------------------------------------------

local GROUP_KEYS = { hosts = true, vars = true, children = true }

local function is_mapping(v)
    return type(v) == "table" and (next(v) == nil or not util.is_list(v))
end

local function load_yaml(inv, path, errors)
    local src, err = source.read(path, "inventory")
    if not src then errors[#errors + 1] = err; return end
    local function bad(t, k, msg) errors[#errors + 1] = src:at(t, k) .. ": " .. msg end

    -- keys of a mapping in file order, so hosts run in inventory order
    local function in_file_order(t)
        local names = util.sorted_keys(t)
        local kp = src.keypos[t] or {}
        table.sort(names, function(a, b) return (kp[a] or 0) < (kp[b] or 0) end)
        return names
    end

    local function read_group(name, body, parent_t, parent_k)
        local g = inv:group(name)
        if body == nil or body == yaml_null then return end
        if not is_mapping(body) then
            bad(parent_t, parent_k, "group '" .. name .. "' must be a mapping with hosts, vars or children")
            return
        end
        for _, k in ipairs(util.sorted_keys(body)) do
            if not GROUP_KEYS[k] then
                bad(body, k, "group '" .. name .. "': unknown key '" .. tostring(k) .. "' (expected hosts, vars or children)" ..
                    util.did_you_mean(tostring(k), { "hosts", "vars", "children" }))
            end
        end
        local hosts = body.hosts
        if hosts ~= nil and hosts ~= yaml_null then
            if not is_mapping(hosts) then
                bad(body, "hosts", "group '" .. name .. "': 'hosts' must be a mapping of host names")
            else
                for _, key in ipairs(in_file_order(hosts)) do
                    local names, port = host_entry(tostring(key))
                    if not names then
                        bad(hosts, key, "group '" .. name .. "': " .. port)
                    else
                        local hv = hosts[key]
                        if hv ~= nil and hv ~= yaml_null and not is_mapping(hv) then
                            bad(hosts, key, "host '" .. tostring(key) .. "': its variables must be a mapping")
                            hv = nil
                        end
                        for _, hn in ipairs(names) do
                            inv:add_to_group(hn, name)
                            local h = inv.hosts[hn]
                            if port then h.vars.ansible_port = port end
                            if type(hv) == "table" then
                                for k, v in pairs(hv) do h.vars[k] = v end
                            end
                        end
                    end
                end
            end
        end
        if body.vars ~= nil and body.vars ~= yaml_null then
            if not is_mapping(body.vars) then
                bad(body, "vars", "group '" .. name .. "': 'vars' must be a mapping")
            else
                for k, v in pairs(body.vars) do g.vars[k] = v end
            end
        end
        local children = body.children
        if children ~= nil and children ~= yaml_null then
            if not is_mapping(children) then
                bad(body, "children", "group '" .. name .. "': 'children' must be a mapping of groups")
            else
                for _, cn in ipairs(in_file_order(children)) do
                    inv:link(name, tostring(cn), src:at(children, cn))
                    read_group(tostring(cn), children[cn], children, cn)
                end
            end
        end
    end

    local doc = src.value
    if doc == yaml_null then return end
    if type(doc) ~= "table" or util.is_list(doc) then
        errors[#errors + 1] = src:at(type(doc) == "table" and doc or nil) ..
            ": an inventory is a mapping of groups (usually 'all:')"
        return
    end
    for _, gname in ipairs(in_file_order(doc)) do
        local name = tostring(gname)
        -- top-level groups with no other parent go under "all" (finish)
        read_group(name, doc[gname], doc, gname)
    end
end

-- INI -----------------------------------------------------------------------

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
M.ini_value = ini_value

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

local function load_ini(inv, path, text, errors)
    local existed = {}
    for g in pairs(inv.groups) do existed[g] = true end
    local declared, vars_refs, child_refs = {}, {}, {}
    local group, kind = "ungrouped", "hosts"
    local lineno = 0
    local found = {}   -- { line, message }, sorted at the end
    local function bad(msg) found[#found + 1] = { lineno, path .. ":" .. lineno .. ": " .. msg } end
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        line = util.trim(line:gsub("\r$", ""))
        local first = line:sub(1, 1)
        if line == "" or first == "#" or first == ";" then
            -- blank or comment
        elseif first == "[" then
            local inner, rest = line:match("^%[([^%]]*)%](.*)$")
            local name, suffix
            if inner then name, suffix = inner:match("^([^:%s]+):?([^:%s]*)$") end
            if not inner or (rest ~= "" and not rest:match("^%s*[#;]")) or not name
                or (inner:find(":", 1, true) and suffix == "") then
                bad("bad section header '" .. line .. "' (expected [GROUP], [GROUP:vars] or [GROUP:children])")
                group, kind = nil, "skip"
            else
                suffix = suffix ~= "" and suffix or "hosts"
                if suffix ~= "hosts" and suffix ~= "vars" and suffix ~= "children" then
                    bad("section [" .. inner .. "]: unknown type '" .. suffix .. "' (expected children or vars)" ..
                        util.did_you_mean(suffix, SECTION_KINDS))
                    group, kind = nil, "skip"
                else
                    group, kind = name, suffix
                    inv:group(name)
                    if kind == "vars" then
                        vars_refs[name] = vars_refs[name] or lineno
                    else
                        declared[name] = true
                    end
                end
            end
        elseif kind == "skip" then
            -- the lines of a bad section: already reported
        elseif kind == "vars" then
            local name, value = ini_assignment(line)
            if not name then bad("[" .. group .. ":vars]: " .. value)
            else inv.groups[group].vars[name] = value end
        elseif kind == "children" then
            local words, err = ini_words(line)
            if not words then bad(err)
            elseif #words ~= 1 then
                bad("[" .. group .. ":children]: expected one group name per line, got '" .. line .. "'")
            else
                local child = words[1].text
                if child == group then
                    bad("[" .. group .. ":children]: a group cannot be its own child")
                else
                    child_refs[#child_refs + 1] = { child = child, line = lineno, parent = group }
                    inv:link(group, child, path .. ":" .. lineno)
                end
            end
        else
            local words, err = ini_words(line)
            if not words then bad(err)
            else
                local names, port = host_entry(words[1].text)
                if not names then bad(port)
                else
                    local vars, ok = {}, true
                    if port then vars.ansible_port = port end
                    for i = 2, #words do
                        local w = words[i]
                        local k, v = w.text:match("^([^=]*)=(.*)$")
                        if not k then
                            bad("expected NAME=VALUE after the host name, got '" .. w.text .. "'")
                            ok = false
                        elseif not is_var_name(k) then
                            bad("bad variable name '" .. k .. "'")
                            ok = false
                        else
                            vars[k] = ini_value(k, v, w.quoted)
                        end
                    end
                    if ok then
                        for _, hn in ipairs(names) do
                            inv:add_to_group(hn, group)
                            for k, v in pairs(vars) do inv.hosts[hn].vars[k] = v end
                        end
                    end
                end
            end
        end
    end
    -- as Ansible: a [g:vars] or [p:children] entry must name a group this
    -- file (or an earlier inventory source) defines
    local undefined = found
    for name, line in pairs(vars_refs) do
        if not existed[name] and not declared[name] then
            undefined[#undefined + 1] = { line, path .. ":" .. line .. ": section [" .. name ..
                ":vars]: group '" .. name .. "' is not defined (no [" .. name .. "] or [" .. name .. ":children] section)" }
        end
    end
    for _, r in ipairs(child_refs) do
        if not existed[r.child] and not declared[r.child] then
            undefined[#undefined + 1] = { r.line, path .. ":" .. r.line .. ": [" .. r.parent ..
                ":children]: group '" .. r.child .. "' is not defined (no [" .. r.child .. "] or [" .. r.child .. ":children] section)" }
        end
    end
    for i, u in ipairs(undefined) do u[3] = i end
    table.sort(undefined, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        return a[3] < b[3]
    end)
    for _, u in ipairs(undefined) do errors[#errors + 1] = u[2] end
end

-- Sources -------------------------------------------------------------------

-- An INI file: named *.ini, or its first line that is not a comment does
-- not look like YAML (a section header, "host var=value", a bare name).
local function looks_ini(path, text)
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
M.looks_ini = looks_ini

local function load_file(inv, path, errors)
    inv.files_read[#inv.files_read + 1] = path
    local text, err = source.read_text(path, "inventory")
    if not text then
        errors[#errors + 1] = err
        return
    end
    if text:sub(1, 2) == "#!" then
        errors[#errors + 1] = path .. ":1: inventory scripts are not supported (give a YAML or INI file)"
        return
    end
    if looks_ini(path, text) then load_ini(inv, path, text, errors)
    else load_yaml(inv, path, errors) end
end

-- What a folder inventory leaves out (as Ansible's defaults).
local IGNORED_NAMES = { group_vars = true, host_vars = true, vars_plugins = true }
local IGNORED_ENDINGS = { "~", ".orig", ".bak", ".retry", ".swp", ".pyc", ".pyo", ".cfg", ".md", ".txt", ".rst", ".rpm" }

local function ignored(name)
    if name:sub(1, 1) == "." or IGNORED_NAMES[name] then return true end
    for _, e in ipairs(IGNORED_ENDINGS) do
        if name:sub(-#e) == e then return true end
    end
    return false
end

local function load_dir(inv, dir, errors, depth)
    if depth > 16 then errors[#errors + 1] = dir .. ": inventory folders nested too deep"; return end
    local names, err = fs.list(dir)
    if not names then errors[#errors + 1] = err; return end
    for _, n in ipairs(names) do
        if not ignored(n) then
            local p = dir .. "/" .. n
            local st = fs.stat(p, true)
            if st and st.type == "directory" then load_dir(inv, p, errors, depth + 1)
            elseif st and st.type == "file" then load_file(inv, p, errors) end
        end
    end
end

local function load_host_list(inv, list, errors)
    for item in list:gmatch("[^,]+") do
        item = util.trim(item)
        if item ~= "" then
            local names, port = host_entry(item)
            if not names then
                errors[#errors + 1] = "host list '" .. list .. "': " .. port
            else
                for _, hn in ipairs(names) do
                    inv:add_to_group(hn, "ungrouped")
                    if port then inv.hosts[hn].vars.ansible_port = port end
                end
            end
        end
    end
end

-- group_vars/ and host_vars/ ------------------------------------------------

local VAR_EXTS = { "", ".yml", ".yaml", ".json" }

local function vars_file_ok(name)
    return not name:find(".", 1, true) or name:match("%.ya?ml$") or name:match("%.json$")
end

local function dir_vars_files(dir, out)
    for _, n in ipairs(fs.list(dir) or {}) do
        if n:sub(1, 1) ~= "." and not ignored(n) then
            local p = dir .. "/" .. n
            local st = fs.stat(p, true)
            if st and st.type == "directory" then dir_vars_files(p, out)
            elseif st and st.type == "file" and vars_file_ok(n) then out[#out + 1] = p end
        end
    end
    return out
end

-- As Ansible: the first of NAME, NAME.yml, NAME.yaml, NAME.json that
-- exists; a folder gives all its files, in name order.
local function vars_files(dir, name)
    for _, ext in ipairs(VAR_EXTS) do
        local p = dir .. "/" .. name .. ext
        local st = fs.stat(p, true)
        if st and st.type == "directory" then return dir_vars_files(p, {}) end
        if st then return { p } end
    end
    return {}
end

local function merge_vars_files(files, target, what, errors, read)
    for _, p in ipairs(files) do
        if read then read[#read + 1] = p end
        local src, err = source.read(p, what)
        if not src then
            errors[#errors + 1] = err
        elseif src.value ~= yaml_null then
            if not is_mapping(src.value) then
                errors[#errors + 1] = src:at(type(src.value) == "table" and src.value or nil) ..
                    ": " .. what .. " must be a mapping of variable names to values"
            else
                for k, v in pairs(src.value) do target[k] = v end
            end
        end
    end
end

-- Adds basedir/group_vars/* and basedir/host_vars/* to the groups and
-- hosts they name (over the inventory's own values).  Returns true |
-- nil, messages.
function Inventory:load_vars_dirs(basedir)
    local errors = {}
    local gdir, hdir = basedir .. "/group_vars", basedir .. "/host_vars"
    local gst, hst = fs.stat(gdir, true), fs.stat(hdir, true)
    if gst and gst.type == "directory" then
        for _, name in ipairs(util.sorted_keys(self.groups)) do
            merge_vars_files(vars_files(gdir, name), self.groups[name].vars, "group_vars file", errors,
                             self.files_read)
        end
    end
    if hst and hst.type == "directory" then
        for _, name in ipairs(self.order) do
            if not self.hosts[name].implicit then
                merge_vars_files(vars_files(hdir, name), self.hosts[name].vars, "host_vars file", errors,
                                 self.files_read)
            end
        end
    end
    if #errors > 0 then return nil, table.concat(errors, "\n") end
    return true
end

-- After all sources: top groups under "all", "ungrouped" exactly the hosts
-- in no other group, and no group its own ancestor.
local function finish(inv, errors)
    for hn in pairs(inv.groups.all.hosts) do inv.hosts[hn].groups.all = nil end
    inv.groups.all.hosts = {}
    for name, g in pairs(inv.groups) do
        if name ~= "all" and next(g.parents) == nil then inv:link("all", name) end
    end
    for _, hn in ipairs(inv.order) do
        local h = inv.hosts[hn]
        local other = false
        for g in pairs(h.groups) do if g ~= "ungrouped" then other = true end end
        if other then
            h.groups.ungrouped = nil
            inv.groups.ungrouped.hosts[hn] = nil
        else
            inv:add_to_group(hn, "ungrouped")
        end
    end
    local state = {}
    local function visit(name, path)
        state[name] = "open"
        path[#path + 1] = name
        for _, c in ipairs(util.sorted_keys(inv.groups[name].children)) do
            if state[c] == "open" then
                local from
                for i, p in ipairs(path) do if p == c then from = i end end
                local loop = {}
                for i = from, #path do loop[#loop + 1] = path[i] end
                loop[#loop + 1] = c
                local where = inv.link_where[name .. "\0" .. c]
                errors[#errors + 1] = (where and where .. ": " or "") .. "group '" .. c .. "' is its own ancestor (" ..
                    table.concat(loop, " > ") .. ")"
                return false
            elseif not state[c] then
                if not visit(c, path) then return false end
            end
        end
        path[#path] = nil
        state[name] = "done"
        return true
    end
    for _, name in ipairs(util.sorted_keys(inv.groups)) do
        if not state[name] and not visit(name, {}) then break end
    end
end

-- Connection variables whose bad value would otherwise fall back to a
-- default (port 22, a 30 s timeout): checked once everything is loaded,
-- unless the value is a template (checked when the host connects).
local CHECKED_VARS = {
    ansible_port = util.port_number, ansible_ssh_port = util.port_number,
    ansible_timeout = util.seconds, ansible_ssh_timeout = util.seconds,
}

local function check_values(inv, errors)
    local function check(what, vars)
        for _, k in ipairs(util.sorted_keys(CHECKED_VARS)) do
            local v = vars[k]
            if v ~= nil and v ~= yaml_null and not (type(v) == "string" and v:find("{{", 1, true)) then
                local ok, err = CHECKED_VARS[k](k, v)
                if not ok then errors[#errors + 1] = inv.path .. ": " .. what .. ": " .. err end
            end
        end
    end
    for _, g in ipairs(util.sorted_keys(inv.groups)) do check("group '" .. g .. "'", inv.groups[g].vars) end
    for _, h in ipairs(inv.order) do check("host '" .. h .. "'", inv.hosts[h].vars) end
end

-- path: a YAML or INI file, a folder of them, or "h1,h2," (a text with a
-- comma that is not a file).  Returns the inventory | nil, message(s).
function M.load(path)
    local inv = new()
    inv.path = path
    local errors = {}
    local st = fs.stat(path, true)
    local basedir
    if not st and path:find(",", 1, true) then
        load_host_list(inv, path, errors)
    elseif st and st.type == "directory" then
        load_dir(inv, path, errors, 1)
        basedir = path
    else
        load_file(inv, path, errors)
        basedir = path:match("^(.*)/[^/]*$") or "."
        if basedir == "" then basedir = "/" end
    end
    if #errors == 0 then finish(inv, errors) end
    if #errors == 0 and basedir then
        local ok, err = inv:load_vars_dirs(basedir)
        if not ok then errors[#errors + 1] = err end
    end
    if #errors == 0 then check_values(inv, errors) end
    if #errors > 0 then return nil, table.concat(errors, "\n") end
    return inv
end

-- --limit @FILE: one host name or pattern per line (# comments) -> the
-- pattern "a,b,c".  Any other value is returned as it is.
function M.limit_pattern(limit)
    if type(limit) ~= "string" or limit:sub(1, 1) ~= "@" then return limit end
    local path = limit:sub(2)
    local text, err = fs.read(path, source.MAX_BYTES)
    if not text then return nil, "--limit " .. err end
    local terms = {}
    for line in text:gmatch("[^\n]+") do
        local l = util.trim(line)
        if l ~= "" and l:sub(1, 1) ~= "#" then terms[#terms + 1] = l end
    end
    if #terms == 0 then return nil, "--limit " .. path .. ": the file names no host" end
    return table.concat(terms, ",")
end

-- Every group a host belongs to, directly or through children.
function Inventory:groups_of(hostname)
    local out = {}
    local function up(gname)
        if out[gname] then return end
        out[gname] = true
        for p in pairs(self.groups[gname].parents) do up(p) end
    end
    for g in pairs(self.hosts[hostname].groups) do up(g) end
    if not self.hosts[hostname].implicit then out.all = true end
    return out
end

local function depth(self, gname, seen)
    seen = seen or {}
    if gname == "all" or seen[gname] then return 0 end
    seen[gname] = true
    local d = 0
    for p in pairs(self.groups[gname].parents) do d = math.max(d, depth(self, p, seen) + 1) end
    return d
end

-- Group variable layers for a host, highest precedence first: deeper
-- groups (children) above their parents, ties by name (later wins).
function Inventory:group_layers(hostname)
    local groups = {}
    for g in pairs(self:groups_of(hostname)) do groups[#groups + 1] = g end
    table.sort(groups, function(a, b)
        local da, db = depth(self, a), depth(self, b)
        if da ~= db then return da > db end
        return a > b
    end)
    local layers = {}
    for _, g in ipairs(groups) do
        if next(self.groups[g].vars) then layers[#layers + 1] = { vars = self.groups[g].vars } end
    end
    return layers
end

local glob_match = util.glob_match

-- Hosts matching one term (a name, a group, a glob, "all").
function Inventory:match_term(term)
    local out = {}
    if term == "all" or term == "*" then
        for _, h in ipairs(self.order) do out[h] = true end
        return out
    end
    if self.groups[term] then
        for h in pairs(self.groups[term].hosts) do out[h] = true end
        local function down(g, seen)
            if seen[g] then return end
            seen[g] = true
            for hn in pairs(self.groups[g].hosts) do out[hn] = true end
            for c in pairs(self.groups[g].children) do down(c, seen) end
        end
        down(term, {})
        return out
    end
    if self.hosts[term] then out[term] = true; return out end
    if term == "localhost" then
        -- Implicit, as in Ansible: usable by name, not part of "all".
        local h = { name = "localhost", vars = { ansible_connection = "local" }, groups = {}, implicit = true }
        self.hosts.localhost = h
        out.localhost = true
        return out
    end
    if term:find("[%*%?]") then
        for _, h in ipairs(self.order) do if glob_match(term, h) then out[h] = true end end
        for g in pairs(self.groups) do
            if glob_match(term, g) then for h in pairs(self:match_term(g)) do out[h] = true end end
        end
    end
    return out
end

-- "web:db:!web3", "all,&prod": union, intersection (&), exclusion (!).
-- Returns the host names in inventory order, and the terms that matched
-- nothing (for a warning).
function Inventory:select(pattern)
    local chosen, inter, unknown = {}, nil, {}
    local excluded = {}
    for term in tostring(pattern):gmatch("[^,:]+") do
        term = util.trim(term)
        if term ~= "" then
            local op = term:sub(1, 1)
            local name = (op == "!" or op == "&") and term:sub(2) or term
            local m = self:match_term(name)
            if next(m) == nil then unknown[#unknown + 1] = name end
            if op == "!" then for h in pairs(m) do excluded[h] = true end
            elseif op == "&" then
                inter = inter or {}
                inter[#inter + 1] = m
            else for h in pairs(m) do chosen[h] = true end end
        end
    end
    local out = {}
    local order = self.order
    if self.hosts.localhost and self.hosts.localhost.implicit then
        order = util.copy(order)
        order[#order + 1] = "localhost"
    end
    for _, h in ipairs(order) do
        local ok = chosen[h] and not excluded[h]
        for _, m in ipairs(inter or {}) do if not m[h] then ok = false end end
        if ok then out[#out + 1] = h end
    end
    return out, unknown
end

-- Output: cutover inventory --list / --graph / --host ---------------------

-- A host's variables from the inventory: its groups' (parents first,
-- children over parents) and then its own.
function Inventory:hostvars(name)
    local out = {}
    local h = self.hosts[name]
    if not h.implicit then
        local layers = self:group_layers(name)
        for i = #layers, 1, -1 do
            for k, v in pairs(layers[i].vars) do out[k] = v end
        end
    end
    for k, v in pairs(h.vars) do out[k] = v end
    return out
end

-- The inventory in the JSON shape of `ansible-inventory --list`:
-- {"_meta": {"hostvars": {HOST: {...}}}, "all": {"children": [...]},
--  GROUP: {"hosts": [...], "vars": {...}, "children": [...]}}.
-- Host variables include what they get from their groups; a group's
-- entry also shows its own vars.  Empty keys are left out.
function Inventory:list()
    local out = { _meta = { hostvars = {} } }
    for _, hn in ipairs(self.order) do
        if not self.hosts[hn].implicit then out._meta.hostvars[hn] = self:hostvars(hn) end
    end
    for name, g in pairs(self.groups) do
        local e = {}
        local hosts = {}
        for _, hn in ipairs(self.order) do
            if g.hosts[hn] and not self.hosts[hn].implicit then hosts[#hosts + 1] = hn end
        end
        if #hosts > 0 then e.hosts = hosts end
        local children = util.sorted_keys(g.children)
        if #children > 0 then e.children = children end
        if next(g.vars) then e.vars = g.vars end
        if next(e) or name == "all" then out[name] = e end
    end
    return out
end

function Inventory:list_json()
    return json.encode(self:list(), true) .. "\n"
end

-- The group tree as `ansible-inventory --graph [GROUP]` draws it: groups
-- as @NAME:, child groups before hosts, both in name order.
function Inventory:graph(root)
    root = root or "all"
    if not self.groups[root] then
        return nil, "no group '" .. root .. "'" .. util.did_you_mean(root, util.sorted_keys(self.groups))
    end
    local lines = {}
    local function entry(s, depth)
        lines[#lines + 1] = depth > 0 and (string.rep("  |", depth) .. "--" .. s) or s
    end
    local function walk(name, depth)
        local g = self.groups[name]
        entry("@" .. name .. ":", depth)
        for _, c in ipairs(util.sorted_keys(g.children)) do walk(c, depth + 1) end
        if name ~= "all" then
            for _, hn in ipairs(util.sorted_keys(g.hosts)) do entry(hn, depth + 1) end
        end
    end
    walk(root, 0)
    return table.concat(lines, "\n") .. "\n"
end

-- One host's variables as JSON (`--host HOST`).
function Inventory:host_json(name)
    local h = self.hosts[name]
    if not h then
        return nil, "no host '" .. name .. "'" .. util.did_you_mean(name, self.order)
    end
    return json.encode(self:hostvars(name), true) .. "\n"
end

return M
