-- convert.ansible: `cutover convert ansible PLAYBOOK [-o OUT]`.  Reads
-- an Ansible playbook with its roles, task files, vars files and
-- templates, and writes the cutover equivalent.  Whatever it cannot
-- convert faithfully is reported (FILE:LINE:COL: ...) and, when it would
-- change what a step does, replaced by a `fail:` step that carries the
-- original text: the result lints and never silently does something
-- else.  See docs/convert.md.
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local source = require("cutover.load.source")

local M = {}

M.EXIT_OK, M.EXIT_PARTIAL, M.EXIT_BAD = 0, 1, 2

-- the module map (module_map.lua) and the regex translation (regex.lua)
M.MODULES = require("cutover.convert.ansible.module_map")
M.regex_to_lua = require("cutover.convert.ansible.regex").regex_to_lua

-- The converter: one per conversion; its methods are in the files
-- beside this one.
local C = {}
C.__index = C
-- (one require per line: require also returns where the module came from,
-- which a call last in a table constructor would add to the list)
local files_part = require("cutover.convert.ansible.files")
local values_part = require("cutover.convert.ansible.values")
local module_args_part = require("cutover.convert.ansible.module_args")
local step_part = require("cutover.convert.ansible.step")
local roles_part = require("cutover.convert.ansible.roles")
local play_part = require("cutover.convert.ansible.play")
for _, part in ipairs({ files_part, values_part, module_args_part, step_part, roles_part, play_part }) do
    for k, f in pairs(part.methods) do C[k] = f end
end

local function mkdir_p(dir)
    local path = dir:sub(1, 1) == "/" and "" or "."
    for part in dir:gmatch("[^/]+") do
        path = path .. "/" .. part
        if not fs.stat(path) then
            local ok, err = fs.mkdir(path, 493)
            if not ok and not fs.stat(path) then return nil, err end
        end
    end
    return true
end

---------------------------------------------------------------- entry

local function absolute(path)
    if path:sub(1, 1) == "/" then return path end
    local cwd = os.getenv("PWD") or "."
    return cwd .. "/" .. path
end

local function normalize(path)
    local parts = {}
    for p in path:gmatch("[^/]+") do
        if p == ".." then parts[#parts] = nil elseif p ~= "." then parts[#parts + 1] = p end
    end
    return "/" .. table.concat(parts, "/")
end

-- Converts `path`; returns { playbook = text, files = {rel -> text |
-- {copy = path}}, problems = {...} } or nil, error (bad input).
function M.convert(path)
    local c = setmetatable({
        path = path, base = path:match("^(.*)/[^/]*$") or ".", sources = {}, files = {}, problems = {},
        ids = {}, roles = {}, bad_templates = {}, jctx = { bools = {} }, listen = {}, late = {}, inputs = {},
            gates = {},
    }, C)
    if c.base == "" then c.base = "/" end
    local ok, out = pcall(function() return c:playbook_text(path) end)
    if not ok then
        if type(out) == "table" and out.bad_input then return nil, out.bad_input end
        error(out, 0)
    end
    for _, p in ipairs(c.late) do c.problems[#c.problems + 1] = p end
    -- by file, then line and column
    local function key(p)
        local f, l, col = p:match("^(.-):(%d+):(%d+): ")
        if not f then return p, 0, 0 end
        return f, tonumber(l), tonumber(col)
    end
    table.sort(c.problems, function(a, b)
        local fa, la, ca = key(a)
        local fb, lb, cb = key(b)
        if fa ~= fb then return fa < fb end
        if la ~= lb then return la < lb end
        if ca ~= cb then return ca < cb end
        return a < b
    end)
    return { playbook = out, files = c.files, problems = c.problems, inputs = c.inputs }
end

-- The command: returns the exit code.
function M.main(book, out_path)
    local st = fs.stat(book)
    if not st then io.stderr:write("cutover: " .. book ..
        ": cannot read the playbook (no such file)\n"); return M.EXIT_BAD end
    if st.type ~= "file" then io.stderr:write("cutover: " .. book .. ": not a file\n"); return M.EXIT_BAD end
    local in_dir = normalize(absolute(book)):match("^(.*)/[^/]*$")
    in_dir = fs.realpath(in_dir) or in_dir
    if out_path then
        local out_dir = normalize(absolute(out_path)):match("^(.*)/[^/]*$")
        out_dir = fs.realpath(out_dir) or out_dir
        if out_dir == in_dir then
            io.stderr:write("cutover: " .. out_path ..
                ": write the conversion to another folder than the playbook's (" ..
                in_dir .. "): it would overwrite the Ansible files\n")
            return M.EXIT_BAD
        end
    end
    local r, err = M.convert(book)
    if not r then io.stderr:write("cutover: " .. err .. "\n"); return M.EXIT_BAD end
    local extra = 0
    for _, content in pairs(r.files) do
        if content then extra = extra + 1 end
    end
    if out_path then
        local out_dir = out_path:match("^(.*)/[^/]*$") or "."
        -- never write over a file the conversion read (OUT inside the
        -- Ansible tree, a symlink into it)
        local targets = { out_path }
        for rel, content in pairs(r.files) do if content then targets[#targets + 1] = out_dir .. "/" .. rel end end
        for _, target in ipairs(targets) do
            local real = fs.stat(target) and fs.realpath(target)
            if real and r.inputs[real] then
                io.stderr:write("cutover: " .. target .. ": would overwrite " .. real ..
                    ", a file of the Ansible playbook: write the conversion to another folder\n")
                return M.EXIT_BAD
            end
        end
        local okm, merr = mkdir_p(out_dir)
        if not okm then io.stderr:write("cutover: " .. merr .. "\n"); return M.EXIT_BAD end
        local okw, werr = fs.write(out_path, r.playbook)
        if not okw then io.stderr:write("cutover: " .. werr .. "\n"); return M.EXIT_BAD end
        for _, rel in ipairs(util.sorted_keys(r.files)) do
            local content = r.files[rel]
            if content then
                local target = out_dir .. "/" .. rel
                local tdir = target:match("^(.*)/[^/]*$")
                local okd, derr = mkdir_p(tdir)
                if not okd then io.stderr:write("cutover: " .. derr .. "\n"); return M.EXIT_BAD end
                if type(content) == "table" then
                    local data, rerr = fs.read(content.copy, source.MAX_BYTES)
                    if not data then io.stderr:write("cutover: " .. rerr .. "\n"); return M.EXIT_BAD end
                    content = data
                end
                local okf, ferr = fs.write(target, content)
                if not okf then io.stderr:write("cutover: " .. ferr .. "\n"); return M.EXIT_BAD end
            end
        end
    else
        io.stdout:write(r.playbook)
        if extra > 0 then
            io.stderr:write(string.format("cutover: note: %d more file%s (roles, task files, vars files, " ..
                "templates) are written only with -o OUT\n",
                extra, extra == 1 and "" or "s"))
        end
    end
    for _, p in ipairs(r.problems) do io.stderr:write(p, "\n") end
    if #r.problems > 0 then
        io.stderr:write(string.format("%d construct%s not converted (see docs/convert.md)\n", #r.problems,
            #r.problems == 1 and "" or "s"))
        return M.EXIT_PARTIAL
    end
    return M.EXIT_OK
end

return M
