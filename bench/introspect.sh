#!/usr/bin/env bash
# Introspection throughput, cached and uncached, next to a trivial endpoint (/healthz) of the
# same server, measured in the same run against one `tessera serve` on the embedded store.
#
#   bench/introspect.sh        # ROUNDS=3 DURATION=10s CONCURRENCY=16 TOKENS=160000 by default
#
# Mints TOKENS client-credentials access tokens per round beforehand (not timed). Each round
# then runs three closed-loop loads with bench/loadgen: GET /healthz; introspection of one
# token per worker (every request after the first is a cache hit); introspection of the
# round's tokens, each exactly once (every request is a miss: signature check, claims,
# revocation-list read, cache fill). Prints each load as JSON and the medians with ratios
# against /healthz. The load generator shares the machine's cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-16}"
TOKENS="${TOKENS:-160000}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
build
start_server ""
auth=(--client-id bench-svc --client-secret "$SECRET")
load=(--base "$BASE" --concurrency "$CONCURRENCY" --duration "$DURATION")

echo "# $(date -u +%FT%TZ) $(nproc) cores, concurrency $CONCURRENCY, $DURATION per load, $ROUNDS rounds"
: >"$TMP/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
    "$GEN" --mode mint --base "$BASE" --concurrency "$CONCURRENCY" "${auth[@]}" \
        --count "$TOKENS" --out "$TMP/tokens-$round"
    "$GEN" --mode healthz "${load[@]}" "${auth[@]}" | tee -a "$TMP/results.jsonl"
    "$GEN" --mode introspect "${load[@]}" "${auth[@]}" --tokens "$TMP/tokens-$round" \
        | sed 's/"mode":"Introspect"/"mode":"IntrospectCached"/' | tee -a "$TMP/results.jsonl"
    "$GEN" --mode introspect --distinct "${load[@]}" "${auth[@]}" --tokens "$TMP/tokens-$round" \
        | sed 's/"mode":"Introspect"/"mode":"IntrospectUncached"/' | tee -a "$TMP/results.jsonl"
done

python3 - "$TMP/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, key):
    return statistics.median(r[key] for r in rows if r["mode"] == mode)
base = med("Healthz", "per_second")
print("\n| load | per second (median) | vs /healthz | p50 ms | p99 ms |")
print("|---|---|---|---|---|")
for name, mode in (("GET /healthz", "Healthz"), ("introspection, cached", "IntrospectCached"),
                   ("introspection, uncached", "IntrospectUncached")):
    print(f"| {name} | {med(mode, 'per_second'):.0f} | {med(mode, 'per_second') / base:.2f} "
          f"| {med(mode, 'p50_ms')} | {med(mode, 'p99_ms')} |")
print(f"\nerrors: {sum(r['errors'] for r in rows)}")
PY
