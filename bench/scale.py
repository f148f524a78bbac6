"""The gate's own cost as the work grows: time and peak memory of its controller-side steps.

    .venv/bin/python bench/scale.py [--repeat 5] [--findings 1000 5000 20000] [--metrics 1000 2500 10000]
                                    [--metrics-aws 10000] [--smoke 100 250 1000] [--run-metrics 10000]

* findings: N security findings (10 % of them repeats, as when two checks report the same issue) arrive
  on test reports of 100 findings each and are aggregated by the plugin's collector (deduplicated by
  content), as in a gate run.
* metrics: N recorded metrics (latencies, rates with their request counts, counts; thresholds and
  unjudged ones) are judged, the report is built, redacted and written as JSON, as the plugin does at
  the end of a session (one API token among the run's secrets); the terminal summary and the Markdown
  rendered from it are timed apart. ``metrics+aws``: the same with AWS credentials among the secrets (a
  600-character session token: hundreds of pieces for the redaction to look for).
* smoke: a whole gate run, ``pytest --env bench -m "gate and smoke"`` in a child process, whose environment
  lists N smoke endpoints (each a JSON ``GET`` answered at once by a loopback server in this process, which
  is not counted): start-up, collection of N checks, the requests, verdict and report. Its peak RSS is the
  pytest process's own (``os.wait4``); "base" is the same for 1 endpoint. Per endpoint: the time above the
  1-endpoint run, divided by N - 1.

* run-metrics: a whole gate run (``pytest --env bench -m gate --no-builtin-suites``, one passing check) whose
  conftest records N metrics through ``pytest_deploygate_metrics``, each judged by a threshold: the verdict,
  the JSON report, the terminal summary and the threshold cases (two test reports each through pytest's
  hooks, for JUnit and Allure) of N metrics. Per metric: the time above the 1-metric run, pair by pair.

Each figure is one child process per size, run ``--repeat`` times, sizes interleaved (so drift of a
shared machine hits every size alike); printed as medians with the min-max range. Peak RSS is the child's
own ``ru_maxrss``; "base" is its RSS before the work (Python, pytest, the plugin and the config loaded).
Linear cost shows as a flat per-item time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gate_run(tmp: Path) -> Any:
    from pytest_deploygate.config import load_gate, locate_files
    from pytest_deploygate.run import GateRun, RunSettings, Target

    files = locate_files(REPO)
    project, policies = load_gate(files, ["staging"])
    settings = RunSettings(env_name="staging", env_source="--env", project=project, policy=policies["staging"],
                           config_path=files.config, report_path=tmp / "report.json")
    run = GateRun(settings, Target(project))
    # a launched deployment's API token: every output is redacted
    run.target.extra_secrets.add("Zk3pQ9vX2mL7rT4wB8nY1cF6")
    return run


def child_findings(n: int, tmp: Path) -> tuple[float, int]:
    import pytest

    from pytest_deploygate.run import FINDING_PROPERTY

    run = _gate_run(tmp)
    secrets = run.secrets
    distinct = n - n // 10
    findings = [json.dumps({"check": "bandit", "severity": ("HIGH", "MEDIUM", "LOW")[i % 3],
                            "text": f"B{100 + i % 600}: issue in src/module_{i // 50}.py:{i % 997 + 1}"})
                for i in range(distinct)]
    findings += findings[: n - distinct]  # repeats: the same finding seen by a second check
    reports = []
    for start in range(0, n, 100):
        props = [(FINDING_PROPERTY, f) for f in findings[start:start + 100]]
        reports.append(pytest.TestReport(
            nodeid=f"suites/test_security.py::test_scan[{start}]", location=("suites/test_security.py", 1, "x"),
            keywords={"security": 1, "gate": 1}, outcome="passed", longrepr=None, when="teardown",
            user_properties=props))
    t0 = time.perf_counter()
    for report in reports:
        run.results.collect(report, secrets)
    elapsed = time.perf_counter() - t0
    assert len(run.results.findings) == distinct, len(run.results.findings)
    return elapsed, len(run.results.findings)


METRIC_SHAPES = (
    # name, unit, value(i), samples(i)
    ("smoke.api.latency_ms", "ms", lambda i: 20.0 + i % 50, lambda i: None),
    ("crud.create_ms", "ms", lambda i: 30.0 + i % 70, lambda i: None),
    ("performance.success_rate", "%", lambda i: 99.0 + (i % 10) / 10, lambda i: 1000 + i % 500),
    ("performance.p95_ms", "ms", lambda i: 100.0 + i % 300, lambda i: 2000),
    ("security.headers.missing_count", "", lambda i: float(i % 2), lambda i: None),
    ("custom.items.seen_count", "", lambda i: float(i), lambda i: None),  # no threshold: shown as INFO
)


#: AWS credentials as a CI job that assumed a role holds them (every output is redacted of them too): a long
#: session token makes hundreds of pieces for the redaction to look for
AWS_SECRETS = ("ASIAQ3EXAMPLEKEY7XZ2", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
               "FwoGZXIvYXdzEJr" + "".join(__import__("random").Random(1).choices(
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", k=600)))


class _Terminal:
    """The terminal reporter's calls the gate's summary makes, written to a list."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def write_sep(self, sep: str, title: str = "", **markup: bool) -> None:
        self.out.append(title)

    def write(self, text: str, **markup: bool) -> None:
        self.out.append(text)

    def write_line(self, text: str = "", **markup: bool) -> None:
        self.out.append(text + "\n")


def child_metrics(n: int, tmp: Path, aws: bool = False) -> tuple[float, int]:
    from pytest_deploygate import __version__
    from pytest_deploygate.gate import judge, make_metric
    from pytest_deploygate.report.json_report import write_report
    from pytest_deploygate.report.markdown import render_markdown
    from pytest_deploygate.report.model import GateReport
    from pytest_deploygate.report.terminal import write_summary

    run = _gate_run(tmp)
    if aws:
        run.target.extra_secrets.update(AWS_SECRETS)
    for i in range(n):
        name, unit, value, samples = METRIC_SHAPES[i % len(METRIC_SHAPES)]
        run.results.metrics.append(make_metric(name, value(i), unit, {"path": f"/api/items/{i}"},
                                       f"suites/test_x.py::test_{i // 10}", samples(i)))
    for t in range(n // 10):
        run.results.outcomes[f"suites/test_x.py::test_{t}"] = ("smoke", "passed", "")
    t0 = time.perf_counter()
    # what the session's pytest_sessionfinish does once the verdict hooks have run (report.deliver)
    settings = run.settings
    verdict = judge(run.env_name, run.results.metrics, run.policy, run.results.tallies(), settings.fail_on_warn,
                    settings.fail_on_inconclusive)
    t1 = time.perf_counter()
    report = GateReport.of_verdict(run, verdict, 0, __version__).redacted(run.secrets)
    write_report(report, settings.report_path, run.secrets, settings.markdown_path)
    elapsed = time.perf_counter() - t0
    SPLIT["judge_s"], SPLIT["report_s"] = t1 - t0, elapsed - (t1 - t0)
    # what the user reads besides the file (not in the figure above): the terminal summary and the Markdown
    t2 = time.perf_counter()
    write_summary(_Terminal(), report, None, run.env_name, settings.report_path)
    render_markdown(report)
    SPLIT["render_s"] = time.perf_counter() - t2
    written = json.loads(run.settings.report_path.read_text())
    assert len(written["metrics"]) == n
    return elapsed, n


#: the parts of a child's figure, when it has parts
SPLIT: dict[str, float] = {}


class _JsonServer:
    """Answers every GET with a small JSON body at once (threads, 127.0.0.1, a free port)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that closes its kept-alive connection is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def gate_smoke(n: int, url: str) -> dict[str, float]:
    """A whole smoke gate run over ``n`` endpoints: wall seconds and the pytest process's peak RSS."""
    import os

    with tempfile.TemporaryDirectory(prefix="deploygate-scale-") as tmp:
        work = Path(tmp)
        endpoints = ", ".join(f'{{ path = "/api/items/{i}", json = true }}' for i in range(n - 1))
        (work / "deploygate.toml").write_text(
            f'[environments.bench]\nbase_url = "{url}"\n'
            '[environments.bench.smoke]\nhealth = [{ path = "/health" }]\n'
            f"endpoints = [{endpoints}]\n")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                 "-q", "--env", "bench", "-m", "gate and smoke"], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        report = json.loads((work / ".deploygate" / "report.json").read_text())
        if code != 0 or report["verdict"] != "PASS":
            raise SystemExit(f"smoke {n}: exit {code}, verdict {report['verdict']}")
        checks = sum(c["tests"]["passed"] for c in report["categories"].values())
        return {"seconds": elapsed, "items": checks, "peak_mb": usage.ru_maxrss / 1024, "base_mb": 0.0}


def gate_metrics(n: int, url: str) -> dict[str, float]:
    """A whole gate run in which the project's conftest records ``n`` metrics (``pytest_deploygate_metrics``),
    each judged by a threshold: one check, then the verdict, the JSON report, the terminal summary and the
    JUnit/Allure threshold cases (two test reports each, through pytest's hooks) of ``n`` metrics."""
    import os

    with tempfile.TemporaryDirectory(prefix="deploygate-scale-") as tmp:
        work = Path(tmp)
        (work / "deploygate.toml").write_text(f'[environments.bench]\nbase_url = "{url}"\n')
        (work / "thresholds.toml").write_text('[metrics]\n"custom.item_ms" = { fail = "> 1000" }\n')
        (work / "conftest.py").write_text(
            "def pytest_deploygate_metrics(config, environment, record):\n"
            f"    for i in range({n}):\n"
            "        record('custom.item_ms', float(i % 500), path=f'/api/items/{i}')\n")
        (work / "test_one.py").write_text("import pytest\n\n\n@pytest.mark.gate\ndef test_ok():\n    pass\n")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                 "-q", "--env", "bench", "-m", "gate", "--no-builtin-suites"], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        # read in a child: parsed here, the large report would grow this process, and a child started after
        # that (fork, exec) counts the parent's peak RSS in its own ru_maxrss
        said = subprocess.run([sys.executable, "-c", "import json, sys; r = json.load(open(sys.argv[1])); "
                               "print(r['verdict'], len(r['metrics']))", str(work / ".deploygate" / "report.json")],
                              capture_output=True, text=True, check=False).stdout.split()
        if code != 0 or said != ["PASS", str(n)]:
            raise SystemExit(f"run-metrics {n}: exit {code}, report says {said}")
        return {"seconds": elapsed, "items": n, "peak_mb": usage.ru_maxrss / 1024, "base_mb": 0.0}


CHILDREN = {"findings": child_findings, "metrics": child_metrics,
            "metrics+aws": lambda n, tmp: child_metrics(n, tmp, aws=True)}


def run_child(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], capture_output=True, text=True,
                         check=False, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {n}: exit {out.returncode}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--findings", type=int, nargs="*", default=[1000, 5000, 20000])
    parser.add_argument("--metrics", type=int, nargs="*", default=[1000, 2500, 10000])
    parser.add_argument("--metrics-aws", type=int, nargs="*", default=[10000],
                        help="metrics again, with AWS credentials (a 600-character session token) among the secrets")
    parser.add_argument("--smoke", type=int, nargs="*", default=[100, 250, 1000])
    parser.add_argument("--run-metrics", type=int, nargs="*", default=[10000],
                        help="whole gate runs recording N metrics (per metric: above the 1-metric run)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        with tempfile.TemporaryDirectory() as tmp:
            base = _rss_mb()
            _gate_run(Path(tmp))  # imports and config loaded before the base figure
            base = _rss_mb()
            elapsed, items = CHILDREN[kind](n, Path(tmp))
        print(json.dumps({"seconds": elapsed, "items": items, "base_mb": base, "peak_mb": _rss_mb(), **SPLIT}))
        return

    plan = [("findings", n) for n in args.findings] + [("metrics", n) for n in args.metrics]
    plan += [("metrics+aws", n) for n in args.metrics_aws]
    plan += [("smoke", n) for n in ([1, *args.smoke] if args.smoke else [])]
    plan += [("run-metrics", n) for n in ([1, *args.run_metrics] if args.run_metrics else [])]
    samples: dict[tuple[str, int], list[dict[str, float]]] = {p: [] for p in plan}
    server = _JsonServer() if args.smoke or args.run_metrics else None
    whole = {"smoke": gate_smoke, "run-metrics": gate_metrics}
    try:
        for _ in range(args.repeat):
            for kind, n in plan:
                samples[(kind, n)].append(whole[kind](n, server.url) if kind in whole and server
                                          else run_child(kind, n))
    finally:
        if server is not None:
            server.stop()
    # a gate run's own cost per endpoint (per metric): above the 1-endpoint (1-metric) run, pair by pair
    for kind, sizes in (("smoke", args.smoke), ("run-metrics", args.run_metrics)):
        for n in sizes or ():
            for run, base in zip(samples[(kind, n)], samples[(kind, 1)], strict=True):
                run["per_s"] = (run["seconds"] - base["seconds"]) / max(n - 1, 1)
                run["base_mb"] = base["peak_mb"]
    print(f"{args.repeat} runs per size, sizes interleaved; medians (min-max)")
    print(f"{'work':<20} {'time':>22} {'per item':>20} {'peak RSS':>20} {'base RSS':>9}")
    for (kind, n), runs in samples.items():
        secs = [r["seconds"] for r in runs]
        peaks = [r["peak_mb"] for r in runs]
        per = [r["per_s"] * 1e6 if "per_s" in r else s / n * 1e6 for r, s in zip(runs, secs, strict=True)]
        print(f"{kind + ' ' + format(n, ','):<20} "
              f"{statistics.median(secs) * 1000:8.1f} ms ({min(secs) * 1000:.0f}-{max(secs) * 1000:.0f}) "
              f"{statistics.median(per):7.1f} µs ({min(per):.1f}-{max(per):.1f}) "
              f"{statistics.median(peaks):7.1f} MB ({min(peaks):.0f}-{max(peaks):.0f}) "
              f"{statistics.median(r['base_mb'] for r in runs):6.1f} MB")
        if kind.startswith("metrics"):
            print(f"{'':<20}   of which judge {statistics.median(r['judge_s'] for r in runs) / n * 1e6:.1f} µs, "
                  f"report (build, redact, write) {statistics.median(r['report_s'] for r in runs) / n * 1e6:.1f} µs"
                  f" per metric; besides: terminal summary + Markdown "
                  f"{statistics.median(r['render_s'] for r in runs) / n * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
