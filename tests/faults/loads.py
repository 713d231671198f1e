"""Judges the tessera-loadgen reports of a fault run (tests/faults/pg_outage.sh, disk_full.sh).

    python loads.py DIR --loads refresh,client-credentials --fault-at T --restored-at T \
        --recovery S --max-ms MS --allow 503,"authorize 503" --felt refresh

Reads DIR/LOAD.json for each load and asserts: every failed request failed with an allowed kind
(a 5xx with a body that is not an OAuth JSON error counts as "STATUS non-json", a hung request
as "timeout": neither is ever allowed unless named); no request took more than MS; no failure
before the fault (less 0.5 s); the last failure at most S seconds after the restore; each load
succeeded at least once; and each --felt load failed at least once (the fault was injected).
"""

import argparse
import json
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--loads", required=True)
    p.add_argument("--fault-at", type=float, required=True)
    p.add_argument("--restored-at", type=float, required=True)
    p.add_argument("--recovery", type=float, required=True)
    p.add_argument("--max-ms", type=float, required=True)
    p.add_argument("--allow", required=True)
    p.add_argument("--felt", default="")
    a = p.parse_args()
    allowed = set(a.allow.split(","))
    bad, last, total = [], 0.0, 0
    for load in a.loads.split(","):
        r = json.load(open(f"{a.dir}/{load}.json"))
        kinds = r["error_kinds"]
        total += r["errors"]
        print(f"{load}: ok {r['ok']}, errors {kinds}, p99 {r['p99_ms']} ms, slowest {r['max_ms']} ms")
        if set(kinds) - allowed:
            bad.append(f"{load}: failures other than {sorted(allowed)}: {kinds}")
        if r["max_ms"] > a.max_ms:
            bad.append(f"{load}: a request took {r['max_ms']} ms (> {a.max_ms})")
        if r["errors"]:
            if r["first_error_at"] < a.fault_at - 0.5:
                bad.append(f"{load}: failures before the fault")
            last = max(last, r["last_error_at"])
        if r["ok"] == 0:
            bad.append(f"{load}: nothing succeeded")
        if load in a.felt.split(",") and r["errors"] == 0:
            bad.append(f"{load}: no failure at all: the fault was not felt")
    after = max(0.0, last - a.restored_at)
    if total and after > a.recovery:
        bad.append(f"the last failure came {after:.2f}s after the restore (> {a.recovery}s)")
    print(f"{total} failed requests, all {sorted(allowed)}; the last {after:.2f}s after the restore")
    for b in bad:
        print("FAIL:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
