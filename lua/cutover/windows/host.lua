-- windows.host: what the Windows actions ask a host, through its
-- connection: each function runs one command (argv built and quoted by
-- windows.cmdline) and parses its output with windows.parse.  Failures
-- return nil, message naming the command.
local parse = require("cutover.windows.parse")
local util = require("cutover.util")

local M = {}

-- Runs argv; returns the result (any exit code) | nil, message.
function M.run(ctx, argv, opts)
    opts = opts or {}
    local r, err = ctx.conn:exec({ argv = argv, stdin = opts.stdin, timeout = opts.timeout })
    if not r then return nil, err end
    return r
end

local function text_of(r) return r.stdout .. (r.stderr ~= "" and ("\n" .. r.stderr) or "") end

-- Runs argv and parses stdout with parser; a non-zero exit is a failure
-- unless opts.any_rc.
function M.parsed(ctx, argv, parser, opts)
    local r, err = M.run(ctx, argv, opts)
    if not r then return nil, err end
    if r.rc ~= 0 and not (opts and opts.any_rc) then
        return nil, table.concat(argv, " "):gsub("password=%s+%S+", "password= ********") ..
            ": exit code " .. r.rc .. ": " .. util.trim(text_of(r)), r
    end
    local v, perr = parser(r.stdout)
    if not v then return nil, perr, r end
    return v, nil, r
end

-- { computer_name, role, is_dc, boot (text), login_user, login_domain,
--   login_is_local, env }
function M.facts(ctx)
    local env, err = M.parsed(ctx, { "set" }, parse.env)
    if not env then return nil, err end
    local acc, aerr = M.parsed(ctx, { "net", "accounts" }, parse.net_accounts)
    if not acc then return nil, aerr end
    local stats, serr = M.parsed(ctx, { "net", "statistics", "server" }, parse.net_statistics)
    if not stats then return nil, serr end
    local computer = env.COMPUTERNAME or env.computername
    local domain = env.USERDOMAIN
    return {
        computer_name = computer, role = acc.role, is_dc = acc.is_dc == true,
        boot = stats.since, login_user = env.USERNAME, login_domain = domain,
        login_is_local = domain ~= nil and computer ~= nil and domain:upper() == computer:upper(),
    }
end

-- The boot identity: "Statistics since ..." changes at every boot.
function M.boot_id(ctx)
    local stats, err = M.parsed(ctx, { "net", "statistics", "server" }, parse.net_statistics)
    if not stats then return nil, err end
    return stats.since
end

function M.service_config(ctx, name)
    return M.parsed(ctx, { "sc", "qc", name }, parse.sc_qc)
end

function M.service_status(ctx, name)
    return M.parsed(ctx, { "sc", "query", name }, parse.sc_query)
end

function M.services(ctx)
    return M.parsed(ctx, { "sc", "query", "type=", "service", "state=", "all" }, parse.sc_query_list)
end

-- The local user rights: secedit export to a temporary file, read back,
-- removed.  -> rights table (right -> { principal text ... }) | nil, msg
function M.rights(ctx, tmp)
    tmp = tmp or "C:\\TEMP\\cutover-rights.inf"
    local r, err = M.run(ctx, { "secedit", "/export", "/cfg", tmp, "/areas", "USER_RIGHTS" })
    if not r then return nil, err end
    if r.rc ~= 0 then return nil, "secedit /export: exit code " .. r.rc .. ": " .. util.trim(text_of(r)) end
    local data, rerr = ctx.conn:read_file(tmp)
    ctx.conn:remove(tmp)  -- the probe leaves nothing behind
    if not data then return nil, rerr end
    local doc, perr = parse.inf(data)
    if not doc then return nil, perr end
    return doc.rights, doc
end

-- Well-known principals and their SIDs (contract, section 3).
M.WELL_KNOWN = {
    everyone = "S-1-1-0", administrators = "S-1-5-32-544",
    ["authenticated users"] = "S-1-5-11",
    ["enterprise domain controllers"] = "S-1-5-9",
}

-- Does the member list hold the principal (by name, or by SID)?
function M.holds(members, principal, sid)
    sid = sid or M.WELL_KNOWN[principal:lower()]
    for _, m in ipairs(members or {}) do
        local p = parse.principal(m)
        if sid and p.sid == sid then return true end
        local full = p.domain and (p.domain .. "\\" .. p.name) or p.name
        if full and full:lower() == principal:lower() then return true end
        if p.name and not principal:find("\\", 1, true) and p.name:lower() == principal:lower() then return true end
    end
    return false
end

return M
