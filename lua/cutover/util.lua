-- util: small helpers shared by the runner, the loader and the actions.
local M = {}

-- Edit distance, for "did you mean" suggestions.  Swapping two adjacent
-- letters counts as one edit ("stpes" is one from "steps").
local function distance(a, b)
    local older, prev, cur = {}, {}, {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
        cur[0] = i
        for j = 1, #b do
            local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
            cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1)
                and a:sub(i - 1, i - 1) == b:sub(j, j) then
                cur[j] = math.min(cur[j], older[j - 2] + 1)
            end
        end
        older, prev, cur = prev, cur, older
    end
    return prev[#b]
end

-- " (did you mean 'x'?)" or "" when nothing is close.
function M.did_you_mean(name, candidates)
    local best, best_d
    for _, c in ipairs(candidates) do
        local d = distance(name, c)
        if d <= math.max(1, #name // 3) and (not best_d or d < best_d) then
            best, best_d = c, d
        end
    end
    return best and (" (did you mean '" .. best .. "'?)") or ""
end

local function by_text(a, b) return tostring(a) < tostring(b) end

function M.sorted_keys(t)
    local keys, all_strings = {}, true
    for k in pairs(t) do
        keys[#keys + 1] = k
        if type(k) ~= "string" then all_strings = false end
    end
    if #keys > 1 then table.sort(keys, not all_strings and by_text or nil) end
    return keys
end

function M.copy(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
end

-- Whether two values are the same, tables compared by content.
function M.deep_equal(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for k, v in pairs(a) do
        if not M.deep_equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

function M.deep_copy(v, seen)
    if type(v) ~= "table" then return v end
    seen = seen or {}
    if seen[v] then return seen[v] end
    local out = {}
    seen[v] = out
    for k, x in pairs(v) do out[k] = M.deep_copy(x, seen) end
    return setmetatable(out, getmetatable(v))
end

-- A list is a table with keys exactly 1..n.
function M.is_list(t)
    if type(t) ~= "table" then return false end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == #t
end

-- "Copy the config file" -> "copy-the-config-file"
function M.slug(s)
    s = tostring(s):lower():gsub("[^%w]+", "-"):gsub("^%-+", "")
    s = s:gsub("%-+$", "")
    if #s > 60 then s = s:sub(1, 60):gsub("%-+$", "") end
    return s ~= "" and s or "step"
end

function M.format_duration(seconds)
    if seconds < 1 then return string.format("%dms", math.floor(seconds * 1000 + 0.5)) end
    if seconds < 60 then return string.format("%.1fs", seconds) end
    return string.format("%dm%02ds", math.floor(seconds / 60), math.floor(seconds % 60))
end

function M.dirname(path)
    local d = path:match("^(.*)/[^/]*$")
    if d == nil then return "." end
    if d == "" then return "/" end
    return d
end

function M.join_path(dir, name)
    if name:sub(1, 1) == "/" then return name end
    if dir == "." then return name end
    return dir .. "/" .. name
end

-- Split a free-form command line into words: whitespace separates,
-- single and double quotes group, backslash escapes outside single quotes.
-- No expansion of any kind.  Returns nil, message on an open quote.
-- Runs of ordinary characters are taken whole (it runs for every
-- `command:` step on every host).
function M.split_words(line)
    local words, cur, i, n = {}, nil, 1, #line
    while i <= n do
        local s, e = line:find("^[^%s'\"\\]+", i)
        if s then
            cur = (cur or "") .. line:sub(s, e)
            i = e + 1
        else
            local c = line:sub(i, i)
            if c:match("%s") then
                if cur then words[#words + 1] = cur; cur = nil end
            elseif c == "'" then
                local j = line:find("'", i + 1, true)
                if not j then return nil, "unclosed single quote" end
                cur = (cur or "") .. line:sub(i + 1, j - 1)
                i = j
            elseif c == '"' then
                local buf, j = {}, i + 1
                while true do
                    if j > n then return nil, "unclosed double quote" end
                    local rs, re = line:find('^[^"\\]+', j)
                    if rs then
                        buf[#buf + 1] = line:sub(rs, re)
                        j = re + 1
                    else
                        local d = line:sub(j, j)
                        if d == '"' then break end
                        -- a backslash: it escapes only " \ $ and `
                        if j < n and line:sub(j + 1, j + 1):match('["\\$`]') then
                            j = j + 1; d = line:sub(j, j)
                        end
                        buf[#buf + 1] = d
                        j = j + 1
                    end
                end
                cur = (cur or "") .. table.concat(buf)
                i = j
            elseif i < n then  -- a backslash: the next character as it is
                cur = (cur or "") .. line:sub(i + 1, i + 1)
                i = i + 1
            else               -- a backslash that ends the line
                cur = (cur or "") .. c
            end
            i = i + 1
        end
    end
    if cur then words[#words + 1] = cur end
    return words
end

-- Quote one word for /bin/sh.
function M.sh_quote(s)
    s = tostring(s)
    if s ~= "" and not s:find("[^%w%-%./_=:@,+]") then return s end
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Mode from YAML: 0644 arrives as the integer 420 (YAML 1.1 octal);
-- "0644" or "644" as text is read as octal; "u+x" forms are refused.
function M.parse_mode(v)
    if math.type(v) == "integer" then
        if v < 0 or v > 4095 then return nil, "mode out of range" end
        return v
    end
    if type(v) == "string" and v:match("^0?[0-7][0-7][0-7][0-7]?$") then
        return tonumber(v, 8)
    end
    return nil, "mode must be octal digits such as '0644'"
end

function M.format_mode(m)
    return string.format("%04o", m)
end

function M.trim(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Words of a configuration line (INI inventory host lines, ssh_config):
-- whitespace separates, ' and " group and are removed (inside "..." a
-- backslash escapes the next character), a backslash outside quotes
-- escapes the next character, a word starting with # ends the line.
-- Returns { {text=, quoted=} ... } | nil, "unclosed quote X".
function M.config_words(s)
    local words = {}
    local i, n = 1, #s
    while i <= n do
        local c = s:sub(i, i)
        if c:match("%s") then
            i = i + 1
        elseif c == "#" then
            break
        else
            local buf, quoted = {}, false
            while i <= n do
                c = s:sub(i, i)
                if c:match("%s") then break end
                if c == '"' or c == "'" then
                    local j, part = i + 1, {}
                    while true do
                        local d = s:sub(j, j)
                        if d == "" then return nil, "unclosed quote " .. c end
                        if d == c then break end
                        if d == "\\" and c == '"' and j < n then
                            j = j + 1
                            d = s:sub(j, j)
                        end
                        part[#part + 1] = d
                        j = j + 1
                    end
                    buf[#buf + 1] = table.concat(part)
                    quoted = true
                    i = j + 1
                elseif c == "\\" and i < n then
                    buf[#buf + 1] = s:sub(i + 1, i + 1)
                    i = i + 2
                else
                    buf[#buf + 1] = c
                    i = i + 1
                end
            end
            words[#words + 1] = { text = table.concat(buf), quoted = quoted }
        end
    end
    return words
end

-- Whether text matches a shell-style glob as a whole: '*' any run of
-- bytes, '?' one byte, everything else itself (no classes, no escapes).
-- The one matcher, in C (core/pattern.c), shared with known_hosts: O(#glob
-- * #text), where a Lua pattern made from the glob backtracks without
-- bound on many stars (fuzzing found an ssh_config Include glob that ran
-- for minutes).
M.glob_match = require("cutover.core.pattern").glob_match

-- A value as an error message shows it: text quoted, tables by kind.
function M.describe(v)
    if type(v) == "string" then return "'" .. v .. "'" end
    if type(v) == "table" then return (next(v) == nil or M.is_list(v)) and "a list" or "a mapping" end
    if math.type(v) == "float" and v == math.floor(v) and v == v and math.abs(v) < 2^53 then
        return tostring(math.tointeger(v))
    end
    return tostring(v)
end

-- Connection settings from inventory variables.  A bad value is an
-- error, never a silent default (port 22, the default timeout).
-- Returns the value | nil, message.
function M.port_number(name, v)
    local n = v
    if type(n) == "string" and n:match("^%s*%d+%s*$") then n = tonumber(n) end
    n = type(n) == "number" and math.tointeger(n) or nil
    if not n or n < 1 or n > 65535 then
        return nil, name .. " must be a port number from 1 to 65535, got " .. M.describe(v)
    end
    return n
end

function M.seconds(name, v)
    local n = v
    if type(n) == "string" then n = tonumber(n) end
    if type(n) ~= "number" or n ~= n or n <= 0 or n == math.huge then
        return nil, name .. " must be a number of seconds more than 0, got " .. M.describe(v)
    end
    return n
end

return M
