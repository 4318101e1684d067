-- convert.ansible.module_map: the Ansible modules cutover converts, and
-- how their arguments map (read by module_args.lua).
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
local MODULES = {
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
MODULES.uri = { action = "uri",
                  args = { url = "url", method = "method", body = "body", body_format = "body_format",
                           headers = "headers", status_code = "status_code", return_content = "return_content",
                           timeout = "timeout", follow_redirects = "follow_redirects",
                           validate_certs = "validate_certs", ca_path = "ca_path",
                           url_username = "url_username", user = "url_username",
                           url_password = "url_password", password = "url_password",
                           force_basic_auth = "force_basic_auth" },
                  values = { body_format = { "raw", "json", "form-urlencoded" },
                             follow_redirects = { "safe", "all", "none", "yes", "no", true, false } } }
MODULES.get_url = { action = "get_url",
                      args = { url = "url", dest = "dest", checksum = "checksum", mode = "mode", owner = "owner",
                               group = "group", force = "force", timeout = "timeout", headers = "headers",
                               url_username = "url_username", username = "url_username",
                               url_password = "url_password", password = "url_password",
                               force_basic_auth = "force_basic_auth", validate_certs = "validate_certs",
                               ca_path = "ca_path" } }
MODULES.service = { action = "service", args = { use = "use" },
                      values = { state = MODULES.systemd.values.state, use = { "auto", "systemd", "sysvinit" } } }
for k, v in pairs(MODULES.systemd.args) do MODULES.service.args[k] = v end
MODULES.systemd_service = MODULES.systemd
MODULES.setup = { action = "setup", args = { gather_subset = "gather_subset" } }
MODULES.gather_facts = { action = "gather_facts", args = { gather_subset = "gather_subset" } }
for _, k in ipairs({ "owner", "group", "backup", "validate" }) do
    MODULES.copy.args[k] = k
    MODULES.template.args[k] = k
end
for _, k in ipairs({ "owner", "group", "src", "force", "recurse" }) do MODULES.file.args[k] = k end
MODULES.file.values.state = { "file", "directory", "absent", "touch", "link", "hard" }

return MODULES
