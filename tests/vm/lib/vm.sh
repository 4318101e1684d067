#!/usr/bin/env bash
# The VM lab (docs/vm-lab.md): a Debian 12 guest under qemu, reached over
# SSH on a loopback port.
#   vm.sh with-vm CMD [ARG...]   boot a throwaway VM, run CMD with the VM's
#                                coordinates in the environment, then stop it
#   vm.sh up [STATE]             boot one in the background (default state
#                                folder /tmp/cutover-vm) and print how to use it
#   vm.sh down [STATE]           stop it
#   vm.sh ssh [STATE] [ARGS...]  ssh into it as root
#   vm.sh image                  build (or find) the image; print its folder
# CMD sees CUTOVER_VM_PORT, CUTOVER_VM_KEY (client key),
# CUTOVER_VM_KNOWN_HOSTS, CUTOVER_VM_IMAGE (the image folder: ops.password
# ...), CUTOVER_VM_STATE (the boot's folder: serial.log, overlay) and
# CUTOVER_VM_BOOT_SECONDS, and CUTOVER_VM_REPO_PORT: the guest's connections
# to http://10.0.2.100/ reach 127.0.0.1:CUTOVER_VM_REPO_PORT on this machine
# (the tests' package repository serves there).  The cached image is never written: every boot
# has its own copy-on-write overlay.  Needs root (the image build) and qemu.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BOOT_TIMEOUT=${CUTOVER_VM_BOOT_TIMEOUT:-}
MEMORY=${CUTOVER_VM_MEMORY:-1024}
# vCPUs: 1 under TCG by default. Each emulated vCPU is a host thread; on a
# 2-core machine two of them compete with the test stages that run beside
# the VM lab, and a vCPU preempted for long showed soft lockups after a
# warm reboot. KVM: 2.
SMP=${CUTOVER_VM_SMP:-}

say() { printf 'vm: %s\n' "$*" >&2; }

# KVM only when the device is there and a probe start works; else TCG
accel() {
    if [ -c /dev/kvm ] && [ -w /dev/kvm ] &&
       echo quit | timeout 20 qemu-system-x86_64 -accel kvm -machine none -nodefaults \
           -display none -monitor stdio >/dev/null 2>&1; then
        echo kvm
    else
        echo tcg
    fi
}

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! ss -Htln "sport = :$p" | grep -q .; then echo "$p"; return 0; fi
    done
    return 1
}

ssh_args() {  # state folder -> the ssh options reaching its VM
    local st=$1
    echo "-p $(cat "$st/port") -i $(cat "$st/image")/id_ed25519 -o IdentitiesOnly=yes" \
         "-o UserKnownHostsFile=$st/known_hosts -o StrictHostKeyChecking=yes" \
         "-o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR"
}

# boot STATE DAEMON: starts qemu on an overlay of the image, waits for SSH.
# DAEMON=0: qemu is this shell's child (killed with it); 1: it daemonizes.
boot() {
    local st=$1 daemon=$2 image acc port
    image=$(bash "$here/image.sh")
    mkdir -p "$st"
    echo "$image" >"$st/image"
    rm -f "$st/overlay.qcow2" "$st/serial.log" "$st/qemu.pid"
    # The overlay is thrown away with the test, so the guest's flushes (dpkg
    # syncs every file it unpacks) need not reach the disk: cache=unsafe.
    # A reboot inside the guest keeps the qemu process and its cache.
    qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.raw" "$st/overlay.qcow2"
    acc=$(accel)
    if [ -z "$BOOT_TIMEOUT" ]; then
        if [ "$acc" = kvm ]; then BOOT_TIMEOUT=120; else BOOT_TIMEOUT=420; fi
    fi
    local smp=$SMP
    if [ -z "$smp" ]; then
        if [ "$acc" = kvm ]; then smp=2; else smp=1; fi
    fi
    local start attempt repo_port py
    start=$(date +%s)
    # The lab's package repository: 10.0.2.100:80 in the guest, relayed by
    # relay.py (one per connection) to a loopback port here.  restrict=on
    # lets only such explicit forwards through (10.0.2.2 itself is closed).
    repo_port=$(free_port) || { say "no free loopback port"; return 1; }
    echo "$repo_port" >"$st/repo-port"
    py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
    for attempt in 1 2 3; do
        port=$(free_port) || { say "no free loopback port"; return 1; }
        echo "$port" >"$st/port"
        printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$image/host_ed25519.pub")" >"$st/known_hosts"
        local cmd=(qemu-system-x86_64 -accel "$acc" -m "$MEMORY" -smp "$smp"
            -kernel "$image/vmlinuz" -initrd "$image/initrd.img"
            -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
            -drive "file=$st/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe"
            -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22,guestfwd=tcp:10.0.2.100:80-cmd:$py $here/relay.py $repo_port"
            -device virtio-net-pci,netdev=n0
            -display none -serial "file:$st/serial.log" -monitor none
            -pidfile "$st/qemu.pid")
        if [ "$daemon" = 1 ]; then
            "${cmd[@]}" -daemonize 2>"$st/qemu.err" || { cat "$st/qemu.err" >&2; continue; }
        else
            # dies with this shell even if it is killed outright
            setpriv --pdeathsig KILL "${cmd[@]}" 2>"$st/qemu.err" &
            QEMU_PID=$!
        fi
        say "booting Debian 12 ($acc, $smp vCPU, port 127.0.0.1:$port, serial log $st/serial.log)"
        if wait_ssh "$st" "$start"; then
            echo $(( $(date +%s) - start )) >"$st/boot-seconds"
            say "ssh is up on 127.0.0.1:$port after $(cat "$st/boot-seconds") s"
            return 0
        fi
        if grep -q "Could not set up host forwarding" "$st/qemu.err" 2>/dev/null; then
            say "port $port was taken; trying another"
            continue
        fi
        break
    done
    say "the VM did not come up; the end of its serial log:"
    tail -n 40 "$st/serial.log" >&2 || true
    cat "$st/qemu.err" >&2 || true
    stop "$st"
    return 1
}

qemu_pid() { [ -f "$1/qemu.pid" ] && cat "$1/qemu.pid" 2>/dev/null || true; }

wait_ssh() {
    local st=$1 start=$2 last=0 now pid
    sleep 2
    while :; do
        now=$(( $(date +%s) - start ))
        pid=$(qemu_pid "$st")
        if [ -n "${QEMU_PID:-}" ] && ! kill -0 "$QEMU_PID" 2>/dev/null; then say "qemu exited"; return 1; fi
        if [ -z "${QEMU_PID:-}" ] && { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; }; then say "qemu exited"; return 1; fi
        # shellcheck disable=SC2046
        if ssh $(ssh_args "$st") root@127.0.0.1 true 2>/dev/null; then return 0; fi
        if [ "$now" -ge "$BOOT_TIMEOUT" ]; then say "no ssh after $now s (limit $BOOT_TIMEOUT s)"; return 1; fi
        if [ $(( now - last )) -ge 20 ]; then
            say "waiting for ssh on 127.0.0.1:$(cat "$st/port") ($now s)"
            last=$now
        fi
        sleep 3
    done
}

stop() {
    local st=$1 pid
    pid=${QEMU_PID:-$(qemu_pid "$st")}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
with-vm)
    shift
    [ $# -gt 0 ] || { say "usage: vm.sh with-vm CMD [ARG...]"; exit 2; }
    st=$(mktemp -d /tmp/cutover-vm.XXXXXX)
    QEMU_PID=
    cleanup() { stop "$st"; rm -rf "$st"; }
    trap cleanup EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    boot "$st" 0
    export CUTOVER_VM_PORT CUTOVER_VM_KEY CUTOVER_VM_KNOWN_HOSTS CUTOVER_VM_IMAGE CUTOVER_VM_STATE CUTOVER_VM_BOOT_SECONDS
    export CUTOVER_VM_REPO_PORT
    CUTOVER_VM_REPO_PORT=$(cat "$st/repo-port")
    CUTOVER_VM_PORT=$(cat "$st/port")
    CUTOVER_VM_IMAGE=$(cat "$st/image")
    CUTOVER_VM_KEY=$CUTOVER_VM_IMAGE/id_ed25519
    CUTOVER_VM_KNOWN_HOSTS=$st/known_hosts
    CUTOVER_VM_STATE=$st
    CUTOVER_VM_BOOT_SECONDS=$(cat "$st/boot-seconds")
    # the command runs as a child, so the traps above still fire
    "$@" &
    child=$!
    trap 'kill -TERM $child 2>/dev/null; exit 143' TERM
    trap 'kill -INT $child 2>/dev/null; exit 130' INT
    wait "$child"
    ;;
up)
    st=${2:-/tmp/cutover-vm}
    if [ -n "$(qemu_pid "$st")" ] && kill -0 "$(qemu_pid "$st")" 2>/dev/null; then
        say "already up (state $st)"; exit 0
    fi
    boot "$st" 1
    # shellcheck disable=SC2046
    echo "ssh $(ssh_args "$st") root@127.0.0.1"
    echo "package repository: the guest's http://10.0.2.100/ is 127.0.0.1:$(cat "$st/repo-port") here (serve a folder there)"
    echo "users: root (key), ops (key; sudo password in $(cat "$st/image")/ops.password), plain (key, no sudo)"
    ;;
down)
    st=${2:-/tmp/cutover-vm}
    stop "$st"
    rm -f "$st/overlay.qcow2" "$st/qemu.pid"
    say "stopped"
    ;;
ssh)
    st=${2:-/tmp/cutover-vm}
    shift $(( $# >= 2 ? 2 : 1 ))
    # shellcheck disable=SC2046
    exec ssh $(ssh_args "$st") root@127.0.0.1 "$@"
    ;;
image)
    bash "$here/image.sh"
    ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
