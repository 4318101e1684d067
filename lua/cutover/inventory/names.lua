-- inventory.names: host names as an inventory writes them: ranges
-- (web[01:20], db-[a:c]) and "host:port" entries, IPv6 included.
local M = {}

-- A host range (web[001:500]) may expand to at most this many names.
M.MAX_RANGE_HOSTS = 100000

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

return M
