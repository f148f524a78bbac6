"""The worked examples (examples/: one deploygate.toml + thresholds.toml per seed stack shape) against the
reference deployment: each passes healthy as written, and faults of its stack fail the checks that name
them (000 AIPM: a degraded health answer, a missing Lambda function; 001 AI Lifestyle: a wrong LOG_LEVEL, a
peer pool's token accepted, an alarm firing; 004 Trinity: GraphQL errors, PITR off, prod promoted only after
a recent passing staging report)."""

from __future__ import annotations

import json
import shutil

import pytest

from gatehelpers import REPO, Gate

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"


def _use(gate: Gate, example: str) -> None:
    for name in ("deploygate.toml", "thresholds.toml"):
        shutil.copy(EXAMPLES / example / name, gate.path / name)


def _failed(res, check: str) -> str:  # type: ignore[no-untyped-def]
    """The reason of the one failed check whose id contains ``check``."""
    failed = res.failed_tests()
    named = [nodeid for nodeid in failed if check in nodeid]
    assert len(named) == 1, f"{check} not (once) among failed checks {list(failed)}"
    return str(failed[named[0]])


def test_every_example_has_its_files() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == ["000-aipm", "001-ai-lifestyle",
                                                                         "004-trinity"]
    for example in EXAMPLES.iterdir():
        if example.is_dir():
            assert (example / "deploygate.toml").is_file() and (example / "thresholds.toml").is_file()


@pytest.mark.parametrize("example", ["000-aipm", "001-ai-lifestyle"])
def test_example_passes_healthy(gate_project: Gate, example: str) -> None:
    _use(gate_project, example)
    res = gate_project.run("--env", "staging", "-m", "gate")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["verdict"] == "PASS"
    for category in ("smoke", "isolation", "performance"):
        assert res.report["categories"][category]["verdict"] == "PASS"
        assert res.report["categories"][category]["tests"]["failed"] == 0
    assert "judged nothing" not in " ".join(res.report["notes"])
    assert gate_project.leftovers() == []


def test_aipm_faults_fail_their_checks(gate_project: Gate) -> None:
    _use(gate_project, "000-aipm")
    res = gate_project.run("--env", "staging", "-m", "smoke",
                           faults="staging:health-degraded,staging:function-missing")
    assert res.ret == 1, res.output
    assert set(res.failed_tests()) == {"test_smoke.py::test_health[/health]",
                                       "test_resources.py::test_function[aipm-backend-staging-api]"}
    assert "checks.dynamodb = 'timeout', expected 'ok'" in _failed(res, "test_health[/health]")
    assert "does not exist" in _failed(res, "test_function[")


def test_ai_lifestyle_faults_fail_their_checks(gate_project: Gate) -> None:
    _use(gate_project, "001-ai-lifestyle")
    res = gate_project.run("--env", "staging", "-m", "smoke or isolation",
                           faults="staging:log-level-wrong,staging:foreign-token-accepted,staging:alarm-firing")
    assert res.ret == 1, res.output
    assert "LOG_LEVEL" in _failed(res, "test_function[")
    assert "dev" in _failed(res, "test_protected_endpoints_refuse_peer_pool_tokens")
    alarms = res.metric("smoke.monitoring.alarms_in_alarm_count")
    assert alarms["verdict"] == "FAIL" and alarms["value"] == 1
    # the rest of the example still passes: the health check, the pool, the log group
    assert not [n for n in res.failed_tests() if "test_health" in n or "test_user_pool" in n or "test_log_group" in n]


def test_trinity_passes_staging_then_promotes_prod(gate_project: Gate) -> None:
    _use(gate_project, "004-trinity")
    staging_report = gate_project.path / ".deploygate" / "staging-report.json"
    # prod first: no staging report yet, so its promotion cannot be checked (a failed gate)
    res = gate_project.run("--env", "prod", "-m", "smoke", "-k", "test_promotion or test_api_endpoint")
    assert res.ret == 1, res.output
    assert f"could not check: no gate report of staging at {staging_report}" in _failed(res, "test_promotion")
    assert res.metric("smoke.api.latency_ms", path="appsync", method="POST")["verdict"] == "PASS"  # a read on prod

    res = gate_project.run("--env", "staging", "-m", "gate", "--gate-report", str(staging_report))
    assert res.ret == 0, res.output
    staging = json.loads(staging_report.read_text())
    assert staging["verdict"] == "PASS" and staging["environment"]["name"] == "staging"
    assert "judged nothing" not in " ".join(staging["notes"])

    res = gate_project.run("--env", "prod", "-m", "gate")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["verdict"] == "PASS"
    assert any(note.startswith("staging passed ") for note in res.report["notes"])
    assert gate_project.leftovers() == []


def test_trinity_faults_fail_their_checks(gate_project: Gate) -> None:
    _use(gate_project, "004-trinity")
    res = gate_project.run("--env", "staging", "-m", "smoke", faults="staging:graphql-errors,staging:pitr-off")
    assert res.ret == 1, res.output
    assert set(res.failed_tests()) == {"test_smoke.py::test_api_endpoint[appsync]",
                                       "test_resources.py::test_table_options[aipm-backend-staging-stories]"}
    assert "the GraphQL answer carries errors: health resolver failed" in _failed(res, "test_api_endpoint[appsync]")
    assert "point-in-time recovery" in _failed(res, "test_table_options[")


def test_examples_are_valid_for_check_config() -> None:
    """``deploygate check-config`` accepts each example as written (no launch needed)."""
    from pytest_deploygate.config import load_gate, locate_files

    for example in ("000-aipm", "001-ai-lifestyle", "004-trinity"):
        files = locate_files(EXAMPLES / example)
        project, policies = load_gate(files, ["dev", "staging", "prod"])
        assert set(project.environments) == {"dev", "staging", "prod"}
        assert policies["prod"].thresholds
