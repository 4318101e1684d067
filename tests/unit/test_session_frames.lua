-- Unit (issue 13, review M7): the persistent session's reply frames are
-- checked against the cap the request carried.  A stream longer than
-- that cap and one byte (the byte that tells a cut stream) is a protocol
-- error, handled by the fallback rules, never a raised Lua error; a cap
-- larger than one reply can carry is sent as that limit; text that looks
-- like a marker but lacks the session's token is output like any other.
-- A scripted channel stands in for the remote shell and for sh:recv_until
-- in core/ssh/shell.c (the frames are what is tested here;
-- tests/ssh/test_session.lua runs the real ones).
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local session = require("cutover.connection.session")

-- A channel whose output is the scripted text (%s: the session's token,
-- once the bootstrap has sent it); it records what was sent.
local function fake(script)
    local sh = { sent = {}, token = nil, closed = false, buf = nil }
    function sh:send(data)
        self.sent[#self.sent + 1] = data
        if not self.token then
            self.token = data:match("__cutover_session (%x+)")
            if self.token then self.buf = script:gsub("%%s", self.token) end
        end
        return true
    end
    function sh:recv_line()
        local nl = self.buf and self.buf:find("\n", 1, true)
        if not nl then return nil, "no more", "eof" end
        local line = self.buf:sub(1, nl - 1)
        self.buf = self.buf:sub(nl + 1)
        return line
    end
    -- as shell.c: the bytes before marker, at most opts.max of them
    function sh:recv_until(marker, opts)
        assert(type(opts) == "table" and math.type(opts.max) == "integer", "opts.max is an integer")
        local at = self.buf:find(marker, 1, true)
        if at and at - 1 <= opts.max then
            local data = self.buf:sub(1, at - 1)
            self.buf = self.buf:sub(at + #marker)
            return data
        end
        if #self.buf > opts.max + #marker or at then
            return nil, "h1: the remote shell's reply runs past its cap", "protocol"
        end
        return nil, "no more", "eof"
    end
    function sh:poll() return true end
    function sh:stderr() return "" end
    function sh:close() self.closed = true end
    local sess = { shell = function() return sh end }
    return sess, sh
end

local function step(script, cap)
    local sess, sh = fake(script)
    local r = assert(session.open(sess, "h1", 5))
    assert(r:send("echo hi", "", cap))
    local pid = r:started({})
    local ok, res, err, code = pcall(r.result, r, {})
    return ok, res, err, code, sh, pid, r
end

local HEAD = "%s K 1\n%s P 7\n"

T.test("a reply within the cap is taken", function()
    local ok, res, err, _, _, pid = step(HEAD .. "%s R 3\nhi\n\n%s O\nwarn\n%s E\n", 1000)
    T.ok(ok, "no error raised: " .. tostring(res))
    T.ok(res, "a result: " .. tostring(err))
    T.eq(pid, 7, "the step's pid")
    T.eq(res and res.rc, 3, "exit status")
    T.eq(res and res.stdout, "hi\n", "stdout")
    T.eq(res and res.stderr, "warn", "stderr (no newline of its own)")
    T.eq(res and res.stdout_truncated, false, "stdout whole")
    -- empty streams
    ok, res = step(HEAD .. "%s R 0\n\n%s O\n\n%s E\n", 1000)
    T.eq(res and res.stdout, "", "empty stdout")
    T.eq(res and res.stderr, "", "empty stderr")
end)

T.test("a step that wrote nothing is one line: Z and its status", function()
    local ok, res, err, _, sh = step(HEAD .. "%s Z 4\n%s K 2\n", 1000)
    T.ok(ok and res, "a result: " .. tostring(err))
    T.eq(res and res.rc, 4, "exit status")
    T.eq(res and res.stdout, "", "empty stdout")
    T.eq(res and res.stderr, "", "empty stderr")
    T.eq(res and res.stdout_truncated, false, "stdout whole")
    T.eq(res and res.stderr_truncated, false, "stderr whole")
    T.eq(sh.buf, sh.token .. " K 2\n", "nothing after the Z line was taken")
    -- a Z line that is not one, or another session's
    ok, res, err = step(HEAD .. "%s Z 0 hi\n", 1000)
    T.ok(ok and res == nil and err, "a Z line with more than the status is refused")
    ok, res, err = step(HEAD .. "0123456789abcdef01234567 Z 0\n", 1000)
    T.ok(ok and res == nil, "a Z line without the session's token is refused: " .. tostring(err))
    -- Z where P is due is not taken as a start
    local sess = fake((HEAD:gsub(" P 7", " Z 0")))
    local r = assert(session.open(sess, "h1", 5))
    assert(r:send("true", "", 10))
    local pid, perr = r:started({})
    T.eq(pid, nil, "no start from a Z line: " .. tostring(perr))
end)

T.test("a step's duration includes its output's transfer", function()
    local loop = require("cutover.core.loop")
    local sess, sh = fake(HEAD .. "%s R 0\nhi\n%s O\n\n%s E\n")
    local take = sh.recv_until
    function sh:recv_until(marker, opts)
        local t = loop.now()
        while loop.now() - t < 0.05 do end   -- each stream takes 50 ms to come
        return take(self, marker, opts)
    end
    local r = assert(session.open(sess, "h1", 5))
    assert(r:send("echo hi", "", 1000))
    assert(r:started({}))
    local res = assert(r:result({}, loop.now()))
    T.eq(res.stdout, "hi", "stdout")
    T.ok(res.duration >= 0.1, "the two streams' 100 ms are in the duration: " .. res.duration)
end)

T.test("a stream of cap+1 bytes is cut at the cap and said to be", function()
    local ok, res, err = step(HEAD .. "%s R 0\n" .. string.rep("x", 11) .. "\n%s O\n" .. string.rep("y", 10) ..
        "\n%s E\n", 10)
    T.ok(ok and res, "a result: " .. tostring(err))
    T.eq(res and res.stdout, string.rep("x", 10), "stdout cut at the cap")
    T.eq(res and res.stdout_truncated, true, "stdout cut")
    T.eq(res and res.stderr, string.rep("y", 10), "stderr at the cap is whole")
    T.eq(res and res.stderr_truncated, false, "stderr not cut")
end)

T.test("text like a marker without the session's token is output", function()
    -- markers with another token, a status line with the session's own,
    -- and its marker without the newline that ends one
    local printed = "\n0123456789abcdef01234567 O\n\nT E\n%s R 9\n%s Ox"
    local ok, res, err, _, sh = step(HEAD .. "%s R 0\n" .. printed .. "\n%s O\n\n%s E\n", 1000)
    T.ok(ok and res, "a result: " .. tostring(err))
    T.eq(res and res.rc, 0, "the real status")
    T.eq(res and res.stdout, (printed:gsub("%%s", sh.token)), "stdout as printed")
end)

T.test("M7: a reply past the cap, or one that lost its place, is a protocol error, not a raised error", function()
    local big = string.rep("x", 5000)
    local ok, res, err, code, _, _, r = step(HEAD .. "%s R 0\n" .. big .. "\n%s O\n\n%s E\n", 1000)
    T.ok(ok, "no Lua error raised: " .. tostring(res))
    T.eq(res, nil, "no result from a reply past the cap")
    T.eq(code, "protocol", "code: " .. tostring(err))
    T.contains(tostring(err), "h1", "the message names the host")
    T.eq(r.dead, true, "the session is given up")
    -- a status line that is not one
    ok, res, err, code = step(HEAD .. "%s R 0 12 0 12 0\nhello world\n%s E\n", 1000)
    T.ok(ok, "no Lua error raised: " .. tostring(res))
    T.eq(code, "protocol", "an R line with more than the status: " .. tostring(err))
    -- another frame where R is due
    ok, res, err, code = step(HEAD .. "%s E\n", 1000)
    T.ok(ok, "no Lua error raised: " .. tostring(res))
    T.eq(code, "protocol", "E where R is due: " .. tostring(err))
    -- a cap past what one reply can carry (--max-output 1G): it is sent
    -- as that limit, so recv_until is never asked for more
    local sh
    ok, res, err, code, sh = step(HEAD .. "%s R 0\nok\n%s O\n\n%s E\n", 2 ^ 30)
    T.ok(ok and res, "a result: " .. tostring(err))
    local cap = tonumber(sh.sent[2]:match("^X %d+ %d+ (%d+)\n"))
    T.ok(cap and cap <= session.MAX_CAP, "the cap sent is at most what a reply can carry: " .. tostring(cap))
end)

T.done()
