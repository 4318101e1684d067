-- plan.digests: what a plan's prediction rests on: each result as an
-- entry with its digest, the collector of a check run, the facts digest
-- of a host, the digests of files and extra vars, the run's options.
local crypto = require("cutover.core.crypto")
local output = require("cutover.output")
local diff = require("cutover.diff")
local util = require("cutover.util")
local common = require("cutover.plan.common")
local array, encode, file_sha256, absolute = common.array, common.encode, common.file_sha256, common.absolute

local M = {}

-- Result fields that change from one identical run to the next.
local VOLATILE = { duration = true, elapsed = true, attempts = true, time = true,
                   start = true, ["end"] = true, delta = true, resumed = true }

-- Statuses a check run cannot decide: the host's predictions end there.
local UNDECIDED = { unknown = true, parked = true, interrupted = true }
M.UNDECIDED = UNDECIDED

-- One reported result -> a plan entry (unmasked; the digests are of the
-- real values, the text is masked when written).
local function entry(ev)
    local r = ev.result
    local status = output.status(r)
    local field_digests = {}
    for k, v in pairs(r) do
        if k ~= "diff" and not VOLATILE[k] and type(k) == "string" then
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
function M.cut_of(entries)
    for i, e in ipairs(entries) do
        if UNDECIDED[e.status] then return i end
    end
    return #entries
end

function M.facts_digest(entries)
    local parts = {}
    for i = 1, M.cut_of(entries) do parts[#parts + 1] = entries[i].sha256 end
    return crypto.sha256(table.concat(parts, "\n"))
end

-- Digest of a list of files: "sha256  path" lines, in order.
function M.files_digest(paths)
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

-- The extra vars' digest.  With a salt (random, kept in the plan) it is
-- not a plain hash of the values, which may hold a secret: a plain one
-- would let anyone holding the plan test guesses against a table made in
-- advance.  Plans written before the salt have none.
function M.extra_vars_digest(ev, salt)
    if salt then return crypto.sha256("cutover-extra-vars\0" .. salt .. "\0" .. encode(ev or {})) end
    return crypto.sha256(encode(ev or {}))
end

-- Options that shape the run, normalised: tags as a sorted list.
function M.tag_list(list)
    if not list then return nil end
    local set = {}
    for _, item in ipairs(list) do
        for t in tostring(item):gmatch("[^,]+") do set[util.trim(t)] = true end
    end
    local out = util.sorted_keys(set)
    return #out > 0 and array(out) or nil
end

-- limit: the pattern as resolved (--limit @FILE read once, at planning).
function M.run_options(o, limit)
    return { limit = limit, tags = M.tag_list(o.tags), skip_tags = M.tag_list(o["skip-tags"]) }
end

function M.options_text(opts)
    local parts = {}
    if opts.limit then parts[#parts + 1] = "--limit " .. opts.limit end
    if opts.tags then parts[#parts + 1] = "--tags " .. table.concat(opts.tags, ",") end
    if opts.skip_tags then parts[#parts + 1] = "--skip-tags " .. table.concat(opts.skip_tags, ",") end
    return #parts > 0 and table.concat(parts, " ") or "(none)"
end

-- -e arguments with @FILE made absolute, so apply reads the same file
-- from any folder.
function M.absolute_extra_args(list)
    local out = {}
    for _, a in ipairs(list or {}) do
        if a:sub(1, 1) == "@" then a = "@" .. absolute(a:sub(2)) end
        out[#out + 1] = a
    end
    return out
end

return M
