-- ssh_config: the subset of the OpenSSH client configuration
-- (~/.ssh/config, or the file given with -F) that cutover honours.
--
--   Host PATTERN...      globs (* ?), !negation; case-insensitive
--   Match CRITERIA...    all, final, host, originalhost, user, localuser
--                        (each may be negated with !; arguments are
--                        comma-separated pattern lists); exec and any
--                        other criterion are refused (FILE:LINE)
--   HostName NAME        %h (the name looked up) and %% tokens
--   Port N
--   User NAME
--   IdentityFile PATH    several allowed (they accumulate); ~ and the
--                        tokens %d %u %h %r %p %n %% are expanded
--   ProxyJump [user@]host[:port][,...] | none   (up to MAX_HOPS hops)
--   ProxyCommand CMD | none   the rest of the line; tokens %h %p %r %n %%
--                        (expanded by the connection); the first of
--                        ProxyJump and ProxyCommand obtained wins
--   Include PATH...      relative paths are under ~/.ssh; globs
--
-- Keywords are case-insensitive; "Keyword value" and "Keyword=value"
-- both work; values may be quoted ("..." or '...'); a # at the start of a
-- word begins a comment.  As in OpenSSH, the first value obtained for a
-- keyword wins (IdentityFile accumulates instead, without duplicates).  A
-- Match line is evaluated once, where it stands, against the settings
-- obtained above it; a file with "Match final" is read a second time on
-- top of the first pass's settings, final matching only then.  Any other
-- keyword is ignored: OpenSSH has many, and most do not apply to cutover.
--
--   ssh_config.load(path [, {home=, user=}]) -> config | nil, "FILE:LINE: message"
--   config:lookup(host [, {user=, port=}]) ->
--       { hostname=, port=, user=, identity_files={...}, proxy_jump={ {host=, port=, user=}, ... },
--         proxy_command= }
--   (a field is nil when the configuration does not set it)
local fs = require("cutover.core.fs")
local sys = require("cutover.core.sys")
local util = require("cutover.util")

local M = {}

local Config = {}
Config.__index = Config

local MAX_DEPTH = 16          -- nested Include, as OpenSSH
local MAX_FILE = 1024 * 1024

-- keyword (lower case) -> canonical name
local KNOWN = {
    host = "Host", match = "Match", hostname = "HostName", port = "Port",
    user = "User", identityfile = "IdentityFile", proxyjump = "ProxyJump",
    proxycommand = "ProxyCommand", include = "Include",
}

local TOKENS = {
    hostname = { h = true, ["%"] = true },
    identityfile = { d = true, u = true, h = true, r = true, p = true, n = true, ["%"] = true },
    proxycommand = { h = true, p = true, r = true, n = true, ["%"] = true },
}

-- The arguments of a line as words (util.config_words, text only).
local function split_words(s)
    local words, err = util.config_words(s)
    if not words then return nil, err end
    for i, w in ipairs(words) do words[i] = w.text end
    return words
end

local glob_match = util.glob_match

-- The name checks and the ProxyCommand expansion (ssh_names.lua)
local names = require("cutover.ssh_names")
local expand_tokens = names.expand_tokens
M.check_hostname, M.check_user = names.check_hostname, names.check_user
M.port_number, M.expand_proxy_command = names.port_number, names.expand_proxy_command

-- A pattern list (Host, and Match's criteria): true when a pattern matches and no negated one
-- does (host names case-insensitively, user names exactly).
local function list_matches(patterns, value, fold)
    if fold then value = value:lower() end
    local hit = false
    for _, p in ipairs(patterns) do
        local neg = p:sub(1, 1) == "!"
        if neg then p = p:sub(2) end
        if fold then p = p:lower() end
        if glob_match(p, value) then
            if neg then return false end
            hit = true
        end
    end
    return hit
end

-- Host patterns: true when some positive pattern matches and no
-- negated one does (a line of only negations matches nothing).
local function host_matches(patterns, host)
    return list_matches(patterns, host, true)
end
M.host_matches = host_matches

-- Paths matching a glob (wildcards * ? in any component), sorted.
-- Names starting with "." are matched only by a pattern starting with ".".
local function glob_paths(path)
    if not path:find("[%*%?]") then
        return fs.stat(path, true) and { path } or {}
    end
    local parts = {}
    for p in path:gmatch("[^/]+") do parts[#parts + 1] = p end
    local found = { path:sub(1, 1) == "/" and "" or "." }
    for idx, part in ipairs(parts) do
        local next_found = {}
        for _, base in ipairs(found) do
            local dir = base == "" and "/" or base
            if part:find("[%*%?]") then
                for _, name in ipairs(fs.list(dir) or {}) do
                    if glob_match(part, name) and (name:sub(1, 1) ~= "." or part:sub(1, 1) == ".") then
                        next_found[#next_found + 1] = base .. "/" .. name
                    end
                end
            else
                next_found[#next_found + 1] = base .. "/" .. part
            end
        end
        if idx < #parts then
            local dirs = {}
            for _, p in ipairs(next_found) do
                local st = fs.stat(p, true)
                if st and st.type == "directory" then dirs[#dirs + 1] = p end
            end
            next_found = dirs
        end
        found = next_found
    end
    local out = {}
    for _, p in ipairs(found) do
        local st = fs.stat(p, true)
        if st and st.type == "file" then
            out[#out + 1] = (path:sub(1, 1) ~= "/" and p:sub(1, 2) == "./") and p:sub(3) or p
        end
    end
    table.sort(out)
    return out
end

-- "[user@]host[:port]" (or ssh://[user@]host[:port]) -> {host=, port=, user=}
local function parse_hop(s)
    s = s:gsub("^ssh://", "")
    local user, rest = s:match("^(.*)@([^@]*)$")
    if not user then rest = s end
    if user == "" then return nil, "empty user name in '" .. s .. "'" end
    local host, port = rest:match("^%[([^%]]+)%]:?(%d*)$")
    if not host then
        host, port = rest:match("^([^:]+):(%d+)$")
        if not host then
            if rest:find(":", 1, true) and not rest:find(":.*:") then
                return nil, "bad port in '" .. s .. "'"
            end
            host, port = rest, ""
        end
    end
    if host == "" then return nil, "no host in '" .. s .. "'" end
    local p
    if port ~= "" then
        p = math.tointeger(tonumber(port))
        if not p or p < 1 or p > 65535 then return nil, "bad port in '" .. s .. "'" end
    end
    return { host = host, port = p, user = user }
end

M.MAX_HOPS = 8

-- A ProxyJump value, "hop[,hop...]" -> { hop, ... } in the order they
-- are reached (as ssh -J: the first hop is connected to directly).
function M.parse_jump(s)
    local hops = {}
    for part in (s .. ","):gmatch("([^,]*),") do
        if part == "" then return nil, "empty hop in '" .. s .. "'" end
        local hop, err = parse_hop(part)
        if not hop then return nil, err end
        hops[#hops + 1] = hop
    end
    if #hops > M.MAX_HOPS then
        return nil, "more than " .. M.MAX_HOPS .. " hops in '" .. s .. "'"
    end
    return hops
end

local function check_tokens(s, allowed)
    local i = 1
    while true do
        local at = s:find("%", i, true)
        if not at then return true end
        local t = s:sub(at + 1, at + 1)
        if t == "" then return nil, "'%' at the end of '" .. s .. "'" end
        if not allowed[t] then return nil, "unknown token '%" .. t .. "' in '" .. s .. "'" end
        i = at + 2
    end
end

local MATCH_KNOWN = { all = true, final = true, host = true,
                      originalhost = true, user = true, localuser = true }

-- A Match line's words -> { {name=, negate=, patterns=}, ..., final= }
-- | nil, message.  As OpenSSH: every criterion must hold; "all" stands
-- alone (after "final" at most).
local function parse_match(words)
    if #words == 0 then return nil, "Match needs criteria" end
    local crit = { final = false }
    local i = 1
    while i <= #words do
        local w = words[i]
        local negate = w:sub(1, 1) == "!"
        local name = (negate and w:sub(2) or w):lower()
        if name == "exec" then
            return nil, "Match exec is not supported: cutover does not run"
                .. " commands from the SSH configuration (use Host or"
                .. " Match host/user)"
        elseif not MATCH_KNOWN[name] then
            return nil, "Match " .. name .. " is not supported (cutover"
                .. " evaluates all, final, host, originalhost, user and"
                .. " localuser)"
        end
        local c = { name = name, negate = negate }
        if name == "all" then
            local before = #crit - (crit.final and 1 or 0)
            if before > 0 or i < #words then
                return nil, "Match all cannot be combined with other criteria"
            end
        elseif name == "final" then
            crit.final = true
        else
            i = i + 1
            local list = words[i]
            if not list then
                return nil, "Match " .. name .. " needs a pattern list"
            end
            c.patterns = {}
            for p in (list .. ","):gmatch("([^,]*),") do
                c.patterns[#c.patterns + 1] = p
            end
        end
        crit[#crit + 1] = c
        i = i + 1
    end
    return crit
end

-- The value of a setting line (key: its keyword in lower case, name:
-- as written in messages) -> value (false: "none") | nil, message.
local function setting_value(key, name, words)
    if #words == 0 then return nil, name .. " needs a value" end
    if #words > 1 then
        return nil, name .. " takes one value, got " .. #words
    end
    local value = words[1]
    if key == "port" then
        local p = value:match("^%d+$") and math.tointeger(tonumber(value))
        if not p or p < 1 or p > 65535 then
            return nil, "Port must be a number from 1 to 65535, got '" .. value .. "'"
        end
        value = p
    elseif key == "proxycommand" then
        if value == "" then return nil, "ProxyCommand needs a value" end
        if value:lower() == "none" then
            value = false
        else
            local ok, terr = check_tokens(value, TOKENS.proxycommand)
            if not ok then return nil, "ProxyCommand: " .. terr end
        end
    elseif key == "proxyjump" then
        if value:lower() == "none" then
            value = false
        else
            local j, jerr = M.parse_jump(value)
            if not j then return nil, "ProxyJump: " .. jerr end
            value = j
        end
    elseif TOKENS[key] then
        local ok, terr = check_tokens(value, TOKENS[key])
        if not ok then return nil, name .. ": " .. terr end
    end
    return value
end

local read_file

-- An Include line's files (relative paths are under ~/.ssh; globs),
-- read in order under the conditions of the block it stands in.
local function include(cfg, words, current, depth)
    for _, w in ipairs(words) do
        local p = w
        if p:sub(1, 2) == "~/" then p = cfg.home .. p:sub(2)
        elseif p:sub(1, 1) ~= "/" then p = cfg.home .. "/.ssh/" .. p end
        for _, f in ipairs(glob_paths(p)) do
            local ok, ierr = read_file(cfg, f, current, depth + 1)
            if not ok then return nil, ierr end
        end
    end
    return true
end

-- Reads one file into cfg.entries.  conds: what must all hold for the
-- file's lines to apply (from enclosing blocks): Host pattern lists, and
-- Match lines ({match=criteria}, evaluated at their own entry).
function read_file(cfg, path, conds, depth)
    if depth > MAX_DEPTH then return nil, path .. ": Include nested more than " .. MAX_DEPTH .. " deep" end
    local text, err = fs.read(path, MAX_FILE)
    if not text then return nil, err end
    local current = conds
    local lineno = 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        line = line:gsub("\r$", "")
        local where = path .. ":" .. lineno .. ": "
        local body = line:match("^%s*(.-)%s*$")
        if body ~= "" and body:sub(1, 1) ~= "#" then
            local kw, rest = body:match("^([^%s=]+)%s*=%s*(.*)$")
            if not kw then kw, rest = body:match("^([^%s=]+)%s*(.*)$") end
            if not kw then return nil, where .. "cannot read this line" end
            local key = kw:lower()
            -- ProxyCommand's value is the rest of the line, for the shell
            local words, werr
            if key == "proxycommand" then words = { rest } else words, werr = split_words(rest) end
            if not words then return nil, where .. (KNOWN[key] and (KNOWN[key] .. ": " .. werr) or werr) end
            local name = KNOWN[key]
            if key == "host" then
                if #words == 0 then return nil, where .. "Host needs at least one pattern" end
                current = { table.unpack(conds) }
                current[#current + 1] = words
            elseif key == "match" then
                local crit, merr = parse_match(words)
                if not crit then return nil, where .. merr end
                if crit.final then cfg.final_pass = true end
                local m = { match = crit }
                -- the line's own entry: evaluated there, in file order
                cfg.entries[#cfg.entries + 1] = { key = "match", match = m }
                current = { table.unpack(conds) }
                current[#current + 1] = m
            elseif key == "include" then
                if #words == 0 then return nil, where .. "Include needs a path" end
                local ok, ierr = include(cfg, words, current, depth)
                if not ok then return nil, ierr end
            elseif name then
                local value, verr = setting_value(key, name, words)
                if verr then return nil, where .. verr end
                cfg.entries[#cfg.entries + 1] = { key = key, value = value, conds = current }
            end
            -- any other keyword: ignored
        end
    end
    return true
end

function M.load(path, opts)
    opts = opts or {}
    local cfg = setmetatable({
        path = path, entries = {},
        home = opts.home or os.getenv("HOME") or "/root",
        local_user = opts.user or (sys.user()),
    }, Config)
    local ok, err = read_file(cfg, path, {}, 1)
    if not ok then return nil, err end
    return cfg
end

-- Does every condition hold?  Host lists match the name looked up; a
-- Match holds as its own entry found it (matched[m]).
local function applies(conds, host, matched)
    for _, c in ipairs(conds) do
        if c.match then
            if not matched[c] then return false end
        elseif not host_matches(c, host) then
            return false
        end
    end
    return true
end

-- A ProxyCommand from elsewhere (the inventory): true | nil, message
function M.check_proxy_command(command)
    return check_tokens(command, TOKENS.proxycommand)
end

-- The settings for host (the name as given: ansible_host, else the
-- inventory name).  overrides: user= and port= that win over the file's
-- (the inventory's), used for the %r and %p tokens.
-- As OpenSSH: host is the name after the HostName obtained so far, user
-- the inventory's (as ssh -l), else the User obtained so far, else the
-- local user.
local function match_holds(self, crit, st, final)
    for _, c in ipairs(crit) do
        local r
        if c.name == "all" then r = true
        elseif c.name == "final" then r = final
        elseif c.name == "host" then
            local h = st.got.hostname and expand_tokens(st.got.hostname,
                { h = st.host, ["%"] = "%" }) or st.host
            r = list_matches(c.patterns, h, true)
        elseif c.name == "originalhost" then
            r = list_matches(c.patterns, st.host, true)
        elseif c.name == "user" then
            r = list_matches(c.patterns, tostring(st.overrides.user
                or st.got.user or self.local_user), false)
        else -- localuser
            r = list_matches(c.patterns, tostring(self.local_user), false)
        end
        if c.negate then r = not r end
        if not r then return false end
    end
    return true
end

-- One reading of the entries, on top of what st holds already.
local function pass(self, st, final)
    local got, files, host = st.got, st.files, st.host
    local matched = {}
    for _, e in ipairs(self.entries) do
        if e.key == "match" then
            matched[e.match] = match_holds(self, e.match.match, st, final)
        elseif applies(e.conds, host, matched) then
            if e.key == "identityfile" then
                -- as OpenSSH, a file already listed is not added again
                if not st.seen[e.value] then
                    st.seen[e.value] = true
                    files[#files + 1] = e.value
                end
            elseif e.key == "proxyjump" or e.key == "proxycommand" then
                -- as in OpenSSH, whichever of the two comes first wins
                if got.proxy == nil then got.proxy = e end
            elseif got[e.key] == nil then
                got[e.key] = e.value
            end
        end
    end
end

function Config:lookup(host, overrides)
    overrides = overrides or {}
    host = tostring(host)
    local st = { host = host, overrides = overrides, got = {}, files = {},
                 seen = {} }
    pass(self, st, false)
    if self.final_pass then pass(self, st, true) end
    local got, files = st.got, st.files
    local out = {}
    if got.hostname then out.hostname = expand_tokens(got.hostname, { h = host, ["%"] = "%" }) end
    out.port = got.port
    out.user = got.user
    if got.proxy and got.proxy.value then
        if got.proxy.key == "proxyjump" then out.proxy_jump = got.proxy.value
        else out.proxy_command = got.proxy.value end
    end
    if #files > 0 then
        local t = {
            d = self.home, u = self.local_user, h = out.hostname or host, n = host,
            r = overrides.user or out.user or self.local_user,
            p = tostring(overrides.port or out.port or 22), ["%"] = "%",
        }
        out.identity_files = {}
        for _, f in ipairs(files) do
            if f:sub(1, 2) == "~/" or f == "~" then f = self.home .. f:sub(2) end
            out.identity_files[#out.identity_files + 1] = expand_tokens(f, t)
        end
    end
    return out
end

return M
