#!/usr/bin/env python3
"""Start-up time and idle memory of `tessera serve` on the embedded store (issue 11).

    python3 bench/startup.py BIN [--runs N]

Each run starts BIN (`tessera serve --listen 127.0.0.1:PORT --data-dir DIR`, a new DIR and
master key per run) twice: the first start creates the master key's sealed RSA-2048 key, the
database and its schema; the second opens them. Time to ready is from just before the
process is spawned until `GET /readyz` first answers 200 (polled every millisecond over a
kept-alive connection). Idle RSS is the process's VmRSS one second after it became ready,
with no request but the readiness probe. Prints one JSON object: the medians over the runs
and every run's figures.
"""

import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary, data_dir, key):
    port = free_port()
    env = dict(os.environ, TESSERA_MASTER_KEY=key, NO_COLOR="1", TESSERA_LOG="warn")
    began = time.monotonic()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = began + 30
    ready_s = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                ready_s = time.monotonic() - began
                conn.close()
                break
            conn.close()
        except OSError:
            pass
        time.sleep(0.001)
    if ready_s is None:
        proc.kill()
        err = proc.stderr.read().decode(errors="replace")[-2000:]
        raise SystemExit(f"tessera serve did not become ready: {err}")
    time.sleep(1)
    idle = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(timeout=10)
    return ready_s * 1000, idle / 1024


def main(argv):
    binary = argv[1]
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 3
    rows = []
    for _ in range(runs):
        key = base64.b64encode(os.urandom(32)).decode()
        with tempfile.TemporaryDirectory(prefix="tessera-startup.") as data_dir:
            first_ms, first_rss = start(binary, data_dir, key)
            second_ms, second_rss = start(binary, data_dir, key)
        rows.append(
            {
                "first_ready_ms": round(first_ms, 1),
                "first_idle_rss_mb": round(first_rss, 1),
                "ready_ms": round(second_ms, 1),
                "idle_rss_mb": round(second_rss, 1),
            }
        )
    summary = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(json.dumps({**summary, "runs": rows}))


if __name__ == "__main__":
    main(sys.argv)
