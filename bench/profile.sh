#!/usr/bin/env bash
# CPU flame graphs of the server's hot paths under load, for issue 11's profiling.
#
#   bench/profile.sh [client-credentials|refresh|introspect-cached|introspect-uncached|guard-miss ...]
#                                                 # default: all five
#
# Builds the `profiling` Cargo profile (release with line tables), starts one `tessera serve`
# on the embedded store (bench/lib.sh), runs bench/loadgen against it for DURATION (default
# 10s) at CONCURRENCY (16) while `perf record -g` samples the server process at 999 Hz, and
# renders docs/profiles/<scenario>.svg with inferno (`cargo install inferno` when missing).
# guard-miss samples a `tessera guard` (JWT mode, in front of that server) instead, with every
# token presented once; introspect-uncached likewise presents every token once.
# Needs Linux `perf` (Debian `linux-perf`; installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-16}"
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] ||
    SCENARIOS=(client-credentials refresh introspect-cached introspect-uncached guard-miss)
# Tokens minted for the loads that present each token once (enough for DURATION at the
# rates of BENCHMARKS.md).
TOKENS="${TOKENS:-200000}"

command -v perf >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf
}
command -v inferno-flamegraph >/dev/null || cargo install --locked -q inferno

# shellcheck source=bench/lib.sh
source bench/lib.sh
# CARGO_PROFILE=release samples the release build instead (function names without line
# tables; no second build of the whole stack).
CARGO_PROFILE="${CARGO_PROFILE:-profiling}"
cargo build --profile "$CARGO_PROFILE" --locked -q "${BUILD_TARGETS[@]}"
BIN="target/$CARGO_PROFILE/tessera"
GEN="target/$CARGO_PROFILE/tessera-loadgen"

GUARD_PID=""
stop_guard() {
    if [[ -n "$GUARD_PID" ]]; then
        kill "$GUARD_PID" 2>/dev/null && wait "$GUARD_PID" 2>/dev/null
    fi
    GUARD_PID=""
}
trap 'stop_guard; cleanup' EXIT

mint() {
    "$GEN" --mode mint --base "$BASE" --concurrency "$CONCURRENCY" "${auth[@]}" \
        --count "$1" --out "$2" >/dev/null
}

mkdir -p docs/profiles
for scenario in "${SCENARIOS[@]}"; do
    start_server ""
    auth=(--client-id bench-svc --client-secret "$SECRET")
    load=(--concurrency "$CONCURRENCY" --duration "$DURATION")
    target="$PID"
    what="tessera serve"
    case "$scenario" in
        client-credentials) args=(--mode client-credentials --base "$BASE" "${load[@]}" "${auth[@]}") ;;
        refresh)
            "${DB_ENV[@]}" "$BIN" client --data-dir "$TMP" create --id bench-spa --public \
                --first-party --grant-type authorization_code --grant-type refresh_token \
                --redirect-uri http://127.0.0.1:8765/callback --scope read >/dev/null
            password="bench-password-$RANDOM$RANDOM$RANDOM"
            printf '%s' "$password" | "${DB_ENV[@]}" "$BIN" user --data-dir "$TMP" create bench \
                --password-stdin >/dev/null
            args=(--mode refresh --base "$BASE" "${load[@]}" --client-id bench-spa
                --username bench --password "$password")
            ;;
        introspect-cached)
            mint "$CONCURRENCY" "$TMP/tokens"
            args=(--mode introspect --base "$BASE" "${load[@]}" "${auth[@]}" --tokens "$TMP/tokens")
            ;;
        introspect-uncached)
            mint "$TOKENS" "$TMP/tokens"
            args=(--mode introspect --distinct --stop-when-exhausted --base "$BASE" "${load[@]}"
                "${auth[@]}" --tokens "$TMP/tokens")
            ;;
        guard-miss)
            NO_COLOR=1 TESSERA_LOG=warn,tessera=info "$BIN" guard --issuer "$BASE" \
                --audience "$BASE" --listen 127.0.0.1:0 >"$TMP/guard.log" 2>&1 &
            GUARD_PID=$!
            guard=""
            for _ in $(seq 1 100); do
                guard="$(sed -n 's/.*tessera guard is ready.* listen=\([^ ]*\).*/http:\/\/\1/p' "$TMP/guard.log" | head -1)"
                [[ -n "$guard" ]] && curl -fsS -o /dev/null "$guard/healthz" && break
                guard=""
                sleep 0.1
            done
            [[ -n "$guard" ]] || { cat "$TMP/guard.log"; echo "guard did not start" >&2; exit 1; }
            mint "$TOKENS" "$TMP/tokens"
            # The guard fetches the JWKS on its first token, before the recording starts.
            curl -fsS -o /dev/null -H "Authorization: Bearer $(head -1 "$TMP/tokens")" "$guard/verify"
            args=(--mode verify --distinct --stop-when-exhausted --base "$guard" "${load[@]}"
                --tokens "$TMP/tokens")
            target="$GUARD_PID"
            what="tessera guard"
            ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    perf record -F 999 -g --call-graph dwarf,16384 -p "$target" -o "$TMP/perf.data" \
        -- sleep "${DURATION%s}" >/dev/null 2>&1 &
    recorder=$!
    "$GEN" "${args[@]}" | tee "docs/profiles/$scenario.json"
    wait "$recorder" || true
    perf script -i "$TMP/perf.data" 2>/dev/null | inferno-collapse-perf \
        | inferno-flamegraph --title "$what: $scenario (SQLite, $CONCURRENCY workers)" \
        >"docs/profiles/$scenario.svg"
    echo "docs/profiles/$scenario.svg"
    stop_guard
    stop_server
done
