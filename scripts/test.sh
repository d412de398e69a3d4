#!/usr/bin/env bash
# Runs every test of vr-agent: unit tests, golden tests, and the end-to-end tests in network
# namespaces (as root). Installs what is missing first. Ends with the robustness summary
# table the long-running checks recorded (crash loop, hostile corpus, conntrack, soak,
# secrets); it fails if any row shows a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --bins
rm -rf target/tmp/robustness
status=0
cargo test --workspace --no-fail-fast || status=$?
cargo run -q -p vr-tests --bin vr-summary || status=$((status == 0 ? 1 : status))
exit "$status"
