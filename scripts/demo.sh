#!/usr/bin/env bash
# The demo router: vr-agent in throwaway network namespaces with real traffic through NAT, an
# IPsec tunnel and OSPF. Installs what is missing first; removes everything it created.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --bins
exec target/debug/vr-demo "$@"
