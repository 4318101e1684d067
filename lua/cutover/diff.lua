-- diff: unified diffs of text, for --diff.  A plain LCS table; files too
-- large for it (lines_a * lines_b over MAX_CELLS) are shown as replaced.
local M = {}

M.MAX_CELLS = 4000000
M.CONTEXT = 3

local function split(s)
    local lines = {}
    for line in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    local tail = s:match("([^\n]+)$")
    if tail then lines[#lines + 1] = tail end
    return lines, s ~= "" and s:sub(-1) ~= "\n"
end

-- Edit script: list of {op = " " | "-" | "+", text}
local function script(a, b)
    local n, m = #a, #b
    local ops = {}
    if n * m > M.MAX_CELLS then
        for _, l in ipairs(a) do ops[#ops + 1] = { "-", l } end
        for _, l in ipairs(b) do ops[#ops + 1] = { "+", l } end
        return ops
    end
    -- lcs[i][j] = LCS length of a[i..n], b[j..m]
    local lcs = {}
    for i = n + 1, 1, -1 do
        local row, below = {}, lcs[i + 1]
        for j = m + 1, 1, -1 do
            if i > n or j > m then row[j] = 0
            elseif a[i] == b[j] then row[j] = below[j + 1] + 1
            else
                local x, y = below[j], row[j + 1]
                row[j] = x > y and x or y
            end
        end
        lcs[i] = row
    end
    local i, j = 1, 1
    while i <= n and j <= m do
        if a[i] == b[j] then ops[#ops + 1] = { " ", a[i] }; i, j = i + 1, j + 1
        elseif lcs[i + 1][j] >= lcs[i][j + 1] then ops[#ops + 1] = { "-", a[i] }; i = i + 1
        else ops[#ops + 1] = { "+", b[j] }; j = j + 1 end
    end
    for k = i, n do ops[#ops + 1] = { "-", a[k] } end
    for k = j, m do ops[#ops + 1] = { "+", b[k] } end
    return ops
end

-- Returns the unified diff text ("" when equal).
function M.unified(before, after, name_a, name_b)
    if before == after then return "" end
    local a, a_nonl = split(before)
    local b, b_nonl = split(after)
    local ops = script(a, b)
    local out = { "--- " .. (name_a or "before"), "+++ " .. (name_b or "after") }
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
                if ops[q][1] ~= "+" and ai[q] == #a and a_nonl then out[#out + 1] = "\\ No newline at end of file" end
                if ops[q][1] == "+" and bi[q] == #b and b_nonl then out[#out + 1] = "\\ No newline at end of file" end
            end
            k = e + 1
        end
    end
    return table.concat(out, "\n") .. "\n"
end

-- Renders a result's diff table (see actions/content.lua, file.lua).
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
