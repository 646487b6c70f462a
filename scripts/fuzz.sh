#!/usr/bin/env bash
# Fuzzes the workflow parser/validator, the webhook proof/payload checks, the DAG layout, template
# checks and rendering, and jq compilation with libFuzzer,
# on stable Rust: `cargo fuzz run -s none` (no sanitizer, so no nightly `-Z` flag; safe Rust
# still reports panics, overflows and failed assertions). Not part of the test command.
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET (default 300)] [TARGET…]   (targets: definition webhook layout template jq)
#
# New inputs go to fuzz/corpus/<target>/ (kept between runs, not committed); a crash is saved
# under fuzz/artifacts/<target>/ and replayed with `cargo fuzz run -s none <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  echo "[fuzz] installing cargo-fuzz 0.13.2 (once per machine)"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(definition webhook layout template jq)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "[fuzz] $t for ${secs}s"
  (cd fuzz && cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -max_len=16384 -print_final_stats=1 \
    -timeout=5 -rss_limit_mb=1024)
done
