#!/usr/bin/env bash
# Builds cutover into build/ (or the folder given), optionally with
# sanitizers: scripts/build.sh build-asan -DCUTOVER_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
