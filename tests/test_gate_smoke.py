"""The gate end to end with the smoke suite: real pytest runs against the real reference deployment, healthy
and faulty; each fault fails the check that names it, latency is judged by its thresholds, WARN passes
unless --fail-on-warn, xdist gives the same verdict. (Report formats: test_report_formats.py; a user's
own tests: test_user_tests.py.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gatehelpers import Gate


def test_healthy_staging_passes_with_a_full_report(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate")
    assert res.ret == 0, res.output
    assert "GATE PASS" in res.stdout
    assert "environment staging" in res.stdout
    report = res.report
    assert report is not None
    assert report["verdict"] == "PASS"
    assert report["blocks_promotion"] is False
    assert report["environment"]["name"] == "staging"
    assert report["environment"]["base_url"].startswith("http://127.0.0.1:")
    assert report["plugin"]["name"] == "pytest-deploygate" and report["plugin"]["version"]
    assert report["started_at"] <= report["finished_at"]
    assert report["tests"]["failed"] == 0 and report["tests"]["passed"] >= 9
    assert report["categories"]["smoke"]["verdict"] == "PASS"
    # 9 smoke checks and 12 resource probes; test_api_stage is deselected, not skipped (the reference deployment
    # declares no API Gateway stage: a built-in check with nothing to check is not shown)
    assert report["categories"]["smoke"]["tests"] == {"passed": 21, "failed": 0, "skipped": 0}
    assert "test_api_stage" not in res.stdout
    health = res.metric("smoke.health.latency_ms", path="/health")
    assert health["unit"] == "ms" and health["verdict"] == "PASS" and health["value"] > 0
    assert health["threshold"] == "warn > 1000 ms, fail > 3000 ms"
    assert res.metric("smoke.api.latency_ms", path="/api/stories")["verdict"] == "PASS"
    assert res.metric("smoke.frontend.missing_assets_count")["value"] == 0
    assert gate_project.leftovers() == []


FAULTS = [
    # fault, the check that must fail (test id or threshold), words its reason must contain
    ("health-down", "test_health[/health]", "answered 503, expected 200"),
    ("errors", "test_api_endpoint[/api/", "answered 500, expected 200"),
    ("wrong-config", "test_config_js", "apiEndpoint ="),
    ("frontend-broken", "test_frontend_assets", "vendor/chart.min.js (404)"),
]


@pytest.mark.parametrize(("fault", "check", "reason"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_fails_the_named_check(gate_project: Gate, fault: str, check: str, reason: str) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate", faults=f"staging:{fault}")
    assert res.ret == 1, res.output
    assert "GATE FAIL" in res.stdout
    assert res.report is not None and res.report["verdict"] == "FAIL"
    assert res.report["categories"]["smoke"]["verdict"] == "FAIL"
    failed = res.failed_tests()
    named = [nodeid for nodeid in failed if check in nodeid]
    assert named, f"{check} not among failed checks {list(failed)}"
    assert reason in failed[named[0]]
    # the terminal names the failing check and its reason too
    assert check in res.stdout and reason in res.stdout
    # only the faulty part fails: the other smoke checks still pass
    assert res.report["categories"]["smoke"]["tests"]["passed"] >= 7
    assert "Traceback" not in res.output


def test_slow_fails_on_latency_thresholds_although_every_test_passed(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and smoke", faults="staging:slow")
    assert res.ret == 1, res.output
    assert res.report is not None
    assert res.report["tests"]["failed"] == 0  # every check answered correctly, just too slowly
    health = res.metric("smoke.health.latency_ms", path="/health")
    assert health["verdict"] == "FAIL" and health["value"] > 3000 and health["limit"] == "> 3000 ms"
    assert res.report["verdict"] == "FAIL"
    assert "FAIL smoke.health.latency_ms{path=/health}" in res.stdout


def test_fault_in_another_environment_does_not_fail_this_one(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate", faults="prod:health-down,dev:frontend-broken")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["verdict"] == "PASS"


def test_xdist_gives_the_same_verdict(gate_project: Gate) -> None:
    policy = gate_project.generous_policy()  # a healthy verdict must not hang on how busy the machine is
    healthy = gate_project.run("--env", "staging", "-m", "gate", "-n", "2")
    assert healthy.ret == 0, healthy.output
    assert healthy.report is not None and healthy.report["verdict"] == "PASS"
    assert healthy.report["categories"]["smoke"]["tests"]["passed"] == 21  # 9 smoke checks, 12 resource probes
    # metrics recorded on workers reach the controller's verdict
    assert healthy.metric("smoke.health.latency_ms", path="/health")["verdict"] == "PASS"
    # the slow fault (3.5 s a request) sits far above this level, whatever the machine is doing
    policy.write_text(policy.read_text().replace('"smoke.health.latency_ms" = { fail = "> 60000" }',
                                                 '"smoke.health.latency_ms" = { fail = "> 1000" }'))
    slow = gate_project.run("--env", "staging", "-m", "gate and smoke", "-n", "2", faults="staging:slow")
    assert slow.ret == 1, slow.output
    assert slow.report is not None and slow.report["verdict"] == "FAIL"
    assert slow.metric("smoke.health.latency_ms", path="/health")["verdict"] == "FAIL"
    # launched once for the run, not once per worker: one set of processes, all gone afterwards
    assert "launched the reference deployment" in slow.stdout
    assert gate_project.leftovers() == []


def test_warn_passes_unless_fail_on_warn(gate_project: Gate) -> None:
    gate_project.pytester.makefile(".toml", thresholds="""
        [metrics]
        "smoke.health.latency_ms" = { warn = "> 0", fail = "> 60 s" }

        [environments.prod.metrics]
        "smoke.health.latency_ms" = { fail = "> 0" }
    """)
    warned = gate_project.run("--env", "staging", "-m", "gate", "--junitxml", "junit.xml")
    assert warned.ret == 0, warned.output
    assert warned.report is not None and warned.report["verdict"] == "WARN"
    assert warned.report["exit_status"] == 0
    assert warned.metric("smoke.health.latency_ms", path="/health")["verdict"] == "WARN"
    assert "GATE WARN" in warned.stdout
    # the WARN case in JUnit is not a plain green case: it carries its verdict and its figure
    root = ET.parse(gate_project.path / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if "smoke.health.latency_ms" in (c.get("name") or ""))
    props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
    assert props["verdict"] == "WARN" and float(props["value"]) > 0 and props["samples"] == "3"
    assert props["judged"].startswith("WARN: smoke.health.latency_ms{path=/health} = ")
    strict = gate_project.run("--env", "staging", "-m", "gate", "--fail-on-warn")
    assert strict.ret == 1
    assert strict.report is not None and strict.report["blocks_promotion"] is True
    assert strict.report["exit_status"] == 1  # the report says what the process exits with
    # the per-environment override makes prod stricter than staging
    prod = gate_project.run("--env", "prod", "-m", "gate and smoke")
    assert prod.ret == 1
    assert prod.metric("smoke.health.latency_ms", path="/health")["verdict"] == "FAIL"
