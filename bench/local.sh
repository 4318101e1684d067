#!/usr/bin/env bash
# Local-connection benchmarks (issue: core runtime).  Prints:
#   1. per-step overhead of cutover beyond the command's own cost:
#      N `command: /bin/true` steps, minus N runs of /bin/true by
#      bench/spawn_floor.c (posix_spawn + pipes + waitpid, nothing else),
#      minus start-up, divided by N;
#   2. the same for controller-only steps (set_fact), which run no process;
#   3. `cutover lint` time for a generated 10,000-step playbook.
# Each figure is the median of REPEAT runs.  Never run in CI.
#
# usage: bench/local.sh [path/to/cutover]   (default build/cutover)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/cutover}
steps=${STEPS:-1000}
repeat=${REPEAT:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

gen() { # gen FILE N STEP_YAML
    {
        echo "- hosts: localhost"
        echo "  steps:"
        for ((i = 1; i <= $2; i++)); do
            echo "    - name: step $i"
            echo "      $3"
        done
    } > "$1"
}

gen "$work/true.yml" "$steps" "command: /bin/true"
gen "$work/fact.yml" "$steps" "set_fact: {x: $((RANDOM))}"
gen "$work/lint.yml" 10000 "command: /bin/echo hello"

time_cmd() { # prints seconds for one run of "$@"
    local t0 t1
    t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    echo "$t1 - $t0" | bc -l
}

cc -O2 -o "$work/spawn_floor" bench/spawn_floor.c
loop_true() { "$work/spawn_floor" "$steps" /bin/true; }

echo "cutover local benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores)"
echo "binary: $bin ($("$bin" --version))"

export XDG_STATE_HOME="$work/state"   # a journal of the benchmark's own
t_cut=$(for _ in $(seq "$repeat"); do time_cmd "$bin" run "$work/true.yml" --no-journal; done | median)
t_cutj=$(for _ in $(seq "$repeat"); do time_cmd "$bin" run "$work/true.yml"; done | median)
t_loop=$(for _ in $(seq "$repeat"); do time_cmd loop_true; done | median)
t_fact=$(for _ in $(seq "$repeat"); do time_cmd "$bin" run "$work/fact.yml" --no-journal; done | median)
t_factj=$(for _ in $(seq "$repeat"); do time_cmd "$bin" run "$work/fact.yml"; done | median)
t_lint=$(for _ in $(seq "$repeat"); do time_cmd "$bin" lint "$work/lint.yml"; done | median)
t_start=$(for _ in $(seq "$repeat"); do time_cmd "$bin" --version; done | median)
# CPU seconds (user + sys) of lint: what the machine's load does not change
cpu_cmd() {
    local f
    f=$(mktemp)
    /usr/bin/time -f "%U %S" -o "$f" "$@" >/dev/null 2>&1
    awk '{print $1 + $2}' "$f"
    rm -f "$f"
}
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null 2>&1 || true; }
if [ -x /usr/bin/time ]; then
    c_lint=$(for _ in $(seq "$repeat"); do cpu_cmd "$bin" lint "$work/lint.yml"; done | median)
else
    c_lint=-1
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)

awk -v n="$steps" -v c="$t_cut" -v cj="$t_cutj" -v l="$t_loop" -v f="$t_fact" -v fj="$t_factj" -v s="$t_start" -v li="$t_lint" -v cl="$c_lint" -v ld="$load" 'BEGIN {
    printf "\n%-52s %10s\n", "measure", "value"
    printf "%-52s %8.1f ms\n", "start-up (cutover --version)", s * 1000
    printf "%-52s %8.1f ms\n", sprintf("run %d command: /bin/true steps", n), c * 1000
    printf "%-52s %8.1f ms\n", sprintf("spawn_floor: %d x /bin/true (the floor)", n), l * 1000
    printf "%-52s %8.3f ms   (goal < 1 ms)\n", "per-step overhead beyond the command (--no-journal)", (c - l - s) / n * 1000
    printf "%-52s %8.3f ms\n", "per-step overhead with the journal (2 fsyncs/step)", (cj - l - s) / n * 1000
    printf "%-52s %8.3f ms\n", sprintf("per controller-only step (set_fact, %d, --no-journal)", n), (f - s) / n * 1000
    printf "%-52s %8.3f ms\n", "per controller-only step with the journal (1 fsync)", (fj - s) / n * 1000
    printf "%-52s %8.1f ms   (goal < 200 ms)\n", "lint of a 10,000-step playbook (wall)", li * 1000
    if (cl >= 0) printf "%-52s %8.1f ms\n", "lint of a 10,000-step playbook (CPU, user+sys)", cl * 1000
    printf "\nload average at the end: %s (figures are medians; wall times grow with load)\n", ld
}'
