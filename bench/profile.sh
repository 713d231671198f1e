#!/usr/bin/env bash
# CPU flame graphs of the server's hot paths under load, for issue 11's profiling.
#
#   bench/profile.sh [client-credentials|introspect-cached ...]   # default: both
#
# Builds the `profiling` Cargo profile (release with line tables), starts one `tessera serve`
# on the embedded store (bench/lib.sh), runs bench/loadgen against it for DURATION (default
# 10s) at CONCURRENCY (16) while `perf record -g` samples the server process at 999 Hz, and
# renders docs/profiles/<scenario>.svg with inferno (`cargo install inferno` when missing).
# Needs Linux `perf` (Debian `linux-perf`; installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-16}"
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=(client-credentials introspect-cached)

command -v perf >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf
}
command -v inferno-flamegraph >/dev/null || cargo install --locked -q inferno

# shellcheck source=bench/lib.sh
source bench/lib.sh
cargo build --profile profiling --locked -q -p tessera -p tessera-loadgen
BIN=target/profiling/tessera
GEN=target/profiling/tessera-loadgen

for scenario in "${SCENARIOS[@]}"; do
    start_server ""
    auth=(--client-id bench-svc --client-secret "$SECRET")
    load=(--base "$BASE" --concurrency "$CONCURRENCY" --duration "$DURATION")
    case "$scenario" in
        client-credentials) args=(--mode client-credentials "${load[@]}" "${auth[@]}") ;;
        introspect-cached)
            "$GEN" --mode mint --base "$BASE" --concurrency "$CONCURRENCY" "${auth[@]}" \
                --count "$CONCURRENCY" --out "$TMP/tokens" >/dev/null
            args=(--mode introspect "${load[@]}" "${auth[@]}" --tokens "$TMP/tokens")
            ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    perf record -F 999 -g --call-graph dwarf,16384 -p "$PID" -o "$TMP/perf.data" \
        -- sleep "${DURATION%s}" >/dev/null 2>&1 &
    recorder=$!
    "$GEN" "${args[@]}" | tee "docs/profiles/$scenario.json"
    wait "$recorder" || true
    perf script -i "$TMP/perf.data" 2>/dev/null | inferno-collapse-perf \
        | inferno-flamegraph --title "tessera serve: $scenario (SQLite, $CONCURRENCY workers)" \
        >"docs/profiles/$scenario.svg"
    echo "docs/profiles/$scenario.svg"
    stop_server
done
