-- cli.prepare: parsed options -> what a run needs (the playbook, the
-- inventory, -e values with where they came from, passwords, the journal,
-- gate answers, the options recorded for resume).  Used by run, resume,
-- plan and apply.
local yaml = require("cutover.core.yaml")
local playbook = require("cutover.load.playbook")
local source = require("cutover.load.source")
local inventory = require("cutover.inventory")
local engine = require("cutover.engine")
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")
local options = require("cutover.cli.options")
local help = require("cutover.cli.help")

local M = {}

-- Where the values of a parsed -e table came from (weak keys): the
-- names set by an -e @FILE (the way to pass a secret: they are kept in
-- the journal only sealed or masked) and those files, absolute.
local ev_origin = setmetatable({}, { __mode = "k" })

-- -e values: NAME=VALUE (text), @FILE (YAML mapping), or inline YAML/JSON.
function M.extra_vars(list)
    local out = {}
    local from_file, files = {}, {}
    for _, e in ipairs(list or {}) do
        local t
        local is_file = e:sub(1, 1) == "@"
        if is_file then
            local src, err = source.read(e:sub(2), "extra vars file")
            if not src then return nil, err end
            t = src.value
            if type(t) ~= "table" or (next(t) ~= nil and util.is_list(t)) then
                return nil, e:sub(2) .. ": extra vars must be a mapping of names to values"
            end
        elseif e:match("^%s*{") then
            local v, err = yaml.load(e, "-e")
            if v == nil then return nil, err end
            if type(v) ~= "table" then return nil, "-e: expected a mapping" end
            t = v
        else
            local name, value = e:match("^([%a_][%w_]*)=(.*)$")
            if not name then
                return nil, "-e '" .. e .. "': expected NAME=VALUE, @FILE.yml or a {mapping}"
            end
            t = { [name] = value }
        end
        if is_file then
            local ok, abs = pcall(require("cutover.core.fs").realpath, e:sub(2))
            files[#files + 1] = ok and abs or e:sub(2)
        end
        for k, v in pairs(t) do
            out[k] = v
            from_file[k] = is_file or nil
        end
    end
    ev_origin[out] = { from_file = from_file, files = files }
    return out
end

local function split_set(list)
    if not list then return nil end
    local set = {}
    for _, item in ipairs(list) do
        for t in item:gmatch("[^,]+") do set[util.trim(t)] = true end
    end
    return set
end

function M.load_inventory(path)
    if not path then return inventory.localhost() end
    local inv, err = inventory.load(path)
    if not inv then return nil, err end
    return inv
end

-- Options of `run` that decide what a run does; they are recorded in the
-- journal so that `resume` continues with the same ones.
local RECORDED = { "inventory", "limit", "tags", "skip-tags", "forks", "known-hosts", "become", "become-user",
                   "accept-new-host-keys", "ssh-config", "max-output", "check", "diff", "vault" }

local function file_digest(path)
    if not path then return nil end
    local ok, d = pcall(require("cutover.core.fs").sha256, path)
    return ok and d or nil
end

-- An existing file or folder as an absolute path (the journal records
-- these, so `resume` from another folder reads the same files); anything
-- else (a host list given to -i) as given.
local function absolute(path)
    if type(path) ~= "string" then return path end
    local ok, p = pcall(require("cutover.core.fs").realpath, path)
    return ok and p or path
end
M.absolute = absolute

-- The inventory's digest: its file's sha256, or for a folder (or a file
-- with group_vars/host_vars) one over every file it was built from.
local function inventory_digest(path, inv)
    local files = inv and inv.files_read or {}
    if #files == 0 then return nil end
    if #files == 1 and absolute(files[1]) == absolute(path) then return file_digest(path) end
    -- by absolute path: a resume from another folder gives the same
    local abs = {}
    for i, f in ipairs(files) do abs[i] = absolute(f) end
    return (require("cutover.plan").files_digest(abs))
end
M.inventory_digest = inventory_digest

local function max_output(o)
    if not o["max-output"] then return nil end
    local n, unit = tostring(o["max-output"]):match("^(%d+)([KkMmGg]?)$")
    if not n then return nil, options.usage_error("--max-output takes a size such as 65536, 512K or 8M", "run") end
    local mult = ({ [""] = 1, k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024 })[unit:lower()]
    local bytes = math.tointeger(tonumber(n) * mult)
    if bytes < 1 then return nil, options.usage_error("--max-output must be at least 1 byte", "run") end
    return bytes
end

-- One password from the terminal for option --FLAG.  -> the password, or
-- nil and the usage error's exit code.
local function read_password(flag, prompt)
    local password, perr = require("cutover.core.sys").read_secret(prompt)
    if password then return password end
    return nil, options.usage_error("--" .. flag .. ": " .. perr ..
        " (the password is never read from arguments)", "run")
end

-- -k and -K: read from the terminal, never from arguments.  Returns the
-- SSH password, the become password | false, exit code.
local function passwords(o)
    local ssh_password, become_password, code
    if o["ask-pass"] then
        ssh_password, code = read_password("ask-pass", "SSH password: ")
        if not ssh_password then return false, code end
    end
    if o["ask-become-pass"] then
        become_password, code = read_password("ask-become-pass", "BECOME password: ")
        if not become_password then return false, code end
        redact.register(become_password)
    end
    return ssh_password, become_password
end

-- Gates: approvals and answers given on this command line.  Returns
-- approve, answers | nil, exit code.
local function gate_answers(o)
    local approve, answers = {}, {}
    for _, g in ipairs(o.approve or {}) do approve[g] = true end
    for _, a in ipairs(o.answer or {}) do
        local g, v = a:match("^([^=]+)=(.*)$")
        if not g then return nil, options.usage_error("--answer takes GATE=VALUE", "run") end
        answers[g] = v
    end
    for _, g in ipairs(o["answer-stdin"] or {}) do
        local v = (io.stdin:read("a") or ""):gsub("\r?\n$", "")
        answers[g] = v
        redact.register(v)  -- given for a secret: masked from the start
    end
    return approve, answers
end

-- The options the journal records for resume (paths absolute).
local function recorded(o, origin)
    local record = {}
    for _, k in ipairs(RECORDED) do record[k] = o[k] end
    if origin and #origin.files > 0 then
        -- read again on resume for values that could not be sealed
        record["extra-vars-files"] = origin.files
    end
    for _, k in ipairs({ "inventory", "known-hosts", "ssh-config", "vault" }) do
        record[k] = absolute(record[k])
    end
    return record
end

-- Loads what a run needs from parsed options o and the playbook path.
-- Returns book, inventory, runner options | nil, exit code.
function M.run(o, book_path, ev)
    local book, errs = playbook.load(book_path)
    if not book then options.print_errors(errs); return nil, engine.EXIT_USAGE end
    local inv, ierr = M.load_inventory(o.inventory)
    if not inv then options.print_errors({ ierr }); return nil, engine.EXIT_USAGE end
    local max_bytes, mcode = max_output(o)
    if mcode then return nil, mcode end
    local ssh_password, become_password = passwords(o)
    if ssh_password == false then return nil, become_password end
    local limit, lerr = inventory.limit_pattern(o.limit)
    if lerr then options.print_errors({ lerr }); return nil, engine.EXIT_USAGE end
    if o["ssh-config"] then
        local sc, serr = require("cutover.ssh_config").load(o["ssh-config"])
        if not sc then options.print_errors({ serr }); return nil, engine.EXIT_USAGE end
    end
    local journal
    if not o["no-journal"] then
        local jerr
        journal, jerr = require("cutover.journal").open(o.journal)
        if not journal then options.print_errors({ "cutover: " .. jerr }); return nil, engine.EXIT_USAGE end
    end
    local approve, answers = gate_answers(o)
    if not approve then return nil, answers end
    local interactive = not o["non-interactive"] and require("cutover.core.sys").has_tty()
    local origin = ev_origin[ev]
    return book, inv, {
        check = o.check == true, diff = o.diff == true, limit = limit,
        tags = split_set(o.tags), skip_tags = split_set(o["skip-tags"]),
        start_at = o["start-at"], extra_vars = ev, format = o.format or "text",
        extra_vars_secret = origin and origin.from_file,
        verbose = o.verbose and #o.verbose or 0, version = help.VERSION,
        accept_new_host_keys = o["accept-new-host-keys"] == true,
        forks = o.forks and math.tointeger(tonumber(o.forks)),
        ssh_password = ssh_password,
        become = o.become == true or nil, become_user = o["become-user"], become_password = become_password,
        max_output = max_bytes,
        known_hosts = o["known-hosts"],
        ssh_config = o["ssh-config"],
        vault = o.vault,
        journal = journal,
        approve = approve, answers = answers, interactive = interactive,
        record_options = recorded(o, origin),
        report = o.report,
        playbook_digest = file_digest(book_path),
        playbook_path = absolute(book_path),
        inventory_path = absolute(o.inventory),
        inventory_digest = inventory_digest(o.inventory, inv),
    }
end

-- What plan and apply get to prepare their runs with.
function M.plan_env()
    return { prepare = M.run, extra_vars = M.extra_vars, version = help.VERSION }
end

return M
