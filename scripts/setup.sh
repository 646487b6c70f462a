#!/usr/bin/env bash
# Installs what building (and, with --test, testing) Flowscope needs. Idempotent: every step
# checks first and skips what is already there, so a warm machine pays a few seconds.
#
#   scripts/setup.sh            build tools: wasm target, cargo-leptos, wasm-bindgen, wasm-opt
#   scripts/setup.sh --test     also Chromium, Prometheus, PostgreSQL running, the browser-test packages
#
# Nothing downloads a prebuilt binary: tools come from crates.io, npm and Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs rustc 1.96
BINARYEN_VERSION=132.0.0      # Debian's binaryen (108) breaks hydration; npm's is current
want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"

# cargo install of a big tool: its release profile's fat LTO takes most of an hour on 2 cores.
quick_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install "$@"
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [[ "$(cargo leptos --version 2>/dev/null || true)" != *"$CARGO_LEPTOS_VERSION"* ]]; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (once per machine; ~7 min on 2 cores)"
  # Unoptimised: it orchestrates cargo, and its own work (JS, CSS, the wasm split) is small, so
  # opt-level 0 costs +0.5 s a build (measured) and halves the install (6.7 min, not 13.5).
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 quick_install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
fi

# The CLI must equal the wasm-bindgen crate in Cargo.lock exactly.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ]]; then
  say "installing wasm-bindgen-cli $wb_version"
  # Not --locked: its lock file names crates the registry mirror lacks (webpki-roots 1.0.11
  # for 0.2.130), and that first try failed after a minute on every fresh machine.
  quick_install wasm-bindgen-cli --version "$wb_version"
fi

if [[ ! -x .tools/node_modules/.bin/wasm-opt ]]; then
  say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) into .tools/"
  npm install --prefix .tools --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
fi

if $want_test; then
  for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
      say "adding the $component component (the test command lints and checks formatting)"
      rustup component add "$component"
    fi
  done
  if [[ ! -x /usr/bin/chromium ]]; then
    say "installing Debian's chromium for browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
    || ! command -v prometheus-alertmanager >/dev/null || ! command -v amtool >/dev/null; then
    say "installing Debian's prometheus, promtool, alertmanager and amtool (metrics and alert tests)"
    apt-get update -qq
    # The packages' services are not started here: the tests run their own.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus prometheus-alertmanager >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if [[ ! -d end2end/node_modules/@playwright/test ]]; then
    say "installing the browser-test packages (no browser download)"
    (cd end2end && npm ci --no-audit --no-fund --silent)
  fi
fi
say "tools ready"
