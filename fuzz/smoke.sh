#!/usr/bin/env bash
# Runs every fuzz target briefly (CI): installs cargo-fuzz when missing,
# builds the targets, and runs each for FUZZ_SECS seconds (default 20) from
# its seeds. A crash fails the run. Long campaigns: see README, Fuzzing.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECS:-20}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# libFuzzer's instrumentation needs nightly flags; the pinned stable
# toolchain allows them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in $(cargo fuzz list); do
  corpus="$(mktemp -d)"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  log="$corpus.log"
  status=0
  cargo fuzz run -O "$t" "$corpus" "${seeds[@]}" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(grep -Eo "number_of_executed_units: [0-9]+" "$log" | grep -Eo "[0-9]+" || echo "?")
  echo "fuzz $t: $runs executions in ${secs} s"
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz $t failed (exit $status); the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
  rm -rf "$corpus" "$log"
done
echo "fuzz smoke: every target ran ${secs} s without a finding"
