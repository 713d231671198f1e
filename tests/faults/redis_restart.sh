#!/usr/bin/env bash
# Redis killed and restarted mid-load: every answer stays correct, revocation is never forgotten.
#
#   tests/faults/redis_restart.sh
#
# Two `tessera serve` nodes (one issuer) on a throwaway PostgreSQL database and a Redis of this
# script's own on a free port (`--save '' --appendonly no`: a restart comes back empty; the
# machine's Redis on 6379 is never touched). Access tokens are minted and introspected on both
# nodes (both cache tiers warm), then revocation_watch.py introspects every token on every node
# without pause while tokens are revoked with Redis up, Redis is killed (SIGKILL) and tokens are
# revoked while it is down, Redis is restarted and more tokens are revoked. See that file for
# what is asserted: all answers 200 (the design makes Redis an accelerator: its loss is a cache
# miss, never an error, so no 503 is allowed here), no revoked token active after its revocation
# returned (on the revoking node at once, elsewhere after 1 s), no wrong inactive answer, and
# /readyz naming Redis while it is down.
source "$(dirname "$0")/lib.sh"

PY="$(venv_python)"
need_command redis-server redis-server
command -v redis-cli >/dev/null || fail "redis-cli missing"

pg_database
new_tmp DATA
REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$DATA/redis.log" 2>&1 &
REDIS_PID=$!
EXTRA_PIDS+=("$REDIS_PID")
# The watcher restarts Redis and writes the new process id here; it is stopped on exit.
REDIS_PIDFILE="$DATA/redis.pid"
stop_restarted_redis() {
    [[ -s "$REDIS_PIDFILE" ]] && kill "$(cat "$REDIS_PIDFILE")" 2>/dev/null
    faults_cleanup
}
trap stop_restarted_redis EXIT
redis_up() { [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
wait_for "our Redis" 10 redis_up

PORT_A="$(free_port)"
PORT_B="$(free_port)"
ISSUER="http://127.0.0.1:$PORT_A"
ENV=(TESSERA_DATABASE_URL="$PG_URL" TESSERA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    TESSERA_REDIS_PREFIX="faults$$:" TESSERA_ISSUER="$ISSUER")
echo "== Redis killed and restarted under introspection and revocation (2 nodes)"
mkdir "$DATA/a" "$DATA/b"
start_node a "$PORT_A" "$DATA/a" "${ENV[@]}"
start_node b "$PORT_B" "$DATA/b" "${ENV[@]}"
setup_clients "$DATA/a" "${ENV[@]}"
"$GEN" --mode mint --base "$ISSUER" --client-id faults-svc --client-secret "$SECRET" \
    --count 80 --concurrency 4 --out "$DATA/tokens.txt"

"$PY" "$FAULTS/revocation_watch.py" --nodes "$ISSUER,http://127.0.0.1:$PORT_B" \
    --client-id faults-svc --secret "$SECRET" --tokens "$DATA/tokens.txt" \
    --redis-port "$REDIS_PORT" --redis-pid "$REDIS_PID" --redis-pidfile "$REDIS_PIDFILE" \
    --out "$DATA/report.json" || fail "revocation across a Redis restart"
grep -q panicked "$DATA"/a/a.log "$DATA"/b/b.log && fail "a node panicked"
echo "PASS Redis killed and restarted"
