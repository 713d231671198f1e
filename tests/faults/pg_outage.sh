#!/usr/bin/env bash
# PostgreSQL unreachable mid-load and back: 503 JSON while it is down, recovery within seconds,
# no lost rotation.
#
#   tests/faults/pg_outage.sh
#
# One `tessera serve` on a throwaway database of the machine's PostgreSQL, reached through
# tcp_proxy.py (the shared PostgreSQL itself is never touched). Under a mixed load (refresh
# rotation with the grace window on, client credentials, code flow; the client cache off so
# every request needs the database) the proxy is cut (listener closed, every connection reset)
# for DOWN seconds, then restored. Asserts:
#   - every failed request failed with 503 (for the JSON endpoints: an OAuth JSON error body),
#     none with another status, none hung (each request is bounded; the slowest is reported
#     and must stay under MAX_MS);
#   - the outage was felt (some 503s), /readyz said 503 while it lasted;
#   - /readyz is 200 again and the last failed request is at most RECOVERY s after the restore;
#   - no lost rotation: each client's received chain is in the database link by link, its
#     last token is its family's live one, and every family is whole (families.py check).
source "$(dirname "$0")/lib.sh"

DOWN="${DOWN:-4}"
RECOVERY="${RECOVERY:-5}"
MAX_MS="${MAX_MS:-10000}"
PY="$(venv_python)"

pg_database
new_tmp DATA
PORT="$(free_port)"
PROXY_PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
"$PY" "$FAULTS/tcp_proxy.py" "$PROXY_PORT" 127.0.0.1 5432 >"$DATA/proxy.out" 2>&1 &
PROXY=$!
EXTRA_PIDS+=("$PROXY")
wait_for "the proxy to listen" 10 grep -q listening "$DATA/proxy.out"
PROXIED="postgres://postgres@127.0.0.1:$PROXY_PORT/${PG_URL##*/}"
ENV=(TESSERA_DATABASE_URL="$PROXIED" TESSERA_DATABASE_ACQUIRE_TIMEOUT=2s
    TESSERA_REFRESH_GRACE=60s TESSERA_CLIENT_CACHE_TTL=0s)

echo "== PostgreSQL unreachable for ${DOWN}s under load"
start_node server "$PORT" "$DATA" "${ENV[@]}"
setup_clients "$DATA" "${ENV[@]}"
TOKENS="$DATA/tokens"
mkdir "$TOKENS"
LOAD_SECONDS=$((DOWN + 12))
COMMON=(--base "$BASE" --duration "${LOAD_SECONDS}s" --request-timeout 15s)
"$GEN" --mode refresh "${COMMON[@]}" --concurrency 4 --client-id faults-spa --username faults \
    --password "$PASSWORD" --save-tokens "$TOKENS" --retry-status 503 \
    >"$DATA/refresh.json" 2>"$DATA/refresh.err" &
LOADS=($!)
"$GEN" --mode client-credentials "${COMMON[@]}" --concurrency 2 --client-id faults-svc \
    --client-secret "$SECRET" >"$DATA/client-credentials.json" 2>"$DATA/client-credentials.err" &
LOADS+=($!)
"$GEN" --mode code-exchange "${COMMON[@]}" --concurrency 1 --client-id faults-spa \
    --username faults --password "$PASSWORD" >"$DATA/code-exchange.json" 2>"$DATA/code-exchange.err" &
LOADS+=($!)
EXTRA_PIDS+=("${LOADS[@]}")

received() { cat "$TOKENS"/worker-*.tokens 2>/dev/null | wc -l; }
warm() { (($(received) >= 100)); }
wait_for "the load to run" 60 warm

t_cut="$(now)"
kill -USR1 "$PROXY"
wait_for "the proxy to cut" 5 grep -q '^cut' "$DATA/proxy.out"
echo "cut the proxy ($(grep '^cut' "$DATA/proxy.out" | head -1 | cut -d' ' -f2) connections reset)"
not_ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/readyz")" == 503 ]]; }
wait_for "/readyz to answer 503 while PostgreSQL is unreachable" 10 not_ready
sleep "$DOWN" # the outage itself: a fixed-length phase under load
t_restore="$(now)"
kill -USR2 "$PROXY"
wait_for "the proxy to listen again" 5 grep -q restored "$DATA/proxy.out"
wait_for "/readyz after the restore" 30 ready "$BASE"
ready_after="$(python3 -c "print(round($(now) - $t_restore, 2))")"
echo "restored the proxy; /readyz 200 after ${ready_after}s"

for pid in "${LOADS[@]}"; do
    wait "$pid" || { cat "$DATA"/*.err >&2; fail "a load generator failed (a refused rotation other than 503?)"; }
done

"$PY" "$FAULTS/loads.py" "$DATA" --loads refresh,client-credentials,code-exchange \
    --fault-at "$t_cut" --restored-at "$t_restore" --recovery "$RECOVERY" --max-ms "$MAX_MS" \
    --allow "503,authorize 503,exchange 503" --felt refresh,client-credentials \
    || fail "PostgreSQL outage"

echo "-- no lost rotation"
"$PY" "$FAULTS/families.py" check "$PG_URL" --tokens "$TOKENS" --grace --last-live \
    || fail "families after the PostgreSQL outage"
grep -q panicked "$DATA/server.log" && fail "the server panicked (see $DATA/server.log)"
echo "PASS PostgreSQL unreachable and back"
