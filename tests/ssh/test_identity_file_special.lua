-- Safety item 13: an IdentityFile that is /dev/zero, a FIFO, a folder or
-- a huge file.  libssh2 would read /dev/zero forever (100% CPU, deaf to
-- SIGTERM) and block for ever opening a FIFO nobody writes to.  Only a
-- regular file of at most 64 KiB is read as a key; anything else is an
-- error naming the file, on that host's line, and the other hosts go on.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
S.install(T)

local srv = S.start(T)

T.test("IdentityFile /dev/zero or a FIFO: a clear error naming the file, never a spinning read", function()
    local d = S.target(T)
    T.write(d .. "/kh", srv:known_line())
    S.sh("mkfifo " .. d .. "/fifo_key && mkdir " .. d .. "/dir_key && " ..
         "head -c 200000 /dev/urandom > " .. d .. "/big_key")
    T.write(d .. "/ssh_config", "Host 127.0.0.5\n    IdentityFile " .. d .. "/fifo_key\n")
    T.write(d .. "/inv.yml", string.format([[
all:
  vars:
    ansible_port: %d
    ansible_user: %s
  hosts:
    zero: { ansible_host: 127.0.0.1, ansible_ssh_private_key_file: /dev/zero }
    fifo: { ansible_host: 127.0.0.5 }
    dir: { ansible_host: 127.0.0.1, ansible_ssh_private_key_file: %s/dir_key }
    big: { ansible_host: 127.0.0.1, ansible_ssh_private_key_file: %s/big_key }
    good: { ansible_host: 127.0.0.1, ansible_ssh_private_key_file: %s }
]], srv.port, srv.user, d, d, srv.key))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: \"echo {{ inventory_hostname }} >> " .. d ..
        "/ran\"\n")
    local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "-F", d .. "/ssh_config",
                      "--known-hosts", d .. "/kh", "--format", "json" },
                    { env = { HOME = d, SSH_AUTH_SOCK = "" }, timeout = 40 })
    T.ok(not r.timed_out, "cutover finished (it did not spin on a key file)")
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.eq(T.read(d .. "/ran"), "good\n", "only the host with a real key ran")
    local msgs = {}
    for _, e in ipairs(T.events(r.stdout)) do
        if e.event == "host_result" and e.result and e.result.msg then msgs[e.host] = (msgs[e.host] or "") ..
            e.result.msg end
    end
    local want = {
        zero = "/dev/zero: it is a character device, not a regular file",
        fifo = d .. "/fifo_key: it is a FIFO, not a regular file",
        dir = d .. "/dir_key: it is a folder, not a regular file",
        big = d .. "/big_key: it is larger than 65536 bytes",
    }
    for host, text in pairs(want) do
        T.contains(msgs[host] or "", "cannot use the identity file " .. text, host .. ": " .. tostring(msgs[host]))
    end
end)

T.test("known_hosts that is a FIFO, a device or a folder: fail closed at once, never a hang", function()
    -- (the same family as IdentityFile /dev/zero: a FIFO blocked cutover
    -- in open() for ever.  /dev/zero, which grew getline's buffer without
    -- end, is refused by the same check; it is not run here, so that a
    -- regression cannot eat the machine's memory, and /dev/null stands
    -- for the devices)
    local d = S.target(T)
    S.sh("mkfifo " .. d .. "/fifo_kh && mkdir " .. d .. "/dir_kh")
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: \"echo ran >> " .. d .. "/ran\"\n")
    T.write(d .. "/inv.yml", string.format("all:\n  hosts:\n    h1: { ansible_host: %s, ansible_port: %d, " ..
        "ansible_user: %s, ansible_ssh_private_key_file: %s }\n", srv.address, srv.port, srv.user, srv.key))
    for _, kh in ipairs({ d .. "/fifo_kh", "/dev/null", d .. "/dir_kh" }) do
        for _, accept in ipairs({ "", " --accept-new-host-keys" }) do
            local r = T.sh(string.format("cd %s && HOME=%s SSH_AUTH_SOCK= NO_COLOR=1 XDG_STATE_HOME=%s/state " ..
                "timeout -s KILL 30 %s run p.yml -i inv.yml --known-hosts %s%s", d, d, d, T.cutover, kh, accept))
            T.eq(r.rc, 1, kh .. accept .. ": exit code (137: it hung): " .. r.stdout .. r.stderr)
            T.contains(r.stdout, kh .. ": not a regular file", kh .. accept .. ": the message: " .. r.stdout)
        end
    end
    T.eq(T.read(d .. "/ran"), nil, "nothing ran")
end)

T.done()
