"""Nothing a gate run writes stays behind: normal and failing runs remove their own records, and
``deploygate cleanup`` finds what a killed run left (in the table, or the API's list when the scan fails)
and refuses a protected environment without --allow-writes. (Interrupted runs: test_interrupts.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from gatehelpers import DEPLOYGATE, Gate, RunningDemo, wait_for

pytestmark = pytest.mark.e2e


def test_normal_and_failing_runs_leave_zero_records(gate_project: Gate, running_demo: RunningDemo) -> None:
    assert gate_project.run("--env", "staging", "-m", "gate").ret == 0
    assert gate_project.run("--env", "dev", "-m", "gate").ret == 0
    # a failing run: the isolation check fails on purpose (a stricter CORS policy than dev has)
    text = (gate_project.path / "deploygate.toml").read_text().replace(
        '[environments.dev.isolation]\ncors_origins = ["*"]', '[environments.dev.isolation]\ncors_origins = ["https://x"]')
    (gate_project.path / "deploygate.toml").write_text(text)
    assert gate_project.run("--env", "dev", "-m", "gate").ret == 1
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}


@pytest.mark.demo_faults("staging:slow")
def test_killed_run_leftovers_are_removed_by_cleanup(gate_project: Gate, running_demo: RunningDemo) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate and crud")
    try:
        # mid-CRUD: a record exists (each slow step takes 3.5 s), then the run dies without teardown
        wait_for(lambda: running_demo.gate_records()["staging"] > 0, timeout=180, what="a gate record in staging")
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = running_demo.gate_records()["staging"]
    assert left >= 1
    dry = subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging", "--dry-run"], cwd=gate_project.path,
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert f"staging: {left} leftover gate record(s) found, would remove {left}" in dry.stdout
    assert running_demo.gate_records()["staging"] == left  # dry run touched nothing
    done = subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging"], cwd=gate_project.path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"removed {left}" in done.stdout
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}


def _leftover(api: str, run_id: str = "dg-20260101T000000-c0ffee") -> str:
    """A record a crashed run left in the reference deployment's stories (created through its API)."""
    body: dict[str, Any] = {"title": f"deploygate probe {run_id}", "deploygateRun": run_id, "deploygateEnv": "staging",
            "deploygateCreatedAt": int(time.time()) - 3600}
    created = wait_for(lambda: (r := requests.post(api + "/api/stories", json=body, timeout=30)).status_code == 201
                       and r, timeout=30, what="a leftover record")
    return str(created.json()["id"])


def _cleanup(gate: Gate, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging", *args], cwd=gate.path, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.demo_faults("staging:errors")
def test_cleanup_uses_the_table_when_the_api_list_fails(gate_project: Gate, running_demo: RunningDemo) -> None:
    api = running_demo.api("staging")
    item_id = _leftover(api)
    # every second /api answer is a 500: after a good one, the next (cleanup's list) fails
    wait_for(lambda: requests.get(api + "/api/acceptance-tests", timeout=30).status_code == 200, timeout=30,
             what="a good answer")
    done = _cleanup(gate_project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "staging stories: the API list failed" in done.stdout and "answered 500" in done.stdout
    assert "searched the table instead" in done.stdout
    assert f"staging stories {item_id} run dg-20260101T000000-c0ffee (found in table)" in done.stdout
    assert "staging: 1 leftover gate record(s) found, removed 1" in done.stdout
    assert running_demo.gate_records()["staging"] == 0


def test_cleanup_uses_the_api_list_when_the_table_scan_fails(gate_project: Gate, running_demo: RunningDemo) -> None:
    item_id = _leftover(running_demo.api("staging"))
    path = gate_project.path / "deploygate.toml"
    text = path.read_text()
    assert 'table = "{service}-{stage}-stories"' in text
    path.write_text(text.replace('table = "{service}-{stage}-stories"', 'table = "{service}-{stage}-gone"'))
    done = _cleanup(gate_project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the scan of staging's table aipm-backend-staging-gone" in done.stdout
    assert "ResourceNotFoundException" in done.stdout and "searched the API list instead" in done.stdout
    assert f"staging stories {item_id} run dg-20260101T000000-c0ffee (found in api)" in done.stdout
    assert "removed 1" in done.stdout
    assert running_demo.gate_records()["staging"] == 0


@pytest.mark.demo_faults("staging:errors")
def test_cleanup_that_can_search_nowhere_fails_naming_both(gate_project: Gate, running_demo: RunningDemo) -> None:
    api = running_demo.api("staging")
    _leftover(api)
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace('table = "{service}-{stage}-stories"', 'table = "{service}-{stage}-gone"'))
    wait_for(lambda: requests.get(api + "/api/acceptance-tests", timeout=30).status_code == 200, timeout=30,
             what="a good answer")
    done = _cleanup(gate_project, "--dry-run")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "staging stories: cannot look for leftovers: the API list failed" in done.stderr
    assert "the scan of staging's table aipm-backend-staging-gone" in done.stderr


def test_cleanup_refuses_a_protected_environment_without_allow_writes(gate_project: Gate) -> None:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    demo = RunningDemo(gate_project, [])
    try:
        res = subprocess.run([deploygate, "cleanup", "--env", "prod"], cwd=gate_project.path, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 4
        assert "environment prod is protected: pass --allow-writes" in res.stderr
        dry = subprocess.run([deploygate, "cleanup", "--env", "prod", "--dry-run"], cwd=gate_project.path,
                             capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0 and "prod: 0 leftover gate record(s) found" in dry.stdout
    finally:
        demo.stop()
