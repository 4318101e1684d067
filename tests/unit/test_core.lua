-- Units of the C modules: loop, proc, fs, json, net, crypto, sandbox.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local loop = require("cutover.core.loop")
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")
local json = require("cutover.core.json")
local net = require("cutover.core.net")
local crypto = require("cutover.core.crypto")
local sandbox = require("cutover.core.sandbox")

T.test("proc.run: rc, stdout and stderr apart, stdin, cwd, env", function()
    local d = T.tmpdir()
    local r = assert(proc.run({ shell = "cat; echo err >&2; pwd; echo $FOO; exit 3",
                                stdin = "in\n", cwd = d, env = { FOO = "bar" } }))
    T.eq(r.rc, 3, "rc")
    T.eq(r.stdout, "in\n" .. d .. "\nbar\n", "stdout")
    T.eq(r.stderr, "err\n", "stderr")
    T.eq(r.timed_out, false, "timed_out")
    r = assert(proc.run({ shell = "echo $HOME; env | grep -c '^HOME='", env = { HOME = "/elsewhere" } }))
    T.eq(r.stdout, "/elsewhere\n1\n", "env replaces an inherited variable")
end)

T.test("proc.run: argv is passed without a shell", function()
    local r = assert(proc.run({ argv = { "printf", "%s|", "a b", "$HOME", "*" } }))
    T.eq(r.stdout, "a b|$HOME|*|", "stdout")
end)

T.test("proc.run: a missing program is an error, not a crash", function()
    local r, err, code = proc.run({ argv = { "/nonexistent/prog" } })
    T.eq(r, nil, "result")
    T.eq(err, "cannot run '/nonexistent/prog': No such file or directory", "message")
    T.eq(code, 2, "errno")
end)

T.test("proc.run: timeout kills the process group", function()
    local d = T.tmpdir()
    -- the grandchild outlives ctest's bound if proc.run waited for it
    local r = assert(proc.run({ shell = "sleep 600 & echo $! > " .. d .. "/pid; wait", timeout = 0.5 }))
    T.eq(r.timed_out, true, "timed_out")
    T.eq(r.rc, 128 + 15, "rc (SIGTERM)")
    local pid = assert(T.read(d .. "/pid")):match("%d+")
    -- gone, or a zombie waiting for its new parent to reap it
    loop.sleep(0.2)
    local stat = T.read("/proc/" .. pid .. "/stat")
    local state = stat and stat:match("^%d+ %b() (%a)")
    T.ok(state == nil or state == "Z", "the grandchild sleep was killed too (state " .. tostring(state) .. ")")
end)

T.test("proc.run: output is capped and says so", function()
    local r = assert(proc.run({ shell = "head -c 100000 /dev/zero", max_output = 1000 }))
    T.eq(#r.stdout, 1000, "kept bytes")
    T.eq(r.stdout_truncated, true, "truncated flag")
    T.eq(r.rc, 0, "rc")
end)

T.test("proc.run: large stdin and stdout do not deadlock", function()
    local big = string.rep("0123456789", 200000)
    local r = assert(proc.run({ argv = { "cat" }, stdin = big }))
    T.eq(#r.stdout, #big, "all bytes back")
end)

T.test("loop: tasks run side by side", function()
    local order = {}
    for _ = 1, 5 do
        loop.spawn(function()
            order[#order + 1] = "start"
            local r = assert(proc.run({ argv = { "sleep", "1" } }))
            order[#order + 1] = "end" .. r.rc
        end)
    end
    loop.spawn(function() loop.sleep(0.1); order[#order + 1] = "slept" end)
    loop.run()
    T.eq(#order, 11, "all finished")
    -- all five processes were started before the first one ended, and the
    -- short sleep ended while they ran
    T.eq(table.concat(order, " ", 1, 6), "start start start start start slept", "side by side")
end)

T.test("loop: tick runs while tasks wait and does not keep the loop alive", function()
    local ticks, ended = 0, false
    loop.spawn(function() loop.sleep(0.35); ended = true end)
    loop.run(function() ticks = ticks + 1 end, 0.1)
    T.ok(ticks >= 1, "ticks: " .. ticks)
    T.ok(ended, "ran until the last task ended")
end)

T.test("loop.condition: a signal wakes every waiter; nothing runs them before it", function()
    local cond = loop.condition()
    local log, woken = {}, nil
    for i = 1, 2 do
        loop.spawn(function()
            log[#log + 1] = "wait" .. i
            local got = cond:wait()
            log[#log + 1] = "woke" .. i .. "=" .. tostring(got)
        end)
    end
    loop.spawn(function()
        loop.sleep(0.2)
        log[#log + 1] = "signal"
        woken = cond:signal()
    end)
    loop.run()
    T.eq(table.concat(log, " "), "wait1 wait2 signal woke1=true woke2=true", "order")
    T.eq(woken, 2, "signal says how many it woke")
    T.eq(cond:signal(), 0, "no waiter left")
end)

T.test("loop.condition: a wait with a timeout ends false; a lock handed over by signals", function()
    local cond = loop.condition()
    local got
    loop.spawn(function() got = cond:wait(0.1) end)
    loop.run()
    T.eq(got, false, "timed out")
    -- the pattern the connection code uses: a flag guarded by a condition
    local lock = { held = false, cond = loop.condition() }
    local inside, most = 0, 0
    for _ = 1, 5 do
        loop.spawn(function()
            while lock.held do lock.cond:wait() end
            lock.held = true
            inside = inside + 1
            most = math.max(most, inside)
            loop.sleep(0.01)
            inside = inside - 1
            lock.held = false
            lock.cond:signal()
        end)
    end
    loop.run()
    T.eq(most, 1, "one holder at a time")
    T.eq(inside, 0, "all done")
end)

T.test("loop.condition: waiting where nothing can signal raises; only tasks wait", function()
    local cond = loop.condition()
    local ok, err
    loop.spawn(function() ok, err = pcall(cond.wait, cond) end)
    loop.run()
    T.eq(ok, false, "deadlock raises")
    T.contains(tostring(err), "deadlock", "message")
    local ok2, err2 = pcall(cond.wait, cond)
    T.eq(ok2, false, "outside a task")
    T.contains(tostring(err2), "only a task can wait", "message")
end)

T.test("fs: atomic write keeps or sets the mode, read caps size", function()
    local d = T.tmpdir()
    assert(fs.write(d .. "/f", "one", 384))
    T.eq(fs.stat(d .. "/f").mode, 384, "mode 0600")
    assert(fs.write(d .. "/f", "two"))
    T.eq(fs.stat(d .. "/f").mode, 384, "mode kept")
    T.eq(fs.read(d .. "/f"), "two", "content")
    local names = fs.list(d)
    T.eq(#names, 1, "no temporary file left")
    local v, err = fs.read(d .. "/f", 2)
    T.eq(v, nil, "over the cap")
    T.contains(err, "larger than the limit", "message")
    local _, err2, code = fs.read(d .. "/missing")
    T.eq(code, 2, "ENOENT")
    T.contains(err2, d .. "/missing: No such file or directory", "message names the path")
end)

T.test("fs: sha256 of a file equals crypto.sha256 of its content", function()
    local d = T.tmpdir()
    local content = string.rep("abc", 50000)
    assert(fs.write(d .. "/f", content))
    T.eq(fs.sha256(d .. "/f"), crypto.sha256(content), "digest")
    T.eq(crypto.sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty")
end)

T.test("json: round trip, sorted keys, arrays, invalid UTF-8 repaired", function()
    T.eq(json.encode({ b = 1, a = { 1, 2, "x" }, c = true }), '{"a":[1,2,"x"],"b":1,"c":true}', "encode")
    T.eq(json.encode(setmetatable({}, { __jsontype = "array" })), "[]", "empty array")
    T.eq(json.encode({}), "{}", "empty object")
    T.eq(json.encode("a\255b"), '"a\239\191\189b"', "bad byte becomes U+FFFD")
    local v = assert(json.decode('{"a":[1,2.5,"s",null,false]}'))
    T.eq(v.a[2], 2.5, "number")
    T.eq(v.a[5], false, "false")
    local bad, err = json.decode("{oops")
    T.eq(bad, nil, "bad json")
    T.contains(err, "line 1", "position")
    local deep = {}
    local cur = deep
    for _ = 1, 100 do cur.x = {}; cur = cur.x end
    local ok, e = pcall(json.encode, deep)
    T.eq(ok, false, "too deep")
    T.contains(e, "nesting deeper", "message")
end)

-- json.c builds an encode's tree in an arena reused by the next encode:
-- values far over one chunk, an encode after one that raised halfway,
-- and decoded trees (malloc'd, freed by their finalizer) collected while
-- an encode runs must all come out right (the ASan and memcheck stages
-- run this too: a tree freed twice or read after reuse shows there).
T.test("json: encodes in the arena (big values, after a raise, with decodes collected)", function()
    local function same(a, b, path)
        T.eq(type(a), type(b), path .. ": type")
        if type(a) ~= "table" then T.eq(a, b, path); return end
        for k, v in pairs(a) do same(v, b[k], path .. "." .. tostring(k)) end
        for k in pairs(b) do T.ok(a[k] ~= nil, path .. "." .. tostring(k) .. ": extra key") end
    end
    local seed = 7
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
    local function value(depth)
        local r = rnd(depth > 3 and 4 or 7)
        if r == 0 then return rnd(1000000) - 500000 end
        if r == 1 then return rnd(1000) / 7 end
        if r == 2 then
            local n = (depth <= 1 and rnd(3) == 0) and 20000 + rnd(30000) or rnd(40)
            return string.rep(string.char(65 + rnd(26)), n)
        end
        if r == 3 then return rnd(2) == 0 end
        if r == 4 or r == 5 then
            local t = {}
            for i = 1, rnd(8) + 1 do t["k" .. i .. string.rep("x", rnd(30))] = value(depth + 1) end
            return t
        end
        local t = {}
        for i = 1, rnd(8) + 1 do t[i] = value(depth + 1) end
        return t
    end
    local deep = {}
    local cur = deep
    for _ = 1, 100 do cur.x = { pad = string.rep("p", 300) }; cur = cur.x end
    local kept = {}
    for round = 1, 60 do
        local v = value(0)
        local text = json.encode(v)
        same(json.decode(text), v, "round " .. round)
        T.eq(json.encode(json.decode(text)), text, "round " .. round .. ": stable")
        kept[#kept + 1] = json.decode('{"a":[1,2,3],"b":"' .. string.rep("z", 5000) .. '"}')
        if round % 3 == 0 then
            T.eq(pcall(json.encode, deep), false, "round " .. round .. ": too deep raises")
            -- a decode right after: its tree (over a chunk) must not be
            -- in the arena the next encode empties before it is collected
            local d = json.decode('{"big":"' .. string.rep("y", 40000) .. '","n":[1,2]}')
            T.eq(#d.big, 40000, "round " .. round .. ": decoded after a raise")
            T.eq(json.encode({ 1, 2 }), "[1,2]", "round " .. round .. ": encode after it")
            d = nil
            collectgarbage("collect")
        end
        if round % 10 == 0 then kept = {}; collectgarbage("collect") end
    end
    local big = { s = string.rep("q", 3 * 1024 * 1024), list = {} }
    for i = 1, 20000 do big.list[i] = { i = i, n = "n" .. i } end
    local text = json.encode(big)
    T.eq(#text > 3 * 1024 * 1024, true, "3 MB string encoded")
    same(json.decode(text), big, "big")
    T.eq(json.encode({ b = 1, a = 2 }), '{"a":2,"b":1}', "a small encode after the big one")
end)

-- Finalizers run by the collector inside an encode (its number keys
-- make strings, and so collector steps) that encode and decode
-- themselves: the outer encode's tree, in the arena, must come out whole.
T.test("json: encodes and decodes run by finalizers during an encode", function()
    local v = {}
    for i = 1, 4000 do v[i * 2] = string.rep("v", 40) .. i end  -- number keys, not a sequence: an object
    collectgarbage("stop")
    local want = json.encode(v)
    collectgarbage("restart")
    local encoding, inside, results = false, 0, {}
    for round = 1, 10 do
        for i = 1, 300 do
            setmetatable({}, { __gc = function()
                if encoding then inside = inside + 1 end
                results[#results + 1] = json.encode({ k = i, s = string.rep("f", 300) })
                -- rounds 6 to 10: a decode too
                if round > 5 then results[#results + 1] = json.encode(json.decode('{"x":[1,2,' .. i .. ']}')) end
            end })
        end
        collectgarbage("incremental", 0, 100)   -- always collecting
        encoding = true
        local got = json.encode(v)
        encoding = false
        collectgarbage("generational")
        T.eq(got == want, true, "round " .. round .. ": the outer encode is whole")
    end
    collectgarbage("collect")
    T.ok(inside > 0, "finalizers ran inside an encode: " .. inside)
    for _, r in ipairs(results) do
        T.ok(r:match('^{"k":%d+,"s":"f+"}$') or r:match('^{"x":%[1,2,%d+%]}$'),
             "a finalizer's encode: " .. r:sub(1, 40))
    end
end)

T.test("net.probe_tcp: refused and timed out are errors", function()
    local ok, err = net.probe_tcp("127.0.0.1", 1, 2)
    T.eq(ok, nil, "port 1 refused")
    T.eq(err, "Connection refused", "message")
end)

T.test("sandbox: instruction budget, memory budget, nesting", function()
    local ok, err = sandbox.call(function() while true do end end, 100000, 1 << 20)
    T.eq(ok, false, "loop stopped")
    T.contains(err, "instruction limit exceeded", "message")
    ok, err = sandbox.call(function() return string.rep("x", 1 << 26) end, 100000, 1 << 20)
    T.eq(ok, false, "allocation refused")
    T.contains(err, "not enough memory", "message")
    local r
    ok, r = sandbox.call(function()
        local inner_ok = sandbox.call(function() return 1 end, 1000, 1 << 20)
        local x = 0
        for i = 1, 10 do x = x + i end
        return inner_ok and x
    end, 100000, 1 << 20)
    T.eq(ok, true, "nested call ok")
    T.eq(r, 55, "nested result")
    ok, err = sandbox.call(function()
        sandbox.call(function() return 1 end, 1000, 1 << 20)
        while true do end
    end, 100000, 1 << 20)
    T.eq(ok, false, "outer budget still enforced after an inner call")
    T.contains(err, "instruction limit exceeded", "message")
    T.eq(string.rep("y", 3), "yyy", "the host works afterwards")
end)

T.test("sys.alive: a zombie is not alive (a killed controller nobody reaps holds no lock)", function()
    local sys = require("cutover.core.sys")
    local d = T.tmpdir()
    -- the child exits after a second, once its parent has exec'd sleep,
    -- which never reaps it (a shell could, before its exec): a zombie
    -- until the sleeper ends (killed below).  setsid: out of proc.run's
    -- process group, which it stops on return.
    local r = proc.run({ shell = "setsid sh -c 'sleep 1 & echo $! > " .. d .. "/pid; echo $$ > " .. d ..
                                 "/parent; exec sleep 60' >/dev/null 2>&1 &" })
    T.eq(r.rc, 0, "started")
    local pid, state
    for _ = 1, 500 do
        pid = tonumber(T.read(d .. "/pid") or "")
        local stat = pid and T.read("/proc/" .. pid .. "/stat")
        state = stat and stat:match("%) (%u)")
        if state == "Z" then break end
        loop.sleep(0.02)
    end
    T.eq(state, "Z", "a zombie to look at")
    T.eq(sys.alive(pid), false, "a zombie is not a live holder")
    T.eq(sys.alive(sys.getpid()), true, "this process is alive")
    local parent = tonumber(T.read(d .. "/parent") or "")
    if parent then sys.kill(parent, 9) end
end)

T.done()
