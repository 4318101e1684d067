#!/usr/bin/env bash
# Runs ctest once, then the tests that failed once more, alone.
#   bash scripts/ctest_retry.sh DIR FLAKY_FILE [CTEST_ARG...]
# DIR is where ctest runs (a build folder, or a subfolder of one with its
# own CTestTestfile.cmake: its Testing/ records are then its own, so two
# runs can go on at once in one build).  Jobs: $CTEST_JOBS, else nproc.
# A test that fails and then passes alone is FLAKY: its name goes to
# FLAKY_FILE, both attempts' output stays in the log, and the exit is 0;
# a second failure exits 1.
set -uo pipefail
dir=$1 flaky_file=$2
shift 2
jobs=${CTEST_JOBS:-$(nproc)}
if (cd "$dir" && ctest --output-on-failure -j"$jobs" "$@"); then exit 0; fi
failed=$(cut -d: -f2 "$dir/Testing/Temporary/LastTestsFailed.log" 2>/dev/null | tr '\n' ' ')
[ -n "$failed" ] || { echo "=== ctest failed in $dir and named no failed test" >&2; exit 1; }
echo "=== failed once in $dir: $failed; running them again, one at a time" >&2
(cd "$dir" && ctest --output-on-failure -j1 --rerun-failed "$@") || exit 1
for t in $failed; do echo "$dir:$t" >> "$flaky_file"; done
echo "=== FLAKY (failed, then passed alone) in $dir: $failed" >&2
