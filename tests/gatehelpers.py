"""Helpers for the plugin's own tests: real pytest runs (pytester subprocesses) of the gate against the
real reference deployment on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
#: the ``deploygate`` command of this interpreter's environment
DEPLOYGATE = str(Path(sys.executable).with_name("deploygate"))
#: what the gate says when it refuses a write to production
REFUSAL = "environment prod is protected (read-only); pass --allow-writes to let the gate write to it"


def demo_processes(marker: str) -> list[str]:
    """Command lines of running reference-deployment processes whose arguments contain ``marker``."""
    return running_processes("pytest_deploygate.demo", marker)


def running_processes(module: str, marker: str) -> list[str]:
    """Command lines of live processes mentioning ``module`` whose arguments contain ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and module in args and marker in args:
            found.append(f"{proc.name} {args}")
    return found


def wait_for(predicate: Callable[..., Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true (and return that), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class GateResult:
    ret: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    result: pytest.RunResult

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def metric(self, name: str, **labels: str) -> dict[str, Any]:
        assert self.report is not None
        for m in self.report["metrics"]:
            if m["name"] == name and all(m["labels"].get(k) == v for k, v in labels.items()):
                return m
        raise AssertionError(f"metric {name} {labels} not in report: "
                             f"{[m['key'] for m in self.report['metrics']]}")

    def failed_tests(self) -> dict[str, str]:
        assert self.report is not None
        return {f["nodeid"]: f["reason"] for c in self.report["categories"].values()
                for f in c["failed_tests"]}

    def reason(self, test: str) -> str:
        """The reason of the first failed test whose id contains ``test`` ("" when none did)."""
        return next((r for n, r in self.failed_tests().items() if test in n), "")


class Gate:
    """Runs ``pytest`` in a fresh project directory holding the repository's deploygate.toml."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.path = pytester.path
        # Demo processes get their work directory under here, so a test can look for leftovers.
        self.tmp = self.path / "tmp"
        self.tmp.mkdir()
        monkeypatch.setenv("TMPDIR", str(self.tmp))
        monkeypatch.delenv("DEPLOYGATE_DEMO_FAULTS", raising=False)
        monkeypatch.delenv("DEPLOYGATE_ENV", raising=False)
        # the repository's environments, with a load phase of 3 s instead of 10 to keep the tests quick
        text = (REPO / "deploygate.toml").read_text()
        for old, new in (("duration_s = 10", "duration_s = 3"), ("warmup_s = 2", "warmup_s = 1"),
                         ("min_requests = 30", "min_requests = 10")):
            assert old in text, old
            text = text.replace(old, new)
        (self.path / "deploygate.toml").write_text(text)

    def generous_policy(self, fail_ms: int = 60_000) -> Path:
        """A thresholds.toml like the built-in one, but every latency level at ``fail_ms`` (warn levels
        dropped): a healthy run's verdict then never hangs on how busy the machine is. Tests that prove a
        latency fault keep a level far below the fault's delay instead."""
        builtin = (REPO / "pytest_deploygate" / "thresholds.toml").read_text()
        lines = []
        for line in builtin.splitlines():
            if line.startswith('"') and '_ms"' in line.split("=", 1)[0]:
                key = line.split("=", 1)[0].strip()
                line = f'{key} = {{ fail = "> {fail_ms}" }}'
            lines.append(line)
        path = self.path / "thresholds.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def run(self, *args: str, faults: str | None = None, timeout: float = 240) -> GateResult:
        if faults is not None:
            self.monkeypatch.setenv("DEPLOYGATE_DEMO_FAULTS", faults)
        else:
            self.monkeypatch.delenv("DEPLOYGATE_DEMO_FAULTS", raising=False)
        report_path = self.path / ".deploygate" / "report.json"
        report_path.unlink(missing_ok=True)
        result = self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        return GateResult(result.ret, result.stdout.str(), result.stderr.str(), report, result)

    def start(self, *args: str, faults: str | None = None, own_group: bool = False) -> subprocess.Popen[str]:
        """A gate run in the background (to signal or kill it); output is piped. ``own_group``: in a process
        group of its own, as a terminal's foreground job is (to signal the group, as Ctrl-C does)."""
        env = dict(os.environ, TMPDIR=str(self.tmp))
        env.pop("DEPLOYGATE_DEMO_FAULTS", None)
        if faults:
            env["DEPLOYGATE_DEMO_FAULTS"] = faults
        return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=self.path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_interruptible, start_new_session=own_group)

    def leftovers(self) -> list[str]:
        return demo_processes(str(self.tmp))


def waits_on_its_pipe(pid: int) -> bool:
    """The process sleeps reading a pipe (a Locust started ahead, waiting in the guard for its release), by the
    kernel's word."""
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def _interruptible() -> None:
    """In the child, before exec: SIGINT back to its default, so the gate installs Python's KeyboardInterrupt handler
    even when this test run inherited SIGINT ignored (a shell starts a background job so: an xdist worker of a
    ``pytest -n 2 &`` ignores it, and Python keeps an ignored SIGINT ignored), and a test's SIGINT reaches it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nobody listens on, for as long as the block runs: it stays bound (never listening), so a
    connection to it is refused and no other process can take the port meanwhile (a port freed at once can be)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """``handler`` on a free loopback port, in a daemon thread: the server and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stale_report(gate_project: Gate) -> Path:
    """An earlier run's PASS report where this run writes its own."""
    path = gate_project.path / ".deploygate" / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": "dg-earlier-run", "verdict": "PASS", "exit_status": 0}))
    return path


class RunningDemo:
    """``deploygate demo up`` in the project directory, so tests can look inside its tables."""

    def __init__(self, gate: Gate, faults: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.gate = gate
        env = dict(os.environ, **(extra_env or {}))
        env.pop("DEPLOYGATE_DEMO_FAULTS", None)
        args = [DEPLOYGATE, "demo", "up"] + [a for f in faults for a in ("--fault", f)]
        self.proc = subprocess.Popen(args, cwd=gate.path, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        state = gate.path / ".deploygate" / "demo" / "demo.json"
        wait_for(state.exists, what="demo up")
        self.state = json.loads(state.read_text())

    def dynamodb(self, env: str) -> Any:
        import boto3

        info = self.state["environments"][env]
        return boto3.client("dynamodb", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def items(self, env: str) -> dict[str, list[dict[str, Any]]]:
        stage = self.state["environments"][env]["stage"]
        ddb = self.dynamodb(env)
        return {c: ddb.scan(TableName=f"aipm-backend-{stage}-{c}")["Items"] for c in ("stories", "acceptance-tests")}

    def gate_records(self) -> dict[str, int]:
        """Items carrying a gate run marker, per environment, over all tables."""
        return {env: sum(1 for items in self.items(env).values() for i in items if "deploygateRun" in i)
                for env in self.state["environments"]}

    def api(self, env: str) -> str:
        return str(self.state["environments"][env]["api_url"])

    def stop(self) -> None:
        subprocess.run([DEPLOYGATE, "demo", "down"], cwd=self.gate.path, timeout=60, check=False,
                       capture_output=True)
        self.proc.wait(timeout=30)


def _s3(demo: RunningDemo, env: str) -> Any:
    import boto3

    info = demo.state["environments"][env]
    return boto3.client("s3", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def prod_state(demo: RunningDemo) -> dict[str, Any]:
    """What a write could change in prod: its tables, its bucket, the API's write counter."""
    import requests

    bucket = "aipm-prod-frontend-hosting"
    return {"items": demo.items("prod"),
            "objects": sorted((o["Key"], o["ETag"]) for o in _s3(demo, "prod").list_objects_v2(Bucket=bucket).get(
                "Contents", [])),
            "api_writes": requests.get(demo.api("prod") + "/_demo/stats", timeout=10).json()["writes"]}


class ProdState:
    """What a write to prod would change: its tables, its frontend bucket and the API's write counter."""

    def __init__(self, demo: RunningDemo) -> None:
        import boto3

        self.demo = demo
        info = demo.state["environments"]["prod"]
        self.s3 = boto3.client("s3", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        self.bucket = info["frontend_url"].rsplit("/", 2)[-2]

    def snapshot(self) -> dict[str, Any]:
        import requests

        objects = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        bodies = {o["Key"]: self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in objects}
        tables = {t: sorted(json.dumps(i, sort_keys=True) for i in items)
                  for t, items in self.demo.items("prod").items()}
        writes = requests.get(self.demo.api("prod") + "/_demo/stats", timeout=5).json()["writes"]
        return {"tables": tables, "bucket": bodies, "writes": writes}
