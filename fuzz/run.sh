#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30) on a temporary copy of
# its seed corpus (fuzz/corpus/<target>/, so corpus growth never reaches git); fails if any
# target crashes (a panic, a failed invariant, a sanitizer report, a timeout or OOM), and
# prints each target's executions. Crash inputs are kept in fuzz/artifacts/<target>/
# (git-ignored).
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Environment: SANITIZER=address (default) or none; JOBS=N runs N targets at a time
# (default 1); KEEP_CORPUS=DIR keeps the grown corpora under DIR instead of deleting them.
#
# Needs only stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags to the
# stable compiler (the AddressSanitizer runtime ships with the stable toolchain for
# x86_64-unknown-linux-gnu). Installs cargo-fuzz (cargo install --locked) when missing.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-30}"
shift || true
SANITIZER="${SANITIZER:-address}"
JOBS="${JOBS:-1}"
ALL_TARGETS=(token authorize introspect guard_jwt jwks)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# The instrumented build of the whole server stack takes ~10 minutes from scratch on two
# cores; it lives outside the checkout so that fresh clones (CI) on the same machine reuse
# it. FUZZ_TARGET_DIR chooses another place.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/fuzz-target}"
mkdir -p "$CARGO_TARGET_DIR"

# The server targets keep SQLite in a temporary directory: put it on tmpfs when there is
# one (no fsync cost), and remove it, with the corpus copies, whatever happens.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    WORK="$(mktemp -d /dev/shm/tessera-fuzz.XXXXXX)"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-fuzz.XXXXXX")"
fi
trap 'rm -rf "$WORK"' EXIT
export TMPDIR="$WORK"

echo "==> cargo fuzz build (sanitizer: $SANITIZER)"
if [ "$#" -eq 0 ]; then
    cargo fuzz build --sanitizer "$SANITIZER"
else
    for target in "${TARGETS[@]}"; do
        cargo fuzz build --sanitizer "$SANITIZER" "$target"
    done
fi

run_target() {
    local target="$1" corpus="$WORK/corpus/$1" log="$WORK/$1.log"
    mkdir -p "$corpus" "artifacts/$target"
    cp -R "corpus/$target/." "$corpus/" 2>/dev/null || true
    local status=0
    # -timeout: an input taking 30 s is a hang; -rss_limit_mb: the default, spelled out.
    nice -n 19 cargo fuzz run --sanitizer "$SANITIZER" "$target" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=2048 \
        -max_len=16384 -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        >"$log" 2>&1 || status=$?
    local execs
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)"
    local units
    units="$(find "$corpus" -type f | wc -l)"
    if [ "$status" -eq 0 ]; then
        printf '%-12s ok      %6ss  %10s executions  corpus %s\n' "$target" "$SECONDS_PER_TARGET" "${execs:-?}" "$units" | tee -a "$WORK/summary"
    else
        printf '%-12s FAILED  %6ss  %10s executions  (exit %s)\n' "$target" "$SECONDS_PER_TARGET" "${execs:-?}" "$status" | tee -a "$WORK/summary"
        echo "---- $target: last lines of the libFuzzer log ----"
        tail -n 60 "$log"
        echo "---- crash inputs: fuzz/artifacts/$target/ ----"
        touch "$WORK/failed"
    fi
    if [ -n "${KEEP_CORPUS:-}" ]; then
        mkdir -p "$KEEP_CORPUS/$target"
        cp -R "$corpus/." "$KEEP_CORPUS/$target/"
    fi
}

echo "==> running ${#TARGETS[@]} target(s), ${SECONDS_PER_TARGET}s each, $JOBS at a time"
running=0
for target in "${TARGETS[@]}"; do
    run_target "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

echo "==> summary"
cat "$WORK/summary"
if [ -e "$WORK/failed" ]; then
    echo "fuzzing found a crash: see the log above and fuzz/artifacts/" >&2
    exit 1
fi
