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

# --- System packages: chromium, Node.js ---------------------------------------------------
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"
    }
}
can_install() { [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; }
missing() {
    local what="$1"
    if [[ "${CI:-}" == "true" ]]; then
        echo "browser: $what is missing and cannot be installed (not root); CI needs it" >&2
        exit 1
    fi
    echo "browser: SKIPPED: $what is missing and cannot be installed here (not root)" >&2
    exit 0
}

if [[ ! -x "$CHROMIUM" ]]; then
    can_install || missing "chromium ($CHROMIUM)"
    echo "browser: installing Debian's chromium" >&2
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    can_install || missing "Node.js/npm"
    echo "browser: installing Debian's nodejs and npm" >&2
    apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    # playwright-core needs Node.js 20 or later (Debian 12's own nodejs is 18).
    echo "browser: Node.js $(node --version) is too old; playwright-core needs 20 or later" >&2
    exit 1
fi

# --- npm packages ---------------------------------------------------------------------------
LOCK="$HERE/package-lock.json"
STAMP="$HERE/node_modules/.tessera-lock.sha256"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "browser: npm ci (playwright-core, jose)" >&2
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$STAMP"
fi

# --- Server ---------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tessera-browser.XXXXXX")"
DATA="$TMP/data"
OUT="$TMP/stdout.txt" # the demo's credentials (printed to standard output)
LOG="$TMP/server.log" # the server's log (standard error)
mkdir -p "$DATA"
SERVER_PID=""

cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$LOG" ]]; then
        echo "browser: server log ($LOG):" >&2
        sed 's/^/  | /' "$LOG" >&2 || true
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The consent page shows scopes in words: describe the one the tests ask for.
READ_SCOPE_DESCRIPTION="See your reports and settings"
export TESSERA_SCOPE_DESCRIPTIONS="read=$READ_SCOPE_DESCRIPTION"
NO_COLOR=1 "$BIN" serve --demo --listen 127.0.0.1:0 --data-dir "$DATA" --log-format text \
    >"$OUT" 2>"$LOG" &
SERVER_PID=$!

# Readiness: the log line names the bound address, the demo has printed its password, and
# /readyz answers 200. 100 attempts x 0.2 s = ~20 s in all.
ISSUER="" PASSWORD=""
for _ in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "browser: tessera serve --demo exited before becoming ready" >&2
        exit 1
    fi
    if [[ -z "$ISSUER" ]]; then
        line="$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -m1 'tessera is ready' || true)"
        if [[ -n "$line" ]]; then
            ISSUER="$(sed -n 's/.* issuer=\([^ ]*\).*/\1/p' <<<"$line")"
            LISTEN="$(sed -n 's/.* listen=\([^ ]*\).*/\1/p' <<<"$line")"
        fi
    fi
    if [[ -z "$PASSWORD" ]]; then
        # "  user                 demo  password <password>"
        PASSWORD="$(sed -n 's/^ *user  *demo  *password  *\([^ ]*\) *$/\1/p' "$OUT" | head -n1)"
    fi
    if [[ -n "$ISSUER" && -n "$PASSWORD" ]] &&
        curl -fsS -o /dev/null --max-time 1 "http://$LISTEN/readyz"; then
        break
    fi
    sleep 0.2
done
if [[ -z "$ISSUER" || -z "$PASSWORD" ]] || ! curl -fsS -o /dev/null --max-time 1 "http://$LISTEN/readyz"; then
    echo "browser: tessera did not become ready (or printed no demo password) within ~20 s" >&2
    sed 's/^/  | /' "$OUT" >&2 || true
    exit 1
fi
echo "browser: tessera ready at $ISSUER" >&2

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
