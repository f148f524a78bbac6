"""How a run is invoked: a selection with nothing in it is NO CHECKS (never a pass, no launch), --gate-report
in the space form keeps the rootdir, and the repository's own conftest is never loaded into a user's run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gatehelpers import REPO, Gate, stale_report

pytestmark = pytest.mark.e2e  # every test here runs pytest as a subprocess


def test_no_checks_is_not_a_pass_and_launches_nothing(gate_project: Gate) -> None:
    stale = stale_report(gate_project)
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
