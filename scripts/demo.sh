#!/usr/bin/env bash
# The main job: install, build, then run the shipped playbook on this
# machine, first as a dry run (--check --diff), then for real, then a
# second dry run that must predict no change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
target=${CUTOVER_DEMO_TARGET:-/tmp/cutover-demo}
echo "== dry run (nothing changes)"
./build/cutover run playbooks/local-upgrade-demo.yml -e target="$target" --check --diff
echo "== real run"
./build/cutover run playbooks/local-upgrade-demo.yml -e target="$target"
echo "== dry run again (should predict no change)"
./build/cutover run playbooks/local-upgrade-demo.yml -e target="$target" --check
