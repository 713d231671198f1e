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

NAME=interop-node
# shellcheck source=../../lib.sh
source "$REPO/tests/lib.sh"

# --- Node.js and npm packages ---------------------------------------------------------------
# openid-client 6 needs the Web Crypto and fetch of Node.js 20 or later.
ensure_node "openid-client 6"
npm_ci "$HERE" openid-client

# --- Server ---------------------------------------------------------------------------------
tessera_serve
tessera_wait_ready

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
