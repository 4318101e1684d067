-- known_hosts host patterns ('*', '?', '!' negation, [host]:port) go
-- through the one glob matcher (core/pattern.c, shared with Lua).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
S.install(T)

local srv = S.start(T)

local function run_with(known_line)
    local d = T.tmpdir()
    T.write(d .. "/inv.yml", string.format([[
all:
  hosts:
    web1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
      ansible_ssh_private_key_file: %s
]], srv.address, srv.port, srv.user, srv.key))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - command: id -un\n")
    T.write(d .. "/known_hosts", known_line .. " " .. srv.host_pub .. "\n", 384)
    return T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml",
                   "--known-hosts", d .. "/known_hosts" },
                 { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 60 })
end

local port = tostring(srv.port)

T.test("patterns with * and ? match the host's [address]:port", function()
    for _, pat in ipairs({ "[127.0.0.?]:" .. port, "[127.0.*]:*", "*",
                           "other,[127.0.0.1]:" .. port:sub(1, -2) .. "?" }) do
        local r = run_with(pat)
        T.eq(r.rc, 0, "pattern " .. pat .. ": " .. r.stdout)
    end
end)

T.test("a pattern that does not match, or a matching negation: unknown host", function()
    for _, pat in ipairs({ "[127.0.0.2]:" .. port, "127.0.0.1", "[127.0.0.1]:" .. port .. "?",
                           "*,![127.0.0.*]:*" }) do
        local r = run_with(pat)
        T.eq(r.rc, 1, "pattern " .. pat)
        T.contains(r.stdout, "unknown host", "pattern " .. pat)
    end
end)

T.done()
