-- ssh_names: host and user names that could reach a shell are refused,
-- and a ProxyCommand's %-tokens expanded only with names that passed.
-- ssh_config gives these functions too (ssh_config.check_hostname, ...).
local util = require("cutover.util")

local M = {}

local function expand_tokens(s, t)
    return (s:gsub("%%(.)", function(c) return t[c] end))
end

-- Host and user names that could reach a shell.  A ProxyCommand runs
-- under /bin/sh with %h %n %r %p pasted in, so (as OpenSSH 9.6 does since
-- CVE-2023-51385) names carrying shell syntax are refused before any
-- token is expanded.  Host names: no quote, $ ` \ ; & < > | ( ) { },
-- blank or control character, and no leading '-' (it would read as an
-- option).  User names: the same, except that a blank is allowed when no
-- '-' follows it (Windows accounts have spaces) and a backslash when it
-- is not the last character (DOMAIN\user).
local HOST_BAD = "[%c%s'`\"%$\\;&<>|(){}]"
local USER_BAD = "[%c'`\"%$;&<>|(){}]"

local function unsafe(value, what, bad, blanks)
    local c = value:match(bad)
    local why
    if value == "" then
        why = "it is empty"
    elseif c then
        why = string.format("it contains %s, a shell metacharacter",
            c:match("%s") and "a blank" or c:match("%c") and string.format("the control character \\%d", c:byte())
            or ("'" .. c .. "'"))
    elseif value:sub(1, 1) == "-" then
        why = "it starts with '-', which a command would take for an option"
    elseif blanks and value:find("%s%-") then
        why = "a blank is followed by '-', which a command would take for an option"
    elseif blanks and value:sub(-1) == "\\" then
        why = "it ends with a backslash, a shell metacharacter"
    end
    if why then
        return nil, "refusing the " .. what .. " '" .. value .. "': " .. why ..
            " (a ProxyCommand would hand it to the shell; OpenSSH also refuses host and user names with shell " ..
                "metacharacters)"
    end
    return true
end

-- true | nil, message
function M.check_hostname(value) return unsafe(tostring(value), "host name", HOST_BAD, false) end
function M.check_user(value) return unsafe(tostring(value), "user name", USER_BAD, true) end

-- A port as given (a number or its text) -> integer | nil
function M.port_number(value)
    return (util.port_number("port", value))
end

-- A ProxyCommand for one host: its tokens expanded (host: after
-- HostName; name: the name looked up).  Returns the command | nil,
-- message when a value is unsafe to hand to the shell (checked here
-- too, so that no caller can expand an unchecked name).
function M.expand_proxy_command(command, host, port, user, name)
    local ok, err = M.check_hostname(host)
    if ok then ok, err = M.check_hostname(name) end
    if ok then ok, err = M.check_user(user) end
    if not ok then return nil, err end
    local p = M.port_number(port)
    if not p then return nil, "refusing the port '" .. tostring(port) .. "': it is not a number from 1 to 65535" end
    return expand_tokens(command, { h = host, p = tostring(p), r = tostring(user), n = name, ["%"] = "%" })
end

M.expand_tokens = expand_tokens

return M
