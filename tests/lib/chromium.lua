-- chromium: headless Chromium (Debian's `chromium` package) for tests
-- that render HTML.  Missing Chromium is a failure, not a skip: CI
-- installs it (scripts/deps.sh).
--   local C = dofile(tests_dir .. "/lib/chromium.lua")(T)
--   C.screenshot(html_path, png_path, width, height)   -> true or error
--   C.dump_dom(html_path)                              -> the DOM as text
local proc = require("cutover.core.proc")

return function(T)
    local C = {}

    local function binary()
        for _, p in ipairs({ "/usr/bin/chromium", "/usr/bin/chromium-browser" }) do
            if T.read(p) ~= nil or proc.run({ argv = { "test", "-x", p } }).rc == 0 then return p end
        end
        error("chromium is not installed: this test needs Debian's chromium package " ..
              "(scripts/deps.sh installs it)", 0)
    end

    local function run(extra, url)
        local argv = { binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                       "--no-first-run", "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--user-data-dir=" .. T.tmpdir() }
        for _, a in ipairs(extra) do argv[#argv + 1] = a end
        argv[#argv + 1] = url
        local r = assert(proc.run({ argv = argv, timeout = 90, env = { HOME = T.tmpdir(), PATH = "/usr/bin:/bin" } }))
        if r.rc ~= 0 then error("chromium failed (" .. r.rc .. "): " .. r.stderr:sub(1, 2000), 0) end
        return r
    end

    function C.screenshot(html, png, width, height)
        run({ "--screenshot=" .. png, "--window-size=" .. (width or 1280) .. "," .. (height or 900),
              "--hide-scrollbars" }, "file://" .. html)
        return true
    end

    function C.dump_dom(html)
        return run({ "--dump-dom" }, "file://" .. html).stdout
    end

    return C
end
