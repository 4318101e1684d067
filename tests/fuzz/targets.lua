-- Fuzz entries: each takes the fuzzer's bytes and feeds them to the code
-- that reads outside input, exactly as the runtime calls it.  Every entry
-- must return normally; bad input is expected to give nil, message.
local yaml = require("cutover.core.yaml")
local fs = require("cutover.core.fs")
local crypto = require("cutover.core.crypto")
local expr = require("cutover.expr")
local vars = require("cutover.vars")

local T = {}

-- A private scratch file per process (loaders take a path).
local scratch = (os.getenv("TMPDIR") or "/tmp") .. "/cutover-fuzz-" .. crypto.random_hex(6)
local function as_file(data, suffix)
    local path = scratch .. (suffix or "")
    assert(fs.write(path, data, 384))
    return path
end

function T.yaml(data)
    yaml.load(data, "fuzz.yml")
    yaml.load(data, "fuzz.yml", { max_depth = 8, max_nodes = 1000 })
end

function T.playbook(data)
    require("cutover.load.playbook").load(as_file(data, ".yml"))
end

function T.inventory_yaml(data)
    require("cutover.inventory").load(as_file(data, ".yml"))
end

function T.inventory_ini(data)
    require("cutover.inventory").load(as_file(data, ".ini"))
end

-- Include globs would walk the machine's real filesystem (slow, and not
-- what is under test), so absolute paths are moved under a scratch root
-- holding two small files for an Include to find, and that root is also
-- the home directory (~ and relative Includes).
local ssh_root
-- Only the scratch file and root are visible to the loader: a path can
-- still leave the root after the rewrite (an escaped "\/", "..") and reach
-- the real filesystem, or a device or FIFO that blocks.
local function confine_fs()
    local real = { stat = fs.stat, list = fs.list, read = fs.read }
    local function inside(p)
        if type(p) ~= "string" or p:find("/%.%.") then return false end
        return p == ssh_root or p:sub(1, #ssh_root + 1) == ssh_root .. "/" or p:sub(1, #scratch) == scratch
    end
    for name, f in pairs(real) do
        fs[name] = function(p, ...)
            if inside(p) then return f(p, ...) end
            return nil, p .. ": outside the fuzz root", "ENOENT"
        end
    end
end
function T.ssh_config(data)
    if not ssh_root then
        ssh_root = scratch .. ".root"
        confine_fs()
        fs.mkdir(ssh_root, 448)
        fs.mkdir(ssh_root .. "/etc", 448)
        fs.mkdir(ssh_root .. "/.ssh", 448)
        assert(fs.write(ssh_root .. "/.ssh/c.conf", "Host db?\n  IdentityFile ~/.ssh/id_%h\n", 384))
        assert(fs.write(ssh_root .. "/etc/a.conf", "Host web*\n  Port 2222\n  User deploy\n", 384))
        assert(fs.write(ssh_root .. "/etc/b.conf", "Host *\n  ProxyJump bastion\nInclude " ..
                        ssh_root .. "/etc/a.conf\n", 384))
    end
    data = data:gsub("^/", ssh_root .. "/")
    data = data:gsub("([%s=,\"])/", "%1" .. ssh_root .. "/")
    local cfg = require("cutover.ssh_config").load(as_file(data, ".conf"), { home = ssh_root, user = "fuzz" })
    if cfg then cfg:lookup("web1.example") end
end

local scope = vars.new({ inventory_hostname = "h1" }, {
    { vars = { x = 1, s = "text", list = { 1, 2, 3 }, map = { a = { b = "c" } } }, literal = true },
})

function T.expr(data)
    -- as a condition and as a template, like when: and {{ }}
    expr.condition(data, scope)
    expr.render(data, scope)
    expr.render("{{ " .. data .. " }}", scope)
end

-- The Windows output parsers, once they exist (issue 5).
local ok_parse, wparse = pcall(require, "cutover.windows.parse")
function T.windows(data)
    if not ok_parse then return end
    for _, name in ipairs({ "sc_qc", "sc_query", "sc_query_list", "sc_failure", "net_accounts",
                            "net_statistics", "net_result", "net_use", "secedit_inf", "dumpel" }) do
        local f = wparse[name]
        if type(f) == "function" then f(data) end
    end
end

-- The POP3/IMAP4 reply reader: the fuzzer's bytes are what the server
-- says, served line by line through a canned stream with core.net's
-- read_line contract (capped lines, then "closed").
local mail = require("cutover.mail")
local function canned_stream(data)
    local pos = 1
    return {
        write = function() return true end,
        close = function() end,
        read_line = function(_, max)
            if pos > #data then return nil, "closed" end
            local nl = data:find("\n", pos, true)
            if not nl then pos = #data + 1; return nil, "closed" end
            local line = data:sub(pos, nl - 1)
            pos = nl + 1
            if #line > max + 1 then return nil, "line too long" end
            return (line:gsub("\r$", ""))
        end,
    }
end

function T.mail(data)
    mail.pop3(canned_stream(data), "CORP\\testuser", "pw", 1)
    mail.imap4(canned_stream(data), "CORP\\testuser", "pw", 1)
    local lines = mail.split_lines(data)
    mail.pop3_transcript(lines)
    mail.imap4_transcript(lines)
end

-- The sandbox's pattern matcher (core/pattern.c) against Lua's own: the
-- first line is the pattern, the rest the subject.  Lua's matcher has no
-- step limit, so they are compared only where that cannot take long (at
-- most 2,000,000 steps of backtracking from each start); a difference
-- raises.  Then the bounded matcher alone runs on the whole input in a
-- sandbox call with a small budget, where it must stop by itself.
local pattern = require("cutover.core.pattern")
local sandbox = require("cutover.core.sandbox")
local function outcome(f, ...)
    local r = table.pack(pcall(f, ...))
    for i = 2, r.n do
        if math.type(r[i]) then r[i] = math.type(r[i]) .. ":" .. r[i] end
    end
    if not r[1] then
        -- the functions' names and Lua's " in pattern" are the only
        -- differences allowed in a message; depth limits differ
        r[2] = tostring(r[2]):gsub("'[%w.]*%.(%a+)'", "'%1'"):gsub(" in pattern", "")
            :gsub(" in replacement string", "")
        if r[2]:find("too complex", 1, true) then return "too complex" end
    end
    local parts = {}
    for i = 1, r.n do parts[i] = tostring(r[i]) end
    return table.concat(parts, "|")
end
local function gmatch_list(gm)
    return function(s, p)
        local out = {}
        for a, b in gm(s, p) do
            out[#out + 1] = tostring(a) .. "," .. tostring(b)
            if #out > 100 then break end
        end
        return table.concat(out, ";")
    end
end
local checks = {
    { "find", string.find, pattern.find }, { "match", string.match, pattern.match },
    { "gmatch", gmatch_list(string.gmatch), gmatch_list(pattern.gmatch) },
    { "gsub", string.gsub, pattern.gsub, "<%0>" }, { "gsub", string.gsub, pattern.gsub, "%1" },
}

function T.pattern(data)
    local p, s = data:match("^([^\n]*)\n?(.*)$")
    local _, quantifiers = p:gsub("[*+?-]", "")
    -- (#s + 1) ^ (quantifiers + 1) bounds the backtracking of every start
    if #p <= 32 and (#s + 1) ^ (quantifiers + 1) <= 2e6 then
        for _, c in ipairs(checks) do
            local a, b = outcome(c[2], s, p, c[4]), outcome(c[3], s, p, c[4])
            if a ~= "too complex" and b ~= "too complex" and a ~= b then
                error(string.format("%s(%q, %q): string gives %s, pattern gives %s", c[1], s, p, a, b))
            end
        end
    end
    -- a small budget: reaching the limit is the case of interest here
    sandbox.call(pattern.gsub, 20000, expr.MAX_BYTES, data, p, "%0")
    sandbox.call(pattern.find, 20000, expr.MAX_BYTES, data, s)
end

return T
