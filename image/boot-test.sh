#!/usr/bin/env bash
# Boots the system-VM image twice under qemu (software emulation) and reads the serial console:
#  1. with a seed disk holding examples/image/push.json: the agent applies it, and the console
#     shows the push result and the port forward in `nft list table ip vr`;
#  2. without the seed disk, after the reboot: the console shows the same table, replayed from
#     the stored state before any push arrived.
#
#   image/boot-test.sh [IMAGE_DIR]     # default target/image (run image/build.sh first)
set -euo pipefail
cd "$(dirname "$0")/.."
img=$(realpath "${1:-target/image}")
[ -f "$img/vr-router.qcow2" ] || { echo "no image in $img: run image/build.sh" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
work=$(mktemp -d /var/tmp/vr-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A throw-away disk on top of the image: both boots share it, the image stays pristine.
qemu-img create -q -f qcow2 -b "$img/vr-router.qcow2" -F qcow2 "$work/disk.qcow2"
mkdir "$work/seed"
cp examples/image/push.json "$work/seed/push.json"
mkfs.ext4 -q -L VRSEED -d "$work/seed" "$work/seed.img" 8M

# Software emulation by default: it works everywhere (nested KVM on these build machines
# starts the guest but never gets its kernel going). VR_QEMU_ACCEL=kvm where KVM is real.
accel=${VR_QEMU_ACCEL:-tcg}
boot() { # boot LOG [extra qemu args...]
  local log=$1; shift
  timeout 900 qemu-system-x86_64 -machine q35,accel=$accel -m 1024 -smp 2 -nographic \
    -drive "file=$work/disk.qcow2,if=virtio" "$@" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 vr.poweroff" \
    -serial "file:$log" -monitor none </dev/null >/dev/null
}
section() { sed -n '/==== VR-CONSOLE BEGIN/,/==== VR-CONSOLE END/p' "$1" | tr -d '\r'; }

t0=$(date +%s)
echo "boot-test: boot 1 (seed disk with a push), accel=$accel"
boot "$work/boot1.log" -drive "file=$work/seed.img,if=virtio,format=raw"
s1=$(section "$work/boot1.log")
echo "$s1"
echo "$s1" | grep -q 'push result push.json.result.json: .*"ok": *true' || { echo "boot-test: FAIL: the push was not applied" >&2; tail -50 "$work/boot1.log" >&2; exit 1; }
echo "$s1" | grep -qE '192.0.2.10 . (tcp|6) . 8080 : 10.1.1.10 . 80' || { echo "boot-test: FAIL: no port forward after the push" >&2; exit 1; }

echo "boot-test: boot 2 (no seed disk): the state must come back by replay"
boot "$work/boot2.log"
s2=$(section "$work/boot2.log")
echo "$s2"
echo "$s2" | grep -qE '192.0.2.10 . (tcp|6) . 8080 : 10.1.1.10 . 80' || { echo "boot-test: FAIL: the port forward was not replayed" >&2; exit 1; }
echo "$s2" | grep -q 'replay: ok' || { echo "boot-test: FAIL: no successful replay in status" >&2; exit 1; }
if echo "$s2" | grep -q 'last push:'; then echo "boot-test: FAIL: boot 2 received a push; the test proves nothing" >&2; exit 1; fi
echo "$s2" | grep -q '192.0.2.10/24' || { echo "boot-test: FAIL: the address was not replayed" >&2; exit 1; }
echo "boot-test: PASS (two boots in $(( $(date +%s) - t0 )) s)"
