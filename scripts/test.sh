#!/usr/bin/env bash
# Every test: install, build, run the whole ctest suite; then build with
# AddressSanitizer + UBSan and run the whole suite again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
flaky=()
# Runs ctest in build dir $1 with the rest as arguments.  A test that
# fails is run once more, alone; if it passes then, it is named as FLAKY
# (here and on the closing line) and the run goes on; a second failure
# fails the run.  Both attempts' output stays in the log above.
run_ctest() {
    local dir=$1; shift
    if (cd "$dir" && ctest --output-on-failure -j"$jobs" "$@"); then return 0; fi
    local failed
    failed=$(cut -d: -f2 "$dir/Testing/Temporary/LastTestsFailed.log" | tr '\n' ' ')
    echo "=== failed once in $dir: $failed; running them again, one at a time" >&2
    (cd "$dir" && ctest --output-on-failure -j1 --rerun-failed "$@")
    for t in $failed; do flaky+=("$dir:$t"); done
    echo "=== FLAKY (failed, then passed alone) in $dir: $failed" >&2
}
bash scripts/build.sh build
run_ctest build --timeout 600 -LE memcheck
bash scripts/build.sh build-asan -DCUTOVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# the VM lab (label vm) runs once, in the normal stage: under ASan it
# would only boot the same guest again
run_ctest build-asan --timeout 900 -LE vm
# The unit tests under valgrind memcheck: no error, no definite leak
run_ctest build -L memcheck
# Short fuzz runs of every parser that reads outside input (30 s each);
# longer campaigns: bash scripts/fuzz.sh SECONDS
bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
# One closing line for the whole run (set -e: reaching here means no failure)
n=$(cd build && ctest -N | sed -n 's/^Total Tests: //p')  # memcheck included
m=$(cd build-asan && ctest -N -LE vm | sed -n 's/^Total Tests: //p')
f=$(ls -d tests/fuzz/corpus/*/ | wc -l)
if [ ${#flaky[@]} -gt 0 ]; then
    echo "all: $((n + m + f)) passed, 0 failed; FLAKY (passed only on a rerun): ${flaky[*]}"
else
    echo "all: $((n + m + f)) passed, 0 failed"
fi
