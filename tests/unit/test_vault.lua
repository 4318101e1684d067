-- Units of the vault: core/vault.c (cutover.core.vault), the vault file
-- (cutover.secrets.vault) and masking (cutover.secrets.redact).  Failure messages never
-- show a secret value: lengths and digests only.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local core = require("cutover.core.vault")
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local vault = require("cutover.secrets.vault")
local redact = require("cutover.secrets.redact")
local util = require("cutover.util")

-- Fails without showing the value: its length and digest instead.
local function absent(hay, needle, what)
    if hay:find(needle, 1, true) then
        error(what .. ": holds a secret form (" .. #needle .. " bytes, sha256 " ..
              crypto.sha256(needle):sub(1, 12) .. ")", 2)
    end
end

local function raises(fn, pattern, what)
    local ok, err = pcall(fn)
    T.ok(not ok, (what or "call") .. " raises")
    T.match(tostring(err), pattern, what)
end

-- One derivation (0.6 s each) shared by the C-module tests.
local SALT = core.salt()
local KEY = assert(core.derive("correct horse", SALT))

T.test("core.vault: salts are random and of the stated size", function()
    local a, b = core.salt(), core.salt()
    T.eq(#a, core.SALT_BYTES, "salt size")
    T.ok(a ~= b, "two salts differ")
    T.eq(core.SALT_BYTES, 16, "SALT_BYTES")
end)

T.test("core.vault: misuse raises", function()
    raises(function() core.derive("", SALT) end, "passphrase is empty", "empty passphrase")
    raises(function() core.derive("x", "short") end, "wrong size", "bad salt")
    raises(function() core.derive(nil, SALT) end, "string expected", "no passphrase")
    raises(function() KEY.encrypt("not a key", "x") end, "vault.key expected", "not a key")
    raises(function() KEY:encrypt() end, "string expected", "nothing to encrypt")
end)

T.test("core.vault: encrypt then decrypt, fresh nonce each time", function()
    local text = "line one\nline \0 two \255"
    local a = KEY:encrypt(text)
    local b = KEY:encrypt(text)
    T.ok(a ~= b, "two encryptions of the same text differ")
    T.eq(#a, 24 + #text + 16, "nonce + text + tag")
    T.ok(a:sub(1, 24) ~= b:sub(1, 24), "nonces differ")
    T.ok(KEY:decrypt(a) == text, "round trip a")
    T.ok(KEY:decrypt(b) == text, "round trip b")
    T.ok(KEY:decrypt(KEY:encrypt("")) == "", "empty text")
    local with_ad = KEY:encrypt("data", "header")
    T.ok(KEY:decrypt(with_ad, "header") == "data", "with additional data")
    local none, msg = KEY:decrypt(with_ad, "headex")
    T.eq(none, nil, "other additional data")
    T.eq(msg, "wrong passphrase or damaged data")
    T.eq(KEY:decrypt(with_ad), nil, "missing additional data")
end)

T.test("core.vault: a wrong key, a changed byte, a short input fail", function()
    local sealed = KEY:encrypt("payload")
    -- under memcheck the other key at the low test cost (a MODERATE
    -- derivation takes about 7 s under valgrind; KEY's already ran there)
    local other = assert(core.derive("correct horsf", SALT, T.memcheck and "test" or nil))
    local v, msg = other:decrypt(sealed)
    T.eq(v, nil, "other passphrase")
    T.eq(msg, "wrong passphrase or damaged data")
    for _, i in ipairs({ 1, 24, 25, #sealed }) do
        local b = sealed:byte(i)
        local bad = sealed:sub(1, i - 1) .. string.char(b ~ 1) .. sealed:sub(i + 1)
        T.eq(KEY:decrypt(bad), nil, "byte " .. i .. " changed")
    end
    T.eq(select(2, KEY:decrypt("short")), "wrong passphrase or damaged data", "too short")
    T.eq(KEY:decrypt(""), nil, "empty")
    other:close()
end)

T.test("core.vault: a closed key raises and never shows its bytes", function()
    -- (the low test cost: the key's life is the same at any cost)
    local k = assert(core.derive("p", SALT, "test"))
    T.eq(tostring(k), "vault key")
    k:close()
    T.eq(tostring(k), "vault key (closed)")
    raises(function() k:encrypt("x") end, "closed vault key", "encrypt after close")
    raises(function() k:decrypt("x") end, "closed vault key", "decrypt after close")
    k:close()  -- twice is fine
    do
        local scoped <close> = assert(core.derive("p", SALT, "test"))
        T.ok(scoped:decrypt(scoped:encrypt("y")) == "y", "to-be-closed key works")
    end
end)

T.test("core.vault: base64", function()
    for _, s in ipairs({ "", "a", "ab", "abc", "\0\255\1binary" }) do
        T.eq(core.from_base64(core.to_base64(s)), s, "round trip of " .. #s .. " bytes")
    end
    T.eq(core.to_base64("abc"), "YWJj")
    local v, msg = core.from_base64("YWJj!")
    T.eq(v, nil, "bad character")
    T.eq(msg, "not valid base64")
    T.eq(core.from_base64("YWJ"), nil, "missing padding")
end)

---------------------------------------------------------------- file

T.test("vault file: write, read back, mode 0600, no temporary file left", function()
    local d = T.tmpdir()
    local path = d .. "/vault"
    local v = assert(vault.new(path, "pass one"))
    v:set("db_password", "s3cret value")
    v:set("api_token", "tok")
    assert(v:save())
    T.eq(fs.stat(path).mode, 384, "mode 0600")
    local names = fs.list(d)
    T.eq(#names, 1, "only the vault in its folder")
    T.eq(names[1], "vault")
    local text = T.read(path)
    -- under memcheck the files are made at the low test cost (each
    -- MODERATE derivation takes seconds under valgrind); it says so
    local mark = T.memcheck and " kdf=test" or ""
    T.match(text, "^cutover%-vault 1 [%w+/=]+" .. mark .. "\n[%w+/=]+\n$", "format")
    absent(text, "s3cret value", "vault file")
    local r = assert(vault.load(path, "pass one"))
    T.ok(r:get("db_password") == "s3cret value", "value read back")
    T.eq(table.concat(r:names(), ","), "api_token,db_password", "names")
    -- a second write of the same content: same salt, different bytes
    assert(r:save())
    local again = T.read(path)
    T.ok(again ~= text, "two writes of the same content differ")
    T.eq(again:match("^[^\n]*"), text:match("^[^\n]*"), "header (salt) kept")
    T.eq(#fs.list(d), 1, "still no temporary file")
    T.ok(r:remove("api_token"), "remove")
    T.eq(r:remove("api_token"), false, "remove twice")
    assert(r:save())
    r:close()
    local r2 = assert(vault.load(path, "pass one"))
    T.eq(table.concat(r2:names(), ","), "db_password", "after remove")
    r2:close()
    v:close()
end)

T.test("vault file: wrong passphrase, tampered file, newer format, not a vault", function()
    local d = T.tmpdir()
    local path = d .. "/vault"
    local v = assert(vault.new(path, "right"))
    v:set("x", "value-x")
    assert(v:save())
    v:close()
    local good = T.read(path)
    local r, msg, kind = vault.load(path, "wrong")
    T.eq(r, nil, "wrong passphrase")
    T.match(msg, "^wrong vault passphrase", "message")
    T.eq(kind, vault.E_PASSPHRASE, "kind")
    -- one character of the data changed
    local header, blob = good:match("^([^\n]*)\n([^\n]*)\n$")
    local c = blob:sub(10, 10) == "A" and "B" or "A"
    T.write(path, header .. "\n" .. blob:sub(1, 9) .. c .. blob:sub(11) .. "\n")
    r, msg, kind = vault.load(path, "right")
    T.eq(r, nil, "tampered data")
    T.eq(kind, vault.E_PASSPHRASE, "tampered data kind")
    -- another salt in the header: authenticated, so detected
    T.write(path, "cutover-vault 1 " .. core.to_base64(core.salt()) .. (T.memcheck and " kdf=test" or "") ..
            "\n" .. blob .. "\n")
    T.eq(vault.load(path, "right"), nil, "tampered salt")
    T.write(path, good:gsub("^cutover%-vault 1 ", "cutover-vault 2 "))
    r, msg, kind = vault.load(path, "right")
    T.eq(r, nil, "newer format")
    T.match(msg, "vault format 2 %(this cutover reads format 1", "newer format message")
    T.eq(kind, vault.E_FILE)
    T.write(path, "hello\n")
    r, msg = vault.load(path, "right")
    T.match(msg, "not a cutover vault file", "not a vault")
    r, msg, kind = vault.load(d .. "/none", "right")
    T.eq(kind, vault.E_MISSING, "missing")
    T.match(msg, "^no vault at ", "missing message")
end)

T.test("vault: names and the default location", function()
    for _, n in ipairs({ "a", "_x", "db_password", "A1" }) do T.ok(vault.valid_name(n), n) end
    for _, n in ipairs({ "", "1a", "a-b", "a.b", "a b" }) do T.ok(not vault.valid_name(n), n) end
    T.eq(vault.path("/x/v"), "/x/v", "explicit path wins")
end)

---------------------------------------------------------------- masking

T.test("redact: nothing registered is the identity", function()
    redact.reset()
    T.eq(redact.active(), false)
    local s = "some text"
    T.ok(redact.text(s) == s, "same string")
    local t = { a = 1 }
    T.ok(redact.value(t) == t, "same table")
    T.eq(redact.json_line('{"a":1}'), '{"a":1}')
end)

T.test("redact: the value, its quoting and escaping, and its lines", function()
    redact.reset()
    local secret = "p@ss w'o\"rd \\ &^<>|%\n2nd-Line_x!"
    redact.register(secret)
    T.eq(redact.active(), true)
    local forms = {
        secret, util.sh_quote(secret), json.encode(secret):sub(2, -2),
        "p@ss w'o\"rd \\ &^<>|%", "2nd-Line_x!", util.sh_quote("2nd-Line_x!"),
        util.sh_quote("p@ss w'o\"rd \\ &^<>|%"),
        json.encode("p@ss w'o\"rd \\ &^<>|%"):sub(2, -2),
        json.encode(json.encode(secret)):sub(2, -2),
    }
    for i, f in ipairs(forms) do
        local out = redact.text("before " .. f .. " after")
        absent(out, "p@ss", "form " .. i)
        absent(out, "2nd-Line", "form " .. i)
        T.contains(out, "before ", "form " .. i)
        T.contains(out, " after", "form " .. i)
        T.contains(out, "********", "form " .. i)
    end
    -- text reporter style: every line indented
    local indented = "      stderr: " .. secret:gsub("\n", "\n      stderr: ")
    absent(redact.text(indented), "2nd-Line", "indented lines")
    absent(redact.text(indented), "w'o", "indented lines")
    redact.reset()
end)

T.test("redact: short values, overlaps, several secrets in one pass", function()
    redact.reset()
    redact.register("ab")
    T.eq(redact.text("xaby"), "x********y", "two characters")
    redact.reset()
    redact.register("abcd")
    redact.register("cdef")
    T.eq(redact.text("1abcdef2"), "1********2", "overlapping secrets merge")
    T.eq(redact.text("aaabcd abcd"), "aa******** ********", "each occurrence")
    redact.register("abcd")  -- twice is the same
    T.eq(redact.text("no secret here"), "no secret here")
    redact.reset()
end)

T.test("redact: JSON events stay valid JSON", function()
    redact.reset()
    local secret = 'q"u\\o\nline-2'
    redact.register(secret)
    redact.register("nb")
    local event = { event = "x", msg = "a " .. secret .. " b", [secret] = 1,
                    list = setmetatable({}, { __jsontype = "array" }),
                    nested = { "\nb", "n" .. "b" } }
    local line = redact.json_line(json.encode(redact.value(event)))
    local back = assert(json.decode(line), "valid JSON")
    absent(line, "u\\\\o", "event")
    T.eq(back.msg, "a ******** b")
    T.eq(back["********"], 1, "a key is masked")
    T.contains(line, '"list":[]', "array kept")
    T.eq(back.nested[1], "\nb", "an escape is not the secret 'nb'")
    T.eq(back.nested[2], "********")
    -- a raw match across an escape sequence keeps the JSON valid
    for _, s in ipairs({ '{"a":"x\\nb"}', '{"a":"\\u0041nb\\"nb"}', '{"nb":true}' }) do
        assert(json.decode(redact.json_line(s)), "valid after masking")
    end
    redact.reset()
end)

T.test("core.vault: the low test cost, in test programs only (this one is)", function()
    T.eq(core.TEST_KDF, true, "cutover_luatest allows it")
    local low = assert(core.derive("correct horse", SALT, "test"))
    local sealed = low:encrypt("text")
    T.eq(low:decrypt(sealed), "text", "round trip")
    T.eq(KEY:decrypt(sealed), nil, "another key than MODERATE's")
    -- a second MODERATE derivation (7 s under valgrind) in the other builds
    if not T.memcheck then
        T.eq(assert(core.derive("correct horse", SALT, "moderate")):decrypt(KEY:encrypt("x")), "x",
             "moderate: the default")
    end
    raises(function() core.derive("p", SALT, "cheap") end, "invalid option", "an unknown cost")
    low:close()
end)

T.done()
