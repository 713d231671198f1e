#!/usr/bin/env bash
# kill -9 under refresh rotation: every family stays whole, every client recovers.
#
#   tests/faults/kill9_refresh.sh sqlite|postgres [GRACE]     # GRACE: 0s (default) or e.g. 60s
#
# Eight clients rotate their own refresh-token chains as fast as the server answers
# (tessera-loadgen --mode refresh --save-tokens: every token each one received is kept). Once
# ROTATIONS (300) rotations have been answered, the server gets SIGKILL. ROUNDS (3) times, each
# with eight new clients, on the same data. Then, on the database the
# dead server left (families.py check): at most one live token per family and exactly one
# in each unrevoked family, nothing half-written, every token a client received is there
# (durable once answered) and chained as received. Then the server restarts on the same data
# and each client presents the last token it received (families.py recover): live -> 200 and
# the chain goes on; rotated by a request whose answer the kill swallowed -> 200 within the
# grace window, a clean 400 invalid_grant without one; never a 5xx. The families are checked
# once more after that.
source "$(dirname "$0")/lib.sh"

ENGINE="${1:?sqlite or postgres}"
GRACE="${2:-0s}"
ROTATIONS="${ROTATIONS:-300}"
ROUNDS="${ROUNDS:-3}"
PY="$(venv_python)"
need_command sqlite3 sqlite3

new_tmp DATA
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
ENV=(TESSERA_REFRESH_GRACE="$GRACE")
case "$ENGINE" in
    sqlite) DB="sqlite:$DATA/tessera.db" ;;
    postgres)
        pg_database
        ENV+=(TESSERA_DATABASE_URL="$PG_URL")
        DB="$PG_URL"
        ;;
    *) fail "unknown engine $ENGINE" ;;
esac
GRACE_FLAG=()
[[ "$GRACE" != 0s ]] && GRACE_FLAG=(--grace)

echo "== kill -9 under refresh rotation: $ENGINE, grace $GRACE"
start_node server "$PORT" "$DATA" "${ENV[@]}"
setup_clients "$DATA" "${ENV[@]}"
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round of $ROUNDS"
    TOKENS="$DATA/tokens-$round"
    mkdir "$TOKENS"
    "$GEN" --mode refresh --base "$BASE" --concurrency 8 --duration 120s --client-id faults-spa \
        --username faults --password "$PASSWORD" --save-tokens "$TOKENS" --request-timeout 20s \
        >"$DATA/load-$round.json" 2>"$DATA/load-$round.err" &
    LOAD=$!
    EXTRA_PIDS+=("$LOAD")

    received() { cat "$TOKENS"/worker-*.tokens 2>/dev/null | wc -l; }
    enough() { (($(received) >= ROTATIONS + 8)); }
    wait_for "$ROTATIONS rotations" 60 enough
    kill_node server KILL
    echo "killed the server (SIGKILL) after $(($(received) - 8)) answered rotations"

    # Every worker ends at its first transport failure.
    wait_for "the load generator to notice" 30 bash -c "! kill -0 $LOAD"
    wait "$LOAD" || { cat "$DATA/load-$round.err" >&2; fail "the load generator failed (a refused rotation before the kill?)"; }
    kinds="$(json_get error_kinds <"$DATA/load-$round.json")"
    python3 -c 'import json, sys; sys.exit(any(k != "transport" for k in json.loads(sys.argv[1])))' \
        "$kinds" || fail "before the kill the load saw errors other than the kill itself: $kinds"
    echo "load: $(json_get ok <"$DATA/load-$round.json") rotations answered, errors $kinds"

    echo "-- the families on the dead server's database"
    "$PY" "$FAULTS/families.py" check "$DB" --tokens "$TOKENS" "${GRACE_FLAG[@]}" \
        || fail "families after kill -9 ($ENGINE)"

    echo "-- restart on the same data, each client presents its last token"
    t0="$(now)"
    start_node server "$PORT" "$DATA" "${ENV[@]}"
    echo "ready again after $(python3 -c "print(round($(now) - $t0, 2))") s"
    "$PY" "$FAULTS/families.py" recover "$DB" --tokens "$TOKENS" --base "$BASE" \
        --client-id faults-spa "${GRACE_FLAG[@]}" || fail "client recovery after kill -9 ($ENGINE)"
    "$PY" "$FAULTS/families.py" check "$DB" "${GRACE_FLAG[@]}" || fail "families after recovery ($ENGINE)"
done
grep -q panicked "$DATA/server.log" && fail "the server panicked (see $DATA/server.log)"
echo "PASS kill -9 under refresh rotation ($ENGINE, grace $GRACE)"
