#!/usr/bin/env bash
# Load harness for inbound webhooks (docs/BENCHMARKS.md): the release runner on a fresh data
# folder, one GitHub source, and wrk posting signed deliveries for DURATION seconds with
# CONNECTIONS connections. Needs wrk and python3. Usage: tests/load/inbound.sh [DURATION] [CONNECTIONS]
# RUNNER_ARGS adds flags to the runner (for example `--max-concurrent-calls 16`).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-15}"
CONNECTIONS="${2:-32}"
PORT="${PORT:-7392}"
cargo build --release -q -p integration-platform
DATA="$(mktemp -d)"
trap 'kill "$RUNNER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
echo '{"Values": {}}' > "$DATA/local.settings.json"
target/release/integration-platform --listen "127.0.0.1:$PORT" --data-dir "$DATA/data" \
  --settings "$DATA/local.settings.json" ${RUNNER_ARGS:-} >"$DATA/runner.log" 2>&1 &
RUNNER=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.1
done
TOKEN="$(target/release/integration-platform dev-token --tenant bench --data-dir "$DATA/data" | tail -n 1)"
URL="$(curl -s -X POST "http://127.0.0.1:$PORT/webhook-gateway/api/webhooks/sources" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"provider":"github","secret":"bench-secret-0123456789"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')"
BODY="$(python3 -c 'import json; print(json.dumps({"ref":"refs/heads/main","repository":{"full_name":"acme/app","id":1},"commits":[{"id":"%040d" % i,"message":"change %d" % i} for i in range(12)]}, separators=(",", ":")))')"
SIGNATURE="sha256=$(BODY="$BODY" python3 -c 'import hmac,hashlib,os; print(hmac.new(b"bench-secret-0123456789", os.environ["BODY"].encode(), hashlib.sha256).hexdigest())')"
echo "runner pid $RUNNER, body ${#BODY} bytes, $URL" >&2
BODY="$BODY" SIGNATURE="$SIGNATURE" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
  -s tests/load/inbound.lua "$URL"
