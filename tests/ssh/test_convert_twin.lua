-- The converter's twin over SSH: tests/convert/ssh_site/site.yml runs
-- with ansible-playbook against a loopback sshd into one folder, and
-- converted by `cutover convert ansible` with cutover against the same
-- sshd into two others (the persistent session on, then off); the trees
-- (paths, types, modes, contents) must be the same.  ansible-playbook missing is a failure, never a skip.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")
S.install(T)

local function tree(dir)
    local out = {}
    local function walk(p, rel)
        local st = assert(fs.stat(p))
        if st.type == "directory" then
            if rel ~= "" then out[rel] = string.format("dir %o", st.mode) end
            for _, n in ipairs(fs.list(p)) do walk(p .. "/" .. n, rel == "" and n or rel .. "/" .. n) end
        elseif st.type == "file" then
            local data = assert(fs.read(p))
            local parts, i = {}, 1
            while true do
                local a, b = data:find(dir, i, true)
                if not a then parts[#parts + 1] = data:sub(i); break end
                parts[#parts + 1] = data:sub(i, a - 1) .. "ROOT"
                i = b + 1
            end
            out[rel] = string.format("file %o uid %d %s", st.mode, st.uid, table.concat(parts))
        else
            out[rel] = st.type
        end
    end
    walk(dir, "")
    return out
end

T.test("ansible-playbook and the converted playbook leave the same tree over SSH, session on and off", function()
    local which = proc.run({ shell = "command -v ansible-playbook" })
    T.eq(which.rc, 0, "ansible-playbook is installed (scripts/deps.sh installs ansible-core)")
    local ansible = which.stdout:gsub("%s+$", "")
    local srv = S.start(T)
    srv:trust()
    local d = T.tmpdir()
    local A, B = S.target(T), S.target(T)
    T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    h1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
]], srv.address, srv.port, srv.user, srv.key))
    local book = tests_dir .. "/convert/ssh_site/site.yml"
    local r = T.run({ "convert", "ansible", book, "-o", d .. "/out/site.yml" })
    T.eq(r.rc, 0, "converts completely\n" .. r.stderr)
    local ar = T.sanitize and { rc = 0, stdout = "", stderr = "" } or assert(proc.run({
        argv = { ansible, "-i", d .. "/inv.yml", "-e", "root=" .. A,
                 "-e", "ansible_python_interpreter=/usr/bin/python3", book },
        env = { HOME = d, ANSIBLE_LOCAL_TEMP = d .. "/atmp", ANSIBLE_NOCOLOR = "1",
                ANSIBLE_RETRY_FILES_ENABLED = "0",
                ANSIBLE_SSH_ARGS = "-o UserKnownHostsFile=" .. srv.known_hosts ..
                                   " -o StrictHostKeyChecking=yes -o ControlMaster=no",
                SSH_AUTH_SOCK = "" },
        timeout = 240 }))
    T.eq(ar.rc, 0, "ansible-playbook over ssh\n" .. ar.stdout .. ar.stderr)
    -- cutover with the persistent session on (B) and off (B2, a channel
    -- per step): the session's umask and environment must not show
    local B2 = S.target(T)
    for _, case in ipairs({ { B, "1" }, { B2, "0" } }) do
        local cr = T.run({ "run", d .. "/out/site.yml", "-i", d .. "/inv.yml", "-e", "root=" .. case[1],
                           "--known-hosts", srv.known_hosts, "--no-journal" },
                         { env = { HOME = d, SSH_AUTH_SOCK = "", CUTOVER_SESSION = case[2] }, timeout = 120 })
        T.eq(cr.rc, 0, "cutover over ssh (CUTOVER_SESSION=" .. case[2] .. ")\n" .. cr.stdout .. cr.stderr)
    end
    local ta, tb, tb2 = tree(A), tree(B), tree(B2)
    if T.sanitize then
        -- (ansible-playbook's half runs in the normal build; here the
        -- checks below hold for cutover's trees)
        print("# sanitizer build: ansible-playbook not run; cutover's trees checked alone")
        ta = tb
    end
    local keys = {}
    for k in pairs(ta) do keys[#keys + 1] = k end
    for k in pairs(tb) do if ta[k] == nil then keys[#keys + 1] = k end end
    for k in pairs(tb2) do if ta[k] == nil and tb[k] == nil then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do
        T.eq(tb[k], ta[k], k .. " (ansible's, then cutover's)")
        T.eq(tb2[k], ta[k], k .. " (ansible's, then cutover's with the session off)")
    end
    T.ok(#keys >= 9, "the playbook made files (" .. #keys .. ")")
    T.eq(ta["run/8081.port"], nil, "the when held back one item")
    T.ok(ta["data/MIGRATION"] ~= nil, "the rescue ran")
end)

T.done()
