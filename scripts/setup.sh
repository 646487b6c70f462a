#!/usr/bin/env bash
# Installs what building (and, with --test, testing) Flowscope needs. Idempotent: every step
# checks first and skips what is already there, so a warm machine pays a few seconds.
#
#   scripts/setup.sh            build tools: the wasm target and wasm-opt (the rest of the site
#                               build is the workspace's `site` crate: nothing else to install)
#   scripts/setup.sh --test     also Chromium, Prometheus, PostgreSQL running, the browser-test packages
#
# Nothing downloads a prebuilt binary: tools come from crates.io, npm and Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
SPEC_VALIDATOR_VERSION=0.9.0
BINARYEN_VERSION=132.0.0      # Debian's binaryen (108) breaks hydration; npm's is current
want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
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
  # The API contract's checkers (scripts/contract.sh), from PyPI, pinned.
  if [[ ! -x .tools/py/bin/st || ! -x .tools/py/bin/openapi-spec-validator ]]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $SPEC_VALIDATOR_VERSION into .tools/py"
    python3 -m venv .tools/py
    .tools/py/bin/pip install --quiet --disable-pip-version-check \
      "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$SPEC_VALIDATOR_VERSION"
  fi
  if [[ ! -d end2end/node_modules/@playwright/test ]]; then
    say "installing the browser-test packages (no browser download)"
    (cd end2end && npm ci --no-audit --no-fund --silent)
  fi
fi
say "tools ready"
