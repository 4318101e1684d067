-- convert.ansible.files: the converter's input files and positions
-- (load, FILE:LINE:COL, a task's original text), paths below the
-- playbook's folder, and the copied or converted files steps read.
-- Part of the converter in init.lua: these are its methods.
local yaml = require("cutover.core.yaml")
local fs = require("cutover.core.fs")
local source = require("cutover.load.source")
local jinja = require("cutover.convert.jinja")
local common = require("cutover.convert.ansible.common")
local bad, pattern_lines = common.bad, common.pattern_lines

local C = {}

function C:load(path, what)
    if self.sources[path] then return self.sources[path] end
    local src, err = source.read(path, what)
    if not src then bad(err) end
    self.sources[path] = src
    self.inputs[fs.realpath(path) or path] = true
    return src
end

-- FILE:LINE:COL of table t (or key k in it)
function C:at(src, t, k)
    local packed
    if k ~= nil and src.keypos[t] then packed = src.keypos[t][k] end
    packed = packed or src.pos[t]
    if not packed then return src.path end
    local line, col = yaml.unpack(packed)
    return string.format("%s:%d:%d", src.path, line, col), line, col
end

function C:report(where, msg)
    self.problems[#self.problems + 1] = where .. ": " .. msg
end

-- The original text of a mapping item of a sequence (a task): its first
-- line and every following line indented more than its dash.
function C:original_text(src, t)
    local _, line, col = self:at(src, t)
    if not line then return "" end
    src.lines = src.lines or pattern_lines(src.text)
    local lines = src.lines
    local out = { lines[line] }
    local dash = col - 2
    for i = line + 1, #lines do
        local l = lines[i]
        local indent = #(l:match("^ *"))
        if l:match("^%s*$") then out[#out + 1] = l
        elseif indent > dash then out[#out + 1] = l
        else break end
    end
    while #out > 1 and out[#out]:match("^%s*$") do out[#out] = nil end
    return table.concat(out, "\n")
end

-- Relative path of an input file below the playbook's folder (nil if
-- outside it: such a file is never written by the conversion).
-- a path with "." parts dropped and "x/.." folded ("." for nothing)
local function tidy(path)
    local parts = {}
    for p in path:gmatch("[^/]+") do
        if p == ".." and #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
        elseif p ~= "." then parts[#parts + 1] = p end
    end
    local s = table.concat(parts, "/")
    if path:sub(1, 1) == "/" then return "/" .. s end
    return s == "" and "." or s
end

function C:rel(path)
    local p, b = tidy(path), tidy(self.base)
    local r
    if b == "." then
        r = p
    elseif p:sub(1, #b + 1) == b .. "/" then
        r = p:sub(#b + 2)
    elseif b == "/" and p:sub(1, 1) == "/" then
        r = p:sub(2)
    end
    if not r or r == "." or r:sub(1, 1) == "/" or r == ".." or r:sub(1, 3) == "../" then return nil end
    return r
end

-- path (relative to the output root) as seen from folder dir (also
-- relative to the root)
function C:relative_to(path, dir)
    if dir == "" then return path end
    local a, b = {}, {}
    for p in path:gmatch("[^/]+") do a[#a + 1] = p end
    for p in dir:gmatch("[^/]+") do b[#b + 1] = p end
    local i = 1
    while i <= #a and i <= #b and a[i] == b[i] do i = i + 1 end
    local parts = {}
    for _ = i, #b do parts[#parts + 1] = ".." end
    for j = i, #a do parts[#parts + 1] = a[j] end
    return table.concat(parts, "/")
end

-- A file a step reads (copy src, template src): copied, or for a
-- template converted; returns its output path relative to the root.
function C:file_out(path, is_template)
    local rel = self:rel(path)
    if not rel then return nil end
    self.last_file = rel
    if self.files[rel] then return rel end
    local text, err = fs.read(path, source.MAX_BYTES)
    if not text then bad(err) end
    self.inputs[fs.realpath(path) or path] = true
    if is_template then
        local out, problems = jinja.template(text, self.jctx)
        -- kept apart: a failing step drops the reports made inside it
        for _, p in ipairs(problems) do
            self.late[#self.late + 1] = string.format("%s:%d:%d: template: %s", path, p.line, p.col, p.msg)
        end
        if #problems > 0 then
            -- the step that renders it fails instead (see step())
            self.bad_templates[rel] = true
            self.files[rel] = text
            return rel
        end
        self.files[rel] = out
    else
        self.files[rel] = { copy = path }
    end
    return rel
end

function C:find_file(src_path, kind, ctx)
    -- where Ansible finds a relative src: the role's folder for the kind,
    -- then the playbook's, then beside the file
    if src_path:sub(1, 1) == "/" or src_path:find("{{", 1, true) then return nil end
    local dirs = {}
    if ctx.role_dir then dirs[#dirs + 1] = ctx.role_dir .. "/" .. kind; dirs[#dirs + 1] = ctx.role_dir end
    dirs[#dirs + 1] = self.base .. "/" .. kind
    dirs[#dirs + 1] = self.base
    for _, d in ipairs(dirs) do
        local p = d .. "/" .. src_path
        local st = fs.stat(p)
        if st then return p, st end
    end
end

return { methods = C }
