-- windows.parse.inf: the secedit INF file (UTF-16LE or UTF-8): read, and
-- written back with the privilege rights changed.
local common = require("cutover.windows.parse.common")
local trim, show, fail = common.trim, common.show, common.fail
local check_text = common.check_text

local M = {}

-- UTF-16LE (without the BOM) to UTF-8; unpaired surrogates become U+FFFD.
local function utf16le_to_utf8(s)
    local out, i, n = {}, 1, #s
    while i + 1 <= n do
        local u = s:byte(i) + s:byte(i + 1) * 256
        i = i + 2
        if u >= 0xD800 and u <= 0xDBFF and i + 1 <= n then
            local u2 = s:byte(i) + s:byte(i + 1) * 256
            if u2 >= 0xDC00 and u2 <= 0xDFFF then
                u = 0x10000 + (u - 0xD800) * 0x400 + (u2 - 0xDC00)
                i = i + 2
            else
                u = 0xFFFD
            end
        elseif u >= 0xD800 and u <= 0xDFFF then
            u = 0xFFFD
        end
        out[#out + 1] = utf8.char(u)
    end
    return table.concat(out)
end

-- The text of an INF file: UTF-16LE with a BOM (or without, when the
-- second byte is NUL), UTF-8 with a BOM, or plain ASCII.
-- -> text (UTF-8), encoding name
function M.decode_text(data)
    if data:sub(1, 2) == "\255\254" then return utf16le_to_utf8(data:sub(3)), "utf-16le" end
    if data:sub(1, 3) == "\239\187\191" then return data:sub(4), "utf-8" end
    if #data >= 2 and data:byte(2) == 0 and data:byte(1) ~= 0 then
        return utf16le_to_utf8(data), "utf-16le"
    end
    return data, "ascii"
end

local function split_principals(value)
    local list = {}
    for p in value:gmatch("[^,]+") do
        p = trim(p)
        if p ~= "" then list[#list + 1] = p end
    end
    return list
end

-- A principal as written in an INF: "*S-1-5-32-544" -> { sid =
-- "S-1-5-32-544" }; "CORP\exchsvc" -> { domain = "CORP", name =
-- "exchsvc" }; "Everyone" -> { name = "Everyone" }.
function M.principal(p)
    local sid = p:match("^%*(S%-[%d%-]+)$")
    if sid then return { sid = sid } end
    local domain, name = p:match("^([^\\]+)\\(.+)$")
    if domain then return { domain = domain, name = name } end
    return { name = p }
end

local PRIVILEGE_RIGHTS = "privilege rights"

-- inf(data) -> {
--   encoding = "utf-16le" | "utf-8" | "ascii",
--   sections = { { name = "Version", lines = { raw lines },
--                  entries = { { key =, value = } ... } }, ... } in order
--     (every section kept, unknown ones too; comments stay in lines),
--   section = function(name) -> the section (case-insensitive) or nil,
--   rights = { [right] = { principal, ... } } from [Privilege Rights]
--     (an empty value gives {}: no member),
--   rights_order = { right names in file order } }
-- | nil, message.  Keys and values are trimmed; values keep any quotes.
function M.inf(data)
    local ok, err = check_text("inf", data)
    if not ok then return nil, err end
    local text, encoding = M.decode_text(data)
    local doc = { encoding = encoding, sections = {}, rights = {}, rights_order = {} }
    local by_name = {}
    local cur
    for n, line in ipairs(common.lines(text)) do
        local t = trim(line)
        if t == "" or t:sub(1, 1) == ";" then
            if cur then cur.lines[#cur.lines + 1] = line end
        else
            local name = t:match("^%[(.*)%]$")
            if name then
                name = trim(name)
                if name == "" then return fail("inf", n, line, "empty section name") end
                cur = by_name[name:lower()]
                if not cur then
                    cur = { name = name, lines = {}, entries = {} }
                    doc.sections[#doc.sections + 1] = cur
                    by_name[name:lower()] = cur
                end
            elseif not cur then
                return fail("inf", n, line, "text before the first [section]")
            else
                cur.lines[#cur.lines + 1] = line
                local key, value = t:match("^([^=]-)[ \t]*=[ \t]*(.-)$")
                if key then
                    if key == "" then return fail("inf", n, line, "'=' without a key") end
                    cur.entries[#cur.entries + 1] = { key = key, value = value }
                    if cur.name:lower() == PRIVILEGE_RIGHTS then
                        if not doc.rights[key] then doc.rights_order[#doc.rights_order + 1] = key end
                        doc.rights[key] = split_principals(value)
                    end
                else
                    if cur.name:lower() == PRIVILEGE_RIGHTS then
                        return fail("inf", n, line, "[Privilege Rights]: expected 'Right = members'")
                    end
                    cur.entries[#cur.entries + 1] = { key = t, value = nil }
                end
            end
        end
    end
    if #doc.sections == 0 then return nil, "inf: no [section] in the file" end
    doc.section = function(name) return by_name[name:lower()] end
    return doc
end

local function inf_line_ok(s)
    return not s:find("[%z\1-\8\10-\31\127-\255]")
end

-- write_inf(doc) -> ASCII text with CRLF line endings | nil, message.
-- Sections are written in doc.sections order with their lines as read;
-- [Privilege Rights] is written from doc.rights: rights_order first,
-- then rights added since, sorted; "Right = a,b" ("Right =" when
-- empty).  When doc has rights but no such section, it is added at the
-- end.  A non-ASCII character anywhere is refused (the template is
-- written through `more`, in the OEM code page).
-- doc may also be a fresh { sections = {...}, rights = {...} }.
function M.write_inf(doc)
    if type(doc) ~= "table" or type(doc.sections) ~= "table" then
        return nil, "write_inf: expected an INF document"
    end
    local rights = doc.rights or {}
    local out = {}
    local function emit(s)
        if not inf_line_ok(s) then
            return nil, "write_inf: non-ASCII or control character in " .. show(s)
        end
        out[#out + 1] = s
        return true
    end
    local function emit_rights()
        local seen, order = {}, {}
        for _, r in ipairs(doc.rights_order or {}) do
            if rights[r] and not seen[r] then seen[r] = true; order[#order + 1] = r end
        end
        local extra = {}
        for r in pairs(rights) do
            if not seen[r] then extra[#extra + 1] = r end
        end
        table.sort(extra)
        for _, r in ipairs(extra) do order[#order + 1] = r end
        for _, r in ipairs(order) do
            local members = rights[r]
            if type(members) ~= "table" then return nil, "write_inf: members of " .. r .. " are not a list" end
            for _, m in ipairs(members) do
                if type(m) ~= "string" or m == "" or m:find("[,\r\n]") then
                    return nil, "write_inf: invalid member of " .. r
                end
            end
            local value = table.concat(members, ",")
            local ok, err = emit(value == "" and (r .. " =") or (r .. " = " .. value))
            if not ok then return nil, err end
        end
        return true
    end
    local wrote_rights = false
    for _, sec in ipairs(doc.sections) do
        local ok, err = emit("[" .. sec.name .. "]")
        if not ok then return nil, err end
        if sec.name:lower() == PRIVILEGE_RIGHTS then
            ok, err = emit_rights()
            if not ok then return nil, err end
            wrote_rights = true
        else
            local lines = sec.lines
            if not lines then
                lines = {}
                for _, e in ipairs(sec.entries or {}) do
                    lines[#lines + 1] = e.value and (e.key .. "=" .. e.value) or e.key
                end
            end
            for _, l in ipairs(lines) do
                ok, err = emit(l)
                if not ok then return nil, err end
            end
        end
    end
    if not wrote_rights and next(rights) then
        local ok, err = emit("[Privilege Rights]")
        if ok then ok, err = emit_rights() end
        if not ok then return nil, err end
    end
    return table.concat(out, "\r\n") .. "\r\n"
end

return M
