"""Checks refresh-token families in a Tessera database after a fault (tests/faults/).

    python families.py check   DB [--tokens DIR] [--grace] [--last-live]
    python families.py recover DB --tokens DIR --base URL --client-id ID [--grace]

DB is `sqlite:PATH` (read with the sqlite3 CLI) or a `postgres://` URL (read with psql).
DIR holds the `worker-N.tokens` files of `tessera-loadgen --mode refresh --save-tokens DIR`:
every refresh token each client received, in order.

`check` asserts, for every family in the database:
  - at most one live token (rotated_at NULL), and exactly one unless the family is revoked;
  - nothing half-written: every successor exists in the same family, as many access-token
    records as refresh tokens (each rotation writes both in one transaction), no family without
    a token, and a rotated token without successor only where a grace retry superseded it
    (--grace), never one still named as someone's successor;
  - for SQLite, PRAGMA integrity_check and foreign_key_check;
and, with --tokens, for every client's chain: every token it received is in the database
(a rotation answered 200 is never lost), each one's recorded successor is the next it received
(no rotation it did not see, none missing), and, with --last-live, its last token is the live one.

`recover` looks up each client's last token, presents it to the server and asserts the answer
its state calls for: live -> 200; rotated (the response was lost) -> 200 with --grace (the retry
supersedes the successor nobody used), a clean 400 invalid_grant without; never a 5xx. After a
200 the new token is presented once more and must succeed too (the chain goes on).

Exit status 1 and a `FAIL:` line per violation when a property does not hold.
"""

import argparse
import hashlib
import json
import pathlib
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

FAILURES: list[str] = []


def fail(message: str) -> None:
    FAILURES.append(message)
    print(f"FAIL: {message}", file=sys.stderr)


class Db:
    """Runs SQL through the engine's command-line client."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.sqlite = spec.startswith("sqlite:")

    def hex(self, col: str) -> str:
        """An expression giving the upper-case hex of a BLOB/BYTEA column."""
        return f"hex({col})" if self.sqlite else f"upper(encode({col}, 'hex'))"

    def rows(self, sql: str) -> list[list[str]]:
        if self.sqlite:
            cmd = ["sqlite3", "-batch", "-noheader", "-separator", "|", self.spec[len("sqlite:"):], sql]
        else:
            cmd = ["psql", self.spec, "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return [line.split("|") for line in out.splitlines() if line != ""]


def check_invariants(db: Db, grace: bool) -> dict:
    if db.sqlite:
        integrity = db.rows("PRAGMA integrity_check")
        if integrity != [["ok"]]:
            fail(f"PRAGMA integrity_check: {integrity[:5]}")
        fk = db.rows("PRAGMA foreign_key_check")
        if fk:
            fail(f"PRAGMA foreign_key_check: {fk[:5]}")
    families = int(db.rows("SELECT count(*) FROM refresh_families")[0][0])
    tokens = int(db.rows("SELECT count(*) FROM refresh_tokens")[0][0])
    revoked = int(db.rows("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL")[0][0])
    for row in db.rows(
        "SELECT family_id, count(*) FROM refresh_tokens WHERE rotated_at IS NULL "
        "GROUP BY family_id HAVING count(*) > 1",
    ):
        fail(f"family {row[0]} has {row[1]} live refresh tokens")
    for row in db.rows(
        "SELECT f.id FROM refresh_families f WHERE f.revoked_at IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id AND t.rotated_at IS NULL)",
    ):
        fail(f"family {row[0]} is not revoked but has no live token (a half-done rotation)")
    for row in db.rows(
        "SELECT f.id FROM refresh_families f WHERE NOT EXISTS "
        "(SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)",
    ):
        fail(f"family {row[0]} has no refresh token at all")
    for row in db.rows(
        f"SELECT {db.hex('t.token_hash')}, t.family_id FROM refresh_tokens t "
        "WHERE t.successor_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM refresh_tokens s "
        "WHERE s.token_hash = t.successor_hash AND s.family_id = t.family_id)",
    ):
        fail(f"token {row[0][:12]}… of family {row[1]} names a successor that is not in its family")
    for row in db.rows(
        "SELECT f.id, (SELECT count(*) FROM refresh_tokens t WHERE t.family_id = f.id), "
        "(SELECT count(*) FROM family_access_tokens a WHERE a.family_id = f.id) "
        "FROM refresh_families f",
    ):
        if row[1] != row[2]:
            fail(f"family {row[0]}: {row[1]} refresh tokens but {row[2]} access-token records (half-written)")
    stale = db.rows(
        f"SELECT {db.hex('t.token_hash')}, EXISTS (SELECT 1 FROM refresh_tokens p "
        "WHERE p.successor_hash = t.token_hash) FROM refresh_tokens t "
        "WHERE t.rotated_at IS NOT NULL AND t.successor_hash IS NULL",
    )
    for row in stale:
        if not grace:
            fail(f"token {row[0][:12]}… was rotated but has no successor (no grace window: half-written)")
        elif row[1] in ("1", "t"):
            fail(f"superseded token {row[0][:12]}… is still named as a successor")
    return {"families": families, "revoked_families": revoked, "tokens": tokens, "superseded": len(stale)}


def load_tokens(db: Db) -> tuple[dict, set]:
    table = {}
    for h, succ, live, fam in db.rows(
        f"SELECT {db.hex('token_hash')}, coalesce({db.hex('successor_hash')}, ''), "
        "CASE WHEN rotated_at IS NULL THEN 1 ELSE 0 END, family_id FROM refresh_tokens",
    ):
        table[h] = (succ, live == "1", fam)
    revoked = {r[0] for r in db.rows("SELECT id FROM refresh_families WHERE revoked_at IS NOT NULL")}
    return table, revoked


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest().upper()


def chains(directory: pathlib.Path) -> dict[str, list[str]]:
    out = {}
    for f in sorted(directory.glob("worker-*.tokens")):
        lines = [line for line in f.read_text().splitlines() if line]
        out[f.stem] = lines
    if not out:
        fail(f"no worker-*.tokens files in {directory}")
    return out


def state_of(token: str, table: dict, revoked: set) -> str:
    entry = table.get(digest(token))
    if entry is None:
        return "missing"
    succ, live, fam = entry
    if fam in revoked:
        return "revoked"
    return "live" if live else "rotated"


def check_chains(db: Db, directory: pathlib.Path, last_live: bool) -> dict:
    table, revoked = load_tokens(db)
    states: dict[str, int] = {}
    received = 0
    for worker, tokens in chains(directory).items():
        received += len(tokens)
        hashes = [digest(t) for t in tokens]
        for i, h in enumerate(hashes):
            if h not in table:
                fail(f"{worker}: token #{i} it received (200) is not in the database: a lost rotation")
                break
            if i + 1 < len(hashes) and table[h][0] != hashes[i + 1]:
                fail(f"{worker}: token #{i}'s recorded successor is not token #{i + 1}, the one it received")
                break
        state = state_of(tokens[-1], table, revoked)
        states[state] = states.get(state, 0) + 1
        if last_live and state != "live":
            fail(f"{worker}: its last token is {state}, not the family's live token")
    return {"clients": sum(states.values()), "received": received, "last_token": states}


def post(url: str, form: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {"unparsed": body[:200].decode(errors="replace")}
    return status, parsed


def recover(db: Db, args: argparse.Namespace) -> dict:
    table, revoked = load_tokens(db)
    url = args.base.rstrip("/") + "/api/v2/auth/token"
    outcomes: dict[str, int] = {}
    for worker, tokens in chains(pathlib.Path(args.tokens)).items():
        state = state_of(tokens[-1], table, revoked)
        if state == "missing":
            fail(f"{worker}: its last token is not in the database")
            continue
        expect_ok = state == "live" or (state == "rotated" and args.grace)
        status, body = post(url, {"grant_type": "refresh_token", "client_id": args.client_id,
                                  "refresh_token": tokens[-1]})
        if status >= 500:
            fail(f"{worker}: presenting its last token ({state}) got {status}: {body}")
            continue
        if expect_ok:
            if status != 200 or "refresh_token" not in body:
                fail(f"{worker}: its last token is {state}, expected 200, got {status}: {body}")
                continue
            status2, body2 = post(url, {"grant_type": "refresh_token", "client_id": args.client_id,
                                        "refresh_token": body["refresh_token"]})
            if status2 != 200:
                fail(f"{worker}: the chain does not go on after recovery: {status2}: {body2}")
                continue
            kind = f"{state}: 200, chain goes on"
        else:
            if status != 400 or body.get("error") != "invalid_grant":
                fail(f"{worker}: its last token is {state}, expected 400 invalid_grant, got {status}: {body}")
                continue
            kind = f"{state}: invalid_grant"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    return outcomes


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["check", "recover"])
    p.add_argument("db")
    p.add_argument("--tokens")
    p.add_argument("--grace", action="store_true")
    p.add_argument("--last-live", action="store_true")
    p.add_argument("--base")
    p.add_argument("--client-id")
    args = p.parse_args()
    db = Db(args.db)
    if args.command == "check":
        report = check_invariants(db, args.grace)
        if args.tokens:
            report.update(check_chains(db, pathlib.Path(args.tokens), args.last_live))
    else:
        report = {"recovery": recover(db, args)}
    print(json.dumps(report))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
