"""The reference deployment's life cycle: started once, stopped by pid, never orphaned; the
``deploygate`` command; what ``pytest --help`` / ``--fixtures`` tell a user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from gatehelpers import REPO, Gate, wait_for

pytestmark = pytest.mark.e2e  # every test here runs the deploygate command or pytest as a subprocess


def test_sigterm_mid_run_leaves_no_processes(gate_project: Gate) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate", faults="staging:slow")
    try:
        wait_for(lambda: len(gate_project.leftovers()) >= 6, what="the deployment to start")
        time.sleep(1.0)  # a slow health check is now in flight
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out  # pytest's "interrupted"
    wait_for(lambda: gate_project.leftovers() == [], timeout=30, what="demo processes to exit")


def test_killed_run_orphans_exit_by_themselves(gate_project: Gate) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate", faults="staging:slow")
    try:
        wait_for(lambda: len(gate_project.leftovers()) >= 6, what="the deployment to start")
        proc.kill()  # SIGKILL: no teardown runs at all
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: gate_project.leftovers() == [], timeout=30, what="orphans to notice and exit")


def test_demo_up_is_reused_by_the_plugin_and_demo_down_stops_it(gate_project: Gate) -> None:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    state = gate_project.path / ".deploygate" / "demo" / "demo.json"
    env = dict(os.environ)
    env.pop("DEPLOYGATE_DEMO_FAULTS", None)
    up = subprocess.Popen([deploygate, "demo", "up", "--fault", "prod:health-down"], cwd=gate_project.path,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(state.exists, what="demo up to write its state")
        info = json.loads(state.read_text())
        pids = [p for e in info["environments"].values() for p in (e["api_pid"], e["aws_pid"])]
        assert len(pids) == 6
        staging = info["environments"]["staging"]
        assert requests.get(staging["api_url"] + "/health", timeout=5).status_code == 200
        assert requests.get(info["environments"]["prod"]["api_url"] + "/health", timeout=5).status_code == 503
        res = gate_project.run("--env", "staging", "-m", "gate")
        assert res.ret == 0, res.output
        assert "reusing the reference deployment started by pid" in res.stdout
        assert res.report is not None and res.report["environment"]["base_url"] == staging["api_url"]
        # the plugin does not stop what it did not start
        assert requests.get(staging["api_url"] + "/health", timeout=5).status_code == 200
        down = subprocess.run([deploygate, "demo", "down"], cwd=gate_project.path, capture_output=True,
                              text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        up.wait(timeout=30)
        assert up.returncode == 0
        for pid in pids:
            wait_for(lambda pid=pid: not _alive(pid), timeout=30, what=f"pid {pid} to exit")
        assert not state.exists()
    finally:
        if up.poll() is None:
            up.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_demo_up_refuses_unknown_faults() -> None:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    res = subprocess.run([deploygate, "demo", "up", "--fault", "staging:meltdown"], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 4
    assert "unknown fault 'meltdown'" in res.stderr and "Traceback" not in res.stderr


def test_check_config_reports_errors_with_location(tmp_path: Path) -> None:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    ok = subprocess.run([deploygate, "check-config"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "deploygate.toml: ok (dev, staging, prod)" in ok.stdout
    (tmp_path / "deploygate.toml").write_text('[environments.dev]\nbase_url = "http://x"\nprotected = "no"\n')
    bad = subprocess.run([deploygate, "check-config"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bad.returncode == 4
    assert "deploygate.toml:3: environments.dev.protected: expected a boolean, got 'no'" in bad.stderr


def test_help_and_fixtures_document_the_plugin(gate_project: Gate) -> None:
    res = gate_project.pytester.runpytest_subprocess("--help")
    out = res.stdout.str()
    for option in ("--env=NAME", "--gate-report=PATH", "--fail-on-warn", "--allow-writes", "--allow-load",
                   "--no-builtin-suites", "deploygate_env"):
        assert option in out, option
    res = gate_project.pytester.runpytest_subprocess("--fixtures", "--env", "staging", "--co")
    out = res.stdout.str()
    for fixture in ("deploy_env [session scope]", "api --", "frontend --", "aws [session scope]",
                    "peers [session scope]", "gate --", "http_client --"):
        assert fixture in out, fixture
    res = gate_project.pytester.runpytest_subprocess("--markers")
    for marker in ("@pytest.mark.gate", "@pytest.mark.smoke", "@pytest.mark.crud", "@pytest.mark.isolation",
                   "@pytest.mark.performance", "@pytest.mark.security", "@pytest.mark.destructive"):
        assert marker in res.stdout.str(), marker


# --------------------------------------------------------------------------------------------------
# the run's life cycle: nothing checked, invocation traps, interrupts before the verdict


def _stale_report(gate_project: Gate) -> Path:
    path = gate_project.path / ".deploygate" / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": "dg-earlier-run", "verdict": "PASS", "exit_status": 0}))
    return path


def test_no_checks_is_not_a_pass_and_launches_nothing(gate_project: Gate) -> None:
    stale = _stale_report(gate_project)
    proc = gate_project.start("--env", "staging", "-m", "nosuchmarker")
    seen: list[str] = []
    while proc.poll() is None:
        seen += gate_project.leftovers()
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 5, out
    assert seen == [] and "launched the reference deployment" not in out
    assert "GATE NO CHECKS (blocks promotion)" in out
    report = json.loads(stale.read_text())
    assert report["run_id"] != "dg-earlier-run"
    assert report["verdict"] == "NO CHECKS" and report["blocks_promotion"] is True and report["exit_status"] == 5
    assert list(gate_project.tmp.glob("deploygate-*")) == []


def test_gate_report_in_the_space_form_keeps_the_rootdir(gate_project: Gate, tmp_path: Path) -> None:
    logs = tmp_path / "var-log-gate"
    logs.mkdir()
    target = logs / "prod.json"
    for run in (1, 2):  # the README's cron line broke from its second run, once the file existed
        res = gate_project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "--env", "staging", "-m",
                                                         "nosuchmarker", "--gate-report", str(target))
        assert res.ret == 5, (run, res.stdout.str(), res.stderr.str())
        assert f"rootdir: {gate_project.path}" in res.stdout.str()
        report = json.loads(target.read_text())
        assert report["verdict"] == "NO CHECKS" and report["exit_status"] == 5
        assert report["config"] == str(gate_project.path / "deploygate.toml")


def test_the_repositorys_own_conftest_is_not_loaded_into_a_users_run(gate_project: Gate) -> None:
    gate_project.pytester.makeconftest("""
        import json

        def pytest_collection_finish(session):
            names = [getattr(p, "__file__", "") for p in session.config.pluginmanager.get_plugins()]
            with open("conftests.json", "w") as f:
                json.dump([n for n in names if n and n.endswith("conftest.py")], f)
    """)
    res = gate_project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "--env", "staging", "--co", "-q")
    assert res.ret == 0, res.stdout.str()
    assert "test_smoke.py::test_health" in res.stdout.str()  # the built-in suites are collected
    loaded = json.loads((gate_project.path / "conftests.json").read_text())
    assert loaded == [str(gate_project.path / "conftest.py")]
    assert not (REPO / "conftest.py").exists()


def _interrupt_when(gate_project: Gate, proc: subprocess.Popen[str], ready: Any, what: str) -> str:
    try:
        wait_for(ready, timeout=120, what=what)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def _running_id(gate_project: Gate) -> str:
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    return str(report["run_id"]) if report.get("verdict") == "RUNNING" else ""


def test_sigint_during_collection_writes_an_interrupted_report_of_this_run(gate_project: Gate) -> None:
    stale = _stale_report(gate_project)
    gate_project.pytester.makepyfile(test_slow_import="""
        import pathlib, time
        pathlib.Path("collecting").write_text("yes")
        time.sleep(120)

        def test_never():
            pass
    """)
    proc = gate_project.start("--env", "staging", "--no-builtin-suites", "test_slow_import.py")
    run_ids: list[str] = []
    out = _interrupt_when(gate_project, proc, lambda: (gate_project.path / "collecting").exists()
                          and run_ids.append(_running_id(gate_project)) is None, "collection to start")
    assert proc.returncode == 2, out
    report = json.loads(stale.read_text())
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2
    assert report["run_id"] == run_ids[-1] != "dg-earlier-run"
    assert gate_project.leftovers() == [] and list(gate_project.tmp.glob("deploygate-*")) == []


def test_sigint_during_launch_writes_an_interrupted_report_and_leaves_no_temp_dir(gate_project: Gate) -> None:
    stale = _stale_report(gate_project)
    proc = gate_project.start("--env", "staging", "-m", "gate and smoke")
    run_ids: list[str] = []

    def launching() -> bool:
        if list(gate_project.tmp.glob("deploygate-demo-*")):
            run_ids.append(_running_id(gate_project))
            return True
        return False

    out = _interrupt_when(gate_project, proc, launching, "the launch to start")
    assert proc.returncode == 2, out
    assert "passed" not in out.splitlines()[-1]
    report = json.loads(stale.read_text())
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2
    assert report["run_id"] == run_ids[0] != "dg-earlier-run"
    wait_for(lambda: gate_project.leftovers() == [], timeout=30, what="demo processes to exit")
    assert list(gate_project.tmp.glob("deploygate-*")) == []


def test_sigint_during_configure_writes_an_interrupted_report(gate_project: Gate) -> None:
    stale = _stale_report(gate_project)
    gate_project.pytester.makeconftest("""
        import pathlib, time
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            pathlib.Path("configuring").write_text("yes")
            time.sleep(120)
    """)
    proc = gate_project.start("--env", "staging", "-m", "gate")
    out = _interrupt_when(gate_project, proc, (gate_project.path / "configuring").exists, "configure")
    assert proc.returncode == 2, out
    report = json.loads(stale.read_text())
    assert report["verdict"] == "INTERRUPTED" and report["run_id"] != "dg-earlier-run"
