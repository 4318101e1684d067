-- plan.show: `cutover show-plan`: a plan rendered for review.
local engine = require("cutover.engine")
local util = require("cutover.util")
local common = require("cutover.plan.common")
local digests = require("cutover.plan.digests")
local binding = require("cutover.plan.binding")
local read = require("cutover.plan.read")
local shown, err_out, encode, indent = common.shown, common.err_out, common.encode, common.indent
local options_text, verify = digests.options_text, binding.verify

local M = {}

local function step_label(s)
    local label = s.id or "?"
    if s.name and s.name ~= s.id then label = label .. "  " .. s.name end
    if s.item then label = label .. " [" .. s.item .. "]" end
    return label
end

-- cutover show-plan FILE [--format json]
function M.show(path, format)
    local plan, text = read.read(path)
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

return M
