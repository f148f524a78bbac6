"""The reference deployment's life cycle: started once, stopped by pid, never orphaned; ``deploygate demo
up/down``; its TTL sweeper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gatehelpers import REPO, Gate, RunningDemo, wait_for

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


def test_demo_expires_ttl_items(gate_project: Gate, running_demo: RunningDemo) -> None:
    api = running_demo.api("dev")
    expired = requests.post(api + "/api/stories", json={"title": "old", "ttl": int(time.time()) - 10}, timeout=5)
    fresh = requests.post(api + "/api/stories", json={"title": "new", "ttl": int(time.time()) + 3600}, timeout=5)
    assert expired.status_code == fresh.status_code == 201
    wait_for(lambda: requests.get(f"{api}/api/stories/{expired.json()['id']}", timeout=5).status_code == 404,
              timeout=45, what="the TTL sweeper")
    assert requests.get(f"{api}/api/stories/{fresh.json()['id']}", timeout=5).status_code == 200
