#!/usr/bin/env bash
# Interoperability check: third-party Python OAuth clients (authlib, PyJWT, requests)
# against a real `tessera serve`.
#
#   bash tests/interop/python/run.sh [path/to/tessera]   (default: target/debug/tessera)
#
# Creates (once) a venv at ${TESSERA_VENV:-<repo>/.venv}, reinstalling only when
# requirements.txt changes; starts the server on a free port with a temporary data
# directory; registers the clients and the user with the CLI; runs pytest. The exit code
# is pytest's. The server and the data directory are always cleaned up.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="${TESSERA_VENV:-$REPO/.venv}"
BIN="${1:-$REPO/target/debug/tessera}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac

if [[ ! -x "$BIN" ]]; then
    echo "interop: tessera binary not found at $BIN (run cargo build first)" >&2
    exit 2
fi
NAME=interop
# shellcheck source=../../lib.sh
source "$REPO/tests/lib.sh"

# --- Python environment -------------------------------------------------------------------
REQS="$HERE/requirements.txt"
STAMP="$VENV/.tessera-interop-requirements.sha256"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "interop: creating venv at $VENV" >&2
    if ! python3 -m venv "$VENV"; then
        # Debian's own python3 ships venv separately; install it (we run as root in CI).
        echo "interop: installing python3-venv" >&2
        rm -rf "$VENV"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$VENV"
    fi
fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "interop: installing $REQS" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    echo "$want" >"$STAMP"
fi
PY="$VENV/bin/python"

# --- Server ---------------------------------------------------------------------------------
# A fast key schedule, so the rotation test runs in seconds: keys are published 2 s before
# they sign, verifiers may cache the JWKS for 1 s, every node reloads its ring each second.
export TESSERA_JWKS_MAX_AGE=1s TESSERA_KEY_PUBLISH_AHEAD=2s TESSERA_KEY_REFRESH_INTERVAL=1s
tessera_serve
tessera_wait_ready

# --- Registrations (same SQLite database as the running server) ----------------------------
AUDIENCE="https://api.interop.test"
REDIRECT_URI="http://127.0.0.1:8765/callback"
json_field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

CC_SECRET="$("$BIN" client --data-dir "$DATA" create --id py-service \
    --grant-type client_credentials --scope read --scope write \
    --audience "$AUDIENCE" --format json | json_field client_secret)"
"$BIN" client --data-dir "$DATA" create --id py-spa --public --first-party \
    --grant-type authorization_code --grant-type refresh_token \
    --redirect-uri "$REDIRECT_URI" --scope read --audience "$AUDIENCE" --format json >/dev/null
USER_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
USER_ID="$(printf '%s\n' "$USER_PASSWORD" | "$BIN" user --data-dir "$DATA" create py-user \
    --password-stdin --role reader --format json | json_field id)"

# --- Tests ----------------------------------------------------------------------------------
set +e
TESSERA_URL="$ISSUER" \
TESSERA_AUDIENCE="$AUDIENCE" \
TESSERA_CC_CLIENT_ID=py-service \
TESSERA_CC_SECRET="$CC_SECRET" \
TESSERA_PUBLIC_CLIENT_ID=py-spa \
TESSERA_REDIRECT_URI="$REDIRECT_URI" \
TESSERA_USERNAME=py-user \
TESSERA_PASSWORD="$USER_PASSWORD" \
TESSERA_USER_ID="$USER_ID" \
TESSERA_USER_ROLES=reader \
TESSERA_BIN="$BIN" \
TESSERA_DATA_DIR="$DATA" \
    "$PY" -m pytest -q -p no:cacheprovider "$HERE/test_interop.py"
rc=$?
set -e
exit "$rc"
