#!/usr/bin/env bash
# Builds the vr-agent system-VM image: Debian bookworm with systemd, the kernel, SSH on 3922,
# a serial console, vr-agent (the package image/build-deb.sh makes) and what it drives
# (nftables, conntrack, strongSwan charon with VICI, FRR).
#
#   image/build.sh [OUT_DIR]      # default target/image; writes vr-router.qcow2, vmlinuz, initrd.img
#
# One command from a clean clone, as root, a few minutes (most of it downloading packages).
# Boot it with image/boot-test.sh, or by hand:
#   qemu-system-x86_64 -m 1024 -nographic -drive file=target/image/vr-router.qcow2,if=virtio \
#     -kernel target/image/vmlinuz -initrd target/image/initrd.img \
#     -append "root=/dev/vda rw console=ttyS0 net.ifnames=0"
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/image}")
mkdir -p "$out"

need=()
for p in mmdebstrap e2fsprogs qemu-utils dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

deb=$(bash image/build-deb.sh | tail -1)
deb=$(realpath "$deb")
root=$(mktemp -d /var/tmp/vr-image.XXXXXX)
trap 'rm -rf "$root"' EXIT

packages=(
  systemd-sysv udev linux-image-amd64 kmod iproute2 iputils-ping ifupdown
  openssh-server ca-certificates procps less netbase
  nftables conntrack strongswan-charon strongswan-swanctl libcharon-extra-plugins
  libstrongswan-standard-plugins frr
)
inc=$(IFS=,; echo "${packages[*]}")
echo "build: debootstrapping bookworm into $root"
# mmdebstrap's progress goes to a log beside the image; the package checks print their steps.
mmdebstrap --variant=minbase --include="$inc" \
  --customize-hook="copy-in $deb image/package-lifecycle.sh /tmp" \
  --customize-hook='chroot "$1" sh /tmp/package-lifecycle.sh /tmp/'"$(basename "$deb")" \
  --customize-hook='rm "$1"/tmp/vr-agent_*.deb "$1"/tmp/package-lifecycle.sh' \
  --customize-hook='cp -a image/overlay/. "$1"/' \
  --customize-hook='chroot "$1" systemctl enable vr-agent.service vr-agent-seed.service vr-agent-console.service vr-ssh-keygen.service' \
  --customize-hook='echo vr-router > "$1/etc/hostname"' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  bookworm "$root" http://deb.debian.org/debian > "$out/mmdebstrap.log" 2>&1 \
  || { tail -40 "$out/mmdebstrap.log" >&2; echo "build: mmdebstrap failed (log: $out/mmdebstrap.log)" >&2; exit 1; }
grep '^package-lifecycle' "$out/mmdebstrap.log"

cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
rm -f "$out/root.raw"
# The root filesystem straight from the tree (no loop mount needed).
mkfs.ext4 -q -L vr-root -d "$root" "$out/root.raw" 2G
qemu-img convert -O qcow2 "$out/root.raw" "$out/vr-router.qcow2"
rm -f "$out/root.raw"
echo "build: $out/vr-router.qcow2 ($(du -h "$out/vr-router.qcow2" | cut -f1)), kernel and initrd beside it"
