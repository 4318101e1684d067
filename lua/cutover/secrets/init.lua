-- secrets (secrets/init.lua): what a run needs before it starts.  The playbook is scanned
-- for `secret.NAME` references, secret gates (`pause` with `secret:
-- true`) and `vars_prompt`; the vault is opened once (if anything needs
-- it), names it lacks are asked on the terminal without echo, and without
-- a terminal the run refuses to start, saying what is missing.
--
-- Values captured during a run (secret gate answers, private prompts) are
-- kept in the journal only sealed with the vault's key
-- (XChaCha20-Poly1305, the run id as additional data), so a resumed run
-- has them; when there is no vault yet, one is offered (on a terminal) or
-- the run refuses to start.
local core = require("cutover.core.vault")
local sys = require("cutover.core.sys")
local json = require("cutover.core.json")
local vault = require("cutover.secrets.vault")
local redact = require("cutover.secrets.redact")
local util = require("cutover.util")

local M = {}

M.EXIT_REFUSED = 3

-- Records that secret `name` is used at `where` (a few places kept).
local function use(found, name, where)
    local list = found.names[name]
    if not list then
        list = {}
        found.names[name] = list
    end
    for _, w in ipairs(list) do if w == where then return end end
    if #list < 3 then list[#list + 1] = where end
end

-- Walks every string and key of v (YAML, variables) for secret.NAME.
-- src: the playbook's Source, to name a use by FILE:LINE:COL.
local function scan(v, found, where, depth, src)
    depth = depth or 0
    if depth > 64 then return end
    if type(v) == "string" then
        for name in v:gmatch("secret%s*%.%s*([%a_][%w_]*)") do use(found, name, where) end
        for name in v:gmatch("secret%s*%[%s*[\"']([%a_][%w_]*)[\"']%s*%]") do use(found, name, where) end
    elseif type(v) == "table" then
        if type(v.pause) == "table" and v.pause.secret == true then found.secret_gates = true end
        for k, x in pairs(v) do
            local at = where
            if src and type(x) == "string" then
                local ok, pos = pcall(src.at, src, v, k)
                if ok and type(pos) == "string" then at = pos end
            end
            scan(k, found, at, depth + 1, src)
            scan(x, found, at, depth + 1, src)
        end
    end
end

-- "; NAME is used in WHERE" for each secret name found (for messages).
local function where_used(found)
    local out = {}
    for _, name in ipairs(util.sorted_keys(found.names)) do
        out[#out + 1] = "; " .. name .. " is used in " .. table.concat(found.names[name], ", ")
    end
    return table.concat(out)
end

-- Template files the steps render (a literal `src` of an action that
-- renders files: `template`), line by line, so that a secret named only
-- there is resolved before the run starts.  A `src` that is itself an
-- expression cannot be known before the step runs.
local function scan_templates(book, found)
    local actions = require("cutover.actions")
    local fs = require("cutover.core.fs")
    local seen = {}
    local function walk(list)
        for _, step in ipairs(list or {}) do
            local ok, action = pcall(actions.get, step.action)
            local args = step.args
            if ok and type(action) == "table" and action.renders_files and action.reads_files
                    and type(args) == "table" then
                local dir = book.dir or "."
                if step.role_dir then dir = require("cutover.engine").files_dir(step, args, dir) end
                local lok, paths = pcall(action.reads_files, args, dir)
                for _, path in ipairs(lok and type(paths) == "table" and paths or {}) do
                    if type(path) == "string" and not path:find("{{", 1, true) and not seen[path] then
                        seen[path] = true
                        local text = fs.read(path)
                        local n = 0
                        for line in (text or ""):gmatch("[^\n]*") do
                            n = n + 1
                            scan(line, found, "template " .. path .. ":" .. n)
                        end
                    end
                end
            end
            walk(step.block); walk(step.rescue); walk(step.always)
        end
    end
    for _, play in ipairs(book.plays or {}) do
        walk(play.steps)
        walk(play.handlers)
    end
end

-- The inventory variables of the hosts a run may touch (their own and
-- their groups', group_vars and host_vars included).
local function scan_inventory(inv, hosts, found)
    local groups_seen = {}
    for _, name in ipairs(hosts or {}) do
        local h = inv.hosts[name]
        if h then
            for k, v in pairs(h.vars or {}) do
                scan(v, found, "inventory variable '" .. tostring(k) .. "' of host " .. name)
            end
            if not h.implicit then
                for g in pairs(inv:groups_of(name)) do
                    if not groups_seen[g] and inv.groups[g] then
                        groups_seen[g] = true
                        for k, v in pairs(inv.groups[g].vars or {}) do
                            scan(v, found, "inventory variable '" .. tostring(k) .. "' of group " .. g)
                        end
                    end
                end
            end
        end
    end
end

-- The prompts of every play: { {name=, prompt=, private=, default=} }
local function prompts_of(book)
    local out = {}
    for _, play in ipairs(book.plays) do
        for _, p in ipairs(play.vars_prompt or {}) do out[#out + 1] = p end
    end
    return out
end

local Secrets = {}
Secrets.__index = Secrets

-- Takes v as the run's vault: its values are read and masked, and its key
-- is kept open for sealing captured values.
function Secrets:use_vault(v)
    self.vault, self.key = v, v.key
    for name, value in pairs(v.values) do
        self.values[name] = value
        redact.register(value)
    end
end

-- Every place a run can take a secret.NAME from, before it starts:
-- found = { names = { NAME -> places }, secret_gates = bool }
local function find_secrets(book, opts)
    local found = { names = {} }
    scan(book.source and book.source.value, found, "playbook " .. tostring(book.path), 0,
         type(book.source) == "table" and book.source.at and book.source or nil)
    -- the files it imports: steps files, roles, vars files
    for _, src in ipairs(book.sources or {}) do
        if src ~= book.source then scan(src.value, found, "file " .. tostring(src.path), 0, src) end
    end
    scan_templates(book, found)
    if opts.inventory then scan_inventory(opts.inventory, opts.hosts, found) end
    for k, v in pairs(opts.extra_vars or {}) do scan(v, found, "-e " .. tostring(k)) end
    return found
end

-- The refusal of a prompt with no -e answer and no terminal to ask
local function unanswered(p)
    return "vars_prompt '" .. p.name ..
        "' needs an answer and there is no terminal: give it with -e " ..
        p.name .. "=VALUE" .. (p.private and " (or -e @FILE for a secret)" or "")
end

-- No vault needed, a journaled run: secret extra vars (-e @FILE, a
-- private prompt answered with -e) are sealed with the vault's key when
-- there is a vault that opens; without one they are recorded masked (and
-- -e @FILE is read again on resume), so a run never fails for want of it
function Secrets:vault_for_extra_vars(opts, prompts)
    local wants = next(opts.extra_vars_secret or {}) ~= nil
    for _, p in ipairs(prompts) do
        if p.private and (opts.extra_vars or {})[p.name] ~= nil then wants = true end
    end
    -- any other -e value may be a vault value (recorded masked if so):
    -- looked at when the passphrase can be had without asking
    local pf = os.getenv("CUTOVER_VAULT_PASSWORD_FILE")
    if next(opts.extra_vars or {}) ~= nil and pf and pf ~= "" then wants = true end
    if wants and require("cutover.core.fs").stat(self.vault_path, true) then
        local v = vault.open(opts.vault)
        if v then self:use_vault(v) end
    end
end

-- The vault a run needs: opened once; created only with the operator's
-- consent.  -> true | nil, message, exit code
function Secrets:open_needed_vault(opts, found, private_prompts)
    local v, err, kind = vault.open(opts.vault)
    local resealing = opts.needs_key or opts.sealed_prompts ~= nil
    if not v and resealing and (kind == vault.E_MISSING or kind == vault.E_PASSPHRASE) then
        -- a resume whose sealed values this vault cannot open: never
        -- go on with their masked copies (nor make a new vault)
        return nil, "run " .. tostring(opts.run_id) .. " holds values sealed with its vault's key, " ..
            "and they cannot be opened: " .. err .. "; refusing to resume with masked copies. " ..
            "Resume with the vault the run started with", M.EXIT_REFUSED
    end
    if not v and kind == vault.E_MISSING then
        local capture = found.secret_gates or private_prompts or opts.needs_key
        if not opts.interactive then
            if capture or next(found.names) then
                return nil, "this playbook " ..
                    (capture and ("captures secret values (a secret gate or a private prompt), " ..
                                  "which cutover keeps only encrypted with a vault key")
                              or "reads secrets") ..
                    ", and there is no vault at " .. self.vault_path ..
                    ". Create one first: cutover vault set NAME (with CUTOVER_VAULT_PASSWORD_FILE for " ..
                        "unattended runs)" ..
                    where_used(found)
            end
        else
            local answer = sys.ask("There is no vault at " .. self.vault_path ..
                ". Create one now to keep this run's secrets? [yes/no] ", false)
            if not answer or util.trim(answer):lower():sub(1, 1) ~= "y" then
                return nil, "no vault: the run needs one for its secrets; nothing ran"
            end
            v, err = vault.open(opts.vault, { create = true })
            if not v then return nil, err end
            local ok, serr = v:save()
            if not ok then return nil, serr end
        end
    elseif not v then
        return nil, err, kind == vault.E_UNSAFE and M.EXIT_REFUSED or nil
    end
    if v then self:use_vault(v) end
    return true
end

-- Names the vault lacks: asked now, never mid-run -> true | nil, message
function Secrets:ask_missing(opts, found)
    local missing = {}
    for _, name in ipairs(util.sorted_keys(found.names)) do
        if self.values[name] == nil then missing[#missing + 1] = name end
    end
    if #missing == 0 then return true end
    if not opts.interactive then
        local used = {}
        for _, name in ipairs(missing) do
            used[#used + 1] = name .. " is used in " .. table.concat(found.names[name], ", ")
        end
        return nil, "secret" .. (#missing > 1 and "s " or " ") .. table.concat(missing, ", ") ..
            " not in the vault " .. self.vault_path .. " and no terminal to ask: add " ..
            (#missing > 1 and "them" or "it") .. " with 'cutover vault set NAME' (" ..
            table.concat(used, "; ") .. "); nothing ran"
    end
    for _, name in ipairs(missing) do
        local value = sys.ask("secret " .. name .. " (not in the vault; used in " ..
            table.concat(found.names[name], ", ") .. "; typed without echo): ", true)
        if not value or value == "" then return nil, "secret " .. name .. ": no value given; nothing ran" end
        self.values[name] = value
        redact.register(value)
    end
    return true
end

-- A resumed run's sealed answers (and secret extra vars, put back into
-- opts.extra_vars) -> the prompted answers | nil, message, exit code
function Secrets:restored_prompts(opts, prompts)
    local restored = {}
    if not opts.sealed_prompts then return restored end
    local plain = self:unseal(opts.sealed_prompts, opts.run_id)
    local t = plain and json.decode(plain)
    if type(t) ~= "table" then
        -- never go on with the masked copies: they would be deployed
        local names = {}
        for _, p in ipairs(prompts) do names[#names + 1] = "vars_prompt '" .. p.name .. "'" end
        for _, k in ipairs(util.sorted_keys(opts.extra_vars or {})) do
            if opts.extra_vars[k] == redact.MASK then names[#names + 1] = "extra var '" .. k .. "'" end
        end
        return nil, "run " .. tostring(opts.run_id) .. ": the sealed values of this run (" ..
            (#names > 0 and table.concat(names, ", ") or "its captured secrets") ..
            ") cannot be opened with the vault " .. self.vault_path ..
            " (a recreated vault, or another one?); refusing to resume with masked copies. " ..
            "Resume with the vault the run started with", M.EXIT_REFUSED
    end
    if t.v == 2 then
        restored = type(t.prompted) == "table" and t.prompted or {}
        -- secret extra vars (-e @FILE, vault values, private prompts):
        -- the journal's readable copy holds only masks
        for k, v in pairs(type(t.extra_vars) == "table" and t.extra_vars or {}) do
            if opts.extra_vars then opts.extra_vars[k] = v end
        end
        for _, v in ipairs(type(t.secrets) == "table" and t.secrets or {}) do redact.register(v) end
    else
        restored = t  -- the prompted answers alone (written before v2)
    end
    return restored
end

-- vars_prompt: -e wins, then a resumed run's answers, then the terminal
-- -> true | nil, message
function Secrets:answer_prompts(opts, prompts, restored)
    for _, p in ipairs(prompts) do
        local given = (opts.extra_vars or {})[p.name]
        local value = given or restored[p.name]
        if value == nil then
            if not opts.interactive then return nil, unanswered(p) end
            local q = (p.prompt or p.name) .. (p.default ~= nil and (" [" .. tostring(p.default) .. "]") or "") .. ": "
            value = sys.ask(q, p.private)
            if value == nil then return nil, "vars_prompt '" .. p.name .. "': no answer; nothing ran" end
            if value == "" and p.default ~= nil then value = tostring(p.default) end
        end
        if p.private then redact.register(tostring(value)) end
        self.prompted[p.name] = value
    end
    return true
end

-- opts: vault (path), interactive, extra_vars, run_id (for sealing),
-- sealed_prompts (from a resumed run), resume (bool), inventory and
-- hosts (the hosts the run may touch: their variables are scanned too),
-- journaled, extra_vars_secret (names from -e @FILE).
-- Returns secrets | nil, message.
function M.prepare(book, opts)
    local found = find_secrets(book, opts)
    local prompts = prompts_of(book)
    local self = setmetatable({ values = {}, prompted = {}, vault_path = vault.path(opts.vault) }, Secrets)
    local private_prompts = false
    for _, p in ipairs(prompts) do
        if p.private and (opts.extra_vars or {})[p.name] == nil then private_prompts = true end
    end
    if not opts.interactive and not opts.sealed_prompts then
        for _, p in ipairs(prompts) do
            if (opts.extra_vars or {})[p.name] == nil then return nil, unanswered(p) end
        end
    end
    local needs_vault = next(found.names) ~= nil or found.secret_gates or private_prompts
        or opts.sealed_prompts ~= nil or opts.needs_key
    if not needs_vault and opts.journaled then self:vault_for_extra_vars(opts, prompts) end
    if not needs_vault and #prompts == 0 then return self end
    if needs_vault then
        local ok, err, code = self:open_needed_vault(opts, found, private_prompts)
        if not ok then return nil, err, code end
    end
    local ok, err = self:ask_missing(opts, found)
    if not ok then return nil, err end
    local restored, rerr, code = self:restored_prompts(opts, prompts)
    if not restored then return nil, rerr, code end
    ok, err = self:answer_prompts(opts, prompts, restored)
    if not ok then return nil, err end
    return self
end

-- The run's captured values sealed for the journal's runs.sealed: the
-- prompted values and the secret extra vars (name -> real value), with
-- the secret values among them.  nil when there is nothing to seal or no
-- key.
function Secrets:sealed_run(run_id, secret_extra)
    if next(self.prompted) == nil and next(secret_extra or {}) == nil then return nil end
    if not self.key then return nil end
    local prompted = next(self.prompted) and self.prompted or setmetatable({}, { __jsontype = "object" })
    local ev = next(secret_extra or {}) and secret_extra or setmetatable({}, { __jsontype = "object" })
    local plain = json.encode({ prompted = prompted, extra_vars = ev })
    return core.to_base64(self.key:encrypt(json.encode({ v = 2, prompted = prompted, extra_vars = ev,
        secrets = setmetatable(redact.found_in(plain), { __jsontype = "array" }) }), run_id))
end

-- The extra vars to record in the journal's readable column, and the
-- secret ones (name -> value) to seal: values from -e @FILE, values
-- holding a registered secret (a vault value), answers to private
-- prompts.  The record holds the mask in their place.
function Secrets:split_extra_vars(book, ev, from_file)
    local record, secret = {}, {}
    local private = {}
    for _, p in ipairs(prompts_of(book)) do if p.private then private[p.name] = true end end
    for k, v in pairs(ev or {}) do
        local masked = redact.value(v)
        local holds = (from_file or {})[k] or private[k] or
            (type(v) == "table" and json.encode(masked) ~= json.encode(v)) or masked ~= v and type(v) ~= "table"
        if holds then
            record[k] = redact.MASK
            secret[k] = v
        else
            record[k] = v
        end
    end
    return record, secret
end

-- Seals text (a result holding a secret) for the journal, or nil.
function Secrets:seal(text, run_id)
    if not self.key then return nil end
    return core.to_base64(self.key:encrypt(text, run_id))
end

function Secrets:unseal(b64, run_id)
    if not self.key or not b64 then return nil end
    return self.key:decrypt(core.from_base64(b64) or "", run_id)
end

-- A step result for the journal's sealed column: the unmasked result
-- JSON and the secret values in it, so that a resumed run masks them
-- again before it prints anything (a gate's answer, a vault value since
-- removed from the vault).  Returns base64 | nil (no key).
function Secrets:seal_result(plain, run_id)
    return self:seal(json.encode({ v = 2, result = plain, secrets = setmetatable(redact.found_in(plain),
        { __jsontype = "array" }) }), run_id)
end

-- Every string leaf of plain (a decoded result) that masked has
-- differently: the secrets of a sealed row written before the secret
-- list was kept (whole strings are registered: more is masked, never less).
local function differing(plain, masked, out, depth)
    if depth > 64 then return end
    if type(plain) == "string" then
        if plain ~= masked then out[#out + 1] = plain end
    elseif type(plain) == "table" then
        for k, v in pairs(plain) do
            differing(v, type(masked) == "table" and masked[k] or nil, out, depth + 1)
        end
    end
end

-- Opens a sealed step result.  Returns the unmasked result JSON and the
-- list of secret values in it | nil when this key cannot open it.
function Secrets:open_result(b64, masked_text, run_id)
    local text = self:unseal(b64, run_id)
    if not text then return nil end
    local t = json.decode(text)
    if type(t) == "table" and t.v == 2 and type(t.result) == "string" then
        local list = {}
        for _, v in ipairs(type(t.secrets) == "table" and t.secrets or {}) do
            if type(v) == "string" then list[#list + 1] = v end
        end
        return t.result, list
    end
    local list = {}
    differing(t, masked_text and json.decode(masked_text), list, 0)
    return text, list
end

-- The run's `secret` variable.
function Secrets:table()
    local values, path = self.values, self.vault_path
    return setmetatable({}, {
        __index = function(_, name)
            local v = values[name]
            if v == nil then
                error("secret '" .. tostring(name) .. "' is not in the vault " .. path, 0)
            end
            return v
        end,
        __newindex = function() error("'secret' is read-only", 0) end,
        __metatable = false,
    })
end

return M
