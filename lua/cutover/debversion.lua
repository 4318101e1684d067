-- debversion: Debian's version order, as `dpkg --compare-versions` has it:
-- [epoch:]upstream[-revision], letters before other characters, '~'
-- before everything (even the end), digit runs compared as numbers.
-- Shared by the version_compare expression helper and the apt action.
local M = {}

-- "1:2.3-4" -> epoch (number), upstream, revision | nil, why (a version
-- dpkg would refuse).
function M.split(v)
    local s = v:match("^%s*(.-)%s*$")
    if s == "" then return nil, "the version is empty" end
    local epoch, rest = 0, s
    local e, r = s:match("^(%d+):(.*)$")
    if e then
        epoch, rest = tonumber(e), r
    elseif s:find(":", 1, true) then
        return nil, "the epoch before ':' must be a number"
    end
    local up, rev = rest:match("^(.*)%-([^-]*)$")
    if not up then up, rev = rest, "" end
    if up == "" or not up:match("^%d") then return nil, "the upstream version must start with a digit" end
    if up:find("[^%w.+~:-]") or rev:find("[^%w.+~]") then
        return nil, "only letters, digits and . + ~ - : are allowed"
    end
    return epoch, up, rev
end

local function order(c)
    if c == "~" then return -1 end
    if c == "" then return 0 end
    if c:match("%a") then return c:byte() end
    return c:byte() + 256
end

-- One part (upstream or revision): -1, 0 or 1.
local function compare_part(a, b)
    local i, j = 1, 1
    while i <= #a or j <= #b do
        -- the non-digit prefix, character by character
        while (i <= #a and not a:sub(i, i):match("%d")) or (j <= #b and not b:sub(j, j):match("%d")) do
            local ca = (i <= #a and not a:sub(i, i):match("%d")) and a:sub(i, i) or ""
            local cb = (j <= #b and not b:sub(j, j):match("%d")) and b:sub(j, j) or ""
            local oa, ob = order(ca), order(cb)
            if oa ~= ob then return oa < ob and -1 or 1 end
            if ca ~= "" then i = i + 1 end
            if cb ~= "" then j = j + 1 end
        end
        -- the digits, as a number (compared as text without leading
        -- zeros, so no run of digits is too long for a Lua number)
        local da = a:match("^%d*", i)
        local db = b:match("^%d*", j)
        i, j = i + #da, j + #db
        da, db = da:gsub("^0+", ""), db:gsub("^0+", "")
        if #da ~= #db then return #da < #db and -1 or 1 end
        if da ~= db then return da < db and -1 or 1 end
    end
    return 0
end

-- a versus b: -1, 0 or 1 | nil, why (either is not a version).
function M.compare(a, b)
    local ea, ua, ra = M.split(a)
    if not ea then return nil, "'" .. a .. "': " .. ua end
    local eb, ub, rb = M.split(b)
    if not eb then return nil, "'" .. b .. "': " .. ub end
    if ea ~= eb then return ea < eb and -1 or 1 end
    local c = compare_part(ua, ub)
    if c ~= 0 then return c end
    return compare_part(ra, rb)
end

return M
