#!/usr/bin/env bash
# Real-browser end-to-end check of the sign-in pages: Debian's chromium driven by
# playwright-core, tokens verified with jose against the server's JWKS.
#
#   bash tests/browser/run.sh [path/to/tessera]   (default: target/debug/tessera)
#
# Installs what is missing, each step a no-op when already done: Debian's chromium
# (/usr/bin/chromium) and, if there is no Node.js at all, Debian's nodejs and npm; then
# `npm ci` into tests/browser/node_modules, again only when package-lock.json changed.
# Builds nothing: it takes the tessera binary as $1. Starts `tessera serve --demo` on a free
# port with a temporary data directory, waits until it is ready, and runs the tests with
# Node's own test runner. The exit code is the test runner's. The server and the data
# directory are always cleaned up.
#
# Screenshots (login, login error, consent, error page) go to $TESSERA_SCREENSHOT_DIR,
# by default tests/browser/screenshots/ (git-ignored), so an ordinary run leaves the work
# tree clean. To refresh the ones the README shows:
#
#   TESSERA_SCREENSHOT_DIR=docs/screenshots bash tests/browser/run.sh target/debug/tessera
#
# Without chromium and no way to install it (not root), the check is skipped with a
# message, except under CI=true, where it fails instead.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BIN="${1:-$REPO/target/debug/tessera}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
CHROMIUM=/usr/bin/chromium

if [[ ! -x "$BIN" ]]; then
    echo "browser: tessera binary not found at $BIN (run cargo build first)" >&2
    exit 2
fi

NAME=browser
# shellcheck source=../lib.sh
source "$REPO/tests/lib.sh"

# --- System packages: chromium, Node.js ---------------------------------------------------
if [[ ! -x "$CHROMIUM" ]]; then
    can_install || missing "chromium ($CHROMIUM)"
    echo "browser: installing Debian's chromium" >&2
    apt_install chromium
fi
ensure_node playwright-core
npm_ci "$HERE" "playwright-core, jose"

# --- Server ---------------------------------------------------------------------------------
# The consent page shows scopes in words: describe the one the tests ask for.
READ_SCOPE_DESCRIPTION="See your reports and settings"
export TESSERA_SCOPE_DESCRIPTIONS="read=$READ_SCOPE_DESCRIPTION"
tessera_serve --demo
# Ready once the demo has printed its password too:
# "  user                 demo  password <password>"
demo_password() {
    PASSWORD="$(sed -n 's/^ *user  *demo  *password  *\([^ ]*\) *$/\1/p' "$OUT" | head -n1)"
    [[ -n "$PASSWORD" ]]
}
tessera_wait_ready demo_password

# --- Tests ----------------------------------------------------------------------------------
SCREENSHOTS="${TESSERA_SCREENSHOT_DIR:-$HERE/screenshots}"
case "$SCREENSHOTS" in /*) ;; *) SCREENSHOTS="$PWD/$SCREENSHOTS" ;; esac
mkdir -p "$SCREENSHOTS"

set +e
# The demo's fixed names: crates/tessera/src/demo.rs (PUBLIC_CLIENT, USER, AUDIENCE).
TESSERA_URL="$ISSUER" \
TESSERA_DEMO_CLIENT_ID=demo-spa \
TESSERA_DEMO_CLIENT_NAME="Tessera demo app" \
TESSERA_DEMO_REDIRECT_URI="$ISSUER/demo/callback" \
TESSERA_DEMO_AUDIENCE="urn:tessera:demo-api" \
TESSERA_USERNAME=demo \
TESSERA_PASSWORD="$PASSWORD" \
TESSERA_BIN="$BIN" \
TESSERA_DATA_DIR="$DATA" \
TESSERA_SERVER_LOG="$LOG" \
TESSERA_CHROMIUM="$CHROMIUM" \
TESSERA_SCREENSHOT_DIR="$SCREENSHOTS" \
TESSERA_READ_SCOPE_DESCRIPTION="$READ_SCOPE_DESCRIPTION" \
    node --test --test-reporter=spec "$HERE/sign-in.test.mjs"
rc=$?
set -e
echo "browser: screenshots in $SCREENSHOTS" >&2
exit "$rc"
