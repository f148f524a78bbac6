"""Unit tests of the dependency-audit parsers (pip-audit and safety JSON): no scanner run."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_deploygate.security.audit import parse_pip_audit, parse_safety

SAFETY_SAMPLE = Path(__file__).with_name("data") / "safety-check.json"


def test_safety_parser_on_a_recorded_report() -> None:
    result = parse_safety(json.loads(SAFETY_SAMPLE.read_text()))
    assert [v.describe() for v in result.vulnerabilities] == [
        "requests 2.19.0: SAFETY-36546 (CVE-2018-18074) HIGH; fixed in 2.20.0",
        "jinja2 2.10: SAFETY-36788 (CVE-2019-10906) UNKNOWN; fixed in 2.10.1",
    ]
    assert result.audited == 2


def test_pip_audit_skips_are_unaudited_not_clean() -> None:
    result = parse_pip_audit({"dependencies": [
        {"name": "requests", "version": "2.32.0", "vulns": []},
        {"name": "private-lib", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]})
    assert result.audited == 1
    assert result.unaudited == {"private-lib": "Dependency not found on PyPI and could not be audited"}
