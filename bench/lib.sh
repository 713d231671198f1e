# Shared by the bench/ scripts (sourced, not run): builds the release binaries, starts one
# `tessera serve` on a free loopback port with a temporary data directory, waits until it is
# ready, and registers the confidential client `bench-svc` (client_credentials).
#
# Sets BIN, GEN, TMP, PID, BASE and SECRET; stops the server and removes TMP on exit.

cargo build --release --locked -q -p tessera -p tessera-loadgen
BIN=target/release/tessera
GEN=target/release/tessera-loadgen

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")"
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

NO_COLOR=1 TESSERA_LOG=warn,tessera=info "$BIN" serve --listen 127.0.0.1:0 --data-dir "$TMP" \
    >"$TMP/server.log" 2>&1 &
PID=$!
BASE=""
for _ in $(seq 1 100); do
    BASE="$(sed -n 's/.*tessera is ready.* issuer=\([^ ]*\).*/\1/p' "$TMP/server.log" | head -1)"
    [[ -n "$BASE" ]] && curl -fsS -o /dev/null "$BASE/readyz" && break
    sleep 0.1
done
[[ -n "$BASE" ]] || { cat "$TMP/server.log"; echo "server did not start" >&2; exit 1; }

SECRET="$("$BIN" client --data-dir "$TMP" create --id bench-svc --grant-type client_credentials \
    --scope read --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')"
