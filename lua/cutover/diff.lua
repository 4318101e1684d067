-- diff: unified diffs of text, for --diff.  The edit script is Myers'
-- greedy O(ND) search ("An O(ND) Difference Algorithm and Its Variations",
-- 1986): for D = 0, 1, ... the furthest point each diagonal reaches with D
-- edits, until one reaches the end.  Its cost is bounded: past MAX_EDITS
-- edits or MAX_WORK steps the changed region is shown removed and added
-- whole, and the diff's first line says it is coarse (never a wrong diff).
local M = {}

M.MAX_EDITS = 1000     -- D; the saved frontiers hold about D*D/2 numbers
M.MAX_WORK = 4000000   -- diagonal steps and snake steps together
M.CONTEXT = 3

local NO_NEWLINE = "\\ No newline at end of file"

local function split(s)
    local lines = {}
    for line in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    local tail = s:match("([^\n]+)$")
    if tail then lines[#lines + 1] = tail end
    return lines, s ~= "" and s:sub(-1) ~= "\n"
end

-- Lines as small integers, equal lines equal numbers; a last line without
-- its newline differs from the same text with one.
local function numbered(a, a_nonl, b, b_nonl)
    local ids, na, nb = {}, {}, {}
    local function id(text)
        local v = ids[text]
        if not v then v = #ids + 1; ids[text] = v; ids[v] = true end
        return v
    end
    for i, l in ipairs(a) do na[i] = id(l) end
    for i, l in ipairs(b) do nb[i] = id(l) end
    if a_nonl then na[#na] = id(a[#a] .. "\n") end -- "\n" is in no line
    if b_nonl then nb[#nb] = id(b[#b] .. "\n") end
    return na, nb
end

-- The furthest x on diagonal k after d edits, from frontier d-1 (`prev`,
-- indexed by (k + d - 1) // 2 + 1: diagonals of d-1's parity only), and
-- the diagonal it came from; nil when no d-path reaches diagonal k inside
-- the n x m grid.  Ties go to the insertion (down from k + 1).
local function step_from(prev, d, k, n, m)
    local best, from
    if k < d then -- down from k + 1: an insertion
        local x = prev[(k + d) // 2 + 1]
        if x and x - k <= m then best, from = x, k + 1 end
    end
    if k > -d then -- right from k - 1: a deletion
        local x = prev[(k + d) // 2]
        if x and x + 1 <= n and (not best or x + 1 > best) then
            best, from = x + 1, k - 1
        end
    end
    return best, from
end

-- The edit script of a[off+1 .. off+n] against b[off+1 .. off+m], appended
-- to `ops` as {op, index} (an index into a for " " and "-", into b for
-- "+"); false when the search passes its bounds.
local function myers(a, b, off, n, m, ops)
    local frontiers = {}
    local work = 0
    local found
    for d = 0, M.MAX_EDITS do
        local prev, cur = frontiers[d], {}
        for k = -d, d, 2 do
            local x
            if d == 0 then x = 0 else x = step_from(prev, d, k, n, m) end
            if x then
                local y, x0 = x - k, x
                while x < n and y < m and a[off + x + 1] == b[off + y + 1] do
                    x, y = x + 1, y + 1
                end
                work = work + (x - x0)
                cur[(k + d) // 2 + 1] = x
                if x == n and y == m then found = d; break end
            end
            work = work + 1
        end
        frontiers[d + 1] = cur
        if found or work > M.MAX_WORK then break end
    end
    if not found then return false end
    -- walk back from (n, m): each frontier says where the last edit came from
    local rev = {}
    local x, y = n, m
    for d = found, 1, -1 do
        local k = x - y
        local start, from = step_from(frontiers[d], d, k, n, m)
        -- snake back to start
        while x > start do
            rev[#rev + 1] = { " ", off + x }; x, y = x - 1, y - 1
        end
        if from == k + 1 then rev[#rev + 1] = { "+", off + y }
        else rev[#rev + 1] = { "-", off + x } end
        x = frontiers[d][(from + d - 1) // 2 + 1]
        y = x - from
    end
    while x > 0 do rev[#rev + 1] = { " ", off + x }; x, y = x - 1, y - 1 end
    for i = #rev, 1, -1 do ops[#ops + 1] = rev[i] end
    return true
end

-- Edit script: list of {op = " " | "-" | "+", text}, and whether it is
-- the coarse one.
local function script(a, a_nonl, b, b_nonl)
    local na, nb = numbered(a, a_nonl, b, b_nonl)
    local p, s = 0, 0 -- common first and last lines: no search needed
    while p < #na and p < #nb and na[p + 1] == nb[p + 1] do p = p + 1 end
    while s < #na - p and s < #nb - p and na[#na - s] == nb[#nb - s] do
        s = s + 1
    end
    local n, m = #na - p - s, #nb - p - s
    local idx = {}
    for i = 1, p do idx[#idx + 1] = { " ", i } end
    local coarse = false
    if not myers(na, nb, p, n, m, idx) then
        coarse = true
        for i = p + 1, p + n do idx[#idx + 1] = { "-", i } end
        for j = p + 1, p + m do idx[#idx + 1] = { "+", j } end
    end
    for i = #na - s + 1, #na do idx[#idx + 1] = { " ", i } end
    -- within a run of changes, removed lines first, then added ones
    local ops, run = {}, {}
    local function flush()
        for _, o in ipairs(run) do
            if o[1] == "-" then ops[#ops + 1] = { "-", a[o[2]] } end
        end
        for _, o in ipairs(run) do
            if o[1] == "+" then ops[#ops + 1] = { "+", b[o[2]] } end
        end
        run = {}
    end
    for _, o in ipairs(idx) do
        if o[1] == " " then flush(); ops[#ops + 1] = { " ", a[o[2]] }
        else run[#run + 1] = o end
    end
    flush()
    return ops, coarse
end

-- Returns the unified diff text ("" when equal).
function M.unified(before, after, name_a, name_b)
    if before == after then return "" end
    local a, a_nonl = split(before)
    local b, b_nonl = split(after)
    local ops, coarse = script(a, a_nonl, b, b_nonl)
    local out = { "--- " .. (name_a or "before"),
                  "+++ " .. (name_b or "after") }
    if coarse then
        -- before the header, where patch(1) skips text
        table.insert(out, 1, string.format("(coarse diff: more than %d"
            .. " line edits or the search passed its bound; the changed"
            .. " region is shown removed and added whole)", M.MAX_EDITS))
    end
    -- positions: line numbers in a and b before each op
    local ai, bi = {}, {}
    local x, y = 1, 1
    for k, op in ipairs(ops) do
        ai[k], bi[k] = x, y
        if op[1] ~= "+" then x = x + 1 end
        if op[1] ~= "-" then y = y + 1 end
    end
    local k = 1
    while k <= #ops do
        if ops[k][1] == " " then k = k + 1 else
            local s = math.max(1, k - M.CONTEXT)
            local e = k
            -- extend while changes are within 2*CONTEXT of each other
            local last_change = k
            while e <= #ops do
                if ops[e][1] ~= " " then last_change = e end
                if e - last_change > 2 * M.CONTEXT then break end
                e = e + 1
            end
            e = math.min(#ops, last_change + M.CONTEXT)
            local na, nb = 0, 0
            for q = s, e do
                if ops[q][1] ~= "+" then na = na + 1 end
                if ops[q][1] ~= "-" then nb = nb + 1 end
            end
            local sa = na == 0 and ai[s] - 1 or ai[s]
            local sb = nb == 0 and bi[s] - 1 or bi[s]
            out[#out + 1] = string.format("@@ -%d,%d +%d,%d @@", sa, na, sb, nb)
            for q = s, e do
                out[#out + 1] = ops[q][1] .. ops[q][2]
                local op = ops[q][1]
                if (op ~= "+" and ai[q] == #a and a_nonl)
                    or (op == "+" and bi[q] == #b and b_nonl) then
                    out[#out + 1] = NO_NEWLINE
                end
            end
            k = e + 1
        end
    end
    return table.concat(out, "\n") .. "\n"
end

-- Renders a result's diff table (see actions/lib/content.lua, actions/file.lua).
function M.render(d)
    local parts = {}
    if d.before ~= nil or d.after ~= nil then
        parts[#parts + 1] = M.unified(d.before or "", d.after or "",
            d.before_header or d.path or "before", d.path or "after")
    end
    if d.before_state or d.after_state then
        parts[#parts + 1] = string.format("%s: state %s -> %s\n", d.path or "",
            d.before_state or "?", d.after_state or "?")
    end
    if d.after_mode and d.before_mode ~= d.after_mode then
        parts[#parts + 1] = string.format("%s: mode %s -> %s\n", d.path or "",
            d.before_mode or "(none)", d.after_mode)
    end
    if d.after_owner and d.before_owner ~= d.after_owner then
        parts[#parts + 1] = string.format("%s: owner %s -> %s\n", d.path or "",
            d.before_owner or "(none)", d.after_owner)
    end
    return table.concat(parts)
end

return M
