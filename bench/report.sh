#!/usr/bin/env bash
# The HTML report of a large run: 500 hosts x 20 steps (local connection,
# so it measures the report, not SSH).  Prints the file's size and the
# time headless Chromium takes to load and render it (median of 3).
# usage: bash bench/report.sh [HOSTS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CUTOVER:-$PWD/build/cutover}
hosts=${1:-500}; steps=${2:-20}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
{ echo "all:"; echo "  hosts:"; for ((i = 1; i <= hosts; i++)); do echo "    h$i: { ansible_connection: local }"; done; } > "$work/inv.yml"
{ echo "- hosts: all"; echo "  gather_facts: false"; echo "  steps:"
  for ((s = 1; s <= steps; s++)); do echo "    - { id: s$s, command: \"echo step $s on {{ inventory_hostname }}\" }"; done; } > "$work/p.yml"
export XDG_STATE_HOME=$work/state NO_COLOR=1
run=$("$bin" run "$work/p.yml" -i "$work/inv.yml" --forks 50 | sed -n 's/.*\[run \([^]]*\)\].*/\1/p' | head -1)
"$bin" report "$run" -o "$work/r.html"
size=$(stat -c %s "$work/r.html")
echo '<!doctype html><p>x' > "$work/empty.html"
load() { # median wall time of 3 headless loads of file $1
    local times=() t0
    for _ in 1 2 3; do
        t0=$(date +%s.%N)
        chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
            --disable-component-update --disable-sync --user-data-dir="$work/chrome" --dump-dom "file://$1" > /dev/null 2>&1
        times+=("$(echo "$(date +%s.%N) - $t0" | bc)")
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}
full=$(load "$work/r.html"); empty=$(load "$work/empty.html")
echo "report of $hosts hosts x $steps steps: $size bytes ($(echo "scale=2; $size / 1048576" | bc) MiB)"
echo "chromium --dump-dom, median of 3: ${full} s for the report, ${empty} s for an empty page (process start);" \
     "the report's own load and render: $(echo "$full - $empty" | bc) s (load: $(cut -d' ' -f1 /proc/loadavg))"
