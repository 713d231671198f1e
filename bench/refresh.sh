#!/usr/bin/env bash
# Token issuance and refresh-token rotation on each store engine, measured in one run:
# client_credentials issuance next to refresh rotation, on the embedded SQLite and (when the
# machine's PostgreSQL answers) on PostgreSQL.
#
#   bench/refresh.sh            # ROUNDS=3 DURATION=15s CONCURRENCY=16 by default
#
# For each engine: starts one `tessera serve` (release) on a free loopback port, registers a
# confidential client (client_credentials), a public client (authorization_code +
# refresh_token) and a user, then alternates the two loads ROUNDS times with the closed-loop
# generator in bench/loadgen (each of CONCURRENCY workers has one request in flight; in
# refresh mode each rotates its own chain). Prints each load as JSON and the medians with
# ratios. The load generator (and PostgreSQL) share the machine's cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-15s}"
CONCURRENCY="${CONCURRENCY:-16}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
build
RESULTS="$(mktemp "${TMPDIR:-/tmp}/tessera-bench-results.XXXXXX")"
echo "# $(date -u +%FT%TZ) $(nproc) cores, concurrency $CONCURRENCY, $DURATION per load, $ROUNDS rounds"

engines=(sqlite)
pg_database
[[ -n "$PG_URL" ]] && engines+=(postgres) || echo "# PostgreSQL not reachable: SQLite only"

for engine in "${engines[@]}"; do
    case "$engine" in
        sqlite) start_server "" ;;
        postgres) start_server "$PG_URL" ;;
    esac
    "${DB_ENV[@]}" "$BIN" client --data-dir "$TMP" create --id bench-spa --public --first-party \
        --grant-type authorization_code --grant-type refresh_token \
        --redirect-uri http://127.0.0.1:8765/callback --scope read >/dev/null
    PASSWORD="bench-password-$RANDOM$RANDOM"
    printf '%s' "$PASSWORD" | "${DB_ENV[@]}" "$BIN" user --data-dir "$TMP" create bench \
        --password-stdin >/dev/null
    for _ in $(seq 1 "$ROUNDS"); do
        "$GEN" --mode client-credentials --base "$BASE" --concurrency "$CONCURRENCY" \
            --duration "$DURATION" --client-id bench-svc --client-secret "$SECRET" \
            | sed "s/^{/{\"engine\":\"$engine\",/" | tee -a "$RESULTS"
        "$GEN" --mode refresh --base "$BASE" --concurrency "$CONCURRENCY" --duration "$DURATION" \
            --client-id bench-spa --username bench --password "$PASSWORD" \
            | sed "s/^{/{\"engine\":\"$engine\",/" | tee -a "$RESULTS"
    done
    stop_server
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(engine, mode, key):
    return statistics.median(r[key] for r in rows if r["engine"] == engine and r["mode"] == mode)
engines = list(dict.fromkeys(r["engine"] for r in rows))
base = med("sqlite", "ClientCredentials", "per_second")
print("\n| engine | load | per second (median) | vs SQLite client_credentials | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|")
for engine in engines:
    for name, mode in (("client_credentials", "ClientCredentials"), ("refresh rotation", "Refresh")):
        ps = med(engine, mode, "per_second")
        print(f"| {engine} | {name} | {ps:.0f} | {ps / base:.2f} | {med(engine, mode, 'p50_ms')} | {med(engine, mode, 'p99_ms')} |")
print(f"\nerrors: {sum(r['errors'] for r in rows)}")
PY
rm -f "$RESULTS"
