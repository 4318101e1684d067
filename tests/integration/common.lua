-- common: helpers shared by the integration tests (loaded with dofile;
-- not a test itself: ctest only globs test_*.lua).
--   local H = dofile(tests_dir .. "/integration/common.lua")(T)
local fs = require("cutover.core.fs")

return function(T)
    local H = {}

    -- Writes a playbook, with "@T@" replaced by dir (for paths inside).
    function H.book(dir, text, name)
        local path = dir .. "/" .. (name or "p.yml")
        T.write(path, (text:gsub("@T@", dir)))
        return path
    end

    -- A copy of list a with more items at the end.
    function H.plus(a, ...)
        local out = {}
        for _, x in ipairs(a) do out[#out + 1] = x end
        for _, x in ipairs({ ... }) do out[#out + 1] = x end
        return out
    end

    -- Runs with --format json; returns r, events, host_result events.
    function H.run_json(args, opts)
        local a = {}
        for _, x in ipairs(args) do a[#a + 1] = x end
        a[#a + 1] = "--format"
        a[#a + 1] = "json"
        local r = T.run(a, opts)
        local ok, events = pcall(T.events, r.stdout)
        if not ok then
            error("output is not JSON lines: " .. tostring(events) ..
                  "\nstdout: " .. r.stdout .. "\nstderr: " .. r.stderr, 2)
        end
        local results = {}
        for _, e in ipairs(events) do
            if e.event == "host_result" then results[#results + 1] = e end
        end
        return r, events, results
    end

    -- host_result events by "host step [item]" (or "step [item]" when
    -- one host); the last one wins.
    function H.by_key(results, with_host)
        local out = {}
        for _, e in ipairs(results) do
            local k = e.step
            if e.item then k = k .. " [" .. e.item .. "]" end
            if with_host then k = e.host .. " " .. k end
            out[k] = e
        end
        return out
    end

    -- key -> status
    function H.statuses(results, with_host)
        local out = {}
        for k, e in pairs(H.by_key(results, with_host)) do out[k] = e.status end
        return out
    end

    -- Asserts that the statuses are exactly `want` (no more, no fewer).
    function H.expect_statuses(results, want, what, with_host)
        local got = H.statuses(results, with_host)
        for k, v in pairs(want) do
            T.eq(got[k], v, (what or "status") .. " of " .. k)
        end
        for k, v in pairs(got) do
            if want[k] == nil then
                error((what or "status") .. ": unexpected result " .. k .. " = " .. v, 2)
            end
        end
    end

    -- The check run predicted the real run: a step changed in check is
    -- changed for real; a step changed for real was changed or unknown in
    -- check; a step ok/skipped in check is the same for real.  Returns
    -- the number of steps compared.
    function H.check_predicts(check_results, real_results, what)
        local c = H.by_key(check_results, true)
        local r = H.by_key(real_results, true)
        local n = 0
        for k, ce in pairs(c) do
            local re = r[k]
            if ce.status ~= "unknown" then
                T.ok(re ~= nil, (what or "") .. " step " .. k .. " ran in check but not for real")
                if ce.status == "changed" or ce.status == "ok" or ce.status == "skipped" then
                    T.eq(re.status, ce.status, (what or "") .. " real status of " .. k ..
                         " (check said " .. ce.status .. ")")
                end
            end
            n = n + 1
        end
        for k, re in pairs(r) do
            if re.changed then
                local ce = c[k]
                T.ok(ce ~= nil and (ce.changed or ce.status == "unknown"),
                     (what or "") .. " step " .. k .. " changed for real but check said " ..
                     tostring(ce and ce.status))
            end
        end
        return n
    end

    -- Each case {step text, message}: a playbook whose one step (id sN,
    -- then the text) must be refused by `cutover lint` with exit 2, naming
    -- the file, the line (4 unless given) and the step, and saying why.
    function H.lint_refuses(dir, cases, line)
        for i, c in ipairs(cases) do
            local book = H.book(dir, "- hosts: localhost\n  steps:\n    - id: s" .. i .. "\n      " .. c[1] .. "\n",
                                "lint-" .. i .. ".yml")
            local r = T.run({ "lint", book })
            T.eq(r.rc, 2, c[1] .. ": exit")
            T.contains(r.stderr, book .. ":" .. (line or 4) .. ":", c[1] .. ": names file and line")
            T.contains(r.stderr, "step 's" .. i .. "'", c[1] .. ": names the step")
            T.contains(r.stderr, c[2], c[1] .. ": says why")
        end
    end

    function H.count(results, status)
        local n = 0
        for _, e in ipairs(results) do if e.status == status then n = n + 1 end end
        return n
    end

    function H.exists(path) return fs.stat(path) ~= nil end

    function H.mode(path)
        local st = fs.stat(path)
        return st and string.format("%04o", st.mode)
    end

    -- A TCP listener on 127.0.0.1 (perl, in the background).  Returns
    -- port, stop().
    function H.listener(dir)
        local pf = dir .. "/.port"
        local r = T.sh("perl -MIO::Socket::INET -e '" ..
            "my $s = IO::Socket::INET->new(Listen => 5, LocalAddr => " ..
            "\"127.0.0.1\", LocalPort => 0, ReuseAddr => 1) or die $!; " ..
            "open(my $f, \">\", \"$ARGV[0].tmp\") or die; print $f $s->sockport; " ..
            "close $f; rename(\"$ARGV[0].tmp\", $ARGV[0]); " ..
            "while (1) { my $c = $s->accept; close $c if $c }' " ..
            pf .. " >/dev/null 2>&1 & echo $!")
        local pid = tonumber(r.stdout:match("%d+"))
        T.ok(pid, "listener started")
        local port
        for _ = 1, 100 do
            local s = fs.read(pf)
            if s and s:match("^%d+$") then port = tonumber(s); break end
            T.sh("sleep 0.05")
        end
        T.ok(port, "listener port")
        fs.remove(pf)
        return port, function() T.sh("kill " .. pid .. " 2>/dev/null") end
    end

    -- A TCP port on 127.0.0.1 that nothing listens on (bound, then freed).
    function H.closed_port()
        local r = T.sh("perl -MIO::Socket::INET -e '" ..
            "my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => " ..
            "\"127.0.0.1\", LocalPort => 0) or die $!; print $s->sockport'")
        return assert(tonumber(r.stdout))
    end

    return H
end
