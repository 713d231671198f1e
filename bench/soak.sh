#!/usr/bin/env bash
# Soak: a mixed workload on loopback for MINUTES, with zero 5xx and flat memory required.
#
#   bench/soak.sh MINUTES [--debug] [--no-build]
#
# One `tessera serve` (embedded SQLite) and one `tessera guard` in front of it (JWT mode,
# following the server's revocation feed), driven at once by closed-loop tessera-loadgen
# processes, each for the whole run: client credentials (2 workers), the code flow (authorize +
# exchange, 1), refresh rotation (2, each its own chain), cached introspection (2), revocation
# (1: a token, its revocation, then its introspection must say inactive) and guard checks
# (`GET /verify` on the guard, 2). Every SAMPLE seconds (10) it samples the resident memory of the
# server and of the guard from /proc and the server's request counters from /metrics
# (throughput and 5xx per interval). At the end it prints the throughput, p50/p99 and errors of
# each load (5xx separately) and the samples.
#
# Exits non-zero when any request failed (every request of the mix expects success; 5xx are
# counted apart, from the load generators and from the server's own counters), or when the mean
# RSS of the server or of the guard over the last third of the samples taken after warm-up
# (the first WARMUP_PCT=20 % of the run, at least 10 s) is more than RSS_LIMIT_PCT (20) % and
# more than RSS_LIMIT_MB (24) MB above its mean over the first third. The absolute floor is
# what the server may legitimately grow by while its SQLite page caches fill as the database
# grows (SQLite's default 2 MB for each of the 10 reader connections and the writer's); a leak
# of 100 bytes a request (some 18 MB a minute at release throughput) exceeds it in the 10-minute
# form, though not necessarily in the 1-minute one.
#
# Release binaries by default (built first unless --no-build); --debug uses target/debug (CI runs
# `bench/soak.sh 1 --debug --no-build` from test.sh, on the binaries it built). The long form,
# `bench/soak.sh 10`, is the one whose figures go into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:?usage: bench/soak.sh MINUTES [--debug] [--no-build]}"
shift
PROFILE=release
NO_BUILD=""
for arg in "$@"; do
    case "$arg" in
        --debug) PROFILE=debug ;;
        --no-build) NO_BUILD=1 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done
SAMPLE="${SAMPLE:-10}"
RSS_LIMIT_PCT="${RSS_LIMIT_PCT:-20}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-24}"
WARMUP_PCT="${WARMUP_PCT:-20}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
if [[ -n "$NO_BUILD" ]]; then
    BIN=target/$PROFILE/tessera
    GEN=target/$PROFILE/tessera-loadgen
    [[ -x "$BIN" && -x "$GEN" ]] || { echo "$BIN or $GEN missing" >&2; exit 1; }
elif [[ "$PROFILE" == debug ]]; then
    build debug
else
    build
fi
VENV=tests/faults/.venv
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
PY="$VENV/bin/python"

GUARD_PID=""
LOAD_PIDS=()
soak_cleanup() {
    for pid in "${LOAD_PIDS[@]}" $GUARD_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${LOAD_PIDS[@]}" $GUARD_PID; do
        wait "$pid" 2>/dev/null || true
    done
    cleanup
    [[ -n "${OUT:-}" ]] && rm -rf "$OUT"
}
trap soak_cleanup EXIT
OUT="$(mktemp -d "${TMPDIR:-/tmp}/tessera-soak.XXXXXX")"

start_server ""
"${DB_ENV[@]}" "$BIN" client --data-dir "$TMP" create --id bench-spa --public --first-party \
    --grant-type authorization_code --grant-type refresh_token \
    --redirect-uri http://127.0.0.1:8765/callback --scope read >/dev/null
PASSWORD="soak-password-$RANDOM$RANDOM"
printf '%s' "$PASSWORD" | "${DB_ENV[@]}" "$BIN" user --data-dir "$TMP" create bench \
    --password-stdin >/dev/null

: >"$OUT/guard.log"
NO_COLOR=1 TESSERA_LOG=warn,tessera=info "$BIN" guard --issuer "$BASE" --audience "$BASE" \
    --listen 127.0.0.1:0 --client-id bench-svc --client-secret "$SECRET" >"$OUT/guard.log" 2>&1 &
GUARD_PID=$!
GUARD=""
deadline=$((SECONDS + 60))
until [[ -n "$GUARD" ]] && curl -fsS -o /dev/null "$GUARD/healthz" 2>/dev/null; do
    ((SECONDS < deadline)) || { cat "$OUT/guard.log"; echo "the guard did not start" >&2; exit 1; }
    GUARD="$(sed -n 's/.*tessera guard is ready.* listen=\([^ ]*\).*/http:\/\/\1/p' "$OUT/guard.log" | head -1)"
    sleep 0.1
done
AUTH=(--client-id bench-svc --client-secret "$SECRET")
"$GEN" --mode mint --base "$BASE" "${AUTH[@]}" --concurrency 2 --count 64 --out "$OUT/tokens"

echo "# soak: $MINUTES min, $PROFILE binaries, $(nproc) cores, server pid $PID, guard pid $GUARD_PID"
COMMON=(--duration "${MINUTES}m" --request-timeout 10s)
run_load() {
    local name="$1"
    shift
    "$GEN" "${COMMON[@]}" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err" &
    LOAD_PIDS+=($!)
}
run_load client-credentials --mode client-credentials --base "$BASE" --concurrency 2 "${AUTH[@]}"
run_load code-flow --mode code-exchange --base "$BASE" --concurrency 1 --client-id bench-spa \
    --username bench --password "$PASSWORD"
run_load refresh --mode refresh --base "$BASE" --concurrency 2 --client-id bench-spa \
    --username bench --password "$PASSWORD"
run_load introspect --mode introspect --base "$BASE" --concurrency 2 "${AUTH[@]}" --tokens "$OUT/tokens"
run_load revoke --mode revoke --base "$BASE" --concurrency 1 "${AUTH[@]}"
run_load guard-verify --mode verify --base "$GUARD" --concurrency 2 --tokens "$OUT/tokens"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
requests() {
    curl -s --max-time 5 "$BASE/metrics" | awk '
        /^tessera_http_requests_total\{/ { total += $NF; if ($0 ~ /status="5/) fivexx += $NF }
        END { printf "%d %d\n", total, fivexx }'
}
running() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}
start=$SECONDS
printf 't_s\tserver_rss_kb\tguard_rss_kb\tserver_requests\tserver_5xx\n' >"$OUT/samples.tsv"
while :; do
    read -r total fivexx < <(requests)
    printf '%d\t%s\t%s\t%s\t%s\n' "$((SECONDS - start))" "$(rss_kb "$PID")" "$(rss_kb "$GUARD_PID")" \
        "$total" "$fivexx" | tee -a "$OUT/samples.tsv"
    running || break
    sleep "$SAMPLE" # the sampling period, not a synchronisation
done
status=0
for pid in "${LOAD_PIDS[@]}"; do
    wait "$pid" || status=1
done
if [[ "$status" != 0 ]]; then
    tail -n 5 "$OUT"/*.err >&2
    echo "FAIL: a load generator failed" >&2
    exit 1
fi
kill -0 "$PID" 2>/dev/null || { echo "FAIL: the server died" >&2; exit 1; }
kill -0 "$GUARD_PID" 2>/dev/null || { echo "FAIL: the guard died" >&2; exit 1; }

"$PY" - "$OUT" "$MINUTES" "$RSS_LIMIT_PCT" "$WARMUP_PCT" "$RSS_LIMIT_MB" <<'PY'
import json, sys
out, minutes, limit, warmup_pct, limit_mb = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
loads = ["client-credentials", "code-flow", "refresh", "introspect", "revoke", "guard-verify"]
bad = []
print("\n| load | requests ok | per second | p50 ms | p99 ms | slowest ms | errors | of which 5xx |")
print("|---|---|---|---|---|---|---|---|")
total_ok = 0
for name in loads:
    r = json.load(open(f"{out}/{name}.json"))
    kinds = r["error_kinds"]
    fivexx = sum(n for k, n in kinds.items() if any(part.startswith("5") and part[:3].isdigit() for part in k.split()))
    total_ok += r["ok"]
    print(f"| {name} | {r['ok']} | {r['per_second']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['errors']} {kinds if kinds else ''} | {fivexx} |")
    if fivexx:
        bad.append(f"{name}: {fivexx} 5xx answers")
    if r["errors"]:
        bad.append(f"{name}: {r['errors']} failed requests {kinds}")
    if r["ok"] == 0:
        bad.append(f"{name}: nothing succeeded")
rows = [l.split("\t") for l in open(f"{out}/samples.tsv").read().splitlines()[1:]]
samples = [(int(t), int(s), int(g), int(req), int(f)) for t, s, g, req, f in rows]
print(f"\ntotal {total_ok} requests ok in {minutes:g} min\n")
print("| t (s) | server RSS (MB) | guard RSS (MB) | server requests/s in the interval | server 5xx (total) |")
print("|---|---|---|---|---|")
prev = None
for t, s, g, req, f in samples:
    rate = "" if prev is None or t == prev[0] else f"{(req - prev[3]) / (t - prev[0]):.0f}"
    print(f"| {t} | {s / 1024:.1f} | {g / 1024:.1f} | {rate} | {f} |")
    prev = (t, s, g, req, f)
if samples and samples[-1][4]:
    bad.append(f"the server counted {samples[-1][4]} 5xx answers")
warm = max(10.0, minutes * 60 * warmup_pct / 100)
steady = [x for x in samples if x[0] >= warm]
if len(steady) >= 3:
    third = max(1, len(steady) // 3)
    for label, col in (("server", 1), ("guard", 2)):
        first = sum(x[col] for x in steady[:third]) / third
        last = sum(x[col] for x in steady[-third:]) / third
        growth = (last - first) / first * 100 if first else 0.0
        grown_mb = (last - first) / 1024
        print(f"{label} RSS after warm-up ({warm:.0f} s): first third {first / 1024:.1f} MB, last third {last / 1024:.1f} MB, growth {growth:+.1f} % / {grown_mb:+.1f} MB (limit: {limit:g} % and {limit_mb:g} MB)")
        if growth > limit and grown_mb > limit_mb:
            bad.append(f"{label} RSS grew {growth:.1f} % / {grown_mb:.1f} MB (> {limit:g} % and {limit_mb:g} MB) from the first to the last third")
else:
    bad.append(f"only {len(steady)} samples after the warm-up: run longer or sample more often (SAMPLE)")
for b in bad:
    print("FAIL:", b, file=sys.stderr)
print("\nsoak:", "FAIL" if bad else "PASS")
sys.exit(1 if bad else 0)
PY
