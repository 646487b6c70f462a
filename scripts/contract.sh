#!/usr/bin/env bash
# The API contract, checked against a live server by tools somebody else wrote:
#  1. /api/v1/openapi.json (generated from the handlers' types) is a valid OpenAPI 3.1
#     document (openapi-spec-validator, PyPI);
#  2. every operation in it is called with inputs schemathesis (PyPI, property-based) generates
#     from it, valid and invalid: no answer may be a 5xx, and every answer must match the
#     schema the document gives for its status.
# Against the debug server the test build left (target/debug/flowscope), on a scratch SQLite
# file and then a scratch PostgreSQL database, sign-in off (the bearer token sent is
# Alertmanager's, which its webhook needs). The Server-Sent Events streams are left out: they
# do not end.
set -euo pipefail
cd "$(dirname "$0")/.."
py="$PWD/.tools/py/bin"
port=${CONTRACT_PORT:-3931}
examples=${CONTRACT_EXAMPLES:-30}
token=contract-test-token-0123456789
dir=$(mktemp -d)
pg_db="flowscope_contract_$$"
server=
cleanup() {
  [[ -n "$server" ]] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

check() { # $1: store name, $2: database URL
  echo "-- $1"
  FLOWSCOPE_LISTEN=127.0.0.1:$port FLOWSCOPE_DATABASE_URL="$2" \
    FLOWSCOPE_SCHEDULER=false FLOWSCOPE_ALERT_TOKEN=$token \
    RUST_LOG=error target/debug/flowscope serve >"$dir/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/api/v1/openapi.json" -o "$dir/openapi.json"
  echo "openapi-spec-validator:"
  "$py/openapi-spec-validator" "$dir/openapi.json"
  echo "schemathesis: every operation, $examples generated requests each and the stateful phase"
  # From the scratch folder: schemathesis keeps a cache where it runs.
  (cd "$dir" && "$py/st" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    --url "http://127.0.0.1:$port" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --exclude-path-regex '/events$' \
    --max-examples "$examples" \
    --request-timeout 20 \
    --seed 1 \
    --no-color) || { echo "server log:"; tail -n 50 "$dir/server.log"; exit 1; }
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
}

check SQLite "sqlite://$dir/contract.db"
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $pg_db" >/dev/null
check PostgreSQL "postgres://postgres@127.0.0.1:5432/$pg_db"
