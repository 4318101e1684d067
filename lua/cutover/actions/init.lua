-- actions: the registry.  Each action is one module in this folder that
-- returns a table:
--   summary, description   text for `cutover doc`
--   args = { NAME = { type=, required=, default=, choices=, doc= } }
--   free_form = "cmd"      a plain string value is this argument
--   any_args = true        keys are free (set_fact)
--   one_of = { {a, b} }    exactly one of these
--   returns = { NAME = doc }
--   check_mode = text      what --check does for this action
--   controller = true      runs on the controller, not the host
--   run(ctx, args) -> result table (see docs/architecture.md)
local M = {}

local NAMES = {
    "apt", "assert", "blockinfile", "command", "copy", "dcpromo", "debug", "fail", "fetch", "file", "gather_facts", "get_url", "group",
    "lineinfile",
    "mail_login", "package", "pause", "reboot",
    "service", "set_fact", "setup", "shell", "stat", "sysctl", "systemd", "template", "unarchive", "uri", "user", "wait_for",
    "wait_for_connection", "win_eventlog", "win_facts", "win_reboot", "win_rights",
    "win_service", "win_user_right",
}
local SET = {}
for _, n in ipairs(NAMES) do SET[n] = true end

function M.names() return NAMES end
function M.exists(name) return SET[name] == true end

local loaded = {}
function M.get(name)
    if not SET[name] then return nil end
    local a = loaded[name]
    if not a then
        a = require("cutover.actions." .. name)
        a.name = name
        loaded[name] = a
    end
    return a
end

return M
