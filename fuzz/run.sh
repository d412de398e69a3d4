#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) from its seed corpus and prints one line
# per target: executions and verdict. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP lets
# the machine's stable toolchain provide them. Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@"); [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  corpus=corpus/$t; mkdir -p "$corpus"
  seeds=seeds/${t%%_*}; [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  log=$(mktemp)
  if cargo fuzz run -O "$t" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    echo "fuzz $t: $(grep -o 'Done [0-9]* runs' "$log" | tail -1 | cut -d' ' -f2) executions in ${secs}s, no crash"
  else
    echo "fuzz $t: FAILED"; tail -40 "$log"; exit 1
  fi
  rm -f "$log"
done
