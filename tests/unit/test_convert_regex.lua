-- The converter's regular expression -> Lua pattern translation
-- (lineinfile's regexp, insertafter, insertbefore), checked against
-- Python's own re.search on the same lines.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local A = require("cutover.convert.ansible")
local json = require("cutover.core.json")
local proc = require("cutover.core.proc")
local pattern = require("cutover.core.pattern")

local CASES = {
    { "^PermitRootLogin", "^PermitRootLogin" },
    { "^#?PermitRootLogin\\s+", "^#?PermitRootLogin%s+" },
    { "^Port\\s+\\d+$", "^Port%s+%d+$" },
    { "^(\\w+)=(.*)$", "^([%w_]+)=(.*)$" },
    { "max-connections = 10%", "max%-connections = 10%%" },
    { "^net\\.ipv4\\.ip_forward", "^net%.ipv4%.ip_forward" },
    { "[\\d.]+ localhost", "[%d.]+ localhost" },
    { "^listen .*?;", "^listen .-;" },
    { "^[^#]*server_name", "^[^#]*server_name" },
}
local REFUSED = {
    { "^(yes|no)$", "alternation" },
    { "^a{3}", "counted repeat" },
    { "^(ab)+", "repeated group" },
    { "(?i)^port", "'(?' group" },
    { "a$b", "'$' inside" },
    { "\\bword", "'\\b'" },
}

T.test("translations", function()
    for _, c in ipairs(CASES) do
        T.eq(A.regex_to_lua(c[1]), c[2], c[1])
    end
    for _, c in ipairs(REFUSED) do
        local lua, why = A.regex_to_lua(c[1])
        T.eq(lua, nil, c[1] .. " refused")
        T.contains(why, c[2], c[1] .. ": why")
    end
end)

T.test("the translation matches what Python's re.search matches", function()
    local subjects = { "PermitRootLogin yes", "#PermitRootLogin no", "  PermitRootLogin x", "Port 22", "Port 22x",
                       "key=value", "=x", "max-connections = 10%", "net.ipv4.ip_forward = 1", "netxipv4.ip_forward",
                       "127.0.0.1 localhost", "listen 80; listen 443;", "server_name a; # server_name",
                           "# server_name" }
    local pats = {}
    for _, c in ipairs(CASES) do pats[#pats + 1] = c[1] end
    local r = assert(proc.run({ argv = { "python3", "-c", [==[
import json, re, sys
d = json.load(sys.stdin)
print(json.dumps([[bool(re.search(p, s)) for s in d["s"]] for p in d["p"]]))
]==] }, stdin = json.encode({ p = pats, s = subjects }) }))
    T.eq(r.rc, 0, "python3 ran: " .. r.stderr)
    local want = json.decode(r.stdout)
    local n = 0
    for i, c in ipairs(CASES) do
        for j, s in ipairs(subjects) do
            local got = pattern.find(s, c[2]) ~= nil
            T.eq(got, want[i][j], c[1] .. " on '" .. s .. "'")
            n = n + 1
        end
    end
    T.ok(n > 100, "compared " .. n .. " pairs")
end)

T.done()
