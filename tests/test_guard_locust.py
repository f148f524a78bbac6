"""Production stays read-only through user locustfiles (with --allow-load only), on distributed workers
too, and Locust and its workers die with the gate. End to end: real Locust against the reference
deployment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from gatehelpers import REFUSAL, Gate, RunningDemo, prod_state, running_processes, wait_for, waits_on_its_pipe

WRITER = {
    "http": '''
import urllib.request

import requests
from locust import HttpUser, constant, task


class Writer(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def create_and_delete(self):
        created = self.client.post("/api/stories", json={"title": "written by load"}, name="create story")
        self.client.delete(f"/api/stories/{created.json()['id']}", name="delete story")

    @task
    def session_send(self):  # around HttpSession.request: its transport
        self.client.send(requests.Request("PUT", self.host + "/api/stories/none", json={}).prepare())

    @task
    def plain_requests(self):  # no Locust client at all
        requests.patch(self.host + "/api/stories/none", json={}, timeout=5)

    @task
    def standard_library(self):
        request = urllib.request.Request(self.host + "/api/stories", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()

    @task(3)
    def read(self):
        self.client.get("/api/stories", name="list stories")

    def on_stop(self):  # at shutdown, after Locust's last CSV refresh
        self.client.post("/api/stories", json={"title": "on stop"}, name="on stop")
''',
    "fast": '''
from geventhttpclient import HTTPClient
from locust import FastHttpUser, constant, task


class Writer(FastHttpUser):
    wait_time = constant(0.05)

    @task(3)
    def create_and_delete(self):
        created = self.client.post("/api/stories", json={"title": "written by load"}, name="create story")
        self.client.delete(f"/api/stories/{created.json()['id']}", name="delete story")

    @task
    def bare_client(self):  # geventhttpclient without Locust's session
        HTTPClient.from_url(self.host).request("PUT", "/api/stories/none", body=b"{}")

    @task(3)
    def read(self):
        self.client.get("/api/stories", name="list stories")
''',
}


BYPASSES = {"http": ["PUT /api/stories/none", "PATCH /api/stories/none", "POST /api/stories"],
            "fast": ["PUT /api/stories/none"]}


def _failures(gate: Gate) -> dict[str, int]:
    """The final failure messages of the last prod run in Locust, with their counts (a report artifact)."""
    report = json.loads((gate.path / ".deploygate" / "report.json").read_text())
    rows = json.loads(Path(report["artifacts"]["locust_failures"]).read_text())
    return {row["error"]: row["occurrences"] for row in rows}


@pytest.mark.e2e
@pytest.mark.parametrize("client", ["http", "fast"])
def test_a_user_locustfile_cannot_write_to_prod_with_allow_load_only(gate_project: Gate, client: str) -> None:
    (gate_project.path / "writer.py").write_text(WRITER[client])
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent("""
        [environments.prod.performance]
        locustfile = "writer.py"
        users = 5
        duration_s = 3
        warmup_s = 0
        min_requests = 1
        abort_on_fail = false
    """))
    demo = RunningDemo(gate_project, [])
    try:
        before = prod_state(demo)
        res = gate_project.run("--env", "prod", "-m", "gate and performance", "--allow-load")
        assert res.ret == 1, res.output
        reason = res.failed_tests()["test_performance.py::test_performance"]
        assert "requests of the load were writes to protected prod and were refused, none sent (pass " \
               "--allow-writes as well as --allow-load to let the load write)" in reason, reason
        assert f"refused POST create story: {REFUSAL}" in _failures(gate_project), _failures(gate_project)
        for bypass in [*BYPASSES[client], *(["POST on stop"] if client == "http" else [])]:
            assert f"refused {bypass}: {REFUSAL}" in _failures(gate_project), _failures(gate_project)
        posts = res.metric("performance.endpoint.requests_count", endpoint="POST create story")["value"]
        assert posts > 0 and res.metric("performance.endpoint.failures_count",
                                        endpoint="POST create story")["value"] == posts
        assert res.metric("performance.endpoint.failures_count", endpoint="GET list stories")["value"] == 0
        assert res.metric("performance.endpoint.requests_count", endpoint="GET list stories")["value"] > 0
        assert prod_state(demo) == before  # 0 writes: tables, bucket and the API's write counter

        # --allow-writes as well: the same locustfile writes (the guard was the rule, not a breakage)
        allowed = gate_project.run("--env", "prod", "-m", "gate and performance", "--allow-load", "--allow-writes")
        assert allowed.ret == 0, allowed.output
        assert allowed.metric("performance.endpoint.failures_count", endpoint="POST create story")["value"] == 0
        assert prod_state(demo)["api_writes"] > 2 * posts // 3
    finally:
        demo.stop()


def _locust_pids(gate: Gate) -> list[int]:
    """Locust processes started for this project (its path is in their arguments)."""
    return [int(line.split(" ", 1)[0]) for line in running_processes(" -m locust ", str(gate.path))]


@pytest.mark.e2e
def test_locust_and_its_workers_die_with_a_killed_gate(gate_project: Gate) -> None:
    """SIGKILL of the gate mid-load (no teardown runs): the Locust master and its --processes workers exit
    within seconds, not when their 120 s are up, and the target stops receiving load."""
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent("""
        [environments.staging.performance]
        users = 4
        duration_s = 120
        warmup_s = 0
        workers = 2
    """))
    demo = RunningDemo(gate_project, [])  # started by the test: the gate's death does not take it along
    gate = gate_project.start("--env", "staging", "-m", "gate and performance")
    try:
        def loading() -> bool:
            return len(_locust_pids(gate_project)) >= 3 and requests.get(
                demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"] > 50

        wait_for(loading, timeout=120, what="a master, two workers and load on staging")
        killed = time.monotonic()
        gate.kill()
        gate.wait(timeout=30)
        log = gate_project.path / ".deploygate" / "performance" / "locust-staging.log"
        try:
            wait_for(lambda: not _locust_pids(gate_project), timeout=20, what="Locust to exit")
        except AssertionError:
            left = running_processes(" -m locust ", str(gate_project.path))
            raise AssertionError(f"Locust outlived the gate: {left}\n{log.read_text()}") from None
        gone_after = time.monotonic() - killed
        print(f"Locust (master and 2 workers) gone {gone_after:.2f} s after SIGKILL of the gate")
        assert gone_after < 10  # seconds, against 120 s of load left
        served = requests.get(demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"]
        time.sleep(1.5)
        assert requests.get(demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"] == served
    finally:
        if gate.poll() is None:
            gate.kill()
        for pid in _locust_pids(gate_project):  # only if the test failed: what this test's gate started
            os.kill(pid, signal.SIGKILL)
        demo.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_locust_started_ahead_dies_with_the_gate_before_its_run(gate_project: Gate, how: str) -> None:
    """The session starts Locust while pytest collects; it waits in the guard for the load test. The gate
    killed (SIGKILL: no teardown runs) or interrupted (SIGTERM) before the load test: the waiting Locust is
    gone within seconds, and no load ever reached the target."""
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent("""
        [environments.staging.performance]
        users = 4
        duration_s = 60
        warmup_s = 0
    """))
    # collection that never ends: the gate sits between Locust's start and the load test
    (gate_project.path / "conftest.py").write_text("import time\n\n\ndef pytest_collection_modifyitems():\n"
                                                   "    time.sleep(300)\n")
    demo = RunningDemo(gate_project, [])
    gate = gate_project.start("--env", "staging", "-m", "gate and performance")
    try:
        pids = wait_for(lambda: [p for p in _locust_pids(gate_project) if waits_on_its_pipe(p)], timeout=120,
                        what="a Locust started ahead, waiting for its run")
        served = requests.get(demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"]
        stopped = time.monotonic()
        if how == "SIGKILL":
            gate.kill()
            gate.wait(timeout=30)
        else:
            gate.send_signal(signal.SIGTERM)
            assert gate.wait(timeout=60) == 2  # interrupted
        wait_for(lambda: not _locust_pids(gate_project), timeout=20, what="Locust to exit")
        assert time.monotonic() - stopped < 10 and pids
        # no load ran (an interrupted gate's own clean-up may send a request or two; the load, hundreds)
        assert not (gate_project.path / ".deploygate" / "performance" / "locust-staging.json").exists()
        assert requests.get(demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"] - served < 5
    finally:
        if gate.poll() is None:
            gate.kill()
        for pid in _locust_pids(gate_project):  # only if the test failed: what this test's gate started
            os.kill(pid, signal.SIGKILL)
        demo.stop()


@pytest.mark.e2e
def test_distributed_workers_get_the_rule_from_the_master(gate_project: Gate) -> None:
    """A remote worker has none of the gate's environment variables: the rule reaches it from the master
    (with the guard file), and its writes are refused too."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (gate_project.path / "writer.py").write_text(WRITER["http"])
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent(f"""
        [environments.prod.performance]
        locustfile = "writer.py"
        users = 4
        duration_s = 3
        warmup_s = 0
        min_requests = 1
        abort_on_fail = false
        distributed = {{ expect_workers = 1, bind_port = {port} }}
    """))
    demo = RunningDemo(gate_project, [])
    gate = gate_project.start("--env", "prod", "-m", "gate and performance", "--allow-load")
    worker = None
    try:
        before = prod_state(demo)

        def master_up() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(master_up, timeout=120, what="the locust master")
        own_tmp = gate_project.tmp / "worker"
        own_tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYGATE_")}
        log = gate_project.tmp / "worker.log"
        with log.open("wb") as sink:
            worker = subprocess.Popen([sys.executable, "-m", "locust", "-f", "-", "--worker", "--master-host",
                                       "127.0.0.1", "--master-port", str(port)], cwd=own_tmp,
                                      env=dict(env, TMPDIR=str(own_tmp)), stdout=sink, stderr=subprocess.STDOUT)
        out, _ = gate.communicate(timeout=150)
        assert gate.returncode == 1, out + log.read_text()
        assert "requests of the load were writes to protected prod and were refused, none sent" in out, out
        assert f"refused POST create story: {REFUSAL}" in _failures(gate_project)
        assert prod_state(demo) == before
        worker.wait(timeout=30)
    finally:
        for p in (gate, worker):
            if p is not None and p.poll() is None:
                p.kill()
        demo.stop()


def test_the_gate_and_the_guard_in_locust_agree_on_their_variables() -> None:
    from pytest_deploygate.failures import READ_METHODS
    from pytest_deploygate.load import FAST_EXIT_VAR, GATE_VAR, GUARD, READ_ONLY_VAR, RELEASE_VAR

    source = GUARD.read_text()  # read, never imported here: it patches Locust's clients where it loads
    assert f'READ_ONLY_VAR = "{READ_ONLY_VAR}"' in source and f'GATE_VAR = "{GATE_VAR}"' in source
    assert f'RELEASE_VAR = "{RELEASE_VAR}"' in source and f'FAST_EXIT_VAR = "{FAST_EXIT_VAR}"' in source
    # Locust loads a copy of the guard without the package: its own list of reads must be the gate's
    reads = ", ".join(f'"{m}"' for m in ("GET", "HEAD", "OPTIONS"))
    assert READ_METHODS == {"GET", "HEAD", "OPTIONS"} and f"READ_METHODS = frozenset({{{reads}}})" in source
    assert "pytest_deploygate.locust_guard" not in sys.modules


PRECOMPILED = """
import sys
sys.path.insert(0, sys.argv[1])
import locust.html as html
args = {"template_args": {"is_report": True, "history": [{"time": "12:00:00", "user_count": 3}]}, "theme": "light"}
own = html.render_template_from("report.html", **args), html.render_template_from("index.html", **args)
import deploygate_guard  # no release variable: nothing is precompiled at import
assert not hasattr(html.render_template_from, "__wrapped__")
assert deploygate_guard.precompile_html_report() and hasattr(html.render_template_from, "__wrapped__")
now = html.render_template_from("report.html", **args), html.render_template_from("index.html", **args)
print(now == own, len(own[0]) > 100_000, '"user_count": 3' in now[0])
"""


def test_the_precompiled_html_report_is_the_page_locust_renders(tmp_path: Path) -> None:
    """A Locust started ahead compiles its HTML report's template while it waits for the release (Locust
    would compile it after the load, while the gate waits): the page it renders is Locust's own, byte for byte."""
    from pytest_deploygate.load import GUARD

    (tmp_path / "deploygate_guard.py").write_text(GUARD.read_text())
    out = subprocess.run([sys.executable, "-c", PRECOMPILED, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "True True True", out.stdout


FINALIZED = """
import atexit, sys, weakref
from locust import FastHttpUser, constant, events, task

class Down(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def get(self):
        self.client.get("/")

@events.quit.add_listener
def _quit(exit_code, **_):
    print(f"quit event, exit code {exit_code}")  # stdout is a file: buffered

atexit.register(print, "the locustfile's exit handler ran")

class Finalized:
    pass

KEPT = Finalized()
weakref.finalize(KEPT, print, "finalized at the interpreter's end")
"""


@pytest.mark.parametrize("fast", ["1", ""])
def test_locust_running_the_generated_locustfile_ends_without_finalization_once_everything_is_written(
        tmp_path: Path, fast: str) -> None:
    """With the gate's variable (set for its generated locustfile) the master ends right after Locust's
    shutdown and every exit handler Locust and the locustfile registered: its exit code, results, reports,
    CSV files and buffered output are all there; only the interpreter's finalization is skipped. Without
    it (a user's own locustfile) Locust ends as it always does."""
    from pytest_deploygate.load import FAST_EXIT_VAR, GATE_VAR, GUARD, READ_ONLY_VAR, RELEASE_VAR

    (tmp_path / "deploygate_guard.py").write_text(GUARD.read_text())
    (tmp_path / "down.py").write_text(FINALIZED)
    with socket.socket() as s:  # a port nobody listens on: every request fails (connection refused)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in (READ_ONLY_VAR, RELEASE_VAR)}
    prefix = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "deploygate_guard.py,down.py", "--headless", "--host",
         f"http://127.0.0.1:{port}", "-u", "2", "-r", "2", "-t", "1s", "--json-file", str(prefix), "--html",
         f"{prefix}.html", "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
         "--exit-code-on-error", "7"], cwd=tmp_path, env={**env, GATE_VAR: str(os.getpid()), FAST_EXIT_VAR: fast},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert out.returncode == 7, out.stdout  # the exit code of Locust's shutdown: there were errors
    assert "quit event, exit code 7" in out.stdout and "the locustfile's exit handler ran" in out.stdout
    assert ("finalized at the interpreter's end" in out.stdout) is not fast, out.stdout
    entries = json.loads(Path(f"{prefix}.json").read_text())
    assert sum(e["num_failures"] for e in entries) > 0
    assert json.loads(Path(f"{prefix}_failures.json").read_text())[0]["occurrences"] > 0
    assert Path(f"{prefix}.html").read_text().lower().startswith("<!doctype html")
    assert Path(f"{prefix}_stats.csv").read_text().splitlines()[-1].split(",")[1] == "Aggregated"
    assert Path(f"{prefix}_stats_history.csv").read_text().endswith("\n")


GUARDED = """
import sys
sys.path.insert(0, sys.argv[1])
import deploygate_guard  # what Locust loads first (-f deploygate_guard.py,locustfile.py)
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession
print(hasattr(HttpSession.request, "__wrapped__"), hasattr(FastHttpSession.request, "__wrapped__"))
"""


@pytest.mark.parametrize(("rule", "patched"), [("", "False False"), ("environment prod is protected", "True True")])
def test_the_guard_patches_the_clients_only_for_a_read_only_environment(tmp_path: Path, rule: str,
                                                                         patched: str) -> None:
    """A writable environment's load pays nothing per request: Locust's clients are left as they are
    (a distributed worker installs the guard at test start, when the master's options bring the rule)."""
    from pytest_deploygate.load import GUARD, READ_ONLY_VAR

    (tmp_path / "deploygate_guard.py").write_text(GUARD.read_text())
    env = {k: v for k, v in os.environ.items() if k not in (READ_ONLY_VAR, "DEPLOYGATE_GATE_PID")}
    out = subprocess.run([sys.executable, "-c", GUARDED, str(tmp_path)], env={**env, READ_ONLY_VAR: rule},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == patched, out.stdout
