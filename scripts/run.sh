#!/usr/bin/env bash
# Sets up, builds (release) and starts Flowscope on its embedded default:
# SQLite at data/flowscope.db, example workflows seeded, http://127.0.0.1:3000.
# Settings (FLOWSCOPE_*, see README) pass through from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"
# The server and its site (wasm bundle split so the builder loads lazily, JS, CSS, assets,
# brotli/gzip copies), in release: see site/src/main.rs.
echo "Building the server and its site (on a new 2-core machine about 11 minutes, once)"
cargo site --release
echo "Starting Flowscope on http://${FLOWSCOPE_LISTEN:-127.0.0.1:3000}"
# The seeded `http-status` example calls this server itself: allow loopback for agents here
# (the binary's default refuses private addresses; see SECURITY.md).
export FLOWSCOPE_EGRESS_ALLOW_PRIVATE="${FLOWSCOPE_EGRESS_ALLOW_PRIVATE:-true}"
LEPTOS_SITE_ROOT=target/site exec target/release/flowscope serve
