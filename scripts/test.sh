#!/usr/bin/env bash
# Every test: install, build, run the whole ctest suite (the VM lab in the
# background beside the later stages); then build with AddressSanitizer +
# UBSan and run the whole suite again (VM lab aside) with the persistent
# session off; memcheck; short fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# each stage's time, as a table at the end (also when a stage fails)
source scripts/stages.sh
flaky_file=$(mktemp)
# run_ctest DIR [CTEST_ARG...]: ctest, and a failed test once more alone
# (scripts/ctest_retry.sh); a test that passes then is named FLAKY at the end
run_ctest() { bash scripts/ctest_retry.sh "$1" "$flaky_file" "${@:2}"; }

# The VM lab (label vm: emulated Debian guests, most of the suite's time on
# one core) runs in the background, beside every stage after the build, in
# its own ctest under build/tests (own Testing/ records), one guest at a
# time.  Its output is printed when it ends; a failure fails the run.
vm_log=build/vm-tests.log
vm_ended=build/vm-tests.ended   # when it ended (stage_now), for the table
vm_pid=
vm_start() {
    vm_t0=$(stage_now)
    rm -f "$vm_ended"
    echo "the VM lab runs alongside the next stages; its output: $vm_log (printed at the end)"
    CTEST_JOBS=1 setsid bash -c 'bash scripts/ctest_retry.sh "$@"; rc=$?; date +%s.%N > "$0"; exit "$rc"' \
        "$vm_ended" build/tests "$flaky_file" --timeout 2400 -L vm > "$vm_log" 2>&1 &
    vm_pid=$!
}
vm_wait() {
    local rc=0
    echo "waiting for the VM lab (started $(awk -v a="$vm_t0" -v b="$(stage_now)" \
        'BEGIN { printf "%d", b - a }') s ago)"
    wait "$vm_pid" || rc=$?
    vm_pid=
    echo "=== the VM lab's output ($vm_log)"
    cat "$vm_log"
    stage_add "ctest (vm, alongside)" "$vm_t0" "$rc" "$(cat "$vm_ended" 2>/dev/null || true)"
    return "$rc"
}
# a failed stage must not leave guests running
vm_on_exit() {
    local rc=$?
    if [ -n "$vm_pid" ]; then
        kill -TERM -- "-$vm_pid" 2>/dev/null
        echo "=== the VM lab was stopped; its output so far ($vm_log):" >&2
        tail -n 60 "$vm_log" >&2
    fi
    stage_on_exit_rc "$rc"
}
trap vm_on_exit EXIT

# The ctest stages run three tests per core: most tests wait (on sshd, on
# remote sleeps and timeouts, on processes they kill) rather than compute.
# Measured on 2 idle cores: the normal build's 154 tests took 124 s of
# wall and 116 s of CPU at -j4 (505 s of test time); in a whole run of
# this script, with the VM lab beside it, the stage took 282 s at -j2 and
# 140 s at -j6.  memcheck (valgrind) computes, and stays at one per core.
wait_jobs=$(( 3 * $(nproc) ))
run_ctest_wide() { CTEST_JOBS=$wait_jobs run_ctest "$@"; }

stage "deps" bash scripts/deps.sh
stage "lint" bash scripts/lint.sh
stage "build" bash scripts/build.sh build
vm_start
# The normal build runs every host with the persistent session on (the
# default); the ASan build below runs the whole suite again with it off.
stage "ctest" run_ctest_wide build --timeout 600 -LE 'memcheck|vm'
stage "build (asan)" bash scripts/build.sh build-asan -DCUTOVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The whole suite under ASan + UBSan, with the persistent session off for
# every host (one exec channel per step, docs/ssh.md): so both paths pass
# the SSH and lab suites (the other labels use local connections, where
# the switch changes nothing), and the session's own C code still runs
# under ASan in the tests that turn it on themselves (ssh.test_session,
# ssh.test_session_review, unit.test_session_frames).  The VM lab (label
# vm) runs once, with the normal build: under ASan it would only boot the
# same guest again.
stage "ctest (asan, session off)" env CUTOVER_SESSION=0 CTEST_JOBS="$wait_jobs" bash scripts/ctest_retry.sh \
    build-asan "$flaky_file" --timeout 900 -LE vm
# The unit tests under valgrind memcheck: no error, no definite leak
stage "memcheck" run_ctest build -L memcheck
# Short fuzz runs of every parser that reads outside input (15 s each, one
# per core at a time: a smoke run; every crash input kept in
# tests/fuzz/regressions is replayed by ctest above); longer campaigns:
# bash scripts/fuzz.sh SECONDS
stage "fuzz" bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
vm_wait
# One closing line for the whole run (set -e: reaching here means no failure)
n=$(cd build && ctest -N | sed -n 's/^Total Tests: //p')  # memcheck included
m=$(cd build-asan && ctest -N -LE vm | sed -n 's/^Total Tests: //p')  # session off
f=$(ls -d tests/fuzz/corpus/*/ | wc -l)
stage_table
if [ -s "$flaky_file" ]; then
    echo "all: $((n + m + f)) passed, 0 failed; FLAKY (passed only on a rerun): $(tr '\n' ' ' < "$flaky_file")"
else
    echo "all: $((n + m + f)) passed, 0 failed"
fi
