#!/usr/bin/env bash
# Forward-auth throughput of `tessera guard`: /verify with cache hits and with cache misses,
# next to a trivial endpoint (/healthz) of the same guard process, measured in the same run.
#
#   bench/forward-auth.sh      # ROUNDS=3 DURATION=10s CONCURRENCY=16 TOKENS=500000 by default
#
# Starts one `tessera serve` on the embedded store (the issuer) and one `tessera guard` for
# it (its audience is the issuer URL: the bench client has no registered audience, so its
# tokens carry `aud` = issuer; no scope rules, no revocation feed). Checks once that the guard
# accepts a token (this also fetches the JWKS, so no timed request waits for it). Mints
# CONCURRENCY + TOKENS client-credentials access tokens per round beforehand (not timed). Each
# round then runs three closed-loop loads against the guard with bench/loadgen: GET /healthz;
# GET /verify with one token per worker (every request after the first is a cache hit: hash,
# cache read, expiry, revocation and key checks, identity headers); GET /verify with the
# round's other TOKENS tokens, each exactly once (every request is a miss: header checks,
# RS256 signature and claims validation against the JWKS held in memory, cache fill; past
# the guard's cache capacity, 100,000 by default, fills also evict). Only 200 counts as
# success. Prints each load as JSON and the medians with ratios against the guard's
# /healthz. The load generator shares the machine's cores with the guard (the issuer is idle
# while the guard is measured).
#
# TOKENS must cover a whole miss run: the default suffices for 10 s at up to 50,000 misses a
# second (15,000 to 31,000 were seen on 2 cores); a run that runs out fails ("mint more").
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-16}"
TOKENS="${TOKENS:-500000}"

# shellcheck source=bench/lib.sh
source bench/lib.sh

GUARD_PID=""
stop_guard() {
    if [[ -n "$GUARD_PID" ]]; then
        # `|| true`: a guard killed before it handles SIGTERM exits non-zero, and under
        # `set -e` that would end the trap before `cleanup` stops the server.
        kill "$GUARD_PID" 2>/dev/null && wait "$GUARD_PID" 2>/dev/null || true
    fi
    GUARD_PID=""
}
# Replaces lib.sh's trap: the guard goes first, then the server and TMP.
trap 'stop_guard; cleanup' EXIT

build
start_server ""
auth=(--client-id bench-svc --client-secret "$SECRET")

: >"$TMP/guard.log" # before the first read below, which may come before the guard's shell opens it
NO_COLOR=1 TESSERA_LOG=warn,tessera=info "$BIN" guard --issuer "$BASE" --audience "$BASE" \
    --listen 127.0.0.1:0 >>"$TMP/guard.log" 2>&1 &
GUARD_PID=$!
GUARD=""
for _ in $(seq 1 100); do
    GUARD="$(sed -n 's/.*tessera guard is ready.* listen=\([^ ]*\).*/http:\/\/\1/p' "$TMP/guard.log" | head -1)"
    [[ -n "$GUARD" ]] && curl -fsS -o /dev/null "$GUARD/healthz" && break
    GUARD=""
    sleep 0.1
done
[[ -n "$GUARD" ]] || { cat "$TMP/guard.log"; echo "guard did not start" >&2; exit 1; }

"$GEN" --mode mint --base "$BASE" --concurrency 1 "${auth[@]}" --count 1 --out "$TMP/probe"
status="$(curl -sS -o /dev/null -D "$TMP/probe.headers" -w '%{http_code}' \
    -H "Authorization: Bearer $(cat "$TMP/probe")" "$GUARD/verify")"
if [[ "$status" != 200 ]]; then
    cat "$TMP/probe.headers" "$TMP/guard.log"
    echo "the guard refused a freshly minted token ($status)" >&2
    exit 1
fi

gen=(--concurrency "$CONCURRENCY" --duration "$DURATION" --client-id bench-svc)
echo "# $(date -u +%FT%TZ) $(nproc) cores, concurrency $CONCURRENCY, $DURATION per load, $ROUNDS rounds, $TOKENS tokens"
: >"$TMP/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
    "$GEN" --mode mint --base "$BASE" --concurrency "$CONCURRENCY" "${auth[@]}" \
        --count "$((CONCURRENCY + TOKENS))" --out "$TMP/tokens-$round"
    # Hits use tokens the miss run never sees, so every miss is a first sight.
    head -n "$CONCURRENCY" "$TMP/tokens-$round" >"$TMP/hits-$round"
    tail -n +"$((CONCURRENCY + 1))" "$TMP/tokens-$round" >"$TMP/misses-$round"
    rm "$TMP/tokens-$round"
    "$GEN" --mode healthz --base "$GUARD" "${gen[@]}" \
        | sed 's/"mode":"Healthz"/"mode":"GuardHealthz"/' | tee -a "$TMP/results.jsonl"
    "$GEN" --mode verify --base "$GUARD" "${gen[@]}" --tokens "$TMP/hits-$round" \
        | sed 's/"mode":"Verify"/"mode":"VerifyHit"/' | tee -a "$TMP/results.jsonl"
    "$GEN" --mode verify --distinct --base "$GUARD" "${gen[@]}" --tokens "$TMP/misses-$round" \
        | sed 's/"mode":"Verify"/"mode":"VerifyMiss"/' | tee -a "$TMP/results.jsonl"
    rm "$TMP/hits-$round" "$TMP/misses-$round"
done

python3 - "$TMP/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, key):
    return statistics.median(r[key] for r in rows if r["mode"] == mode)
base, base_p99 = med("GuardHealthz", "per_second"), med("GuardHealthz", "p99_ms")
print("\n| load | per second (median) | vs guard /healthz | p50 ms | p99 ms | p99 vs guard /healthz |")
print("|---|---|---|---|---|---|")
for name, mode in (("guard GET /healthz", "GuardHealthz"), ("/verify, cache hit", "VerifyHit"),
                   ("/verify, cache miss", "VerifyMiss")):
    p99 = med(mode, "p99_ms")
    print(f"| {name} | {med(mode, 'per_second'):.0f} | {med(mode, 'per_second') / base:.2f} "
          f"| {med(mode, 'p50_ms')} | {p99} | {p99 / base_p99 if base_p99 else float('nan'):.2f} |")
print(f"\nerrors: {sum(r['errors'] for r in rows)}")
PY
