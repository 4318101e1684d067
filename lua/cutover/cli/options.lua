-- cli.options: the command-line parser, the ONE table of the options
-- that run, resume, plan and apply share (each command picks its names
-- from it, so an option means the same everywhere), and the usage
-- errors every command reports the same way.
local util = require("cutover.util")
local engine = require("cutover.engine")
local output = require("cutover.output")

local M = {}

-- name -> { short, takes_value, repeat }
local RUN_OPTIONS = {
    inventory = { "i", true }, ["extra-vars"] = { "e", true, true },
    check = { "C" }, diff = { "D" }, limit = { "l", true }, tags = { "t", true, true },
    ["skip-tags"] = { nil, true, true }, ["start-at"] = { nil, true },
    format = { nil, true }, verbose = { "v", false, true }, help = { "h" },
    ["accept-new-host-keys"] = {}, ["known-hosts"] = { nil, true },
    ["ssh-config"] = { "F", true }, forks = { "f", true },
    ["ask-pass"] = { "k" }, vault = { nil, true },
    become = { "b" }, ["become-user"] = { nil, true }, ["ask-become-pass"] = { "K" },
    ["max-output"] = { nil, true },
    journal = { nil, true }, ["no-journal"] = {},
    approve = { nil, true, true }, answer = { nil, true, true },
    ["answer-stdin"] = { nil, true, true }, ["non-interactive"] = {},
    report = { nil, true }, output = { "o", true },
    ["mark-done"] = { nil, true, true }, retry = { nil, true, true }, ["accept-changed"] = {},
}

-- A command's spec: the named entries of RUN_OPTIONS.
function M.pick(names)
    local spec = {}
    for _, n in ipairs(names) do spec[n] = assert(RUN_OPTIONS[n], n) end
    return spec
end

local CONNECT = { "accept-new-host-keys", "known-hosts", "ssh-config", "forks", "ask-pass", "vault",
                  "max-output", "become", "become-user", "ask-become-pass" }
local GATES = { "approve", "answer", "answer-stdin", "non-interactive" }
local function names(...)
    local out = {}
    for _, list in ipairs({ ... }) do table.move(list, 1, #list, #out + 1, out) end
    return out
end

M.RUN = M.pick(names(CONNECT, GATES, { "inventory", "extra-vars", "check", "diff", "limit", "tags",
    "skip-tags", "start-at", "format", "verbose", "help", "journal", "no-journal", "report" }))
M.RESUME = M.pick(names(GATES, { "journal", "format", "verbose", "help", "mark-done", "retry",
    "accept-changed", "forks", "ask-pass", "ask-become-pass", "known-hosts", "accept-new-host-keys",
    "report" }))
M.PLAN = M.pick(names(CONNECT, { "inventory", "extra-vars", "limit", "tags", "skip-tags", "output",
    "format", "verbose", "help", "journal", "no-journal" }))
M.APPLY = M.pick(names(CONNECT, GATES, { "extra-vars", "limit", "tags", "skip-tags", "format",
    "verbose", "diff", "help", "journal", "no-journal" }))

-- A usage mistake: the message and where to find help; exit 2.
function M.usage_error(msg, cmd)
    output.error(msg)
    output.note("Try 'cutover " .. (cmd and cmd .. " " or "") .. "--help'.")
    return engine.EXIT_USAGE
end

-- Returns options, positional args | nil, message
function M.parse(args, spec)
    local opts, pos = {}, {}
    local short = {}
    for name, s in pairs(spec) do if s[1] then short[s[1]] = name end end
    local i = 1
    local function put(name, value)
        local s = spec[name]
        if s[3] then
            opts[name] = opts[name] or {}
            table.insert(opts[name], value)
        else
            opts[name] = value
        end
    end
    while i <= #args do
        local a = args[i]
        if a == "--" then
            for j = i + 1, #args do pos[#pos + 1] = args[j] end
            break
        elseif a:sub(1, 2) == "--" then
            local name, value = a:match("^%-%-([^=]+)=(.*)$")
            name = name or a:sub(3)
            local s = spec[name]
            if not s then
                local names = util.sorted_keys(spec)
                for k, n in ipairs(names) do names[k] = "--" .. n end
                return nil, "unknown option '--" .. name .. "'" .. util.did_you_mean("--" .. name, names)
            end
            if s[2] then
                if value == nil then
                    i = i + 1
                    value = args[i]
                    if value == nil then return nil, "option '--" .. name .. "' needs a value" end
                end
                put(name, value)
            else
                if value ~= nil then return nil, "option '--" .. name .. "' takes no value" end
                put(name, true)
            end
        elseif a:sub(1, 1) == "-" and #a > 1 then
            local j = 2
            while j <= #a do
                local c = a:sub(j, j)
                local name = short[c]
                if not name then return nil, "unknown option '-" .. c .. "'" end
                if spec[name][2] then
                    local value = a:sub(j + 1)
                    if value == "" then
                        i = i + 1
                        value = args[i]
                        if value == nil then return nil, "option '-" .. c .. "' needs a value" end
                    end
                    put(name, value)
                    break
                else
                    put(name, true)
                end
                j = j + 1
            end
        else
            pos[#pos + 1] = a
        end
        i = i + 1
    end
    return opts, pos
end

-- Problems (already FILE:LINE: ...) on stderr, secrets masked.
function M.print_errors(errs)
    for _, e in ipairs(errs) do output.note(e) end
end

-- --forks and --format of run, resume, plan and apply; nil | exit code.
function M.check_run(o, cmd)
    if o.forks and not (math.tointeger(tonumber(o.forks)) and tonumber(o.forks) >= 1) then
        return M.usage_error("--forks must be a whole number of at least 1", cmd)
    end
    if o.format and o.format ~= "text" and o.format ~= "json" then
        return M.usage_error("--format must be text or json", cmd)
    end
end

-- The journal named by --journal (or the default) | nil (said why).
function M.open_journal(o)
    local j, err = require("cutover.journal").open(o.journal)
    if not j then M.print_errors({ "cutover: " .. err }) end
    return j
end

return M
