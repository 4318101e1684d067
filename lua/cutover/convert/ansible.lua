-- convert.ansible: `cutover convert ansible PLAYBOOK [-o OUT]`.  Reads
-- an Ansible playbook with its roles, task files, vars files and
-- templates, and writes the cutover equivalent.  Whatever it cannot
-- convert faithfully is reported (FILE:LINE:COL: ...) and, when it would
-- change what a step does, replaced by a `fail:` step that carries the
-- original text: the result lints and never silently does something
-- else.  See docs/convert.md.
local yaml = require("cutover.core.yaml")
local fs = require("cutover.core.fs")
local util = require("cutover.util")
local source = require("cutover.load.source")
local jinja = require("cutover.convert.jinja")
local Y = require("cutover.convert.yaml_out")

local M = {}

M.EXIT_OK, M.EXIT_PARTIAL, M.EXIT_BAD = 0, 1, 2

-- The module map: one row per Ansible module cutover has an action for.
--   action      the cutover action
--   args        Ansible argument -> cutover argument
--   free        the argument a free-form string (`command: ls -l`) fills
--   free_keys   key=value words Ansible takes out of that free form
--   values      arguments whose values are limited to these
--   conditions  arguments that are Jinja conditions (bare expressions)
--   exprs       arguments that are bare Jinja expressions
--   lookup      the role folder a relative `src` is found in
--   any         every argument is a variable name (set_fact)
-- Adding an action later is one row.
M.MODULES = {
    command = { action = "command", free = "cmd", free_keys = { "chdir", "creates", "removes", "stdin" },
                args = { cmd = "cmd", argv = "argv", chdir = "chdir", creates = "creates",
                         removes = "removes", stdin = "stdin" } },
    shell = { action = "shell", free = "cmd", free_keys = { "chdir", "creates", "removes", "stdin" },
              args = { cmd = "cmd", chdir = "chdir", creates = "creates", removes = "removes", stdin = "stdin" } },
    copy = { action = "copy", lookup = "files",
             args = { src = "src", dest = "dest", content = "content", mode = "mode" } },
    template = { action = "template", lookup = "templates",
                 args = { src = "src", dest = "dest", mode = "mode" } },
    file = { action = "file", args = { path = "path", dest = "path", name = "path", state = "state", mode = "mode" },
             values = { state = { "file", "directory", "absent", "touch" } } },
    stat = { action = "stat", args = { path = "path", follow = "follow", get_checksum = "checksum" } },
    assert = { action = "assert", conditions = { that = true },
               args = { that = "that", fail_msg = "fail_msg", msg = "fail_msg", success_msg = "success_msg",
                   quiet = "quiet" } },
    set_fact = { action = "set_fact", any = true },
    debug = { action = "debug", exprs = { var = true }, args = { msg = "msg", var = "var" } },
    fail = { action = "fail", args = { msg = "msg" } },
    pause = { action = "pause", args = { prompt = "prompt" } },
    reboot = { action = "reboot", args = { reboot_timeout = "reboot_timeout", connect_timeout = "connect_timeout",
                                           pre_reboot_delay = "pre_reboot_delay",
                                               post_reboot_delay = "post_reboot_delay",
                                           reboot_command = "reboot_command", boot_time_command = "boot_id_command" } },
    wait_for = { action = "wait_for", args = { path = "path", port = "port", host = "host", state = "state",
                                               timeout = "timeout", delay = "delay", sleep = "sleep" },
                 values = { state = { "present", "absent", "started", "stopped" } } },
    wait_for_connection = { action = "wait_for_connection",
                            args = { timeout = "timeout", delay = "delay", sleep = "sleep",
                                connect_timeout = "connect_timeout" } },
    lineinfile = { action = "lineinfile",
                   args = { path = "path", dest = "path", name = "path", line = "line", value = "line",
                       regexp = "regexp",
                            search_string = "search_string", state = "state", insertafter = "insertafter",
                            insertbefore = "insertbefore", backrefs = "backrefs", create = "create", mode = "mode",
                            owner = "owner", group = "group", firstmatch = "firstmatch", backup = "backup",
                            validate = "validate" },
                   values = { state = { "present", "absent" } },
                   regex = { regexp = true, insertafter = "EOF", insertbefore = "BOF" } },
    blockinfile = { action = "blockinfile",
                    args = { path = "path", dest = "path", name = "path", block = "block", content = "block",
                             marker = "marker", marker_begin = "marker_begin", marker_end = "marker_end",
                             state = "state", insertafter = "insertafter", insertbefore = "insertbefore",
                             create = "create", mode = "mode", owner = "owner", group = "group", backup = "backup",
                             validate = "validate" },
                    values = { state = { "present", "absent" } },
                    regex = { insertafter = "EOF", insertbefore = "BOF" },
                    -- Ansible's marker, so a file it manages keeps its block
                    defaults = { marker = "# {mark} ANSIBLE MANAGED BLOCK" } },
    user = { action = "user", args = { name = "name", state = "state", uid = "uid", group = "group", groups = "groups",
                                       append = "append", shell = "shell", home = "home", create_home = "create_home",
                                       createhome = "create_home", system = "system", comment = "comment",
                                       password = "password", remove = "remove" },
             values = { state = { "present", "absent" } } },
    group = { action = "group", args = { name = "name", state = "state", gid = "gid", system = "system" },
              values = { state = { "present", "absent" } } },
    sysctl = { action = "sysctl", args = { name = "name", key = "name", value = "value", val = "value", state = "state",
                                           sysctl_file = "sysctl_file", reload = "reload",
                                               ignoreerrors = "ignoreerrors" },
               values = { state = { "present", "absent" } },
               -- Ansible's default file (cutover's own is /etc/sysctl.d/99-cutover.conf)
               defaults = { sysctl_file = "/etc/sysctl.conf" } },
    fetch = { action = "fetch", args = { src = "src", dest = "dest", flat = "flat",
        fail_on_missing = "fail_on_missing" } },
    unarchive = { action = "unarchive", args = { src = "src", dest = "dest", remote_src = "remote_src",
        creates = "creates",
                                                 extra_opts = "extra_opts" } },
    systemd = { action = "systemd", args = { name = "name", state = "state", enabled = "enabled", masked = "masked",
                                             daemon_reload = "daemon_reload" },
                values = { state = { "started", "stopped", "restarted", "reloaded" } } },
    apt = { action = "apt", args = { name = "name", pkg = "name", package = "name", state = "state",
                                     update_cache = "update_cache", ["update-cache"] = "update_cache",
                                     cache_valid_time = "cache_valid_time", upgrade = "upgrade",
                                     autoremove = "autoremove", purge = "purge", allow_downgrade = "allow_downgrade",
                                     allow_downgrades = "allow_downgrade", ["allow-downgrades"] = "allow_downgrade",
                                     allow_change_held_packages = "allow_change_held_packages",
                                     install_recommends = "install_recommends",
                                     ["install-recommends"] = "install_recommends", lock_timeout = "lock_timeout" },
            values = { state = { "present", "absent", "latest" } } },
    package = { action = "package", args = { name = "name", state = "state", use = "use" },
                values = { state = { "present", "absent", "latest" } } },
}
-- uri and get_url: the request is made on the host in both (Ansible's
-- `user`/`password` are aliases of url_username/url_password)
M.MODULES.uri = { action = "uri",
                  args = { url = "url", method = "method", body = "body", body_format = "body_format",
                           headers = "headers", status_code = "status_code", return_content = "return_content",
                           timeout = "timeout", follow_redirects = "follow_redirects",
                           validate_certs = "validate_certs", ca_path = "ca_path",
                           url_username = "url_username", user = "url_username",
                           url_password = "url_password", password = "url_password",
                           force_basic_auth = "force_basic_auth" },
                  values = { body_format = { "raw", "json", "form-urlencoded" },
                             follow_redirects = { "safe", "all", "none", "yes", "no", true, false } } }
M.MODULES.get_url = { action = "get_url",
                      args = { url = "url", dest = "dest", checksum = "checksum", mode = "mode", owner = "owner",
                               group = "group", force = "force", timeout = "timeout", headers = "headers",
                               url_username = "url_username", username = "url_username",
                               url_password = "url_password", password = "url_password",
                               force_basic_auth = "force_basic_auth", validate_certs = "validate_certs",
                               ca_path = "ca_path" } }
M.MODULES.service = { action = "service", args = { use = "use" },
                      values = { state = M.MODULES.systemd.values.state, use = { "auto", "systemd", "sysvinit" } } }
for k, v in pairs(M.MODULES.systemd.args) do M.MODULES.service.args[k] = v end
M.MODULES.systemd_service = M.MODULES.systemd
M.MODULES.setup = { action = "setup", args = { gather_subset = "gather_subset" } }
M.MODULES.gather_facts = { action = "gather_facts", args = { gather_subset = "gather_subset" } }
for _, k in ipairs({ "owner", "group", "backup", "validate" }) do
    M.MODULES.copy.args[k] = k
    M.MODULES.template.args[k] = k
end
for _, k in ipairs({ "owner", "group", "src", "force", "recurse" }) do M.MODULES.file.args[k] = k end
M.MODULES.file.values.state = { "file", "directory", "absent", "touch", "link", "hard" }

-- A Python regular expression as a Lua pattern, for the common subset
-- (anchors, classes \s \d \w, sets, . * + ?, plain groups); nil, why for
-- the rest (alternation, counted or lazy repeats, a repeated group, ...).
function M.regex_to_lua(re)
    local out, i, n = {}, 1, #re
    local CLASS = { s = "%s", S = "%S", d = "%d", D = "%D", w = "[%w_]", W = "[^%w_]" }
    local IN_SET = { s = "%s", S = "%S", d = "%d", D = "%D", w = "%w_" }
    local depth, last_was_group = 0, false
    while i <= n do
        local c = re:sub(i, i)
        local was_group = last_was_group
        last_was_group = false
        if c == "\\" then
            local e = re:sub(i + 1, i + 1)
            if CLASS[e] then out[#out + 1] = CLASS[e]
            elseif e:match("%p") then out[#out + 1] = "%" .. e
            else return nil, "the regular expression '\\" .. e .. "'" end
            i = i + 2
        elseif c == "[" then
            local j = i + 1
            local set = { "[" }
            if re:sub(j, j) == "^" then set[#set + 1] = "^"; j = j + 1 end
            if re:sub(j, j) == "]" then set[#set + 1] = "%]"; j = j + 1 end
            while j <= n and re:sub(j, j) ~= "]" do
                local d = re:sub(j, j)
                if d == "\\" then
                    local e = re:sub(j + 1, j + 1)
                    if IN_SET[e] then set[#set + 1] = IN_SET[e]
                    elseif e:match("%p") then set[#set + 1] = "%" .. e
                    else return nil, "the regular expression '\\" .. e .. "' in a set" end
                    j = j + 2
                else
                    if d == "%" then d = "%%" end
                    set[#set + 1] = d
                    j = j + 1
                end
            end
            if j > n then return nil, "an unclosed '['" end
            set[#set + 1] = "]"
            out[#out + 1] = table.concat(set)
            i = j + 1
        elseif c == "(" then
            if re:sub(i + 1, i + 1) == "?" then return nil, "a '(?' group" end
            depth = depth + 1
            out[#out + 1] = "("
            i = i + 1
        elseif c == ")" then
            depth = depth - 1
            if depth < 0 then return nil, "an unbalanced ')'" end
            out[#out + 1] = ")"
            last_was_group = true
            i = i + 1
        elseif c == "|" then
            return nil, "alternation '|'"
        elseif c == "{" and re:sub(i):match("^{%d*,?%d*}") then
            return nil, "a counted repeat '" .. re:sub(i):match("^{%d*,?%d*}") .. "'"
        elseif c == "*" or c == "+" or c == "?" then
            if was_group then return nil, "a repeated group" end
            if i == 1 then return nil, "a repeat with nothing before it" end
            if re:sub(i + 1, i + 1) == "?" then
                if c ~= "*" then return nil, "a lazy repeat '" .. c .. "?'" end
                out[#out + 1] = "-"
                i = i + 2
            else
                out[#out + 1] = c
                i = i + 1
            end
        elseif c == "^" then
            if i ~= 1 then return nil, "'^' inside the expression" end
            out[#out + 1] = "^"
            i = i + 1
        elseif c == "$" then
            if i ~= n then return nil, "'$' inside the expression" end
            out[#out + 1] = "$"
            i = i + 1
        elseif c == "%" or c == "-" then
            out[#out + 1] = "%" .. c
            i = i + 1
        else
            out[#out + 1] = c
            i = i + 1
        end
    end
    if depth ~= 0 then return nil, "an unclosed '('" end
    return table.concat(out)
end

-- Task keywords: how each one converts.
--   same       copied (strings translated)        cond   a condition
--   drop       left out and reported (display or privilege only)
--   special    handled in the code
local TASK_KEYWORDS = {
    name = "special", when = "cond", register = "same", notify = "same", ignore_errors = "same",
    changed_when = "cond", failed_when = "cond", ["until"] = "cond", retries = "same", delay = "same",
    vars = "special", tags = "same", no_log = "same", run_once = "same", delegate_to = "same",
    check_mode = "same", loop = "special", loop_control = "special", args = "special",
    become = "special", become_user = "special", become_method = "special", become_flags = "special",
    block = "special", rescue = "special", always = "special",
    diff = "drop", throttle = "drop", debugger = "drop", collections = "drop",
}
-- Keywords that change what a task does and have no cutover equivalent.
local BLOCKING_KEYWORDS = {
    environment = true, async = true, poll = true, delegate_facts = true, any_errors_fatal = true,
    connection = true, remote_user = true, port = true, timeout = true, ignore_unreachable = true,
    local_action = true, action = true, listen = true, module_defaults = true, vars_prompt = true,
}
local LOOP_PLUGINS = { with_items = true, with_list = true }

local PLAY_SAME = { "name", "hosts", "tags", "serial", "max_fail_percentage", "any_errors_fatal", "order" }

local function basename(p) return p:match("([^/]+)$") or p end
local function strip_fqcn(k)
    if type(k) ~= "string" then return k end
    return k:match("^ansible%.builtin%.(.+)$") or k:match("^ansible%.legacy%.(.+)$") or k
end

---------------------------------------------------------------- state

local C = {}
C.__index = C

local function bad(msg) error({ bad_input = msg }, 0) end

local function pattern_lines(text)
    local lines = {}
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    return lines
end

local function mkdir_p(dir)
    local path = dir:sub(1, 1) == "/" and "" or "."
    for part in dir:gmatch("[^/]+") do
        path = path .. "/" .. part
        if not fs.stat(path) then
            local ok, err = fs.mkdir(path, 493)
            if not ok and not fs.stat(path) then return nil, err end
        end
    end
    return true
end

function C:load(path, what)
    if self.sources[path] then return self.sources[path] end
    local src, err = source.read(path, what)
    if not src then bad(err) end
    self.sources[path] = src
    self.inputs[fs.realpath(path) or path] = true
    return src
end

-- FILE:LINE:COL of table t (or key k in it)
function C:at(src, t, k)
    local packed
    if k ~= nil and src.keypos[t] then packed = src.keypos[t][k] end
    packed = packed or src.pos[t]
    if not packed then return src.path end
    local line, col = yaml.unpack(packed)
    return string.format("%s:%d:%d", src.path, line, col), line, col
end

function C:report(where, msg)
    self.problems[#self.problems + 1] = where .. ": " .. msg
end

-- The original text of a mapping item of a sequence (a task): its first
-- line and every following line indented more than its dash.
function C:original_text(src, t)
    local _, line, col = self:at(src, t)
    if not line then return "" end
    src.lines = src.lines or pattern_lines(src.text)
    local lines = src.lines
    local out = { lines[line] }
    local dash = col - 2
    for i = line + 1, #lines do
        local l = lines[i]
        local indent = #(l:match("^ *"))
        if l:match("^%s*$") then out[#out + 1] = l
        elseif indent > dash then out[#out + 1] = l
        else break end
    end
    while #out > 1 and out[#out]:match("^%s*$") do out[#out] = nil end
    return table.concat(out, "\n")
end


-- Relative path of an input file below the playbook's folder (nil if
-- outside it: such a file is never written by the conversion).
-- a path with "." parts dropped and "x/.." folded ("." for nothing)
local function tidy(path)
    local parts = {}
    for p in path:gmatch("[^/]+") do
        if p == ".." and #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
        elseif p ~= "." then parts[#parts + 1] = p end
    end
    local s = table.concat(parts, "/")
    if path:sub(1, 1) == "/" then return "/" .. s end
    return s == "" and "." or s
end

function C:rel(path)
    local p, b = tidy(path), tidy(self.base)
    local r
    if b == "." then
        r = p
    elseif p:sub(1, #b + 1) == b .. "/" then
        r = p:sub(#b + 2)
    elseif b == "/" and p:sub(1, 1) == "/" then
        r = p:sub(2)
    end
    if not r or r == "." or r:sub(1, 1) == "/" or r == ".." or r:sub(1, 3) == "../" then return nil end
    return r
end

-- The key order of mapping t as written in src.
local function ordered_keys(src, t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    local kp = src.keypos[t] or {}
    table.sort(keys, function(a, b)
        local pa, pb = kp[a] or 0, kp[b] or 0
        if pa ~= pb then return pa < pb end
        return tostring(a) < tostring(b)
    end)
    return keys
end

local function is_map_value(src, t)
    if type(t) ~= "table" or t == yaml.null then return false end
    if next(t) ~= nil then return t[1] == nil end
    local packed = src.pos[t]
    if not packed then return false end
    local line, col = yaml.unpack(packed)
    src.lines = src.lines or pattern_lines(src.text)
    local l = src.lines[line] or ""
    return l:sub(col, col) == "{"
end

-- Jinja strings in a value translated.  Raises {convert = msg} for the
-- first part that cannot be; returns the ordered value.
function C:value(src, v)
    if type(v) == "string" then
        local out, err = jinja.text(v, self.jctx)
        if not out then error({ convert = err }, 0) end
        return out
    end
    if type(v) == "number" and math.type(v) == "float" then return v end
    if type(v) ~= "table" or v == yaml.null then return v end
    if is_map_value(src, v) then
        local m = Y.map()
        for _, k in ipairs(ordered_keys(src, v)) do m:put(k, self:value(src, v[k])) end
        return m
    end
    local l = {}
    for i, x in ipairs(v) do l[i] = self:value(src, x) end
    return l
end

-- Like value, but reports a problem (at `where`) instead of raising.
function C:try(fn, ...)
    local ok, out = pcall(fn, ...)
    if ok then return true, out end
    if type(out) == "table" and out.convert then return false, out.convert end
    error(out, 0)
end

-- A vars mapping: every value that converts is kept; one that does not
-- is left out and reported.
function C:vars(src, t, what)
    local m = Y.map()
    if t == nil or t == yaml.null then return m end
    if type(t) ~= "table" or not is_map_value(src, t) then bad(self:at(src, t) .. ": " .. (what or "vars") ..
        " must be a mapping") end
    for _, k in ipairs(ordered_keys(src, t)) do
        local v = t[k]
        if type(v) == "string" and v:match("^%$ANSIBLE_VAULT") or (type(v) == "table" and v.__ansible_vault) then
            self:report(self:at(src, t, k), "variable '" .. k ..
                "' is Ansible Vault data: left out (put it in cutover's vault)")
        else
            local ok, out = self:try(function() return self:value(src, v) end)
            if ok then m:put(k, out) else
                self:report(self:at(src, t, k), (what or "variable") .. " '" .. tostring(k) .. "': " .. out ..
                    ": left out")
            end
        end
    end
    return m
end

-- Names of variables whose every value in vars files and vars is a
-- boolean (for translating `when: flag` without a truthiness test).
function C:note_types(t)
    if type(t) ~= "table" then return end
    for k, v in pairs(t) do
        if type(k) == "string" then
            local b = type(v) == "boolean"
            if self.jctx.bools[k] == nil then self.jctx.bools[k] = b
            elseif not b then self.jctx.bools[k] = false end
        end
    end
end

---------------------------------------------------------------- steps

-- A step that fails with the original task: what replaces a task that
-- cannot be converted faithfully.
function C:fail_step(src, t, why, keep_name)
    local where = self:at(src, t)
    local text = self:original_text(src, t)
    local m = Y.map()
    local name = type(t) == "table" and type(t.name) == "string" and t.name or nil
    -- a handler keeps its name: the steps that notify it still lint
    m:put("name", jinja.literal(((keep_name and name) and "" or "NOT CONVERTED: ") .. (name or where)))
    self:claim_name(m)
    m:put("fail", Y.map():put("msg", jinja.literal("not converted from Ansible (" .. why .. "): " .. where ..
        "\n" .. text)))
    return m
end

-- A step name is its id: a name used twice in one output file gets an id.
function C:claim_name(m)
    local name = m:get("name")
    if type(name) ~= "string" then return end
    local ids = self.ids
    local slug = util.slug(name)
    if ids[slug] then
        local n = 2
        while ids[slug .. "-" .. n] do n = n + 1 end
        m:put("id", slug .. "-" .. n)
        ids[slug .. "-" .. n] = true
    else
        ids[slug] = true
    end
end

-- Words of a free form, split at white space outside quotes and {{ }}
-- (quotes are removed, as Ansible's parser does).
local function words(s)
    local out, cur, i, q, depth, any = {}, {}, 1, nil, 0, false
    while i <= #s do
        local c = s:sub(i, i)
        if q then
            if c == q then q = nil else cur[#cur + 1] = c end
        elseif s:sub(i, i + 1) == "{{" then
            depth = depth + 1; cur[#cur + 1] = "{{"; i = i + 1; any = true
        elseif s:sub(i, i + 1) == "}}" and depth > 0 then
            depth = depth - 1; cur[#cur + 1] = "}}"; i = i + 1
        elseif depth == 0 and (c == "'" or c == '"') then
            q = c; any = true
        elseif depth == 0 and c:match("%s") then
            if #cur > 0 or any then out[#out + 1] = table.concat(cur) end
            cur, any = {}, false
        else
            cur[#cur + 1] = c; any = true
        end
        i = i + 1
    end
    if q then return nil, "an unclosed quote in '" .. s .. "'" end
    if #cur > 0 or any then out[#out + 1] = table.concat(cur) end
    return out
end

-- Parses Ansible's key=value free form (`path=/x state=directory`).
local function kv_args(s)
    local ws, err = words(s)
    if not ws then return nil, err end
    local out, order = {}, {}
    for _, w in ipairs(ws) do
        local k, v = w:match("^([%a_][%w_]*)=(.*)$")
        if not k then return nil, "the free-form text '" .. s .. "'" end
        out[k] = v
        order[#order + 1] = k
    end
    return out, order
end

-- Takes creates=, chdir=... out of a command's free form.
local function split_free(s, keys)
    local extra = {}
    local set = {}
    for _, k in ipairs(keys) do set[k] = true end
    -- only words written as key=value (no quotes, {{ }} allowed) are taken
    local ws = words(s) or {}
    for _, w in ipairs(ws) do
        local k, v = w:match("^([%a_]+)=(.*)$")
        if k and set[k] then
            -- taken out of the command line when written there as is
            local piece = k .. "=" .. v
            local at = s:find(" " .. piece, 1, true)
            if at then
                extra[k] = v
                s = s:sub(1, at - 1) .. s:sub(at + 1 + #piece)
            elseif s:sub(1, #piece) == piece then
                extra[k] = v
                s = s:sub(#piece + 1):gsub("^%s+", "")
            end
        end
    end
    return s, extra
end

local function mode_text(v)
    if type(v) == "number" and math.type(v) == "integer" then return string.format("0%o", v) end
    if type(v) == "string" and v:match("^0?[0-7][0-7][0-7]$") then return #v == 3 and "0" .. v or v end
    return nil
end

function C:find_file(src_path, kind, ctx)
    -- where Ansible finds a relative src: the role's folder for the kind,
    -- then the playbook's, then beside the file
    if src_path:sub(1, 1) == "/" or src_path:find("{{", 1, true) then return nil end
    local dirs = {}
    if ctx.role_dir then dirs[#dirs + 1] = ctx.role_dir .. "/" .. kind; dirs[#dirs + 1] = ctx.role_dir end
    dirs[#dirs + 1] = self.base .. "/" .. kind
    dirs[#dirs + 1] = self.base
    for _, d in ipairs(dirs) do
        local p = d .. "/" .. src_path
        local st = fs.stat(p)
        if st then return p, st end
    end
end

-- The action part of a task: returns action name, args | raises convert.
function C:module(src, t, mkey, ctx)
    local row = M.MODULES[strip_fqcn(mkey)]
    local raw = t[mkey]
    if not row then error({ convert = "module '" .. tostring(mkey) .. "' has no cutover action" }, 0) end
    local given, free_order = {}, nil
    if type(raw) == "string" then
        if row.free then
            local text, extra = split_free(raw, row.free_keys or {})
            given[row.free] = text
            for k, v in pairs(extra) do given[k] = v end
        elseif row.any or row.args then
            local kv, korder = kv_args(raw)
            if not kv then error({ convert = korder }, 0) end
            given, free_order = kv, korder
        end
    elseif type(raw) == "table" and raw ~= yaml.null then
        if not is_map_value(src, raw) then error({ convert = "module arguments that are not a mapping" }, 0) end
        for k, v in pairs(raw) do given[k] = v end
    elseif raw ~= nil and raw ~= yaml.null then
        error({ convert = "module arguments that are not a mapping" }, 0)
    end
    if type(t.args) == "table" then for k, v in pairs(t.args) do given[k] = v end end
    local args = Y.map()
    if row.any then
        for _, k in ipairs(type(raw) == "table" and ordered_keys(src, raw) or free_order or util.sorted_keys(given)) do
            if k == "cacheable" then
                self:report(self:at(src, raw, k), "set_fact's 'cacheable': left out (cutover has no fact cache)")
            elseif type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
                error({ convert = "set_fact name '" .. tostring(k) .. "'" }, 0)
            else
                args:put(k, self:value(src, given[k]))
            end
        end
        return row.action, args
    end
    local order = type(raw) == "table" and ordered_keys(src, raw) or free_order
    if not order then
        order = { row.free }
        for _, k in ipairs(util.sorted_keys(given)) do if k ~= row.free then order[#order + 1] = k end end
    end
    if type(t.args) == "table" then for _, k in ipairs(ordered_keys(src, t.args)) do order[#order + 1] = k end end
    local seen = {}
    for _, k in ipairs(order) do
        if not seen[k] then
            seen[k] = true
            local v = given[k]
            local to = row.args[k]
            if mkey == "debug" and k == "verbosity" then
                self:report(self:at(src, raw, k), "debug's 'verbosity': left out (the message always shows)")
            elseif not to then
                error({ convert = "argument '" .. tostring(k) .. "' of " .. mkey .. " has no cutover equivalent" }, 0)
            elseif v == yaml.null then
                -- an explicit null is the default
            elseif to == "mode" then
                local m = mode_text(v)
                if not m then error({ convert = "mode '" .. tostring(v) .. "' (only octal modes convert)" }, 0) end
                args:put("mode", m)
            elseif row.regex and row.regex[k] and v ~= row.regex[k] then
                if type(v) ~= "string" or v:find("{{", 1, true) then
                    error({ convert = k .. " that is not a plain regular expression" }, 0)
                end
                local lua, why = M.regex_to_lua(v)
                if not lua then error({ convert = k .. " '" .. v .. "': " .. why ..
                    " has no Lua pattern equivalent" }, 0) end
                args:put(to, lua)
            elseif mkey:match("lineinfile$") and k == "line" and (given.backrefs == true or
                given.backrefs == "yes") then
                if type(v) ~= "string" or v:find("{{", 1, true) then
                    error({ convert = "a backrefs line with {{ }}" }, 0)
                end
                -- \1 and \g<1> become %1; a literal % is %%
                local line = v:gsub("%%", "%%%%"):gsub("\\g<(%d)>", "%%%1"):gsub("\\(%d)", "%%%1")
                args:put(to, line)
            elseif row.values and row.values[k] then
                local okv = false
                for _, x in ipairs(row.values[k]) do if x == v then okv = true end end
                if not okv then error({ convert = k .. "=" .. tostring(v) .. " of " .. mkey }, 0) end
                args:put(to, v)
            elseif row.conditions and row.conditions[k] then
                local list = type(v) == "table" and v or { v }
                local out = {}
                for i, c in ipairs(list) do
                    if type(c) == "boolean" then out[i] = c else
                        local lua, err = jinja.condition(tostring(c), self.jctx)
                        if not lua then error({ convert = err .. " in '" .. tostring(c) .. "'" }, 0) end
                        out[i] = lua
                    end
                end
                args:put(to, type(v) == "table" and out or out[1])
            elseif row.exprs and row.exprs[k] then
                local lua, err = jinja.expr(tostring(v), self.jctx)
                if not lua then error({ convert = err .. " in '" .. tostring(v) .. "'" }, 0) end
                args:put(to, lua)
            else
                args:put(to, self:value(src, v))
            end
        end
    end
    for k, v in pairs(row.defaults or {}) do
        if args:get(k) == nil then args:put(k, v) end
    end
    -- files: a relative src is looked up as Ansible does and converted
    if row.lookup and type(args:get("src")) == "string" then
        local s = args:get("src")
        local path, st = self:find_file(s, row.lookup, ctx)
        if not path then error({ convert = row.lookup:sub(1, -2) .. " source '" .. s ..
            "' not found or not a plain path" }, 0) end
        if st.type ~= "file" then error({ convert = "source '" .. s .. "' is a " .. st.type ..
            " (only single files convert)" }, 0) end
        local rel = self:file_out(path, row.action == "template")
        if not rel then error({ convert = "source '" .. s .. "' is outside the playbook's folder" }, 0) end
        -- cutover looks in a role's templates/ and files/ (then the
        -- role's folder) for a role step, else from the playbook's folder
        local rd = ctx.role_dir and (ctx.role_dir .. "/")
        if rd and path:sub(1, #rd) == rd then
            local inner = path:sub(#rd + 1)
            args:put("src", inner:match("^templates/(.+)$") or inner:match("^files/(.+)$") or inner)
        else
            args:put("src", rel)
        end
        local dest = args:get("dest")
        if type(dest) == "string" and dest:sub(-1) == "/" then args:put("dest", dest .. basename(s)) end
    end
    if mkey == "pause" then
        -- a gate name is unique in a playbook: a repeated one gets a number
        local gate = util.slug(type(t.name) == "string" and t.name or ("pause " .. select(2, self:at(src, t))))
        if self.gates[gate] then
            local n = 2
            while self.gates[gate .. "-" .. n] do n = n + 1 end
            gate = gate .. "-" .. n
        end
        self.gates[gate] = true
        local m = Y.map():put("gate", gate)
        if args:get("prompt") then m:put("prompt", args:get("prompt")) end
        args = m
    end
    return row.action, args
end

-- path (relative to the output root) as seen from folder dir (also
-- relative to the root)
function C:relative_to(path, dir)
    if dir == "" then return path end
    local a, b = {}, {}
    for p in path:gmatch("[^/]+") do a[#a + 1] = p end
    for p in dir:gmatch("[^/]+") do b[#b + 1] = p end
    local i = 1
    while i <= #a and i <= #b and a[i] == b[i] do i = i + 1 end
    local parts = {}
    for _ = i, #b do parts[#parts + 1] = ".." end
    for j = i, #a do parts[#parts + 1] = a[j] end
    return table.concat(parts, "/")
end

-- A file a step reads (copy src, template src): copied, or for a
-- template converted; returns its output path relative to the root.
function C:file_out(path, is_template)
    local rel = self:rel(path)
    if not rel then return nil end
    self.last_file = rel
    if self.files[rel] then return rel end
    local text, err = fs.read(path, source.MAX_BYTES)
    if not text then bad(err) end
    self.inputs[fs.realpath(path) or path] = true
    if is_template then
        local out, problems = jinja.template(text, self.jctx)
        -- kept apart: a failing step drops the reports made inside it
        for _, p in ipairs(problems) do
            self.late[#self.late + 1] = string.format("%s:%d:%d: template: %s", path, p.line, p.col, p.msg)
        end
        if #problems > 0 then
            -- the step that renders it fails instead (see step())
            self.bad_templates[rel] = true
            self.files[rel] = text
            return rel
        end
        self.files[rel] = out
    else
        self.files[rel] = { copy = path }
    end
    return rel
end

function C:has_template(v)
    if type(v) == "string" then return v:find("{{", 1, true) ~= nil end
    if type(v) == "table" then
        for _, x in pairs(v) do if self:has_template(x) then return true end end
    end
    return false
end

function C:loop(src, t, step)
    local lp = t.loop
    local plugin
    for k in pairs(t) do
        if type(k) == "string" and k:match("^with_") then
            if not LOOP_PLUGINS[k] then error({ convert = "'" .. k .. "' loops" }, 0) end
            if lp ~= nil then error({ convert = "two loops" }, 0) end
            lp, plugin = t[k], k
        end
    end
    if lp == nil then return end
    if type(lp) == "string" then
        local inner = lp:match("^%s*{{(.*)}}%s*$")
        if not inner or inner:find("{{", 1, true) then error({ convert =
            "a loop that is not one {{ }} expression" }, 0) end
        local lua, err = jinja.expr(inner, self.jctx)
        if not lua then error({ convert = err .. " in the loop" }, 0) end
        if plugin == "with_items" then lua = "flatten(" .. lua .. ", 1)" end
        step:put("loop", "{{ " .. lua .. " }}")
    elseif type(lp) == "table" and plugin == "with_items" and self:has_template(lp) then
        -- items that are lists after rendering are flattened too
        local parts = {}
        for i, x in ipairs(lp) do
            if type(x) == "string" then
                local inner = x:match("^{{(.*)}}$")
                if inner and not inner:find("{{", 1, true) then
                    local lua, err = jinja.expr(inner, self.jctx)
                    if not lua then error({ convert = err .. " in the loop" }, 0) end
                    parts[i] = lua
                elseif x:find("{{", 1, true) then
                    error({ convert = "a with_items item mixing text and {{ }}" }, 0)
                else
                    parts[i] = jinja.lua_string(x)
                end
            elseif type(x) == "number" or type(x) == "boolean" then
                parts[i] = tostring(x)
            else
                error({ convert = "with_items of mappings or lists beside {{ }} items" }, 0)
            end
        end
        step:put("loop", "{{ flatten({" .. table.concat(parts, ", ") .. "}, 1) }}")
    elseif type(lp) == "table" then
        local items = self:value(src, lp)
        if plugin == "with_items" then
            local flat = {}
            for _, x in ipairs(items) do
                if type(x) == "table" and not Y.is_map(x) then
                    for _, y in ipairs(x) do flat[#flat + 1] = y end
                else flat[#flat + 1] = x end
            end
            items = flat
        end
        step:put("loop", items)
    else
        error({ convert = "a loop over " .. type(lp) }, 0)
    end
    local lc = t.loop_control
    if type(lc) == "table" then
        for _, k in ipairs(ordered_keys(src, lc)) do
            if k == "loop_var" then step:put("loop_var", lc[k])
            elseif k == "label" then self:report(self:at(src, lc, k),
                "loop_control 'label': left out (output shows the item)")
            else error({ convert = "loop_control '" .. k .. "'" }, 0) end
        end
    end
end

local function cond_value(self, v)
    if type(v) == "boolean" then return v end
    if type(v) == "table" and v ~= yaml.null then
        local out = {}
        for i, c in ipairs(v) do out[i] = cond_value(self, c) end
        return out
    end
    local lua, err = jinja.condition(tostring(v), self.jctx)
    if not lua then error({ convert = err .. " in '" .. tostring(v) .. "'" }, 0) end
    return lua
end

-- become: the keywords carry over (docs/become.md); a method cutover does
-- not have makes the step fail.
function C:become(src, t, into)
    if t.become == nil and t.become_user == nil and t.become_method == nil and t.become_flags == nil then return end
    if t.become_method ~= nil and t.become_method ~= "sudo" and t.become_method ~= "su" then
        error({ convert = "become_method '" .. tostring(t.become_method) .. "' (cutover has sudo and su)" }, 0)
    end
    if t.become ~= nil then
        if type(t.become) == "boolean" then into:put("become", t.become)
        else into:put("become", cond_value(self, t.become)) end
    end
    for _, k in ipairs({ "become_user", "become_method", "become_flags" }) do
        if t[k] ~= nil then into:put(k, self:value(src, t[k])) end
    end
end

-- Converts one task (or block) into a step; a task that cannot be
-- converted becomes a fail step.
function C:step(src, t, ctx)
    if type(t) ~= "table" or t == yaml.null or not is_map_value(src, t) then
        bad(self:at(src, t) .. ": a task must be a mapping")
    end
    local mark = #self.problems
    local ok, out = self:try(function() return self:step_body(src, t, ctx) end)
    if ok then self:claim_name(out); return out end
    for i = #self.problems, mark + 1, -1 do self.problems[i] = nil end
    self:report(self:at(src, t), (type(t.name) == "string" and ("task '" .. t.name .. "': ") or "task: ") ..
        out .. ": the step fails instead")
    return self:fail_step(src, t, out, ctx.handler)
end

function C:step_body(src, t, ctx)
    local step = Y.map()
    local mkey
    for _, k in ipairs(ordered_keys(src, t)) do
        if type(k) ~= "string" then error({ convert = "a key that is not text" }, 0) end
        local kind = TASK_KEYWORDS[k]
        if kind == nil and not k:match("^with_") then
            if k == "listen" and ctx.handler then
                -- below
            elseif BLOCKING_KEYWORDS[k] then error({ convert = "'" .. k .. "'" }, 0)
            elseif mkey then error({ convert = "two modules ('" .. mkey .. "' and '" .. k .. "')" }, 0)
            else mkey = k end
        end
    end
    if t.name == nil and ctx.handler and t.listen ~= nil then
        -- a handler known only by its topic is named after it
        local topic = type(t.listen) == "table" and t.listen[1] or t.listen
        if type(topic) == "string" then step:put("name", topic) end
    end
    if type(t.name) == "table" then error({ convert = "a name that is not text" }, 0) end
    if t.name ~= nil then
        local ok, name = self:try(function() return self:value(src, t.name) end)
        if not ok then
            self:report(self:at(src, t, "name"), "name: " .. name .. ": kept as plain text")
            name = jinja.literal(tostring(t.name))
        end
        step:put("name", type(name) == "string" and name or tostring(name))
    end
    self:become(src, t, step)
    for _, k in ipairs(ordered_keys(src, t)) do
        if TASK_KEYWORDS[k] == "drop" then self:report(self:at(src, t, k), "'" .. k .. "': left out") end
    end
    if t.listen ~= nil then
        -- notify by topic becomes notify by the names of its handlers
        if not ctx.handler or type(step:get("name")) ~= "string" then error({ convert = "'listen'" }, 0) end
        for _, topic in ipairs(type(t.listen) == "table" and t.listen or { t.listen }) do
            self.listen[topic] = self.listen[topic] or {}
            table.insert(self.listen[topic], step:get("name"))
        end
    end
    local is_block = t.block ~= nil
    if is_block then
        if mkey then error({ convert = "a block with a module" }, 0) end
        for _, part in ipairs({ "block", "rescue", "always" }) do
            if t[part] ~= nil then step:put(part, self:steps(src, t[part], ctx, t, part)) end
        end
    elseif not mkey then
        error({ convert = "no module" }, 0)
    else
        local m = strip_fqcn(mkey)
        if m == "meta" then
            if t.meta ~= "flush_handlers" then error({ convert = "meta: " .. tostring(t.meta) }, 0) end
            step:put("meta", "flush_handlers")
        elseif m == "include_tasks" or m == "import_tasks" then
            self:include(src, t, mkey, m == "include_tasks" and "include_steps" or "import_steps", ctx, step)
        elseif m == "include_role" or m == "import_role" then
            local arg = t[mkey]
            local name = type(arg) == "table" and arg.name or arg
            if type(arg) == "table" then
                for k in pairs(arg) do if k ~= "name" then error({ convert = mkey .. " '" .. k .. "'" }, 0) end end
            end
            if type(name) ~= "string" or name:find("{{", 1, true) then error({ convert = mkey ..
                " without a plain name" }, 0) end
            self:role(name, src, t, mkey)
            step:put(m, name)
        else
            local action, args = self:module(src, t, mkey, ctx)
            if action == "template" and self.bad_templates[self.last_file] then
                error({ convert = "its template did not convert (see the template's lines above)" }, 0)
            end
            step:put(action, args)
        end
    end
    self:loop(src, t, step)
    for _, k in ipairs({ "when", "register", "notify", "ignore_errors", "changed_when", "failed_when", "until",
                         "retries", "delay", "tags", "no_log", "run_once", "delegate_to", "check_mode" }) do
        local v = t[k]
        if (k == "retries" or k == "delay") and v ~= nil and t["until"] == nil then
            -- without until Ansible does not retry; cutover refuses them
            self:report(self:at(src, t, k), "'" .. k .. "' without 'until': left out (Ansible ignores it)")
            v = nil
        end
        if v ~= nil and v ~= yaml.null then
            if TASK_KEYWORDS[k] == "cond" then
                step:put(k, cond_value(self, v))
            elseif k == "ignore_errors" and type(v) == "string" then
                step:put(k, cond_value(self, v))
            elseif k == "notify" then
                local names = {}
                for _, n in ipairs(type(v) == "table" and v or { v }) do
                    if type(n) ~= "string" then error({ convert =
                        "notify of something that is not a handler name" }, 0) end
                    if self.listen[n] then
                        for _, h in ipairs(self.listen[n]) do names[#names + 1] = h end
                    else
                        names[#names + 1] = self:value(src, n)
                    end
                end
                step:put(k, (#names == 1 and type(v) ~= "table") and names[1] or names)
            else
                step:put(k, self:value(src, v))
            end
        end
    end
    if t.vars ~= nil then
        local vars = self:value(src, t.vars)
        self:note_types(t.vars)
        step:put("vars", vars)
    end
    return step
end

function C:steps(src, list, ctx, parent, key)
    if list == nil or list == yaml.null then return {} end
    if type(list) ~= "table" or is_map_value(src, list) then
        bad((parent and self:at(src, parent, key) or self:at(src, list)) .. ": '" .. (key or "tasks") ..
            "' must be a list of tasks")
    end
    local out = {}
    for i, t in ipairs(list) do
        if type(t) ~= "table" then bad(self:at(src, list) .. ": item " .. i .. " of '" .. (key or "tasks") ..
            "' must be a task (a mapping)") end
        out[#out + 1] = self:step(src, t, ctx)
    end
    return out
end

-- A tasks file (include/import, a role's tasks/handlers): converted
-- once and written at the same path under the output folder.
function C:tasks_file(path, at, handler)
    local rel = self:rel(path)
    if not rel then error({ convert = "'" .. path .. "' is outside the playbook's folder" }, 0) end
    if self.files[rel] ~= nil then return rel end
    if not fs.stat(path) then bad(at .. ": file not found: " .. path) end
    self.files[rel] = false  -- in progress (a cycle ends here)
    local src = self:load(path, "tasks file")
    local saved = self.ids
    self.ids = {}
    local out_dir = rel:match("^(.*)/[^/]*$") or ""
    local ctx = { out_dir = out_dir, role_dir = path:match("^(.*/roles/[^/]+)/") or path:match("^(roles/[^/]+)/"),
                  handler = handler }
    local steps = self:steps(src, src.value, ctx)
    self.ids = saved
    self.files[rel] = Y.dump(steps, "# converted from Ansible by cutover convert ansible")
    return rel
end

function C:include(src, t, mkey, kind, ctx, step)
    local arg = t[mkey]
    local file = type(arg) == "table" and (arg.file or arg._raw_params) or arg
    if type(file) ~= "string" or file:find("{{", 1, true) then error({ convert = mkey ..
        " of a file name that is not written out" }, 0) end
    if type(arg) == "table" then
        for k in pairs(arg) do if k ~= "file" then error({ convert = mkey .. " '" .. k .. "'" }, 0) end end
    end
    local dir = src.path:match("^(.*)/[^/]*$") or "."
    local path = file:sub(1, 1) == "/" and file or util.join_path(dir, file)
    if ctx.role_dir and not fs.stat(path) then path = ctx.role_dir .. "/tasks/" .. file end
    local rel = self:tasks_file(path, self:at(src, t, mkey))
    step:put(kind, self:relative_to(rel, ctx.out_dir or ""))
end

-- A role: its folder converted once (tasks, handlers, defaults, vars,
-- meta dependencies, templates and files as its steps use them).
function C:role(name, src, t, key)
    if self.roles[name] then return end
    local dir = (src.path:match("^(.*)/[^/]*$") or ".")
    local found
    for _, d in ipairs({ dir .. "/roles/" .. name, self.base .. "/roles/" .. name }) do
        if fs.stat(d) then found = d; break end
    end
    if not found then bad(self:at(src, t, key) .. ": role '" .. name .. "' not found in " .. dir .. "/roles") end
    self.roles[name] = found
    local function yml(sub)
        for _, ext in ipairs({ "main.yml", "main.yaml" }) do
            local p = found .. "/" .. sub .. "/" .. ext
            if fs.stat(p) then return p end
        end
    end
    for _, sub in ipairs({ "defaults", "vars" }) do
        local p = yml(sub)
        if p then
            local vsrc = self:load(p, "vars file")
            self:note_types(vsrc.value)
            local rel = self:rel(p)
            if rel then self.files[rel] = Y.dump(self:vars(vsrc, vsrc.value),
                "# converted from Ansible by cutover convert ansible") end
        end
    end
    local meta = yml("meta")
    if meta then
        local msrc = self:load(meta, "role meta")
        local deps = type(msrc.value) == "table" and msrc.value.dependencies or nil
        local out = {}
        for _, d in ipairs(type(deps) == "table" and deps or {}) do
            local dname = type(d) == "table" and (d.role or d.name) or d
            if type(dname) ~= "string" then bad(self:at(msrc, d) .. ": a dependency without a role name") end
            self:role(dname, msrc, d)
            if type(d) == "table" and d.vars ~= nil then
                out[#out + 1] = Y.map():put("role", dname):put("vars", self:vars(msrc, d.vars))
            elseif type(d) == "table" then
                local vars = Y.map()
                for _, k in ipairs(ordered_keys(msrc, d)) do
                    if k ~= "role" and k ~= "name" then vars:put(k, self:value(msrc, d[k])) end
                end
                out[#out + 1] = #vars._keys > 0 and Y.map():put("role", dname):put("vars", vars) or dname
            else
                out[#out + 1] = dname
            end
        end
        local rel = self:rel(meta)
        if rel then self.files[rel] = Y.dump(Y.map():put("dependencies", out),
            "# converted from Ansible by cutover convert ansible") end
    end
    for _, sub in ipairs({ "handlers", "tasks" }) do
        local p = yml(sub)
        if p then self:tasks_file(p, self:at(src, t, key), sub == "handlers") end
    end
end

---------------------------------------------------------------- plays

function C:vars_file(path, at)
    local rel = self:rel(path)
    if not fs.stat(path) then bad(at .. ": vars file not found: " .. path) end
    local vsrc = self:load(path, "vars file")
    self:note_types(vsrc.value)
    if rel and self.files[rel] == nil then
        self.files[rel] = Y.dump(self:vars(vsrc, vsrc.value), "# converted from Ansible by cutover convert ansible")
    end
    return rel
end

-- import_playbook: the imported file converted too (once) -> the play
-- that imports it, or nil when it is left out
function C:import_playbook_play(src, p, out)
    local f = p.import_playbook
    if type(f) ~= "string" then bad(self:at(src, p, "import_playbook") .. ": import_playbook needs a file name") end
    if f:find("{{", 1, true) then
        self:report(self:at(src, p, "import_playbook"),
            "import_playbook of a file name that is not written out: left out")
        return nil
    end
    local dir = src.path:match("^(.*)/[^/]*$") or "."
    local path = util.join_path(dir, f)
    local rel = self:rel(path)
    if not rel then
        self:report(self:at(src, p, "import_playbook"), "import_playbook '" .. f ..
            "' is outside the playbook's folder: left out")
        return nil
    end
    if self.files[rel] == nil then
        if not fs.stat(path) then bad(self:at(src, p, "import_playbook") .. ": file not found: " .. path) end
        self.files[rel] = false
        self.files[rel] = self:playbook_text(path)
    end
    out:put("import_playbook", self:relative_to(rel, (src.path == self.path) and "" or
        (self:rel(src.path):match("^(.*)/") or "")))
    return out
end

-- A play's vars_files (first: their names' types help the translation),
-- vars and vars_prompt into out
function C:play_vars(src, p, out)
    local vfiles = {}
    for _, f in ipairs(type(p.vars_files) == "table" and p.vars_files or (p.vars_files and { p.vars_files } or {})) do
        if type(f) ~= "string" or f:find("{{", 1, true) then
            self:report(self:at(src, p, "vars_files"), "vars_files entry that is not a written-out file name: left out")
        else
            local path = util.join_path(src.path:match("^(.*)/[^/]*$") or ".", f)
            local rel = self:vars_file(path, self:at(src, p, "vars_files"))
            if rel then vfiles[#vfiles + 1] = rel
            else self:report(self:at(src, p, "vars_files"), "vars file '" .. f ..
                "' is outside the playbook's folder: left out") end
        end
    end
    if p.vars ~= nil then
        if type(p.vars) ~= "table" or not is_map_value(src, p.vars) then bad(self:at(src, p, "vars") ..
            ": vars must be a mapping") end
        out:put("vars", self:vars(src, p.vars))
    end
    if #vfiles > 0 then out:put("vars_files", vfiles) end
    if p.vars_prompt ~= nil then
        local list = {}
        for _, q in ipairs(type(p.vars_prompt) == "table" and p.vars_prompt or {}) do
            if type(q) ~= "table" or not is_map_value(src, q) then bad(self:at(src, p, "vars_prompt") ..
                ": a vars_prompt entry must be a mapping") end
            local m = Y.map()
            for _, k in ipairs(ordered_keys(src, q)) do
                if k == "name" or k == "prompt" or k == "private" or k == "default" then m:put(k, self:value(src, q[k]))
                else self:report(self:at(src, q, k), "vars_prompt '" .. k .. "': left out") end
            end
            list[#list + 1] = m
        end
        out:put("vars_prompt", list)
    end
end

-- Play keywords cutover does not have: { position, what } each
function C:play_blockers(src, p)
    local blockers = {}
    local conn = p.connection
    if conn ~= nil then
        local h = p.hosts
        if not (conn == "local" and (h == "localhost" or h == "127.0.0.1")) then
            blockers[#blockers + 1] = { self:at(src, p, "connection"), "connection: " .. tostring(conn) }
        end
    end
    for _, k in ipairs({ "environment", "remote_user", "strategy", "module_defaults", "port", "check_mode" }) do
        if p[k] ~= nil then
            blockers[#blockers + 1] = { self:at(src, p, k), "play '" .. k .. "'" }
        end
    end
    return blockers
end

-- A play's roles: the references for roles: (a name, or a map with
-- vars, tags, when), a failing step added to steps for a role whose when
-- does not convert -> the references, whether they must become
-- import_role steps
function C:play_roles(src, p, steps, roles_as_steps)
    local role_refs = {}
    for _, r in ipairs(type(p.roles) == "table" and p.roles or {}) do
        local name = type(r) == "table" and (r.role or r.name) or r
        if type(name) ~= "string" or name:find("{{", 1, true) then bad(self:at(src, r) ..
            ": a role without a plain name") end
        self:role(name, src, type(r) == "table" and r or p, type(r) == "table" and "role" or "roles")
        local ref, skip = name, false
        if type(r) == "table" then
            local m = Y.map():put("role", name)
            local vars = Y.map()
            for _, k in ipairs(ordered_keys(src, r)) do
                if k == "vars" then
                    local rv = self:vars(src, r.vars)
                    for _, vk in ipairs(rv._keys) do vars:put(vk, rv:get(vk)) end
                elseif k == "tags" then m:put("tags", self:value(src, r.tags))
                elseif k == "when" then
                    -- an import_role step may carry when (roles: may not)
                    local ok, c = self:try(function() return cond_value(self, r.when) end)
                    roles_as_steps = true
                    if ok then m:put("when", c) else
                        self:report(self:at(src, r, k), "role '" .. name .. "': " .. c .. ": the step fails instead")
                        steps[#steps + 1] = self:fail_step(src, r, c)
                        skip = true
                    end
                elseif k ~= "role" and k ~= "name" then vars:put(k, self:value(src, r[k])) end
            end
            if #vars._keys > 0 then m:put("vars", vars) end
            if m._keys[2] then ref = m end
        end
        if not skip then role_refs[#role_refs + 1] = ref end
    end
    return role_refs, roles_as_steps
end

-- The play's steps: pre_tasks, roles, tasks, post_tasks, with the handler
-- flushes Ansible does between them, into out (steps, roles, handlers)
function C:play_steps(src, p, out, steps, role_refs, roles_as_steps)
    local ctx = { out_dir = "" }
    local handlers = self:steps(src, p.handlers, { out_dir = "", handler = true }, p, "handlers")
    local pre = self:steps(src, p.pre_tasks, ctx, p, "pre_tasks")
    local tasks = self:steps(src, p.tasks, ctx, p, "tasks")
    local post = self:steps(src, p.post_tasks, ctx, p, "post_tasks")
    for _, s in ipairs(pre) do steps[#steps + 1] = s end
    if #pre > 0 then steps[#steps + 1] = Y.map():put("meta", "flush_handlers") end
    if #pre > 0 or roles_as_steps then
        for _, ref in ipairs(role_refs) do
            local m = Y.map()
            if type(ref) == "string" then m:put("import_role", ref) else
                m:put("import_role", ref:get("role"))
                for _, k in ipairs({ "vars", "tags", "when" }) do
                    if ref:get(k) ~= nil then m:put(k, ref:get(k)) end
                end
            end
            steps[#steps + 1] = m
        end
        role_refs = {}
    end
    for _, s in ipairs(tasks) do steps[#steps + 1] = s end
    if #post > 0 then
        steps[#steps + 1] = Y.map():put("meta", "flush_handlers")
        for _, s in ipairs(post) do steps[#steps + 1] = s end
    end
    if #role_refs > 0 then out:put("roles", role_refs) end
    out:put("steps", steps)
    if #handlers > 0 then out:put("handlers", handlers) end
end

local PLAY_KNOWN = { hosts = 1, name = 1, tags = 1, serial = 1, max_fail_percentage = 1, any_errors_fatal = 1,
                     order = 1, vars = 1, vars_files = 1, vars_prompt = 1, roles = 1, tasks = 1, pre_tasks = 1,
                     post_tasks = 1, handlers = 1, gather_facts = 1, become = 1, become_user = 1,
                     become_method = 1, become_flags = 1, connection = 1, environment = 1, remote_user = 1,
                     strategy = 1, module_defaults = 1, port = 1, collections = 1, fact_path = 1,
                     gather_subset = 1, gather_timeout = 1, no_log = 1, check_mode = 1, diff = 1 }

-- Play keywords left out, reported
function C:unknown_play_keys(src, p)
    for _, k in ipairs(ordered_keys(src, p)) do
        if not PLAY_KNOWN[k] then
            self:report(self:at(src, p, k), "play keyword '" .. tostring(k) .. "': left out")
        elseif k == "collections" or k == "fact_path" or k == "gather_subset" or k == "gather_timeout"
            or k == "no_log" or k == "diff" then
            self:report(self:at(src, p, k), "play keyword '" .. k .. "': left out")
        end
    end
end

function C:play(src, p, index)
    if type(p) ~= "table" or not is_map_value(src, p) then
        bad(self:at(src, type(p) == "table" and p or src.value) .. ": play " .. index .. " must be a mapping")
    end
    local out = Y.map()
    if p.import_playbook ~= nil then return self:import_playbook_play(src, p, out) end
    for _, k in ipairs(PLAY_SAME) do
        if p[k] ~= nil then out:put(k, self:value(src, p[k])) end
    end
    if out:get("hosts") == nil then bad(self:at(src, p) .. ": play without hosts") end
    self:note_types(p.vars)
    self:play_vars(src, p, out)
    -- play keywords cutover does not have
    self:become(src, p, out)
    local blockers = self:play_blockers(src, p)
    local steps = {}
    for _, b in ipairs(blockers) do
        self:report(b[1], b[2] .. ": not converted: the play fails at its start instead")
        local m = Y.map():put("name", jinja.literal("NOT CONVERTED: " .. b[2]))
        self:claim_name(m)
        m:put("fail", Y.map():put("msg", jinja.literal("not converted from Ansible: " .. b[1] .. ": " .. b[2])))
        steps[#steps + 1] = m
    end
    -- Ansible applies roles after pre_tasks; cutover's roles: run before
    -- the steps, so roles become import_role steps when something must
    -- come first (pre_tasks, a blocker's fail step) or a role has when
    local role_refs, roles_as_steps = self:play_roles(src, p, steps, #steps > 0)
    self:play_steps(src, p, out, steps, role_refs, roles_as_steps)
    self:unknown_play_keys(src, p)
    return out
end

function C:playbook_text(path)
    local src = self:load(path, "playbook")
    if type(src.value) ~= "table" or is_map_value(src, src.value) or #src.value == 0 then
        bad(path .. ": a playbook must be a list of plays")
    end
    local saved = self.ids
    self.ids = {}
    local plays = {}
    for i, p in ipairs(src.value) do
        local out = self:play(src, p, i)
        if out then plays[#plays + 1] = out end
    end
    self.ids = saved
    return Y.dump(plays, "# converted from Ansible by cutover convert ansible")
end

---------------------------------------------------------------- entry

local function absolute(path)
    if path:sub(1, 1) == "/" then return path end
    local cwd = os.getenv("PWD") or "."
    return cwd .. "/" .. path
end

local function normalize(path)
    local parts = {}
    for p in path:gmatch("[^/]+") do
        if p == ".." then parts[#parts] = nil elseif p ~= "." then parts[#parts + 1] = p end
    end
    return "/" .. table.concat(parts, "/")
end

-- Converts `path`; returns { playbook = text, files = {rel -> text |
-- {copy = path}}, problems = {...} } or nil, error (bad input).
function M.convert(path)
    local c = setmetatable({
        path = path, base = path:match("^(.*)/[^/]*$") or ".", sources = {}, files = {}, problems = {},
        ids = {}, roles = {}, bad_templates = {}, jctx = { bools = {} }, listen = {}, late = {}, inputs = {},
            gates = {},
    }, C)
    if c.base == "" then c.base = "/" end
    local ok, out = pcall(function() return c:playbook_text(path) end)
    if not ok then
        if type(out) == "table" and out.bad_input then return nil, out.bad_input end
        error(out, 0)
    end
    for _, p in ipairs(c.late) do c.problems[#c.problems + 1] = p end
    -- by file, then line and column
    local function key(p)
        local f, l, col = p:match("^(.-):(%d+):(%d+): ")
        if not f then return p, 0, 0 end
        return f, tonumber(l), tonumber(col)
    end
    table.sort(c.problems, function(a, b)
        local fa, la, ca = key(a)
        local fb, lb, cb = key(b)
        if fa ~= fb then return fa < fb end
        if la ~= lb then return la < lb end
        if ca ~= cb then return ca < cb end
        return a < b
    end)
    return { playbook = out, files = c.files, problems = c.problems, inputs = c.inputs }
end

-- The command: returns the exit code.
function M.main(book, out_path)
    local st = fs.stat(book)
    if not st then io.stderr:write("cutover: " .. book ..
        ": cannot read the playbook (no such file)\n"); return M.EXIT_BAD end
    if st.type ~= "file" then io.stderr:write("cutover: " .. book .. ": not a file\n"); return M.EXIT_BAD end
    local in_dir = normalize(absolute(book)):match("^(.*)/[^/]*$")
    in_dir = fs.realpath(in_dir) or in_dir
    if out_path then
        local out_dir = normalize(absolute(out_path)):match("^(.*)/[^/]*$")
        out_dir = fs.realpath(out_dir) or out_dir
        if out_dir == in_dir then
            io.stderr:write("cutover: " .. out_path ..
                ": write the conversion to another folder than the playbook's (" ..
                in_dir .. "): it would overwrite the Ansible files\n")
            return M.EXIT_BAD
        end
    end
    local r, err = M.convert(book)
    if not r then io.stderr:write("cutover: " .. err .. "\n"); return M.EXIT_BAD end
    local extra = 0
    for _, content in pairs(r.files) do
        if content then extra = extra + 1 end
    end
    if out_path then
        local out_dir = out_path:match("^(.*)/[^/]*$") or "."
        -- never write over a file the conversion read (OUT inside the
        -- Ansible tree, a symlink into it)
        local targets = { out_path }
        for rel, content in pairs(r.files) do if content then targets[#targets + 1] = out_dir .. "/" .. rel end end
        for _, target in ipairs(targets) do
            local real = fs.stat(target) and fs.realpath(target)
            if real and r.inputs[real] then
                io.stderr:write("cutover: " .. target .. ": would overwrite " .. real ..
                    ", a file of the Ansible playbook: write the conversion to another folder\n")
                return M.EXIT_BAD
            end
        end
        local okm, merr = mkdir_p(out_dir)
        if not okm then io.stderr:write("cutover: " .. merr .. "\n"); return M.EXIT_BAD end
        local okw, werr = fs.write(out_path, r.playbook)
        if not okw then io.stderr:write("cutover: " .. werr .. "\n"); return M.EXIT_BAD end
        for _, rel in ipairs(util.sorted_keys(r.files)) do
            local content = r.files[rel]
            if content then
                local target = out_dir .. "/" .. rel
                local tdir = target:match("^(.*)/[^/]*$")
                local okd, derr = mkdir_p(tdir)
                if not okd then io.stderr:write("cutover: " .. derr .. "\n"); return M.EXIT_BAD end
                if type(content) == "table" then
                    local data, rerr = fs.read(content.copy, source.MAX_BYTES)
                    if not data then io.stderr:write("cutover: " .. rerr .. "\n"); return M.EXIT_BAD end
                    content = data
                end
                local okf, ferr = fs.write(target, content)
                if not okf then io.stderr:write("cutover: " .. ferr .. "\n"); return M.EXIT_BAD end
            end
        end
    else
        io.stdout:write(r.playbook)
        if extra > 0 then
            io.stderr:write(string.format("cutover: note: %d more file%s (roles, task files, vars files, " ..
                "templates) are written only with -o OUT\n",
                extra, extra == 1 and "" or "s"))
        end
    end
    for _, p in ipairs(r.problems) do io.stderr:write(p, "\n") end
    if #r.problems > 0 then
        io.stderr:write(string.format("%d construct%s not converted (see docs/convert.md)\n", #r.problems,
            #r.problems == 1 and "" or "s"))
        return M.EXIT_PARTIAL
    end
    return M.EXIT_OK
end

return M
