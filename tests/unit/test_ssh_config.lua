-- Unit: ~/.ssh/config: the keywords cutover honours, Host patterns and
-- negation, first value wins, Include, tokens, errors; and how
-- connection.ssh_settings combines it with inventory variables.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local ssh_config = require("cutover.ssh_config")
local connection = require("cutover.connection")
local sys = require("cutover.core.sys")
local fs = require("cutover.core.fs")
local proc = require("cutover.core.proc")

local ME = (sys.user())
local HOME = "/home/tester"

local function mkdirs(path)
    local p = ""
    for part in path:gmatch("[^/]+") do
        p = p .. "/" .. part
        if not fs.stat(p) then assert(fs.mkdir(p, 448)) end
    end
end

local function write(path, text)
    mkdirs(path:match("^(.*)/[^/]*$"))
    return T.write(path, text)
end

local function load(path, opts)
    local cfg, err = ssh_config.load(path, opts or { home = HOME, user = "me" })
    if not cfg then error("load " .. path .. ": " .. tostring(err), 2) end
    return cfg
end

-- A lookup result as one line, fields in a fixed order.
local function show(r)
    local out = {}
    out[#out + 1] = "hostname=" .. tostring(r.hostname)
    out[#out + 1] = "port=" .. tostring(r.port)
    out[#out + 1] = "user=" .. tostring(r.user)
    out[#out + 1] = "ids=" .. (r.identity_files and table.concat(r.identity_files, ",") or "nil")
    local hops = {}
    for i, j in ipairs(r.proxy_jump or {}) do
        hops[i] = tostring(j.user) .. "@" .. j.host .. ":" .. tostring(j.port)
    end
    out[#out + 1] = "jump=" .. (r.proxy_jump and table.concat(hops, ",") or "nil")
    return table.concat(out, " ")
end

T.test("every keyword, and nil for what is not set", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
# a comment
Host db1
    HostName 10.0.0.5
    Port 2222
    User deploy
    IdentityFile ~/.ssh/id_db
    IdentityFile /keys/second
    ProxyJump admin@bastion.example.com:2200
]]))
    T.eq(show(cfg:lookup("db1")), "hostname=10.0.0.5 port=2222 user=deploy " ..
        "ids=/home/tester/.ssh/id_db,/keys/second jump=admin@bastion.example.com:2200")
    T.eq(show(cfg:lookup("other")), "hostname=nil port=nil user=nil ids=nil jump=nil")
    T.eq(math.type(cfg:lookup("db1").port), "integer")
end)

T.test("syntax: case-insensitive keywords, Keyword=value, quotes, comments, unknown keywords", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", "\z
        HOST=a\n\z
        \thostname = real-a # a comment\n\z
        PORT=22\n\z
        user \"john doe\"\n\z
        identityfile \"~/my keys/id a\"\n\z
        IdentityFile='/k/quoted'\n\z
        StrictHostKeyChecking no\n\z
        ProxyCommand ssh -W %h:%p gateway\n\z
        ControlMaster auto\n\z
        \n\z
        host b\r\n\z
        port 2200\r\n"))
    T.eq(show(cfg:lookup("a")), "hostname=real-a port=22 user=john doe " ..
        "ids=/home/tester/my keys/id a,/k/quoted jump=nil")
    T.eq(show(cfg:lookup("b")), "hostname=nil port=2200 user=nil ids=nil jump=nil")
end)

T.test("Host patterns: globs, ?, several, negation, case", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
Host web? !web9
    User web-single
Host *.example.com !bad.example.com
    User example
Host !only-negated
    User never
Host db1 db2
    User db
Host DB3
    User db3
Host *
    User fallback
]]))
    local cases = {
        { "web1", "web-single" }, { "web9", "fallback" }, { "web10", "fallback" },
        { "a.example.com", "example" }, { "bad.example.com", "fallback" },
        { "A.EXAMPLE.COM", "example" }, { "db2", "db" }, { "db3", "db3" },
        { "only-negated", "fallback" }, { "x", "fallback" },
    }
    for _, c in ipairs(cases) do T.eq(cfg:lookup(c[1]).user, c[2], c[1]) end
    T.eq(ssh_config.host_matches({ "!a" }, "b"), false)
    T.eq(ssh_config.host_matches({ "a*", "!ab" }, "ac"), true)
    T.eq(ssh_config.host_matches({ "a*", "!ab" }, "ab"), false)
    T.eq(ssh_config.host_matches({ "a.b" }, "aXb"), false)
end)

T.test("the first value obtained wins; IdentityFile accumulates", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
Host special
    Port 1111
    IdentityFile /k/special
    ProxyJump none
Host special
    Port 9999
    User second-block
Host *
    Port 22
    User everyone
    HostName %h.internal
    IdentityFile /k/all
    ProxyJump jump.example.com
]]))
    T.eq(show(cfg:lookup("special")), "hostname=special.internal port=1111 user=second-block " ..
        "ids=/k/special,/k/all jump=nil")
    T.eq(show(cfg:lookup("plain")), "hostname=plain.internal port=22 user=everyone " ..
        "ids=/k/all jump=nil@jump.example.com:nil")
end)

T.test("Match: host, originalhost, user, localuser, all; ! and comma lists", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
Match originalhost web1,web2 !localuser nobody
    Port 2001
Match host !web2,web* user me
    IdentityFile /k/web-as-me
Match originalhost db*,!db9
    HostName %h.db.internal
Match host *.db.internal
    User dba
Match user dba
    Port 5432
Match localuser me
    IdentityFile /k/local-me
Match localuser other
    IdentityFile /k/local-other
Match host only-negated !host x
    User never
Match host !*,!zz
    User never-either
Match all
    User fallback
]]))
    T.eq(show(cfg:lookup("web1")), "hostname=nil port=2001 user=fallback " ..
        "ids=/k/web-as-me,/k/local-me jump=nil")
    -- web2: originalhost matches, host !web2 excludes it
    T.eq(show(cfg:lookup("web2")), "hostname=nil port=2001 user=fallback ids=/k/local-me jump=nil")
    -- the inventory's user is the target user (as ssh -l)
    T.eq(show(cfg:lookup("web1", { user = "deploy" })), "hostname=nil port=2001 user=fallback " ..
        "ids=/k/local-me jump=nil")
    -- host sees the HostName set above it; user sees the User set above it
    T.eq(show(cfg:lookup("db1")), "hostname=db1.db.internal port=5432 user=dba ids=/k/local-me jump=nil")
    T.eq(show(cfg:lookup("db9")), "hostname=nil port=nil user=fallback ids=/k/local-me jump=nil")
    -- originalhost and host compare without case
    T.eq(cfg:lookup("DB2").port, 5432, "DB2: port")
    T.eq(cfg:lookup("DB2").user, "dba", "DB2: user")
    local other = load(d .. "/config", { home = HOME, user = "other" })
    T.eq(show(other:lookup("x")), "hostname=nil port=nil user=fallback ids=/k/local-other jump=nil")
end)

T.test("Match final: the file is read again, final matching only then, as ssh", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
Host alias
    HostName real.example
Match final host real.example
    User late
Match !final
    IdentityFile /k/first-pass
Match final all
    Port 2200
    IdentityFile /k/first-pass
    IdentityFile /k/final
Host *
    User star
]]))
    T.eq(show(cfg:lookup("alias")), "hostname=real.example port=2200 user=star " ..
        "ids=/k/first-pass,/k/final jump=nil")
    local plain = load(T.write(d .. "/plain", "Match !final\n  Port 1\nMatch all\n  Port 2\n"))
    T.eq(plain:lookup("h").port, 1, "!final holds in the only pass")
end)

T.test("Match inside an Include in a Host block applies only to that block's hosts", function()
    local d = T.tmpdir()
    write(d .. "/.ssh/match.conf", "Match all\n    Port 3333\n")
    local cfg = load(T.write(d .. "/config", "Host inc\n    Include match.conf\nHost *\n    Port 1\n"),
                     { home = d, user = "me" })
    T.eq(cfg:lookup("inc").port, 3333)
    T.eq(cfg:lookup("other").port, 1)
end)

T.test("Match exec and unknown criteria are refused, naming FILE:LINE", function()
    local d = T.tmpdir()
    local exec = "Match exec is not supported: cutover does not run commands from the SSH " ..
        "configuration (use Host or Match host/user)"
    local unknown = " is not supported (cutover evaluates all, final, host, originalhost, user and localuser)"
    local cases = {
        { "Host a\nMatch host a exec \"true\"\n", "2: " .. exec },
        { "Match !exec true\n", "1: " .. exec },
        { "\nMatch tagged x\n", "2: Match tagged" .. unknown },
        { "Match canonical host a\n", "1: Match canonical" .. unknown },
        { "Match\n", "1: Match needs criteria" },
        { "Match host\n", "1: Match host needs a pattern list" },
        { "Match user a host\n", "1: Match host needs a pattern list" },
        { "Match all host a\n", "1: Match all cannot be combined with other criteria" },
        { "Match host a all\n", "1: Match all cannot be combined with other criteria" },
    }
    for n, c in ipairs(cases) do
        local f = T.write(d .. "/m" .. n, c[1])
        local cfg, err = ssh_config.load(f, { home = d, user = "me" })
        T.eq(cfg, nil, "case " .. n)
        T.eq(err, f .. ":" .. c[2], "case " .. n)
    end
    -- through the connection: the host cannot open
    local conf = T.write(d .. "/exec.conf", "Match exec \"test -e /x\"\n    Port 2\n")
    local s, err = connection.ssh_settings("h", {}, { ssh_config = conf })
    T.eq(s, nil)
    T.eq(err, conf .. ":1: " .. exec)
end)

-- ssh -G prints the settings ssh would use; a host configured only
-- through Match must get the same ones from cutover.
T.test("a host configured only through Match: the settings ssh -G gives", function()
    local d = T.tmpdir()
    local conf = T.write(d .. "/config", (([[
Host gw-*
    HostName %h.gateways.example
Match host *.gateways.example !originalhost gw-9
    Port 2022
    IdentityFile @D@/gw_key
Match originalhost app?,!app9 localuser @ME@
    User deploy
    HostName 10.1.2.3
Match user deploy
    Port 8022
    IdentityFile @D@/deploy_key
Match host 10.1.2.* user !root
    IdentityFile @D@/subnet_key
Match !originalhost app*,gw-* !final
    User nobody-first
Match final originalhost gw-1
    User gw-final
    IdentityFile @D@/final_key
Match final host 10.1.2.3
    Port 1
    IdentityFile @D@/deploy_key
]]):gsub("@D@", d):gsub("@ME@", ME)))
    local cfg = load(conf, { home = os.getenv("HOME") or "/root", user = ME })
    for _, host in ipairs({ "gw-1", "gw-9", "app1", "app9", "web", "APP2" }) do
        local r = assert(proc.run({ argv = { "ssh", "-G", "-F", conf, host }, timeout = 30 }))
        T.eq(r.rc, 0, "ssh -G " .. host .. ": " .. r.stderr)
        local want = { identityfile = {} }
        for line in r.stdout:gmatch("[^\n]+") do
            local k, v = line:match("^(%S+) (.*)$")
            if k == "identityfile" then want.identityfile[#want.identityfile + 1] = v
            elseif k == "hostname" or k == "port" or k == "user" then want[k] = v end
        end
        local got = cfg:lookup(host)
        T.eq(got.hostname or host:lower(), want.hostname, host .. ": hostname")
        T.eq(tostring(got.port or 22), want.port, host .. ": port")
        T.eq(got.user or ME, want.user, host .. ": user")
        local wids = table.concat(want.identityfile, " ")
        if got.identity_files then
            T.eq(table.concat(got.identity_files, " "), wids, host .. ": identityfile")
        else -- without an IdentityFile ssh -G lists its default keys
            T.match(wids, "^~/%.ssh/id_", host .. ": default keys")
        end
    end
end)

T.test("tokens: %h in HostName; %d %u %h %r %p %n %% in IdentityFile", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
Host alias
    HostName %h.example.com
    User remote
    Port 2022
    IdentityFile %d/keys/%u-%r@%h:%p-%n-100%%
Host noname
    IdentityFile ~/.ssh/%h-%r
]]))
    T.eq(show(cfg:lookup("alias")), "hostname=alias.example.com port=2022 user=remote " ..
        "ids=/home/tester/keys/me-remote@alias.example.com:2022-alias-100% jump=nil")
    -- %r is the local user when nothing sets one; the inventory's user and
    -- port (overrides) win for %r and %p
    T.eq(show(cfg:lookup("noname")), "hostname=nil port=nil user=nil ids=/home/tester/.ssh/noname-me jump=nil")
    T.eq(cfg:lookup("noname", { user = "inv" }).identity_files[1], "/home/tester/.ssh/noname-inv")
    T.eq(cfg:lookup("alias", { user = "inv", port = 7 }).identity_files[1],
        "/home/tester/keys/me-inv@alias.example.com:7-alias-100%")
end)

T.test("ProxyJump forms", function()
    local d = T.tmpdir()
    local cfg = load(T.write(d .. "/config", [[
Host a
    ProxyJump bastion
Host b
    ProxyJump ops@bastion:2200
Host c
    ProxyJump ssh://ops@bastion:2201
Host d
    ProxyJump [2001:db8::1]:2202
Host e
    ProxyJump NONE
Host *
    ProxyJump fallback
]]))
    T.eq(show(cfg:lookup("a")), "hostname=nil port=nil user=nil ids=nil jump=nil@bastion:nil")
    T.eq(show(cfg:lookup("b")), "hostname=nil port=nil user=nil ids=nil jump=ops@bastion:2200")
    T.eq(show(cfg:lookup("c")), "hostname=nil port=nil user=nil ids=nil jump=ops@bastion:2201")
    T.eq(show(cfg:lookup("d")), "hostname=nil port=nil user=nil ids=nil jump=nil@2001:db8::1:2202")
    T.eq(show(cfg:lookup("e")), "hostname=nil port=nil user=nil ids=nil jump=nil")
    T.eq(show(cfg:lookup("z")), "hostname=nil port=nil user=nil ids=nil jump=nil@fallback:nil")
end)

T.test("Include: relative to ~/.ssh, globs, inside a Host block, missing files", function()
    local home = T.tmpdir()
    local cfgfile = write(home .. "/.ssh/config", [[
Include conf.d/*.conf
Host inner
    Include inner.conf
Host *
    Include /nonexistent/file
    Include ~/extra/*.conf
    User star
]])
    write(home .. "/.ssh/conf.d/10-a.conf", "Host a\n    User from-10\n")
    write(home .. "/.ssh/conf.d/20-a.conf", "Host a\n    User from-20\n    Port 2020\n")
    write(home .. "/.ssh/conf.d/.hidden.conf", "Host a\n    Port 1\n")
    write(home .. "/.ssh/conf.d/notes.txt", "Host a\n    Port 2\n")
    -- included inside "Host inner": applies to inner only, even its Host *
    write(home .. "/.ssh/inner.conf", "HostName inner.example.com\nHost *\n    Port 3333\n")
    write(home .. "/extra/x.conf", "Host b\n    HostName b.example.com\n")
    local cfg = load(cfgfile, { home = home, user = "me" })
    T.eq(show(cfg:lookup("a")), "hostname=nil port=2020 user=from-10 ids=nil jump=nil")
    T.eq(show(cfg:lookup("inner")), "hostname=inner.example.com port=3333 user=star ids=nil jump=nil")
    T.eq(show(cfg:lookup("b")), "hostname=b.example.com port=nil user=star ids=nil jump=nil")
    T.eq(show(cfg:lookup("c")), "hostname=nil port=nil user=star ids=nil jump=nil")
    -- an error inside an included file names that file
    write(home .. "/.ssh/conf.d/30-bad.conf", "Host x\n    Port none\n")
    local _, err = ssh_config.load(cfgfile, { home = home, user = "me" })
    T.eq(err, home .. "/.ssh/conf.d/30-bad.conf:2: Port must be a number from 1 to 65535, got 'none'")
    -- a file that includes itself
    local loop = write(home .. "/loop.conf", "Include " .. home .. "/loop.conf\n")
    _, err = ssh_config.load(loop, { home = home, user = "me" })
    T.eq(err, loop .. ": Include nested more than 16 deep")
end)

T.test("globs: * and ? as OpenSSH has them; many stars stay fast", function()
    local util = require("cutover.util")
    local cases = {
        { "*", "", true }, { "*", "anything", true }, { "?", "", false }, { "?", "a", true },
        { "web*", "web01", true }, { "web*", "db01", false }, { "*.example", "a.example", true },
        { "*.example", "a.example.org", false }, { "w?b*1", "web01", true }, { "w?b*1", "web02", false },
        { "a*b*c", "abc", true }, { "a*b*c", "aXbYbZc", true }, { "a*b*c", "acb", false },
        { "[h]:22", "[h]:22", true }, { "%.+", "%.+", true }, { "%.+", "a.b", false },
        { "**a**", "xxaxx", true }, { "*?", "", false }, { "*?", "x", true },
    }
    for _, c in ipairs(cases) do
        T.eq(util.glob_match(c[1], c[2]), c[3], "glob '" .. c[1] .. "' on '" .. c[2] .. "'")
    end
    -- a Lua pattern made from these backtracked for minutes (found by
    -- fuzzing an Include glob); the matcher is O(glob x text)
    local stars = string.rep("*a", 40) .. "b"
    T.eq(util.glob_match(stars, string.rep("a", 200)), false, "many stars, no match")
    T.eq(util.glob_match(stars, string.rep("a", 200) .. "b"), true, "many stars, a match")
    local home = T.tmpdir()
    write(home .. "/inc/xa.conf", "Host g\n    Port 2022\n")
    local cfgfile = write(home .. "/config", "Include " .. home .. "/inc/" .. string.rep("*", 100) .. "a.*\n")
    local cfg = assert(load(cfgfile, { home = home, user = "me" }))
    T.eq(show(cfg:lookup("g")), "hostname=nil port=2022 user=nil ids=nil jump=nil", "Include with 100 stars")
end)

T.test("errors name FILE:LINE", function()
    local d = T.tmpdir()
    local cases = {
        { "Host a\n  Port ssh\n", "2: Port must be a number from 1 to 65535, got 'ssh'" },
        { "Port 70000\n", "1: Port must be a number from 1 to 65535, got '70000'" },
        { "Port 0\n", "1: Port must be a number from 1 to 65535, got '0'" },
        { "\nHost\n", "2: Host needs at least one pattern" },
        { "HostName\n", "1: HostName needs a value" },
        { "User a b\n", "1: User takes one value, got 2" },
        { "IdentityFile /a /b\n", "1: IdentityFile takes one value, got 2" },
        { "IdentityFile ~/.ssh/%x\n", "1: IdentityFile: unknown token '%x' in '~/.ssh/%x'" },
        { "HostName %r.example.com\n", "1: HostName: unknown token '%r' in '%r.example.com'" },
        { "HostName web%\n", "1: HostName: '%' at the end of 'web%'" },
        { "User \"open\n", "1: User: unclosed quote \"" },
        { "ProxyJump a,,b\n", "1: ProxyJump: empty hop in 'a,,b'" },
        { "ProxyJump a,b:x\n", "1: ProxyJump: bad port in 'b:x'" },
        { "ProxyJump " .. string.rep("h,", 8) .. "h\n", "1: ProxyJump: more than 8 hops in '" .. string.rep("h,",
            8) .. "h'" },
        { "ProxyJump a:port\n", "1: ProxyJump: bad port in 'a:port'" },
        { "ProxyJump a:99999\n", "1: ProxyJump: bad port in 'a:99999'" },
        { "ProxyJump @a\n", "1: ProxyJump: empty user name in '@a'" },
        { "Include\n", "1: Include needs a path" },
    }
    for n, c in ipairs(cases) do
        local f = T.write(d .. "/c" .. n, c[1])
        local cfg, err = ssh_config.load(f, { home = d, user = "me" })
        T.eq(cfg, nil, "case " .. n)
        T.eq(err, f .. ":" .. c[2], "case " .. n)
    end
    local cfg, err = ssh_config.load(d .. "/missing")
    T.eq(cfg, nil)
    T.eq(err, d .. "/missing: No such file or directory")
end)

T.test("ssh_settings: inventory wins over ssh config, ssh config over defaults", function()
    local d = T.tmpdir()
    local key1 = T.write(d .. "/key1", "k")
    local key3 = T.write(d .. "/key3", "k")
    local conf = T.write(d .. "/ssh.conf", ([[
Host db1
    HostName 10.0.0.5
    Port 2222
    User cfg-user
    IdentityFile @D@/key1
    IdentityFile @D@/key2-missing
    IdentityFile @D@/key3
    ProxyJump bastion
Host bastion
    HostName 192.0.2.1
    Port 2200
    User jumper
Host bastion2
    HostName 192.0.2.2
Host viajump2
    ProxyJump op@bastion2
]]):gsub("@D@", d))
    local opts = { ssh_config = conf, known_hosts = d .. "/kh" }
    local s = assert(connection.ssh_settings("db1", {}, opts))
    T.eq(s.host, "10.0.0.5")
    T.eq(s.port, 2222)
    T.eq(s.user, "cfg-user")
    T.eq(table.concat(s.keys, ","), key1 .. "," .. key3)
    T.eq(s.proxy_jump.host, "192.0.2.1")
    T.eq(s.proxy_jump.port, 2200)
    T.eq(s.proxy_jump.user, "jumper")
    -- inventory variables win
    s = assert(connection.ssh_settings("db1", {
        ansible_port = 22, ansible_user = "inv-user", ansible_ssh_private_key_file = d .. "/inv-key",
    }, opts))
    T.eq(s.host, "10.0.0.5")
    T.eq(s.port, 22)
    T.eq(s.user, "inv-user")
    T.eq(table.concat(s.keys, ","), d .. "/inv-key")
    -- the name looked up is ansible_host
    s = assert(connection.ssh_settings("inventory-name", { ansible_host = "db1" }, opts))
    T.eq(s.host, "10.0.0.5")
    T.eq(s.port, 2222)
    s = assert(connection.ssh_settings("db1", { ansible_host = "198.51.100.7" }, opts))
    T.eq(s.host, "198.51.100.7")
    T.eq(s.port, 22)
    T.eq(s.user, ME)
    T.eq(s.proxy_jump, nil)
    -- a jump host with its own user, port from defaults, host from config
    s = assert(connection.ssh_settings("viajump2", {}, opts))
    T.eq(s.proxy_jump.host, "192.0.2.2")
    T.eq(s.proxy_jump.port, 22)
    T.eq(s.proxy_jump.user, "op")
    T.eq(s.host, "viajump2")
end)

T.test("ProxyCommand: the rest of the line, tokens expanded for the host; first of it and ProxyJump wins", function()
    local d = T.tmpdir()
    local conf = T.write(d .. "/config", [[
Host cmd
    HostName 10.0.0.9
    Port 2200
    ProxyCommand ssh -W %h:%p -l "jump user" bastion # not a comment for the shell
    ProxyJump ignored
Host jumpfirst
    ProxyJump j1
    ProxyCommand nc %h %p
Host off
    ProxyCommand none
Host *
    ProxyCommand nc -X connect -x proxy:3128 %h %p %% %r@%n
]])
    local opts = { ssh_config = conf, known_hosts = d .. "/kh" }
    local s = assert(connection.ssh_settings("cmd", { ansible_user = "op" }, opts))
    T.eq(s.proxy_command, 'ssh -W 10.0.0.9:2200 -l "jump user" bastion # not a comment for the shell', "expanded")
    T.eq(s.proxy_jump, nil, "the later ProxyJump lost")
    s = assert(connection.ssh_settings("jumpfirst", {}, opts))
    T.eq(s.proxy_command, nil, "ProxyJump came first")
    T.eq(s.proxy_jump.host, "j1")
    s = assert(connection.ssh_settings("off", {}, opts))
    T.eq(s.proxy_command, nil, "none")
    s = assert(connection.ssh_settings("web", { ansible_host = "10.1.1.1", ansible_user = "me" }, opts))
    T.eq(s.proxy_command, "nc -X connect -x proxy:3128 10.1.1.1 22 % me@10.1.1.1", "Host *")
    s = assert(connection.ssh_settings("cmd", { cutover_proxy_command = "none" }, opts))
    T.eq(s.proxy_command, nil, "none in the inventory")
    s = assert(connection.ssh_settings("x", { ansible_ssh_common_args = "-o ProxyCommand='nc %h %p'" }, opts))
    T.eq(s.proxy_command, "nc x 22", "from ansible_ssh_common_args")
    local _, err = connection.ssh_settings("x", { cutover_proxy_command = "nc %h %q" }, opts)
    T.eq(err, "ProxyCommand: unknown token '%q' in 'nc %h %q'")
    _, err = connection.ssh_settings("x", { cutover_proxy_command = "nc %h %p", cutover_proxy_jump = "j" }, opts)
    T.eq(err, "both a jump host and a ProxyCommand are set in the inventory; keep one")
    local bad = T.write(d .. "/bad", "Host *\n    ProxyCommand nc %x\n")
    _, err = connection.ssh_settings("x", {}, { ssh_config = bad })
    T.eq(err, bad .. ":2: ProxyCommand: unknown token '%x' in 'nc %x'")
end)

T.test("the first jump host's own ProxyJump or ProxyCommand in the config is followed, as ssh does", function()
    local d = T.tmpdir()
    local conf = T.write(d .. "/config", [[
Host far
    ProxyJump mid
Host mid
    HostName 192.0.2.5
    ProxyJump edge
Host edge
    HostName 192.0.2.9
    User e
Host viacmd
    ProxyJump cmdhop
Host cmdhop
    HostName 192.0.2.7
    ProxyCommand nc -x proxy:1080 %h %p
Host loop
    ProxyJump loop2
Host loop2
    ProxyJump loop2
]])
    local opts = { ssh_config = conf, known_hosts = d .. "/kh" }
    local s = assert(connection.ssh_settings("far", {}, opts))
    T.eq(s.proxy_jump.host, "192.0.2.5", "the last hop")
    T.eq(s.proxy_jump.proxy_jump.host, "192.0.2.9", "reached through its own jump host")
    T.eq(s.proxy_jump.proxy_jump.user, "e")
    T.eq(s.proxy_jump.proxy_jump.proxy_jump, nil, "which is reached directly")
    s = assert(connection.ssh_settings("viacmd", {}, opts))
    T.eq(s.proxy_jump.host, "192.0.2.7")
    T.eq(s.proxy_jump.proxy_command, "nc -x proxy:1080 192.0.2.7 22", "the hop's ProxyCommand, for the hop")
    T.eq(s.proxy_command, nil, "not the target's")
    local _, err = connection.ssh_settings("loop", {}, opts)
    T.eq(err, "the jump hosts' own ProxyJump settings nest more than 8 deep (a loop through 'loop2'?)")
end)

T.test("several hops: each looked up in the config, each reached through the one before", function()
    local d = T.tmpdir()
    local conf = T.write(d .. "/config", [[
Host far
    ProxyJump first,op@second:2022
Host first
    HostName 192.0.2.1
    User jumper
Host second
    HostName 192.0.2.2
    Port 2200
]])
    local opts = { ssh_config = conf, known_hosts = d .. "/kh" }
    local function chain(s)
        local out, j = {}, s.proxy_jump
        while j do
            table.insert(out, 1, j.user .. "@" .. j.host .. ":" .. j.port)
            j = j.proxy_jump
        end
        return table.concat(out, " -> ")
    end
    local s = assert(connection.ssh_settings("far", {}, opts))
    T.eq(chain(s), "jumper@192.0.2.1:22 -> op@192.0.2.2:2022", "config: the explicit port and user win")
    s = assert(connection.ssh_settings("x", { cutover_proxy_jump = "first,second" }, opts))
    T.eq(chain(s), "jumper@192.0.2.1:22 -> " .. ME .. "@192.0.2.2:2200", "inventory")
    s = assert(connection.ssh_settings("x", { ansible_ssh_common_args = "-J 'a,b:2'" }, opts))
    T.eq(chain(s), ME .. "@a:22 -> " .. ME .. "@b:2", "-J with quotes")
    s = assert(connection.ssh_settings("far", { cutover_proxy_jump = "none" }, opts))
    T.eq(s.proxy_jump, nil, "none in the inventory overrides the config")
    local _, err = connection.ssh_settings("x", { cutover_proxy_jump = "a,,b" }, opts)
    T.eq(err, "cannot read the jump hosts 'a,,b': empty hop in 'a,,b'")
end)

T.test("a bad ssh config: settings fail, the host cannot open, run -F exits 2", function()
    local d = T.tmpdir()
    local conf = T.write(d .. "/bad.conf", "Host *\n    Port nope\n")
    local s, err = connection.ssh_settings("h", {}, { ssh_config = conf })
    T.eq(s, nil)
    T.eq(err, conf .. ":2: Port must be a number from 1 to 65535, got 'nope'")
    local conn
    conn, err = connection.open("h", { ansible_connection = "ssh" }, { ssh_config = conf })
    T.eq(conn, nil)
    T.eq(err, "host h: " .. conf .. ":2: Port must be a number from 1 to 65535, got 'nope'")
    local book = T.write(d .. "/p.yml",
        ("- hosts: localhost\n  steps:\n    - shell: touch @T@/marker\n"):gsub("@T@", d))
    local r = T.run({ "run", book, "-F", conf })
    T.eq(r.rc, 2)
    T.eq(r.stderr, conf .. ":2: Port must be a number from 1 to 65535, got 'nope'\n")
    T.ok(not fs.stat(d .. "/marker"), "nothing ran")
    r = T.run({ "run", book, "--ssh-config", d .. "/missing.conf" })
    T.eq(r.rc, 2)
    T.eq(r.stderr, d .. "/missing.conf: No such file or directory\n")
    local good = T.write(d .. "/good.conf", "Host *\n    Port 2222\n")
    r = T.run({ "run", book, "-F", good })
    T.eq(r.rc, 0, r.stderr)
    T.ok(fs.stat(d .. "/marker") ~= nil, "a local run with -F works")
    r = T.run({ "run", "--help" })
    T.contains(r.stdout, "  -F, --ssh-config FILE    OpenSSH client config (default ~/.ssh/config if it exists)\n")
end)

T.test("~/.ssh/config is read when -F is not given", function()
    local home = T.tmpdir()
    -- a broken ~/.ssh/config: its SSH hosts are unreachable with the
    -- message, before any connection is tried; local hosts still run
    -- (HOME is set through the shell: proc.run's env adds to the
    -- environment, and the first HOME wins)
    write(home .. "/.ssh/config", "Host 127.0.0.1\n    Port nope\n")
    local book = T.write(home .. "/p.yml",
        ("- hosts: all\n  steps:\n    - shell: touch @T@/marker-{{ inventory_hostname }}\n"):gsub("@T@", home))
    local inv = T.write(home .. "/hosts", "sshhost ansible_host=127.0.0.1\nlocal1 ansible_connection=local\n")
    local r = T.sh("HOME=" .. home .. " NO_COLOR=1 " .. T.cutover .. " run " .. book .. " -i " .. inv ..
        " --known-hosts " .. home .. "/kh --format json")
    T.eq(r.rc, 1, r.stderr)
    local msg
    for _, e in ipairs(T.events(r.stdout)) do
        if e.event == "host_result" and e.host == "sshhost" then msg = e.result.msg end
    end
    T.eq(msg, "host sshhost: " .. home .. "/.ssh/config:2: Port must be a number from 1 to 65535, got 'nope'")
    T.ok(fs.stat(home .. "/marker-local1") ~= nil, "the local host ran")
    T.ok(not fs.stat(home .. "/marker-sshhost"), "the ssh host did not")
    T.ok(not fs.stat(home .. "/kh"), "no known_hosts was written")
end)

T.test("ProxyCommand token values: shell metacharacters refused before expansion (safety item 3)", function()
    for _, bad in ipairs({ "a'b", "a\"b", "a`b", "a$b", "a\\b", "a;b", "a&b", "a<b", "a>b", "a|b", "a(b", "a)b",
                           "a{b", "a}b", "a b", "a\tb", "a\nb", "a\0b", "-oX", "" }) do
        T.ok(not ssh_config.check_hostname(bad), "host name " .. string.format("%q", bad) .. " refused")
        T.eq(ssh_config.expand_proxy_command("nc %h %p", bad, 22, "u", "n"), nil, "%h " .. string.format("%q", bad))
        T.eq(ssh_config.expand_proxy_command("nc %n %p", "h", 22, "u", bad), nil, "%n " .. string.format("%q", bad))
    end
    for _, good in ipairs({ "web01", "web-1.example.com", "10.0.0.1", "::1", "fe80::1%eth0", "under_score" }) do
        T.ok(ssh_config.check_hostname(good), "host name " .. good .. " accepted")
    end
    for _, bad in ipairs({ "u$(x)", "u`x`", "u;x", "u|x", "u&x", "u'x", "u\"x", "u>x", "u x -oProxyCommand=y", "-l",
                           "u\\", "u\nx", "u{x}" }) do
        T.ok(not ssh_config.check_user(bad), "user " .. string.format("%q", bad) .. " refused")
        T.eq(ssh_config.expand_proxy_command("ssh -l %r %h", "h", 22, bad, "n"), nil, "%r " .. string.format("%q", bad))
    end
    for _, good in ipairs({ "deploy", "CORP\\admin", "John Smith", "first.last@corp" }) do
        T.ok(ssh_config.check_user(good), "user " .. good .. " accepted")
    end
    for _, bad in ipairs({ "22;x", "0", "65536", "x", "22 1" }) do
        T.eq(ssh_config.expand_proxy_command("nc %h %p", "h", bad, "u", "n"), nil, "%p " .. bad)
    end
    T.eq(ssh_config.expand_proxy_command("nc %h %p %r %n %%", "h", "2222", "u", "n"), "nc h 2222 u n %")
end)

T.done()
