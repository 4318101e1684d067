-- inventory.yaml: Ansible's YAML inventory format (all / hosts / vars /
-- children), read with positions so every error is FILE:LINE:COL.
local source = require("cutover.load.source")
local util = require("cutover.util")
local hostnames = require("cutover.inventory.names")
local yaml_null = require("cutover.core.yaml").null

local M = {}

local GROUP_KEYS = { hosts = true, vars = true, children = true }

-- (also the vars files' check, vars_dirs.lua)
local function is_mapping(v)
    return type(v) == "table" and (next(v) == nil or not util.is_list(v))
end

-- The reading of one file: rd = { inv, src (source.read's), errors }

local function bad(rd, t, k, msg) rd.errors[#rd.errors + 1] = rd.src:at(t, k) .. ": " .. msg end

-- keys of a mapping in file order, so hosts run in inventory order
local function in_file_order(rd, t)
    local names = util.sorted_keys(t)
    local kp = rd.src.keypos[t] or {}
    table.sort(names, function(a, b) return (kp[a] or 0) < (kp[b] or 0) end)
    return names
end

-- A group's hosts: mapping of host names (ranges, host:port) to their
-- variables
local function read_hosts(rd, name, body)
    local inv = rd.inv
    local hosts = body.hosts
    if hosts == nil or hosts == yaml_null then return end
    if not is_mapping(hosts) then
        bad(rd, body, "hosts", "group '" .. name .. "': 'hosts' must be a mapping of host names")
        return
    end
    for _, key in ipairs(in_file_order(rd, hosts)) do
        local names, port = hostnames.host_entry(tostring(key))
        if not names then
            bad(rd, hosts, key, "group '" .. name .. "': " .. port)
        else
            local hv = hosts[key]
            if hv ~= nil and hv ~= yaml_null and not is_mapping(hv) then
                bad(rd, hosts, key, "host '" .. tostring(key) .. "': its variables must be a mapping")
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

-- A group (hosts, vars, children; the children read in turn)
local function read_group(rd, name, body, parent_t, parent_k)
    local inv = rd.inv
    local g = inv:group(name)
    if body == nil or body == yaml_null then return end
    if not is_mapping(body) then
        bad(rd, parent_t, parent_k, "group '" .. name .. "' must be a mapping with hosts, vars or children")
        return
    end
    for _, k in ipairs(util.sorted_keys(body)) do
        if not GROUP_KEYS[k] then
            bad(rd, body, k, "group '" .. name .. "': unknown key '" .. tostring(k) ..
                "' (expected hosts, vars or children)" ..
                util.did_you_mean(tostring(k), { "hosts", "vars", "children" }))
        end
    end
    read_hosts(rd, name, body)
    if body.vars ~= nil and body.vars ~= yaml_null then
        if not is_mapping(body.vars) then
            bad(rd, body, "vars", "group '" .. name .. "': 'vars' must be a mapping")
        else
            for k, v in pairs(body.vars) do g.vars[k] = v end
        end
    end
    local children = body.children
    if children ~= nil and children ~= yaml_null then
        if not is_mapping(children) then
            bad(rd, body, "children", "group '" .. name .. "': 'children' must be a mapping of groups")
        else
            for _, cn in ipairs(in_file_order(rd, children)) do
                inv:link(name, tostring(cn), rd.src:at(children, cn))
                read_group(rd, tostring(cn), children[cn], children, cn)
            end
        end
    end
end

-- Adds the groups and hosts of the YAML file path to inv; problems go
-- to errors as FILE:LINE:COL: message.
function M.load(inv, path, errors)
    local src, err = source.read(path, "inventory")
    if not src then errors[#errors + 1] = err; return end
    local rd = { inv = inv, src = src, errors = errors }
    local doc = src.value
    if doc == yaml_null then return end
    if type(doc) ~= "table" or util.is_list(doc) then
        errors[#errors + 1] = src:at(type(doc) == "table" and doc or nil) ..
            ": an inventory is a mapping of groups (usually 'all:')"
        return
    end
    for _, gname in ipairs(in_file_order(rd, doc)) do
        local name = tostring(gname)
        -- top-level groups with no other parent go under "all" (finish)
        read_group(rd, name, doc[gname], doc, gname)
    end
end
M.is_mapping = is_mapping

return M
