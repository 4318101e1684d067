-- known_hosts lookups (core/knownhosts.c), checked against a reference
-- written here from OpenSSH's rules.  The C side parses a file once and
-- keeps it while the file stays the same (issue 13: a 1,000-host run read
-- a 1,000-line file for every host); these cases check that the kept copy
-- answers as a fresh reading would, and that any change to the file is
-- seen by the next lookup.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local ssh = require("cutover.core.ssh")
local fs = require("cutover.core.fs")
local loop = require("cutover.core.loop")

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local q = {}
        for j = 3, 0, -1 do
            local v = (n >> (6 * j)) & 63
            q[#q + 1] = B64:sub(v + 1, v + 1)
        end
        if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
        out[#out + 1] = table.concat(q)
    end
    return table.concat(out)
end

local function random_blob()
    local t = {}
    for i = 1, math.random(1, 60) do t[i] = string.char(math.random(0, 255)) end
    return table.concat(t)
end

-- The reference: one line at a time, as OpenSSH reads the file.
local function glob(pat, name)
    local lp = pat:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
    return name:find("^" .. lp .. "$") ~= nil
end

local function patterns_match(list, name)
    local matched = false
    for one in (list .. ","):gmatch("([^,]*),") do
        if #one < 600 then
            one = one:lower()
            local negated = one:sub(1, 1) == "!"
            if negated then one = one:sub(2) end
            if glob(one, name) then
                if negated then return false end
                matched = true
            end
        end
    end
    return matched
end

-- hashed: field -> the name it was made from (by ssh-keygen -H)
local function reference(text, name, hashed, keys)
    local found, lineno = {}, 0
    for line in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        local body = line:gsub("^[ \t\r\v\f]*", "")
        if #line + 1 <= 16384 and body ~= "" and body:sub(1, 1) ~= "#" then
            local f = {}
            for tok in body:gmatch("[^ \t\r]+") do
                if #f < 4 then f[#f + 1] = tok end
            end
            local revoked, usable = false, true
            if f[1] and f[1]:sub(1, 1) == "@" then
                if f[1] == "@revoked" then revoked = true; table.remove(f, 1) else usable = false end
            end
            if usable and #f >= 3 then
                local hit
                if f[1]:sub(1, 1) == "|" then hit = hashed[f[1]] == name
                else hit = patterns_match(f[1], name) end
                if hit and keys[f[3]] then
                    found[#found + 1] = { line = lineno, type = f[2], revoked = revoked, blob = keys[f[3]] }
                end
            end
        end
    end
    return found
end

local function same(got, want, what)
    T.eq(#got, #want, what .. ": how many lines")
    for i = 1, #want do
        for _, k in ipairs({ "line", "type", "revoked", "blob" }) do
            T.eq(got[i][k], want[i][k], what .. ": entry " .. i .. " " .. k)
        end
    end
end

local NAMES = { "web1", "db.example.com", "127.0.0.2", "[127.0.0.2]:2222", "[web1]:2200", "other" }
local QUERIES = { { "web1", 22 }, { "WEB1", 22 }, { "db.example.com", 22 }, { "127.0.0.2", 2222 },
                  { "127.0.0.2", 22 }, { "web1", 2200 }, { "other", 22 }, { "nobody", 22 } }
local function query_name(host, port)
    host = host:lower()
    return port == 22 and host or "[" .. host .. "]:" .. port
end

-- Hashed forms of the names, made by ssh-keygen -H.
local function hashed_names(dir)
    local plain = dir .. "/plain"
    local lines = {}
    for i, n in ipairs(NAMES) do lines[i] = n .. " ssh-ed25519 " .. b64("k" .. i) end
    T.write(plain, table.concat(lines, "\n") .. "\n")
    local r = T.sh("ssh-keygen -q -H -f '" .. plain .. "' >/dev/null 2>&1")
    T.eq(r.rc, 0, "ssh-keygen -H")
    local hashed, i = {}, 0
    for line in T.read(plain):gmatch("[^\n]+") do
        i = i + 1
        hashed[line:match("^(%S+)")] = NAMES[i]
    end
    T.eq(i, #NAMES, "one hashed line per name")
    return hashed
end

local PATTERNS = { "web*", "w?b1", "*.example.com", "!web1", "*", "[127.0.0.2]:*", "!db*",
                   "127.0.0.?", "WEB1", "Db.Example.Com" }

local function random_file(hashed_list, keys)
    local lines = {}
    for i = 1, math.random(0, 40) do
        local r = math.random(1, 100)
        local key = random_blob()
        local enc = b64(key)
        keys[enc] = key
        if math.random(1, 15) == 1 then enc = "not*base64" end
        local hosts
        if r <= 35 then hosts = NAMES[math.random(#NAMES)]
        elseif r <= 50 then hosts = PATTERNS[math.random(#PATTERNS)]
        elseif r <= 65 then
            local parts = {}
            for j = 1, math.random(2, 4) do
                parts[j] = math.random(2) == 1 and NAMES[math.random(#NAMES)] or PATTERNS[math.random(#PATTERNS)]
            end
            hosts = table.concat(parts, ",")
        elseif r <= 80 then hosts = hashed_list[math.random(#hashed_list)]
        elseif r <= 83 then hosts = "|1|bm90|c2FsdA=="
        else hosts = NAMES[math.random(#NAMES)] .. "," .. NAMES[math.random(#NAMES)] end
        local line = hosts .. " ssh-" .. ({ "ed25519", "rsa", "x" })[math.random(3)] .. " " .. enc
        local m = math.random(1, 30)
        if m == 1 then line = "@revoked " .. line
        elseif m == 2 then line = "@cert-authority " .. line
        elseif m == 3 then line = "# " .. line
        elseif m == 4 then line = "  \t" .. line
        elseif m == 5 then line = line .. " a comment\r"
        elseif m == 6 then line = hosts .. " ssh-ed25519"
        elseif m == 7 then line = ""
        elseif m == 8 then line = line .. " " .. string.rep("x", 16400)
        elseif m == 9 then line = line:gsub(" ", "\t") end
        lines[i] = line
    end
    local text = table.concat(lines, "\n")
    if math.random(2) == 1 then text = text .. "\n" end
    return text
end

T.test("lookups match OpenSSH's rules: exact names, patterns, negation, hashed names, markers, odd lines", function()
    math.randomseed(20261206)
    local d = T.tmpdir()
    local hashed = hashed_names(d)
    local hashed_list = {}
    for h in pairs(hashed) do hashed_list[#hashed_list + 1] = h end
    table.sort(hashed_list)
    local files = {}
    for i = 1, T.scale(200, 20) do
        local keys = {}
        local text = random_file(hashed_list, keys)
        local path = d .. "/kh" .. i
        T.write(path, text)
        files[i] = { path = path, text = text, keys = keys }
    end
    local function check_all(when)
        for i, f in ipairs(files) do
            for _, q in ipairs(QUERIES) do
                local got = assert(ssh.known_lines(f.path, q[1], q[2]))
                same(got, reference(f.text, query_name(q[1], q[2]), hashed, f.keys),
                     string.format("%s, file %d, %s port %d", when, i, q[1], q[2]))
            end
        end
    end
    -- just written: each lookup reads the file
    check_all("a new file")
    -- unchanged for more than the settling time: one reading serves the
    -- lookups of every host
    loop.sleep(3.2)
    check_all("a settled file")
end)

-- A settled file, read once so that its parsed copy is kept.
local function settled(path, text)
    T.write(path, text)
    loop.sleep(3.2)
    assert(ssh.known_lines(path, "web1", 22))
end

local KEY_A, KEY_B, KEY_C = string.rep("A", 32), string.rep("B", 32), string.rep("C", 32)

T.test("a kept copy is never used once the file changed: same size, same mtime, replaced, appended", function()
    local d = T.tmpdir()
    local path = d .. "/known_hosts"
    local function keys_of(host)
        local out = {}
        for _, e in ipairs(assert(ssh.known_lines(path, host, 22))) do out[#out + 1] = e.blob end
        return table.concat(out, ",")
    end
    settled(path, "web1 ssh-ed25519 " .. b64(KEY_A) .. "\n")
    T.eq(keys_of("web1"), KEY_A, "the first reading")
    -- rewritten in place, same size, modification time put back: only
    -- the change time differs
    T.sh("cp -p '" .. path .. "' '" .. path .. ".ref'")
    local f = assert(io.open(path, "r+b"))
    f:write("web1 ssh-ed25519 " .. b64(KEY_B) .. "\n")
    f:close()
    T.eq(T.sh("touch -r '" .. path .. ".ref' '" .. path .. "'").rc, 0, "touch -r")
    T.eq(keys_of("web1"), KEY_B, "rewritten in place")
    -- replaced by another file of the same size and modification time
    settled(path, "web1 ssh-ed25519 " .. b64(KEY_A) .. "\n")
    T.eq(keys_of("web1"), KEY_A, "settled again")
    T.write(path .. ".new", "web1 ssh-ed25519 " .. b64(KEY_C) .. "\n")
    T.eq(T.sh("touch -r '" .. path .. "' '" .. path .. ".new' && mv '" .. path .. ".new' '" .. path .. "'").rc,
         0, "mv")
    T.eq(keys_of("web1"), KEY_C, "replaced by rename")
    -- a line appended (what --accept-new-host-keys does)
    settled(path, "web1 ssh-ed25519 " .. b64(KEY_A) .. "\n")
    local a = assert(io.open(path, "ab"))
    a:write("web2 ssh-ed25519 " .. b64(KEY_B) .. "\n")
    a:close()
    T.eq(keys_of("web2"), KEY_B, "the appended line")
    T.eq(keys_of("web1"), KEY_A, "the first line still")
    -- another file: its own lines, then the first file's again
    T.write(d .. "/other", "web1 ssh-ed25519 " .. b64(KEY_C) .. "\n")
    T.eq(#assert(ssh.known_lines(d .. "/other", "web1", 22)), 1, "the other file")
    T.eq(assert(ssh.known_lines(d .. "/other", "web1", 22))[1].blob, KEY_C, "the other file's key")
    T.eq(keys_of("web1"), KEY_A, "the first file again")
    -- gone: no lines (a missing file is an empty one)
    fs.remove(path)
    T.eq(keys_of("web1"), "", "the file removed")
end)

T.test("an unreadable known_hosts is an error, also after a kept copy of it", function()
    local d = T.tmpdir()
    local path = d .. "/known_hosts"
    settled(path, "web1 ssh-ed25519 " .. b64(KEY_A) .. "\n")
    fs.remove(path)
    T.eq(T.sh("mkfifo '" .. path .. "'").rc, 0, "mkfifo")
    local got, err = ssh.known_lines(path, "web1", 22)
    T.eq(got, nil, "no lines from a FIFO")
    T.contains(err, "not a regular file", "the message")
end)

T.done()
