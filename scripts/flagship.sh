#!/usr/bin/env bash
# The flagship job against the bundled lab: a simulated Windows 2000 +
# Exchange 5.5 host behind a real sshd on loopback (docs/lab.md).
#  1. start a fresh lab host and put the lab's passwords in a vault;
#  2. dry run of playbooks/exchange55-dcpromo.yml (nothing changes);
#  3. the real run, non-interactive, approving the 'promote' gate: it
#     promotes the host and parks at the 'sp3_reinstall' gate (exit 4);
#  4. the operator reinstalls SP3 as the gate asks (over SSH, with the
#     Exchange services stopped), then approves: the run ends with the
#     verification table.
# Expects the build in build/ (scripts/demo.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
lab=${CUTOVER_LAB_DIR:-/var/tmp/cutover-lab}
work=${CUTOVER_FLAGSHIP_DIR:-/var/tmp/cutover-flagship}
bin=$PWD/build/cutover
labbin=$PWD/build/cutover-lab
rm -rf "$work"
mkdir -p "$work"
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data"
export CUTOVER_VAULT="$work/vault" CUTOVER_VAULT_PASSWORD_FILE="$work/vault-pass"
umask 077
head -c 24 /dev/urandom | base64 > "$CUTOVER_VAULT_PASSWORD_FILE"

echo "== start the lab (one Windows 2000 + Exchange 5.5 host)"
"$labbin" stop --dir "$lab" >/dev/null 2>&1 || true
"$labbin" reset --dir "$lab" --hosts 1
while IFS='=' read -r name value; do
    printf '%s' "$value" | "$bin" vault set "$name" >/dev/null
done < "$lab/lab-secrets.txt"
echo "vault: $("$bin" vault list | tr '\n' ' ')"

echo "== dry run"
"$bin" run playbooks/exchange55-dcpromo.yml -i "$lab/inventory.yml" --check
echo "== real run: approve the promotion, park at the SP3 gate"
set +e
"$bin" run playbooks/exchange55-dcpromo.yml -i "$lab/inventory.yml" --non-interactive --approve promote
rc=$?
set -e
if [ "$rc" -ne 4 ]; then echo "expected to park at the sp3_reinstall gate (exit 4), got $rc"; exit 1; fi

echo "== the operator reinstalls Exchange 5.5 SP3 (stop Exchange, run the media)"
port=$(sed -n 's/^ *ansible_port: *//p' "$lab/inventory.yml" | head -1)
user=$(sed -n 's/^ *ansible_user: *//p' "$lab/inventory.yml" | head -1)
ssh -q -o BatchMode=yes -o UserKnownHostsFile="$lab/known_hosts" -o StrictHostKeyChecking=yes \
    -i "$lab/login_key" -p "$port" "$user@127.0.0.1" \
    'net stop MSExchangeSA /y & D:\ENG\SERVER\SETUP\I386\UPDATE.EXE' | tr -d '\r'

echo "== approve the SP3 gate: start Exchange, verify"
"$bin" resume --approve sp3_reinstall --non-interactive
echo "== the lab keeps running for rehearsal: $labbin stop --dir $lab"
