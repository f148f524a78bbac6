"""Latency of the reference API on a kept-alive connection vs a new connection per request.

    .venv/bin/python bench/keepalive.py [--requests N] [--paths / /api/stories]

Starts one environment of the reference deployment (moto server + API on 127.0.0.1), then for each path
times N requests each on a new connection and N requests on one kept-alive connection, interleaved
(new, kept, new, kept, ...) so machine drift hits both alike, and prints medians and p95. A server that
writes headers and body separately with Nagle's algorithm on shows ~40 ms (the client's delayed ACK) on
every kept-alive request after the first. The deployment is stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_request(conn: http.client.HTTPConnection, path: str) -> float:
    start = time.perf_counter()
    conn.request("GET", path)
    answer = conn.getresponse()
    answer.read()
    elapsed = time.perf_counter() - start
    if answer.status >= 500:
        raise SystemExit(f"GET {path}: {answer.status}")
    return elapsed * 1000.0


def measure(host: str, port: int, path: str, requests: int) -> tuple[list[float], list[float]]:
    fresh: list[float] = []
    kept: list[float] = []
    keep = http.client.HTTPConnection(host, port, timeout=10)
    one_request(keep, path)  # opens the kept-alive connection: its first request is a new connection's
    try:
        for _ in range(requests):
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                # connect inside the timing: a client without keep-alive pays it on every request
                start = time.perf_counter()
                conn.connect()
                fresh.append((time.perf_counter() - start) * 1000.0 + one_request(conn, path))
            finally:
                conn.close()
            kept.append(one_request(keep, path))
    finally:
        keep.close()
    return fresh, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--paths", nargs="+", default=["/", "/api/stories"])
    args = parser.parse_args()
    if "pytest_deploygate" not in sys.modules:
        try:
            import pytest_deploygate  # noqa: F401  (PYTHONPATH may point at another tree to compare)
        except ImportError:
            sys.path.insert(0, str(REPO))
    from pytest_deploygate.demo.faults import parse_faults
    from pytest_deploygate.demo.launcher import Demo

    stages = {"staging": "staging"}
    with tempfile.TemporaryDirectory() as tmp:
        demo = Demo.start(stages, parse_faults("", stages), Path(tmp) / "demo")
        try:
            url = urlsplit(demo.environments["staging"]["api_url"])
            host, port = url.hostname or "127.0.0.1", url.port or 80
            print(f"reference API {url.geturl()} ({args.requests} requests per path and connection kind)")
            print(f"{'path':<16} {'new conn p50':>13} {'kept p50':>10} {'new p95':>9} {'kept p95':>9} "
                  f"{'kept/new p50':>13}")
            for path in args.paths:
                fresh, kept = measure(host, port, path, args.requests)
                p50_new, p50_kept = statistics.median(fresh), statistics.median(kept)
                print(f"{path:<16} {p50_new:10.2f} ms {p50_kept:7.2f} ms {percentile(fresh, 0.95):6.2f} ms "
                      f"{percentile(kept, 0.95):6.2f} ms {p50_kept / p50_new:13.2f}")
        finally:
            demo.stop()


if __name__ == "__main__":
    main()
