#!/usr/bin/env python3
"""The results of one bench/run.sh: bench/results/latest.md, the smoke check, the splice.

    report.py write RUN_DIR OUT.md     the table, the limit, the machine, the commands
    report.py check RUN_DIR            smoke check: every expected row ran, ok > 0, 0 errors
    report.py wrk WRK.OUT              wrk --latency's output as one loadgen-like JSON line
    report.py splice LATEST.md BENCHMARKS.md
                                       replaces what is between <!-- bench:begin --> and
                                       <!-- bench:end --> with LATEST.md (minus its title)

RUN_DIR holds what run.sh recorded: results.jsonl (one line per timed load: loadgen's JSON
plus scenario, engine, round, server_cpu_s, server_peak_rss_kb, peak_rss_scope), limit.json
(tessera-limit), expected.txt ("scenario engine" per line), skipped.txt ("scenario engine
reason"), commands.txt, meta.json (mode, profile, settings, the command line) and
loadavg.start / loadavg.end.
"""

import json
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# Scenarios whose per-request crypto is one RS256 verification (the others: one signature,
# or none, still reported against the signing limit).
VERIFY_BOUND = {"introspect-uncached", "guard-miss"}

MEASURES = {
    "trivial": "`GET /healthz` of `tessera serve`: the framework floor (HTTP, routing, an empty answer).",
    "jwks": "`GET /.well-known/jwks.json` of `tessera serve`: the published keys (no crypto per request).",
    "client-credentials": "`POST /api/v2/auth/token` with `grant_type=client_credentials`, client "
    "`bench-svc` authenticated by HTTP Basic (secret hash checked against the store): one RS256 "
    "signature per request, no store write.",
    "code-exchange": "the user signs in once through the login form (not timed, one session shared by "
    "all workers); each iteration is `GET /api/v2/auth/authorize` with the session cookie (a redirect "
    "with a fresh code: one store write) followed by the code exchange at the token endpoint (PKCE S256; "
    "redeems the code, signs an access token, starts a refresh-token family: store writes and one RS256 "
    "signature). requests/s counts completed iterations (two HTTP requests each); p50/p99 are the "
    "exchange's alone (the authorize request's are in the rounds below). The peak RSS includes the one "
    "sign-in (Argon2id).",
    "refresh": "the user signs in once and each worker redeems its own code (not timed), then rotates its own refresh-token "
    "chain, always presenting the token it received last: one write transaction (rotate, insert the "
    "successor, record the access token) and one RS256 signature per request. The peak RSS includes "
    "the one sign-in (Argon2id).",
    "introspect-cached": "`POST /api/v2/auth/introspect` (client authentication by HTTP Basic), each "
    "worker repeating one token: every request after the first is a validation-cache hit.",
    "introspect-uncached": "the same endpoint with every token introspected exactly once (tokens minted "
    "before each round, not timed): every request a cache miss (RS256 verification, claim checks, a "
    "revocation-list read, a cache fill). Reported against the verification limit.",
    "guard-hit": "`tessera guard` `GET /verify` with `Authorization: Bearer`, each worker repeating one "
    "token: cache hits (hash, cache read, expiry/revocation/key re-checks, identity headers). Only 200 "
    "counts. CPU and RSS are the guard's.",
    "guard-miss": "the guard's `GET /verify` with every token once (minted before each round): cache "
    "misses (RS256 verification against the JWKS held in memory, claim checks, cache fill). CPU and RSS "
    "are the guard's. Reported against the verification limit.",
    "peer-client-credentials": "node-oidc-provider (one Node.js process, in-memory adapter) `POST /token` "
    "client credentials with `resource=urn:tessera:bench:jwt` and `scope=read`: an RS256 JWT access "
    "token (RFC 9068) per request, client authenticated by HTTP Basic.",
    "peer-introspect": "node-oidc-provider `POST /token/introspection`, each worker repeating one token. "
    "It refuses to introspect JWT access tokens, so these are opaque client-credentials tokens of "
    "`urn:tessera:bench:opaque`: an adapter lookup, no signature verification.",
    "peer-jwks": "node-oidc-provider `GET /jwks`.",
}


def load_rows(run: Path):
    path = run / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lines(path: Path):
    return [line.split() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rows):
    """One entry per (scenario, engine), in order of appearance."""
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["engine"]), []).append(r)
    out = []
    for (scenario, engine), rs in groups.items():
        good = [r for r in rs if "failed" not in r]
        s = {
            "scenario": scenario,
            "engine": engine,
            "rounds": len(rs),
            "failed": [r["failed"] for r in rs if "failed" in r],
            "per_second": median(r["per_second"] for r in good),
            "p50_ms": median(r["p50_ms"] for r in good),
            "p99_ms": median(r["p99_ms"] for r in good),
            "ok": sum(r["ok"] for r in good),
            "errors": sum(r["errors"] for r in good),
            "error_kinds": {},
            "cpu_s": median(r.get("server_cpu_s") for r in good),
            "loadgen_cpu_s": median(r.get("loadgen_cpu_s") for r in good),
            "cpu_ms_per_request": median(
                r["server_cpu_s"] * 1000 / r["ok"] for r in good if r.get("ok")
            ),
            "peak_rss_mb": max((r["server_peak_rss_kb"] / 1024 for r in good if r.get("server_peak_rss_kb")), default=None),
            "exhausted": any(r.get("exhausted") for r in good),
        }
        for r in good:
            for kind, n in (r.get("error_kinds") or {}).items():
                s["error_kinds"][kind] = s["error_kinds"].get(kind, 0) + n
        out.append(s)
    return out


def fmt(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    return {
        "nproc": sh("nproc"),
        "cpu": model.group(1) if model else platform.processor() or "unknown",
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
    }


def target_rows(summary, limit):
    """The issue 11 targets that this run's rows can evaluate."""
    by = {(s["scenario"], s["engine"]): s for s in summary if s["per_second"]}

    def get(scenario, engine="sqlite"):
        return by.get((scenario, engine))

    sign, verify = (limit or {}).get("sign_limit"), (limit or {}).get("verify_limit")
    out = []

    def add(what, value, goal, met):
        out.append((what, value, goal, "met" if met else "not met"))

    cc, peer_cc = get("client-credentials"), get("peer-client-credentials", "in-memory")
    if cc and sign:
        add("client-credentials (SQLite) / sign limit", f"{cc['per_second'] / sign:.2f}", ">= 0.75", cc["per_second"] / sign >= 0.75)
    if cc and peer_cc:
        r = cc["per_second"] / peer_cc["per_second"]
        add("client-credentials (SQLite) / node-oidc-provider", f"{r:.2f}", ">= 2", r >= 2)
    for engine, goal in (("sqlite", 0.60), ("postgres", 0.50)):
        rf = get("refresh", engine)
        if rf and sign:
            r = rf["per_second"] / sign
            add(f"refresh ({engine}) / sign limit", f"{r:.2f}", f">= {goal:.2f}", r >= goal)
    ic, trivial, peer_ic = get("introspect-cached"), get("trivial"), get("peer-introspect", "in-memory")
    if ic and trivial:
        r = ic["per_second"] / trivial["per_second"]
        add("introspect-cached / trivial", f"{r:.2f}", ">= 0.50", r >= 0.5)
    if ic and peer_ic:
        r = ic["per_second"] / peer_ic["per_second"]
        add("introspect-cached / node-oidc-provider introspection", f"{r:.2f}", ">= 10", r >= 10)
    if ic:
        add("introspect-cached p99 ms", f"{ic['p99_ms']}", "<= 5", ic["p99_ms"] <= 5)
    gm = get("guard-miss")
    if gm and verify:
        r = gm["per_second"] / verify
        add("guard-miss / verify limit", f"{r:.2f}", ">= 0.75", r >= 0.75)
    jw = get("jwks")
    if jw and trivial:
        r = jw["per_second"] / trivial["per_second"]
        add("jwks / trivial", f"{r:.2f}", ">= 0.80", r >= 0.8)
    return out


def footprint_rows(startup, footprint):
    """The issue 11 targets on start-up and memory."""
    out = []
    if startup:
        ms, rss = startup["ready_ms"], startup["idle_rss_mb"]
        out.append(("start to ready, embedded store (second start) ms", f"{ms}", "<= 300", "met" if ms <= 300 else "not met"))
        first = startup["first_ready_ms"]
        out.append(("start to ready, first start (creates key and schema) ms", f"{first}", "<= 300", "met" if first <= 300 else "not met"))
        out.append(("idle RSS of tessera serve MB", f"{rss}", "<= 30", "met" if rss <= 30 else "not met"))
    if footprint and footprint["capacity"] >= 1_000_000:
        mb = footprint["rss_after_mib"]
        out.append((f"{fmt(footprint['held'])} cached validations (full cache), process RSS MB", f"{mb}", "<= 300", "met" if mb <= 300 else "not met"))
    return out


def write(run: Path, out: Path):
    rows = load_rows(run)
    summary = summarize(rows)
    limit = json.loads((run / "limit.json").read_text()) if (run / "limit.json").exists() else None
    meta = json.loads((run / "meta.json").read_text())
    sign, verify = (limit or {}).get("sign_limit"), (limit or {}).get("verify_limit")
    trivial = next((s for s in summary if s["scenario"] == "trivial" and s["per_second"]), None)
    smoke = meta["mode"] == "smoke"

    md = ["# bench/run.sh results", ""]
    md.append(
        f"{meta['date']}, commit `{meta['commit']}`, {meta['mode']} run with {meta['profile']} binaries"
        f" (`{meta['command']}`)."
    )
    if smoke:
        md += ["", "**Smoke run: short loads on debug binaries to check the harness; the figures mean nothing.**"]
    md += ["", "### Results", ""]
    md.append(
        f"Closed loop, {meta['concurrency']} workers, {meta['duration']} per load after {meta['warmup']} of "
        f"warm-up, {meta['rounds']} round(s): medians of the rounds (errors: their sum; peak RSS: their "
        "maximum). *of limit*: requests/s over the two-core RS256 limit below (`sign` or `verify`). "
        "*vs trivial*: over Tessera's `GET /healthz`. Server CPU is user + system time of the measured "
        "process (`tessera serve`, `tessera guard` or node) during the timed load; peak RSS its `VmHWM`"
        + (" reset before the timed load" if all(r.get("peak_rss_scope") == "load" for r in rows) else " since it started")
        + ". The load generator runs on the same cores: its own CPU time (user + system, setup "
        "included) is the last column; server and load generator together near cores x seconds "
        "means the machine, not the server alone, was the limit."
    )
    md += [
        "",
        "| scenario | engine | requests/s | of limit | vs trivial | p50 ms | p99 ms | errors | server CPU s | CPU ms/request | peak RSS MB | load generator CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        if s["per_second"] is None:
            md.append(f"| {s['scenario']} | {s['engine']} | FAILED: {s['failed'][0] if s['failed'] else '?'} ||||||||||")
            continue
        if s["scenario"].split("/")[0] in VERIFY_BOUND:
            of_limit = f"{s['per_second'] / verify:.2f} verify" if verify else "-"
        else:
            of_limit = f"{s['per_second'] / sign:.2f} sign" if sign else "-"
        vs_trivial = f"{s['per_second'] / trivial['per_second']:.2f}" if trivial else "-"
        errors = str(s["errors"])
        if s["error_kinds"]:
            errors += " (" + ", ".join(f"{k}: {v}" for k, v in s["error_kinds"].items()) + ")"
        if s["failed"]:
            errors += f"; {len(s['failed'])} round(s) failed"
        md.append(
            f"| {s['scenario']} | {s['engine']} | {fmt(s['per_second'])}{' (tokens ran out)' if s['exhausted'] else ''} "
            f"| {of_limit} | {vs_trivial} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | {errors} "
            f"| {fmt(s['cpu_s'], 2)} | {fmt(s['cpu_ms_per_request'], 3)} | {fmt(s['peak_rss_mb'], 1)} "
            f"| {fmt(s['loadgen_cpu_s'], 2)} |"
        )
    skipped = lines(run / "skipped.txt")
    if skipped:
        md += ["", "Skipped: " + "; ".join(f"{s[0]} ({s[1]}): {' '.join(s[2:])}" for s in skipped) + "."]
    if any(s["exhausted"] for s in summary):
        md += [
            "",
            "*tokens ran out*: a `--distinct` load used up its pre-minted tokens before the end and stopped "
            "there; its rate is over the shorter time (raise TOKENS_INTROSPECT / TOKENS_GUARD).",
        ]

    startup = json.loads((run / "startup.json").read_text()) if (run / "startup.json").exists() else None
    footprint = json.loads((run / "footprint.json").read_text()) if (run / "footprint.json").exists() else None
    targets = target_rows(summary, limit) + footprint_rows(startup, footprint)
    if targets:
        md += ["", "### Targets of issue 11" + (" (smoke: not meaningful)" if smoke else ""), ""]
        md += ["| target | measured | goal | |", "|---|---|---|---|"]
        md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]

    if startup or footprint:
        md += ["", "### Start-up and memory", ""]
    if startup:
        md.append(
            "`bench/startup.py`: `tessera serve` on the embedded store, a new data directory and master key "
            f"per run, medians of {len(startup['runs'])} run(s). Time to ready: from spawning the process to the "
            "first `200` of `GET /readyz`. Idle RSS: VmRSS one second after ready, no other request."
        )
        md += [
            "",
            "| start | time to ready ms | idle RSS MB |",
            "|---|---|---|",
            f"| first (creates the database, the master-key-sealed RSA-2048 key) | {startup['first_ready_ms']} | {startup['first_idle_rss_mb']} |",
            f"| second (opens them) | {startup['ready_ms']} | {startup['idle_rss_mb']} |",
        ]
    if footprint:
        md += [
            "",
            f"`footprint --churn` example of tessera-cache: {fmt(footprint['puts'])} active-token validations put in a "
            f"`LocalCache` (the server's in-process validation cache) of capacity {fmt(footprint['capacity'])}, so "
            "it ends full and evicting; process RSS before and after: "
            f"{footprint['rss_before_mib']} MB -> {footprint['rss_after_mib']} MB, "
            f"{fmt(footprint['per_entry_bytes'])} bytes per entry held ({fmt(footprint['held'])} held).",
        ]

    md += ["", "### The limit", ""]
    if limit:
        md.append(
            f"`{meta['limit_command']}`: one RSA-2048 key with aws-lc-rs, RS256 (PKCS#1 v1.5, SHA-256) on a "
            f"420-byte message (the size of an access token's signing input), {limit['seconds_each']} s per measurement, before any server starts."
        )
        md += [
            "",
            "| | one core | cores | limit (one core x cores) | measured on all cores at once |",
            "|---|---|---|---|---|",
            f"| sign/s | {fmt(limit['sign_per_second_per_core'])} | {limit['cores']} | {fmt(sign)} | {fmt(limit['sign_per_second_all_threads'])} ({limit['threads']} threads) |",
            f"| verify/s | {fmt(limit['verify_per_second_per_core'])} | {limit['cores']} | {fmt(verify)} | {fmt(limit['verify_per_second_all_threads'])} ({limit['threads']} threads) |",
        ]
    else:
        md.append("Not measured (tessera-limit failed).")

    m = machine()
    load_start = (run / "loadavg.start").read_text().split()[:3] if (run / "loadavg.start").exists() else []
    load_end = (run / "loadavg.end").read_text().split()[:3] if (run / "loadavg.end").exists() else []
    md += ["", "### Machine", ""]
    md += [
        f"- cores (`nproc`): {m['nproc']}",
        f"- CPU: {m['cpu']}",
        f"- memory: {m['memory']}",
        f"- kernel: {m['kernel']}",
        f"- load average (1, 5, 15 min) at start: {' '.join(load_start)}; at end: {' '.join(load_end)}",
    ]
    for key, label in (("rustc", "rustc"), ("node", "Node.js"), ("oidc_provider", "oidc-provider"), ("postgres", "PostgreSQL")):
        if meta.get(key):
            md.append(f"- {label}: {meta[key]}")

    ran = list(dict.fromkeys(s["scenario"] for s in summary))
    md += ["", "### What each scenario measures", ""]
    md += [
        f"- `{name}`: "
        + (
            f"the `{name[:-4]}` request, fixed, through wrk (`WRK=1`): a cross-check of the load generator."
            if name.endswith("/wrk")
            else MEASURES.get(name, "")
        )
        for name in ran
    ]

    md += ["", "### Rounds", ""]
    for r in rows:
        if "failed" in r:
            md.append(f"- {r['scenario']} ({r['engine']}) round {r['round']}: FAILED: {r['failed']}")
            continue
        extra = ""
        if "authorize_p50_ms" in r:
            extra = f", authorize p50 {r['authorize_p50_ms']} ms p99 {r['authorize_p99_ms']} ms"
        md.append(
            f"- {r['scenario']} ({r['engine']}) round {r['round']}: {fmt(r['per_second'])}/s over {r['seconds']} s, "
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']}, server CPU {r['server_cpu_s']} s, "
            f"load generator CPU {r.get('loadgen_cpu_s', '-')} s, "
            f"peak RSS {r['server_peak_rss_kb'] / 1024:.1f} MB{extra}"
        )

    md += ["", "### Commands", "", "```sh", meta["command"]]
    md += [f"# {k}={v}" for k, v in meta["settings"].items()]
    md += (run / "commands.txt").read_text().splitlines() if (run / "commands.txt").exists() else []
    md += ["```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md))


def check(run: Path):
    """Smoke: every expected (scenario, engine) has a row, none failed, ok > 0, no errors."""
    rows = load_rows(run)
    problems = []
    for scenario, engine in lines(run / "expected.txt"):
        rs = [r for r in rows if r["scenario"] == scenario and r["engine"] == engine]
        if not rs:
            problems.append(f"{scenario} ({engine}): no result")
        for r in rs:
            if "failed" in r:
                problems.append(f"{scenario} ({engine}): failed: {r['failed']}")
            elif r["ok"] == 0:
                problems.append(f"{scenario} ({engine}): no successful request")
            elif r["errors"]:
                problems.append(f"{scenario} ({engine}): {r['errors']} errors {r.get('error_kinds')}")
    for name in ("startup", "footprint") if (run / "footprint.expected").exists() else ():
        if not (run / f"{name}.json").exists():
            problems.append(f"{name}: no result")
    for p in problems:
        print(f"smoke: {p}", file=sys.stderr)
    return 1 if problems else 0


def splice(latest: Path, target: Path):
    body = latest.read_text().split("\n", 1)[1].strip("\n")
    text = target.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        print(f"{target}: expected one {BEGIN} followed by one {END}", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    target.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    return 0


def wrk(path: Path):
    """wrk --latency's report as loadgen's JSON line (non-2xx/3xx and socket errors: errors)."""
    text = path.read_text()

    def ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    def pct(p):
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return round(ms(*m.groups()), 2) if m else None

    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", text, re.M)
    rate = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    if not total or not rate:
        print(f"unreadable wrk output:\n{text}", file=sys.stderr)
        return 1
    kinds = {}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if non2xx:
        kinds["non-2xx/3xx"] = int(non2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sockets:
        for name, n in zip(("connect", "read", "write", "timeout"), sockets.groups()):
            if int(n):
                kinds[f"socket {name}"] = int(n)
    requests, seconds = int(total.group(1)), ms(total.group(2), total.group(3)) / 1000
    errors = sum(kinds.values())
    ok = max(requests - kinds.get("non-2xx/3xx", 0), 0)
    print(json.dumps(separators=(",", ":"), obj={
        "mode": "wrk", "seconds": round(seconds, 3), "ok": ok, "errors": errors,
        "error_kinds": kinds, "per_second": round(ok / seconds) if seconds else 0,
        "wrk_requests_per_second": float(rate.group(1)),
        "p50_ms": pct(50), "p99_ms": pct(99),
    }))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "write":
        write(Path(argv[2]), Path(argv[3]))
        return 0
    if len(argv) == 3 and argv[1] == "check":
        return check(Path(argv[2]))
    if len(argv) == 3 and argv[1] == "wrk":
        return wrk(Path(argv[2]))
    if len(argv) == 4 and argv[1] == "splice":
        return splice(Path(argv[2]), Path(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
