"""Revocation is never forgotten while Redis dies and comes back (tests/faults/redis_restart.sh).

    python revocation_watch.py --nodes URL,URL --client-id ID --secret S --tokens FILE \
        --redis-port P --redis-pid PID --redis-pidfile FILE --out REPORT.json

Access tokens from FILE are split into four groups: revoked while Redis is up, revoked while it
is down (killed with SIGKILL), revoked after it was restarted (empty: --save ''), and never
revoked. Once every node has answered every token active (the caches of both tiers are warm),
one watcher thread per node introspects every token over and over while the phases run, each
answer recorded with the time its request was sent. Then:

  - every introspection and every revocation answered 200 (Redis is only an accelerator: its
    loss is a cache miss, never an error, and so never a 503 either);
  - a revoked token is never active in an answer to a request sent after its revocation
    returned, on the node that revoked it; on any other node, after one second (the bound the
    design gives for revocation visibility);
  - a token is never inactive before its revocation was sent, and a never-revoked token never
    inactive;
  - the nodes' /readyz said "redis unavailable" while it was down and plain "ready" after.

Prints one JSON report; exit status 1 with FAIL lines when a property does not hold.
"""

import argparse
import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

VISIBILITY = 1.0


def introspector(base: str, auth: str):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def call(path: str, token: str) -> tuple[int, bytes]:
        nonlocal conn
        body = urllib.parse.urlencode({"token": token})
        headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
        for attempt in range(2):
            try:
                conn.request("POST", path, body, headers)
                r = conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                # A keep-alive connection the server closed: reconnect once.
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    return call


def readyz(base: str) -> str:
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        c.request("GET", "/readyz")
        r = c.getresponse()
        return f"{r.status} {r.read().decode()}"
    finally:
        c.close()


def wait_until(desc: str, seconds: float, cond) -> float:
    start = time.time()
    while not cond():
        if time.time() - start > seconds:
            raise SystemExit(f"FAIL: timed out after {seconds}s waiting for {desc}")
        time.sleep(0.05)
    return time.time() - start


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--redis-port", required=True, type=int)
    p.add_argument("--redis-pid", required=True, type=int)
    p.add_argument("--redis-pidfile", required=True)
    p.add_argument("--phase-seconds", type=float, default=2.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    nodes = args.nodes.split(",")
    auth = "Basic " + base64.b64encode(f"{args.client_id}:{args.secret}".encode()).decode()
    tokens = [t for t in open(args.tokens).read().splitlines() if t]
    quarter = len(tokens) // 4
    groups = {
        "up": range(0, quarter),
        "down": range(quarter, 2 * quarter),
        "back": range(2 * quarter, 3 * quarter),
        "never": range(3 * quarter, len(tokens)),
    }
    failures: list[str] = []

    def fail(msg: str) -> None:
        if len(failures) < 50:
            print(f"FAIL: {msg}", file=sys.stderr)
        failures.append(msg)

    # Warm both tiers: every node answers every token active.
    for n, base in enumerate(nodes):
        call = introspector(base, auth)
        for i, t in enumerate(tokens):
            status, body = call("/api/v2/auth/introspect", t)
            if status != 200 or json.loads(body).get("active") is not True:
                fail(f"warm-up: node {n} token {i}: {status} {body[:200]!r}")
    if failures:
        return 1

    # (sent_at, node, token index, status, active)
    answers: list[tuple[float, int, int, int, bool | None]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def watch(n: int) -> None:
        call = introspector(nodes[n], auth)
        local = []
        while not stop.is_set():
            for i, t in enumerate(tokens):
                sent = time.time()
                try:
                    status, body = call("/api/v2/auth/introspect", t)
                    active = json.loads(body).get("active") if status == 200 else None
                except Exception as e:  # noqa: BLE001 - a transport failure is an answer too
                    status, active = 0, None
                    print(f"node {n}: transport failure: {e}", file=sys.stderr)
                local.append((sent, n, i, status, active))
                if stop.is_set():
                    break
        with lock:
            answers.extend(local)

    threads = [threading.Thread(target=watch, args=(n,)) for n in range(len(nodes))]
    for th in threads:
        th.start()

    revoked: dict[int, tuple[float, float, int]] = {}  # index -> (sent, returned, node)
    revoke_calls = [introspector(b, auth) for b in nodes]

    def revoke_group(name: str) -> None:
        for k, i in enumerate(groups[name]):
            n = k % len(nodes)
            sent = time.time()
            status, body = revoke_calls[n]("/api/v2/auth/revoke", tokens[i])
            returned = time.time()
            if status != 200:
                fail(f"revoking token {i} on node {n} ({name}): {status} {body[:200]!r}")
            revoked[i] = (sent, returned, n)

    report: dict = {}
    try:
        time.sleep(args.phase_seconds / 2)  # watchers running with everything active
        revoke_group("up")
        time.sleep(args.phase_seconds)

        os.kill(args.redis_pid, signal.SIGKILL)
        killed = time.time()
        for n, base in enumerate(nodes):
            report[f"node{n}_saw_redis_down_s"] = round(
                wait_until(f"node {n} to report Redis down", 15,
                           lambda b=base: "redis unavailable" in readyz(b)), 2)
        revoke_group("down")
        time.sleep(args.phase_seconds)
        report["redis_down_s"] = round(time.time() - killed, 2)

        redis = subprocess.Popen(
            ["redis-server", "--port", str(args.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        with open(args.redis_pidfile, "w") as f:
            f.write(str(redis.pid))
        restarted = time.time()
        for n, base in enumerate(nodes):
            report[f"node{n}_redis_back_s"] = round(
                wait_until(f"node {n} to report Redis back", 30,
                           lambda b=base: readyz(b) == "200 ready"), 2)
        revoke_group("back")
        time.sleep(args.phase_seconds)
        report["redis_back_for_s"] = round(time.time() - restarted, 2)
    finally:
        stop.set()
        for th in threads:
            th.join()

    statuses: dict[int, int] = {}
    lag = 0.0
    first_inactive: dict[tuple[int, int], float] = {}
    for sent, n, i, status, active in sorted(answers):
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            fail(f"introspection of token {i} on node {n} answered {status}")
            continue
        if i not in revoked:
            if active is not True:
                fail(f"never-revoked token {i} answered inactive on node {n}")
            continue
        r_sent, r_returned, r_node = revoked[i]
        if active is True:
            limit = r_returned if n == r_node else r_returned + VISIBILITY
            if sent > limit:
                fail(f"token {i} revoked on node {r_node} answered active on node {n} "
                     f"{sent - r_returned:.3f}s after its revocation returned")
        elif sent < r_sent:
            fail(f"token {i} answered inactive on node {n} before its revocation was sent")
        elif (n, i) not in first_inactive:
            first_inactive[(n, i)] = sent
            lag = max(lag, sent - r_returned)
    for i in revoked:
        for n in range(len(nodes)):
            if (n, i) not in first_inactive:
                fail(f"token {i}: node {n} never answered inactive after its revocation")
    report.update({
        "introspections": len(answers),
        "statuses": {str(k): v for k, v in statuses.items()},
        "revoked": len(revoked),
        "max_first_inactive_after_revocation_s": round(lag, 3),
        "failures": len(failures),
    })
    with open(args.out, "w") as f:
        json.dump(report, f)
    print(json.dumps(report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
