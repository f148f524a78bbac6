"""The project gates itself: its pinned dependency set through its own dependency audit (bench/self_audit.py).
The pip and setuptools a fresh venv bundles fail it; the upgraded ones pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from gatehelpers import REPO

pytestmark = pytest.mark.e2e


def _self_audit(tmp_path: Path, pins: dict[str, str]) -> tuple[int, dict[str, object], str]:
    requirements = tmp_path / "pins.txt"
    requirements.write_text("".join(f"{name}=={v}\n" for name, v in pins.items()))
    report = tmp_path / "self-audit.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "self_audit.py"), str(requirements)],
                          capture_output=True, text=True, timeout=240, check=False,
                          env={**os.environ, "DEPLOYGATE_SELF_AUDIT_REPORT": str(report),
                               "TMPDIR": str(tmp_path)})
    return done.returncode, json.loads(report.read_text()), done.stdout + done.stderr


def test_the_bundled_pip_and_setuptools_fail_the_self_audit_and_upgraded_ones_pass(tmp_path: Path) -> None:
    ours = {"requests": version("requests"), "boto3": version("boto3")}
    old, report, output = _self_audit(tmp_path, {**ours, "pip": "23.2.1", "setuptools": "65.5.0"})
    assert old == 1, output[-3000:]
    assert "GATE FAIL" in output
    found = " ".join(str(f["text"]) for f in report["findings"])  # type: ignore[attr-defined]
    for advisory in ("PYSEC-2023-228", "GHSA-4xh5-x5gv-qwph", "PYSEC-2022-43012", "GHSA-cx63-2mw6-8hw5",
                     "GHSA-5rjg-fvgr-3xxf"):
        assert advisory in found, found
    assert "pip 23.2.1" in found and "fixed in 23.3" in found and "setuptools 65.5.0" in found
    assert next(m for m in report["metrics"] if m["name"] == "security.audit.vulnerabilities_count")["value"] == 5  # type: ignore[attr-defined]

    new, report, output = _self_audit(tmp_path, {**ours, "pip": "26.3", "setuptools": "84.2.1"})
    assert new == 0, output[-3000:]
    assert "GATE PASS" in output and report["findings"] == []


def test_the_self_audit_pins_pip_and_setuptools_of_the_venv() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from self_audit import freeze
    finally:
        sys.path.remove(str(REPO / "bench"))
    pins = freeze().splitlines()
    assert any(p.startswith("pip==") for p in pins) and any(p.startswith("setuptools==") for p in pins)
    assert all("==" in p for p in pins), [p for p in pins if "==" not in p]  # pip-audit --no-deps needs pins
