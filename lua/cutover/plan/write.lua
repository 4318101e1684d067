-- plan.write: `cutover plan`: the playbook in check mode, and the plan
-- (per host and step what it predicts, with the digests) written masked.
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local crypto = require("cutover.core.crypto")
local sys = require("cutover.core.sys")
local engine = require("cutover.engine")
local common = require("cutover.plan.common")
local digests = require("cutover.plan.digests")
local binding = require("cutover.plan.binding")
local body_digest = binding.body_digest
local redact, mask, mask_value, shown = common.redact, common.mask, common.mask_value, common.shown
local err_out, array, encode, file_sha256 = common.err_out, common.array, common.encode, common.file_sha256
local absolute = common.absolute
local UNDECIDED, cut_of, facts_digest = digests.UNDECIDED, digests.cut_of, digests.facts_digest
local files_digest, extra_vars_digest = digests.files_digest, digests.extra_vars_digest
local run_options, absolute_extra_args = digests.run_options, digests.absolute_extra_args

local M = {}

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
        v = common.FORMAT_VERSION,
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
    local c = digests.collector()
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
    local msg = string.format("plan written to %s: %d host%s, %d change%s predicted, %d step result%s decided at " ..
        "apply time",
        out, hosts, hosts == 1 and "" or "s", plan.totals.changes, plan.totals.changes == 1 and "" or "s",
        plan.totals.at_apply, plan.totals.at_apply == 1 and "" or "s")
    if o.format == "json" then err_out(msg) else print(shown(msg)) end
    return code
end

return M
