#!/usr/bin/env bash
# Every test: install, build, run the whole ctest suite; then build with
# AddressSanitizer + UBSan and run the whole suite again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
bash scripts/build.sh build
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600 -LE memcheck)
bash scripts/build.sh build-asan -DCUTOVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# the VM lab (label vm) runs once, in the normal stage: under ASan it
# would only boot the same guest again
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900 -LE vm)
# The unit tests under valgrind memcheck: no error, no definite leak
(cd build && ctest --output-on-failure -j"$jobs" -L memcheck)
# Short fuzz runs of every parser that reads outside input (30 s each);
# longer campaigns: bash scripts/fuzz.sh SECONDS
bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
# One closing line for the whole run (set -e: reaching here means no failure)
n=$(cd build && ctest -N | sed -n 's/^Total Tests: //p')  # memcheck included
m=$(cd build-asan && ctest -N -LE vm | sed -n 's/^Total Tests: //p')
f=$(ls -d tests/fuzz/corpus/*/ | wc -l)
echo "all: $((n + m + f)) passed, 0 failed"
