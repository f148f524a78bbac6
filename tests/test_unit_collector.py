"""The controller's collection of results (pure, fast): findings from test reports are kept once each, by
content, in the order first seen. No pytest run, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_deploygate.config import AwsSpec, Environment, HttpSpec, Project
from pytest_deploygate.run import FINDING_PROPERTY, GateRun, RunSettings, Target
from pytest_deploygate.sections import SmokeSpec
from pytest_deploygate.thresholds import Policy


def _run(tmp_path: Path) -> GateRun:
    env = Environment(name="staging", service="shop", stage="staging", base_url="https://s.example.test/api",
                      frontend_url="", protected=False, launch=None, aws=AwsSpec(), auth=None, tables=(),
                      buckets=(), http=HttpSpec(), smoke=SmokeSpec())
    project = Project(path=tmp_path / "deploygate.toml", service="shop", environments={"staging": env},
                      secrets=frozenset())
    settings = RunSettings(env_name="staging", env_source="--env", project=project, policy=Policy(tmp_path, ()),
                           config_path=project.path, report_path=tmp_path / "report.json")
    return GateRun(settings, Target(project))


def _teardown(nodeid: str, *findings: str) -> pytest.TestReport:
    return pytest.TestReport(nodeid=nodeid, location=("suites/test_security.py", 1, nodeid), keywords={"security": 1},
                             outcome="passed", longrepr=None, when="teardown",
                             user_properties=[(FINDING_PROPERTY, f) for f in findings])


def test_findings_are_kept_once_each_by_content_in_first_seen_order(tmp_path: Path) -> None:
    run = _run(tmp_path)
    collector = run.results
    high = {"check": "bandit", "severity": "HIGH", "text": "B602 shell=True in app.py:3"}
    low = {"check": "bandit", "severity": "LOW", "text": "B101 assert used"}
    same_high_other_order = json.dumps({"text": high["text"], "check": "bandit", "severity": "HIGH"})
    collector.collect(_teardown("t::a", json.dumps(high), json.dumps(low)), frozenset())
    collector.collect(_teardown("t::b", same_high_other_order, "not json", json.dumps(high)), frozenset())
    other_check = {**high, "check": "audit"}
    collector.collect(_teardown("t::c", json.dumps(other_check), json.dumps(low)), frozenset())
    assert run.results.findings == [high, low, other_check]


def test_many_findings_all_distinct_are_all_kept(tmp_path: Path) -> None:
    run = _run(tmp_path)
    collector = run.results
    findings = [json.dumps({"check": "bandit", "severity": "LOW", "text": f"B101 in m.py:{i}"}) for i in range(5000)]
    collector.collect(_teardown("t::scan", *findings, *findings[:500]), frozenset())
    assert [f["text"] for f in run.results.findings] == [f"B101 in m.py:{i}" for i in range(5000)]
