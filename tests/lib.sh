# Shared by the checks that drive a real `tessera serve` with third-party clients
# (tests/interop/python/run.sh, tests/interop/node/run.sh, tests/browser/run.sh); sourced,
# not run. The caller sets NAME (the prefix of its messages) and BIN (the tessera binary)
# first.
#
# `apt_install PKG...`     installs Debian packages quietly (`apt-get update` only if needed).
# `can_install`            whether this process may install them (root with apt-get).
# `missing WHAT`           WHAT cannot be installed: skip (exit 0) with a message, or fail
#                          under CI=true.
# `ensure_node WHO`        Node.js and npm (Debian's, when there are none); fails unless
#                          Node.js is 20 or later, which WHO needs.
# `npm_ci DIR WHAT`        `npm ci` in DIR, only when its package-lock.json changed since.
# `tessera_serve [ARG...]` starts `tessera serve --listen 127.0.0.1:0` with a temporary data
#                          directory (DATA; standard output in OUT, the log in LOG) and the
#                          extra arguments; the server is stopped and the directory removed on
#                          exit, the log shown when the script fails.
# `tessera_wait_ready [CHECK]`
#                          waits (~20 s at most) until the log names the bound address and
#                          issuer (sets LISTEN and ISSUER), the command CHECK (if given)
#                          succeeds, and /readyz answers 200; fails otherwise.

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
        echo "$NAME: $what is missing and cannot be installed (not root); CI needs it" >&2
        exit 1
    fi
    echo "$NAME: SKIPPED: $what is missing and cannot be installed here (not root)" >&2
    exit 0
}

ensure_node() {
    local who="$1" major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        can_install || missing "Node.js/npm"
        echo "$NAME: installing Debian's nodejs and npm" >&2
        apt_install nodejs npm
    fi
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if ((major < 20)); then
        # Debian 12's own nodejs is 18.
        echo "$NAME: Node.js $(node --version) is too old; $who needs 20 or later" >&2
        exit 1
    fi
}

npm_ci() {
    local dir="$1" what="$2" want
    local stamp="$dir/node_modules/.tessera-lock.sha256"
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        echo "$NAME: npm ci ($what)" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
    fi
}

SERVER_PID=""
TMP=""

_tessera_cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -n "$TMP" && -f "$LOG" ]]; then
        echo "$NAME: server log ($LOG):" >&2
        sed 's/^/  | /' "$LOG" >&2 || true
    fi
    [[ -n "$TMP" ]] && rm -rf "$TMP"
    exit "$status"
}

tessera_serve() {
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/tessera-$NAME.XXXXXX")"
    DATA="$TMP/data"
    OUT="$TMP/stdout.txt"
    LOG="$TMP/server.log"
    mkdir -p "$DATA"
    trap _tessera_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    NO_COLOR=1 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --log-format text "$@" \
        >"$OUT" 2>"$LOG" &
    SERVER_PID=$!
}

_tessera_ready() {
    [[ -n "$ISSUER" ]] && { [[ -z "$1" ]] || "$1"; } &&
        curl -fsS -o /dev/null --max-time 1 "http://$LISTEN/readyz"
}

tessera_wait_ready() {
    local check="${1:-}" line
    ISSUER="" LISTEN=""
    # 100 attempts x 0.2 s = ~20 s in all.
    for _ in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "$NAME: tessera serve exited before becoming ready" >&2
            exit 1
        fi
        if [[ -z "$ISSUER" ]]; then
            line="$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -m1 'tessera is ready' || true)"
            if [[ -n "$line" ]]; then
                ISSUER="$(sed -n 's/.* issuer=\([^ ]*\).*/\1/p' <<<"$line")"
                LISTEN="$(sed -n 's/.* listen=\([^ ]*\).*/\1/p' <<<"$line")"
            fi
        fi
        if _tessera_ready "$check"; then
            echo "$NAME: tessera ready at $ISSUER" >&2
            return 0
        fi
        sleep 0.2
    done
    echo "$NAME: tessera did not become ready within ~20 s${check:+ ($check did not succeed)}" >&2
    sed 's/^/  | /' "$OUT" >&2 || true
    exit 1
}
