-- SSH authentication and host keys, against a real sshd on loopback.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local S = dofile(tests_dir .. "/lib/sshd.lua")
S.install(T)

local function inventory(dir, srv, extra)
    return T.write(dir .. "/inv.yml", string.format([[
all:
  hosts:
    web1:
      ansible_host: %s
      ansible_port: %d
      ansible_user: %s
%s]], srv.address, srv.port, srv.user, extra or ""))
end

local function book(dir)
    return T.write(dir .. "/p.yml", [[
- hosts: all
  steps:
    - id: who
      command: id -un
      register: who
    - assert:
        that: who.stdout == "cutover-test"
]])
end

-- Runs with an empty HOME so no key of the machine's own is picked up.
local function run(dir, args, env)
    local all = { "run", dir .. "/p.yml", "-i", dir .. "/inv.yml" }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    local e = { HOME = dir, SSH_AUTH_SOCK = "" }
    for k, v in pairs(env or {}) do e[k] = v end
    return T.run(all, { env = e, timeout = 60 })
end

local srv = S.start(T)

-- A folder with the inventory (this key file, this server: default srv),
-- the playbook, and the server's host key trusted.
local function keyed(key, server)
    server = server or srv
    local d = T.tmpdir()
    inventory(d, server, "      ansible_ssh_private_key_file: " .. key .. "\n")
    book(d)
    server:trust()
    return d
end
local fingerprint = S.sh("ssh-keygen -lf " .. srv.dir .. "/host_ed25519.pub"):match("(SHA256:%S+)")

T.test("unknown host: refused with its fingerprint and how to accept it; nothing runs", function()
    local d = T.tmpdir()
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. srv.key .. "\n")
    book(d)
    local kh = d .. "/known_hosts"
    local r = run(d, { "--known-hosts", kh })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "unknown host: its ssh-ed25519 key is " .. fingerprint,
        "fingerprint as ssh-keygen -l prints it")
    T.contains(r.stdout, "--accept-new-host-keys", "how to accept")
    T.match(r.stdout, "web1%s+0%s+0%s+0%s+0%s+1%s+0%s+failed at connect%s+unreachable", "recap")
    T.eq(T.read(kh), nil, "known_hosts not created")
end)

T.test("--accept-new-host-keys records the key; the next run needs no flag", function()
    local d = T.tmpdir()
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. srv.key .. "\n")
    book(d)
    local kh = d .. "/known_hosts"
    local r = run(d, { "--known-hosts", kh, "--accept-new-host-keys" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.eq(T.read(kh), srv:known_line(), "the line written")
    r = run(d, { "--known-hosts", kh })
    T.eq(r.rc, 0, "second run: " .. r.stdout)
end)

-- known_hosts locked by another program (another run recording a host,
-- here flock(1)) while a new host is to be recorded: that host looks
-- again every 50 ms, the other hosts go on meanwhile, and it fails
-- clearly when the lock stays held for 10 s.  web1 is known, web2 new.
local srv2 = S.start(T)
S.sh("cat " .. srv.key .. ".pub >> " .. srv2.dir .. "/authorized_keys")  -- srv's key logs in there too
-- A run of a two-step playbook (sleep 0.5; the time into out/done.HOST)
-- while another program holds known_hosts' lock.  The lock is taken
-- before cutover starts and dropped (its time written to d/released)
-- once web1 has finished, or after o.hold s: a controller that waits on
-- the lock keeps web1 from finishing, so the lock is held all that
-- while.  o.whole: held the whole o.hold s, whatever web1 does.
-- o.holder_line: a line the holder appends just before it lets go.
-- o.hosts: the inventory's host lines (default web1 on srv, known, and
-- web2 on srv2, new).  The holder runs in a process group of its own,
-- named in d/holder.
local function locked_run(o)
    local d = T.tmpdir()
    local out = S.target(T)
    local hosts = o.hosts or {
        string.format("    web1: {ansible_host: %s, ansible_port: %d}", srv.address, srv.port),
        string.format("    web2: {ansible_host: %s, ansible_port: %d}", srv2.address, srv2.port),
    }
    T.write(d .. "/inv.yml", string.format("all:\n  vars:\n    ansible_user: %s\n" ..
        "    ansible_ssh_private_key_file: %s\n  hosts:\n%s\n", srv.user, srv.key, table.concat(hosts, "\n")))
    T.write(d .. "/p.yml", "- hosts: all\n  steps:\n    - shell: sleep 0.5\n" ..
        "    - shell: \"date +%s.%N > " .. out .. "/done.{{ inventory_hostname }}\"\n")
    local kh = d .. "/known_hosts"
    T.write(kh, srv:known_line())
    local watched = o.whole and (d .. "/never") or (out .. "/done.web1")
    local append = o.holder_line and
        ("echo " .. o.holder_line:gsub("\n$", ""):gsub("[^%w]", "\\\\%0") .. " >> " .. kh .. ";") or ""
    S.sh(string.format("setsid sh -c 'echo $$ > %s/holder; exec flock %s sh -c \"touch %s/held; i=0; " ..
        "while [ ! -e %s ] && [ \\$i -lt %d ]; do sleep 0.1; i=\\$((i+1)); done; sleep 0.3; " ..
        "%s date +%%s.%%N > %s/released\"' >/dev/null 2>&1 & " ..
        "i=0; while [ ! -e %s/held ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done",
        d, kh, d, watched, math.floor(o.hold * 10), append, d, d))
    T.ok(T.read(d .. "/held"), "the lock is held")
    local r = run(d, { "--known-hosts", kh, "--accept-new-host-keys", "--forks", tostring(#hosts) })
    S.sh("kill -TERM -- -$(cat " .. d .. "/holder) 2>/dev/null || true")
    return r, d, out, kh
end

T.test("known_hosts locked by another program: the new host waits, the others go on; then it is recorded",
    function()
    local r, d, out, kh = locked_run({ hold = 30 })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local done1 = tonumber(T.read(out .. "/done.web1") or "")
    local done2 = tonumber(T.read(out .. "/done.web2") or "")
    local released = tonumber(T.read(d .. "/released") or "")
    T.ok(done1 and done2 and released, "both hosts ran their steps, and the lock was dropped")
    -- (old code: flock() blocked the whole controller, so web1's second
    -- step came after the lock was dropped)
    T.ok(done1 < released, string.format("web1 finished while web2 waited for the lock (%.2f s before)",
        (released or 0) - (done1 or 0)))
    T.ok(done2 > released, "web2's steps ran once its key was recorded")
    T.eq(T.read(kh), srv:known_line() .. srv2:known_line(), "web2's key appended once, after web1's line")
end)

T.test("known_hosts locked by a program that records the same host meanwhile: one line, not two", function()
    local r, _, out, kh = locked_run({ hold = 30, holder_line = srv2:known_line() })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.ok(T.read(out .. "/done.web2"), "web2 ran its steps")
    T.eq(T.read(kh), srv:known_line() .. srv2:known_line(), "web2's key once: the other program's line")
end)

T.test("known_hosts locked by a program that records another key for the host: refused, nothing added",
    function()
    local other = srv2:known_line(srv.host_pub)   -- srv's key under srv2's name
    local r, _, out, kh = locked_run({ hold = 30, holder_line = other })
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.contains(r.stdout, srv2.address .. ": cannot record the new host key: another program wrote another key " ..
        "for this host in " .. kh .. " meanwhile; not adding this one", "the error says what changed")
    T.eq(T.read(out .. "/done.web2"), nil, "web2 ran nothing")
    T.eq(T.read(kh), srv:known_line() .. other, "known_hosts holds only the other program's line")
end)

T.test("known_hosts locked while more new hosts than handshake places wait: the known host still connects",
    function()
    -- nine new hosts (one sshd on 127.0.0.11-19) and web1, known: the
    -- new hosts wait for the lock without their place among the 8
    -- handshakes that may run at once, so web1 connects and finishes,
    -- and the lock (held until web1 is done, at most 30 s) goes free
    local listen = {}
    for i = 12, 19 do listen[#listen + 1] = "ListenAddress 127.0.0." .. i end
    local many = S.start(T, { address = "127.0.0.11", extra_config = table.concat(listen, "\n") })
    S.sh("cat " .. srv.key .. ".pub >> " .. many.dir .. "/authorized_keys")
    -- (web1 last: the new hosts start first and take every place)
    local hosts = {}
    for i = 11, 19 do
        hosts[#hosts + 1] = string.format("    n%d: {ansible_host: 127.0.0.%d, ansible_port: %d}", i, i, many.port)
    end
    hosts[#hosts + 1] = string.format("    web1: {ansible_host: %s, ansible_port: %d}", srv.address, srv.port)
    local r, d, out, kh = locked_run({ hold = 30, hosts = hosts })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    local done1 = tonumber(T.read(out .. "/done.web1") or "")
    local released = tonumber(T.read(d .. "/released") or "")
    T.ok(done1 and released and done1 < released, "web1 finished while the new hosts waited for the lock")
    local _, lines = (T.read(kh) or ""):gsub("\n", "")
    T.eq(lines, 10, "the nine new keys recorded after web1's line")
    many:stop()
end)

T.test("known_hosts locked for more than 10 s: the new host fails saying so; the others are not held up",
    function()
    local r, d, out, kh = locked_run({ hold = 14, whole = true })
    T.eq(r.rc, 1, "exit code: " .. r.stdout .. r.stderr)
    T.contains(r.stdout, srv2.address .. ": cannot record the new host key: another program has held the lock on " ..
        kh .. " for 10 s", "the error names the host, the file and the wait")
    T.match(r.stdout, "web2%s+0%s+0%s+0%s+0%s+1", "web2 failed at connect")
    T.ok(T.read(out .. "/done.web1"), "web1 ran its steps")
    T.eq(T.read(out .. "/done.web2"), nil, "web2 ran nothing")
    T.eq(T.read(kh), srv:known_line(), "known_hosts unchanged")
    T.eq(T.read(d .. "/released"), nil, "(the lock was still held when the run ended)")
end)

T.test("a hashed known_hosts line is honoured", function()
    local d = T.tmpdir()
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. srv.key .. "\n")
    book(d)
    local kh = d .. "/known_hosts"
    T.write(kh, srv:known_line())
    S.sh("ssh-keygen -H -f " .. kh .. " 2>/dev/null; rm -f " .. kh .. ".old")
    T.match(T.read(kh), "^|1|", "the line is hashed")
    local r = run(d, { "--known-hosts", kh })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
end)

T.test("known_hosts holds only the host's ECDSA key: that type is asked for", function()
    local two = S.start(T, { host_key_types = { "ed25519", "ecdsa" } })
    local d = T.tmpdir()
    inventory(d, two, "      ansible_ssh_private_key_file: " .. two.key .. "\n")
    book(d)
    local kh = T.write(d .. "/known_hosts", two:known_line(two.host_pub_ecdsa))
    local r = run(d, { "--known-hosts", kh })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    two:stop()
end)

T.test("changed host key: refused loudly, also with --accept-new-host-keys", function()
    local d = T.tmpdir()
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. srv.key .. "\n")
    book(d)
    S.sh("ssh-keygen -q -t ed25519 -N '' -f " .. d .. "/other")
    local other = S.sh("cat " .. d .. "/other.pub"):match("^(%S+ %S+)")
    local kh = T.write(d .. "/known_hosts", "# comment\n" .. srv:known_line(other))
    for _, extra in ipairs({ {}, { "--accept-new-host-keys" } }) do
        local args = { "--known-hosts", kh }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        local r = run(d, args)
        T.eq(r.rc, 1, "exit code")
        T.contains(r.stdout, "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!", "loud")
        T.contains(r.stdout, "now offers the ssh-ed25519 key " .. fingerprint, "new fingerprint")
        T.contains(r.stdout, kh .. " line 2", "where the old key is")
        T.eq(T.read(kh), "# comment\n" .. srv:known_line(other), "known_hosts untouched")
    end
end)

T.test("@revoked key is refused", function()
    local d = T.tmpdir()
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. srv.key .. "\n")
    book(d)
    local kh = T.write(d .. "/known_hosts", "@revoked " .. srv:known_line() .. srv:known_line())
    local r = run(d, { "--known-hosts", kh })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "is marked @revoked", "message")
end)

T.test("a key the server does not accept is refused, naming what was tried", function()
    local d = T.tmpdir()
    S.sh("ssh-keygen -q -t ed25519 -N '' -f " .. d .. "/stranger")
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. d .. "/stranger\n")
    book(d)
    srv:trust()
    local r = run(d, { "--known-hosts", srv.known_hosts })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "cutover-test@" .. srv.address .. ":" .. srv.port ..
        ": authentication failed (server accepts: publickey; tried: key " .. d .. "/stranger)", "message")
end)

-- libssh2 reports a key file it cannot open as a refused key; with the
-- controller out of descriptors (many hosts, a low ulimit -n) every host
-- then said "authentication failed".  At each limit from 8 to 40 open
-- files a run either works or names the cause.
T.test("out of file descriptors: the run names the cause, never 'authentication failed'", function()
    local d = keyed(srv.key)
    local at_key, works_from = {}, nil
    for n = 8, 40 do
        local limit = "--nofile=" .. n .. ":" .. n
        local r = T.run({ "run", d .. "/p.yml", "-i", d .. "/inv.yml", "--known-hosts", srv.known_hosts },
                        { env = { HOME = d, SSH_AUTH_SOCK = "" }, wrap = { "prlimit", limit, "--" }, timeout = 60 })
        local out = r.stdout .. r.stderr
        T.not_contains(out, "authentication failed", "limit " .. n)
        if r.rc == 0 then
            works_from = works_from or n
        else
            T.match(out, "[Tt]oo many open files", "limit " .. n .. ": the failure names the cause\n" .. out)
        end
        if out:find("cannot open the key file " .. srv.key .. ": Too many open files", 1, true) then
            at_key[#at_key + 1] = n
            T.contains(out, "ulimit -n", "limit " .. n .. ": and what to do")
        end
    end
    T.ok(#at_key > 0, "some limit ran out at the key file")
    T.ok(works_from ~= nil, "a limit high enough works")
end)

-- An unencrypted OpenSSH ed25519 key is read and signed by cutover itself
-- (core/ssh/keyfile.c: libssh2's reading costs millions of instructions
-- per connection); every other key goes to libssh2 as before.
T.test("user keys: ed25519 signed by cutover, ECDSA, encrypted and damaged keys by libssh2 as before", function()
    local d = keyed(srv.key)
    T.eq(run(d, { "--known-hosts", srv.known_hosts }).rc, 0, "the server's ed25519 key")
    -- ECDSA: libssh2's reader
    local ec = S.start(T, { user_key_type = "ecdsa" })
    local r = run(keyed(ec.key, ec), { "--known-hosts", ec.known_hosts })
    T.eq(r.rc, 0, "an ECDSA key: " .. r.stdout .. r.stderr)
    ec:stop()
    -- an ed25519 key with a passphrase (none given): named, not used
    S.sh("ssh-keygen -q -t ed25519 -N 'a passphrase' -f " .. d .. "/locked && cat " .. d ..
         "/locked.pub >> " .. srv.dir .. "/authorized_keys")
    inventory(d, srv, "      ansible_ssh_private_key_file: " .. d .. "/locked\n")
    r = run(d, { "--known-hosts", srv.known_hosts })
    T.eq(r.rc, 1, "an encrypted key without its passphrase")
    T.contains(r.stdout, "tried: key " .. d .. "/locked (cannot read it: encrypted, or not a key libssh2 reads)",
               "said")
    -- the server's key with one base64 character changed, at many places:
    -- refused or (a change inside the comment) still the same key; never
    -- a crash, never another key's success
    local text = assert(T.read(srv.key))
    local body_from = text:find("\n", 1, true) + 1
    local body_to = text:find("\n%-%-%-%-%-END") - 1
    local refused = 0
    for at = body_from, body_to, 9 do
        local c = text:sub(at, at)
        if c:match("[A-Za-z0-9+/]") then
            local bad = text:sub(1, at - 1) .. (c == "A" and "B" or "A") .. text:sub(at + 1)
            T.write(d .. "/damaged", bad, 384)
            inventory(d, srv, "      ansible_ssh_private_key_file: " .. d .. "/damaged\n")
            r = run(d, { "--known-hosts", srv.known_hosts })
            T.ok(r.rc == 0 or r.rc == 1, "byte " .. at .. ": exit " .. tostring(r.rc) .. " " .. r.stderr)
            if r.rc == 1 then
                refused = refused + 1
                T.contains(r.stdout, "authentication failed", "byte " .. at)
            end
        end
    end
    T.ok(refused > 10, "most damaged copies are refused (" .. refused .. ")")
end)

T.test("ssh-agent authentication", function()
    local d = T.tmpdir()
    inventory(d, srv)
    book(d)
    srv:trust()
    local sock = d .. "/agent.sock"
    local pid = S.sh("ssh-agent -a " .. sock .. " -s | sed -n 's/^SSH_AGENT_PID=\\([0-9]*\\).*/\\1/p'"):match("%d+")
    local ok, err = pcall(function()
        S.sh("SSH_AUTH_SOCK=" .. sock .. " ssh-add -q " .. srv.key)
        local r = run(d, { "--known-hosts", srv.known_hosts }, { SSH_AUTH_SOCK = sock })
        T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
        -- without the agent the same run fails: the key came from it
        r = run(d, { "--known-hosts", srv.known_hosts })
        T.eq(r.rc, 1, "without the agent")
        T.contains(r.stdout, "authentication failed", "message")
    end)
    S.sh("kill " .. pid)
    if not ok then error(err, 0) end
end)

T.test("RSA key refused by the server: the message explains libssh2's SHA-1", function()
    local rsa = S.start(T, { user_key_type = "rsa" })
    local r = run(keyed(rsa.key, rsa), { "--known-hosts", rsa.known_hosts })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "signs RSA keys only with SHA-1", "explanation")
    T.contains(r.stdout, "ssh-keygen -t ed25519", "suggestion")
    rsa:stop()
end)

T.test("password authentication (from the inventory); never printed", function()
    local pw = srv:enable_password()
    local d = T.tmpdir()
    inventory(d, pw, "      ansible_password: \"s3cret pass&word\"\n")
    book(d)
    pw:trust()
    local r = run(d, { "--known-hosts", pw.known_hosts, "-v" })
    T.eq(r.rc, 0, "exit code: " .. r.stdout .. r.stderr)
    T.not_contains(r.stdout .. r.stderr, "s3cret", "password not shown")
    T.write(d .. "/inv.yml", (T.read(d .. "/inv.yml"):gsub("s3cret pass&word", "wrong")))
    r = run(d, { "--known-hosts", pw.known_hosts })
    T.eq(r.rc, 1, "wrong password")
    T.contains(r.stdout, "tried: password", "message")
    T.not_contains(r.stdout .. r.stderr, "wrong\"", "password not shown")
    pw:stop()
end)

T.test("unreachable host (nothing listens): clear error, exit 1", function()
    local d = T.tmpdir()
    local closed = S.closed_port()
    T.write(d .. "/inv.yml", "all:\n  hosts:\n    gone: { ansible_host: 127.0.0.1, ansible_port: " .. closed .. " }\n")
    book(d)
    local r = run(d, { "--known-hosts", d .. "/kh" })
    T.eq(r.rc, 1, "exit code")
    T.contains(r.stdout, "127.0.0.1:" .. closed .. ": Connection refused", "message")
    T.match(r.stdout, "gone[^\n]*failed at connect%s+unreachable", "recap")
end)

T.done()
