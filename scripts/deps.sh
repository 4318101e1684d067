#!/usr/bin/env bash
# Installs the Debian packages cutover needs to build and to test.
# Run as root on Debian 12.  Safe to run again.
set -euo pipefail
packages=(
    build-essential cmake pkg-config
    liblua5.4-dev libyaml-dev libssh2-1-dev libsqlite3-dev libsodium-dev
    libjansson-dev libssl-dev
    openssh-server openssh-client
    valgrind clang libclang-rt-14-dev bc time
    tmux chromium sudo
    qemu-system-x86 qemu-utils debootstrap e2fsprogs   # the VM lab (tests/vm)
    apt-utils python3   # the VM lab's package repository (apt-ftparchive; http.server, relay.py)
    ansible-core   # the converter's twin tests run real ansible-playbook
    lua-check   # scripts/lint.sh (luacheck), first thing in scripts/test.sh
    strace   # ssh.test_jump counts the controller's polls; ssh.test_session_review traces execs
    busybox   # ssh.test_session: the session's bootstrap under busybox sh
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
