"""Load-generator benchmarks of the performance gate (see bench/README.md for the figures).

    python bench/load_bench.py capacity     # gate vs bare locust vs wrk on an nginx target
    python bench/load_bench.py overhead     # paired: gate vs bare locust, req/s, wall, the gate's CPU
    python bench/load_bench.py agreement    # our p50/p95 vs hey's at a fixed rate on a 50 ms server
    python bench/load_bench.py distributed  # a 4-worker run's verdict vs the sum of its workers' requests
    python bench/load_bench.py follow       # CPU of following a 900 s run's stats history, then vs now
    python bench/load_bench.py idle --duration 300 --tree A --tree B  # the pytest process's CPU in a long run
    python bench/load_bench.py all

``--tree DIR`` (repeatable, overhead only) puts a copy of the package first on PYTHONPATH for a
"before" figure, e.g. ``git archive REV pytest_deploygate suites`` unpacked with suites/ moved into
pytest_deploygate/ (the editable install's finder comes after PYTHONPATH).

Needs Debian's nginx-light, wrk and hey (``apt-get install -y nginx-light wrk hey``). Every run is
bounded (duration, users) and every server is stopped by its pid at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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


#: the agreement target: every answer takes exactly this long (a sleep in the handler)
SERVER_MS = 50.0


class _Delayed(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # and one write per answer: no delayed-ACK wait on kept-alive connections
    delay_s = SERVER_MS / 1000.0
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        self.wfile.write(self.answer)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def delayed_target(delay_ms: float = SERVER_MS):
    handler = type("Delayed", (_Delayed,), {"delay_s": delay_ms / 1000.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
    (project / "thresholds.toml").write_text('policy = "none"\n')  # figures only, nothing judged
    return project


def _cpu_s(pid: int) -> tuple[float, float] | None:
    """CPU seconds (user + system) of ``pid`` itself, and of its children it has waited for, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _locust_child(pid: int) -> int | None:
    """The Locust process the gate started (a child of the pytest process), if it runs."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if b"locust" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
            except OSError:
                continue
    return None


#: the variable naming the pipe a pre-started Locust waits on (pytest_deploygate.load.RELEASE_VAR)
RELEASE_VAR = "DEPLOYGATE_LOAD_RELEASE_FD"


def _release_pipe(pid: int) -> str | None:
    """The pipe a Locust process started ahead of its run waits on (``pipe:[inode]``, named in its initial
    environment), while its descriptor is open; None for a process started with its run."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for entry in environ:
        if entry.startswith(RELEASE_VAR.encode() + b"="):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{entry.split(b'=', 1)[1].decode()}")
            except OSError:
                return None
            return link if link.startswith("pipe:") else None
    return None


def _waiting(pid: int, pipe: str | None) -> bool:
    """Whether ``pid`` still holds the release pipe it was first seen with (the guard closes it once released;
    the descriptor's number can be reused by a file Locust opens later, the pipe's inode cannot)."""
    if pipe is None:
        return False
    fd = None
    try:
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if entry.startswith(RELEASE_VAR.encode() + b"="):
                fd = entry.split(b"=", 1)[1].decode()
        return fd is not None and os.readlink(f"/proc/{pid}/fd/{fd}") == pipe
    except OSError:
        return False


def tree_env(tree: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = f"{tree}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(tree)
    return env


def run_gate(project: Path, tree: Path | None = None) -> tuple[dict[str, Any], float, dict[str, float]]:
    """One whole gate session; besides its metrics and wall time, its phases (start-up until Locust's run
    starts, Locust, after Locust) and the CPU seconds the pytest process itself burnt while Locust ran (read
    from /proc every 50 ms: the sampling costs this bench, not the gate). A Locust process started ahead of
    its run (loading while pytest collects) counts from its release; ``prestart_s`` is when it started."""
    report = project / ".deploygate" / "report.json"
    report.unlink(missing_ok=True)
    started = time.perf_counter()
    # hypothesis (the project's test extra, not part of the gate's install) imports itself at every
    # terminal summary: ~0.5 s that a team's gate run does not pay, so it is left out here.
    proc = subprocess.Popen([PY, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
                             "--env", "bench", "-m", "performance"], cwd=project, env=tree_env(tree),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    locust_pid = None
    pipe: str | None = None
    prestart = load_start = load_end = None
    cpu_start = cpu_end = last = None
    try:
        while proc.poll() is None:
            seen = _cpu_s(proc.pid)
            last = seen or last
            if locust_pid is None:
                locust_pid = _locust_child(proc.pid)
                if locust_pid is not None:
                    prestart, pipe = time.perf_counter(), _release_pipe(locust_pid)
            if locust_pid is not None and load_start is None and not _waiting(locust_pid, pipe):
                load_start, cpu_start = time.perf_counter(), seen
            elif load_start is not None and load_end is None and _locust_child(proc.pid) is None:
                load_end, cpu_end = time.perf_counter(), seen  # gone, or a zombie (empty cmdline)
            time.sleep(0.05)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - started
    data = json.loads(report.read_text())
    metrics = {m["name"]: m["value"] for m in data["metrics"] if not m["labels"]}
    sys.path.insert(0, str(REPO))
    from pytest_deploygate.load import summarize

    # the load's own span (first request to last), from Locust's results: what the wall time holds besides the gate
    metrics["span_s"] = summarize(json.loads(Path(data["artifacts"]["locust_json"]).read_text())).duration_s
    phases: dict[str, float] = {}
    if load_start is not None and load_end is not None and cpu_start and cpu_end and last:
        phases = {"prestart_s": (prestart or load_start) - started, "before_s": load_start - started,
                  "locust_s": load_end - load_start,
                  "after_s": started + wall - load_end, "cpu_during_load_s": cpu_end[0] - cpu_start[0],
                  # Locust (and its --processes workers), reaped by pytest: the children's CPU pytest waited for
                  "locust_cpu_s": last[1]}
    return metrics, wall, phases


def bare_command(project: Path, target: str, *, users: int, duration: float, processes: int = 1,
                 extra: list[str] | None = None) -> list[str]:
    """``locust --headless`` with the locustfile the gate generated (the gate must have run once)."""
    locustfile = project / ".deploygate" / "performance" / "locustfile.py"
    cmd = [PY, "-m", "locust", "-f", str(locustfile), "--headless", "--host", target, "-u", str(users), "-r",
           str(users), "-t", f"{math.ceil(duration)}s", "--json-file", str(project / "bare"), "--only-summary",
           "--loglevel", "WARNING", "--exit-code-on-error", "0", *(extra or [])]
    if processes > 1:  # its workers' master on loopback only (the port as Locust's default)
        cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1"]
    return cmd


def run_bare_locust(project: Path, target: str, *, users: int, duration: float, processes: int = 1,
                    extra: list[str] | None = None) -> tuple[dict[str, float], float]:
    """The same generated locustfile, run by hand: ``locust --headless`` and nothing else."""
    cmd = bare_command(project, target, users=users, duration=duration, processes=processes, extra=extra)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, _, usage = os.wait4(proc.pid, 0)  # its own CPU and its --processes workers'
    finally:
        if proc.returncode is None and proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.returncode = 0
    wall = time.perf_counter() - started
    sys.path.insert(0, str(REPO))
    from pytest_deploygate.load import summarize

    result = summarize(json.loads((project / "bare.json").read_text()))
    return {"rps": result.rps, "p50": result.p50_ms, "p95": result.p95_ms, "requests": result.requests,
            "cpu_s": usage.ru_utime + usage.ru_stime, "span_s": result.duration_s}, wall


def run_wrk(target: str, duration: float) -> float:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{math.ceil(duration)}s", target + "/"], capture_output=True,
                         text=True, check=True, timeout=600).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"


def capacity(work: Path, duration: float, users: int, client: str = "http") -> None:
    with nginx_target(work) as target:
        wrk_rps = run_wrk(target, duration)
        print(f"target: nginx on loopback; wrk -t2 -c64: {wrk_rps:,.0f} req/s (the machine's limit)")
        print(f"client = {client!r} ({'FastHttpUser' if client == 'fast' else 'HttpUser'})")
        for processes in (1, 2):
            extra = f'client = "{client}"\n' + (f"workers = {processes}" if processes > 1 else "")
            project = gate_project(work, target, users=users, duration=duration, extra=extra)
            gate, gate_wall, _ = run_gate(project)
            bare, bare_wall = run_bare_locust(project, target, users=users, duration=duration, processes=processes)
            print(f"processes={processes}: gate {gate['performance.rps']:,.0f} req/s, bare locust "
                  f"{bare['rps']:,.0f} req/s -> ratio {gate['performance.rps'] / bare['rps']:.2f}; "
                  f"locust/wrk {bare['rps'] / wrk_rps:.2f}")
            print(f"  wall time for a {duration:g} s run: gate (whole pytest session) {gate_wall:.2f} s, "
                  f"bare locust {bare_wall:.2f} s -> overhead {100 * (gate_wall / bare_wall - 1):+.1f} %")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(_median(values))} ({fmt.format(min(values))} to {fmt.format(max(values))})"


def overhead(work: Path, duration: float, users: int, clients: list[str], processes: list[int], rounds: int,
             trees: list[Path]) -> None:
    """Paired runs, in turn within each round: bare Locust, then the gate with each tree (the working copy
    first). Per gate: req/s over bare's of the same round, wall time over bare's, and the CPU seconds the
    pytest process burnt while Locust ran. With ``trees``, the gate runs with each of them instead of the
    working copy."""
    print(f"machine: {machine()}; load average at start {load_average()}")
    variants: list[Path | None] = list(trees) or [None]
    names = [t.name for t in trees] or ["now"]
    with nginx_target(work) as target:
        print(f"target: nginx on loopback; {users} users, {duration:g} s, {rounds} rounds (bare, "
              + ", ".join(f"gate {n}" for n in names) + " in turn)")
        for client in clients:
            for n in processes:
                extra = f'client = "{client}"\n' + (f"workers = {n}" if n > 1 else "")
                project = gate_project(work, target, users=users, duration=duration, extra=extra)
                run_gate(project, variants[0])  # writes the locustfile bare Locust runs too (and warms the caches)
                rows: dict[str, dict[str, list[float]]] = {name: {} for name in names}
                for r in range(rounds):
                    bare, bare_wall = run_bare_locust(project, target, users=users, duration=duration, processes=n)
                    for name, tree in zip(names, variants, strict=True):
                        gate, wall, phases = run_gate(project, tree)
                        row = rows[name]
                        per_cpu = math.nan
                        if phases.get("locust_cpu_s") and bare["cpu_s"]:
                            per_cpu = (gate["performance.requests_count"] / phases["locust_cpu_s"]) / (
                                bare["requests"] / bare["cpu_s"])
                        # the wall time around the load (wall minus the load's span), gate over bare: a fresh
                        # Locust's -t ends early by however stale gevent's clock was when it armed its timer
                        # (~0.16 s here); a Locust the gate started ahead runs the exact duration from its release
                        around = (wall - gate["span_s"]) - (bare_wall - bare["span_s"])
                        for key, value in (("rps_ratio", gate["performance.rps"] / bare["rps"]),
                                           ("per_cpu_ratio", per_cpu),
                                           ("wall_ratio", wall / bare_wall), ("around_ratio", 1 + around / bare_wall),
                                           ("gate_span", gate["span_s"]), ("bare_span", bare["span_s"]),
                                           ("gate_rps", gate["performance.rps"]),
                                           ("bare_rps", bare["rps"]), ("gate_wall", wall), ("bare_wall", bare_wall),
                                           *phases.items()):
                            row.setdefault(key, []).append(value)
                        print(f"  raw client={client} processes={n} round={r + 1} {name}: gate "
                              f"{gate['performance.rps']:,.0f} req/s wall {wall:.2f} s load span "
                              f"{gate['span_s']:.2f} s (bare {bare['span_s']:.2f} s) requests/Locust-CPU-s/bare's "
                              f"{per_cpu:.3f} "
                              + " ".join(f"{k}={v:.3f}" for k, v in phases.items())
                              + f" | bare {bare['rps']:,.0f} req/s {bare['requests']:.0f} requests "
                              f"cpu {bare['cpu_s']:.2f} s wall {bare_wall:.2f} s | load {load_average()}",
                              flush=True)
                for name in names:
                    row = rows[name]
                    print(f"client={client} processes={n} gate {name}: req/s gate/bare {_spread(row['rps_ratio'])}; "
                          f"requests per Locust CPU-s gate/bare {_spread(row['per_cpu_ratio'])}; "
                          f"wall gate/bare {_spread(row['wall_ratio'])} (gate {_spread(row['gate_wall'], '{:.2f}')} s, "
                          f"bare {_spread(row['bare_wall'], '{:.2f}')} s); load span gate "
                          f"{_spread(row['gate_span'], '{:.2f}')} s, bare {_spread(row['bare_span'], '{:.2f}')} s; "
                          f"wall besides the load, gate over bare, as a ratio of bare's wall "
                          f"{_spread(row['around_ratio'])}; "
                          f"pytest CPU during the load "
                          f"{_spread(row.get('cpu_during_load_s', [math.nan]), '{:.2f}')} s; Locust started at "
                          f"{_spread(row.get('prestart_s', [math.nan]), '{:.2f}')} s, its run at "
                          f"{_spread(row.get('before_s', [math.nan]), '{:.2f}')} s, Locust "
                          f"{_spread(row.get('locust_s', [math.nan]), '{:.2f}')} s, after "
                          f"{_spread(row.get('after_s', [math.nan]), '{:.2f}')} s; load average {load_average()}",
                          flush=True)


def _hey(target: str, duration: float, users: int, rate: int) -> dict[int, float]:
    out = subprocess.run(["hey", "-z", f"{math.ceil(duration)}s", "-c", str(users), "-q", f"{rate / users:g}",
                          target + "/"], capture_output=True, text=True, check=True, timeout=600).stdout
    return {int(m.group(1)): float(m.group(2)) * 1000.0 for m in re.finditer(r"(\d+)%+ in ([\d.]+) secs", out)}


def agreement(work: Path, duration: float, rate: int, rounds: int, clients: list[str],
              server_ms: float = SERVER_MS) -> None:
    """Both tools at the same fixed rate against a server whose every answer takes ``server_ms``: the gate
    (``users`` users, Locust constant_pacing) and hey (``-c users -q rate/users``), in turn."""
    users = 10
    print(f"machine: {machine()}; load average at start {load_average()}")
    print(f"target: every answer takes {server_ms:g} ms (one write, TCP_NODELAY); fixed rate {rate} req/s "
          f"(gate: {users} users, constant_pacing {users / rate:g} s; hey -c {users} -q {rate / users:g} "
          f"-z {math.ceil(duration)}s); {rounds} rounds")
    with delayed_target(server_ms) as target:
        diffs: dict[str, dict[str, list[float]]] = {c: {"p50": [], "p95": []} for c in [*clients, "hey"]}
        for r in range(rounds):
            hey = _hey(target, duration, users, rate)
            diffs["hey"]["p50"].append(hey[50])
            diffs["hey"]["p95"].append(hey[95])
            for client in clients:
                project = gate_project(work, target, users=users, duration=duration,
                                       extra=f'pacing_s = {users / rate}\nclient = "{client}"')
                gate, _, _ = run_gate(project)
                p50, p95 = gate["performance.p50_ms"], gate["performance.p95_ms"]
                diffs[client]["p50"].append(100 * (p50 / hey[50] - 1))
                diffs[client]["p95"].append(100 * (p95 / hey[95] - 1))
                print(f"  raw round={r + 1} client={client}: gate p50 {p50:.1f} ms p95 {p95:.1f} ms "
                      f"({gate['performance.requests_count']:.0f} requests, {gate['performance.rps']:.1f} req/s) | "
                      f"hey p50 {hey[50]:.1f} ms p95 {hey[95]:.1f} ms | load {load_average()}", flush=True)
        print(f"hey: p50 {_spread(diffs['hey']['p50'], '{:.1f}')} ms, p95 {_spread(diffs['hey']['p95'], '{:.1f}')} ms")
        for client in clients:
            print(f"client={client}: p50 vs hey {_spread(diffs[client]['p50'], '{:+.1f}')} %, p95 vs hey "
                  f"{_spread(diffs[client]['p95'], '{:+.1f}')} %; load average {load_average()}")


#: counts, in every Locust process, the requests it made (Locust's request event) and those it reported to
#: the master (the stats it sent); each process leaves them in worker-counts-<pid>.json in $COUNTS_DIR at quit
#: (shared with the tests; here: GET / with no wait)
COUNTING_LOCUSTFILE = REPO / "tests" / "data" / "counting_locustfile.py"
COUNTING_ENV = {"COUNTING_PATH": "/", "COUNTING_WAIT_S": "0"}


def distributed(work: Path, duration: float, users: int, rounds: int) -> None:
    """A 4-worker run, as ``workers = 4`` (--processes 4) and as a master with 4 ``locust --worker``
    processes: the report's request count against the sum of the workers' own counts."""
    print(f"machine: {machine()}; load average at start {load_average()}")
    with nginx_target(work) as target:
        for mode in ("processes", "master"):
            for r in range(rounds):
                port = free_port()
                extra = ("workers = 4" if mode == "processes" else
                         f"distributed = {{ expect_workers = 4, bind_port = {port} }}")
                project = gate_project(work, target, users=users, duration=duration,
                                       extra=f'locustfile = "{COUNTING_LOCUSTFILE}"\n{extra}')
                counts = project / "counts"
                counts.mkdir()
                workers: list[subprocess.Popen[bytes]] = []
                env = dict(os.environ, COUNTS_DIR=str(counts), **COUNTING_ENV)
                try:
                    if mode == "master":
                        gate = subprocess.Popen([PY, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                                                 "no:hypothesispytest", "-q", "--env", "bench", "-m", "performance"],
                                                cwd=project, env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)
                        wait_port(port, timeout=60)
                        for i in range(4):
                            own = project / f"worker-{i}"
                            own.mkdir()
                            workers.append(subprocess.Popen(
                                [PY, "-m", "locust", "-f", "-", "--worker", "--master-host", "127.0.0.1",
                                 "--master-port", str(port)], cwd=own, env=dict(env, TMPDIR=str(own)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                        gate.wait(timeout=300)
                        for w in workers:
                            w.wait(timeout=60)
                    else:
                        subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                        "-q", "--env", "bench", "-m", "performance"], cwd=project, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
                finally:
                    for w in workers:
                        if w.poll() is None:
                            w.kill()
                            w.wait()
                report = json.loads((project / ".deploygate" / "report.json").read_text())
                verdict = next(m["value"] for m in report["metrics"] if m["name"] == "performance.requests_count")
                rows = [json.loads(f.read_text()) for f in sorted(counts.glob("worker-counts-*.json"))]
                mine = [row for row in rows if row["role"] == "worker"]
                made = [row["requests"] for row in mine]
                reported = [row["reported"] for row in mine]
                print(f"{mode} round {r + 1}: report performance.requests_count {verdict:.0f}; "
                      f"{len(mine)} workers made {' + '.join(map(str, made))} = {sum(made)}, reported "
                      f"{sum(reported)} -> {'equal' if verdict == sum(made) == sum(reported) else 'DIFFERENT'}; "
                      f"load average {load_average()}", flush=True)


HISTORY_HEADER = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
                  "99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
                  "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
                  "Total Average Content Size\n")


def _read_history_before(path: Path) -> dict[str, str] | None:
    """The gate's reader until issue 13 (load.py as of 2a7dcc5): the whole file, every poll."""
    import csv

    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except OSError:
        return None
    return rows[-1] if rows else None


def follow(work: Path, seconds: int) -> None:
    """What following Locust's history costs the pytest process over a ``seconds`` long run: Locust appends
    an aggregated row a second; before, the gate re-read the whole file every 0.5 s; now it reads the
    appended lines, once a second. Simulated (the rows are written here, no Locust), CPU time of this process."""
    sys.path.insert(0, str(REPO))
    from pytest_deploygate.load import POLL_S, HistoryFollower

    print(f"machine: {machine()}; load average at start {load_average()}")

    def row(i: int) -> str:
        return (f"{1700000000 + i},50,,Aggregated,3050.2,0.0,12,14,15,16,19,23,28,33,61,90,120,{3050 * i},0,12,"
                "13.4,1,120,2.0\n")

    runs = (("before (whole file every 0.5 s)", 2, None), ("now (appended lines, 1 s)", max(1, round(1 / POLL_S)), 1))
    for name, polls_per_row, read in runs:
        path = work / f"history-{polls_per_row}-{read}.csv"
        path.write_text(HISTORY_HEADER)
        follower = HistoryFollower(path)
        spent = 0.0
        with path.open("a") as out:
            for i in range(seconds):
                out.write(row(i))
                out.flush()
                started = time.process_time()
                for _ in range(polls_per_row):
                    latest = _read_history_before(path) if read is None else follower.poll()
                spent += time.process_time() - started
                assert latest is None or latest["Total Request Count"] == str(3050 * i)
        print(f"{name}: {spent:.3f} CPU-s over a {seconds} s run ({seconds * polls_per_row} polls); "
              f"load average {load_average()}")


def idle(work: Path, duration: float, trees: list[Path]) -> None:
    """The CPU seconds the pytest process burns while a long, light load runs (5 users, 10 req/s each):
    one gate per tree, all at once (what is measured is each pytest process's own CPU, not Locust's)."""
    print(f"machine: {machine()}; load average at start {load_average()}")
    variants: list[Path | None] = list(trees) or [None]
    with nginx_target(work) as target:
        results: dict[str, tuple[dict[str, Any], float, dict[str, float]]] = {}

        def one(tree: Path | None) -> None:
            project = gate_project(work, target, users=5, duration=duration, extra='pacing_s = 0.1\nclient = "fast"')
            results[tree.name if tree else "now"] = run_gate(project, tree)

        threads = [threading.Thread(target=one, args=(tree,)) for tree in variants]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, (metrics, _wall, phases) in results.items():
            print(f"gate {name}: {duration:g} s load, {metrics['performance.requests_count']:.0f} requests; the pytest "
                  f"process burnt {phases.get('cpu_during_load_s', math.nan):.2f} CPU-s while Locust ran "
                  f"({phases.get('locust_s', math.nan):.1f} s); load average {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("capacity", "overhead", "agreement", "distributed", "follow", "idle", "all"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=900, help="follow: the simulated run's length")
    parser.add_argument("--server-ms", type=float, default=SERVER_MS, help="the agreement target's latency")
    parser.add_argument("--client", choices=("http", "fast"), action="append",
                        help="Locust user class (repeatable; capacity takes the first)")
    parser.add_argument("--processes", type=int, action="append", help="overhead: Locust processes (repeatable)")
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="overhead, idle: time the gate with this package tree first on PYTHONPATH (repeatable; "
                        "instead of the working copy)")
    args = parser.parse_args()
    clients = args.client or ["fast", "http"]
    for tool in ("nginx", "wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light wrk hey")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        if args.what in ("capacity", "all"):
            capacity(work, args.duration, args.users, clients[0])
        if args.what in ("overhead", "all"):
            overhead(work, args.duration, args.users, clients, args.processes or [1, 2], args.rounds,
                     [t.resolve() for t in args.tree])
        if args.what in ("agreement", "all"):
            agreement(work, args.duration, args.rate, args.rounds, clients, args.server_ms)
        if args.what in ("distributed", "all"):
            distributed(work, args.duration, args.users, args.rounds)
        if args.what in ("follow", "all"):
            follow(work, args.seconds)
        if args.what == "idle":
            idle(work, args.duration, [t.resolve() for t in args.tree])


if __name__ == "__main__":
    main()
