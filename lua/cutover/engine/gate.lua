-- engine.gate: approval gates (a `pause` step's ctx.gate): approved from
-- the command line, asked on the terminal, or the host parks.
local loop = require("cutover.core.loop")
local sys = require("cutover.core.sys")
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")

local Run = {}

-- Approval gates.  Approved when: --approve GATE or GATE@HOST, an
-- --answer for it, or an approval the journal recorded for this run.
-- Otherwise asked on the terminal (one host at a time) or parked.
function Run:gate(hs, spec)
    local o = self.opts
    local gate = spec.gate
    local approve = o.approve or {}
    local answer = o.answers and o.answers[gate]
    local who = (sys.user())
    local function approved(how, value)
        if spec.choices and value ~= nil then
            local okc = false
            for _, c in ipairs(spec.choices) do if tostring(c) == value then okc = true end end
            if not okc then
                return { failed = true, gate = gate, msg = "gate '" .. gate .. "': '" ..
                         (spec.secret and "********" or value) .. "' is not one of " ..
                         table.concat(spec.choices, ", ") }
            end
        end
        -- a secret answer is masked in all output from here on
        if spec.secret and value ~= nil then redact.register(value) end
        if self.journal then
            self.journal:event(self.run_id, hs.name, "approve", gate,
                               how .. (value ~= nil and not spec.secret and (": " .. value) or ""))
        end
        return { changed = false, approved = true, gate = gate, answer = value or "yes",
                 approved_by = who, msg = "gate '" .. gate .. "' approved (" .. how .. ")" }
    end
    if answer ~= nil then return approved("answered on the command line by " .. who, answer) end
    -- a gate with choices or a secret needs its value: --approve alone
    -- does not answer it (it is asked, or the host parks, as without)
    local needs_value = spec.choices ~= nil or spec.secret
    if not needs_value and (approve[gate] or approve[gate .. "@" .. hs.name]) then
        return approved("--approve by " .. who, nil)
    end
    if o.interactive then
        -- one prompt on the terminal at a time
        self.prompt_turn = self.prompt_turn or loop.condition()
        while self.prompting do self.prompt_turn:wait() end
        self.prompting = true
        local text = string.format("\n[%s] gate '%s': %s%s ", hs.name, gate, spec.prompt,
            spec.choices and (" (" .. table.concat(spec.choices, "/") .. ")") or " [yes/no]")
        self.reporter:clear()
        -- the lines held for the end of this turn go before the prompt
        require("cutover.output").flush()
        local got, err
        for _ = 1, 3 do
            got, err = sys.ask(text, spec.secret)
            if got == nil then break end
            got = util.trim(got)
            if spec.choices then
                local okc = false
                for _, c in ipairs(spec.choices) do if tostring(c) == got then okc = true end end
                if okc then break end
                sys.write(2, "  answer one of: " .. table.concat(spec.choices, ", ") .. "\n")
                got = nil
            else
                break
            end
        end
        self.prompting = false
        self.prompt_turn:signal()
        if got == nil then
            return { failed = true, gate = gate, msg = "gate '" .. gate .. "': " .. (err or "no valid answer") }
        end
        if not spec.choices and not spec.secret and got:lower() ~= "yes" and got:lower() ~= "y" then
            if self.journal then self.journal:event(self.run_id, hs.name, "refuse", gate, "by " .. who) end
            return { failed = true, gate = gate, msg = "gate '" .. gate .. "' not approved by " .. who }
        end
        return approved("at the terminal by " .. who, (spec.choices or spec.secret) and got or nil)
    end
    return { parked = true, gate = gate, changed = false,
             gate_kind = spec.secret and "secret" or (spec.choices and "choices") or "approve",
             choices = spec.choices,
             msg = "parked at gate '" .. gate .. "': " .. spec.prompt }
end

return { methods = Run }
