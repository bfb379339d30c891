#!/usr/bin/env bash
# Smoke test of the built CLI on the embedded database (PGlite), no PostgreSQL or Redis needed:
# build, start `serve` on a free loopback port with a throw-away DATA_DIR, wait for /healthz,
# require /readyz == 200, then stop that one process. Exit 0 on success, 1 with the server log
# tail on failure. Options: SMOKE_PORT (default: a free port), SMOKE_TIMEOUT (seconds, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

timeout_s=${SMOKE_TIMEOUT:-30}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/consent-ledger-smoke.XXXXXX")
log="$tmp/server.log"
pid=""

stop_server() {
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "smoke: warning: server (pid $pid) ignored SIGTERM for 10 s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  pid=""
}
cleanup() { stop_server; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "smoke: FAIL: $*" >&2
  if [[ -s $log ]]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

# HTTP status of a GET, "000" when there is no answer (node is always here; curl may not be).
http_status() {
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
    .then((r) => process.stdout.write(String(r.status)), () => process.stdout.write("000"))' "$1"
}

npm run build || fail "npm run build failed"
[[ -f dist/src/cli.js ]] || fail "dist/src/cli.js was not built"

port=${SMOKE_PORT:-$(node -e 'const s = require("node:net").createServer()
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')}
base="http://127.0.0.1:$port"
mkdir -p "$tmp/data"

# Unset anything that would point the service at external infrastructure.
env -u DATABASE_URL -u DATABASE_READ_URL -u REDIS_URL \
  DATA_DIR="$tmp/data" PORT="$port" HOST=127.0.0.1 LOG_LEVEL=info \
  CONSENT_ADMIN_KEY="smoke-$(node -e 'console.log(require("node:crypto").randomBytes(18).toString("hex"))')" \
  node dist/src/cli.js serve >"$log" 2>&1 &
pid=$!
echo "smoke: started server pid $pid on $base (DATA_DIR $tmp/data)"

deadline=$((SECONDS + timeout_s))
status=000
while ((SECONDS < deadline)); do
  kill -0 "$pid" 2>/dev/null || fail "server exited before /healthz answered"
  status=$(http_status "$base/healthz")
  [[ $status == 200 ]] && break
  sleep 0.5
done
[[ $status == 200 ]] || fail "GET /healthz did not return 200 within ${timeout_s}s (last status $status)"
echo "smoke: GET /healthz 200"

status=$(http_status "$base/readyz")
[[ $status == 200 ]] || fail "GET /readyz returned $status, expected 200"
echo "smoke: GET /readyz 200"

stop_server
echo "smoke: OK"
