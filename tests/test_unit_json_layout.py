"""The JSON report's text (pure, fast): the same content as json's own indented output, one line per
metric, finding and category, and a metric's dict is the dataclass's fields. No pytest run, no server."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pytest_deploygate.gate import MetricResult
from pytest_deploygate.report.json_report import dumps


def _result(i: int, interval: tuple[float, float] | None = None) -> MetricResult:
    return MetricResult(f"smoke.api{i}.latency_ms", f"smoke.api{i}.latency_ms{{path=/x}}", {"path": "/x"},
                        12.5 + i, "ms", "PASS", "> 3000", "fail if > 3000 ms", "suites/test_smoke.py::t", 20,
                        (1.0, 2.5), interval, None, "")


def test_metric_dict_is_every_field_with_plain_containers() -> None:
    result = _result(1, (76.41234, 99.1))
    expected = dataclasses.asdict(result) | {"labels": {"path": "/x"}, "values": [1.0, 2.5],
                                             "interval": [76.412, 99.1]}
    assert list(result.to_dict().items()) == list(expected.items())
    assert _result(2).to_dict()["interval"] is None


def test_report_text_has_the_content_of_indented_json_one_line_per_item() -> None:
    report: dict[str, Any] = {
        "schema": 1, "plugin": {"name": "pytest-deploygate", "version": "0"}, "verdict": "PASS",
        "partial_verdict": None, "duration_s": 1.25, "tests": {"passed": 2, "failed": 0, "skipped": 0},
        "categories": {"smoke": {"verdict": "PASS", "failed_tests": [{"nodeid": "a", "reason": "b\n\"c\""}]}},
        "metrics": [_result(i).to_dict() for i in range(3)], "artifacts": {}, "notes": [],
        "findings": [{"check": "bandit", "severity": "HIGH", "text": "é \u2028 ✓"}], "odd": {1: "int key"},
    }
    text = dumps(report)
    assert json.loads(text) == json.loads(json.dumps(report, indent=2))
    assert list(json.loads(text)) == list(report)  # key order kept
    lines = text.splitlines()
    for i in range(3):
        assert sum(f'"name": "smoke.api{i}.latency_ms"' in line for line in lines) == 1
    assert '    "smoke": {"verdict": "PASS", "failed_tests": [{"nodeid": "a", "reason": "b\\n\\"c\\""}]}' in lines
    assert '  "artifacts": {},' in lines and '  "notes": [],' in lines
    assert text.isascii()


def test_report_with_keys_json_would_rename_keeps_json_own_layout() -> None:
    assert json.loads(dumps({1: "x"})) == {"1": "x"}  # type: ignore[dict-item]
    assert dumps({}) == "{}"
