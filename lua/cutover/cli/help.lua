-- cli.help: the version and the text of `cutover help`, `cutover
-- COMMAND --help` (one entry per command, "main" for the overview).
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
M.text = HELP

return M
