#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) from its seed corpus and prints one line
# per target: executions and verdict. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP lets
# the machine's stable toolchain provide them. Usage: fuzz/run.sh [SECONDS] [TARGET...]
# The long run (README): FUZZ_RUNS=10000000 FUZZ_SANITIZER=none fuzz/run.sh 0 -- a fixed number
# of executions per target instead of a time, without ASan (the targets are safe Rust: a panic
# or abort is the finding, and the run is ~3-10x faster).
# FUZZ_PROFILE=dev builds without optimisation (debug assertions and overflow checks on): CI's
# 10-second smoke pass spends its time building, and an optimised ASan build of the agent's
# dependency tree (tokio, hyper, zip) costs several times the unoptimised one.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}; shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@"); [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
export RUSTC_BOOTSTRAP=1
case "${FUZZ_PROFILE:-release}" in dev) profile=-D ;; release) profile=-O ;; *) echo "FUZZ_PROFILE: dev or release" >&2; exit 2 ;; esac
for t in "${targets[@]}"; do
  corpus=corpus/$t; mkdir -p "$corpus"
  seeds=seeds/${t%%_*}; [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  log=$(mktemp)
  if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="$secs"); fi
  start=$(date +%s)
  if cargo fuzz run "$profile" -s "${FUZZ_SANITIZER:-address}" "$t" "$corpus" -- "${limit[@]}" -rss_limit_mb=2048 >"$log" 2>&1; then
    echo "fuzz $t: $(grep -ao 'Done [0-9]* runs' "$log" | tail -1 | cut -d' ' -f2) executions in $(( $(date +%s) - start ))s, no crash"
  else
    echo "fuzz $t: FAILED"; tail -40 "$log"; exit 1
  fi
  rm -f "$log"
done
