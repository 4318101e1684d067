-- Unit (issue 13, review M7): the persistent session's reply frames are
-- checked against the cap the request carried.  A reply claiming more
-- bytes than that cap (or than the stream's size) is a protocol error,
-- handled by the fallback rules, never a raised Lua error; a cap larger
-- than one reply can carry is sent as that limit.  A scripted channel
-- stands in for the remote shell (the frames themselves are what is
-- tested; tests/ssh/test_session.lua runs the real one).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local session = require("cutover.connection.session")

-- A channel whose replies are scripted lines (%s: the session's token)
-- and byte strings; it records what was sent.
local function fake(replies)
    local sh = { sent = {}, token = nil, closed = false }
    local q = {}
    for _, r in ipairs(replies) do q[#q + 1] = r end
    function sh:send(data)
        self.sent[#self.sent + 1] = data
        self.token = self.token or data:match("__cutover_session (%x+)")
        return true
    end
    function sh:recv_line()
        local r = table.remove(q, 1)
        if not r then return nil, "no more", "eof" end
        return (r:gsub("%%s", self.token))
    end
    function sh:recv(n)
        if n == 0 then return "" end
        local r = table.remove(q, 1)
        if not r then return nil, "no more", "eof" end
        assert(#r == n, "the test script holds " .. #r .. " bytes, the runner asked for " .. n)
        return r
    end
    function sh:poll() return true end
    function sh:stderr() return "" end
    function sh:close() self.closed = true end
    local sess = { shell = function() return sh end }
    return sess, sh
end

local function step(replies, cap)
    local sess, sh = fake(replies)
    local r = assert(session.open(sess, "h1", 5))
    assert(r:send("echo hi", "", cap))
    local pid = r:started({})
    local ok, res, err, code = pcall(r.result, r, {})
    return ok, res, err, code, sh, pid
end

T.test("a reply within the cap is taken", function()
    local ok, res, err = step({ "%s K 1", "%s P 7", "%s R 0 3 0 3 0", "hi\n", "%s E" }, 1000)
    T.ok(ok, "no error raised: " .. tostring(res))
    T.ok(res, "a result: " .. tostring(err))
    T.eq(res and res.stdout, "hi\n", "stdout")
end)

T.test("M7: a reply whose sizes pass the cap is a protocol error, not a raised error", function()
    local big = string.rep("x", 5000)
    local ok, res, err, code, sh = step({ "%s K 1", "%s P 7", "%s R 0 5000 0 5000 0", big, "%s E" }, 1000)
    T.ok(ok, "no Lua error raised: " .. tostring(res))
    T.eq(res, nil, "no result from a reply past the cap")
    T.eq(code, "protocol", "code: " .. tostring(err))
    T.contains(tostring(err), "h1", "the message names the host")
    -- sent more than the stream held
    ok, res, err, code = step({ "%s K 1", "%s P 7", "%s R 0 2 0 3 0", "abc", "%s E" }, 1000)
    T.ok(ok, "no Lua error raised: " .. tostring(res))
    T.eq(code, "protocol", "more sent than the stream's size: " .. tostring(err))
    -- a cap past what one reply can carry (--max-output 1G): the size a
    -- reply claims is still checked, and never reaches sh:recv as an
    -- out-of-range count
    ok, res, err, code, sh = step({ "%s K 1", "%s P 7", "%s R 0 300000000 0 300000000 0", "%s E" }, 2 ^ 30)
    T.ok(ok, "no Lua error raised: " .. tostring(res))
    T.eq(code, "protocol", "300 MB claimed under a 1 GiB cap: " .. tostring(err))
    local cap = tonumber(sh.sent[2]:match("^X %d+ %d+ (%d+)\n"))
    T.ok(cap and cap <= session.MAX_CAP, "the cap sent is at most what a reply can carry: " .. tostring(cap))
end)

T.done()
