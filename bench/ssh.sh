#!/usr/bin/env bash
# SSH benchmarks: the same workloads, in one invocation, with
#   1. cutover,
#   2. ansible-playbook (Debian's ansible-core), configured for speed:
#      pipelining, ControlMaster with ControlPersist=60s, gather_facts:
#      false, forks = number of hosts, interpreter discovery off,
#   3. plain OpenSSH: one ControlMaster connection per host and a loop of
#      `ssh` commands over it (hosts in parallel),
#   4. Ansible with Debian's ansible-mitogen (ANSIBLE_STRATEGY=
#      mitogen_linear, a long-lived Python interpreter per host; installed
#      with apt when missing), workloads (a) and (b),
#   5. the raw libssh2 exec loop: bench/libssh2_loop.c (built by CMake
#      beside cutover, never installed), one connection per host and one
#      exec channel per command, hosts in parallel,
#   6. cutover with `cutover_session: false` (one exec channel per step,
#      as before issue 13), workloads (a) and (b).
# Workloads:
#   (a) 20 `command: /bin/true` steps on 10 hosts
#   (b) 50 `command: /bin/true` steps on 1 host
#   (c) connect plus one step on 200 hosts (forks 200)
# (a) and (b) also run cutover and the raw loop with one step on the same
# hosts: the difference, per extra step and host, is the cost of a step
# beyond the connect (issue 13's 1.5 ms target).
# (a) and (b) also measure a floor no tool that starts each step as a
# process of its own on the host can go under: the raw libssh2 program's
# connection, then ONE command, a loop of the host's own shell that runs
# the workload STEPS times (no request, no reply, no channel per step),
# hosts in parallel.  For one host, a tool that keeps a step's result
# durable before the next step starts (issue 13's rule) also waits for
# one disk sync per step: the floor adds STEPS synced 4 KiB overwrites,
# timed with dd beside cutover's journal (for several hosts it adds
# none: while one host waits for a sync the others use the cores).
# Each goal says whether the floor leaves room for it on this machine.
# For each: wall time (median of REPEAT runs, default 3), the ratio to
# cutover, and the controller's peak RSS (/usr/bin/time -f %M).  Every
# timed run starts cold: no SSH connection survives from one run to the
# next (Ansible's persisted masters are closed between runs), so every
# tool pays its handshakes in every run.
#
# The hosts are throwaway sshd servers on loopback (127.0.0.2 ...), one
# address per host, 16 addresses per sshd, all on one port, logging in as
# a dedicated user (cutover-bench; see below).  Every tool verifies host
# keys against the known_hosts file prepared here.  HOME is a temporary folder and
# SSH_AUTH_SOCK is unset.  Runs as root (sshd).  Never run in CI.
#
# usage: bench/ssh.sh [path/to/cutover]   (default build/cutover)
#   env: REPEAT (3), SKIP_ANSIBLE=1 (leave Ansible and Mitogen out),
#        SKIP_C=1 (leave workload (c) out), BENCH_USER
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=$(realpath "${1:-build/cutover}")
repeat=${REPEAT:-3}
# The login user: not the tests' (see bench_login in bench/lib.sh).
user=${BENCH_USER:-cutover-bench}
nmax=200            # hosts for workload (c); (a) and (b) use the first ones
# The one command every tool runs for each step: the playbooks' `command:`,
# the ssh loop's and the raw libssh2 loop's argument are all this.
workload=/bin/true
per_sshd=16         # ListenAddress lines per sshd

[[ -x "$bin" ]] || { echo "no cutover binary at $bin (build it, or pass its path)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "bench/ssh.sh runs sshd servers: run it as root" >&2; exit 2; }

if (( $(ulimit -n) < 4096 )); then ulimit -n 4096; fi

[[ -x /usr/bin/time ]] || apt_install time || { echo "/usr/bin/time is missing and the 'time' package would not install" >&2; exit 2; }
have_ansible=1
if [[ -n "${SKIP_ANSIBLE:-}" ]]; then
    have_ansible=0
elif ! command -v ansible-playbook >/dev/null 2>&1; then
    apt_install ansible-core || true
    command -v ansible-playbook >/dev/null 2>&1 || have_ansible=0
fi

have_mitogen=$have_ansible
if ((have_mitogen)) && [[ ! -f /usr/lib/python3/dist-packages/ansible/plugins/strategy/mitogen_linear.py ]]; then
    apt_install ansible-mitogen || true
    [[ -f /usr/lib/python3/dist-packages/ansible/plugins/strategy/mitogen_linear.py ]] || have_mitogen=0
fi
raw=$(dirname "$bin")/libssh2_loop
[[ -x "$raw" ]] || { echo "no $raw (build the tree: CMake builds it beside cutover)" >&2; exit 2; }

work=$(mktemp -d /tmp/cutover-bench.XXXXXX)
chmod 755 "$work"              # sshd reads authorized_keys as the user
mkdir -p "$work/home" "$work/cm" "$work/acp" "$work/logs"

cleanup() {
    set +e
    # persisted ControlMasters (the ssh loop's and Ansible's), then the servers
    local s
    close_masters "$work"/cm/* "$work"/acp/*/*
    for s in "$work"/sshd*/sshd.pid; do
        [[ -f "$s" ]] && kill "$(cat "$s")" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export HOME=$work/home
unset SSH_AUTH_SOCK
export LANG=C.UTF-8 LC_ALL=C.UTF-8   # Ansible insists on a UTF-8 locale

# sort -g: the sync figures may come in exponent form (9.5e-05)
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
addr_of() { echo "127.0.0.$(($1 + 1))"; }          # host i (1-based) -> 127.0.0.(i+1)
name_of() { printf 'h%03d' "$1"; }

# --- servers ---------------------------------------------------------------
bench_login "$work" "$user"
key=$work/user_key
kh=$work/known_hosts

port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
start_servers() { # start_servers PORT: sshd instances for hosts 1..nmax; 0 if all listen
    local port=$1 k i first last cfg
    for ((k = 0; k * per_sshd < nmax; k++)); do
        first=$((k * per_sshd + 1)); last=$(((k + 1) * per_sshd)); ((last > nmax)) && last=$nmax
        mkdir -p "$work/sshd$k"
        cfg=$work/sshd$k/sshd_config
        {
            echo "Port $port"
            for ((i = first; i <= last; i++)); do echo "ListenAddress $(addr_of "$i")"; done
            echo "PidFile $work/sshd$k/sshd.pid"
            bench_sshd_settings "$work"
            echo "MaxStartups 300:30:500"
            echo "MaxSessions 50"
        } > "$cfg"
        /usr/sbin/sshd -f "$cfg" -E "$work/sshd$k/sshd.log" || return 1
    done
    [[ $(ss -Hltn "sport = :$port" | wc -l) -eq $nmax ]]
}
stop_servers() {
    local s
    for s in "$work"/sshd*/sshd.pid; do [[ -f "$s" ]] && kill "$(cat "$s")" 2>/dev/null; done
    rm -f "$work"/sshd*/sshd.pid
    sleep 0.2
}
port=
for _ in 1 2 3 4 5; do
    p=$((20000 + RANDOM % 20000))
    port_free "$p" || continue
    if start_servers "$p"; then port=$p; break; fi
    stop_servers
done
[[ -n $port ]] || { echo "could not start the sshd servers (see $work/sshd*/sshd.log)" >&2; exit 1; }

hostkey=$(awk '{print $1, $2}' "$work/host_ed25519.pub")
for ((i = 1; i <= nmax; i++)); do echo "[$(addr_of "$i")]:$port $hostkey"; done > "$kh"

# --- inventories and playbooks -------------------------------------------
inventory() { # inventory FILE N: hosts h001..hN, one address each (cutover and Ansible read it)
    {
        echo "all:"
        echo "  vars:"
        echo "    ansible_port: $port"
        echo "    ansible_user: $user"
        echo "    ansible_ssh_private_key_file: $key"
        echo "  hosts:"
        for ((i = 1; i <= $2; i++)); do echo "    $(name_of "$i"): {ansible_host: $(addr_of "$i")}"; done
    } > "$1"
}
inventory "$work/inv1.yml" 1
inventory "$work/inv10.yml" 10
inventory "$work/inv200.yml" 200
for n in 1 10; do  # the same hosts, each step on a channel of its own
    sed 's/^  vars:$/  vars:\n    cutover_session: false/' "$work/inv$n.yml" > "$work/inv${n}_nosession.yml"
done

playbook() { # playbook FILE N cutover|ansible
    local list=steps i
    [[ $3 == ansible ]] && list=tasks
    {
        echo "- hosts: all"
        # both tools gather facts by default: neither does here, so each
        # runs the same commands on the host and nothing else
        echo "  gather_facts: false"
        echo "  $list:"
        for ((i = 1; i <= $2; i++)); do
            echo "    - name: step $i"
            echo "      command: $workload"
        done
    } > "$1"
}
for n in 1 20 50; do
    playbook "$work/cut$n.yml" "$n" cutover
    playbook "$work/ans$n.yml" "$n" ansible
done

bench_ansible_config "$work" "$kh"

# --- the three tools -------------------------------------------------------
# Each run_* prints "SECONDS RSS_KB" for one run, or fails with its log.
fail_run() { echo "FAILED: $1 (exit $2); last lines of its output:" >&2; tail -20 "$3" >&2; }

run_cutover() { # run_cutover PLAYBOOK INVENTORY FORKS
    local log=$work/logs/cutover.log t0 t1 rc=0
    t0=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$bin" run "$1" -i "$2" --forks "$3" --known-hosts "$kh" > "$log" 2>&1 || rc=$?
    t1=$(now)
    ((rc == 0)) || { fail_run "cutover run $1 -i $2" "$rc" "$log"; return 1; }
    echo "$(elapsed "$t0" "$t1") $(tail -1 "$work/rss")"
}

acp_n=0
run_mitogen() { # run_mitogen PLAYBOOK INVENTORY FORKS: Ansible under mitogen_linear
    ANSIBLE_STRATEGY=mitogen_linear run_ansible "$@"
}
run_raw() { # run_raw HOSTS STEPS [COMMAND]: the libssh2 exec loop, hosts in parallel
    local t0 t1 rc=0 i pids=() p
    t0=$(now)
    for ((i = 1; i <= $1; i++)); do
        "$raw" "$(addr_of "$i")" "$port" "$user" "$key" "$kh" "$2" "${3:-$workload}" >> "$work/logs/raw.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    t1=$(now)
    ((rc == 0)) || { fail_run "libssh2 loop ($1 hosts, $2 commands${3:+ of: $3})" "$rc" "$work/logs/raw.log"; return 1; }
    echo "$(elapsed "$t0" "$t1") -"
}
run_floor() { # run_floor HOSTS STEPS: one connection per host, the host's shell runs the STEPS commands
    run_raw "$1" 1 "i=0; while [ \$i -lt $2 ]; do $workload || exit 1; i=\$((i + 1)); done"
}
# Seconds one synced 4 KiB overwrite takes in folder $1 (the median of
# 5 dd runs of 100): what a journal commit costs at the least; "nan" if
# dd fails.
sync_cost() {
    local f=$1/.sync_probe r line
    mkdir -p "$1" && dd if=/dev/zero of="$f" bs=4k count=100 status=none || { echo nan; return 0; }
    for r in 1 2 3 4 5; do
        # "409600 bytes (410 kB, 400 KiB) copied, 0.0402 s, 10.2 MB/s"
        line=$(LC_ALL=C dd if=/dev/zero of="$f" bs=4k count=100 conv=notrunc oflag=dsync 2>&1 | tail -1) || continue
        awk -v l="$line" 'BEGIN { n = split(l, w, ", "); split(w[n - 1], t, " ")
            if (t[1] ~ /^[0-9.]+$/) printf "%.9f\n", t[1] / 100 }'
    done | median
    rm -f "$f"
}
run_ansible() { # run_ansible PLAYBOOK INVENTORY FORKS
    local log=$work/logs/ansible.log t0 t1 rc=0 dir
    acp_n=$((acp_n + 1)); dir=$work/acp/$acp_n; mkdir -p "$dir"
    t0=$(now)
    ANSIBLE_SSH_CONTROL_PATH_DIR=$dir /usr/bin/time -f %M -o "$work/rss" \
        ansible-playbook -i "$2" -f "$3" "$1" > "$log" 2>&1 || rc=$?
    t1=$(now)
    # close the persisted masters (untimed) so the next run starts cold
    close_masters "$dir"/* || true
    ((rc == 0)) || { fail_run "ansible-playbook -i $2 $1" "$rc" "$log"; return 1; }
    echo "$(elapsed "$t0" "$t1") $(tail -1 "$work/rss")"
}

bench_ssh_opts "$key" "$kh" "$user" "$port"
ssh_host() { # ssh_host I STEPS [RSSFILE]: master, STEPS commands over it, close
    local a cp j
    a=$(addr_of "$1"); cp=$work/cm/$1
    ssh "${ssh_opts[@]}" -o ControlMaster=yes -o ControlPath="$cp" -fN "$a" || return 1
    for ((j = 0; j < $2; j++)); do ssh "${ssh_opts[@]}" -o ControlPath="$cp" "$a" "$workload" || return 1; done
    if [[ -n ${3:-} ]]; then  # untimed RSS run: the master's peak, and one mux client's
        local pid
        pid=$(ssh -S "$cp" -O check x 2>&1 | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
        awk '/^VmHWM/ {print $2}' "/proc/$pid/status" > "$3.master"
        /usr/bin/time -f %M -o "$3.client" ssh "${ssh_opts[@]}" -o ControlPath="$cp" "$a" "$workload"
    fi
    ssh -S "$cp" -O exit x 2>/dev/null
}
ssh_loop() { # ssh_loop HOSTS STEPS [RSSDIR]
    local i rc=0
    local pids=() p
    for ((i = 1; i <= $1; i++)); do ssh_host "$i" "$2" ${3:+"$3/$i"} & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
}
run_ssh() { # run_ssh HOSTS STEPS
    local t0 t1 rc=0
    t0=$(now)
    ssh_loop "$1" "$2" > "$work/logs/ssh.log" 2>&1 || rc=$?
    t1=$(now)
    ((rc == 0)) || { fail_run "ssh loop ($1 hosts, $2 steps)" "$rc" "$work/logs/ssh.log"; return 1; }
    echo "$(elapsed "$t0" "$t1") -"
}
ssh_rss() { # ssh_rss HOSTS STEPS: KB, the masters' peaks plus one mux client per host
    local d=$work/rss_ssh
    rm -rf "$d"; mkdir -p "$d"
    ssh_loop "$1" "$2" "$d" > "$work/logs/ssh.log" 2>&1 || { echo n/a; return; }
    cat "$d"/*.master "$d"/*.client | awk '{s += $1} END {print s}'
}

measure() { # measure TOOL ARGS...: "median_seconds median_rss" over $repeat runs
    local r out=$work/samples
    : > "$out"
    for ((r = 0; r < repeat; r++)); do "$@" >> "$out" || { echo "FAILED FAILED"; return 0; }; done
    echo "$(awk '{print $1}' "$out" | median) $(awk '{print $2}' "$out" | median)"
}

# --- report --------------------------------------------------------------
echo "cutover SSH benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, REPEAT=$repeat)"
echo "cutover: $bin ($("$bin" --version))"
if ((have_ansible)); then
    echo "ansible: $(ansible-playbook --version 2>/dev/null | sed -n 1p) (pipelining, ControlMaster auto, ControlPersist=60s, gather_facts: false, forks = hosts, strategy linear)"
else
    echo "ansible: skipped: ansible-playbook not available"
fi
if ((have_mitogen)); then
    echo "mitogen: $(dpkg-query -W -f='ansible-mitogen ${Version}' ansible-mitogen 2>/dev/null) (ANSIBLE_STRATEGY=mitogen_linear, same ansible.cfg)"
else
    echo "mitogen: skipped: ansible-mitogen not available"
fi
echo "ssh:     $(ssh -V 2>&1) (one ControlMaster per host; hosts in parallel)"
echo "libssh2: $raw ($(dpkg-query -W -f='libssh2 ${Version}' libssh2-1 2>/dev/null); one connection per host, one exec channel per command)"
echo "kex:     $BENCH_KEX for all three (what cutover's libssh2 negotiates); host keys verified by all three"
echo "hosts:   $nmax sshd listeners on 127.0.0.2-$(addr_of $nmax) port $port ($(( (nmax + per_sshd - 1) / per_sshd )) sshd processes), user $user"
echo "times:   median wall time of $repeat cold runs (connections included); RSS: median peak RSS of the controller"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) at start (servers and controllers share the $(nproc) cores)"

# sanity: each tool once, 1 step on 1 host (also warms caches)
run_cutover "$work/cut1.yml" "$work/inv1.yml" 1 > /dev/null
((have_ansible)) && { run_ansible "$work/ans1.yml" "$work/inv1.yml" 1 > /dev/null || have_ansible=0; }
run_ssh 1 1 > /dev/null
((have_mitogen)) && { run_mitogen "$work/ans1.yml" "$work/inv1.yml" 1 > /dev/null || have_mitogen=0; }
run_raw 1 1 > /dev/null

row() { # row LABEL SECONDS RSS CUTOVER_SECONDS
    awk -v l="$1" -v t="$2" -v m="$3" -v c="$4" 'BEGIN {
        if (t !~ /^[0-9.]+$/) { printf "  %-26s %11s %10s\n", l, "FAILED", "-"; exit }
        if (c !~ /^[0-9.]+$/ || c == 0) printf "  %-26s %9.3f s %10s   %s\n", l, t, "-", m
        else printf "  %-26s %9.3f s %9.2fx   %s\n", l, t, t / c, m
    }'
}
header() { printf "  %-26s %11s %10s   %s\n" "tool" "wall" "vs cutover" "peak RSS"; }

declare -A T M
workload() { # workload ID TITLE HOSTS STEPS
    local id=$1 hosts=$3 steps=$4 r
    echo
    echo "($id) $2"
    header
    r=$(measure run_cutover "$work/cut$steps.yml" "$work/inv$hosts.yml" "$hosts")
    T[$id.cut]=${r% *}; M[$id.cut]=${r#* }
    row "cutover" "${T[$id.cut]}" "${M[$id.cut]} KB" "${T[$id.cut]}"
    if [[ $id != c ]]; then
        # the same hosts with one step: what connecting (and starting)
        # costs, so the steps' own cost is the difference
        r=$(measure run_cutover "$work/cut1.yml" "$work/inv$hosts.yml" "$hosts")
        T[$id.cut1]=${r% *}
        row "cutover, 1 step (connect)" "${T[$id.cut1]}" "${r#* } KB" "${T[$id.cut]}"
    fi
    if ((have_ansible)); then
        r=$(measure run_ansible "$work/ans$steps.yml" "$work/inv$hosts.yml" "$hosts")
        T[$id.ans]=${r% *}; M[$id.ans]=${r#* }
        row "ansible-playbook" "${T[$id.ans]}" "${M[$id.ans]} KB (largest process)" "${T[$id.cut]}"
    else
        printf "  %-26s skipped: ansible-playbook not available\n" "ansible-playbook"
    fi
    r=$(measure run_ssh "$hosts" "$steps")
    T[$id.ssh]=${r% *}
    M[$id.ssh]=$(ssh_rss "$hosts" "$steps")
    local sl="${M[$id.ssh]}"; [[ $sl =~ ^[0-9]+$ ]] && sl="$sl KB (sum)"
    row "ssh ControlMaster loop" "${T[$id.ssh]}" "$sl" "${T[$id.cut]}"
    r=$(measure run_raw "$hosts" "$steps")
    T[$id.raw]=${r% *}
    row "raw libssh2 exec loop" "${T[$id.raw]}" "-" "${T[$id.cut]}"
    [[ $id == c ]] && return 0
    r=$(measure run_raw "$hosts" 1)
    T[$id.raw1]=${r% *}
    row "raw libssh2, 1 command" "${T[$id.raw1]}" "-" "${T[$id.cut]}"
    r=$(measure run_floor "$hosts" "$steps")
    T[$id.floor]=${r% *}
    row "floor: host's own loop" "${T[$id.floor]}" "-" "${T[$id.cut]}"
    r=$(measure run_cutover "$work/cut$steps.yml" "$work/inv${hosts}_nosession.yml" "$hosts")
    T[$id.nos]=${r% *}
    row "cutover_session: false" "${T[$id.nos]}" "${r#* } KB" "${T[$id.cut]}"
    if ((have_mitogen)); then
        r=$(measure run_mitogen "$work/ans$steps.yml" "$work/inv$hosts.yml" "$hosts")
        T[$id.mit]=${r% *}
        row "ansible + mitogen_linear" "${T[$id.mit]}" "${r#* } KB (largest process)" "${T[$id.cut]}"
    else
        printf "  %-26s skipped: ansible-mitogen not available\n" "ansible + mitogen_linear"
    fi
}
goals_13() { # goals_13 ID HOSTS STEPS: issue 13's targets, each beside the floor
    awk -v c="${T[$1.cut]}" -v r="${T[$1.raw]}" -v a="${T[$1.ans]:-}" -v m="${T[$1.mit]:-}" -v n="$(($2 * $3))" \
        -v c1="${T[$1.cut1]}" -v r1="${T[$1.raw1]}" -v extra="$(($2 * ($3 - 1)))" \
        -v fl="${T[$1.floor]}" -v sync="$sync" -v hosts="$2" -v steps="$3" '
    function num(x) { return x ~ /^[0-9.]+$/ }
    # reach(GOAL_SECONDS): whether the floor leaves room for a run that short
    function reach(t) {
        if (!have_floor) return "(no floor measured)"
        if (t >= f) return sprintf("(the floor, %.3f s, leaves room)", f)
        return sprintf("(out of reach here: that is %.3f s, under the floor of %.3f s)", t, f)
    }
    function goal(label, x, want, t) {
        printf "  goal: %s:  %.2fx  %s %s\n", label, x, (x >= want) ? "MET" : "NOT MET", reach(t)
    }
    BEGIN {
        printf "  per step-host: %.2f ms (connect included)\n", c * 1000 / n
        # One host waits for a sync before each of its steps, one after
        # the other.  Several hosts share syncs, and while one waits the
        # others run on the cores, so none is counted for them: still a
        # lower bound, if a looser one.
        have_floor = num(fl) && num(r1) && (hosts > 1 || num(sync))
        if (have_floor) {
            syncs = (hosts == 1) ? steps * sync : 0
            f = fl + syncs
            fs = (fl - r1) * 1000 / extra + ((hosts == 1) ? sync * 1000 : 0)
            printf "  floor: %.3f s: the host'"'"'s own loop %.3f s", f, fl
            if (hosts == 1) printf " + %d journal syncs of %.3f ms", steps, sync * 1000
            printf "; %.2f ms per step-host beyond the connect\n", fs
        } else {
            printf "  floor: not measured (its run or the sync probe failed)\n"
        }
        # each host runs one step in the 1-step runs: the cost of the
        # other steps, per step and host
        b = (c - c1) * 1000 / extra
        printf "  goal: <= 1.5 ms per step-host beyond the connect:  %.2f ms  %s (raw libssh2 loop: %.2f ms; %s)\n",
            b, (b <= 1.5) ? "MET" : "NOT MET", (r - r1) * 1000 / extra,
            !have_floor ? "no floor measured" : (fs > 1.5 ? sprintf("out of reach here: the floor is %.2f ms", fs) \
                : sprintf("the floor, %.2f ms, leaves room", fs))
        goal(">= 2x faster than the raw libssh2 loop", r / c, 2, r / 2)
        if (num(a)) goal(">= 100x Ansible", a / c, 100, a / 100)
        if (num(m)) goal(">= 50x Ansible+Mitogen", m / c, 50, m / 50)
    }'
}
goal_ansible() { # goal_ansible ID
    if ((have_ansible)); then
        awk -v a="${T[$1.ans]}" -v c="${T[$1.cut]}" 'BEGIN {
            printf "  goal: cutover >= 20x faster than Ansible:  %.1fx  %s\n", a / c, (a / c >= 20) ? "MET" : "NOT MET" }'
    else
        echo "  goal: cutover >= 20x faster than Ansible:  not measured (ansible-playbook not available)"
    fi
}

# the folder that holds cutover's (HOME is $work/home; cutover makes its
# own folder in it, private)
sync=$(sync_cost "${XDG_STATE_HOME:-$HOME/.local/state}")
echo "sync:    $(awk -v s="$sync" 'BEGIN { if (s ~ /^[0-9.]+$/) printf "%.3f ms", s * 1000; else printf "not measured (dd failed)" }') a synced 4 KiB overwrite beside the journal (dd oflag=dsync, median of 5 x 100)"

workload a "20 command steps x 10 hosts" 10 20
goal_ansible a
goals_13 a 10 20
workload b "50 command steps x 1 host" 1 50
goal_ansible b
goals_13 b 1 50
awk -v c="${T[b.cut]}" -v s="${T[b.ssh]}" 'BEGIN {
    printf "  goal: cutover within 1.5x of the ControlMaster floor:  %.2fx  %s\n", c / s, (c / s <= 1.5) ? "MET" : "NOT MET" }'
if [[ -n "${SKIP_C:-}" ]]; then echo; echo "(c) skipped (SKIP_C)"; exit 0; fi
workload c "connect + 1 command step x 200 hosts (forks 200)" 200 1
r=$(measure run_cutover "$work/cut1.yml" "$work/inv1.yml" 1)
rss1=${r#* }
awk -v m="${M[c.cut]}" -v m1="$rss1" -v n="$nmax" 'BEGIN {
    printf "  cutover peak RSS, same playbook on 1 host: %d KB\n", m1
    printf "  goal: <= 128 KB controller memory per connected host:\n"
    printf "    RSS%d / %d           = %7.1f KB per host  %s\n", n, n, m / n, (m / n <= 128) ? "MET" : "NOT MET"
    printf "    (RSS%d - RSS1) / %d  = %7.1f KB per host  %s\n", n, n - 1, (m - m1) / (n - 1), ((m - m1) / (n - 1) <= 128) ? "MET" : "NOT MET"
}'
echo
echo "ansible peak RSS is one process's (the largest: /usr/bin/time reports the maximum of the"
echo "process tree, not its sum); ssh loop RSS is the ControlMasters' VmHWM plus one mux client per host"
echo "(shared library pages counted once per process).  Load at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
