#!/usr/bin/python3
"""The status server under load: /metrics and /locks at 1 000 lock tables,
driven by wrk (Debian package wrk), with the main loop's cycle time measured
by the cycle probe before and during the load. See bench/README.md.

    bash bench/http_load.sh [--duration S] [--connections N] [--no-write]

Reuses bench.py's world (real PostgreSQL, simulated Kubernetes API over TLS)
and its cycle probe. Prints one table; writes bench/results/http-latest.json
and a timestamped copy. Nothing asserts.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench  # noqa: E402

SCHEMAS = 1000
INTERVAL = "250ms"


def wrk(port, path, duration, connections, threads):
    """wrk's requests/s, latency percentiles (ms), errors, and its raw output."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency",
           "--timeout", "5s", "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    res = {"command": " ".join(cmd), "raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else None
    for q in ("50", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % q, out, re.M)
        if m:
            v = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            res["latency_p%s_ms" % q] = round(v, 3)
    m = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else "none"
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    return res


def cycles_in(probe, t0_ns, t1_ns):
    c, _ = bench.cycles_from_probe(probe, t0_ns, t1_ns)
    return bench.summary_ms(c) if c else None


def body_size(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return len(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15, help="seconds of load per path")
    ap.add_argument("--connections", type=int, default=8,
                    help="wrk connections (the server allows 8 per client address)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("http_load: wrk not installed (apt-get install wrk)")
    if not os.path.exists(bench.PROBE_SO):
        sys.exit("http_load: no cycle probe at %s (bench/http_load.sh builds it)" % bench.PROBE_SO)

    w = bench.World().start()
    doc = {"schemas": SCHEMAS, "poll_interval": INTERVAL, "duration_s": args.duration,
           "connections": args.connections, "threads": args.threads}
    try:
        doc["machine"] = bench.machine(w.pg)
        bench.progress("creating %d lock tables" % SCHEMAS)
        db = w.database("http_load", ["s%04d" % i for i in range(SCHEMAS)])
        probe = os.path.join(w.tmp, "probe-http.bin")
        a = w.arbiter(db, INTERVAL, probe=probe, name="http_load")
        a.wait_for("database up", timeout=60)
        bench.wait_cycles(a, 4, timeout=60)
        doc["body_bytes"] = {p: body_size(a.port, p) for p in ("/metrics", "/locks")}

        t0 = time.monotonic_ns()
        time.sleep(args.duration)
        doc["idle"] = {"cycle_time": cycles_in(probe, t0, time.monotonic_ns())}
        bench.progress("idle: cycle %s" % doc["idle"]["cycle_time"])
        for path in ("/metrics", "/locks"):
            bench.progress("wrk %s for %d s" % (path, args.duration))
            m0 = bench.scrape(a.port)
            t0 = time.monotonic_ns()
            r = wrk(a.port, path, args.duration, args.connections, args.threads)
            t1 = time.monotonic_ns()
            m1 = bench.scrape(a.port)
            r["cycle_time"] = cycles_in(probe, t0, t1)
            cnt = "lock_arbiter_poll_duration_seconds_count"
            r["polls"] = int(bench.msum(m1, cnt) - bench.msum(m0, cnt))
            r["polls_expected"] = int((t1 - t0) / 1e9 / 0.25)
            doc[path] = r
            bench.progress("%s: %s req/s, p99 %s ms, cycle %s" % (
                path, r["requests_per_s"], r.get("latency_p99_ms"), r["cycle_time"]))
        w.stop_arbiter(a)
    finally:
        w.cleanup()

    print()
    print("1 000 lock tables, --poll-interval %s, wrk -t%d -c%d -d%ds; %s cores, %s" % (
        INTERVAL, args.threads, args.connections, args.duration, doc["machine"].get("nproc"),
        doc["machine"].get("cpu_model", "")))
    print("| load | requests/s | p50 | p99 | body | poll cycle p50 / p99 | polls (expected) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ct = doc["idle"]["cycle_time"] or {}
    print("| none | | | | | %.1f / %.1f ms | |" % (ct.get("median", 0), ct.get("p99", 0)))
    for path in ("/metrics", "/locks"):
        r = doc[path]
        ct = r["cycle_time"] or {}
        print("| `%s` | %.0f | %.2f ms | %.2f ms | %d KiB | %.1f / %.1f ms | %d (%d) |" % (
            path, r["requests_per_s"] or 0, r.get("latency_p50_ms", 0),
            r.get("latency_p99_ms", 0), doc["body_bytes"][path] // 1024,
            ct.get("median", 0), ct.get("p99", 0), r["polls"],
            r["polls_expected"]))
        if r["socket_errors"] != "none" or r["non_2xx"]:
            print("  %s: socket errors %s, non-2xx %d" % (path, r["socket_errors"],
                                                          r["non_2xx"]))
    if not args.no_write:
        os.makedirs(bench.RESULTS, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for name in ("http-latest.json", "http-%s.json" % stamp):
            with open(os.path.join(bench.RESULTS, name), "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.write("\n")


if __name__ == "__main__":
    main()
