#!/usr/bin/env bash
# The demo router: vr-agent in throwaway network namespaces with real traffic through NAT, a
# load balancer, an IPsec tunnel, OSPF and BGP, IPv6 (SLAAC), a guest using DHCP, DNS, metadata
# and the password server, a metrics scrape, and the CloudStack front doors. Installs what is missing first; removes everything it created.
#
#   bash scripts/demo.sh            # the namespace demo (about 15 s once built)
#   bash scripts/demo.sh --image    # also build the system-VM image and boot it twice under
#                                   # qemu: a push from a seed disk, then its replay after reboot;
#                                   # checks the image is locked (root password login refused
#                                   # on the console, SSH by key only on the control address,
#                                   # only the named listeners). Installs qemu-system-x86 and
#                                   # qemu-utils (one release) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --bins
image=false
args=()
for a in "$@"; do
  if [ "$a" = "--image" ]; then image=true; else args+=("$a"); fi
done
target/debug/vr-demo "${args[@]}"
if $image; then
  bash image/build.sh
  bash image/boot-test.sh
fi
