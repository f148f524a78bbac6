"""Load-generator benchmarks of the performance gate (see bench/README.md for the figures).

    python bench/load_bench.py capacity   # gate vs bare locust vs wrk on an nginx target
    python bench/load_bench.py agreement  # our p50/p95 vs hey's at a fixed rate, known latency target
    python bench/load_bench.py all

Needs Debian's nginx-light, wrk and hey (``apt-get install -y nginx-light wrk hey``). Every run is
bounded (duration, users) and every server is stopped by its pid at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


@contextmanager
def nginx_target(work: Path):
    """A trivial target that is not the bottleneck: nginx answering 200 "ok" from memory."""
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
    uwsgi_temp_path {work}; scgi_temp_path {work};
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


#: the known latency distribution of the agreement target: 20 ms + exponential(mean 10 ms)
BASE_MS, MEAN_MS = 20.0, 10.0


def expected_quantile(q: float) -> float:
    return BASE_MS - MEAN_MS * math.log(1.0 - q)


class _Delayed(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rng = random.Random(42)
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            delay = BASE_MS + self.rng.expovariate(1.0 / MEAN_MS)
        time.sleep(delay / 1000.0)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def delayed_target():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Delayed)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def gate_project(work: Path, target: str, *, users: int, duration: float, extra: str = "") -> Path:
    project = work / f"gate-{time.monotonic_ns()}"
    project.mkdir()
    (project / "deploygate.toml").write_text(f"""
service = "bench"
[environments.bench]
base_url = "{target}"
smoke = {{ health = [{{ path = "/" }}] }}
[environments.bench.performance]
users = {users}
spawn_rate = {users}
duration_s = {duration}
min_requests = 1
abort_on_fail = false
tasks = [{{ name = "GET /", path = "/" }}]
{extra}
""")
    (project / "thresholds.toml").write_text("[metrics]\n")
    return project


def run_gate(project: Path) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    # hypothesis (the project's test extra, not part of the gate's install) imports itself at every
    # terminal summary: ~0.5 s that a team's gate run does not pay, so it is left out here.
    subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q", "--env",
                    "bench", "-m", "performance"],
                   cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=600)
    wall = time.perf_counter() - started
    report = json.loads((project / ".deploygate" / "report.json").read_text())
    metrics = {m["name"]: m["value"] for m in report["metrics"] if not m["labels"]}
    return metrics, wall


def run_bare_locust(project: Path, target: str, *, users: int, duration: float, processes: int = 1,
                    extra: list[str] | None = None) -> tuple[dict[str, float], float]:
    """The same generated locustfile, run by hand: ``locust --headless`` and nothing else."""
    locustfile = project / ".deploygate" / "performance" / "locustfile.py"
    out = project / "bare"
    cmd = [PY, "-m", "locust", "-f", str(locustfile), "--headless", "--host", target, "-u", str(users), "-r",
           str(users), "-t", f"{math.ceil(duration)}s", "--json-file", str(out), "--only-summary",
           "--loglevel", "WARNING", "--exit-code-on-error", "0", *(extra or [])]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=600)
    wall = time.perf_counter() - started
    sys.path.insert(0, str(REPO))
    from pytest_deploygate.load import summarize

    result = summarize(json.loads(Path(f"{out}.json").read_text()))
    return {"rps": result.rps, "p50": result.p50_ms, "p95": result.p95_ms, "requests": result.requests}, wall


def run_wrk(target: str, duration: float) -> float:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{math.ceil(duration)}s", target + "/"], capture_output=True,
                         text=True, check=True, timeout=600).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def capacity(work: Path, duration: float, users: int, client: str = "http") -> None:
    with nginx_target(work) as target:
        wrk_rps = run_wrk(target, duration)
        print(f"target: nginx on loopback; wrk -t2 -c64: {wrk_rps:,.0f} req/s (the machine's limit)")
        print(f"client = {client!r} ({'FastHttpUser' if client == 'fast' else 'HttpUser'})")
        for processes in (1, 2):
            extra = f'client = "{client}"\n' + (f"workers = {processes}" if processes > 1 else "")
            project = gate_project(work, target, users=users, duration=duration, extra=extra)
            gate, gate_wall = run_gate(project)
            bare, bare_wall = run_bare_locust(project, target, users=users, duration=duration, processes=processes)
            print(f"processes={processes}: gate {gate['performance.rps']:,.0f} req/s, bare locust "
                  f"{bare['rps']:,.0f} req/s -> ratio {gate['performance.rps'] / bare['rps']:.2f}; "
                  f"locust/wrk {bare['rps'] / wrk_rps:.2f}")
            print(f"  wall time for a {duration:g} s run: gate (whole pytest session) {gate_wall:.2f} s, "
                  f"bare locust {bare_wall:.2f} s -> overhead {100 * (gate_wall / bare_wall - 1):+.1f} %")


def agreement(work: Path, duration: float, rate: int) -> None:
    users = 20
    with delayed_target() as target:
        project = gate_project(work, target, users=users, duration=duration, extra=f"pacing_s = {users / rate}")
        gate, _ = run_gate(project)
        hey = subprocess.run(["hey", "-z", f"{math.ceil(duration)}s", "-c", str(users), "-q", str(rate / users),
                              target + "/"], capture_output=True, text=True, check=True, timeout=600).stdout
        hey_q = {int(m.group(1)): float(m.group(2)) * 1000.0
                 for m in re.finditer(r"(\d+)%+ in ([\d.]+) secs", hey)}
        rows = [("p50", gate["performance.p50_ms"], hey_q.get(50), expected_quantile(0.50)),
                ("p95", gate["performance.p95_ms"], hey_q.get(95), expected_quantile(0.95))]
        print(f"target: 20 ms + exp(mean 10 ms) per answer; fixed rate {rate} req/s "
              f"(gate: {users} users, constant_pacing {users / rate:g} s; hey -c {users} -q {rate / users:g})")
        print(f"gate requests {gate['performance.requests_count']:.0f}, rate {gate['performance.rps']:.1f} req/s")
        for name, ours, theirs, expected in rows:
            diff = f"{100 * (ours / theirs - 1):+.1f} %" if theirs else "n/a"
            print(f"{name}: gate {ours:.1f} ms, hey {theirs:.1f} ms ({diff}), distribution {expected:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("capacity", "agreement", "all"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--client", choices=("http", "fast"), default="http", help="Locust user class (capacity)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light wrk hey")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        if args.what in ("capacity", "all"):
            capacity(work, args.duration, args.users, args.client)
        if args.what in ("agreement", "all"):
            agreement(work, args.duration, args.rate)


if __name__ == "__main__":
    main()
