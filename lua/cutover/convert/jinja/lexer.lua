-- convert.jinja.lexer: a Jinja expression as tokens { t = name, num,
-- str, op or eof; v = its text } | nil, why.

local function lex(src)
    local toks, i, n = {}, 1, #src
    while i <= n do
        local c = src:sub(i, i)
        if c:match("%s") then
            i = i + 1
        elseif c:match("[%a_]") then
            local w = src:match("^[%w_]+", i)
            toks[#toks + 1] = { t = "name", v = w }
            i = i + #w
        elseif c:match("%d") then
            local num = src:match("^%d+%.%d+", i) or src:match("^%d+", i)
            toks[#toks + 1] = { t = "num", v = num }
            i = i + #num
        elseif c == "'" or c == '"' then
            local j, out = i + 1, {}
            while true do
                local d = src:sub(j, j)
                if d == "" then return nil, "unterminated string" end
                if d == c then break end
                if d == "\\" then
                    local e = src:sub(j + 1, j + 1)
                    local map = { n = "\n", t = "\t", ["\\"] = "\\", ["'"] = "'", ['"'] = '"' }
                    if not map[e] then return nil, "string escape '\\" .. e .. "'" end
                    out[#out + 1] = map[e]
                    j = j + 2
                else
                    out[#out + 1] = d
                    j = j + 1
                end
            end
            toks[#toks + 1] = { t = "str", v = table.concat(out) }
            i = j + 1
        else
            local op = src:match("^//", i) or src:match("^[=!<>]=", i) or src:match("^%*%*", i)
                or src:match("^[%+%-%*/%%~%(%)%[%]{}:,%.|<>=]", i)
            if not op then return nil, "character '" .. c .. "'" end
            toks[#toks + 1] = { t = "op", v = op }
            i = i + #op
        end
    end
    toks[#toks + 1] = { t = "eof", v = "end of expression" }
    return toks
end

return lex
