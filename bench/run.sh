#!/usr/bin/env bash
# The benchmark harness (issue 11): Tessera's scenarios, the machine's RS256 limit and
# node-oidc-provider as the peer, measured in one run and written as one table.
#
#   bench/run.sh [scenario ...] [--smoke] [--write-benchmarks] [--no-build]
#
# Scenarios (default: all, in this order):
#   trivial jwks client-credentials code-exchange refresh introspect-cached
#   introspect-uncached guard-hit guard-miss peer-client-credentials peer-introspect peer-jwks
# What each measures is written next to the table (bench/report.py, MEASURES).
#
# First it builds the binaries (release; debug with --smoke) and runs tessera-limit: RS256
# sign/s and verify/s of one RSA-2048 key with aws-lc-rs on one core, so every throughput is
# also reported as a fraction of sign_limit = per-core sign/s x cores (verify_limit for
# introspect-uncached and guard-miss). Then, for each scenario, it starts what the scenario
# needs on loopback, fresh: one `tessera serve` on a new data directory (for the store
# scenarios client-credentials, code-exchange, refresh and introspect-*: once on the embedded
# SQLite and once on a new PostgreSQL database on 127.0.0.1:5432, dropped afterwards), plus
# one `tessera guard` for guard-*, or the node-oidc-provider server of bench/peers/ for peer-*
# (Node.js from Debian and `npm ci` when missing). It warms the load up (WARMUP, not
# measured), then runs ROUNDS timed loads of DURATION with bench/loadgen (closed loop,
# CONCURRENCY workers, each one request in flight; anything but the expected answer counts as
# an error), reading the measured process's CPU time and peak RSS (VmHWM, reset before each
# load) from /proc. Results: bench/results/latest.md (git-ignored) with the table, the
# limit, the machine, what each scenario measures, every round and every command; the raw
# rows in bench/results/latest.jsonl.
#
#   --smoke             each scenario once for DURATION=1s with few tokens on the debug
#                       binaries, then checks only that every scenario produced results with
#                       zero errors (exit 1 otherwise); no timing is checked. test.sh runs it.
#   --no-build          use the binaries already in target/ (test.sh builds them first).
#   --write-benchmarks  after a full run, replace the part of BENCHMARKS.md between
#                       <!-- bench:begin --> and <!-- bench:end --> with latest.md.
#
# Settings (environment; full-run defaults, smoke defaults in brackets): DURATION=10s [1s],
# ROUNDS=3 [1], WARMUP=2s [0s], CONCURRENCY=16 [8], TOKENS_INTROSPECT=20000 per second of
# DURATION [400], TOKENS_GUARD=40000 per second of DURATION [400] (tokens minted before each
# round of introspect-uncached and guard-miss, not timed; a run that uses them up stops there
# and says so), LIMIT_SECONDS=3 [0.2], ENGINES="sqlite postgres", BENCH_PROFILE=release
# [debug], STARTUP_RUNS=3 [1] (bench/startup.py: time to ready and idle RSS of `tessera
# serve`), FOOTPRINT_ENTRIES=1000000 [20000] (the validation cache's memory with that many
# entries: the footprint example of tessera-cache); FOOTPRINT=0 skips those two. WRK=1 adds a cross-check: every scenario whose request is fixed (trivial, jwks,
# client-credentials, introspect-cached, guard-hit, peer-*) once more through Debian's wrk
# (installed when missing), as the row SCENARIO/wrk. PostgreSQL or Node.js missing: those rows are skipped with a note (under CI=true
# the run fails instead).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_SCENARIOS=(trivial jwks client-credentials code-exchange refresh introspect-cached
    introspect-uncached guard-hit guard-miss peer-client-credentials peer-introspect peer-jwks)
STORE_SCENARIOS=" client-credentials code-exchange refresh introspect-cached introspect-uncached "
COMMAND_LINE="bench/run.sh${*:+ $*}"

SMOKE=0 WRITE=0 NO_BUILD=0
scenarios=()
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        --write-benchmarks) WRITE=1 ;;
        --no-build) NO_BUILD=1 ;;
        -h | --help)
            sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "bench/run.sh: unknown option $arg (see --help)" >&2
            exit 2
            ;;
        *)
            if [[ " ${ALL_SCENARIOS[*]} " != *" $arg "* ]]; then
                echo "bench/run.sh: unknown scenario $arg; one of: ${ALL_SCENARIOS[*]}" >&2
                exit 2
            fi
            scenarios+=("$arg")
            ;;
    esac
done
((${#scenarios[@]})) || scenarios=("${ALL_SCENARIOS[@]}")
if ((SMOKE && WRITE)); then
    echo "bench/run.sh: --write-benchmarks takes a full run, not --smoke" >&2
    exit 2
fi

if ((SMOKE)); then
    DURATION="${DURATION:-1s}" ROUNDS="${ROUNDS:-1}" WARMUP="${WARMUP:-0s}"
    CONCURRENCY="${CONCURRENCY:-8}" LIMIT_SECONDS="${LIMIT_SECONDS:-0.2}"
    TOKENS_INTROSPECT="${TOKENS_INTROSPECT:-400}" TOKENS_GUARD="${TOKENS_GUARD:-400}"
    PROFILE="${BENCH_PROFILE:-debug}"
else
    DURATION="${DURATION:-10s}" ROUNDS="${ROUNDS:-3}" WARMUP="${WARMUP:-2s}"
    CONCURRENCY="${CONCURRENCY:-16}" LIMIT_SECONDS="${LIMIT_SECONDS:-3}"
    PROFILE="${BENCH_PROFILE:-release}"
fi
ENGINES="${ENGINES:-sqlite postgres}"
if ((SMOKE)); then
    STARTUP_RUNS="${STARTUP_RUNS:-1}" FOOTPRINT_ENTRIES="${FOOTPRINT_ENTRIES:-20000}"
else
    STARTUP_RUNS="${STARTUP_RUNS:-3}" FOOTPRINT_ENTRIES="${FOOTPRINT_ENTRIES:-1000000}"
fi

# Seconds in a loadgen duration (humantime: 500ms, 10s, 2m).
seconds_of() {
    case "$1" in
        *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
        *s) echo "${1%s}" ;;
        *m) awk -v v="${1%m}" 'BEGIN { print v * 60 }' ;;
        *) echo "$1" ;;
    esac
}
DURATION_S="$(seconds_of "$DURATION")"
WARMUP_S="$(seconds_of "$WARMUP")"
TOKENS_INTROSPECT="${TOKENS_INTROSPECT:-$(awk -v s="$DURATION_S" 'BEGIN { printf "%d", 20000 * s }')}"
TOKENS_GUARD="${TOKENS_GUARD:-$(awk -v s="$DURATION_S" 'BEGIN { printf "%d", 40000 * s }')}"

# shellcheck source=bench/lib.sh
source bench/lib.sh

# --- Processes besides lib.sh's server ------------------------------------------------------
GUARD_PID=""
PEER_PID=""
stop_guard() {
    if [[ -n "$GUARD_PID" ]]; then
        kill "$GUARD_PID" 2>/dev/null && wait "$GUARD_PID" 2>/dev/null || true
    fi
    GUARD_PID=""
}
stop_peer() {
    if [[ -n "$PEER_PID" ]]; then
        kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null || true
    fi
    PEER_PID=""
}
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-run.XXXXXX")"
# Replaces lib.sh's trap: the guard and the peer first, then the server, TMP and databases.
trap 'stop_guard; stop_peer; cleanup; rm -rf "$RUN_DIR"' EXIT

RESULTS="$RUN_DIR/results.jsonl"
COMMANDS="$RUN_DIR/commands.txt"
: >"$RESULTS"
: >"$COMMANDS"
: >"$RUN_DIR/expected.txt"
: >"$RUN_DIR/skipped.txt"
cat /proc/loadavg >"$RUN_DIR/loadavg.start"

say() { printf 'bench: %s\n' "$*" >&2; }
# Records a command for latest.md (once), secrets replaced by their variable's name.
note_command() {
    local line="$*" v
    for v in SECRET PEER_SECRET PASSWORD PG_URL TMP RUN_DIR; do
        [[ -n "${!v:-}" ]] && line="${line//"${!v}"/\$$v}"
    done
    for v in BASE GUARD PEER; do
        [[ -n "${!v:-}" ]] && line="${line//"${!v}"/http://127.0.0.1:PORT}"
    done
    line="$(sed -E 's#(tokens|misses)-[0-9]+#\1-ROUND#g' <<<"$line")"
    grep -qxF -- "$line" "$COMMANDS" || echo "$line" >>"$COMMANDS"
}
skip() {
    # skip SCENARIO ENGINE REASON...
    local scenario="$1" engine="$2"
    shift 2
    if [[ "${CI:-}" == "true" ]]; then
        say "$scenario ($engine) cannot run: $* (CI=true: failing)"
        exit 1
    fi
    say "SKIPPED $scenario ($engine): $*"
    echo "$scenario $engine $*" >>"$RUN_DIR/skipped.txt"
}

# --- /proc readings of the measured process --------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
HWM_SCOPE=load
cpu_ticks() {
    [[ -r "/proc/$1/stat" ]] || { echo 0; return; }
    local stat fields
    read -r stat <"/proc/$1/stat"
    # Fields after "(comm) ": state is the first, utime the 12th, stime the 13th.
    read -ra fields <<<"${stat##*) }"
    echo $((fields[11] + fields[12]))
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Resets the peak RSS to the current RSS (Linux clear_refs "5"); if that is refused, the
# peak is the process's since it started, and latest.md says so.
reset_hwm() { { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null || HWM_SCOPE=process; }

# --- Loads ------------------------------------------------------------------------------------
# warmup ARGS...: the same load for WARMUP, not recorded.
warmup() {
    [[ "$WARMUP_S" == 0 ]] && return 0
    RUST_BACKTRACE=0 "$GEN" "$@" --concurrency "$CONCURRENCY" --duration "$WARMUP" >/dev/null 2>&1 || true
}
# measure SCENARIO ENGINE ROUND PID ARGS...: one timed load of bench/loadgen ARGS, with the
# CPU time and peak RSS of process PID; appends one row to results.jsonl.
measure() {
    local scenario="$1" engine="$2" round="$3" pid="$4"
    shift 4
    note_command "$GEN" "$@" --concurrency "$CONCURRENCY" --duration "$DURATION"
    measure_run "$scenario" "$engine" "$round" "$pid" \
        "$GEN" "$@" --concurrency "$CONCURRENCY" --duration "$DURATION"
}
# measure_run SCENARIO ENGINE ROUND PID COMMAND...: COMMAND prints one JSON line with at
# least ok, errors, per_second, p50_ms, p99_ms and seconds (what loadgen prints).
measure_run() {
    local scenario="$1" engine="$2" round="$3" pid="$4"
    shift 4
    reset_hwm "$pid"
    local before after out rc=0 TIMEFORMAT='%U %S'
    before="$(cpu_ticks "$pid")"
    # The load generator's own CPU time too: it shares the cores with the server.
    out="$({ time RUST_BACKTRACE=0 "$@" 2>"$RUN_DIR/loadgen.err"; } 2>"$RUN_DIR/loadgen.time")" || rc=$?
    after="$(cpu_ticks "$pid")"
    local cpu gen_cpu hwm prefix
    cpu="$(awk -v a="$before" -v b="$after" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / t }')"
    gen_cpu="$(awk '{ printf "%.2f", $1 + $2 }' "$RUN_DIR/loadgen.time" 2>/dev/null || echo 0)"
    hwm="$(hwm_kb "$pid")"
    prefix="\"scenario\":\"$scenario\",\"engine\":\"$engine\",\"round\":$round,\"server_cpu_s\":$cpu,\"loadgen_cpu_s\":${gen_cpu:-0},\"server_peak_rss_kb\":${hwm:-0},\"peak_rss_scope\":\"$HWM_SCOPE\""
    if ((rc == 0)) && [[ "$out" == "{"* ]]; then
        echo "{$prefix,${out#\{}" >>"$RESULTS"
        local ps p99 errors
        ps="$(grep -o '"per_second":[0-9.]*' <<<"$out" | cut -d: -f2)"
        p99="$(grep -o '"p99_ms":[0-9.]*' <<<"$out" | cut -d: -f2)"
        errors="$(grep -o '"errors":[0-9]*' <<<"$out" | cut -d: -f2)"
        say "$scenario ($engine) round $round: $ps/s, p99 $p99 ms, errors $errors, server CPU ${cpu}s, load generator CPU ${gen_cpu}s, peak RSS $((${hwm:-0} / 1024)) MB"
    else
        local why
        why="$(grep -v '^ *[0-9]*: \|^ *at \|^Stack backtrace\|^$' "$RUN_DIR/loadgen.err" | head -3 | tr '\n' ' ')"
        [[ -n "$why" ]] || why="$1 exited with $rc"
        echo "{$prefix,\"failed\":$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$why")}" >>"$RESULTS"
        say "$scenario ($engine) round $round FAILED: $why"
    fi
}
# With WRK=1: the same fixed request once more through Debian's wrk (closed loop too, as many
# connections as workers, one thread per core, DURATION), recorded as SCENARIO/wrk.
# wrk_check SCENARIO ENGINE PID URL [METHOD BODY [HEADER...]]
wrk_check() {
    [[ "${WRK:-0}" == 1 ]] || return 0
    local scenario="$1" engine="$2" pid="$3" url="$4" method="${5:-GET}" body="${6:-}"
    shift $(($# < 6 ? $# : 6)) # what is left: the headers
    local lua="$RUN_DIR/wrk.lua" h
    {
        echo "wrk.method = \"$method\""
        [[ -n "$body" ]] && echo "wrk.body = \"$body\""
        [[ -n "$body" ]] && echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
        for h in "$@"; do echo "wrk.headers[\"${h%%: *}\"] = \"${h#*: }\""; done
    } >"$lua"
    local threads
    threads="$(nproc)"
    ((threads <= CONCURRENCY)) || threads="$CONCURRENCY"
    note_command wrk -t "$threads" -c "$CONCURRENCY" -d "$DURATION" --latency -s wrk.lua "$url" \
        "$(sed -E 's#token=[^&]*#token=TOKEN#; s#Basic [A-Za-z0-9+/=]+#Basic base64(bench-svc:SECRET)#;
            s#Bearer [^ ]+#Bearer TOKEN#' <<<"# wrk.lua: $method${body:+ $body}${*:+ with $*}")"
    measure_run "$scenario/wrk" "$engine" 1 "$pid" wrk_json "$threads" "$url" "$lua"
}
# shellcheck disable=SC2317 # called through measure_run
wrk_json() {
    wrk -t "$1" -c "$CONCURRENCY" -d "$DURATION" --latency -s "$3" "$2" >"$RUN_DIR/wrk.out"
    python3 bench/report.py wrk "$RUN_DIR/wrk.out"
}
basic() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

# mint FILE COUNT ARGS...: COUNT client-credentials tokens into FILE (not timed).
mint() {
    local file="$1" count="$2"
    shift 2
    note_command "$GEN" --mode mint "$@" --concurrency "$CONCURRENCY" --count COUNT --out FILE
    RUST_BACKTRACE=0 "$GEN" --mode mint "$@" --concurrency "$CONCURRENCY" --count "$count" --out "$file"
}

# --- Servers ----------------------------------------------------------------------------------
# serve ENGINE: a fresh `tessera serve` (lib.sh's start_server) on ENGINE; 1 if unavailable.
serve() {
    case "$1" in
        sqlite) start_server "" ;;
        postgres)
            pg_database
            [[ -n "$PG_URL" ]] || return 1
            start_server "$PG_URL"
            ;;
    esac
    local db=""
    [[ "$1" == postgres ]] && db="TESSERA_DATABASE_URL=$PG_URL TESSERA_DATABASE_MAX_CONNECTIONS=${DB_CONNECTIONS:-20} "
    # (the database's name and the data directory are new for every server)
    note_command "${db}TESSERA_MASTER_KEY=\$RANDOM_KEY $BIN serve --listen 127.0.0.1:0 --data-dir $TMP"
    note_command "$BIN client --data-dir $TMP create --id bench-svc --grant-type client_credentials --scope read --format json"
}
unserve() {
    stop_server
    pg_drop
}
# The public first-party client and the user of code-exchange and refresh.
add_user() {
    "${DB_ENV[@]}" "$BIN" client --data-dir "$TMP" create --id bench-spa --public --first-party \
        --grant-type authorization_code --grant-type refresh_token \
        --redirect-uri http://127.0.0.1:8765/callback --scope read >/dev/null
    PASSWORD="bench-password-$RANDOM$RANDOM$RANDOM"
    printf '%s' "$PASSWORD" | "${DB_ENV[@]}" "$BIN" user --data-dir "$TMP" create bench \
        --password-stdin >/dev/null
    note_command "$BIN client --data-dir $TMP create --id bench-spa --public --first-party" \
        "--grant-type authorization_code --grant-type refresh_token" \
        "--redirect-uri http://127.0.0.1:8765/callback --scope read"
    note_command "printf %s \$PASSWORD | $BIN user --data-dir $TMP create bench --password-stdin"
}

start_guard() {
    : >"$TMP/guard.log"
    NO_COLOR=1 TESSERA_LOG=warn,tessera=info "$BIN" guard --issuer "$BASE" --audience "$BASE" \
        --listen 127.0.0.1:0 >>"$TMP/guard.log" 2>&1 &
    GUARD_PID=$!
    note_command "$BIN" guard --issuer "$BASE" --audience "$BASE" --listen 127.0.0.1:0
    GUARD=""
    for _ in $(seq 1 100); do
        GUARD="$(sed -n 's/.*tessera guard is ready.* listen=\([^ ]*\).*/http:\/\/\1/p' "$TMP/guard.log" | head -1)"
        [[ -n "$GUARD" ]] && curl -fsS -o /dev/null "$GUARD/healthz" && break
        GUARD=""
        sleep 0.1
    done
    [[ -n "$GUARD" ]] || { cat "$TMP/guard.log"; echo "guard did not start" >&2; exit 1; }
    # One accepted token first: this also has the guard fetch the JWKS before any timed load.
    "$GEN" --mode mint --base "$BASE" --concurrency 1 "${AUTH[@]}" --count 1 --out "$TMP/probe"
    local status
    status="$(curl -sS -o /dev/null -w '%{http_code}' \
        -H "Authorization: Bearer $(cat "$TMP/probe")" "$GUARD/verify")"
    if [[ "$status" != 200 ]]; then
        cat "$TMP/guard.log"
        echo "the guard refused a freshly minted token ($status)" >&2
        exit 1
    fi
}

PEER_DIR=bench/peers/oidc-provider
PEER_READY=""
# Node.js (Debian's, when missing) and the pinned oidc-provider (npm ci when the lock changed).
prepare_peer() {
    [[ -n "$PEER_READY" ]] && return "$((PEER_READY != 1))"
    PEER_READY=2
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            say "installing Debian's nodejs and npm"
            export DEBIAN_FRONTEND=noninteractive
            apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 || {
                apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm
            }
        fi
        command -v node >/dev/null 2>&1 || { PEER_WHY="Node.js is missing and cannot be installed"; return 1; }
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if ((major < 20)); then
        PEER_WHY="Node.js $(node --version) is too old for oidc-provider 9 (20.19 or later)"
        return 1
    fi
    local stamp="$PEER_DIR/node_modules/.tessera-lock.sha256" want
    want="$(sha256sum "$PEER_DIR/package-lock.json" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        say "npm ci in $PEER_DIR (oidc-provider)"
        (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 ||
            { PEER_WHY="npm ci failed"; return 1; }
        echo "$want" >"$stamp"
    fi
    PEER_READY=1
}
start_peer() {
    PEER_SECRET="peer-secret-$RANDOM$RANDOM$RANDOM"
    local log="$RUN_DIR/peer.log"
    : >"$log"
    NODE_ENV=production PEER_CLIENT_ID=bench-svc PEER_CLIENT_SECRET="$PEER_SECRET" \
        node "$PEER_DIR/server.mjs" >>"$log" 2>&1 &
    PEER_PID=$!
    note_command NODE_ENV=production PEER_CLIENT_SECRET="$PEER_SECRET" node "$PEER_DIR/server.mjs"
    PEER=""
    for _ in $(seq 1 100); do
        PEER="$(sed -n 's/^oidc-provider ready issuer=\([^ ]*\).*/\1/p' "$log" | head -1)"
        [[ -n "$PEER" ]] && break
        sleep 0.1
    done
    [[ -n "$PEER" ]] || { cat "$log"; echo "oidc-provider did not start" >&2; exit 1; }
    PEER_AUTH=(--client-id bench-svc --client-secret "$PEER_SECRET" --token-path /token)
}

# --- Scenarios --------------------------------------------------------------------------------
# run_scenario SCENARIO ENGINE
run_scenario() {
    local scenario="$1" engine="$2" round
    case "$scenario" in
        peer-*)
            start_peer
            case "$scenario" in
                peer-client-credentials)
                    local cc=(--mode client-credentials --base "$PEER" "${PEER_AUTH[@]}"
                        --resource urn:tessera:bench:jwt --scope read)
                    warmup "${cc[@]}"
                    for round in $(seq 1 "$ROUNDS"); do
                        measure "$scenario" "$engine" "$round" "$PEER_PID" "${cc[@]}"
                    done
                    wrk_check "$scenario" "$engine" "$PEER_PID" "$PEER/token" POST \
                        "grant_type=client_credentials&resource=urn%3Atessera%3Abench%3Ajwt&scope=read" \
                        "Authorization: $(basic bench-svc "$PEER_SECRET")"
                    ;;
                peer-introspect)
                    mint "$RUN_DIR/peer-tokens" "$CONCURRENCY" --base "$PEER" "${PEER_AUTH[@]}" \
                        --resource urn:tessera:bench:opaque --scope read
                    local in=(--mode introspect --base "$PEER" "${PEER_AUTH[@]}"
                        --introspect-path /token/introspection --tokens "$RUN_DIR/peer-tokens")
                    warmup "${in[@]}"
                    for round in $(seq 1 "$ROUNDS"); do
                        measure "$scenario" "$engine" "$round" "$PEER_PID" "${in[@]}"
                    done
                    wrk_check "$scenario" "$engine" "$PEER_PID" "$PEER/token/introspection" POST \
                        "token=$(head -1 "$RUN_DIR/peer-tokens")" \
                        "Authorization: $(basic bench-svc "$PEER_SECRET")"
                    ;;
                peer-jwks)
                    local get=(--mode get --path /jwks --base "$PEER")
                    warmup "${get[@]}"
                    for round in $(seq 1 "$ROUNDS"); do
                        measure "$scenario" "$engine" "$round" "$PEER_PID" "${get[@]}"
                    done
                    wrk_check "$scenario" "$engine" "$PEER_PID" "$PEER/jwks"
                    ;;
            esac
            stop_peer
            return
            ;;
    esac

    if ! serve "$engine"; then
        skip "$scenario" "$engine" "PostgreSQL is not reachable on 127.0.0.1:5432"
        return
    fi
    AUTH=(--client-id bench-svc --client-secret "$SECRET")
    local args=()
    case "$scenario" in
        trivial) args=(--mode healthz --base "$BASE") ;;
        jwks) args=(--mode get --path /.well-known/jwks.json --base "$BASE") ;;
        client-credentials) args=(--mode client-credentials --base "$BASE" "${AUTH[@]}") ;;
        code-exchange | refresh)
            add_user
            args=(--mode "$scenario" --base "$BASE" --client-id bench-spa --username bench
                --password "$PASSWORD")
            ;;
        introspect-cached)
            mint "$TMP/tokens" "$CONCURRENCY" --base "$BASE" "${AUTH[@]}"
            args=(--mode introspect --base "$BASE" "${AUTH[@]}" --tokens "$TMP/tokens")
            ;;
        introspect-uncached)
            # Warm up on tokens of their own, repeated (hits), never seen by the timed loads.
            mint "$TMP/warm" "$CONCURRENCY" --base "$BASE" "${AUTH[@]}"
            warmup --mode introspect --base "$BASE" "${AUTH[@]}" --tokens "$TMP/warm"
            for round in $(seq 1 "$ROUNDS"); do
                mint "$TMP/tokens-$round" "$TOKENS_INTROSPECT" --base "$BASE" "${AUTH[@]}"
                measure "$scenario" "$engine" "$round" "$PID" --mode introspect --distinct \
                    --stop-when-exhausted --base "$BASE" "${AUTH[@]}" --tokens "$TMP/tokens-$round"
                rm -f "$TMP/tokens-$round"
            done
            ;;
        guard-hit | guard-miss)
            start_guard
            if [[ "$scenario" == guard-hit ]]; then
                mint "$TMP/hits" "$CONCURRENCY" --base "$BASE" "${AUTH[@]}"
                args=(--mode verify --base "$GUARD" --tokens "$TMP/hits")
            else
                mint "$TMP/warm" "$CONCURRENCY" --base "$BASE" "${AUTH[@]}"
                warmup --mode verify --base "$GUARD" --tokens "$TMP/warm"
                for round in $(seq 1 "$ROUNDS"); do
                    mint "$TMP/misses-$round" "$TOKENS_GUARD" --base "$BASE" "${AUTH[@]}"
                    measure "$scenario" "$engine" "$round" "$GUARD_PID" --mode verify --distinct \
                        --stop-when-exhausted --base "$GUARD" --tokens "$TMP/misses-$round"
                    rm -f "$TMP/misses-$round"
                done
            fi
            ;;
    esac
    if ((${#args[@]})); then
        local pid="$PID"
        [[ "$scenario" == guard-* ]] && pid="$GUARD_PID"
        warmup "${args[@]}"
        for round in $(seq 1 "$ROUNDS"); do
            measure "$scenario" "$engine" "$round" "$pid" "${args[@]}"
        done
        local auth
        auth="Authorization: $(basic bench-svc "$SECRET")"
        case "$scenario" in
            trivial) wrk_check "$scenario" "$engine" "$pid" "$BASE/healthz" ;;
            jwks) wrk_check "$scenario" "$engine" "$pid" "$BASE/.well-known/jwks.json" ;;
            client-credentials)
                wrk_check "$scenario" "$engine" "$pid" "$BASE/api/v2/auth/token" POST \
                    grant_type=client_credentials "$auth"
                ;;
            introspect-cached)
                wrk_check "$scenario" "$engine" "$pid" "$BASE/api/v2/auth/introspect" POST \
                    "token=$(head -1 "$TMP/tokens")" "$auth"
                ;;
            guard-hit)
                wrk_check "$scenario" "$engine" "$pid" "$GUARD/verify" GET "" \
                    "Authorization: Bearer $(head -1 "$TMP/hits")"
                ;;
        esac
    fi
    stop_guard
    unserve
}

# --- The run ----------------------------------------------------------------------------------
if ((NO_BUILD)); then
    BIN=target/$PROFILE/tessera GEN=target/$PROFILE/tessera-loadgen LIMIT=target/$PROFILE/tessera-limit
    for b in "$BIN" "$GEN" "$LIMIT"; do
        [[ -x "$b" ]] || { echo "bench/run.sh --no-build: $b is missing (cargo build first)" >&2; exit 1; }
    done
else
    say "building the $PROFILE binaries (tessera, tessera-loadgen, tessera-limit)"
    if [[ "$PROFILE" == debug ]]; then build debug; else build; fi
fi

if [[ "${WRK:-0}" == 1 ]] && ! command -v wrk >/dev/null 2>&1; then
    say "installing Debian's wrk (WRK=1)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk
    }
fi

say "the limit: $LIMIT --seconds $LIMIT_SECONDS"
if ! "$LIMIT" --seconds "$LIMIT_SECONDS" >"$RUN_DIR/limit.json"; then
    rm -f "$RUN_DIR/limit.json"
    say "tessera-limit failed"
fi
[[ -f "$RUN_DIR/limit.json" ]] && say "$(cat "$RUN_DIR/limit.json")"

# Start-up time and idle RSS of `tessera serve` (embedded store), and the memory of a
# validation cache holding FOOTPRINT_ENTRIES entries, before any load.
if [[ "${FOOTPRINT:-1}" == 1 ]]; then
    : >"$RUN_DIR/footprint.expected"
    say "start-up and idle memory: python3 bench/startup.py $BIN"
    note_command python3 bench/startup.py "$BIN" --runs "$STARTUP_RUNS"
    python3 bench/startup.py "$BIN" --runs "$STARTUP_RUNS" >"$RUN_DIR/startup.json" ||
        rm -f "$RUN_DIR/startup.json"
    footprint="target/$PROFILE/examples/footprint"
    if [[ -x "$footprint" ]]; then
        say "validation cache memory: $footprint $FOOTPRINT_ENTRIES --churn"
        note_command "$footprint" "$FOOTPRINT_ENTRIES" --churn
        "$footprint" "$FOOTPRINT_ENTRIES" --churn >"$RUN_DIR/footprint.json" ||
            rm -f "$RUN_DIR/footprint.json"
    else
        say "no $footprint (cargo build -p tessera-cache --example footprint)"
    fi
    for f in startup footprint; do
        [[ -f "$RUN_DIR/$f.json" ]] && say "$f: $(cat "$RUN_DIR/$f.json")"
    done
fi

for scenario in "${scenarios[@]}"; do
    if [[ "$scenario" == peer-* ]]; then
        echo "$scenario in-memory" >>"$RUN_DIR/expected.txt"
        if ! prepare_peer; then
            skip "$scenario" in-memory "$PEER_WHY"
            continue
        fi
        run_scenario "$scenario" in-memory
    elif [[ "$STORE_SCENARIOS" == *" $scenario "* ]]; then
        for engine in $ENGINES; do
            echo "$scenario $engine" >>"$RUN_DIR/expected.txt"
            run_scenario "$scenario" "$engine"
        done
    else
        echo "$scenario sqlite" >>"$RUN_DIR/expected.txt"
        run_scenario "$scenario" sqlite
    fi
done
cat /proc/loadavg >"$RUN_DIR/loadavg.end"

# Skipped rows are not expected by the smoke check.
if [[ -s "$RUN_DIR/skipped.txt" ]]; then
    grep -vxFf <(cut -d' ' -f1,2 "$RUN_DIR/skipped.txt") "$RUN_DIR/expected.txt" >"$RUN_DIR/expected.kept" || true
    mv "$RUN_DIR/expected.kept" "$RUN_DIR/expected.txt"
fi

# --- Report -----------------------------------------------------------------------------------
dirty=""
[[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && dirty=" (with uncommitted changes)"
python3 - "$RUN_DIR/meta.json" <<PY
import json, subprocess, sys
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
lock = "$PEER_DIR/package-lock.json"
try:
    provider = json.load(open(lock))["packages"]["node_modules/oidc-provider"]["version"]
except Exception:
    provider = ""
json.dump({
    "mode": "smoke" if $SMOKE else "full",
    "profile": "$PROFILE",
    "date": out("date", "-u", "+%Y-%m-%d %H:%M UTC"),
    "commit": out("git", "rev-parse", "--short", "HEAD") + "$dirty",
    "command": "$COMMAND_LINE",
    "limit_command": "$LIMIT --seconds $LIMIT_SECONDS",
    "concurrency": "$CONCURRENCY", "duration": "$DURATION", "warmup": "$WARMUP", "rounds": "$ROUNDS",
    "settings": {"DURATION": "$DURATION", "ROUNDS": "$ROUNDS", "WARMUP": "$WARMUP",
                 "CONCURRENCY": "$CONCURRENCY", "TOKENS_INTROSPECT": "$TOKENS_INTROSPECT",
                 "TOKENS_GUARD": "$TOKENS_GUARD", "LIMIT_SECONDS": "$LIMIT_SECONDS",
                 "ENGINES": "$ENGINES", "BENCH_PROFILE": "$PROFILE"},
    "rustc": out("rustc", "-V"),
    "node": out("node", "--version") if any(s.startswith("peer-") for s in "${scenarios[*]}".split()) else "",
    "oidc_provider": provider if any(s.startswith("peer-") for s in "${scenarios[*]}".split()) else "",
    "postgres": out("psql", "postgres://postgres@127.0.0.1:5432/postgres", "-Atc", "show server_version")
        if "postgres" in "$ENGINES".split() else "",
}, open(sys.argv[1], "w"))
PY
mkdir -p bench/results
python3 bench/report.py write "$RUN_DIR" bench/results/latest.md
cp "$RESULTS" bench/results/latest.jsonl
say "wrote bench/results/latest.md"
sed -n '/^### Results/,/^### The limit/p' bench/results/latest.md | sed '$d' >&2

status=0
if ((SMOKE)); then
    if python3 bench/report.py check "$RUN_DIR"; then
        say "smoke: every scenario produced results with zero errors"
    else
        status=1
    fi
elif grep -q '"failed"\|"errors":[1-9]' "$RESULTS"; then
    say "WARNING: some loads failed or had errors (see the table)"
fi
if ((WRITE)); then
    python3 bench/report.py splice bench/results/latest.md "${BENCHMARKS_FILE:-BENCHMARKS.md}"
    say "spliced into ${BENCHMARKS_FILE:-BENCHMARKS.md}"
fi
exit "$status"
