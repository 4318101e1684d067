-- load.source: reads a YAML file (a playbook, an inventory, a vars file)
-- with the size limit, and keeps where each part of it came from, so
-- every loader reports FILE:LINE:COL the same way.
local yaml = require("cutover.core.yaml")
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")

local M = {}

-- The largest file any loader reads (checked before parsing).
M.MAX_BYTES = 8 * 1024 * 1024

-- The text of path, at most MAX_BYTES; a larger file is refused as
-- "PATH: WHAT is larger than the limit of N bytes".
function M.read_text(path, what)
    local text, err = fs.read(path, M.MAX_BYTES)
    if not text then
        if err:find("larger than the limit", 1, true) then
            return nil, path .. ": " .. (what or "file") .. " is larger than the limit of " ..
                M.MAX_BYTES .. " bytes"
        end
        return nil, err
    end
    return text
end

-- A loaded YAML file: the value and where each part of it came from.
local Source = {}
Source.__index = Source

-- Returns a Source: path, value, pos (table -> position), keypos (table
-- -> key -> position), digest (sha256 of the text), text | nil, message.
function M.read(path, what)
    local text, err = M.read_text(path, what)
    if not text then return nil, err end
    local value, pos, keypos = yaml.load(text, path)
    if value == nil then return nil, pos end
    return setmetatable({ path = path, value = value, pos = pos, keypos = keypos,
                          digest = crypto.sha256(text), text = text }, Source)
end

-- "PATH:LINE:COL" of a packed position (just PATH without one).
function M.format(path, packed)
    if not packed then return path end
    local line, col = yaml.unpack(packed)
    return string.format("%s:%d:%d", path, line, col)
end

-- Position of a table, or of key k inside table t.
function Source:at(t, k)
    if k ~= nil then
        local kp = self.keypos[t]
        if kp and kp[k] then return M.format(self.path, kp[k]) end
    end
    return M.format(self.path, self.pos[t])
end

return M
