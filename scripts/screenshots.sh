#!/usr/bin/env bash
# Makes the screenshots in docs/ with the test tooling: the report of a
# real run over loopback sshd (tests/ssh/test_report.lua) and the live view
# of a 50-host run in tmux (tests/integration/test_live.lua), both rendered
# by headless Chromium.  Needs root (sshd), tmux and chromium
# (scripts/deps.sh).  Usage: scripts/screenshots.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
export CUTOVER_DOCS_SHOTS=$root/docs
cd "$build"
ctest -R 'ssh.test_report|integration.test_live' --output-on-failure
ls -l "$root/docs/report.png" "$root/docs/live-view.png"
