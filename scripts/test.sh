#!/usr/bin/env bash
# Runs the whole test suite: unit, store (SQLite and PostgreSQL), API and browser tests.
# Installs and starts what the tests need first (scripts/setup.sh --test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"

echo "== Prometheus and Alertmanager: config and rule syntax, every alert's unit tests"
promtool check config observability/prometheus/prometheus.yml
promtool test rules observability/prometheus/tests/*.yml
amtool check-config observability/alertmanager/alertmanager.yml

echo "== formatting and lints (rustfmt; clippy on every target, warnings are errors)"
cargo fmt --all --check
cargo fmt --manifest-path site/Cargo.toml --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path site/Cargo.toml --all-targets -- -D warnings

echo "== Rust tests (engine, app, server; store tests on SQLite and PostgreSQL)"
cargo test --workspace --no-fail-fast

# After the tests: the debug server (the test build's, reused) and its site.
echo "== build (debug): server + wasm bundle (split: the builder is a lazily loaded chunk) + CSS"
# Into a site folder of its own: the release server `scripts/run.sh` started may be serving
# target/site, and a debug bundle written there would stop its pages hydrating.
# (No target/site on a clean clone: find fails, and that is an empty state, not an error.)
site_state() { { find target/site -type f -printf '%P %s %T@\n' 2>/dev/null || true; } | sort | md5sum; }
release_site=$(site_state)
cargo site --site-root target/site-debug
if [[ "$(site_state)" != "$release_site" ]]; then
  echo "the test build changed target/site, which a running release server serves" >&2
  exit 1
fi

echo "== the API contract: OpenAPI validator, schemathesis against a live server"
scripts/contract.sh

echo "== browser tests (Chromium)"
(cd end2end && npx playwright test)
