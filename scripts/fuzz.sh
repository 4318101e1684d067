#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for the
# given number of seconds (default 30) on its seed corpus.  A crash stops
# with exit 1 and prints the input that caused it: copy it to
# tests/fuzz/regressions/TARGET/ so that ctest replays it from then on.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(yaml playbook inventory_yaml inventory_ini ssh_config expr windows mail pattern)
fi
command -v clang >/dev/null || apt-get install -y -qq clang >/dev/null
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed" ||
    apt-get install -y -qq libclang-rt-14-dev >/dev/null
CC=clang cmake -S . -B build-fuzz -DCUTOVER_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# fuzz_one TARGET: one campaign; its verdict line goes to build-fuzz/fuzz-TARGET.result
fuzz_one() {
    local t=$1 work="build-fuzz/corpus/$1" crashes="build-fuzz/crashes/$1"
    local seeds=tests/fuzz/corpus/$1 log="build-fuzz/fuzz-$1.log" result="build-fuzz/fuzz-$1.result" execs
    mkdir -p "$work" "$crashes"
    if "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$crashes/" \
        "$work" "$seeds" >"$log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ -n "$execs" ] || execs=$(grep -Eo '#[0-9]+' "$log" | tail -1 | tr -d '#')
        echo "fuzz $t: ${seconds}s, ${execs:-?} inputs, no crash" > "$result"
    else
        echo "fuzz $t: CRASH; input(s) in $crashes/, log $log" > "$result"
        return 1
    fi
}
# One campaign per core at a time (libFuzzer runs one process per
# campaign); the verdicts are printed in the targets' order at the end.
status=0
running=0
for t in "${targets[@]}"; do
    rm -f "build-fuzz/fuzz-$t.result"
    if [ "$running" -ge "$(nproc)" ]; then wait -n || true; running=$((running - 1)); fi
    fuzz_one "$t" &
    running=$((running + 1))
done
wait || true
for t in "${targets[@]}"; do
    if [ -f "build-fuzz/fuzz-$t.result" ]; then cat "build-fuzz/fuzz-$t.result"; else echo "fuzz $t: no verdict"; status=1; fi
    if grep -q CRASH "build-fuzz/fuzz-$t.result" 2>/dev/null; then status=1; tail -30 "build-fuzz/fuzz-$t.log"; fi
done
exit $status
