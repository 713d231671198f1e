#!/usr/bin/env bash
# Disk full on the SQLite data directory: clear errors, no corruption, recovery.
#
#   tests/faults/disk_full.sh
#
# The embedded server's data directory is a small tmpfs (SIZE, 16m; a loop-mounted ext4 image
# where tmpfs cannot be mounted; skipped when neither can, except under CI=true where that
# fails). Under a mixed load (refresh rotation with the grace window on, code flow, client
# credentials) the file system is filled to the last byte for FULL seconds, then the filler is
# deleted. Asserts (loads.py): every failed request failed with a 503 and an OAuth JSON body
# (never a 500, a non-JSON 5xx or a hang), the full disk was felt, and the last failure is at
# most RECOVERY s after the space came back. Then, the server stopped: PRAGMA integrity_check
# and foreign_key_check, every family whole and every client's chain in the database with its
# last token live (families.py check); and the server starts again on that data.
source "$(dirname "$0")/lib.sh"

SIZE="${SIZE:-16m}"
FULL="${FULL:-4}"
RECOVERY="${RECOVERY:-5}"
MAX_MS="${MAX_MS:-10000}"
PY="$(venv_python)"
need_command sqlite3 sqlite3

new_tmp WORK
MNT="$WORK/data"
mkdir "$MNT"
if mount -t tmpfs -o "size=$SIZE" tmpfs "$MNT" 2>/dev/null; then
    UNMOUNT+=("$MNT")
    echo "data directory: tmpfs of $SIZE"
else
    truncate -s "$SIZE" "$WORK/disk.img"
    if mkfs.ext4 -q -F "$WORK/disk.img" 2>/dev/null && mount -o loop "$WORK/disk.img" "$MNT" 2>/dev/null; then
        UNMOUNT+=("$MNT")
        echo "data directory: loop-mounted ext4 image of $SIZE"
    else
        skip "neither a tmpfs nor a loop device can be mounted here"
    fi
fi
export LOG_DIR="$WORK"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
ENV=(TESSERA_REFRESH_GRACE=60s)

echo "== disk full under the embedded SQLite"
start_node server "$PORT" "$MNT" "${ENV[@]}"
setup_clients "$MNT" "${ENV[@]}"
TOKENS="$WORK/tokens"
mkdir "$TOKENS"
COMMON=(--base "$BASE" --duration "$((FULL + 12))s" --request-timeout 15s)
"$GEN" --mode refresh "${COMMON[@]}" --concurrency 4 --client-id faults-spa --username faults \
    --password "$PASSWORD" --save-tokens "$TOKENS" --retry-status 503 \
    >"$WORK/refresh.json" 2>"$WORK/refresh.err" &
LOADS=($!)
"$GEN" --mode code-exchange "${COMMON[@]}" --concurrency 1 --client-id faults-spa \
    --username faults --password "$PASSWORD" >"$WORK/code-exchange.json" 2>"$WORK/code-exchange.err" &
LOADS+=($!)
"$GEN" --mode client-credentials "${COMMON[@]}" --concurrency 1 --client-id faults-svc \
    --client-secret "$SECRET" >"$WORK/client-credentials.json" 2>"$WORK/client-credentials.err" &
LOADS+=($!)
EXTRA_PIDS+=("${LOADS[@]}")

received() { cat "$TOKENS"/worker-*.tokens 2>/dev/null | wc -l; }
warm() { (($(received) >= 100)); }
wait_for "the load to run" 60 warm

t_full="$(now)"
dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || true # ends at ENOSPC
echo "filled the data directory: $(df -h --output=avail "$MNT" | tail -1 | tr -d ' ') left"
sleep "$FULL" # a fixed-length phase under load with the disk full
t_free="$(now)"
rm -f "$MNT/filler"
echo "freed the space"

for pid in "${LOADS[@]}"; do
    wait "$pid" || { cat "$WORK"/*.err >&2; fail "a load generator failed (a refused rotation other than 503?)"; }
done
"$PY" "$FAULTS/loads.py" "$WORK" --loads refresh,code-exchange,client-credentials \
    --fault-at "$t_full" --restored-at "$t_free" --recovery "$RECOVERY" --max-ms "$MAX_MS" \
    --allow "503,authorize 503,exchange 503" --felt refresh || fail "disk full"

kill_node server TERM
echo "-- no corruption, nothing lost"
"$PY" "$FAULTS/families.py" check "sqlite:$MNT/tessera.db" --tokens "$TOKENS" --grace --last-live \
    || fail "the database after the disk was full"
start_node server "$PORT" "$MNT" "${ENV[@]}"
"$PY" "$FAULTS/families.py" recover "sqlite:$MNT/tessera.db" --tokens "$TOKENS" --base "$BASE" \
    --client-id faults-spa --grace || fail "clients after the disk was full"
grep -q panicked "$WORK/server.log" && fail "the server panicked (see $WORK/server.log)"
echo "PASS disk full"
