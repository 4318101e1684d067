-- plan: saved plans.  `cutover plan` runs a playbook in check mode and
-- writes what it predicts, per host and step, with the digests of
-- everything the prediction rests on; `cutover show-plan` renders a plan
-- for review; `cutover apply` checks the digests, runs check mode again
-- to find hosts whose facts moved (stale), and runs the playbook for real
-- on the others.  See docs/plans.md.
--
-- The command line (cli.lua) parses options and hands over with a small
-- environment: prepare (cli's prepare_run), extra_vars (cli's -e parser),
-- version.
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local sys = require("cutover.core.sys")
local engine = require("cutover.engine")
local output = require("cutover.output")
local diff = require("cutover.diff")
local inventory = require("cutover.inventory")
local util = require("cutover.util")

local M = {}

M.FORMAT_VERSION = 1

-- Secrets: every string written to a plan, or printed, goes through the
-- redaction module.  Required plainly: if it cannot load, no plan is
-- written at all (never one with secrets unmasked).
local redact = require("cutover.secrets.redact")

local function mask(s)
    if type(s) == "string" then return redact.text(s) end
    return s
end

-- A copy of v with every string (keys too) masked.
local function mask_value(v, depth)
    depth = depth or 0
    if type(v) == "string" then return mask(v) end
    if type(v) ~= "table" or depth > 64 then return v end
    local out = {}
    for k, x in pairs(v) do
        out[type(k) == "string" and mask(k) or k] = mask_value(x, depth + 1)
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then setmetatable(out, mt) end
    return out
end

-- Text shown on a terminal: masked, then with control characters
-- escaped (a plan's messages and diffs come from its hosts).
local function shown(s) return output.escape(mask(s)) end

local function err_out(s) output.note(shown(s)) end

local function array(t) return setmetatable(t, { __jsontype = "array" }) end

local function encode(v)
    local ok, s = pcall(json.encode, v)
    if ok then return s end
    return tostring(v)
end

local function file_sha256(path)
    local ok, d = pcall(fs.sha256, path)
    if ok then return d end
    return nil
end

---------------------------------------------------------------- digests

-- Result fields that change from one identical run to the next.
local VOLATILE = { duration = true, elapsed = true, attempts = true, time = true,
                   start = true, ["end"] = true, delta = true, resumed = true }

-- Statuses a check run cannot decide: the host's predictions end there.
local UNDECIDED = { unknown = true, parked = true, interrupted = true }

-- One reported result -> a plan entry (unmasked; the digests are of the
-- real values, the text is masked when written).
local function entry(ev)
    local r = ev.result
    local status = output.status(r)
    local fields, field_digests = {}, {}
    for k, v in pairs(r) do
        if k ~= "diff" and not VOLATILE[k] and type(k) == "string" then
            fields[k] = v
            field_digests[k] = crypto.sha256(encode(v))
        end
    end
    local d
    if r.diff then
        local ok, text = pcall(diff.render, r.diff)
        d = ok and text ~= "" and text or nil
    end
    local basis = { play = ev.play, id = ev.step.id, action = ev.step.action, item = ev.item_label,
                    status = status, changed = r.changed == true, diff = d, fields = field_digests }
    return {
        play = ev.play, id = ev.step.id, name = ev.step_name, action = ev.step.action,
        item = ev.item_label, status = status, changed = r.changed == true,
        diff = not ev.step.no_log and d or nil,
        msg = ev.step.no_log and "(output hidden: no_log)" or (type(r.msg) == "string" and r.msg or nil),
        fields = field_digests,
        sha256 = crypto.sha256(encode(basis)),
    }
end

-- Collects a run's results (opts.on_result) and the controller files its
-- steps read (opts.on_file_read).
function M.collector()
    local c = { hosts = {}, order = {}, files = {}, file_order = {} }
    function c.on_result(ev)
        local list = c.hosts[ev.host]
        if not list then
            list = {}
            c.hosts[ev.host] = list
            c.order[#c.order + 1] = ev.host
        end
        local ok, e = pcall(entry, ev)
        if not ok then
            e = { id = ev.step and ev.step.id, status = "unknown", sha256 = "",
                  msg = "cannot record this result: " .. tostring(e), fields = {} }
        end
        list[#list + 1] = e
    end
    function c.on_file_read(path, digest)
        local have = c.files[path]
        if have == nil then
            c.files[path] = digest
            c.file_order[#c.file_order + 1] = path
        elseif have ~= digest then
            c.files[path] = "changed while planning"
        end
    end
    return c
end

-- Index of the last entry the host's facts digest covers: its first
-- undecided result, or the last entry.
local function cut_of(entries)
    for i, e in ipairs(entries) do
        if UNDECIDED[e.status] then return i end
    end
    return #entries
end

local function facts_digest(entries)
    local parts = {}
    for i = 1, cut_of(entries) do parts[#parts + 1] = entries[i].sha256 end
    return crypto.sha256(table.concat(parts, "\n"))
end

-- Digest of a list of files: "sha256  path" lines, in order.
local function files_digest(paths)
    local lines, seen = {}, {}
    local files = {}
    for _, p in ipairs(paths or {}) do
        if not seen[p] then
            seen[p] = true
            local d = file_sha256(p) or "missing"
            lines[#lines + 1] = d .. "  " .. p
            files[#files + 1] = { path = p, sha256 = d }
        end
    end
    return crypto.sha256(table.concat(lines, "\n")), files
end
M.files_digest = files_digest

-- The extra vars' digest.  With a salt (random, kept in the plan) it is
-- not a plain hash of the values, which may hold a secret: a plain one
-- would let anyone holding the plan test guesses against a table made in
-- advance.  Plans written before the salt have none.
local function extra_vars_digest(ev, salt)
    if salt then return crypto.sha256("cutover-extra-vars\0" .. salt .. "\0" .. encode(ev or {})) end
    return crypto.sha256(encode(ev or {}))
end

-- Options that shape the run, normalised: tags as a sorted list.
local function tag_list(list)
    if not list then return nil end
    local set = {}
    for _, item in ipairs(list) do
        for t in tostring(item):gmatch("[^,]+") do set[util.trim(t)] = true end
    end
    local out = util.sorted_keys(set)
    return #out > 0 and array(out) or nil
end

-- limit: the pattern as resolved (--limit @FILE read once, at planning).
local function run_options(o, limit)
    return { limit = limit, tags = tag_list(o.tags), skip_tags = tag_list(o["skip-tags"]) }
end

local function options_text(opts)
    local parts = {}
    if opts.limit then parts[#parts + 1] = "--limit " .. opts.limit end
    if opts.tags then parts[#parts + 1] = "--tags " .. table.concat(opts.tags, ",") end
    if opts.skip_tags then parts[#parts + 1] = "--skip-tags " .. table.concat(opts.skip_tags, ",") end
    return #parts > 0 and table.concat(parts, " ") or "(none)"
end

local function absolute(path)
    if not path then return nil end
    local ok, p = pcall(fs.realpath, path)
    if ok and p then return p end
    return path
end

-- -e arguments with @FILE made absolute, so apply reads the same file
-- from any folder.
local function absolute_extra_args(list)
    local out = {}
    for _, a in ipairs(list or {}) do
        if a:sub(1, 1) == "@" then a = "@" .. absolute(a:sub(2)) end
        out[#out + 1] = a
    end
    return out
end

-- Runs fn with the reporters silenced (apply's second check run).
local function quietly(fn)
    local text, js = output.text, output.json
    local silent = setmetatable({}, { __index = function() return function() end end })
    output.text = function() return silent end
    output.json = function() return silent end
    local ok, r = pcall(fn)
    output.text, output.json = text, js
    if not ok then error(r, 0) end
    return r
end

---------------------------------------------------------------- binding

-- What show-plan shows must be what apply checks.  Three checks bind
-- them: the body digest (a plan edited after it was written, by hand or
-- by accident, is refused before anything is shown or run); the plan's
-- own consistency (counts and "decided at apply time" marks follow from
-- its steps); and, at apply, every decided step's shown text (status,
-- diff, message, names) against what the new check run shows now.  The
-- digest is not a signature: whoever can write the plan can recompute it;
-- the last check is what stops a plan that shows one change and applies
-- another.

-- sha256 over the plan without its body_sha256 field (sorted keys, compact).
local function body_digest(p)
    local saved = p.body_sha256
    p.body_sha256 = nil
    local d = crypto.sha256(json.encode(p))
    p.body_sha256 = saved
    return d
end

-- Returns nil | why the plan cannot be trusted as written.
local function verify(plan)
    if body_digest(plan) ~= plan.body_sha256 then
        return "the plan file was changed after it was written (its body digest does not match)"
    end
    local total_changes, total_at_apply = 0, 0
    for _, h in ipairs(plan.hosts) do
        local steps = h.steps
        local cut = cut_of(steps)
        local undecided = UNDECIDED[(steps[cut] or {}).status] == true
        local changes, at_apply = 0, 0
        for i, st in ipairs(steps) do
            local later = (i > cut or (i == cut and undecided))
            if (st.at_apply == true) ~= later then
                return "host " .. h.name .. ", step '" .. st.id .. "': marked " ..
                    (later and "decided now" or "decided at apply time") .. " against its place in the plan"
            end
            if later then at_apply = at_apply + 1
            elseif st.status == "changed" then changes = changes + 1 end
        end
        if (h.changes or 0) ~= changes then
            return "host " .. h.name .. ": " .. tostring(h.changes or 0) .. " changes shown, its steps predict " .. changes
        end
        if (h.at_apply or 0) ~= at_apply then
            return "host " .. h.name .. ": " .. tostring(h.at_apply or 0) .. " results shown as decided at apply time, " ..
                "its steps have " .. at_apply
        end
        total_changes, total_at_apply = total_changes + changes, total_at_apply + at_apply
    end
    local t = plan.totals or {}
    if (t.changes or total_changes) ~= total_changes or (t.at_apply or total_at_apply) ~= total_at_apply then
        return "the totals shown do not add up to the hosts' counts"
    end
    return nil
end

-- Shown fields of a step entry, compared as the plan writes them.
local SHOWN = { "id", "name", "action", "item", "status", "diff", "msg" }
local SHOWN_WORDS = { id = "step id", name = "name", action = "action", item = "loop item",
                      status = "status", diff = "diff", msg = "message" }

-- For the hosts about to be applied: the first decided step whose shown
-- text differs from what the new check run shows.  Returns nil | text.
local function shown_mismatch(plan, c, fresh)
    local by_name = {}
    for _, h in ipairs(plan.hosts) do by_name[h.name] = h end
    for _, name in ipairs(fresh) do
        local now = c.hosts[name] or {}
        for i, st in ipairs(by_name[name].steps) do
            if st.at_apply then break end
            local e = now[i]
            if not e then return "host " .. name .. ", step '" .. st.id .. "': not reported by the new check run" end
            for _, f in ipairs(SHOWN) do
                local want = e[f] ~= nil and mask(tostring(e[f])) or nil
                local have = st[f] ~= nil and tostring(st[f]) or nil
                if want ~= have then
                    return "host " .. name .. ", step '" .. st.id .. "': the " .. SHOWN_WORDS[f] ..
                        " shown differs from what apply checks now"
                end
            end
            if (st.changed == true) ~= (e.changed == true) then
                return "host " .. name .. ", step '" .. st.id .. "': the changed flag shown differs from what apply checks now"
            end
        end
    end
    return nil
end

-- The extra vars as the plan shows them, normalised like a plan's text.
local function shown_values(v)
    return json.encode(json.decode(redact.json_line(encode(v or {}))) or {})
end

---------------------------------------------------------------- plan

local function default_output(book_path)
    local base = book_path:match("([^/]+)$") or "playbook"
    base = base:gsub("%.ya?ml$", "")
    return base .. ".plan.json"
end

-- Builds the plan table from a check run's collector.
local function build(meta, c)
    local hosts = {}
    local totals = { changes = 0, at_apply = 0 }
    for _, name in ipairs(c.order) do
        local entries = c.hosts[name]
        local cut = cut_of(entries)
        local undecided = UNDECIDED[(entries[cut] or {}).status] == true
        local steps, changes, at_apply = {}, 0, 0
        for i, e in ipairs(entries) do
            local s = {
                play = e.play, id = e.id, name = e.name, action = e.action, item = e.item,
                status = e.status, changed = e.changed, diff = e.diff, msg = e.msg,
                sha256 = e.sha256, fields = e.fields,
                at_apply = (i > cut or (i == cut and undecided)) or nil,
            }
            if s.at_apply then at_apply = at_apply + 1
            elseif e.status == "changed" then changes = changes + 1 end
            steps[#steps + 1] = s
        end
        totals.changes = totals.changes + changes
        totals.at_apply = totals.at_apply + at_apply
        hosts[#hosts + 1] = {
            name = name, facts_sha256 = facts_digest(entries), steps = array(steps),
            changes = changes, at_apply = at_apply,
        }
    end
    local files = {}
    for _, p in ipairs(c.file_order) do files[#files + 1] = { path = p, sha256 = c.files[p] } end
    return {
        v = M.FORMAT_VERSION,
        cutover = meta.version,
        created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
        user = (sys.user()),
        playbook = meta.playbook,
        inventory = meta.inventory,
        extra_vars = meta.extra_vars,
        options = meta.options,
        files = array(files),
        check_exit_code = meta.check_exit_code,
        hosts = array(hosts),
        totals = totals,
    }
end

-- Digest fields are hex written by cutover, not text from anywhere:
-- they are not masked (masking one would only break apply).
local DIGEST_KEYS = { sha256 = true, facts_sha256 = true, salt = true }

local function mask_plan(v, depth)
    depth = depth or 0
    if type(v) == "string" then return mask(v) end
    if type(v) ~= "table" or depth > 64 then return v end
    local out = {}
    for k, x in pairs(v) do
        local key = type(k) == "string" and mask(k) or k
        if DIGEST_KEYS[k] and type(x) == "string" then out[key] = x
        elseif k == "fields" and type(x) == "table" then
            -- field name -> digest
            local f = {}
            for fk, fd in pairs(x) do f[mask(fk)] = fd end
            out[key] = f
        else
            out[key] = mask_plan(x, depth + 1)
        end
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then setmetatable(out, mt) end
    return out
end

-- cutover plan: o (parsed options), book_path, ev (extra vars), env.
function M.plan(o, book_path, ev, env)
    local abs_book = absolute(book_path)
    o.check, o.diff = true, true
    -- absolute paths, so that apply reads the same files from any folder
    -- and the inventory digest names them the same way
    if o.inventory then o.inventory = absolute(o.inventory) end
    local book, inv, opts = env.prepare(o, abs_book, ev)
    if not book then return inv end
    local c = M.collector()
    opts.on_result = c.on_result
    opts.on_file_read = c.on_file_read
    local code = engine.run(book, inv, opts)
    if code == engine.EXIT_USAGE or code == engine.EXIT_REFUSED or code == engine.EXIT_INTERRUPTED then
        err_out("cutover: no plan written (the check run ended with exit code " .. code .. ")")
        return code
    end
    local inv_meta
    if o.inventory then
        local digest, files = files_digest(inv.files_read)
        inv_meta = { path = o.inventory, sha256 = digest, files = array(files) }
    end
    local args = absolute_extra_args(o["extra-vars"])
    local ev_salt = crypto.random_hex(16)
    local plan = build({
        version = env.version,
        playbook = { path = abs_book, sha256 = opts.playbook_digest or file_sha256(abs_book) },
        inventory = inv_meta,
        extra_vars = { sha256 = extra_vars_digest(ev, ev_salt), salt = ev_salt,
                       values = mask_value(opts.extra_vars_masked or ev),
                       args = #args > 0 and array(args) or nil },
        options = run_options(o, opts.limit),
        check_exit_code = code,
    }, c)
    -- the secret extra vars (-e @FILE, private prompts) are masked in the
    -- plan file wherever a step put them, not only in extra_vars (values
    -- under 4 characters only there: they would mask the plan's own words)
    if redact and redact.register then
        for k, v in pairs(opts.extra_vars_masked or {}) do
            local real = ev[k]
            if v == redact.MASK and type(real) == "string" and #real >= 4 then redact.register(real) end
        end
    end
    local out = o.output or default_output(book_path)
    local text = encode(mask_plan(plan))
    text = redact.json_line(text)
    -- the body digest over everything else, as read back (so apply and
    -- show-plan compute it from the same values); then pretty, for review
    -- and diffs between plans
    local decoded = assert(json.decode(text))
    decoded.body_sha256 = body_digest(decoded)
    text = json.encode(decoded, true)
    local ok, werr = fs.write(out, text .. "\n", 384)
    if not ok then
        err_out("cutover: cannot write the plan: " .. tostring(werr))
        return engine.EXIT_USAGE
    end
    local hosts = #plan.hosts
    local msg = string.format("plan written to %s: %d host%s, %d change%s predicted, %d step result%s decided at apply time",
        out, hosts, hosts == 1 and "" or "s", plan.totals.changes, plan.totals.changes == 1 and "" or "s",
        plan.totals.at_apply, plan.totals.at_apply == 1 and "" or "s")
    if o.format == "json" then err_out(msg) else print(shown(msg)) end
    return code
end

---------------------------------------------------------------- reading

-- The shape of a plan file: each field's type, checked before anything
-- reads it, so that an edited or damaged plan is refused as bad input
-- (exit 2) and never reaches the code as a number where a table was
-- expected.  "?" marks a field that may be absent.
local function is_array(v)
    if type(v) ~= "table" then return false end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n == #v
end

local SHAPE_FILE = { path = "string", sha256 = "string" }
local SHAPE_STEP = {
    ["play?"] = "number", id = "string", ["name?"] = "string", ["action?"] = "string", ["item?"] = "string",
    status = "string", ["changed?"] = "boolean", ["diff?"] = "string", ["msg?"] = "string",
    sha256 = "string", fields = { map = "string" }, ["at_apply?"] = "boolean",
}
local SHAPE = {
    v = "number", body_sha256 = "string", ["cutover?"] = "string", ["created?"] = "string", ["user?"] = "string",
    playbook = { fields = { path = "string", sha256 = "string" } },
    ["inventory?"] = { fields = { path = "string", sha256 = "string", files = { list = { fields = SHAPE_FILE } } } },
    extra_vars = { fields = { sha256 = "string", ["values?"] = { map = "any" }, ["args?"] = { list = "string" } } },
    ["options?"] = { fields = { ["limit?"] = "string", ["tags?"] = { list = "string" },
                                ["skip_tags?"] = { list = "string" } } },
    ["files?"] = { list = { fields = SHAPE_FILE } },
    ["check_exit_code?"] = "number",
    hosts = { list = { fields = {
        name = "string", facts_sha256 = "string", ["changes?"] = "number", ["at_apply?"] = "number",
        steps = { list = { fields = SHAPE_STEP } },
    } } },
    ["totals?"] = { map = "number" },
}

local function kind_of(shape)
    if type(shape) == "string" then return shape == "number" and "a number" or shape == "boolean"
        and "true or false" or shape == "any" and "a value" or "text" end
    if shape.list then return "a list" end
    return "a mapping"
end

-- Returns nil | the first problem ("'hosts[1].name' must be text").
local function check_shape(v, shape, where)
    if type(shape) == "string" then
        if shape == "any" or type(v) == shape then return nil end
        return "'" .. where .. "' must be " .. kind_of(shape)
    end
    if type(v) ~= "table" or (shape.list and not is_array(v))
            or (not shape.list and next(v) ~= nil and is_array(v)) then
        return "'" .. where .. "' must be " .. kind_of(shape)
    end
    if shape.list then
        for i, x in ipairs(v) do
            local e = check_shape(x, shape.list, where .. "[" .. i .. "]")
            if e then return e end
        end
    elseif shape.map then
        for _, k in ipairs(util.sorted_keys(v)) do
            if type(k) ~= "string" then return "'" .. where .. "' must be a mapping" end
            local e = check_shape(v[k], shape.map, where .. "." .. k)
            if e then return e end
        end
    else
        for _, spec in ipairs(util.sorted_keys(shape.fields)) do
            local name, optional = spec:gsub("%?$", "")
            local x = v[name]
            local path = where == "" and name or (where .. "." .. name)
            if x == nil then
                if optional == 0 then return "'" .. path .. "' must be " .. kind_of(shape.fields[spec]) end
            else
                local e = check_shape(x, shape.fields[spec], path)
                if e then return e end
            end
        end
    end
    return nil
end

-- Reads a plan file.  Returns plan, text | nil, message.
function M.read(path)
    local text, err = fs.read(path)
    if not text then return nil, err end
    local plan = json.decode(text)
    if type(plan) ~= "table" or type(plan.v) ~= "number" or type(plan.hosts) ~= "table"
        or type(plan.playbook) ~= "table" then
        return nil, path .. ": not a cutover plan"
    end
    if plan.v > M.FORMAT_VERSION then
        return nil, string.format("%s: plan format version %s is newer than this cutover understands (%d); " ..
            "use the cutover that wrote it (%s)", path, tostring(plan.v), M.FORMAT_VERSION, tostring(plan.cutover))
    end
    local bad = check_shape(plan, { fields = SHAPE }, "")
    if bad then return nil, path .. ": not a valid cutover plan: " .. bad end
    return plan, text
end

local function indent(text, prefix)
    return prefix .. tostring(text):gsub("\n$", ""):gsub("\n", "\n" .. prefix)
end

local function step_label(s)
    local label = s.id or "?"
    if s.name and s.name ~= s.id then label = label .. "  " .. s.name end
    if s.item then label = label .. " [" .. s.item .. "]" end
    return label
end

-- cutover show-plan FILE [--format json]
function M.show(path, format)
    local plan, text = M.read(path)
    if not plan then err_out("cutover: " .. text); return engine.EXIT_USAGE end
    local why = verify(plan)
    if why then
        err_out("cutover: refusing to show the plan " .. path .. ": " .. why)
        err_out("  make a new plan with 'cutover plan'")
        return engine.EXIT_REFUSED
    end
    if format == "json" then
        io.stdout:write(text)
        return 0
    end
    local out = {}
    local function say(s) out[#out + 1] = s end
    say("plan " .. path .. " (format " .. tostring(plan.v) .. ", cutover " .. tostring(plan.cutover) ..
        ", made " .. tostring(plan.created) .. " by " .. tostring(plan.user) .. ")")
    say("  playbook:   " .. tostring(plan.playbook.path) .. "  sha256 " .. tostring(plan.playbook.sha256):sub(1, 16))
    if type(plan.inventory) == "table" then
        local n = type(plan.inventory.files) == "table" and #plan.inventory.files or 0
        say("  inventory:  " .. tostring(plan.inventory.path) .. "  (" .. n .. " file" .. (n == 1 and "" or "s") ..
            " with its vars, sha256 " .. tostring(plan.inventory.sha256):sub(1, 16) .. ")")
    else
        say("  inventory:  (none: localhost)")
    end
    local ev = type(plan.extra_vars) == "table" and plan.extra_vars.values
    if type(ev) == "table" and next(ev) then
        local parts = {}
        for _, k in ipairs(util.sorted_keys(ev)) do parts[#parts + 1] = k .. "=" .. encode(ev[k]) end
        say("  extra vars: " .. table.concat(parts, " "))
    end
    say("  options:    " .. options_text(plan.options or {}))
    if type(plan.files) == "table" and #plan.files > 0 then
        say("  files read by steps:")
        for _, f in ipairs(plan.files) do say("    " .. tostring(f.path)) end
    end
    if plan.check_exit_code and plan.check_exit_code ~= 0 then
        say("  the check run ended with exit code " .. tostring(plan.check_exit_code) .. " (see failed steps)")
    end
    for _, h in ipairs(plan.hosts) do
        say("")
        say(string.format("HOST %s: %d change%s predicted%s", h.name, h.changes or 0,
            (h.changes or 0) == 1 and "" or "s",
            (h.at_apply or 0) > 0 and string.format(", %d decided at apply time", h.at_apply) or ""))
        local header_done = false
        for _, s in ipairs(h.steps or {}) do
            if s.at_apply and s.status ~= "unknown" and s.status ~= "parked" and not header_done then
                header_done = true
                say("    -- decided at apply time (after the first result check mode cannot know):")
            end
            if s.at_apply and (s.status == "unknown" or s.status == "parked") and not header_done then
                say(string.format("  %-9s %s", s.status, step_label(s)))
                if s.msg then say(indent(s.msg, "            ")) end
                say("    -- decided at apply time from here on")
                header_done = true
            elseif s.at_apply then
                say(string.format("  %-9s %s  (check mode said: %s)", "at apply", step_label(s), s.status))
            else
                say(string.format("  %-9s %s", s.status, step_label(s)))
                if s.msg and s.status ~= "ok" and s.status ~= "skipped" then say(indent(s.msg, "            ")) end
                if s.diff then say(indent(s.diff, "            ")) end
            end
        end
        if #(h.steps or {}) == 0 then say("  (no steps)") end
    end
    io.stdout:write(shown(table.concat(out, "\n")), "\n")
    return 0
end

---------------------------------------------------------------- apply

-- What changed in one step's prediction: a short text.
local function what_changed(old, new)
    if not new then return "no longer reported (the host now stops earlier or runs other steps)" end
    if old.id ~= new.id or tostring(old.item) ~= tostring(new.item) or old.play ~= new.play then
        return "another step is reported here now ('" .. tostring(new.id) .. "')"
    end
    if old.status ~= new.status then
        return "predicted " .. tostring(old.status) .. ", now " .. tostring(new.status) ..
            (new.msg and (" (" .. new.msg .. ")") or "")
    end
    if old.diff ~= new.diff and (old.diff or new.diff) then
        if new.diff then return "the predicted diff changed; it is now:\n" .. indent(new.diff, "      ") end
        return "the predicted diff changed (there is none now)"
    end
    local names = {}
    local of, nf = old.fields or {}, new.fields or {}
    for k, d in pairs(of) do if nf[k] ~= d then names[#names + 1] = k end end
    for k in pairs(nf) do if of[k] == nil then names[#names + 1] = k end end
    table.sort(names)
    if #names > 0 then return "result field" .. (#names > 1 and "s " or " ") .. table.concat(names, ", ") .. " changed" end
    return "its prediction changed"
end

-- The first step whose prediction differs: step, description.
local function first_difference(planned, now)
    local cut = 0
    for i, s in ipairs(planned) do
        cut = i
        if s.at_apply then break end
    end
    for i = 1, cut do
        local old, new = planned[i], now[i]
        if not new or old.sha256 ~= new.sha256 then return old, what_changed(old, new) end
    end
    return planned[math.max(1, cut)], "its facts digest changed"
end

local function same_list(a, b)
    a, b = a or {}, b or {}
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
end

-- Reasons to refuse the whole plan (a list of texts).
local function whole_plan_check(plan, o, env)
    local reasons = {}
    local pb = plan.playbook
    if file_sha256(pb.path) ~= pb.sha256 then
        reasons[#reasons + 1] = "playbook changed: " .. tostring(pb.path)
    end
    local inv = plan.inventory
    if type(inv) == "table" and inv.path then
        local loaded, ierr = inventory.load(inv.path)
        if not loaded then
            reasons[#reasons + 1] = "inventory or its vars changed: " .. inv.path .. " no longer loads: " .. tostring(ierr)
        else
            local digest, files = files_digest(loaded.files_read)
            if digest ~= inv.sha256 then
                local was = {}
                for _, f in ipairs(inv.files or {}) do was[f.path] = f.sha256 end
                local which = {}
                for _, f in ipairs(files) do
                    if was[f.path] == nil then which[#which + 1] = f.path .. " (new)"
                    elseif was[f.path] ~= f.sha256 then which[#which + 1] = f.path end
                    was[f.path] = nil
                end
                for p in pairs(was) do which[#which + 1] = p .. " (no longer read)" end
                table.sort(which)
                reasons[#reasons + 1] = "inventory or its vars changed: " ..
                    (#which > 0 and table.concat(which, ", ") or inv.path)
            end
        end
    end
    local ev_plan = plan.extra_vars or {}
    local args = o["extra-vars"] or ev_plan.args or {}
    local ev, eerr = env.extra_vars(args)
    if not ev then
        reasons[#reasons + 1] = "extra vars changed: " .. tostring(eerr)
    elseif extra_vars_digest(ev, type(ev_plan.salt) == "string" and ev_plan.salt or nil) ~= ev_plan.sha256 then
        local hint = ""
        if not o["extra-vars"] and encode(ev_plan.args or {}):find("********", 1, true) then
            hint = " (the plan masks secret values: give apply the same -e options as plan)"
        end
        reasons[#reasons + 1] = "extra vars changed" .. hint
    else
        -- the digest above proved the values equal; what the plan shows
        -- must be them too, but for the secret ones it masks whole (-e
        -- @FILE values, vault values: docs/security.md), shown masked here
        local shown = mask_value(ev)
        for k, v in pairs(type(ev_plan.values) == "table" and ev_plan.values or {}) do
            if v == redact.MASK and shown[k] ~= nil then shown[k] = redact.MASK end
        end
        if shown_values(shown) ~= shown_values(ev_plan.values) then
            reasons[#reasons + 1] = "the extra vars shown differ from the ones apply uses"
        end
    end
    for _, f in ipairs(plan.files or {}) do
        if file_sha256(f.path) ~= f.sha256 then
            reasons[#reasons + 1] = f.path .. " read by a step changed"
        end
    end
    local po = plan.options or {}
    if o.limit and inventory.limit_pattern(o.limit) ~= po.limit then
        reasons[#reasons + 1] = "options changed: --limit " .. o.limit .. " (the plan has " .. tostring(po.limit or "none") .. ")"
    end
    if o.tags and not same_list(tag_list(o.tags), po.tags) then
        reasons[#reasons + 1] = "options changed: --tags (the plan has " .. (po.tags and table.concat(po.tags, ",") or "none") .. ")"
    end
    if o["skip-tags"] and not same_list(tag_list(o["skip-tags"]), po.skip_tags) then
        reasons[#reasons + 1] = "options changed: --skip-tags (the plan has " ..
            (po.skip_tags and table.concat(po.skip_tags, ",") or "none") .. ")"
    end
    return reasons, ev
end

-- What the journal keeps of an applied plan (JSON text, masked): the
-- plan's identity, the hosts refused as stale, and per host each
-- prediction's step, item, status and whether it was decided at apply
-- time (no diffs or messages: the plan file has them).
function M.applied_record(plan, path, stale)
    local rec = { file = absolute(path), body_sha256 = plan.body_sha256, created = plan.created,
                  user = plan.user, playbook_sha256 = plan.playbook and plan.playbook.sha256,
                  stale = array({}), hosts = array({}) }
    for _, st in ipairs(stale or {}) do
        rec.stale[#rec.stale + 1] = { host = st.name, why = mask(st.why or ""),
                                      step = st.step and st.step.id or nil }
    end
    for _, h in ipairs(plan.hosts or {}) do
        local steps = array({})
        for _, e in ipairs(h.steps or {}) do
            steps[#steps + 1] = { play = e.play, id = e.id, name = e.name, item = e.item, status = e.status,
                                  changed = e.changed, at_apply = e.at_apply }
        end
        rec.hosts[#rec.hosts + 1] = { name = h.name, steps = steps }
    end
    return redact.json_line(encode(redact.value(rec)))
end

-- Host names that cannot be excluded through a --limit pattern.
local function pattern_safe(name) return not name:find("[,:!&%*%?%[%]@]") and util.trim(name) == name end

-- cutover apply FILE: o (parsed options), env.
function M.apply(path, o, env)
    local plan, perr = M.read(path)
    if not plan then err_out("cutover: " .. perr); return engine.EXIT_USAGE end
    local why = verify(plan)
    if why then
        err_out("cutover: refusing the plan " .. path .. ": nothing was run")
        err_out("  " .. why)
        err_out("  make a new plan with 'cutover plan'")
        return engine.EXIT_REFUSED
    end
    local reasons, ev = whole_plan_check(plan, o, env)
    if #reasons > 0 then
        err_out("cutover: refusing the plan " .. path .. ": nothing was run")
        for _, r in ipairs(reasons) do err_out("  " .. r) end
        err_out("  make a new plan with 'cutover plan'")
        return engine.EXIT_REFUSED
    end
    local po = plan.options or {}
    local ro = {
        inventory = plan.inventory and plan.inventory.path or nil,
        limit = po.limit, tags = po.tags, ["skip-tags"] = po.skip_tags,
        format = o.format, verbose = o.verbose, diff = o.diff,
        forks = o.forks, ["ask-pass"] = o["ask-pass"], vault = o.vault,
        ["known-hosts"] = o["known-hosts"], ["accept-new-host-keys"] = o["accept-new-host-keys"],
        ["ssh-config"] = o["ssh-config"], ["max-output"] = o["max-output"],
        journal = o.journal, ["no-journal"] = o["no-journal"],
        approve = o.approve, answer = o.answer, ["answer-stdin"] = o["answer-stdin"],
        ["non-interactive"] = o["non-interactive"],
    }
    local book, inv, opts = env.prepare(ro, plan.playbook.path, ev)
    if not book then return inv end
    if opts.playbook_digest ~= plan.playbook.sha256 then
        err_out("cutover: refusing the plan " .. path .. ": nothing was run")
        err_out("  playbook changed: " .. plan.playbook.path)
        return engine.EXIT_REFUSED
    end
    -- check mode again, quietly, without the journal: the facts of each host
    local c = M.collector()
    local chk = util.copy(opts)
    chk.check, chk.diff, chk.journal = true, true, nil
    chk.interactive = false
    chk.on_result, chk.on_file_read = c.on_result, c.on_file_read
    local ccode = quietly(function() return engine.run(book, inv, chk) end)
    if ccode == engine.EXIT_USAGE or ccode == engine.EXIT_INTERRUPTED then return ccode end
    -- stale hosts
    local planned, stale, fresh = {}, {}, {}
    for _, h in ipairs(plan.hosts) do
        planned[h.name] = true
        local now = c.hosts[h.name]
        if not now then
            stale[#stale + 1] = { name = h.name, why = "no result in the new check run" }
        elseif facts_digest(now) ~= h.facts_sha256 then
            local s, why = first_difference(h.steps or {}, now)
            stale[#stale + 1] = { name = h.name, step = s, why = why }
        else
            fresh[#fresh + 1] = h.name
        end
    end
    for _, name in ipairs(c.order) do
        if not planned[name] then stale[#stale + 1] = { name = name, why = "not in the plan" } end
    end
    for _, s in ipairs(stale) do
        local where = s.step and (" at step '" .. tostring(s.step.id) .. "'" ..
            (s.step.name and s.step.name ~= s.step.id and (" (" .. s.step.name .. ")") or "") ..
            (s.step.item and (" [" .. s.step.item .. "]") or "")) or ""
        err_out("cutover: host " .. s.name .. " refused: the plan is stale" .. where .. ": " .. s.why)
    end
    local mismatch = shown_mismatch(plan, c, fresh)
    if mismatch then
        err_out("cutover: refusing the plan " .. path .. ": nothing was run")
        err_out("  " .. mismatch .. " (the plan shows one change and would apply another)")
        err_out("  make a new plan with 'cutover plan'")
        return engine.EXIT_REFUSED
    end
    if #stale > 0 and #fresh == 0 then
        err_out("cutover: every host of the plan is stale; nothing was run. Make a new plan with 'cutover plan'.")
        return engine.EXIT_REFUSED
    end
    local real = util.copy(opts)
    if #stale > 0 then
        local parts = { po.limit or "all,localhost" }
        for _, s in ipairs(stale) do
            if not pattern_safe(s.name) then
                err_out("cutover: host name '" .. s.name .. "' cannot be left out by a --limit pattern; " ..
                        "refusing the plan. Make a new plan with --limit.")
                return engine.EXIT_REFUSED
            end
            parts[#parts + 1] = "!" .. s.name
        end
        real.limit = table.concat(parts, ",")
        real.record_options = util.copy(opts.record_options or {})
        real.record_options.limit = real.limit
    end
    if o.format ~= "json" then
        print(shown("apply " .. path .. ": " .. (#fresh <= 10 and table.concat(fresh, ", ") or (#fresh .. " hosts")) ..
            (#stale > 0 and ("  (refused as stale: " .. #stale .. " host" .. (#stale == 1 and "" or "s") .. ")") or "")))
    end
    -- the journal records which plan this run applies and what it
    -- predicted, per host and step (masked as the plan is): `cutover
    -- report` shows plan versus actual from it
    real.applied_plan = { file = absolute(path), detail = M.applied_record(plan, path, stale) }
    -- compare what the real run did with the plan, to say where it differed
    local rc = M.collector()
    real.on_result = rc.on_result
    local code = engine.run(book, inv, real)
    local by_name = {}
    for _, h in ipairs(plan.hosts) do by_name[h.name] = h end
    for _, name in ipairs(fresh) do
        local steps, got = by_name[name].steps or {}, rc.hosts[name] or {}
        for i, s in ipairs(steps) do
            if s.at_apply then break end
            local g = got[i]
            if not g or g.id ~= s.id or tostring(g.item) ~= tostring(s.item) then break end
            if g.status ~= s.status then
                err_out("cutover: warning: host " .. name .. ", step '" .. tostring(s.id) .. "': planned " ..
                        s.status .. ", the real run: " .. g.status)
            end
        end
    end
    if code ~= engine.EXIT_OK then return code end
    if #stale > 0 then
        err_out("cutover: " .. #stale .. " host" .. (#stale == 1 and " was" or "s were") ..
                " refused as stale (exit 3); make a new plan for " .. (#stale == 1 and "it" or "them"))
        return engine.EXIT_REFUSED
    end
    return code
end

return M
