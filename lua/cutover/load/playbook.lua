-- load.playbook: loads a playbook file and validates it completely before
-- anything runs.  Every problem is reported as FILE:LINE:COL: message,
-- naming the play or step; all problems are collected, not just the first.
--
-- The loader is one object (Loader) whose methods live in four files:
-- this one (the entry points, the plays of a file, import_playbook, step
-- ids, errors, files read), play.lua (one play), step.lua (one step),
-- reuse.lua (import/include of steps files and roles); checks.lua holds
-- the type checks they share.
local fs = require("cutover.core.fs")
local expr = require("cutover.expr")
local util = require("cutover.util")
local source = require("cutover.load.source")
local checks = require("cutover.load.checks")

local is_null, is_mapping = checks.is_null, checks.is_mapping

local M = {}

local BECOME_METHODS = { sudo = true, su = true }
local MAX_IMPORT_DEPTH = 16

local Loader = {}
Loader.__index = Loader

-- (one require per line: require also returns where the module came from,
-- which a call last in a table constructor would add to the list)
local play_part = require("cutover.load.play")
local step_part = require("cutover.load.step")
local reuse_part = require("cutover.load.reuse")
for _, part in ipairs({ play_part, step_part, reuse_part }) do
    for k, f in pairs(part.methods) do Loader[k] = f end
end

-- An error inside an imported file also names the chain that imported it.
function Loader:err(where, msg)
    self.errors[#self.errors + 1] = where .. ": " .. msg .. self:chain_text()
end

function Loader:chain_text()
    if #self.chain == 0 then return "" end
    local parts = {}
    for i = #self.chain, 1, -1 do
        parts[#parts + 1] = self.chain[i].how .. " at " .. self.chain[i].where
    end
    return " (" .. table.concat(parts, ", ") .. ")"
end

-- Every expression and template, where it is (for lint's variable check).
function Loader:record_use(kind, text, where, label)
    self.uses[#self.uses + 1] = { kind = kind, text = text, where = where, label = label }
end

function Loader:check_condition(src, t, key, label)
    local v = t[key]
    if v == nil then return end
    local ok, err = expr.check_condition(v)
    if not ok then self:err(src:at(t, key), label .. ": " .. key .. ": " .. err) end
    for _, c in ipairs(type(v) == "table" and v or { v }) do
        if type(c) == "string" then
            self:record_use("condition", c:match("^%s*{{(.-)}}%s*$") or c, src:at(t, key), label)
        end
    end
end

-- Checks the {{ }} syntax of every string inside v.
function Loader:check_templates(src, v, t, key, label, depth)
    depth = depth or 0
    if type(v) == "string" then
        if expr.has_template(v) then
            local ok, err = expr.check_template(v)
            if not ok then self:err(src:at(t, key), label .. ": " .. err) end
            self:record_use("template", v, src:at(t, key), label)
        end
    elseif type(v) == "table" and depth < 32 then
        for k, x in pairs(v) do self:check_templates(src, x, v, k, label, depth + 1) end
    end
end

function Loader:step_id(step, label, src, t)
    local id = step.id
    if id ~= nil then
        if type(id) ~= "string" or not id:match("^[%w][%w%-_%.]*$") then
            self:err(src:at(t, "id"), label .. ": id must be letters, digits, '-', '_' or '.'")
            return nil, true
        end
        return id, true
    end
    if type(step.name) == "string" then return util.slug(step.name), true, true end
    return nil, false
end

-- where: a function giving the step's position (computed only for an
-- error: formatting it for every step of a large playbook costs).
function Loader:claim_id(id, explicit, where, label, from_name)
    if not id then return end
    -- steps of an imported file or a role: under the import's id, so one
    -- file brought in twice keeps its ids unique (and stable)
    id = self.prefix .. id
    local prev = self.ids[id]
    if prev then
        -- ids taken by name or id: the first one's where(); others: true
        if explicit and prev ~= true and from_name then
            self:err(where(), label .. ": its name gives the step id '" .. id .. "', already used at " .. prev() ..
                "; rename the step or give it an 'id:'")
            return id
        elseif explicit and prev ~= true then
            self:err(where(), label .. ": duplicate step id '" .. id .. "' (first used at " .. prev() ..
                "); step ids must be unique")
            return id
        end
        local n = 2
        while self.ids[id .. "-" .. n] do n = n + 1 end
        id = id .. "-" .. n
    end
    self.ids[id] = explicit and where or true
    return id
end

-- Reads the become keywords of t into into (a step or a play).
function Loader:become_keys(src, t, into, label)
    if t.become ~= nil then
        if type(t.become) == "boolean" or (type(t.become) == "string" and expr.has_template(t.become)) then
            into.become = t.become
        else
            self:err(src:at(t, "become"), label .. ": 'become' must be true, false or a '{{ }}' expression")
        end
    end
    for _, k in ipairs({ "become_user", "become_flags" }) do
        if t[k] ~= nil then
            if type(t[k]) == "string" and t[k] ~= "" then into[k] = t[k]
            else self:err(src:at(t, k), label .. ": '" .. k .. "' must be text") end
        end
    end
    if t.become_method ~= nil then
        if BECOME_METHODS[t.become_method] or (type(t.become_method) == "string" and
            expr.has_template(t.become_method)) then
            into.become_method = t.become_method
        else
            self:err(src:at(t, "become_method"), label .. ": 'become_method' must be sudo or su" ..
                util.did_you_mean(tostring(t.become_method), { "sudo", "su" }))
        end
    end
end

-- Every file the playbook is built from (imports, roles, vars files),
-- once each, with the sha256 of the text that was parsed.
function Loader:read(path, what)
    local src, err = source.read(path, what)
    if not src then return nil, err end
    local ok, abs = pcall(fs.realpath, path)
    abs = ok and abs or path
    if not self.file_seen[abs] then
        self.file_seen[abs] = true
        self.files[#self.files + 1] = { path = path, abs = abs, digest = src.digest }
        self.sources[#self.sources + 1] = src
    end
    src.abs = abs
    return src
end

-- An Ansible Vault file or value is refused with what to do instead.
local function vault_hint(text_or_err)
    -- (a whole encrypted file starts with its header; a !vault value is
    -- refused by the YAML reader as an unknown tag)
    if type(text_or_err) == "string" and (text_or_err:match("^%s*%$ANSIBLE_VAULT;")
            or text_or_err:find("unsupported YAML tag '!vault'", 1, true)) then
        return "holds an Ansible Vault value, which cutover does not read: put the secret in cutover's " ..
               "vault ('cutover vault set NAME') and write {{ secret.NAME }} where it is used"
    end
end

-- A YAML file of variables (vars_files, a role's defaults/ and vars/):
-- a mapping, or nothing.  Returns the table or nil (error reported).
function Loader:vars_file(path, where, label)
    local text = fs.read(path, source.MAX_BYTES)
    local hint = vault_hint(text)
    if hint then self:err(where, label .. ": " .. path .. " " .. hint); return nil end
    local src, err = self:read(path, "vars file")
    if not src then
        self:err(where, label .. ": " .. (vault_hint(err) and (path .. " " .. vault_hint(err)) or err))
        return nil
    end
    if is_null(src.value) then return {} end
    local pushed = self:enter(src.path, where, "read")
    if not is_mapping(src.value) then
        self:err(src:at(src.value), "a vars file is a mapping of variable names to values")
        self:leave(pushed)
        return nil
    end
    self:check_templates(src, src.value, nil, nil, "vars file " .. path)
    for k in pairs(src.value) do self.defined[k] = true end
    self:leave(pushed)
    return src.value
end

-- The chain of imports: entering a file refuses a cycle and a depth
-- beyond the cap.  Returns true when entered.
function Loader:enter(path, where, how, label)
    local ok, abs = pcall(fs.realpath, path)
    abs = ok and abs or path
    if abs == self.root_abs and how ~= "read" then
        self:err(where, (label or "step") .. ": " .. path .. " imports itself (it is the playbook)")
        return nil
    end
    for _, c in ipairs(self.chain) do
        if c.abs == abs and how ~= "read" then
            self:err(where, (label or "step") .. ": " .. path .. " imports itself")
            return nil
        end
    end
    if #self.chain >= MAX_IMPORT_DEPTH then
        self:err(where, (label or "step") .. ": imports nested deeper than " .. MAX_IMPORT_DEPTH .. " levels")
        return nil
    end
    self.chain[#self.chain + 1] = { abs = abs, where = where, how = how }
    return true
end

function Loader:leave(entered)
    if entered then self.chain[#self.chain] = nil end
end

-- Sorts "FILE:LINE:COL: message" errors by position (lint's too).
function M.sort_errors(errors)
    table.sort(errors, function(a, b)
        local la, ca = a:match(":(%d+):(%d+):")
        local lb, cb = b:match(":(%d+):(%d+):")
        la, ca, lb, cb = tonumber(la) or 0, tonumber(ca) or 0, tonumber(lb) or 0, tonumber(cb) or 0
        if la ~= lb then return la < lb end
        if ca ~= cb then return ca < cb end
        return a < b
    end)
    return errors
end

-- The plays of a playbook file; `- import_playbook: FILE` entries bring
-- in another playbook's plays in place (its step ids under the entry's
-- id: given, or the file's name).
function Loader:plays(src, doc, book)
    for _, t in ipairs(doc) do
        if type(t) == "table" and t.import_playbook ~= nil then
            local at = src:at(t, "import_playbook")
            local f = t.import_playbook
            for k in pairs(t) do
                if k ~= "import_playbook" and k ~= "id" and k ~= "name" then
                    self:err(src:at(t, k), "import_playbook: '" .. tostring(k) .. "' does not apply " ..
                        "(an imported playbook's plays keep their own hosts and vars)")
                end
            end
            if type(f) ~= "string" or f == "" or expr.has_template(f) then
                self:err(at, "import_playbook takes a file name, written out")
            else
                local path = util.join_path(util.dirname(src.path), f)
                local isrc, ierr = self:read(path, "playbook")
                if not isrc then
                    self:err(at, "import_playbook: " .. ierr)
                elseif self:enter(path, at, "imported", "import_playbook") then
                    local idoc = isrc.value
                    if type(idoc) ~= "table" or not util.is_list(idoc) or next(idoc) == nil then
                        self:err(is_null(idoc) and (path .. ":1:1") or isrc:at(idoc),
                            "a playbook is a list of plays (each with 'hosts' and 'steps')")
                    else
                        local id = type(t.id) == "string" and t.id or util.slug((f:match("([^/]+)$") or
                            f):gsub("%.ya?ml$", ""))
                        local claimed = self:claim_id(id, type(t.id) == "string", function() return at end,
                            "import_playbook")
                        local saved = self.prefix
                        self.prefix = claimed .. "."
                        self:plays(isrc, idoc, book)
                        self.prefix = saved
                    end
                    self:leave(true)
                end
            end
        else
            self.play_count = self.play_count + 1
            local play = self:play(src, t, self.play_count)
            if play then book.plays[#book.plays + 1] = play end
        end
    end
end

-- The steps of a file an include_steps names with {{ }}, read when the
-- step runs (on one host).  step: the include step (its id prefixes the
-- ids; its chain names where it was included); book: the playbook;
-- handler_names: its play's handlers (notify is checked against them).
-- Returns steps, files ({path, abs, digest} of every file read) or
-- nil, {messages}.
function M.load_steps(path, step, book, handler_names)
    local self = setmetatable({ errors = {}, ids = {}, notifies = {}, gates = {}, step_count = 0,
                                uses = {}, chain = util.copy(step.dynamic_chain or {}),
                                prefix = step.id .. ".", files = {}, file_seen = {}, defined = {},
                                role_chain = {}, play_count = 0, sources = {}, dir = book.dir,
                                play_roles = {}, play_handlers = {} }, Loader)
    do
        local ok, abs = pcall(fs.realpath, book.path)
        self.root_abs = ok and abs or book.path
    end
    local steps = self:steps_file(path, step.dynamic_where, "included", step.label, step.tags or {},
                                  step.in_handlers) or {}
    if #self.play_handlers > 0 then
        self:err(step.dynamic_where, step.label .. ": " .. path .. " uses a role with handlers: a file " ..
            "included by a {{ }} name cannot add handlers to the play (import the role in the play instead)")
    end
    for _, n in ipairs(self.notifies) do
        if not (handler_names or {})[n.name] then
            self:err(n.where, n.label .. ": notify names no handler '" .. tostring(n.name) .. "' of this play")
        end
    end
    if #self.errors > 0 then return nil, M.sort_errors(self.errors) end
    return steps, self.files
end

-- Loads and validates.  Returns playbook | nil, {messages}
function M.load(path)
    local src, err = source.read(path, "playbook")
    if not src then return nil, { err } end
    local self = setmetatable({ errors = {}, ids = {}, notifies = {}, gates = {}, step_count = 0,
                                uses = {}, chain = {}, prefix = "", files = {}, file_seen = {},
                                defined = {}, role_chain = {}, play_count = 0, sources = { src } }, Loader)
    do
        local ok, abs = pcall(fs.realpath, path)
        self.root_abs = ok and abs or path
        self.file_seen[self.root_abs] = true
    end
    local doc = src.value
    local book = { path = path, dir = util.dirname(path), plays = {}, source = src }
    if is_null(doc) then
        return nil, { path .. ":1:1: the playbook is empty (expected a list of plays)" }
    end
    if type(doc) ~= "table" or not util.is_list(doc) or next(doc) == nil then
        local at = type(doc) == "table" and src:at(doc) or path .. ":1:1"
        return nil, { at .. ": a playbook is a list of plays (each with 'hosts' and 'steps')" }
    end
    self.dir = book.dir
    self:plays(src, doc, book)
    -- notify must name a handler of the same play
    for _, play in ipairs(book.plays) do
        play.handler_names = {}
        for _, h in ipairs(play.handlers) do
            if h.name then play.handler_names[h.name] = h end
            play.handler_names[h.id] = h
        end
    end
    local by_index = {}
    for _, play in ipairs(book.plays) do by_index[play.index] = play end
    for _, n in ipairs(self.notifies) do
        local play = by_index[n.play]
        if play and not play.handler_names[n.name] then
            local names = {}
            for _, h in ipairs(play.handlers) do names[#names + 1] = h.name or h.id end
            self:err(n.where, n.label .. ": notify names no handler '" .. tostring(n.name) .. "' of this play"
                .. util.did_you_mean(tostring(n.name), names))
        end
    end
    book.step_count = self.step_count
    book.expression_uses = self.uses
    -- every other file the playbook is built from (journal, resume, lint)
    book.files = self.files
    book.defined_names = self.defined
    book.sources = self.sources
    if #self.errors > 0 then
        M.sort_errors(self.errors)
        return nil, self.errors
    end
    return book
end

return M
