"""What a gate run writes for CI besides its JSON report, end to end: every threshold a JUnit and an Allure
test case (serial and with xdist), the Markdown summary, and ``deploygate report`` printing it from the
JSON report with the exit code of the verdict. (Rendering alone, fast: test_unit_reports.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gatehelpers import Gate


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
    thresholds = {r["fullName"].removeprefix("deploygate::gate::"): r for r in results
                  if r.get("fullName", "").startswith("deploygate::gate::")}
    breach = thresholds["smoke.frontend.missing_assets_count"]
    assert breach["name"] == "smoke.frontend.missing_assets_count [FAIL 1 > 0]"
    assert breach["status"] == "failed"
    assert "breaches fail level > 0" in breach["statusDetails"]["message"]
    labels = {(label["name"], label["value"]) for label in breach["labels"]}
    assert {("suite", "smoke"), ("parentSuite", "deploygate gate: staging"), ("tag", "verdict:FAIL")} <= labels
    verdict = thresholds["verdict"]
    assert verdict["status"] == "failed" and verdict["name"] == "verdict: GATE FAIL (blocks promotion: yes)"
    assert verdict["statusDetails"]["message"].startswith("GATE FAIL — blocks promotion: yes (1 check failed; ")
    passing = next(r for n, r in thresholds.items() if n.startswith("smoke.health.latency_ms"))
    assert passing["status"] == "passed" and passing["name"] == passing["fullName"].removeprefix("deploygate::gate::")
    # failed and warned first: distinct stamps, the verdict, then the breach, then the rest
    ordered = sorted(thresholds.values(), key=lambda r: r["start"])
    assert [r["status"] for r in ordered[:2]] == ["failed", "failed"] and ordered[0] is verdict
    assert len({r["start"] for r in ordered}) == len(ordered)
    # the checks themselves are there too (allure-pytest's own results), once each
    assert sum(1 for r in results if r["name"] == "test_frontend_assets") == 1


def test_markdown_summary_for_ci_and_the_report_command(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and smoke", "--gate-markdown", "out/summary.md",
                           faults="staging:frontend-broken")
    assert res.ret == 1, res.output
    summary = (gate_project.path / "out" / "summary.md").read_text()
    assert summary.startswith("## ❌ deploygate: staging — GATE FAIL")
    assert re.search(r"^\| smoke \| ❌ FAIL \| \d+/\d+( \(\d+ skipped\))? \| `smoke.frontend.missing_assets_count` ",
                     summary, re.M), summary
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
    assert ok.returncode == 0 and "GATE PASS · blocks promotion: no (every check and threshold passed)" in ok.stdout
    assert re.search(r"^\| smoke \| ✅ PASS \| (\d+)/\1( \(\d+ skipped\))? \|", ok.stdout, re.M), ok.stdout
    for bad, words in (("missing.json", "no gate report there"), ("deploygate.toml", "not a gate report")):
        err = subprocess.run([deploygate, "report", bad], cwd=gate_project.path, capture_output=True, text=True,
                             timeout=60)
        assert err.returncode == 2 and words in err.stderr and "Traceback" not in err.stderr, err.stderr
