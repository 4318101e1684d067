#!/usr/bin/env bash
# The VM lab's package repository (docs/vm-lab.md): builds small Debian
# packages with dpkg-deb and indexes them with apt-ftparchive into OUT, a
# flat repository (`deb [trusted=yes] http://10.0.2.100/ ./` on the
# guest).  Every package is architecture all and built here, from text in
# this file:
#   cutover-demo 1.0, 1.1   1.1 depends on cutover-demo-lib (new in 1.1)
#   cutover-demo-lib 1.0
#   cutover-demod 1.0, 1.1  a systemd service with a conffile
#                           (/etc/cutover-demod.conf, changed in 1.1); 1.1's
#                           postinst asks for a reboot (/var/run/reboot-required)
#   cutover-slow 1.0        a postinst that holds dpkg's lock until
#                           /run/cutover-slow.release exists (at most SLOW
#                           seconds, default 300)
# Usage: repo.sh OUT [SLOW]
set -euo pipefail
out=${1:?usage: repo.sh OUT [SLOW]}
slow=${2:-300}
for tool in dpkg-deb apt-ftparchive; do
    command -v "$tool" >/dev/null || { echo "repo.sh: $tool is missing (bash scripts/deps.sh)" >&2; exit 1; }
done
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pkg NAME VERSION DEPENDS: a package from the tree in $work/NAME-VERSION
pkg() {
    local name=$1 version=$2 depends=$3 root=$work/$1-$2
    mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$name"
    printf '%s %s, built by the cutover VM lab\n' "$name" "$version" >"$root/usr/share/doc/$name/README"
    {
        echo "Package: $name"
        echo "Version: $version"
        echo "Architecture: all"
        echo "Maintainer: cutover VM lab <lab@cutover.invalid>"
        [ -n "$depends" ] && echo "Depends: $depends"
        echo "Section: misc"
        echo "Priority: optional"
        echo "Description: cutover VM lab package $name"
        echo " Built by tests/vm/lib/repo.sh for the apt tests."
    } >"$root/DEBIAN/control"
    [ -f "$root/DEBIAN/postinst" ] && chmod 755 "$root/DEBIAN/postinst"
    [ -f "$root/DEBIAN/prerm" ] && chmod 755 "$root/DEBIAN/prerm"
    [ -f "$root/DEBIAN/postrm" ] && chmod 755 "$root/DEBIAN/postrm"
    dpkg-deb --root-owner-group -Zgzip --build "$root" "$out/${name}_${version}_all.deb" >/dev/null
}

for v in 1.0 1.1; do
    mkdir -p "$work/cutover-demo-$v/usr/share/cutover-demo"
    echo "$v" >"$work/cutover-demo-$v/usr/share/cutover-demo/version"
done
pkg cutover-demo 1.0 ""
pkg cutover-demo 1.1 "cutover-demo-lib (>= 1.0)"
mkdir -p "$work/cutover-demo-lib-1.0/usr/share/cutover-demo-lib"
echo 1.0 >"$work/cutover-demo-lib-1.0/usr/share/cutover-demo-lib/version"
pkg cutover-demo-lib 1.0 ""

for v in 1.0 1.1; do
    r=$work/cutover-demod-$v
    mkdir -p "$r/etc" "$r/lib/systemd/system" "$r/usr/sbin" "$r/DEBIAN"
    if [ "$v" = 1.0 ]; then
        printf 'greeting=hello\n' >"$r/etc/cutover-demod.conf"
    else
        printf 'greeting=hello\nlevel=2\n' >"$r/etc/cutover-demod.conf"
    fi
    echo /etc/cutover-demod.conf >"$r/DEBIAN/conffiles"
    cat >"$r/usr/sbin/cutover-demod" <<SH
#!/bin/sh
# cutover-demod $v: says its version and its configuration, then waits
echo "cutover-demod $v: \$(tr '\n' ' ' </etc/cutover-demod.conf)"
exec sleep infinity
SH
    chmod 755 "$r/usr/sbin/cutover-demod"
    printf '[Unit]\nDescription=cutover VM lab demo service\n\n[Service]\nExecStart=/usr/sbin/cutover-demod\n\n[Install]\nWantedBy=multi-user.target\n' \
        >"$r/lib/systemd/system/cutover-demod.service"
    {
        echo '#!/bin/sh'
        echo 'set -e'
        echo 'if [ "$1" = configure ] && [ -d /run/systemd/system ]; then'
        echo '    systemctl daemon-reload'
        echo '    systemctl enable cutover-demod.service >/dev/null 2>&1'
        echo '    systemctl restart cutover-demod.service'
        echo 'fi'
        if [ "$v" = 1.1 ]; then
            echo 'if [ "$1" = configure ]; then'
            echo '    touch /var/run/reboot-required'
            echo '    echo cutover-demod >>/var/run/reboot-required.pkgs'
            echo 'fi'
        fi
    } >"$r/DEBIAN/postinst"
    printf '#!/bin/sh\nset -e\nif [ "$1" = remove ] && [ -d /run/systemd/system ]; then\n    systemctl disable --now cutover-demod.service >/dev/null 2>&1 || true\nfi\n' \
        >"$r/DEBIAN/prerm"
    printf '#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n' >"$r/DEBIAN/postrm"
    pkg cutover-demod "$v" ""
done

mkdir -p "$work/cutover-slow-1.0/DEBIAN"
printf '#!/bin/sh\ntouch /run/cutover-slow.started\ni=0\nwhile [ ! -e /run/cutover-slow.release ] && [ $i -lt %s ]; do sleep 1; i=$((i+1)); done\n' \
    "$slow" >"$work/cutover-slow-1.0/DEBIAN/postinst"
pkg cutover-slow 1.0 ""

cd "$out"
apt-ftparchive packages . >Packages
gzip -9nk Packages
apt-ftparchive -o APT::FTPArchive::Release::Origin=cutover-lab -o APT::FTPArchive::Release::Label=cutover-lab \
    -o APT::FTPArchive::Release::Suite=lab -o APT::FTPArchive::Release::Codename=lab release . >Release
