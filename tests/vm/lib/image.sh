#!/usr/bin/env bash
# The VM lab's Debian 12 disk image (docs/vm-lab.md).  Builds it once and
# prints the folder that holds it:
#   rootfs.raw        ext4 root file system (never written to: boots use an
#                     overlay, see vm.sh)
#   vmlinuz, initrd.img   the guest's own kernel and initramfs
#   id_ed25519[.pub]  the client key (root, ops and plain accept it)
#   host_ed25519.pub  the guest's SSH host key (for known_hosts)
#   ops.password      the password `ops` gives to sudo
#   build.log         debootstrap's output
# The folder is $CUTOVER_VM_CACHE/<recipe hash> (default /var/cache/cutover-vm):
# the hash covers this whole file (the package list and the configuration
# below), so a changed recipe builds a new image and an unchanged one is
# reused by every test and CI run on the machine.  Needs root (debootstrap).
set -euo pipefail
script=$(readlink -f "$0")
cache_root=${CUTOVER_VM_CACHE:-/var/cache/cutover-vm}
recipe=$(sha256sum "$script" | cut -c1-16)
dir=$cache_root/$recipe

# --- the recipe ---------------------------------------------------------
suite=bookworm
packages=systemd-sysv,dbus,udev,openssh-server,sudo,linux-image-amd64,initramfs-tools,iproute2,procps,kmod,curl
hostname=cutover-vm
domain=lab.test
image_size=3G
# -------------------------------------------------------------------------

say() { printf 'vm image: %s\n' "$*" >&2; }

if [ -f "$dir/ready" ]; then echo "$dir"; exit 0; fi
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
# One build at a time on the machine; a second caller waits for it
if ! flock -n 9; then
    say "another build holds $cache_root/.lock; waiting (up to 60 min)"
    flock -w 3600 9 || { say "gave up waiting for the lock"; exit 1; }
fi
if [ -f "$dir/ready" ]; then echo "$dir"; exit 0; fi

# The archive apt uses on this machine, read through apt's own parser of
# its sources (nothing is hard-coded); CUTOVER_VM_MIRROR overrides it.
mirror=${CUTOVER_VM_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' \
             "Codename: $suite" 'Component: main' 'Origin: Debian' | head -n1)
fi
[ -n "$mirror" ] || { say "no Debian $suite archive in apt's sources; set CUTOVER_VM_MIRROR"; exit 1; }
for tool in debootstrap mkfs.ext4 ssh-keygen openssl; do
    command -v "$tool" >/dev/null || { say "$tool is missing (bash scripts/deps.sh)"; exit 1; }
done

work=$cache_root/.build-$recipe
rm -rf "$work"
mkdir -p "$work"
tree=$work/tree
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
say "debootstrap $suite from $mirror into $work (several minutes)"
log=$work/build.log
debootstrap --variant=minbase --include="$packages" "$suite" "$tree" "$mirror" >"$log" 2>&1 &
bs=$!
while kill -0 "$bs" 2>/dev/null; do
    sleep 15
    kill -0 "$bs" 2>/dev/null && say "debootstrap running ($(( $(date +%s) - start )) s): $(tail -n1 "$log" | cut -c1-70)"
done
if ! wait "$bs"; then
    say "debootstrap failed; the end of its log:"; tail -n 30 "$log" >&2; exit 1
fi
say "debootstrap done in $(( $(date +%s) - start )) s"

in_tree() { chroot "$tree" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# System identity and networking: qemu's user network, addressed statically
# (no DHCP wait; with restrict=on its DHCP offers no router, and a default
# route is what a real server has: facts read it)
echo "$hostname" >"$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s.%s %s\n::1\tlocalhost ip6-localhost\n' \
    "$hostname" "$domain" "$hostname" >"$tree/etc/hosts"
printf '/dev/vda\t/\text4\trw,errors=remount-ro\t0\t1\n' >"$tree/etc/fstab"
rm -f "$tree/etc/resolv.conf"; echo 'nameserver 10.0.2.3' >"$tree/etc/resolv.conf"
mkdir -p "$tree/etc/systemd/network"
printf '[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n' \
    >"$tree/etc/systemd/network/10-eth0.network"
head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tree/etc/machine-id"; echo >>"$tree/etc/machine-id"
in_tree systemctl enable systemd-networkd.service >/dev/null 2>&1
# Nothing waits on the network or prompts at first boot; no timers touch apt
in_tree systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service >/dev/null 2>&1 || true
# No outside network in the lab: apt has no sources until a test adds its own
: >"$tree/etc/apt/sources.list"

# Users: root by key; ops needs a password for sudo; plain has no sudo
ssh-keygen -q -t ed25519 -N '' -C cutover-vm-lab -f "$work/id_ed25519"
openssl rand -hex 12 >"$work/ops.password"
chmod 600 "$work/ops.password" "$work/id_ed25519"
in_tree useradd --create-home --shell /bin/bash --groups sudo ops
in_tree useradd --create-home --shell /bin/bash plain
hash=$(openssl passwd -6 -stdin <"$work/ops.password")
in_tree usermod -p "$hash" ops
in_tree usermod -p '*' plain
for u in root ops plain; do
    home=$(in_tree getent passwd "$u" | cut -d: -f6)
    install -d -m 700 "$tree$home/.ssh"
    install -m 600 "$work/id_ed25519.pub" "$tree$home/.ssh/authorized_keys"
    in_tree chown -R "$u:" "$home/.ssh"
done

# SSH: one host key made for this image, keys only
rm -f "$tree"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C "$hostname" -f "$tree/etc/ssh/ssh_host_ed25519_key"
cp "$tree/etc/ssh/ssh_host_ed25519_key.pub" "$work/host_ed25519.pub"
cat >"$tree/etc/ssh/sshd_config.d/cutover-lab.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
CONF

# Kernel and initramfs boot from outside the image (qemu -kernel/-initrd)
cp "$(ls "$tree"/boot/vmlinuz-* | sort -V | tail -n1)" "$work/vmlinuz"
cp "$(ls "$tree"/boot/initrd.img-* | sort -V | tail -n1)" "$work/initrd.img"
in_tree apt-get clean
rm -rf "$tree"/var/lib/apt/lists/*

say "making the ext4 image ($image_size)"
truncate -s "$image_size" "$work/rootfs.raw"
mkfs.ext4 -q -F -L cutover-root -d "$tree" "$work/rootfs.raw"
rm -rf "$tree"
chmod 444 "$work/rootfs.raw"
echo "$(( $(date +%s) - start ))" >"$work/build-seconds"
mv "$work/build.log" "$work/build.log" 2>/dev/null || true
touch "$work/ready"
rm -rf "$dir"
mv "$work" "$dir"
trap - EXIT
say "built $dir in $(cat "$dir/build-seconds") s"
echo "$dir"
