-- secrets.vault: the secrets vault file.  The cryptography is core/vault.c
-- (Argon2id key derivation, XChaCha20-Poly1305); this file owns the
-- format, where the vault lives, and how the passphrase is obtained.
--
-- Format (version 1), two text lines:
--   cutover-vault 1 <salt, base64>
--   <base64 of nonce .. ciphertext .. tag>
-- The ciphertext holds one JSON object NAME -> value (text).  The header
-- line is authenticated with it (AEAD additional data), so a changed
-- version or salt is detected as damage.  The salt is made when the
-- vault is created; every write draws a fresh random nonce, so two writes
-- of the same secrets never give the same bytes.  Writes are atomic
-- (fs.write: temporary file, fsync, rename) with mode 0600.
--
-- Location: --vault PATH, else $CUTOVER_VAULT, else
-- $XDG_DATA_HOME/cutover/vault (XDG_DATA_HOME defaults to
-- ~/.local/share; missing folders are made with mode 0700).
-- Passphrase: the first line of the file named by
-- CUTOVER_VAULT_PASSWORD_FILE, else asked on the terminal (no echo;
-- twice when the vault is created).
local core = require("cutover.core.vault")
local fs = require("cutover.core.fs")
local sys = require("cutover.core.sys")
local json = require("cutover.core.json")
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")
local output = require("cutover.output")

local M = {}

M.FORMAT = 1
M.MAGIC = "cutover-vault"
M.WRONG_PASSPHRASE = "wrong vault passphrase"
M.MAX_FILE = 16 * 1024 * 1024
M.MAX_VALUE = 1024 * 1024

-- Kinds of failure (the third return value of open/load), so the command
-- line can choose an exit code.
M.E_PASSPHRASE = "passphrase"  -- wrong passphrase or damaged data
M.E_MISSING = "missing"        -- no vault file yet
M.E_USAGE = "usage"            -- nothing to ask the passphrase on, etc.
M.E_FILE = "file"              -- unreadable, not a vault, newer format

function M.valid_name(name)
    return type(name) == "string" and name:match("^[%a_][%w_]*$") ~= nil
end

-- The vault's path: explicit, $CUTOVER_VAULT, or the XDG default.
-- Returns path, is_default.
function M.path(explicit)
    if explicit and explicit ~= "" then return explicit, false end
    local env = os.getenv("CUTOVER_VAULT")
    if env and env ~= "" then return env, false end
    local data = os.getenv("XDG_DATA_HOME")
    if not data or data == "" then
        data = (os.getenv("HOME") or "/root") .. "/.local/share"
    end
    return data .. "/cutover/vault", true
end

-- mkdir -p with mode 0700 for each folder it makes.
local function make_parents(path)
    local dir = util.dirname(path)
    local missing = {}
    while dir ~= "" and dir ~= "/" and dir ~= "." and not fs.stat(dir, true) do
        table.insert(missing, 1, dir)
        dir = util.dirname(dir)
    end
    for _, d in ipairs(missing) do
        local ok, err, code = fs.mkdir(d, 448)
        if not ok and code ~= 17 then return nil, err end
    end
    return true
end

-- The passphrase: from CUTOVER_VAULT_PASSWORD_FILE (first line), else
-- the terminal (asked twice when creating).  Returns text | nil, message.
function M.passphrase(path, creating)
    local file = os.getenv("CUTOVER_VAULT_PASSWORD_FILE")
    if file and file ~= "" then
        local text, err = fs.read(file, 64 * 1024)
        if not text then return nil, "CUTOVER_VAULT_PASSWORD_FILE: " .. err end
        local line = text:match("^[^\n]*"):gsub("\r$", "")
        if line == "" then
            return nil, "CUTOVER_VAULT_PASSWORD_FILE: " .. file .. ": the first line is empty"
        end
        return line
    end
    local prompt = (creating and "New vault passphrase for " or "Vault passphrase for ") .. path .. ": "
    local pass, err = sys.read_secret(prompt)
    if not pass then
        return nil, "cannot ask for the vault passphrase: " .. err ..
            "; set CUTOVER_VAULT_PASSWORD_FILE to a file holding it"
    end
    if pass == "" then return nil, "the vault passphrase is empty" end
    if creating then
        local again = sys.read_secret("Same passphrase again: ")
        if again ~= pass then return nil, "the two passphrases differ; nothing was written" end
    end
    return pass
end

local Vault = {}
Vault.__index = Vault

local function header_line(salt)
    return M.MAGIC .. " " .. M.FORMAT .. " " .. core.to_base64(salt)
end

-- Parses and decrypts the file at path with pass.
-- Returns a vault | nil, message, kind.
function M.load(path, pass)
    local text, err, code = fs.read(path, M.MAX_FILE)
    if not text then
        if code == 2 then return nil, "no vault at " .. path, M.E_MISSING end
        return nil, err, M.E_FILE
    end
    local header, blob = text:match("^([^\n]*)\n([^\n]*)\n?$")
    local magic, version, salt64 = (header or ""):match("^(%S+) (%d+) (%S+)$")
    if magic ~= M.MAGIC then
        return nil, path .. ": not a cutover vault file", M.E_FILE
    end
    if tonumber(version) ~= M.FORMAT then
        return nil, path .. ": vault format " .. version .. " (this cutover reads format " ..
            M.FORMAT .. "; a newer cutover wrote it?)", M.E_FILE
    end
    local salt = core.from_base64(salt64)
    local sealed = core.from_base64(blob)
    if not salt or #salt ~= core.SALT_BYTES or not sealed then
        return nil, path .. ": damaged vault file (bad header or data)", M.E_FILE
    end
    local key, kerr = core.derive(pass, salt)
    if not key then return nil, kerr, M.E_FILE end
    local plain = key:decrypt(sealed, header)
    if not plain then
        key:close()
        return nil, M.WRONG_PASSPHRASE .. " (or a damaged vault file: " .. path .. ")", M.E_PASSPHRASE
    end
    local values = json.decode(plain)
    if type(values) ~= "table" then
        key:close()
        return nil, path .. ": damaged vault contents", M.E_FILE
    end
    for k, v in pairs(values) do
        if not M.valid_name(k) or type(v) ~= "string" then
            key:close()
            return nil, path .. ": damaged vault contents", M.E_FILE
        end
    end
    return setmetatable({ path = path, key = key, salt = salt, values = values }, Vault)
end

-- A new, empty vault (not written until save).
function M.new(path, pass)
    local salt = core.salt()
    local key, err = core.derive(pass, salt)
    if not key then return nil, err, M.E_FILE end
    return setmetatable({ path = path, key = key, salt = salt, values = {}, new = true }, Vault)
end

-- Opens the vault at the resolved path, asking for the passphrase.
-- opts.create: an absent vault is made (empty, in memory).
-- Returns vault | nil, message, kind.
function M.open(explicit, opts)
    opts = opts or {}
    local path, is_default = M.path(explicit)
    local st = fs.stat(path, true)
    if not st then
        if not opts.create then return nil, "no vault at " .. path, M.E_MISSING end
        local pass, perr = M.passphrase(path, true)
        if not pass then return nil, perr, M.E_USAGE end
        local v, err, kind = M.new(path, pass)
        if v then v.make_parents = is_default end
        return v, err, kind
    end
    if st.type ~= "file" then return nil, path .. ": not a file", M.E_FILE end
    local pass, perr = M.passphrase(path, false)
    if not pass then return nil, perr, M.E_USAGE end
    return M.load(path, pass)
end

function Vault:names()
    return util.sorted_keys(self.values)
end

function Vault:get(name) return self.values[name] end

function Vault:set(name, value)
    assert(M.valid_name(name), "bad secret name")
    assert(type(value) == "string", "a secret is text")
    self.values[name] = value
end

function Vault:remove(name)
    local had = self.values[name] ~= nil
    self.values[name] = nil
    return had
end

-- Encrypts and writes atomically (mode 0600).  Returns true | nil, message.
function Vault:save()
    if self.make_parents then
        local ok, err = make_parents(self.path)
        if not ok then return nil, err end
    end
    local header = header_line(self.salt)
    local sealed = self.key:encrypt(json.encode(self.values), header)
    local ok, err = fs.write(self.path, header .. "\n" .. core.to_base64(sealed) .. "\n", 384)
    if not ok then return nil, err end
    self.new = nil
    return true
end

function Vault:close()
    self.key:close()
    self.values = {}
end

---------------------------------------------------------------- commands

local function say(msg) output.error(msg) end

-- The value for `vault set`: asked twice without echo on a terminal,
-- else all of stdin less one trailing newline.  Returns text | nil, msg.
local function read_value(name)
    local value
    if sys.isatty(0) then
        local err
        value, err = sys.read_secret("Value of " .. name .. ": ")
        if not value then return nil, "cannot ask for the value: " .. err end
        if sys.read_secret("Same value again: ") ~= value then
            return nil, "the two values differ; nothing was written"
        end
    else
        value = io.stdin:read(M.MAX_VALUE + 2) or ""
        if io.stdin:read(0) ~= nil then
            return nil, "the value is longer than " .. M.MAX_VALUE .. " bytes"
        end
        value = value:gsub("\r?\n$", "")
    end
    if value == "" then return nil, "the value is empty; nothing was written" end
    if #value > M.MAX_VALUE then
        return nil, "the value is longer than " .. M.MAX_VALUE .. " bytes"
    end
    if not utf8.len(value) then
        return nil, "the value is not UTF-8 text (store binary data base64-encoded)"
    end
    return value
end

-- `cutover vault set NAME | list | rm NAME` (arguments checked by cli).
-- Returns the exit code: 0 done, 1 a vault that cannot be read or
-- written, 2 usage or a wrong passphrase (invalid input: nothing was
-- done, as run, plan and apply say for it too).
function M.command(sub, name, explicit)
    local v, err, kind = M.open(explicit, { create = sub == "set" })
    if not v then
        if kind == M.E_MISSING and sub == "list" then
            say(err .. " (cutover vault set NAME creates it)")
            return 0
        end
        say(err)
        return (kind == M.E_USAGE or kind == M.E_PASSPHRASE) and 2 or 1
    end
    local code = 0
    if sub == "list" then
        for _, n in ipairs(v:names()) do io.stdout:write(n, "\n") end
    elseif sub == "set" then
        local value, verr = read_value(name)
        if not value then
            say(verr)
            code = 2
        else
            redact.register(value)
            local existed = v:get(name) ~= nil
            v:set(name, value)
            local ok, werr = v:save()
            if ok then
                io.stdout:write((existed and "replaced " or "set ") .. name .. " in " .. v.path .. "\n")
            else
                say(werr)
                code = 1
            end
        end
    elseif not v:remove(name) then
        say("no secret '" .. name .. "' in the vault " .. v.path)
        code = 1
    else
        local ok, werr = v:save()
        if ok then io.stdout:write("removed " .. name .. " from " .. v.path .. "\n")
        else say(werr); code = 1 end
    end
    v:close()
    return code
end

return M
