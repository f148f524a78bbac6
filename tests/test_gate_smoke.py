"""The gate end to end: real pytest runs against the real reference deployment, healthy and faulty."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

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
    assert report["categories"]["smoke"]["tests"] == {"passed": 9, "failed": 0, "skipped": 0}
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
    assert healthy.report["categories"]["smoke"]["tests"]["passed"] == 9
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


def test_every_threshold_is_a_junit_test_case(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate", "--junitxml", "junit.xml",
                           faults="staging:frontend-broken")
    assert res.ret == 1
    root = ET.parse(gate_project.path / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    breach = [n for n in cases if n and "smoke.frontend.missing_assets_count" in n]
    assert breach, list(cases)
    assert cases[breach[0]].find("failure") is not None
    passing = [n for n in cases if n and "smoke.health.latency_ms" in n]
    assert passing and cases[passing[0]].find("failure") is None


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_every_threshold_is_an_allure_test_case(gate_project: Gate, workers: list[str]) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and smoke", "--alluredir", "allure", *workers,
                           faults="staging:frontend-broken")
    assert res.ret == 1, res.output
    results = [json.loads(p.read_text()) for p in (gate_project.path / "allure").glob("*-result.json")]
    thresholds = {r["name"]: r for r in results if r.get("fullName", "").startswith("deploygate::gate::")}
    breach = thresholds["smoke.frontend.missing_assets_count"]
    assert breach["status"] == "failed"
    assert "breaches fail level > 0" in breach["statusDetails"]["message"]
    labels = {(label["name"], label["value"]) for label in breach["labels"]}
    assert {("suite", "smoke"), ("parentSuite", "deploygate gate: staging"), ("tag", "verdict:FAIL")} <= labels
    passing = next(r for n, r in thresholds.items() if n.startswith("smoke.health.latency_ms"))
    assert passing["status"] == "passed"
    # the checks themselves are there too (allure-pytest's own results), once each
    assert sum(1 for r in results if r["name"] == "test_frontend_assets") == 1


def test_markdown_summary_for_ci_and_the_report_command(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and smoke", "--gate-markdown", "out/summary.md",
                           faults="staging:frontend-broken")
    assert res.ret == 1, res.output
    summary = (gate_project.path / "out" / "summary.md").read_text()
    assert summary.startswith("## ❌ deploygate: staging — GATE FAIL")
    assert "| smoke | ❌ FAIL | 8/9 | `smoke.frontend.missing_assets_count` " in summary
    assert "- `test_smoke.py::test_frontend_assets`: " in summary
    assert "- FAIL `smoke.frontend.missing_assets_count` " in summary
    # the same from the JSON report, by the command line; the exit code says it blocks promotion
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    printed = subprocess.run([deploygate, "report"], cwd=gate_project.path, capture_output=True, text=True,
                             timeout=60)
    assert printed.returncode == 1 and printed.stdout == summary, printed.stderr
    healthy = gate_project.run("--env", "staging", "-m", "gate and smoke")
    assert healthy.ret == 0, healthy.output
    ok = subprocess.run([deploygate, "report"], cwd=gate_project.path, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "GATE PASS" in ok.stdout and "| smoke | ✅ PASS | 9/9 |" in ok.stdout
    for bad, words in (("missing.json", "no gate report there"), ("deploygate.toml", "not a gate report")):
        err = subprocess.run([deploygate, "report", bad], cwd=gate_project.path, capture_output=True, text=True,
                             timeout=60)
        assert err.returncode == 2 and words in err.stderr and "Traceback" not in err.stderr, err.stderr


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


def test_user_tests_use_the_fixtures_and_extension_hooks(gate_project: Gate) -> None:
    gate_project.pytester.makeconftest("""
        import json

        def pytest_deploygate_metrics(config, environment, record):
            record("custom.queue_depth_count", 7, queue=environment.name)

        def pytest_deploygate_verdict(config, verdict, report):
            with open("verdict.json", "w") as f:
                json.dump({"verdict": verdict.verdict, "env": verdict.environment,
                           "report_verdict": report["verdict"]}, f)
    """)
    gate_project.pytester.makefile(".toml", thresholds="""
        [metrics]
        "custom.queue_depth_count" = { fail = "> 5" }
        "custom.roundtrip_ms" = { fail = "> 60000" }
    """)
    gate_project.pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.gate
        def test_stories_round_trip(deploy_env, api, gate, aws):
            with gate.timer("custom.roundtrip_ms", env=deploy_env.name):
                assert api.get("/api/stories").status_code == 200
            tables = aws.client("dynamodb").list_tables()["TableNames"]
            assert f"aipm-backend-{deploy_env.stage}-stories" in tables
    """)
    res = gate_project.run("--env", "staging", "-m", "gate", "--no-builtin-suites")
    assert res.report is not None
    assert res.report["tests"] == {"passed": 1, "failed": 0, "skipped": 0}
    assert res.metric("custom.roundtrip_ms", env="staging")["verdict"] == "PASS"
    queue = res.metric("custom.queue_depth_count", queue="staging")
    assert queue["verdict"] == "FAIL" and queue["value"] == 7
    assert res.ret == 1
    import json

    seen = json.loads((gate_project.path / "verdict.json").read_text())
    assert seen == {"verdict": "FAIL", "env": "staging", "report_verdict": "FAIL"}
