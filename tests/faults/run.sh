#!/usr/bin/env bash
# Runs every fault-injection script (see README.md beside this file) on the binaries in
# target/debug (FAULTS_PROFILE=release for target/release), which must be built first:
#
#   cargo build -p tessera -p tessera-loadgen && tests/faults/run.sh [NAME...]
#
# NAME picks scripts by name (kill9-sqlite kill9-sqlite-grace kill9-postgres
# kill9-postgres-grace pg-outage redis-restart disk-full); all by default. Each runs to the end
# even when an earlier one failed; the exit status is 1 when any failed. A script that cannot
# run here (no PostgreSQL, no mount) is reported as skipped, and fails instead under CI=true.
set -uo pipefail
cd "$(dirname "$0")"

declare -A SCRIPTS=(
    [kill9-sqlite]="./kill9_refresh.sh sqlite 0s"
    [kill9-sqlite-grace]="./kill9_refresh.sh sqlite 60s"
    [kill9-postgres]="./kill9_refresh.sh postgres 0s"
    [kill9-postgres-grace]="./kill9_refresh.sh postgres 60s"
    [pg-outage]="./pg_outage.sh"
    [redis-restart]="./redis_restart.sh"
    [disk-full]="./disk_full.sh"
)
ORDER=(kill9-sqlite kill9-sqlite-grace kill9-postgres kill9-postgres-grace pg-outage redis-restart disk-full)
(($#)) && ORDER=("$@")

passed=() failed=() skipped=()
for name in "${ORDER[@]}"; do
    [[ -n "${SCRIPTS[$name]:-}" ]] || { echo "unknown fault script $name" >&2; exit 2; }
    printf '\n--- %s\n' "$name"
    started=$SECONDS
    # shellcheck disable=SC2086 # the command and its arguments
    ${SCRIPTS[$name]}
    rc=$?
    case "$rc" in
        0) passed+=("$name") ;;
        77) skipped+=("$name") ;;
        *) failed+=("$name") ;;
    esac
    echo "--- $name: $( ((rc == 0)) && echo passed || { ((rc == 77)) && echo skipped || echo "FAILED ($rc)"; }) in $((SECONDS - started)) s"
done

printf '\nfaults: %d passed, %d skipped, %d failed%s\n' "${#passed[@]}" "${#skipped[@]}" \
    "${#failed[@]}" "$( ((${#failed[@]})) && echo ": ${failed[*]}")"
((${#failed[@]} == 0))
