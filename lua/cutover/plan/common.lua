-- plan.common: what the plan commands share: the format version, masking
-- (every string written to a plan or printed), JSON text, file digests.
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local output = require("cutover.output")

local M = {}

M.FORMAT_VERSION = 1

-- Secrets: every string written to a plan, or printed, goes through the
-- redaction module.  Required plainly: if it cannot load, no plan is
-- written at all (never one with secrets unmasked).
local redact = require("cutover.secrets.redact")
M.redact = redact

function M.mask(s)
    if type(s) == "string" then return redact.text(s) end
    return s
end

-- A copy of v with every string (keys too) masked.
function M.mask_value(v, depth)
    depth = depth or 0
    if type(v) == "string" then return M.mask(v) end
    if type(v) ~= "table" or depth > 64 then return v end
    local out = {}
    for k, x in pairs(v) do
        out[type(k) == "string" and M.mask(k) or k] = M.mask_value(x, depth + 1)
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then setmetatable(out, mt) end
    return out
end

-- Text shown on a terminal: masked, then with control characters
-- escaped (a plan's messages and diffs come from its hosts).
function M.shown(s) return output.escape(M.mask(s)) end

function M.err_out(s) output.note(M.shown(s)) end

function M.array(t) return setmetatable(t, { __jsontype = "array" }) end

function M.encode(v)
    local ok, s = pcall(json.encode, v)
    if ok then return s end
    return tostring(v)
end

function M.file_sha256(path)
    local ok, d = pcall(fs.sha256, path)
    if ok then return d end
    return nil
end

function M.absolute(path)
    if not path then return nil end
    local ok, p = pcall(fs.realpath, path)
    if ok and p then return p end
    return path
end

function M.indent(text, prefix)
    return prefix .. tostring(text):gsub("\n$", ""):gsub("\n", "\n" .. prefix)
end

return M
