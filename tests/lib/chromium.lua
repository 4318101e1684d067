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

    -- A terminal screen (tmux capture-pane -e: text with SGR colour
    -- sequences) as an HTML page: dark background, monospace.
    local COLOURS = { ["31"] = "#e05561", ["32"] = "#8cc265", ["33"] = "#d18f52", ["34"] = "#4aa5f0",
                      ["35"] = "#c162de", ["36"] = "#42b3c2" }
    function C.terminal_html(screen, title)
        local out = { "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>", title or "terminal",
                      "</title><style>body{margin:0;background:#1e1f22}pre{margin:0;padding:12px;",
                      "font:14px/1.25 'DejaVu Sans Mono',monospace;color:#d7dae0}</style></head><body><pre>" }
        local open = 0
        local i = 1
        while i <= #screen do
            local a, b, codes = screen:find("^\27%[([%d;]*)m", i)
            if a then
                for _ = 1, open do out[#out + 1] = "</span>" end
                open = 0
                for code in (codes == "" and "0" or codes):gmatch("%d+") do
                    local style = code == "1" and "font-weight:bold" or code == "2" and "opacity:.6"
                        or COLOURS[code] and ("color:" .. COLOURS[code])
                    if style then
                        out[#out + 1] = '<span style="' .. style .. '">'
                        open = open + 1
                    end
                end
                i = b + 1
            else
                local c = screen:sub(i, i)
                out[#out + 1] = c == "<" and "&lt;" or c == ">" and "&gt;" or c == "&" and "&amp;" or
                                (c == "\27" and "" or c)
                i = i + 1
            end
        end
        for _ = 1, open do out[#out + 1] = "</span>" end
        out[#out + 1] = "</pre></body></html>"
        return table.concat(out)
    end

    return C
end
