#!/usr/bin/env bash
# Builds the vr-agent system-VM image: Debian bookworm with systemd, the kernel, SSH on 3922,
# a serial console, vr-agent (the package image/build-deb.sh makes) and what it drives
# (nftables, conntrack, strongSwan charon with VICI, FRR), CloudStack's /opt/cloud/bin front
# doors (from the package) and the QEMU guest agent that delivers CloudStack's boot cmdline.
#
# The image is locked: every account's password is locked (root included: nobody logs in on the
# console by password and `su` asks for a password nobody has), sshd takes keys only and listens
# on the control address only (image/overlay/etc/ssh/sshd_config.d/vr-agent.conf,
# vr-ssh-listen.service), and FRR opens no TCP vty port. The build fails if any of that is not so.
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

# shellcheck source=image/host-tools.sh
. image/host-tools.sh
host_packages mmdebstrap e2fsprogs dpkg-dev
host_qemu

deb=$(bash image/build-deb.sh | tail -1)
deb=$(realpath "$deb")
root=$(mktemp -d /var/tmp/vr-image.XXXXXX)
trap 'rm -rf "$root"' EXIT

packages=(
  systemd-sysv udev linux-image-amd64 kmod iproute2 iputils-ping ifupdown
  # CloudStack's runDiagnostics (diagnostics.py) runs traceroute and arping too.
  traceroute iputils-arping
  openssh-server ca-certificates procps less netbase
  nftables conntrack strongswan-charon strongswan-swanctl libcharon-extra-plugins
  libstrongswan-standard-plugins frr
  # The daemons the agent owns: guest DHCP/DNS, router advertisements, the redundant pair, load balancing. The
  # agent starts them with its own configs; their packaged units stay disabled (below).
  dnsmasq-base dnsmasq-utils radvd keepalived conntrackd haproxy
  # CloudStack on KVM writes the boot cmdline through the guest agent (guest-file-*).
  qemu-guest-agent
)
inc=$(IFS=,; echo "${packages[*]}")
echo "build: debootstrapping bookworm into $root"
# mmdebstrap's progress goes to a log beside the image; the package checks print their steps.
mmdebstrap --variant=minbase --include="$inc" \
  --customize-hook="copy-in $deb image/package-lifecycle.sh /tmp" \
  --customize-hook='chroot "$1" sh /tmp/package-lifecycle.sh /tmp/'"$(basename "$deb")" \
  --customize-hook='rm "$1"/tmp/vr-agent_*.deb "$1"/tmp/package-lifecycle.sh' \
  --customize-hook='cp -a image/overlay/. "$1"/' \
  --customize-hook='chroot "$1" systemctl enable vr-agent.service vr-agent-seed.service vr-agent-console.service vr-ssh-keygen.service vr-ssh-listen.service' \
  --customize-hook='echo vr-router > "$1/etc/hostname"' \
  --customize-hook='chroot "$1" systemctl disable conntrackd.service keepalived.service radvd.service haproxy.service' \
  --customize-hook='chroot "$1" sh -c "for u in \$(cut -d: -f1 /etc/passwd); do passwd -q -l \$u; done"' \
  --customize-hook='sed -i -E "s/^([a-z0-9]+_options=\"[^\"]*)\"/\1 -P 0\"/" "$1"/etc/frr/daemons' \
  --customize-hook='sed -i "s/^ospfd=no/ospfd=yes/" "$1"/etc/frr/daemons' \
  --customize-hook='sed -i "s/^bgpd=no/bgpd=yes/" "$1"/etc/frr/daemons' \
  --customize-hook='copy-in image/lock-check.sh /tmp' \
  --customize-hook='chroot "$1" sh /tmp/lock-check.sh' \
  --customize-hook='rm "$1"/tmp/lock-check.sh' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  bookworm "$root" http://deb.debian.org/debian > "$out/mmdebstrap.log" 2>&1 \
  || { tail -40 "$out/mmdebstrap.log" >&2; echo "build: mmdebstrap failed (log: $out/mmdebstrap.log)" >&2; exit 1; }
grep -E '^(package-lifecycle|lock-check)' "$out/mmdebstrap.log"

cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
rm -f "$out/root.raw"
# The root filesystem straight from the tree (no loop mount needed).
mkfs.ext4 -q -L vr-root -d "$root" "$out/root.raw" 2G
qemu-img convert -O qcow2 "$out/root.raw" "$out/vr-router.qcow2"
rm -f "$out/root.raw"
echo "build: $out/vr-router.qcow2 ($(du -h "$out/vr-router.qcow2" | cut -f1)), kernel and initrd beside it"
