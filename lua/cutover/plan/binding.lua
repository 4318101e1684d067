-- plan.binding: what show-plan shows must be what apply checks.
local crypto = require("cutover.core.crypto")
local json = require("cutover.core.json")
local common = require("cutover.plan.common")
local digests = require("cutover.plan.digests")
local redact, mask, encode = common.redact, common.mask, common.encode
local UNDECIDED, cut_of = digests.UNDECIDED, digests.cut_of

local M = {}

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
            return "host " .. h.name .. ": " .. tostring(h.changes or 0) .. " changes shown, its steps predict " ..
                changes
        end
        if (h.at_apply or 0) ~= at_apply then
            return "host " .. h.name .. ": " .. tostring(h.at_apply or 0) ..
                " results shown as decided at apply time, " ..
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
                return "host " .. name .. ", step '" .. st.id ..
                    "': the changed flag shown differs from what apply checks now"
            end
        end
    end
    return nil
end

-- The extra vars as the plan shows them, normalised like a plan's text.
local function shown_values(v)
    return json.encode(json.decode(redact.json_line(encode(v or {}))) or {})
end

M.body_digest = body_digest
M.verify = verify
M.shown_mismatch = shown_mismatch
M.shown_values = shown_values

return M
