#!/usr/bin/env bash
# Refresh-token rotation throughput next to client-credentials issuance, measured in the same
# run against one `tessera serve` on the embedded SQLite store.
#
#   bench/refresh.sh            # ROUNDS=3 DURATION=15s CONCURRENCY=16 by default
#
# Builds release binaries, starts the server on a free loopback port with a temporary data
# directory, registers a confidential client (client_credentials), a public client
# (authorization_code + refresh_token) and a user, then alternates the two loads ROUNDS
# times with the closed-loop generator in bench/loadgen (each of CONCURRENCY workers has one
# request in flight; in refresh mode each rotates its own chain). Prints each round as JSON
# and the medians with the ratio. The load generator shares the machine's cores with the
# server, equally for both loads.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-15s}"
CONCURRENCY="${CONCURRENCY:-16}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
"$BIN" client --data-dir "$TMP" create --id bench-spa --public --grant-type authorization_code \
    --grant-type refresh_token --redirect-uri http://127.0.0.1:8765/callback --scope read >/dev/null
PASSWORD="bench-password-$RANDOM$RANDOM"
printf '%s' "$PASSWORD" | "$BIN" user --data-dir "$TMP" create bench --password-stdin >/dev/null

echo "# $(date -u +%FT%TZ) $(nproc) cores, concurrency $CONCURRENCY, $DURATION per load, $ROUNDS rounds"
: >"$TMP/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
    "$GEN" --mode client-credentials --base "$BASE" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --client-id bench-svc --client-secret "$SECRET" | tee -a "$TMP/results.jsonl"
    "$GEN" --mode refresh --base "$BASE" --concurrency "$CONCURRENCY" --duration "$DURATION" \
        --client-id bench-spa --username bench --password "$PASSWORD" | tee -a "$TMP/results.jsonl"
done

python3 - "$TMP/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, key):
    return statistics.median(r[key] for r in rows if r["mode"] == mode)
cc, rf = "ClientCredentials", "Refresh"
errors = sum(r["errors"] for r in rows)
print(f"\n| load | per second (median) | p50 ms | p99 ms |")
print(f"|---|---|---|---|")
for name, mode in (("client_credentials", cc), ("refresh rotation", rf)):
    print(f"| {name} | {med(mode, 'per_second'):.0f} | {med(mode, 'p50_ms')} | {med(mode, 'p99_ms')} |")
print(f"\nrotations / client-credentials issuances = {med(rf, 'per_second') / med(cc, 'per_second'):.2f}; errors: {errors}")
PY
