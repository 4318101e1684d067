#!/usr/bin/env bash
# The main job: install, build, then
#  1. the local example (playbooks/local-upgrade-demo.yml): dry run with
#     diffs, the real run, a second dry run that predicts no change;
#  2. the flagship: playbooks/exchange55-dcpromo.yml against the bundled
#     lab (a simulated Windows 2000 + Exchange 5.5 host behind a real sshd
#     on loopback): the dry run, the real run that promotes the host and
#     parks at the SP3 gate, the operator's SP3 reinstall, the approval,
#     and the verification table (scripts/flagship.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
target=${CUTOVER_DEMO_TARGET:-/tmp/cutover-demo}
export XDG_STATE_HOME=${XDG_STATE_HOME:-/var/tmp/cutover-demo-state}
echo "== local example: dry run (nothing changes)"
./build/cutover run playbooks/local-upgrade-demo.yml -e target="$target" --check --diff
echo "== local example: real run"
./build/cutover run playbooks/local-upgrade-demo.yml -e target="$target"
echo "== local example: dry run again (should predict no change)"
./build/cutover run playbooks/local-upgrade-demo.yml -e target="$target" --check
bash scripts/flagship.sh
