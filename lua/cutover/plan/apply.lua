-- plan.apply: `cutover apply`: the plan's digests checked, check mode
-- run again to find the hosts whose facts moved (stale), and the
-- playbook run for real on the others.
local engine = require("cutover.engine")
local output = require("cutover.output")
local inventory = require("cutover.inventory")
local util = require("cutover.util")
local common = require("cutover.plan.common")
local digests = require("cutover.plan.digests")
local binding = require("cutover.plan.binding")
local read = require("cutover.plan.read")
local redact, mask, mask_value, shown = common.redact, common.mask, common.mask_value, common.shown
local err_out, array, encode, file_sha256 = common.err_out, common.array, common.encode, common.file_sha256
local absolute, indent = common.absolute, common.indent
local facts_digest, files_digest = digests.facts_digest, digests.files_digest
local extra_vars_digest, tag_list = digests.extra_vars_digest, digests.tag_list
local verify, shown_mismatch, shown_values = binding.verify, binding.shown_mismatch, binding.shown_values

local M = {}

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
    if #names > 0 then return "result field" .. (#names > 1 and "s " or " ") .. table.concat(names, ", ") ..
        " changed" end
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
            reasons[#reasons + 1] = "inventory or its vars changed: " .. inv.path .. " no longer loads: " ..
                tostring(ierr)
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
        local masked = mask_value(ev)
        for k, v in pairs(type(ev_plan.values) == "table" and ev_plan.values or {}) do
            if v == redact.MASK and masked[k] ~= nil then masked[k] = redact.MASK end
        end
        if shown_values(masked) ~= shown_values(ev_plan.values) then
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
        reasons[#reasons + 1] = "options changed: --limit " .. o.limit .. " (the plan has " ..
            tostring(po.limit or "none") .. ")"
    end
    if o.tags and not same_list(tag_list(o.tags), po.tags) then
        reasons[#reasons + 1] = "options changed: --tags (the plan has " .. (po.tags and table.concat(po.tags,
            ",") or "none") .. ")"
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

-- "refusing the plan PATH: nothing was run", then each line indented.
local function refuse_plan(path, lines)
    err_out("cutover: refusing the plan " .. path .. ": nothing was run")
    for _, l in ipairs(lines) do err_out("  " .. l) end
    return engine.EXIT_REFUSED
end

-- The run's options: what the plan was made with (inventory, limit,
-- tags), with this invocation's output, connection and journal choices.
local function apply_options(plan, o)
    local po = plan.options or {}
    return {
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
end

-- check mode again, quietly, without the journal: the facts of each
-- host.  Returns the collector and the check run's exit code.
local function check_again(book, inv, opts)
    local c = digests.collector()
    local chk = util.copy(opts)
    chk.check, chk.diff, chk.journal = true, true, nil
    chk.interactive = false
    chk.on_result, chk.on_file_read = c.on_result, c.on_file_read
    local ccode = quietly(function() return engine.run(book, inv, chk) end)
    return c, ccode
end

-- The plan's hosts whose facts moved since (stale: {name, step, why},
-- also hosts the plan does not have) and the others (fresh: names).
local function stale_hosts(plan, c)
    local planned, stale, fresh = {}, {}, {}
    for _, h in ipairs(plan.hosts) do
        planned[h.name] = true
        local now = c.hosts[h.name]
        if not now then
            stale[#stale + 1] = { name = h.name, why = "no result in the new check run" }
        elseif facts_digest(now) ~= h.facts_sha256 then
            local s, diff_why = first_difference(h.steps or {}, now)
            stale[#stale + 1] = { name = h.name, step = s, why = diff_why }
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
    return stale, fresh
end

-- The real run's options: the stale hosts left out by --limit.  nil
-- when a stale host's name cannot be left out by a pattern.
local function without_stale(opts, plan, stale)
    local real = util.copy(opts)
    if #stale == 0 then return real end
    local parts = { (plan.options or {}).limit or "all,localhost" }
    for _, s in ipairs(stale) do
        if not pattern_safe(s.name) then
            err_out("cutover: host name '" .. s.name .. "' cannot be left out by a --limit pattern; " ..
                    "refusing the plan. Make a new plan with --limit.")
            return nil
        end
        parts[#parts + 1] = "!" .. s.name
    end
    real.limit = table.concat(parts, ",")
    real.record_options = util.copy(opts.record_options or {})
    real.record_options.limit = real.limit
    return real
end

-- Warns where the real run's status differed from the plan's (up to
-- a host's first step decided at apply time, or where the steps part).
local function warn_differences(plan, fresh, rc)
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
end

-- cutover apply FILE: o (parsed options), env.
function M.apply(path, o, env)
    local plan, perr = read.read(path)
    if not plan then err_out("cutover: " .. perr); return engine.EXIT_USAGE end
    local why = verify(plan)
    if why then return refuse_plan(path, { why, "make a new plan with 'cutover plan'" }) end
    local reasons, ev = whole_plan_check(plan, o, env)
    if #reasons > 0 then
        reasons[#reasons + 1] = "make a new plan with 'cutover plan'"
        return refuse_plan(path, reasons)
    end
    local book, inv, opts = env.prepare(apply_options(plan, o), plan.playbook.path, ev)
    if not book then return inv end
    if opts.playbook_digest ~= plan.playbook.sha256 then
        return refuse_plan(path, { "playbook changed: " .. plan.playbook.path })
    end
    local c, ccode = check_again(book, inv, opts)
    if ccode == engine.EXIT_USAGE or ccode == engine.EXIT_INTERRUPTED then return ccode end
    local stale, fresh = stale_hosts(plan, c)
    local mismatch = shown_mismatch(plan, c, fresh)
    if mismatch then
        return refuse_plan(path, { mismatch .. " (the plan shows one change and would apply another)",
                                   "make a new plan with 'cutover plan'" })
    end
    if #stale > 0 and #fresh == 0 then
        err_out("cutover: every host of the plan is stale; nothing was run. Make a new plan with 'cutover plan'.")
        return engine.EXIT_REFUSED
    end
    local real = without_stale(opts, plan, stale)
    if not real then return engine.EXIT_REFUSED end
    if o.format ~= "json" then
        print(shown("apply " .. path .. ": " .. (#fresh <= 10 and table.concat(fresh, ", ") or (#fresh .. " hosts")) ..
            (#stale > 0 and ("  (refused as stale: " .. #stale .. " host" .. (#stale == 1 and "" or "s") ..
                ")") or "")))
    end
    -- the journal records which plan this run applies and what it
    -- predicted, per host and step (masked as the plan is): `cutover
    -- report` shows plan versus actual from it
    real.applied_plan = { file = absolute(path), detail = M.applied_record(plan, path, stale) }
    -- compare what the real run did with the plan, to say where it differed
    local rc = digests.collector()
    real.on_result = rc.on_result
    local code = engine.run(book, inv, real)
    warn_differences(plan, fresh, rc)
    if code ~= engine.EXIT_OK then return code end
    if #stale > 0 then
        err_out("cutover: " .. #stale .. " host" .. (#stale == 1 and " was" or "s were") ..
                " refused as stale (exit 3); make a new plan for " .. (#stale == 1 and "it" or "them"))
        return engine.EXIT_REFUSED
    end
    return code
end

return M
