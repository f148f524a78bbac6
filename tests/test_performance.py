"""Performance suite: real Locust load against the reference deployment, short runs (a few seconds)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from gatehelpers import Gate, running_processes, wait_for, waits_on_its_pipe

#: what a Locust process's arguments hold (a test's own path may contain "locust" too)
LOCUST = " -m locust "

SHORT = """
[environments.{env}.performance]
users = 10
duration_s = {duration}
warmup_s = {warmup}
min_requests = {min_requests}
{extra}
"""


def shorten(gate: Gate, env: str = "staging", duration: float = 4, min_requests: int = 20, extra: str = "",
            warmup: float = 1) -> None:
    path = gate.path / "deploygate.toml"
    path.write_text(path.read_text() + SHORT.format(env=env, duration=duration, min_requests=min_requests,
                                                    extra=extra, warmup=warmup))




LOAD_BOUNDS = [  # (key = value, what the error says): every load figure is a finite number within its caps
    ("wait_s = [nan, nan]", "wait_s.[0]: expected a number >= 0 and <= 3600, got nan"),
    ("wait_s = [0, inf]", "wait_s.[1]: expected a number >= 0 and <= 3600, got inf"),
    ("max_users = inf", "max_users: expected an integer >= 1 and <= 1e+06, got inf"),
    ("max_users = " + "9" * 400, "max_users: expected an integer >= 1 and <= 1e+06, got an integer of 400 digits"),
    ("max_duration_s = nan", "max_duration_s: expected a number > 0 and <= 604800, got nan"),
    ("max_duration_s = 1e300", "max_duration_s: expected a number > 0 and <= 604800, got 1e+300"),
    ("max_duration_s = 1e15", "max_duration_s: expected a number > 0 and <= 604800, got 1e+15"),
    ("duration_s = inf", "duration_s: expected a number > 0 and <= 604800, got inf"),
    ("users = -1", "users: expected an integer >= 1 and <= 1e+06, got -1"),
    ("spawn_rate = nan", "spawn_rate: expected a number > 0 and <= 1e+06, got nan"),
    ("warmup_s = -inf", "warmup_s: expected a number >= 0 and <= 604800, got -inf"),
    ("pacing_s = inf", "pacing_s: expected a number > 0 and <= 3600, got inf"),
    ("workers = 1e9", "workers: expected an integer >= 1 and <= 1024, got 1e+09"),
    ("distributed = { expect_workers = 2, max_wait_s = nan }",
     "distributed.max_wait_s: expected a number > 0 and <= 3600, got nan"),
    ("distributed = { expect_workers = 2, bind_port = 70000 }",
     "distributed.bind_port: expected an integer >= 1 and <= 65535, got 70000"),
]


@pytest.mark.parametrize(("line", "message"), LOAD_BOUNDS, ids=[line for line, _ in LOAD_BOUNDS])
def test_load_figures_are_finite_and_capped_at_config_time(tmp_path: Path, line: str, message: str) -> None:
    from pytest_deploygate.config import load_project
    from pytest_deploygate.schema import ConfigError

    path = tmp_path / "deploygate.toml"
    others = "".join(f"{key} = {value}\n" for key, value in (("users", 5), ("duration_s", 10))
                     if not line.startswith(key))
    path.write_text(f'service = "svc"\n[environments.prod]\nbase_url = "http://127.0.0.1:1"\n'
                    f"[environments.prod.performance]\n{others}\n{line}\n")
    with pytest.raises(ConfigError) as error:
        load_project(path)
    assert error.value.file == str(path) and error.value.line == len(path.read_text().splitlines()), str(error.value)
    assert f"environments.prod.performance.{message}" in str(error.value), str(error.value)


def test_healthy_load_passes_with_metrics_and_artifacts(gate_project: Gate) -> None:
    shorten(gate_project)
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["performance"]["verdict"] == "PASS"
    requests_count = res.metric("performance.requests_count")["value"]
    assert requests_count >= 20
    assert res.metric("performance.success_rate")["value"] == 100.0
    assert res.metric("performance.success_rate")["threshold"] == "warn < 99 %, fail < 95 %"
    avg = res.metric("performance.avg_ms")
    assert avg["verdict"] == "PASS" and 0 < avg["value"] < 2000
    p50, p95, p99 = (res.metric(f"performance.{p}_ms")["value"] for p in ("p50", "p95", "p99"))
    assert 0 < p50 <= p95 <= p99
    assert res.metric("performance.rps")["value"] > 0
    assert res.metric("performance.endpoint.requests_count", endpoint="GET /api/stories")["value"] > 0
    artifacts = res.report["artifacts"]
    assert Path(artifacts["locust_html"]).read_text().lower().startswith("<!doctype html")
    raw = json.loads(Path(artifacts["locust_json"]).read_text())
    assert sum(e["num_requests"] for e in raw) == requests_count
    assert "load:" in res.stdout and "requests" in res.stdout  # the live line
    assert running_processes(LOCUST, str(gate_project.path)) == []


@pytest.mark.parametrize(("fault", "failing", "passing"), [
    ("slow", ["performance.avg_ms", "performance.p95_ms"], []),
    ("errors", ["performance.success_rate"], []),
    ("tail-latency", ["performance.p95_ms"], ["performance.avg_ms"]),
])
def test_fault_fails_the_right_metric(gate_project: Gate, fault: str, failing: list[str], passing: list[str]) -> None:
    shorten(gate_project, duration=6 if fault == "slow" else 4, min_requests=10)
    res = gate_project.run("--env", "staging", "-m", "gate and performance", faults=f"staging:{fault}")
    assert res.ret == 1, res.output
    for name in failing:
        assert res.metric(name)["verdict"] == "FAIL", name
        assert f"FAIL {name}" in res.stdout
    for name in passing:
        assert res.metric(name)["verdict"] == "PASS", name


@pytest.mark.parametrize("client", ["http", "fast"])
def test_both_locust_clients_send_the_token_and_judge_statuses(gate_project: Gate, client: str) -> None:
    """HttpUser and FastHttpUser alike: the environment's token reaches a protected endpoint (a 200 only
    with the right bearer token), and a wrong status is a failed request."""
    tasks = ('tasks = [{ name = "stories", path = "/api/stories", weight = 3 }, '
             '{ name = "admin", path = "/api/admin/export" }]')
    shorten(gate_project, extra=f'client = "{client}"\n{tasks}')
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.ret == 0, res.output
    assert res.metric("performance.success_rate")["value"] == 100.0
    assert res.metric("performance.endpoint.requests_count", endpoint="GET admin")["value"] > 0
    locustfile = (gate_project.path / ".deploygate" / "performance" / "locustfile.py").read_text()
    assert "Bearer" not in locustfile  # the token travels in the environment, never in the file
    # The same task expecting 401 (what an anonymous caller gets): every admin request now fails.
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace('path = "/api/admin/export" }', 'path = "/api/admin/export", '
                                                                               'status = 401 }'))
    wrong = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert wrong.ret == 1, wrong.output
    assert wrong.metric("performance.success_rate")["verdict"] == "FAIL"
    admin = {k: wrong.metric(f"performance.endpoint.{k}", endpoint="GET admin")["value"]
             for k in ("requests_count", "failures_count")}
    assert admin["requests_count"] > 0 and admin["failures_count"] == admin["requests_count"]


def test_a_user_locustfile_relative_to_the_project(gate_project: Gate) -> None:
    """``locustfile`` instead of tasks: the team's own file (a path relative to where pytest runs) drives the
    load, gets the token from $DEPLOYGATE_LOAD_AUTH, and is judged like the generated one."""
    (gate_project.path / "perf").mkdir()
    (gate_project.path / "perf" / "team_load.py").write_text(textwrap.dedent("""
        import os

        from locust import HttpUser, constant, task


        class TeamUser(HttpUser):
            wait_time = constant(0.05)

            @task
            def export(self):
                headers = {"Authorization": os.environ["DEPLOYGATE_LOAD_AUTH"]}
                self.client.get("/api/admin/export", headers=headers, name="team export")
    """))
    shorten(gate_project, extra='locustfile = "perf/team_load.py"')
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.ret == 0, res.output
    assert res.metric("performance.endpoint.requests_count", endpoint="GET team export")["value"] >= 20
    assert res.metric("performance.success_rate")["value"] == 100.0
    # A locustfile that is not there is a failed check that names it.
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace("perf/team_load.py", "perf/missing.py"))
    missing = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert missing.ret == 1
    reason = next(iter(missing.failed_tests().values()))
    assert "performance: locustfile perf/missing.py not found" in reason, reason


def test_errors_abort_the_run_early(gate_project: Gate) -> None:
    shorten(gate_project, duration=20, min_requests=20)
    res = gate_project.run("--env", "staging", "-m", "gate and performance", faults="staging:errors")
    assert res.ret == 1
    reason = next(iter(res.failed_tests().values()))
    # "aborted after N s of 20 s": Locust was stopped before its duration (the figure, not a wall clock)
    assert "aborted after" in reason and "of 20 s: performance.success_rate breaches its fail level" in reason
    assert float(reason.split("aborted after ")[1].split(" ")[0]) < 20


def test_flaky_warns_and_fails_with_fail_on_warn(gate_project: Gate) -> None:
    # long enough that 1 failure in 33 is a WARN beyond doubt (Wilson interval wholly under 99 %), busy machine too
    shorten(gate_project, duration=8, min_requests=20)
    warned = gate_project.run("--env", "staging", "-m", "gate and performance", faults="staging:flaky")
    assert warned.ret == 0, warned.output
    rate = warned.metric("performance.success_rate")
    assert rate["verdict"] == "WARN" and 95 <= rate["value"] < 99
    assert warned.report is not None and warned.report["verdict"] == "WARN"
    strict = gate_project.run("--env", "staging", "-m", "gate and performance", "--fail-on-warn",
                              faults="staging:flaky")
    assert strict.ret == 1


def test_too_few_requests_is_a_failure_not_a_pass(gate_project: Gate) -> None:
    shorten(gate_project, duration=2, min_requests=1_000_000)
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.ret == 1
    reason = next(iter(res.failed_tests().values()))
    assert "too few requests to judge" in reason and "fewer than min_requests = 1000000" in reason
    names = {m["name"] for m in res.report["metrics"]} if res.report else set()
    assert "performance.avg_ms" not in names  # nothing judged on too small a sample


def test_interrupting_the_load_leaves_no_locust(gate_project: Gate) -> None:
    shorten(gate_project, duration=30, min_requests=10)
    proc = gate_project.start("--env", "staging", "-m", "gate and performance")
    try:
        # Locust's run has begun (it starts ahead, during collection, and waits on a pipe until the test's release)
        wait_for(lambda: [p for p in running_processes(LOCUST, str(gate_project.path))
                          if not waits_on_its_pipe(int(p.split(" ", 1)[0]))], what="locust to start its run")
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not running_processes(LOCUST, str(gate_project.path)), timeout=30,
              what="locust to be gone")
    assert gate_project.leftovers() == []


def test_prod_gets_a_probe_not_load(gate_project: Gate) -> None:
    from gatehelpers import RunningDemo

    shorten(gate_project, env="prod")
    # a probe too short to judge its success rate (the shipped 100 rules out "< 95 %", 20 cannot)
    config = gate_project.path / "deploygate.toml"
    config.write_text(re.sub(r"probe_requests = 100\b", "probe_requests = 20", config.read_text()))
    demo = RunningDemo(gate_project, [])
    try:
        res = gate_project.run("--env", "prod", "-m", "gate and performance")
        assert res.ret == 0, res.output
        served = requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["requests"]
        assert served == 20 + 1  # probe_requests sequential requests (and the pre-flight), no load
        assert res.metric("performance.requests_count", mode="probe")["value"] == 20
        assert res.metric("performance.p95_ms", mode="probe")["verdict"] == "PASS"
        # 20 of 20 cannot rule out "< 95 %": INCONCLUSIVE (not PASS, not blocking), with what would settle it
        rate = res.metric("performance.success_rate", mode="probe")
        assert rate["verdict"] == "INCONCLUSIVE" and rate["samples"] == 20 and rate["samples_needed"] == 73
        assert "cannot tell against < 95 %" in res.stdout and "needs n >= 73" in res.stdout
        assert "prod is protected: 20 sequential probe requests instead of load" in res.stdout
        loaded = gate_project.run("--env", "prod", "-m", "gate and performance", "--allow-load")
        assert loaded.ret == 0, loaded.output
        after = requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["requests"]
        assert after - served > 100  # real load this time
    finally:
        demo.stop()


def test_two_processes(gate_project: Gate) -> None:
    shorten(gate_project, extra="workers = 2")
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.ret == 0, res.output
    assert res.metric("performance.requests_count")["value"] >= 20
    log = Path(res.report["artifacts"]["locust_log"]).read_text() if res.report else ""
    assert "Traceback" not in log


def test_distributed_master_with_two_workers_on_loopback(gate_project: Gate) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shorten(gate_project, duration=5, extra=f"distributed = {{ expect_workers = 2, bind_port = {port} }}")
    gate = gate_project.start("--env", "staging", "-m", "gate and performance")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        def master_up() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(master_up, what="the locust master")
        logs = [gate_project.tmp / f"worker-{i}.log" for i in range(2)]
        for log in logs:  # what a remote machine runs: only locust, the locustfile comes from the master
            # Each worker gets its own temp dir, as on separate machines: Locust writes the downloaded
            # locustfile to $TMPDIR under the master's file name, and two workers sharing it race.
            own_tmp = log.with_suffix("")
            own_tmp.mkdir()
            with log.open("wb") as sink:
                workers.append(subprocess.Popen([sys.executable, "-m", "locust", "-f", "-", "--worker",
                                                 "--master-host", "127.0.0.1", "--master-port", str(port)],
                                                cwd=own_tmp, env=dict(os.environ, TMPDIR=str(own_tmp)),
                                                stdout=sink, stderr=subprocess.STDOUT))
        out, _ = gate.communicate(timeout=150)
        assert gate.returncode == 0, out + "".join(f"\n--- {log.name}\n{log.read_text()}" for log in logs)
        for w in workers:
            w.wait(timeout=30)  # workers stop when the master quits
    finally:
        if gate.poll() is None:
            gate.kill()
        for w in workers:
            if w.poll() is None:
                w.kill()
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    count = next(m for m in report["metrics"] if m["name"] == "performance.requests_count")
    assert count["value"] >= 20


#: counts, in every Locust process, the requests it made and those its reports to the master carried (shared with
#: bench/load_bench.py; its defaults: GET /health every 0.02 s per user, the counts in Locust's working directory)
COUNTING_LOCUSTFILE = Path(__file__).with_name("data") / "counting_locustfile.py"


def test_the_verdict_of_four_workers_counts_every_workers_requests(gate_project: Gate) -> None:
    """``workers = 4`` (Locust --processes 4): the request count the gate judges is the sum of what the four
    worker processes sent, by their own count (no latency verdict here)."""
    # no warm-up: its --reset-stats would drop what the workers sent before it
    shorten(gate_project, duration=3, min_requests=1, warmup=0,
            extra=f'locustfile = "{COUNTING_LOCUSTFILE}"\nworkers = 4')
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.report is not None, res.output
    workdir = gate_project.path / ".deploygate" / "performance"
    rows = [json.loads(f.read_text()) for f in sorted(workdir.glob("worker-counts-*.json"))]
    workers = [row for row in rows if row["role"] == "worker"]
    assert len(workers) == 4, (rows, res.output)
    made = sum(row["requests"] for row in workers)
    assert made > 0 and all(row["requests"] > 0 for row in workers), rows
    assert sum(row["reported"] for row in workers) == made  # every request reached the master in a report
    assert res.metric("performance.requests_count")["value"] == made, (rows, res.output)
    raw = json.loads(Path(res.report["artifacts"]["locust_json"]).read_text())
    assert sum(e["num_requests"] for e in raw) == made
    assert res.metric("performance.endpoint.requests_count", endpoint="GET /health")["value"] == made


def test_load_is_pinned_to_one_xdist_worker(gate_project: Gate) -> None:
    shorten(gate_project)
    res = gate_project.run("--env", "staging", "-m", "gate and (performance or smoke)", "-n", "2", "-v")
    assert res.ret == 0, res.output
    assert "LoadGroupScheduling" in res.stdout  # xdist_group("deploygate-load") is honoured
    assert res.report is not None and res.report["categories"]["performance"]["verdict"] == "PASS"


def test_distributed_master_fails_clearly_when_workers_do_not_join(gate_project: Gate) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shorten(gate_project, duration=5,
            extra=f"distributed = {{ expect_workers = 2, bind_port = {port}, max_wait_s = 5 }}")
    res = gate_project.run("--env", "staging", "-m", "gate and performance")
    assert res.ret == 1, res.output
    assert (f"FAILED test_performance.py::test_performance: performance: fewer than 2 Locust workers joined the "
            f"master at 127.0.0.1:{port} within 5 s (distributed.max_wait_s); no load was run") in res.stdout
    assert running_processes(LOCUST, str(gate_project.path)) == []
    # The live line says what the run is waiting for instead of counting load seconds past the duration.
    assert "load: starting, " in res.stdout and f"waiting for 2 Locust workers at 127.0.0.1:{port}" in res.stdout


# --------------------------------------------------------------------------------------------------
# a Locust process started ahead of its run (while pytest collects): it waits in the guard until released


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served: list[int]

    def do_GET(self) -> None:
        self.served[0] += 1
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _counting_server() -> Iterator[tuple[str, list[int]]]:
    """A loopback server that counts the requests it answered."""
    served = [0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Counting", (_Counting,), {"served": served}))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def _load_run(url: str, workdir: Path):  # type: ignore[no-untyped-def]
    from pytest_deploygate.config import AwsSpec, Environment, HttpSpec
    from pytest_deploygate.load import LocustRun
    from pytest_deploygate.sections import LoadTask, PerformanceSpec, SmokeSpec

    env = Environment(name="staging", service="svc", stage="s", base_url=url, frontend_url="", protected=False,
                      launch=None, aws=AwsSpec(), auth=None, tables=(), buckets=(), http=HttpSpec(), smoke=SmokeSpec())
    spec = PerformanceSpec(users=2, spawn_rate=2.0, duration_s=2.0, warmup_s=0.0, min_requests=1, abort_on_fail=False,
                           pacing_s=0.05, tasks=(LoadTask("root", path="/"),))
    return LocustRun(env, spec, workdir)


@pytest.mark.e2e
def test_a_prestarted_locust_sends_nothing_until_released_then_runs_the_whole_load(tmp_path: Path) -> None:
    from pytest_deploygate.thresholds import Policy

    with _counting_server() as (url, served):
        workdir = tmp_path / "performance"
        prestarted = _load_run(url, workdir).prestart()
        try:
            wait_for(lambda: waits_on_its_pipe(prestarted.pid), timeout=60, what="Locust waiting in the guard")
            time.sleep(0.5)
            assert prestarted.proc.poll() is None and served[0] == 0  # loaded, waiting: no user, no request
            assert not (workdir / "locust-staging.json").exists()
            released = time.monotonic()
            outcome = _load_run(url, workdir).run(Policy(None, ()), None, prestarted)
            ran = time.monotonic() - released
        finally:
            prestarted.discard()
    assert prestarted.done and outcome.exit_code == 0, outcome.log_tail
    result = outcome.result
    assert result is not None and result.failures == 0 and 0 < result.requests <= served[0], (result, served)
    # its run, duration and users started at the release: the whole 2 s of load came after it
    assert ran >= 2.0 and result.duration_s > 1.0
    assert "Traceback" not in outcome.log_tail and set(outcome.artifacts) >= {"locust_json", "locust_html"}


@pytest.mark.e2e
def test_a_prestarted_locust_that_is_never_released_is_ended(tmp_path: Path) -> None:
    """Discarded (the load test did not run): killed by its pid at once. Its pipe closed without a release
    (the gate is gone): it ends by itself, having sent nothing."""
    with _counting_server() as (url, served):
        discarded = _load_run(url, tmp_path / "a").prestart()
        wait_for(lambda: waits_on_its_pipe(discarded.pid), timeout=60, what="Locust waiting in the guard")
        discarded.discard()
        assert discarded.proc.returncode == -signal.SIGKILL and discarded.done
        orphan = _load_run(url, tmp_path / "b").prestart()
        try:
            wait_for(lambda: waits_on_its_pipe(orphan.pid), timeout=60, what="Locust waiting in the guard")
            orphan._close()  # what the gate's death does to the pipe
            assert orphan.proc.wait(timeout=30) == 0
        finally:
            orphan.discard()
        assert served[0] == 0


@pytest.mark.e2e
def test_a_locust_started_ahead_for_a_users_locustfile_leaves_the_last_runs_log(tmp_path: Path) -> None:
    """Started ahead for a user's locustfile and then not run, it leaves the last run's log as it was and
    removes the guard's copy it wrote (the same as for the generated locustfile)."""
    import dataclasses

    workdir = tmp_path / "performance"
    workdir.mkdir()
    log = workdir / "locust-staging.log"
    log.write_text("the last run's log\n")
    user_file = tmp_path / "my_locustfile.py"
    user_file.write_text("from locust import HttpUser, task\n\nclass U(HttpUser):\n    @task\n    def t(self):\n"
                         "        self.client.get('/')\n")
    with _counting_server() as (url, served):
        run = _load_run(url, workdir)
        run.spec = dataclasses.replace(run.spec, tasks=(), locustfile=str(user_file))
        prestarted = run.prestart()
        try:
            wait_for(lambda: waits_on_its_pipe(prestarted.pid), timeout=60, what="Locust waiting in the guard")
            assert log.read_text() == "the last run's log\n"
        finally:
            prestarted.discard()
    assert log.read_text() == "the last run's log\n" and served[0] == 0
    assert sorted(p.name for p in workdir.iterdir()) == ["locust-staging.log"]


@pytest.mark.e2e
def test_a_locust_started_ahead_with_another_interpreter_environment_is_not_released(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Python and gevent read as they start (PYTHON*, LD_*, GEVENT*) took effect before the release: a run
    whose values changed since gets a fresh Locust, and the waiting one is ended."""
    from pytest_deploygate.thresholds import Policy

    with _counting_server() as (url, served):
        workdir = tmp_path / "performance"
        prestarted = _load_run(url, workdir).prestart()
        try:
            wait_for(lambda: waits_on_its_pipe(prestarted.pid), timeout=60, what="Locust waiting in the guard")
            monkeypatch.setenv("PYTHONWARNINGS", "ignore::DeprecationWarning")
            outcome = _load_run(url, workdir).run(Policy(None, ()), None, prestarted)
        finally:
            prestarted.discard()
    assert prestarted.proc.returncode == -signal.SIGKILL, "the waiting Locust was released"
    assert outcome.exit_code == 0 and outcome.result is not None, outcome.log_tail
    assert 0 < outcome.result.requests <= served[0], (outcome.result, served)  # the fresh one's load


def test_a_release_the_waiting_process_does_not_read_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A release larger than the pipe's buffer waits for the process to read it: never longer than
    RELEASE_TIMEOUT_S. The process is then ended, and the run starts a fresh one."""
    from pytest_deploygate import load

    monkeypatch.setattr(load, "RELEASE_TIMEOUT_S", 0.5)
    read, write = os.pipe()
    stuck = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        waiting = load.Prestarted(stuck, write, Path("locustfile.py"), Path("."))
        started = time.monotonic()
        assert waiting.release(["--headless"], {"BIG": "x" * 1_000_000}) is False
        assert time.monotonic() - started < 10
        assert waiting.done and stuck.poll() == -signal.SIGKILL
    finally:
        os.close(read)
        if stuck.poll() is None:
            stuck.kill()
        stuck.wait()


def test_the_files_a_waiting_locust_reads_are_written_whole_and_only_when_changed(tmp_path: Path) -> None:
    """The guard's copy is imported by a Locust started ahead while the run prepares its own: it is never
    truncated under it (written to a new file, renamed over), and not written at all when unchanged."""
    from pytest_deploygate.load import write_if_changed

    target = tmp_path / "deploygate_guard.py"
    write_if_changed(target, "one\n")
    first = target.stat()
    write_if_changed(target, "one\n")
    assert target.stat().st_ino == first.st_ino and target.stat().st_mtime_ns == first.st_mtime_ns
    with open(target) as reader:  # what a reader opened before the change still reads whole
        write_if_changed(target, "two\n")
        assert reader.read() == "one\n"
    assert target.read_text() == "two\n" and target.stat().st_ino != first.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploygate_guard.py"]


def test_the_load_tests_markers_are_the_ones_matched_before_collection() -> None:
    """``-m`` is matched against LOAD_TEST_MARKS before collection (to start Locust ahead): they must be the
    load test's own."""
    from pytest_deploygate.load import LOAD_TEST_MARKS
    from pytest_deploygate.suites import test_performance as suite

    assert {mark.name for mark in suite.pytestmark} == LOAD_TEST_MARKS
    assert not getattr(suite.test_performance, "pytestmark", [])  # no marker of its own on the function


def test_a_deselected_load_test_leaves_no_prestarted_locust(gate_project: Gate) -> None:
    """The session starts Locust while pytest collects; deselected (here by --deselect, which the session
    cannot foresee), the load test never releases it, and the session ends it by its pid."""
    shorten(gate_project)
    (gate_project.path / "conftest.py").write_text(SEEN_AT_COLLECTION)
    res = gate_project.run("--env", "staging", "-m", "gate and (smoke or performance)", "--deselect",
                           "test_performance.py::test_performance")
    assert res.ret == 0, res.output
    assert "deselected" in res.stdout and res.report is not None and "performance" not in res.report["categories"]
    workdir = gate_project.path / ".deploygate" / "performance"
    seen = json.loads((gate_project.path / "seen.json").read_text())
    # it was started ahead (before the configuration was read, for the generated locustfile) ...
    assert seen["locust"] == 1 and "locust-staging.log.starting" in seen["files"], seen
    # ... ended by its pid, and what its start created is gone: the run had no load
    assert not workdir.exists() or list(workdir.iterdir()) == [], list(workdir.iterdir())
    assert running_processes(LOCUST, str(gate_project.path)) == []


#: a project conftest that notes, during collection, the Locust processes the session started and its files
SEEN_AT_COLLECTION = """
import json, os
from pathlib import Path

def pytest_collection_modifyitems(config, items):
    children = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        children += Path(f"/proc/{os.getpid()}/task/{task}/children").read_text().split()
    locust = sum(b"locust" in Path(f"/proc/{c}/cmdline").read_bytes() for c in children
                 if Path(f"/proc/{c}").exists())
    workdir = Path(config.rootpath) / ".deploygate" / "performance"
    files = sorted(p.name for p in workdir.iterdir()) if workdir.exists() else []
    Path(config.rootpath, "seen.json").write_text(json.dumps({"locust": locust, "files": files}))
"""
