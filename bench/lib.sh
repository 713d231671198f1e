# Shared by the bench/ scripts (sourced, not run).
#
# `build [debug]`    builds the release binaries (BIN, GEN, and LIMIT, the RS256 sign/verify
#                    limit of bench/loadgen/src/bin/tessera-limit.rs, and tessera-cache's
#                    footprint example); `build debug` the debug ones instead.
# `start_server URL` starts one `tessera serve` on a free loopback port on the database URL
#                    (empty: the embedded SQLite in a temporary data directory), waits until it
#                    is ready, and registers the confidential client `bench-svc`
#                    (client_credentials). Sets TMP, PID, BASE, SECRET and DB_ENV.
# `stop_server`      stops it and removes TMP (also done on exit).
# `pg_database`      creates a throwaway PostgreSQL database and sets PG_URL to it (dropped
#                    on exit); leaves PG_URL empty when PostgreSQL is not reachable. Call it
#                    directly, not in `$(...)`: the cleanup list lives in this shell.
# `pg_drop`          drops the database of the last `pg_database` now (the server on it must
#                    be stopped), instead of on exit.

# What every bench script builds, in one invocation: the footprint example (bench/run.sh)
# built on its own would bring its dev-dependencies' features, and cargo would build every
# dependency a second time for it.
BUILD_TARGETS=(-p tessera -p tessera-loadgen -p tessera-cache --bins --example footprint)
build() {
    local profile=release
    if [[ "${1:-}" == debug ]]; then
        profile=debug
        cargo build --locked -q "${BUILD_TARGETS[@]}"
    else
        cargo build --release --locked -q "${BUILD_TARGETS[@]}"
    fi
    BIN=target/$profile/tessera
    GEN=target/$profile/tessera-loadgen
    LIMIT=target/$profile/tessera-limit
}

PID=""
TMP=""
PG_DBS=()
cleanup() {
    stop_server
    for db in "${PG_DBS[@]}"; do
        psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

stop_server() {
    if [[ -n "$PID" ]]; then
        kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    fi
    PID=""
    [[ -n "$TMP" ]] && rm -rf "$TMP"
    TMP=""
}

pg_database() {
    PG_URL=""
    psql postgres://postgres@127.0.0.1:5432/postgres -qc "select 1" >/dev/null 2>&1 || return 0
    local db="tessera_bench_$$_${RANDOM}"
    psql postgres://postgres@127.0.0.1:5432/postgres -qc "CREATE DATABASE $db" >/dev/null
    PG_DBS+=("$db")
    PG_URL="postgres://postgres@127.0.0.1:5432/$db"
}

pg_drop() {
    [[ -n "${PG_URL:-}" ]] || return 0
    psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS ${PG_URL##*/} WITH (FORCE)" >/dev/null 2>&1 || true
    PG_URL=""
}

start_server() {
    local url="$1"
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")"
    DB_ENV=(env "TESSERA_MASTER_KEY=$(head -c 32 /dev/urandom | base64)")
    if [[ -n "$url" ]]; then
        DB_ENV+=("TESSERA_DATABASE_URL=$url" "TESSERA_DATABASE_MAX_CONNECTIONS=${DB_CONNECTIONS:-20}")
    fi
    NO_COLOR=1 TESSERA_LOG=warn,tessera=info "${DB_ENV[@]}" "$BIN" serve --listen 127.0.0.1:0 \
        --data-dir "$TMP" >"$TMP/server.log" 2>&1 &
    PID=$!
    BASE=""
    for _ in $(seq 1 100); do
        BASE="$(sed -n 's/.*tessera is ready.* issuer=\([^ ]*\).*/\1/p' "$TMP/server.log" | head -1)"
        [[ -n "$BASE" ]] && curl -fsS -o /dev/null "$BASE/readyz" && break
        sleep 0.1
    done
    [[ -n "$BASE" ]] || { cat "$TMP/server.log"; echo "server did not start" >&2; exit 1; }
    SECRET="$("${DB_ENV[@]}" "$BIN" client --data-dir "$TMP" create --id bench-svc \
        --grant-type client_credentials --scope read --format json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')"
}
