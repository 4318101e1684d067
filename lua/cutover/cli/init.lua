-- cli: the command line.  Parses arguments, loads the playbook and
-- inventory, and hands over to the runner.  Returns the exit code.
local yaml = require("cutover.core.yaml")
local playbook = require("cutover.load.playbook")
local source = require("cutover.load.source")
local lint = require("cutover.lint")
local inventory = require("cutover.inventory")
local actions = require("cutover.actions")
local runner = require("cutover.runner")
local docs = require("cutover.docs")
local util = require("cutover.util")
local redact = require("cutover.secrets.redact")

local M = {}

M.VERSION = "0.1.0"

local EXIT_CODES = [[
Exit codes:
  0    every host ok
  1    one or more hosts failed or were unreachable
  2    invalid input or usage; nothing ran
  3    the run was refused as a whole for safety
  4    parked at an approval gate, no host failed
  70   internal error in cutover
  130  interrupted (Ctrl-C or SIGTERM)]]

local HELP = {
    history = [[
usage: cutover history [--journal FILE] [--format text|json] [-n N]

Lists the runs recorded in the journal, newest first.]],
    show = [[
usage: cutover show RUN [--journal FILE] [--format text|json]

A run's timeline: each host's steps with status, duration and notes, and
the run's events (resumes, approvals, steps marked done).]],
    resume = [[
usage: cutover resume [RUN] [--mark-done STEP|STEP@HOST]... [--retry STEP|STEP@HOST]...
                      [--accept-changed] [--journal FILE] [--format text|json] [-v]

Continues RUN (default: the latest unfinished run) with the variables,
registered results and options it had.  Steps done before are not run
again; hosts that finished are not touched.  A step that was in flight
when the controller died runs again only when it is idempotent; otherwise
its host stops and says what to check, and you decide:
  --mark-done STEP   it took effect: record it as done and go on (also for
                     a step that failed after taking effect)
  --retry STEP       it did not: run it again
STEP alone decides for every host where it was in flight or failed;
STEP@HOST for one host; STEP[INDEX]@HOST for the item of a loop that was
in flight (the items it finished are not run again).  An unknown step,
host or item, a decision that decides nothing, or one given to both
options is refused (exit 2).
A finished step whose definition changed since the run is refused
(exit 3) unless --accept-changed; so is a change to the run's playbook,
inventory or a file a step read (the journal holds their absolute paths
and sha256, so resume reads the same files from any folder).

Gates: --approve GATE (every host parked there), --approve GATE@HOST,
--answer GATE=VALUE, --answer-stdin GATE (the value is read from stdin:
use it for secrets), --non-interactive (park again instead of asking).
--report FILE.html writes the run's report when the resume ends.]],
    report = [[
usage: cutover report RUN -o FILE.html [--format html|json] [--journal FILE]

Writes a run of the journal as one self-contained HTML file: the summary,
a timeline (hosts down, time across, one bar per step), each host's steps
with results, durations, output heads and diffs (from runs with --diff),
gate approvals, and the hosts that failed or never started.  It loads
nothing (no fetch; one inline filter script, allowed by its hash);
secrets are masked.  -o - writes to stdout.]],
    unlock = [[
usage: cutover unlock HOST [--journal FILE]

Breaks the lock a run left on HOST, after checking that the controller
that held it is gone.]],
    abort = [[
usage: cutover abort RUN [--journal FILE]

Ends a parked, failed or interrupted run for good and unlocks its hosts.]],
    main = [[
usage: cutover COMMAND [OPTIONS]

Ordered, auditable change on servers: YAML playbooks, exact dry runs.

Commands:
  run PLAYBOOK       run a playbook (add --check for a dry run)
  lint PLAYBOOK      load and validate a playbook; run nothing
  modules            list the actions a step can use
  doc ACTION         an action's arguments, results and check-mode behaviour
  history            the runs recorded in the journal
  show RUN           a run's timeline, host by host
  report RUN -o FILE a run as one self-contained HTML file (or --format json)
  resume [RUN]       continue an unfinished run
  unlock HOST        break a lock whose controller is gone
  abort RUN          end an unfinished run for good
  inventory          show an inventory: --list (JSON), --graph, --host HOST
  vault              secrets for playbooks: set NAME, list, rm NAME
  plan PLAYBOOK      dry run saved as a plan file (-o FILE) to review and apply
  show-plan FILE     a saved plan, host by host, with its diffs
  apply FILE         run a saved plan; stale hosts and changed inputs are refused
  convert ansible PLAYBOOK [-o OUT]   an Ansible playbook as a cutover one

Options:
  -h, --help         help (also: cutover COMMAND --help)
  --version          print the version

]] .. EXIT_CODES,
    run = [[
usage: cutover run PLAYBOOK [OPTIONS]

Runs PLAYBOOK's plays on the hosts they name.

Options:
  -i, --inventory FILE     inventory: YAML or INI file, a folder of them, or a
                           host list "h1,h2,"; default: localhost
  -e, --extra-vars NAME=VALUE | @FILE.yml | {yaml}
                           variables with the highest precedence (repeatable)
  -C, --check              dry run: change nothing, report what would change
  -D, --diff               show file diffs and before/after state
  -l, --limit PATTERN      only these hosts (groups, names, globs, !exclude, &and;
                           @FILE: one per line)
  -t, --tags TAGS          only steps with one of these tags (comma-separated)
      --skip-tags TAGS     leave out steps with these tags
      --start-at STEP      start at this step (its id or name)
      --format text|json   output: human text (default) or JSON events
  -f, --forks N            at most N hosts at once (default 50)
  -k, --ask-pass           ask once for the SSH password (no echo), used for
                           hosts without ansible_password
  -b, --become             run steps as another user (sudo; see docs/become.md)
      --become-user USER   that user (default root)
  -K, --ask-become-pass    ask once for the sudo password (no echo), used for
                           hosts without ansible_become_password
      --vault FILE         the secrets vault {{ secret.NAME }} reads (default
                           $CUTOVER_VAULT, else $XDG_DATA_HOME/cutover/vault)
      --max-output SIZE    cap on each command's stdout and stderr (default
                           8M); what goes past it is read and dropped
      --approve GATE[@HOST] approve a gate in advance (repeatable)
      --answer GATE=VALUE  answer a gate that asks for a value
      --answer-stdin GATE  read a (secret) answer from stdin, never from arguments
      --non-interactive    never ask: hosts park at gates (exit 4 when waiting)
      --journal FILE       the run journal (default
                           $XDG_STATE_HOME/cutover/journal.db)
      --no-journal         record nothing (no resume, no host locks)
      --report FILE.html   at the end, write the run's report (cutover report)
  -v, --verbose            more output (stdout of commands); repeatable
      --known-hosts FILE   known_hosts file for SSH hosts (default ~/.ssh/known_hosts)
      --accept-new-host-keys
                           trust and record the key of a host known_hosts has
                           no line for (a changed key is always refused)
  -F, --ssh-config FILE    OpenSSH client config (default ~/.ssh/config if it exists)
  -h, --help               this help

]] .. EXIT_CODES,
    lint = [[
usage: cutover lint PLAYBOOK [-i INVENTORY] [-e NAME=VALUE | -e @FILE.yml]

Loads and validates PLAYBOOK (and INVENTORY) as `run` would, reporting
every problem as FILE:LINE:COL: message.  Runs nothing.  With an
inventory it also checks that every play's hosts pattern matches a host
and that every variable an expression reads is defined somewhere (play,
block or step vars, vars_prompt, register, set_fact, loop variables, the
inventory, -e), with "did you mean" for a near name.  Exit 0 when valid,
2 otherwise.]],
    modules = [[
usage: cutover modules

Lists the actions a step can use, with a one-line summary each.]],
    inventory = [[
usage: cutover inventory [-i INVENTORY] --list
       cutover inventory [-i INVENTORY] --graph [GROUP]
       cutover inventory [-i INVENTORY] --host HOST

Loads INVENTORY as `run` would (YAML or INI file, folder, host list
"h1,h2,", with group_vars/ and host_vars/) and shows it:
  --list        JSON as ansible-inventory --list: _meta.hostvars, and each
                group's hosts, vars and children
  --graph       the group tree (from GROUP, default all)
  --host HOST   one host's variables as JSON
Without -i: localhost.  Exit 2 on an invalid inventory.]],
    convert = [[
usage: cutover convert ansible PLAYBOOK [-o OUT]

Converts an Ansible playbook, with its roles, task files, vars files and
templates, to cutover.  With -o the playbook is written to OUT and the
other files beside it (OUT's folder must not be the playbook's); without
it the playbook is printed.  Every construct that could not be converted
is listed on stderr as FILE:LINE:COL: what; a task that could not be is
a `fail:` step holding its original text.  Exit 0 when everything
converted, 1 when something did not, 2 for bad input (unreadable file,
invalid YAML).  See docs/convert.md.]],
    vault = [[
usage: cutover vault set NAME [--vault FILE]
       cutover vault list [--vault FILE]
       cutover vault rm NAME [--vault FILE]

The secrets playbooks read as {{ secret.NAME }}, encrypted at rest
(Argon2id, XChaCha20-Poly1305; see docs/security.md).
  set NAME    store a value: asked without echo on a terminal, else read
              from stdin (one trailing newline dropped); creates the vault
  list        the names, never the values
  rm NAME     remove one
NAME: letters, digits and _, not starting with a digit.  The vault:
--vault FILE, else $CUTOVER_VAULT, else $XDG_DATA_HOME/cutover/vault.
The passphrase: the first line of the file $CUTOVER_VAULT_PASSWORD_FILE
names, else asked on the terminal (twice for a new vault).
Exit 0 done, 1 wrong vault passphrase or a damaged or unwritable vault,
2 usage (or nothing to ask the passphrase on).]],
    plan = [[
usage: cutover plan PLAYBOOK [-i INVENTORY] [-e ...] [--limit PATTERN]
                    [--tags T] [--skip-tags T] [-o FILE] [--format text|json]

Runs PLAYBOOK in check mode (with diffs) and writes a plan: per host, each
step's predicted status and diff, and digests of what the predictions rest
on (the playbook, the inventory with its group_vars and host_vars, the
extra vars, the files steps read, each host's predicted results).  Steps
after a host's first result that check mode cannot know are decided at
apply time.  Secret values are masked; the vault is never stored.
  -o, --output FILE   the plan file (default: PLAYBOOK's name + .plan.json,
                      in the current folder; written 0600)
Other options as for `run` (-i, -e, --limit, --tags, --skip-tags, --vault,
--forks, -k, --known-hosts, -F, --journal, --no-journal, -v).
Exit codes as the check run's; no plan is written after exit 2, 3 or 130.
See docs/plans.md.]],
    ["show-plan"] = [[
usage: cutover show-plan FILE [--format text|json]

Renders a saved plan for review: its inputs, then per host the steps with
their predicted status and diffs, and the steps decided at apply time.
--format json prints the plan file as it is.]],
    apply = [[
usage: cutover apply FILE [--format text|json] [-v] [-D] [-e ...]

Runs a saved plan with the plan's inventory, extra vars and options.
Refuses the whole plan (exit 3, nothing run) when the playbook, the
inventory or its vars, the extra vars, a file a step read, or the options
(--limit/--tags/--skip-tags given here) changed since planning.  Then
runs check mode again, quietly: a host whose predictions changed is
refused as stale (naming the first step whose prediction changed), and
the playbook runs for real on the other hosts, to its end.
Exit: the real run's code when it is not 0; else 3 when a host was
refused as stale; else 0.
  -e                  extra vars (default: the plan's -e arguments; needed
                      when the plan masked a secret value in them)
Other options as for `run` (--vault, -k, --forks, --known-hosts, -F,
--journal, --no-journal, --approve, --answer, --non-interactive).
See docs/plans.md.]],
    doc = [[
usage: cutover doc ACTION [--format text|markdown]
       cutover doc --all [--format text|markdown]

Shows an action's arguments, return values and check-mode behaviour.]],
}

local function usage_error(msg, cmd)
    io.stderr:write("cutover: " .. redact.text(msg) .. "\n")
    io.stderr:write("Try 'cutover " .. (cmd and cmd .. " " or "") .. "--help'.\n")
    return runner.EXIT_USAGE
end

-- Option specs: name -> { short, takes_value, repeat }
local RUN_OPTS = {
    inventory = { "i", true }, ["extra-vars"] = { "e", true, true },
    check = { "C" }, diff = { "D" }, limit = { "l", true }, tags = { "t", true, true },
    ["skip-tags"] = { nil, true, true }, ["start-at"] = { nil, true },
    format = { nil, true }, verbose = { "v", false, true }, help = { "h" },
    ["accept-new-host-keys"] = {}, ["known-hosts"] = { nil, true },
    ["ssh-config"] = { "F", true },
    forks = { "f", true },
    ["ask-pass"] = { "k" }, vault = { nil, true },
    become = { "b" }, ["become-user"] = { nil, true }, ["ask-become-pass"] = { "K" },
    ["max-output"] = { nil, true },
    journal = { nil, true }, ["no-journal"] = {},
    approve = { nil, true, true }, answer = { nil, true, true },
    ["answer-stdin"] = { nil, true, true }, ["non-interactive"] = {},
    vault = { nil, true }, report = { nil, true },
}
local LINT_OPTS = { inventory = { "i", true }, ["extra-vars"] = { "e", true, true }, help = { "h" } }
local INVENTORY_OPTS = { inventory = { "i", true }, list = {}, graph = {}, host = { nil, true }, help = { "h" } }
local DOC_OPTS = { all = {}, format = { nil, true }, help = { "h" } }
local NO_OPTS = { help = { "h" } }

-- Returns options, positional args | nil, message
local function parse(args, spec)
    local opts, pos = {}, {}
    local short = {}
    for name, s in pairs(spec) do if s[1] then short[s[1]] = name end end
    local i = 1
    local function put(name, value)
        local s = spec[name]
        if s[3] then
            opts[name] = opts[name] or {}
            table.insert(opts[name], value)
        else
            opts[name] = value
        end
    end
    while i <= #args do
        local a = args[i]
        if a == "--" then
            for j = i + 1, #args do pos[#pos + 1] = args[j] end
            break
        elseif a:sub(1, 2) == "--" then
            local name, value = a:match("^%-%-([^=]+)=(.*)$")
            name = name or a:sub(3)
            local s = spec[name]
            if not s then
                local names = util.sorted_keys(spec)
                for k, n in ipairs(names) do names[k] = "--" .. n end
                return nil, "unknown option '--" .. name .. "'" .. util.did_you_mean("--" .. name, names)
            end
            if s[2] then
                if value == nil then
                    i = i + 1
                    value = args[i]
                    if value == nil then return nil, "option '--" .. name .. "' needs a value" end
                end
                put(name, value)
            else
                if value ~= nil then return nil, "option '--" .. name .. "' takes no value" end
                put(name, true)
            end
        elseif a:sub(1, 1) == "-" and #a > 1 then
            local j = 2
            while j <= #a do
                local c = a:sub(j, j)
                local name = short[c]
                if not name then return nil, "unknown option '-" .. c .. "'" end
                if spec[name][2] then
                    local value = a:sub(j + 1)
                    if value == "" then
                        i = i + 1
                        value = args[i]
                        if value == nil then return nil, "option '-" .. c .. "' needs a value" end
                    end
                    put(name, value)
                    break
                else
                    put(name, true)
                end
                j = j + 1
            end
        else
            pos[#pos + 1] = a
        end
        i = i + 1
    end
    return opts, pos
end

local function print_errors(errs)
    for _, e in ipairs(errs) do io.stderr:write(redact.text(e), "\n") end
end

-- Where the values of a parsed -e table came from (weak keys): the
-- names set by an -e @FILE (the way to pass a secret: they are kept in
-- the journal only sealed or masked) and those files, absolute.
local ev_origin = setmetatable({}, { __mode = "k" })

-- -e values: NAME=VALUE (text), @FILE (YAML mapping), or inline YAML/JSON.
local function extra_vars(list)
    local out = {}
    local from_file, files = {}, {}
    for _, e in ipairs(list or {}) do
        local t
        local is_file = e:sub(1, 1) == "@"
        if is_file then
            local src, err = source.read(e:sub(2), "extra vars file")
            if not src then return nil, err end
            t = src.value
            if type(t) ~= "table" or (next(t) ~= nil and util.is_list(t)) then
                return nil, e:sub(2) .. ": extra vars must be a mapping of names to values"
            end
        elseif e:match("^%s*{") then
            local v, err = yaml.load(e, "-e")
            if v == nil then return nil, err end
            if type(v) ~= "table" then return nil, "-e: expected a mapping" end
            t = v
        else
            local name, value = e:match("^([%a_][%w_]*)=(.*)$")
            if not name then
                return nil, "-e '" .. e .. "': expected NAME=VALUE, @FILE.yml or a {mapping}"
            end
            t = { [name] = value }
        end
        if is_file then
            local ok, abs = pcall(require("cutover.core.fs").realpath, e:sub(2))
            files[#files + 1] = ok and abs or e:sub(2)
        end
        for k, v in pairs(t) do
            out[k] = v
            from_file[k] = is_file or nil
        end
    end
    ev_origin[out] = { from_file = from_file, files = files }
    return out
end

local function split_set(list)
    if not list then return nil end
    local set = {}
    for _, item in ipairs(list) do
        for t in item:gmatch("[^,]+") do set[util.trim(t)] = true end
    end
    return set
end

local function load_inventory(path)
    if not path then return inventory.localhost() end
    local inv, err = inventory.load(path)
    if not inv then return nil, err end
    return inv
end

-- Options of `run` that decide what a run does; they are recorded in the
-- journal so that `resume` continues with the same ones.
local RECORDED = { "inventory", "limit", "tags", "skip-tags", "forks", "known-hosts", "become", "become-user",
                   "accept-new-host-keys", "ssh-config", "max-output", "check", "diff", "vault" }

local function file_digest(path)
    if not path then return nil end
    local ok, d = pcall(require("cutover.core.fs").sha256, path)
    return ok and d or nil
end

-- An existing file or folder as an absolute path (the journal records
-- these, so `resume` from another folder reads the same files); anything
-- else (a host list given to -i) as given.
local function absolute(path)
    if type(path) ~= "string" then return path end
    local ok, p = pcall(require("cutover.core.fs").realpath, path)
    return ok and p or path
end
M.absolute = absolute

-- The inventory's digest: its file's sha256, or for a folder (or a file
-- with group_vars/host_vars) one over every file it was built from.
local function inventory_digest(path, inv)
    local files = inv and inv.files_read or {}
    if #files == 0 then return nil end
    if #files == 1 and absolute(files[1]) == absolute(path) then return file_digest(path) end
    -- by absolute path: a resume from another folder gives the same
    local abs = {}
    for i, f in ipairs(files) do abs[i] = absolute(f) end
    return (require("cutover.plan").files_digest(abs))
end
M.inventory_digest = inventory_digest

-- Loads what a run needs from parsed options o and the playbook path.
-- Returns book, inventory, runner options | nil, exit code.
local function prepare_run(o, book_path, ev)
    local book, errs = playbook.load(book_path)
    if not book then print_errors(errs); return nil, runner.EXIT_USAGE end
    local inv, ierr = load_inventory(o.inventory)
    if not inv then print_errors({ ierr }); return nil, runner.EXIT_USAGE end
    local max_output
    if o["max-output"] then
        local n, unit = tostring(o["max-output"]):match("^(%d+)([KkMmGg]?)$")
        if not n then return nil, usage_error("--max-output takes a size such as 65536, 512K or 8M", "run") end
        local mult = ({ [""] = 1, k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024 })[unit:lower()]
        max_output = math.tointeger(tonumber(n) * mult)
        if max_output < 1 then return nil, usage_error("--max-output must be at least 1 byte", "run") end
    end
    local ssh_password
    if o["ask-pass"] then
        local perr
        ssh_password, perr = require("cutover.core.sys").read_secret("SSH password: ")
        if not ssh_password then
            return nil, usage_error("--ask-pass: " .. perr .. " (the password is never read from arguments)", "run")
        end
    end
    local become_password
    if o["ask-become-pass"] then
        local perr
        become_password, perr = require("cutover.core.sys").read_secret("BECOME password: ")
        if not become_password then
            return nil, usage_error("--ask-become-pass: " .. perr .. " (the password is never read from arguments)", "run")
        end
        redact.register(become_password)
    end
    local limit, lerr = inventory.limit_pattern(o.limit)
    if lerr then print_errors({ lerr }); return nil, runner.EXIT_USAGE end
    if o["ssh-config"] then
        local sc, serr = require("cutover.ssh_config").load(o["ssh-config"])
        if not sc then print_errors({ serr }); return nil, runner.EXIT_USAGE end
    end
    local journal
    if not o["no-journal"] then
        local jerr
        journal, jerr = require("cutover.journal").open(o.journal)
        if not journal then print_errors({ "cutover: " .. jerr }); return nil, runner.EXIT_USAGE end
    end
    -- gates: approvals and answers given on this command line
    local approve, answers = {}, {}
    for _, g in ipairs(o.approve or {}) do approve[g] = true end
    for _, a in ipairs(o.answer or {}) do
        local g, v = a:match("^([^=]+)=(.*)$")
        if not g then return nil, usage_error("--answer takes GATE=VALUE", "run") end
        answers[g] = v
    end
    for _, g in ipairs(o["answer-stdin"] or {}) do
        local v = (io.stdin:read("a") or ""):gsub("\r?\n$", "")
        answers[g] = v
        redact.register(v)  -- given for a secret: masked from the start
    end
    local interactive = not o["non-interactive"] and require("cutover.core.sys").has_tty()
    local record = {}
    for _, k in ipairs(RECORDED) do record[k] = o[k] end
    local origin = ev_origin[ev]
    if origin and #origin.files > 0 then
        -- read again on resume for values that could not be sealed
        record["extra-vars-files"] = origin.files
    end
    for _, k in ipairs({ "inventory", "known-hosts", "ssh-config", "vault" }) do
        record[k] = absolute(record[k])
    end
    return book, inv, {
        check = o.check == true, diff = o.diff == true, limit = limit,
        tags = split_set(o.tags), skip_tags = split_set(o["skip-tags"]),
        start_at = o["start-at"], extra_vars = ev, format = o.format or "text",
        extra_vars_secret = origin and origin.from_file,
        verbose = o.verbose and #o.verbose or 0, version = M.VERSION,
        accept_new_host_keys = o["accept-new-host-keys"] == true,
        forks = o.forks and math.tointeger(tonumber(o.forks)),
        ssh_password = ssh_password,
        become = o.become == true or nil, become_user = o["become-user"], become_password = become_password,
        max_output = max_output,
        known_hosts = o["known-hosts"],
        ssh_config = o["ssh-config"],
        vault = o.vault,
        journal = journal,
        approve = approve, answers = answers, interactive = interactive,
        record_options = record,
        report = o.report,
        playbook_digest = file_digest(book_path),
        playbook_path = absolute(book_path),
        inventory_path = absolute(o.inventory),
        inventory_digest = inventory_digest(o.inventory, inv),
    }
end

local function check_run_options(o, cmd)
    if o.forks and not (math.tointeger(tonumber(o.forks)) and tonumber(o.forks) >= 1) then
        return usage_error("--forks must be a whole number of at least 1", cmd)
    end
    if o.format and o.format ~= "text" and o.format ~= "json" then
        return usage_error("--format must be text or json", cmd)
    end
end

local function cmd_run(args)
    local o, pos = parse(args, RUN_OPTS)
    if not o then return usage_error(pos, "run") end
    if o.help then print(HELP.run); return 0 end
    if #pos ~= 1 then return usage_error("run needs exactly one PLAYBOOK", "run") end
    local bad = check_run_options(o, "run")
    if bad then return bad end
    if o.report and o["no-journal"] then
        return usage_error("--report reads the run from the journal: it cannot go with --no-journal", "run")
    end
    local ev, eerr = extra_vars(o["extra-vars"])
    if not ev then print_errors({ eerr }); return runner.EXIT_USAGE end
    local book, inv, opts = prepare_run(o, pos[1], ev)
    if not book then return inv end
    return runner.run(book, inv, opts)
end

local function cmd_lint(args)
    local o, pos = parse(args, LINT_OPTS)
    if not o then return usage_error(pos, "lint") end
    if o.help then print(HELP.lint); return 0 end
    if #pos ~= 1 then return usage_error("lint needs exactly one PLAYBOOK", "lint") end
    local book, errs = playbook.load(pos[1])
    if not book then print_errors(errs); return runner.EXIT_USAGE end
    if o.inventory then
        local inv, ierr = load_inventory(o.inventory)
        if not inv then print_errors({ ierr }); return runner.EXIT_USAGE end
        local extra, eerr = extra_vars(o["extra-vars"])
        if not extra then return usage_error(eerr, "lint") end
        local problems = lint.check(book, inv, extra)
        if #problems > 0 then print_errors(problems); return runner.EXIT_USAGE end
    end
    print(string.format("%s: ok (%d play%s, %d step%s)", pos[1], #book.plays,
        #book.plays == 1 and "" or "s", book.step_count, book.step_count == 1 and "" or "s"))
    return 0
end

local function cmd_modules(args)
    local o, pos = parse(args, NO_OPTS)
    if not o then return usage_error(pos, "modules") end
    if o.help then print(HELP.modules); return 0 end
    for _, name in ipairs(actions.names()) do
        print(string.format("%-10s  %s", name, actions.get(name).summary))
    end
    return 0
end

local function cmd_doc(args)
    local o, pos = parse(args, DOC_OPTS)
    if not o then return usage_error(pos, "doc") end
    if o.help then print(HELP.doc); return 0 end
    local fmt = o.format or "text"
    if fmt ~= "text" and fmt ~= "markdown" then return usage_error("--format must be text or markdown", "doc") end
    local names = pos
    if o.all then names = actions.names() end
    if #names == 0 then return usage_error("doc needs an ACTION (see 'cutover modules')", "doc") end
    for i, name in ipairs(names) do
        if not actions.exists(name) then
            return usage_error("no action '" .. name .. "'" .. util.did_you_mean(name, actions.names()), "doc")
        end
        if i > 1 then io.stdout:write("\n") end
        io.stdout:write(docs.action(name, fmt))
    end
    return 0
end

local function cmd_inventory(args)
    local o, pos = parse(args, INVENTORY_OPTS)
    if not o then return usage_error(pos, "inventory") end
    if o.help then print(HELP.inventory); return 0 end
    local n = (o.list and 1 or 0) + (o.graph and 1 or 0) + (o.host and 1 or 0)
    if n ~= 1 then return usage_error("inventory needs one of --list, --graph [GROUP] or --host HOST", "inventory") end
    if #pos > (o.graph and 1 or 0) then return usage_error("unexpected argument '" .. pos[#pos] .. "'", "inventory") end
    local inv, ierr = load_inventory(o.inventory)
    if not inv then print_errors({ ierr }); return runner.EXIT_USAGE end
    local text, err
    if o.list then text = inv:list_json()
    elseif o.graph then text, err = inv:graph(pos[1])
    else text, err = inv:host_json(o.host) end
    if not text then return usage_error(err, "inventory") end
    io.stdout:write(text)
    return 0
end

local JOURNAL_OPTS = { journal = { nil, true }, format = { nil, true }, help = { "h" },
                       limit = { "n", true } }
local RESUME_OPTS = {
    journal = { nil, true }, format = { nil, true }, verbose = { "v", false, true },
    help = { "h" }, ["mark-done"] = { nil, true, true }, retry = { nil, true, true },
    ["accept-changed"] = {}, forks = { "f", true }, ["ask-pass"] = { "k" }, ["ask-become-pass"] = { "K" },
    ["known-hosts"] = { nil, true }, ["accept-new-host-keys"] = {},
    approve = { nil, true, true }, answer = { nil, true, true },
    ["answer-stdin"] = { nil, true, true }, ["non-interactive"] = {},
    report = { nil, true },
}

local function open_journal(o)
    local j, err = require("cutover.journal").open(o.journal)
    if not j then print_errors({ "cutover: " .. err }) end
    return j
end

-- history, show, unlock, abort: parse, open the journal, hand over.
local function journal_command(name, nargs, usage, fn)
    return function(args)
        local o, pos = parse(args, JOURNAL_OPTS)
        if not o then return usage_error(pos, name) end
        if o.help then print(HELP[name]); return 0 end
        if #pos ~= nargs then return usage_error(usage, name) end
        local j = open_journal(o)
        if not j then return runner.EXIT_USAGE end
        return fn(require("cutover.history"), j, o, pos)
    end
end

local cmd_history = journal_command("history", 0, "history takes no arguments",
    function(h, j, o) return h.history(j, o.format, o.limit and tonumber(o.limit)) end)
local cmd_show = journal_command("show", 1, "show needs a RUN id (see 'cutover history')",
    function(h, j, o, pos) return h.show(j, pos[1], o.format) end)
local REPORT_OPTS = { journal = { nil, true }, format = { nil, true }, output = { "o", true },
                      help = { "h" } }

local function cmd_report(args)
    local o, pos = parse(args, REPORT_OPTS)
    if not o then return usage_error(pos, "report") end
    if o.help then print(HELP.report); return 0 end
    if #pos ~= 1 then return usage_error("report needs exactly one RUN id (see 'cutover history')", "report") end
    if not o.output then return usage_error("report needs -o FILE (- for stdout)", "report") end
    local fmt = o.format or "html"
    if fmt ~= "html" and fmt ~= "json" then return usage_error("--format must be html or json", "report") end
    local j = open_journal(o)
    if not j then return runner.EXIT_USAGE end
    local ok, err = require("cutover.report").write(j, pos[1], o.output, fmt)
    if not ok then
        io.stderr:write("cutover: " .. err .. "\n")
        return runner.EXIT_USAGE
    end
    return 0
end

local cmd_unlock = journal_command("unlock", 1, "unlock needs a HOST",
    function(h, j, _, pos) return h.unlock(j, pos[1]) end)
local cmd_abort = journal_command("abort", 1, "abort needs a RUN id",
    function(h, j, _, pos) return h.abort(j, pos[1]) end)

local function cmd_resume(args)
    local o, pos = parse(args, RESUME_OPTS)
    if not o then return usage_error(pos, "resume") end
    if o.help then print(HELP.resume); return 0 end
    if #pos > 1 then return usage_error("resume takes at most one RUN id", "resume") end
    local bad = check_run_options(o, "resume")
    if bad then return bad end
    local j = open_journal(o)
    if not j then return runner.EXIT_USAGE end
    local function prepare(recorded, book_path, ev)
        recorded.journal = o.journal
        return prepare_run(recorded, book_path, ev)
    end
    return require("cutover.history").resume(j, pos[1], o, prepare)
end

-- Saved plans (the work: cutover.plan).
local PLAN_OPTS = {
    inventory = { "i", true }, ["extra-vars"] = { "e", true, true },
    limit = { "l", true }, tags = { "t", true, true }, ["skip-tags"] = { nil, true, true },
    output = { "o", true }, format = { nil, true }, verbose = { "v", false, true }, help = { "h" },
    ["accept-new-host-keys"] = {}, ["known-hosts"] = { nil, true }, ["ssh-config"] = { "F", true },
    forks = { "f", true }, ["ask-pass"] = { "k" }, vault = { nil, true }, ["max-output"] = { nil, true },
    become = { "b" }, ["become-user"] = { nil, true }, ["ask-become-pass"] = { "K" },
    journal = { nil, true }, ["no-journal"] = {},
}
local APPLY_OPTS = {
    ["extra-vars"] = { "e", true, true },
    limit = { "l", true }, tags = { "t", true, true }, ["skip-tags"] = { nil, true, true },
    format = { nil, true }, verbose = { "v", false, true }, diff = { "D" }, help = { "h" },
    ["accept-new-host-keys"] = {}, ["known-hosts"] = { nil, true }, ["ssh-config"] = { "F", true },
    forks = { "f", true }, ["ask-pass"] = { "k" }, vault = { nil, true }, ["max-output"] = { nil, true },
    become = { "b" }, ["become-user"] = { nil, true }, ["ask-become-pass"] = { "K" },
    journal = { nil, true }, ["no-journal"] = {},
    approve = { nil, true, true }, answer = { nil, true, true },
    ["answer-stdin"] = { nil, true, true }, ["non-interactive"] = {},
}
local SHOW_PLAN_OPTS = { format = { nil, true }, help = { "h" } }

local function plan_env()
    return { prepare = prepare_run, extra_vars = extra_vars, version = M.VERSION }
end

local function cmd_plan(args)
    local o, pos = parse(args, PLAN_OPTS)
    if not o then return usage_error(pos, "plan") end
    if o.help then print(HELP.plan); return 0 end
    if #pos ~= 1 then return usage_error("plan needs exactly one PLAYBOOK", "plan") end
    local bad = check_run_options(o, "plan")
    if bad then return bad end
    local ev, eerr = extra_vars(o["extra-vars"])
    if not ev then print_errors({ eerr }); return runner.EXIT_USAGE end
    o["non-interactive"] = true  -- a dry run never stops at a gate
    return require("cutover.plan").plan(o, pos[1], ev, plan_env())
end

local function cmd_show_plan(args)
    local o, pos = parse(args, SHOW_PLAN_OPTS)
    if not o then return usage_error(pos, "show-plan") end
    if o.help then print(HELP["show-plan"]); return 0 end
    if #pos ~= 1 then return usage_error("show-plan needs exactly one plan FILE", "show-plan") end
    if o.format and o.format ~= "text" and o.format ~= "json" then
        return usage_error("--format must be text or json", "show-plan")
    end
    return require("cutover.plan").show(pos[1], o.format)
end

local function cmd_apply(args)
    local o, pos = parse(args, APPLY_OPTS)
    if not o then return usage_error(pos, "apply") end
    if o.help then print(HELP.apply); return 0 end
    if #pos ~= 1 then return usage_error("apply needs exactly one plan FILE", "apply") end
    local bad = check_run_options(o, "apply")
    if bad then return bad end
    if not o["no-journal"] then
        -- a damaged journal is refused before anything runs
        local j = open_journal(o)
        if not j then return runner.EXIT_USAGE end
        local ok = require("cutover.history").verified(j, "apply a plan with it")
        j:close()
        if not ok then return runner.EXIT_REFUSED end
    end
    return require("cutover.plan").apply(pos[1], o, plan_env())
end

local COMMANDS = { history = cmd_history, show = cmd_show, report = cmd_report, resume = cmd_resume,
                   unlock = cmd_unlock, abort = cmd_abort,
                   plan = cmd_plan, ["show-plan"] = cmd_show_plan, apply = cmd_apply,
                   run = cmd_run, lint = cmd_lint, modules = cmd_modules, doc = cmd_doc, inventory = cmd_inventory }

local VAULT_OPTS = { vault = { nil, true }, help = { "h" } }

-- cutover vault set NAME | list | rm NAME (the work: cutover.secrets.vault).
local function cmd_vault(args)
    local o, pos = parse(args, VAULT_OPTS)
    if not o then return usage_error(pos, "vault") end
    if o.help then print(HELP.vault); return 0 end
    local want = ({ set = 2, list = 1, rm = 2 })[pos[1] or ""]
    if not want then return usage_error("vault needs set NAME, list or rm NAME", "vault") end
    if #pos ~= want then
        return usage_error("usage: cutover vault " .. pos[1] .. (want == 2 and " NAME" or ""), "vault")
    end
    local vault = require("cutover.secrets.vault")
    if pos[2] and not vault.valid_name(pos[2]) then
        return usage_error("bad secret name '" .. pos[2] .. "': letters, digits and _, not starting with a digit", "vault")
    end
    return vault.command(pos[1], pos[2], o.vault)
end
COMMANDS.vault = cmd_vault

-- cutover convert ansible PLAYBOOK [-o OUT] (the work: cutover.convert.ansible)
local CONVERT_OPTS = { output = { "o", true }, help = { "h" } }
function COMMANDS.convert(args)
    local o, pos = parse(args, CONVERT_OPTS)
    if not o then return usage_error(pos, "convert") end
    if o.help then print(HELP.convert); return 0 end
    if pos[1] ~= "ansible" then return usage_error("convert needs a source format: convert ansible PLAYBOOK", "convert") end
    if #pos ~= 2 then return usage_error("convert ansible needs exactly one PLAYBOOK", "convert") end
    return require("cutover.convert.ansible").main(pos[2], o.output)
end

function M.main(argv)
    local first = argv[1]
    if first == nil or first == "-h" or first == "--help" or first == "help" then
        if first == "help" and argv[2] and HELP[argv[2]] then print(HELP[argv[2]]); return 0 end
        print(HELP.main)
        return first == nil and runner.EXIT_USAGE or 0
    end
    if first == "--version" or first == "version" then
        print("cutover " .. M.VERSION)
        return 0
    end
    local cmd = COMMANDS[first]
    if not cmd then
        local names = util.sorted_keys(COMMANDS)
        return usage_error("unknown command '" .. first .. "'" .. util.did_you_mean(first, names))
    end
    local rest = {}
    for i = 2, #argv do rest[#rest + 1] = argv[i] end
    -- A journal that cannot be read or written (a full disk, a size
    -- limit) is the operator's to fix, not a crash: say so and stop.
    local ok, code = xpcall(cmd, function(err)
        if require("cutover.journal").is_write_error(err) then return err end
        return debug.traceback(err, 2)
    end, rest)
    if ok then return code end
    if require("cutover.journal").is_write_error(code) then
        io.stderr:write("cutover: " .. tostring(code) .. "\n" ..
            "  (is its disk full, or a file-size limit reached?  Nothing after this point was done.)\n")
        return runner.EXIT_FAILED
    end
    error(code, 0)
end

return M
