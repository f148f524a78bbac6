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

import requests

from gatehelpers import REPO, Gate, wait_for


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
