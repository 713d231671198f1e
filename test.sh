#!/usr/bin/env bash
# Runs every check CI runs, in order: formatting, lints, the Rust test suite (unit,
# integration, and the `oauth2`/`jsonwebtoken` interop tests), and the Python interop
# check (authlib + PyJWT against a real `tessera serve`). Installs what it needs.
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

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (tests and binary, built once)"
cargo build --workspace --all-targets --locked

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

step "Python interop (authlib, PyJWT)"
bash tests/interop/python/run.sh target/debug/tessera
