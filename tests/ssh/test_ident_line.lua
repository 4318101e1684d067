-- The server's identification line ("SSH-2.0-..."): libssh2 reads it a
-- byte at a time, and the session's recv reads the line ahead instead
-- (core/ssh/connect.c, read_line_ahead).  Whatever shape it arrives in
-- (a byte per segment, with the next packet in the same segment, longer
-- than what is read at once), the stream libssh2 sees is the socket's,
-- and the handshake works.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
S.install(T)

-- sshd appends VersionAddendum to its line: 8 + 30 + 1 + 180 bytes, so
-- read ahead 64 bytes at a time it takes four reads
local addendum = string.rep("x", 180)
local long = S.start(T, { extra_config = "VersionAddendum " .. addendum })
local plain = S.start(T, { address = "127.0.0.5" })
local relay = tests_dir .. "/lib/chunk_relay.py"

-- A one-step playbook on srv's hosts; opts.trace: under strace (its
-- recvfrom calls, in d/trace).  Returns the run and its folder.
local function run(srv, hostvars, opts)
    opts = opts or {}
    local d = S.target(T)
    T.write(d .. "/kh", srv:known_line())
    T.write(d .. "/inv.yml", srv:inventory(nil, hostvars))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: echo reached {{ inventory_hostname }}\n")
    local env, wrap = { HOME = d, SSH_AUTH_SOCK = "" }, nil
    if opts.trace then
        env.ASAN_OPTIONS = T.asan_no_leak_check()
        wrap = { "strace", "-e", "trace=recvfrom", "-o", d .. "/trace" }
    end
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh", "-v" },
                    { env = env, wrap = wrap })
    return r, d
end

T.test("an identification line longer than one read-ahead (VersionAddendum)", function()
    local r = run(long, "    h1: {}\n")
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.contains(r.stdout, "reached h1", "the step ran")
end)

T.test("the line a byte per segment, and the line with the next packet in one segment (ProxyCommand)", function()
    local hosts = {}
    for _, mode in ipairs({ "bytes", "together", "plain" }) do
        for _, srv in ipairs({ long, plain }) do
            local name = mode .. "_" .. (srv == long and "long" or "short")
            hosts[#hosts + 1] = string.format("    %s: { cutover_proxy_command: \"python3 %s %s %%h %%p\", " ..
                "ansible_host: %s, ansible_port: %d }\n", name, relay, mode, srv.address, srv.port)
        end
    end
    local d = S.target(T)
    T.write(d .. "/kh", long:known_line() .. plain:known_line())
    T.write(d .. "/inv.yml", string.format([[
all:
  vars:
    ansible_user: %s
    ansible_ssh_private_key_file: %s
  hosts:
%s]], long.user, long.key, table.concat(hosts)))
    S.sh("cat " .. long.dir .. "/user_key.pub >> " .. plain.dir .. "/authorized_keys")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: echo reached {{ inventory_hostname }}\n")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", d .. "/kh", "-v" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" } })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    for _, mode in ipairs({ "bytes", "together", "plain" }) do
        for _, size in ipairs({ "long", "short" }) do
            T.contains(r.stdout, "reached " .. mode .. "_" .. size, mode .. ", " .. size .. " line")
        end
    end
end)

T.test("the line is not read a byte per system call", function()
    local r, d = run(plain, "    h1: {}\n", { trace = true })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local text = T.read(d .. "/trace")
    local one = 0
    for _ in text:gmatch("recvfrom%(%d+, \"[^\n]-, 1, [^\n]-%) = 1\n") do one = one + 1 end
    T.contains(text, "MSG_PEEK", "the line is peeked at")
    T.eq(one, 0, "one-byte reads of the socket")
end)

T.done()
