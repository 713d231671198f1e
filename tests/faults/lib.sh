# Shared by the tests/faults/ scripts (sourced, not run).
#
# BIN and GEN: the `tessera` and `tessera-loadgen` binaries (default target/debug, built by
# test.sh; FAULTS_PROFILE=release for the release ones). Every process a script starts through
# these helpers is stopped on exit, its temporary directories removed and its PostgreSQL
# databases dropped.
#
# `fail MSG`               prints FAIL: MSG and exits 1.
# `skip MSG`               exit 77 (a skip run.sh reports), or a failure under CI=true.
# `free_port`              a free loopback TCP port.
# `start_node NAME PORT DATA [VAR=VALUE...]`
#                          starts `tessera serve` on 127.0.0.1:PORT with data directory DATA
#                          and the extra environment, waits until /readyz answers 200, and
#                          sets NODE_PID[NAME]; the log is DATA/NAME.log, or LOG_DIR/NAME.log
#                          when LOG_DIR is set (appended).
# `kill_node NAME [SIGNAL]` signals the node (default TERM) and waits for it to exit.
# `setup_clients DATA [VAR=VALUE...]`
#                          registers, through the CLI on the node's database, the first-party
#                          public client faults-spa (code + refresh), the user `faults` and
#                          the confidential client faults-svc (client credentials); sets
#                          PASSWORD and SECRET.
# `pg_database`            creates a throwaway PostgreSQL database, sets PG_URL (dropped on
#                          exit); skips when PostgreSQL does not answer.
# `wait_for DESC SECONDS CMD...`  polls CMD every 0.1 s until it succeeds, or fails with DESC.
# `venv_python`            the Python of tests/faults/.venv (created once; stdlib only).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FAULTS="$ROOT/tests/faults"
PROFILE="${FAULTS_PROFILE:-debug}"
BIN="$ROOT/target/$PROFILE/tessera"
GEN="$ROOT/target/$PROFILE/tessera-loadgen"
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export NO_COLOR=1

[[ -x "$BIN" && -x "$GEN" ]] || {
    echo "FAIL: $BIN or $GEN missing (cargo build -p tessera -p tessera-loadgen)" >&2
    exit 1
}

declare -A NODE_PID=()
declare -A NODE_DATA=()
EXTRA_PIDS=()
TMP_DIRS=()
PG_DBS=()
UNMOUNT=()

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

skip() {
    if [[ "${CI:-}" == true ]]; then
        fail "$* (cannot skip under CI=true)"
    fi
    echo "SKIP: $*" >&2
    exit 77
}

faults_cleanup() {
    local name pid
    for name in "${!NODE_PID[@]}"; do
        kill "${NODE_PID[$name]}" 2>/dev/null || true
    done
    for pid in "${EXTRA_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for name in "${!NODE_PID[@]}"; do
        wait "${NODE_PID[$name]}" 2>/dev/null || true
    done
    for pid in "${EXTRA_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for m in "${UNMOUNT[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    for db in "${PG_DBS[@]}"; do
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if [[ "${KEEP_FAULTS_TMP:-}" != 1 ]]; then
        for d in "${TMP_DIRS[@]}"; do
            rm -rf "$d"
        done
    fi
}
trap faults_cleanup EXIT

# new_tmp VAR: a temporary directory in VAR, removed on exit (kept with KEEP_FAULTS_TMP=1).
# Not `$(new_tmp)`: the cleanup list lives in this shell.
new_tmp() {
    local d
    d="$(mktemp -d "${TMPDIR:-/tmp}/tessera-faults.XXXXXX")"
    TMP_DIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    local desc="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $desc"
        sleep 0.1
    done
}

ready() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/readyz")" == 200 ]]
}

start_node() {
    local name="$1" port="$2" data="$3"
    shift 3
    local log="${LOG_DIR:-$data}/$name.log"
    NODE_DATA[$name]="$data"
    env TESSERA_LOG="${FAULTS_LOG:-warn,tessera=info}" TESSERA_MASTER_KEY="$MASTER_KEY" "$@" \
        "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" >>"$log" 2>&1 &
    NODE_PID[$name]=$!
    local deadline=$((SECONDS + 60))
    until ready "http://127.0.0.1:$port"; do
        if ! kill -0 "${NODE_PID[$name]}" 2>/dev/null; then
            tail -20 "$log" >&2
            fail "node $name exited during startup"
        fi
        ((SECONDS < deadline)) || { tail -20 "$log" >&2; fail "node $name not ready after 60s"; }
        sleep 0.1
    done
}

kill_node() {
    local name="$1" sig="${2:-TERM}"
    kill -s "$sig" "${NODE_PID[$name]}" 2>/dev/null || true
    wait "${NODE_PID[$name]}" 2>/dev/null || true
    unset "NODE_PID[$name]"
}

setup_clients() {
    local data="$1"
    shift
    local cli=(env TESSERA_MASTER_KEY="$MASTER_KEY" TESSERA_LOG=warn "$@" "$BIN")
    "${cli[@]}" client --data-dir "$data" create --id faults-spa --public --first-party \
        --grant-type authorization_code --grant-type refresh_token \
        --redirect-uri http://127.0.0.1:8765/callback --scope read >/dev/null
    PASSWORD="faults-password-$RANDOM$RANDOM"
    printf '%s' "$PASSWORD" | "${cli[@]}" user --data-dir "$data" create faults --password-stdin >/dev/null
    SECRET="$("${cli[@]}" client --data-dir "$data" create --id faults-svc \
        --grant-type client_credentials --scope read --format json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')"
}

pg_database() {
    PG_URL=""
    psql "$PG_ADMIN" -qc "select 1" >/dev/null 2>&1 || skip "PostgreSQL does not answer on 127.0.0.1:5432"
    local db="tessera_faults_$$_${RANDOM}"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
    PG_DBS+=("$db")
    PG_URL="postgres://postgres@127.0.0.1:5432/$db"
}

# Installs a Debian package once, if its command is missing.
need_command() {
    local cmd="$1" package="$2"
    command -v "$cmd" >/dev/null 2>&1 && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    }
    command -v "$cmd" >/dev/null 2>&1 || fail "could not install $package"
}

venv_python() {
    local venv="$FAULTS/.venv"
    if ! [[ -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv" >/dev/null 2>&1 || {
            rm -rf "$venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$venv"
        }
    fi
    echo "$venv/bin/python"
}

# A field of a JSON object on stdin: json_get KEY (dotted path allowed).
json_get() {
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1"
}

# Unix time with fractions.
now() {
    date +%s.%N
}
