#!/usr/bin/env bash
# Runs every check CI runs, in order: formatting, lints, the Rust test suite (unit,
# integration, and the `oauth2`/`jsonwebtoken` interop tests), and the Python interop
# check (authlib + PyJWT against a real `tessera serve`). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

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
