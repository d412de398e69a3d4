#!/usr/bin/env bash
# Runs every test of vr-agent: unit tests, golden tests, and the end-to-end tests in network
# namespaces (as root). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
