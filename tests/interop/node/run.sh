#!/usr/bin/env bash
# Interoperability check: the third-party OpenID Connect relying-party library
# `openid-client` (npm, by panva; oauth4webapi and jose underneath) signing a user in
# against a real `tessera serve`.
#
#   bash tests/interop/node/run.sh [path/to/tessera]   (default: target/debug/tessera)
#
# Installs what is missing, each step a no-op when already done: if there is no Node.js at
# all, Debian's nodejs and npm; then `npm ci` into tests/interop/node/node_modules, only
# when package-lock.json changed. Builds nothing: it takes the tessera binary as $1. Starts
# the server on a free port with a temporary data directory, registers the clients and the
# user with the CLI, and runs the tests with Node's own test runner. The exit code is the
# test runner's. The server and the data directory are always cleaned up.
#
# Without Node.js and no way to install it (not root), the check is skipped with a
# message, except under CI=true, where it fails instead.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
BIN="${1:-$REPO/target/debug/tessera}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac

if [[ ! -x "$BIN" ]]; then
    echo "interop-node: tessera binary not found at $BIN (run cargo build first)" >&2
    exit 2
fi

# --- Node.js --------------------------------------------------------------------------------
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
        echo "interop-node: $what is missing and cannot be installed (not root); CI needs it" >&2
        exit 1
    fi
    echo "interop-node: SKIPPED: $what is missing and cannot be installed here (not root)" >&2
    exit 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    can_install || missing "Node.js/npm"
    echo "interop-node: installing Debian's nodejs and npm" >&2
    apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    # openid-client 6 needs the Web Crypto and fetch of Node.js 20 or later.
    echo "interop-node: Node.js $(node --version) is too old; openid-client 6 needs 20 or later" >&2
    exit 1
fi

# --- npm packages ---------------------------------------------------------------------------
LOCK="$HERE/package-lock.json"
STAMP="$HERE/node_modules/.tessera-lock.sha256"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "interop-node: npm ci (openid-client)" >&2
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$STAMP"
fi

# --- Server ---------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tessera-interop-node.XXXXXX")"
DATA="$TMP/data"
LOG="$TMP/server.log"
mkdir -p "$DATA"
SERVER_PID=""

cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$LOG" ]]; then
        echo "interop-node: server log ($LOG):" >&2
        sed 's/^/  | /' "$LOG" >&2 || true
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NO_COLOR=1 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --log-format text >"$LOG" 2>&1 &
SERVER_PID=$!

# Readiness: the log line names the bound address, then /readyz must answer 200.
# 100 attempts x 0.2 s = ~20 s in all.
ISSUER=""
for _ in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "interop-node: tessera serve exited before becoming ready" >&2
        exit 1
    fi
    if [[ -z "$ISSUER" ]]; then
        line="$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -m1 'tessera is ready' || true)"
        if [[ -n "$line" ]]; then
            ISSUER="$(sed -n 's/.* issuer=\([^ ]*\).*/\1/p' <<<"$line")"
            LISTEN="$(sed -n 's/.* listen=\([^ ]*\).*/\1/p' <<<"$line")"
        fi
    fi
    if [[ -n "$ISSUER" ]] && curl -fsS -o /dev/null --max-time 1 "http://$LISTEN/readyz"; then
        break
    fi
    sleep 0.2
done
if [[ -z "$ISSUER" ]] || ! curl -fsS -o /dev/null --max-time 1 "http://$LISTEN/readyz"; then
    echo "interop-node: tessera did not become ready within ~20 s" >&2
    exit 1
fi
echo "interop-node: tessera ready at $ISSUER" >&2

# --- Registrations (same SQLite database as the running server) ----------------------------
# The redirect URIs are never contacted: the tests read the Location headers themselves.
AUDIENCE="https://api.interop-node.test"
REDIRECT_URI="http://127.0.0.1:8766/callback"
POST_LOGOUT_URI="http://127.0.0.1:8766/signed-out"
json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"; }

# A public client (PKCE, no secret) and a confidential one (client_secret_basic), both
# first-party (no consent page) with the OpenID Connect scopes.
for id in node-spa node-web; do
    kind=(--public)
    [[ "$id" == node-web ]] && kind=()
    out="$("$BIN" client --data-dir "$DATA" create --id "$id" "${kind[@]}" --first-party \
        --grant-type authorization_code --grant-type refresh_token \
        --redirect-uri "$REDIRECT_URI" --post-logout-redirect-uri "$POST_LOGOUT_URI" \
        --scope "openid profile email" --audience "$AUDIENCE" --format json)"
    [[ "$id" == node-web ]] && WEB_SECRET="$(json_field client_secret <<<"$out")"
done
# A service (client credentials): its access tokens carry no `openid` scope.
SERVICE_SECRET="$("$BIN" client --data-dir "$DATA" create --id node-service \
    --grant-type client_credentials --scope read \
    --audience "$AUDIENCE" --format json | json_field client_secret)"

USER_NAME="node-user"
USER_FULL_NAME="Ada Node Lovelace"
USER_EMAIL="ada.node@interop.test"
USER_PASSWORD="$(node -e 'console.log(require("crypto").randomBytes(18).toString("base64url"))')"
USER_ID="$(printf '%s\n' "$USER_PASSWORD" | "$BIN" user --data-dir "$DATA" create "$USER_NAME" \
    --name "$USER_FULL_NAME" --email "$USER_EMAIL" --email-verified \
    --password-stdin --role reader --format json | json_field id)"

# --- Tests ----------------------------------------------------------------------------------
set +e
TESSERA_URL="$ISSUER" \
TESSERA_REDIRECT_URI="$REDIRECT_URI" \
TESSERA_POST_LOGOUT_URI="$POST_LOGOUT_URI" \
TESSERA_PUBLIC_CLIENT_ID=node-spa \
TESSERA_CONFIDENTIAL_CLIENT_ID=node-web \
TESSERA_CONFIDENTIAL_SECRET="$WEB_SECRET" \
TESSERA_SERVICE_CLIENT_ID=node-service \
TESSERA_SERVICE_SECRET="$SERVICE_SECRET" \
TESSERA_USERNAME="$USER_NAME" \
TESSERA_PASSWORD="$USER_PASSWORD" \
TESSERA_USER_ID="$USER_ID" \
TESSERA_USER_FULL_NAME="$USER_FULL_NAME" \
TESSERA_USER_EMAIL="$USER_EMAIL" \
    node --test --test-reporter=spec --test-timeout=60000 "$HERE/oidc.test.mjs"
rc=$?
set -e
exit "$rc"
