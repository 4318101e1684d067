# stages.sh: the wall time of each stage of scripts/test.sh (sourced).
#   stage NAME CMD [ARG...]   runs CMD in this shell (a function may change
#                             its variables), records NAME, its time and,
#                             when it fails, its status; returns CMD's status
#   stage_table               prints the stages run so far and their total
#   stage_on_exit             for `trap stage_on_exit EXIT`: records the
#                             stage a failure ended (set -e) and prints the
#                             table on stderr when the script fails
# CMD runs as a plain command, not in a `||` list, so that set -e still
# stops a function at its first failing command.
stage_names=()
stage_secs=()
stage_notes=()
stage_current=
stage_t0=

stage_now() { date +%s.%N; }

stage_record() {
    stage_names+=("$stage_current")
    stage_secs+=("$(awk -v a="$stage_t0" -v b="$(stage_now)" 'BEGIN { printf "%.1f", b - a }')")
    if [ "$1" -eq 0 ]; then stage_notes+=(""); else stage_notes+=("FAILED (exit $1)"); fi
    stage_current=
}

stage() {
    local rc
    stage_current=$1
    shift
    stage_t0=$(stage_now)
    "$@"
    rc=$?
    stage_record "$rc"
    return "$rc"
}

# "NAME SECONDS NOTE" -> "  NAME   123.4 s   2:03  NOTE"
stage_row() {
    awk -v n="$1" -v s="$2" -v note="$3" 'BEGIN {
        printf "  %-24s %8.1f s %4d:%02d  %s\n", n, s, int(s / 60), int(s) % 60, note }'
}

stage_table() {
    local i total=0
    echo "stage times:"
    for i in "${!stage_names[@]}"; do
        stage_row "${stage_names[$i]}" "${stage_secs[$i]}" "${stage_notes[$i]}"
        total=$(awk -v a="$total" -v b="${stage_secs[$i]}" 'BEGIN { printf "%.1f", a + b }')
    done
    stage_row total "$total" ""
}

stage_on_exit() {
    local rc=$?
    if [ -n "$stage_current" ]; then stage_record "$rc"; fi
    if [ "$rc" -ne 0 ] && [ ${#stage_names[@]} -gt 0 ]; then stage_table >&2; fi
    return "$rc"
}
