# stages.sh: the wall time of each stage of scripts/test.sh (sourced).
#   stage NAME CMD [ARG...]   runs CMD in this shell (a function may change
#                             its variables), records NAME, its time and,
#                             when it fails, its status; returns CMD's status
#   stage_add NAME T0 RC [T1] records a stage that ran in the background
#                             (from T0 to T1, its own end; default now)
#   stage_table               prints the stages run so far and the total
#                             wall time (stages may overlap)
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
stage_run_t0=$(date +%s.%N)   # the total is the wall time since here

stage_now() { date +%s.%N; }

# stage_record RC [T1]: the current stage, from stage_t0 to T1 (default now)
stage_record() {
    stage_names+=("$stage_current")
    stage_secs+=("$(awk -v a="$stage_t0" -v b="${2:-$(stage_now)}" 'BEGIN { printf "%.1f", b - a }')")
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

# stage_add NAME T0 RC [T1]: records a stage timed outside `stage` (one that
# ran in the background from T0, a stage_now reading, until T1, its own end,
# or until now when T1 is not known)
stage_add() {
    local saved_current=$stage_current saved_t0=$stage_t0
    stage_current=$1 stage_t0=$2
    stage_record "$3" "${4:-}"
    stage_current=$saved_current stage_t0=$saved_t0
}

# Stages that ran side by side overlap, so the total is the wall time.
stage_table() {
    local i
    echo "stage times:"
    for i in "${!stage_names[@]}"; do
        stage_row "${stage_names[$i]}" "${stage_secs[$i]}" "${stage_notes[$i]}"
    done
    stage_row "total (wall)" "$(awk -v a="$stage_run_t0" -v b="$(stage_now)" 'BEGIN { printf "%.1f", b - a }')" ""
}

stage_on_exit() { stage_on_exit_rc $?; }
# the same, for a trap handler of the caller's that did its own work first
stage_on_exit_rc() {
    local rc=$1
    if [ -n "$stage_current" ]; then stage_record "$rc"; fi
    if [ "$rc" -ne 0 ] && [ ${#stage_names[@]} -gt 0 ]; then stage_table >&2; fi
    return "$rc"
}
