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
#   vm.sh accel [IMAGE]          print kvm or tcg: what a boot would use
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

# accel IMAGE: kvm or tcg.  KVM only when /dev/kvm is there and writable
# and the image's own kernel, started under it, prints its banner on the
# serial port within $CUTOVER_VM_KVM_PROBE seconds (default 20).  /dev/kvm
# can open and qemu start while the guest never runs: seen here under
# nested virtualisation, a guest that printed nothing after the boot stub
# in 120 s, and qemu aborting on an MSR with -cpu host.  The verdict is
# kept beside the image for this boot of the machine (its boot_id), so the
# VM tests of a run probe once.  CUTOVER_VM_ACCEL=kvm|tcg skips the probe.
accel() {
    local image=$1 verdict probe pid waited=0 result=tcg
    case "${CUTOVER_VM_ACCEL:-}" in
    kvm|tcg) echo "$CUTOVER_VM_ACCEL"; return 0 ;;
    "") ;;
    *) say "CUTOVER_VM_ACCEL must be kvm or tcg, not '$CUTOVER_VM_ACCEL'"; return 1 ;;
    esac
    # CUTOVER_VM_KVM_DEVICE: for tests of this function only
    local dev=${CUTOVER_VM_KVM_DEVICE:-/dev/kvm}
    if ! [ -c "$dev" ] || ! [ -w "$dev" ]; then echo tcg; return 0; fi
    case ${CUTOVER_VM_KVM_PROBE:-20} in
    ''|*[!0-9]*) say "CUTOVER_VM_KVM_PROBE must be a whole number of seconds, not '$CUTOVER_VM_KVM_PROBE'"; return 1 ;;
    esac
    verdict=$(accel_verdict_file "$image")
    case $(cat "$verdict" 2>/dev/null || true) in
    kvm) echo kvm; return 0 ;;
    tcg) echo tcg; return 0 ;;
    esac
    probe=$(mktemp -d /tmp/cutover-vm-probe.XXXXXX)
    # no disk: the kernel prints its banner first, then panics (panic=-1,
    # -no-reboot: qemu exits), unless the probe has ended it already
    setpriv --pdeathsig KILL qemu-system-x86_64 -accel kvm -m 256 -smp 1 \
        -kernel "$image/vmlinuz" -append "console=ttyS0 earlyprintk=ttyS0 panic=-1" \
        -no-reboot -display none -monitor none -serial "file:$probe/serial" \
        >/dev/null 2>"$probe/err" &
    pid=$!
    # until the banner shows, qemu ends, or the bound
    while [ "$waited" -lt $(( ${CUTOVER_VM_KVM_PROBE:-20} * 4 )) ] &&
          ! grep -q "Linux version" "$probe/serial" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
        sleep 0.25
        waited=$(( waited + 1 ))
    done
    grep -q "Linux version" "$probe/serial" 2>/dev/null && result=kvm
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "$result" = tcg ]; then
        local why
        why=$(grep -v 'warning:' "$probe/err" | head -n 1 || true)
        say "KVM is present but the guest kernel printed nothing under it in ${CUTOVER_VM_KVM_PROBE:-20} s${why:+ (qemu: $why)}"
        say "using TCG (software emulation) for this boot of the machine; set CUTOVER_VM_ACCEL=kvm to force KVM"
    fi
    rm -rf "$probe"
    keep_verdict "$image" "$result"
    echo "$result"
}

# keep_verdict IMAGE kvm|tcg: written whole (a reader never sees half)
keep_verdict() {
    local verdict
    verdict=$(accel_verdict_file "$1")
    echo "$2" >"$verdict.tmp.$$" && mv -f "$verdict.tmp.$$" "$verdict"
}

# where accel keeps its verdict: beside the image, for this boot
accel_verdict_file() {
    local boot
    boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
    echo "$(dirname "$1")/.accel-$(basename "$1")-$boot"
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
# A guest that does not come up under KVM is booted again under TCG, and
# TCG is kept for this boot of the machine (accel's verdict).
boot() {
    local st=$1 daemon=$2 image acc repo_port
    image=$(bash "$here/image.sh")
    mkdir -p "$st"
    echo "$image" >"$st/image"
    acc=$(accel "$image") || return 1
    # The lab's package repository: 10.0.2.100:80 in the guest, relayed by
    # relay.py (one per connection) to a loopback port here.  restrict=on
    # lets only such explicit forwards through (10.0.2.2 itself is closed).
    repo_port=$(free_port) || { say "no free loopback port"; return 1; }
    echo "$repo_port" >"$st/repo-port"
    local rc=0
    boot_under "$st" "$daemon" "$image" "$acc" "$repo_port" || rc=$?
    [ "$rc" -ne 0 ] || return 0
    # Only a guest that printed nothing at all under KVM is KVM's fault; a
    # slow or broken guest, or a failure here (rc 2), is not retried
    if [ "$rc" -ne 1 ] || [ "$acc" != kvm ] || [ -n "${CUTOVER_VM_ACCEL:-}" ] ||
       [ -s "$st/serial.log" ]; then
        return 1
    fi
    say "the guest printed nothing under KVM; booting again under TCG (kept for this boot of the machine)"
    keep_verdict "$image" tcg
    boot_under "$st" "$daemon" "$image" tcg "$repo_port"
}

# boot_under STATE DAEMON IMAGE ACCEL REPO_PORT: one boot, on a new
# overlay, tried on up to three ports.  1: the guest did not come up; 2:
# it could not be started here (no overlay, no port).  It runs as an `if`
# condition, where set -e does not apply: every step checks its status.
boot_under() {
    local st=$1 daemon=$2 image=$3 acc=$4 repo_port=$5 port
    rm -f "$st/overlay.qcow2" "$st/serial.log" "$st/qemu.pid"
    # The overlay is thrown away with the test, so the guest's flushes (dpkg
    # syncs every file it unpacks) need not reach the disk: cache=unsafe.
    # A reboot inside the guest keeps the qemu process and its cache.
    qemu-img create -q -f qcow2 -F raw -b "$image/rootfs.raw" "$st/overlay.qcow2" ||
        { say "cannot make the overlay $st/overlay.qcow2"; return 2; }
    boot_limit=$BOOT_TIMEOUT  # global: wait_ssh reads it
    if [ -z "$boot_limit" ]; then
        if [ "$acc" = kvm ]; then boot_limit=120; else boot_limit=420; fi
    fi
    local smp=$SMP
    if [ -z "$smp" ]; then
        if [ "$acc" = kvm ]; then smp=2; else smp=1; fi
    fi
    local start attempt py
    start=$(date +%s)
    py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
    QEMU_PID=
    for attempt in 1 2 3; do
        port=$(free_port) || { say "no free loopback port"; return 2; }
        { echo "$port" >"$st/port" &&
          printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$image/host_ed25519.pub")" >"$st/known_hosts"; } ||
            { say "cannot write in $st"; return 2; }
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
        if [ "$now" -ge "$boot_limit" ]; then say "no ssh after $now s (limit $boot_limit s)"; return 1; fi
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
accel)
    # the accelerator a boot would use (probing KVM if need be)
    accel "${2:-$(bash "$here/image.sh")}"
    ;;
*)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
