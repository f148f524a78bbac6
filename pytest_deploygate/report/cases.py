"""Every judged threshold as its own test case, named ``deploygate::gate::<metric key>``: through
``pytest_runtest_logreport`` (JUnit, xdist, the terminal) and through Allure's reporter (Allure)."""

from __future__ import annotations

from typing import Any

import pytest

from ..gate import MetricResult
from ..run import THRESHOLD_PREFIX
from .model import GateReport


def log_threshold_cases(config: pytest.Config, report: GateReport) -> None:
    """Hand every judged threshold to the reporters as a test case, failed when it blocks promotion."""
    if getattr(config.option, "allure_report_dir", None):
        from .allure import report_thresholds

        report_thresholds(report)
    for result, failed in report.thresholds_judged():
        common: dict[str, Any] = {
            "nodeid": f"{THRESHOLD_PREFIX}{result.key}", "location": ("deploygate", None, f"gate::{result.key}"),
            "keywords": {"gate": 1, result.category: 1}, "duration": 0.0,
        }
        config.hook.pytest_runtest_logreport(report=pytest.TestReport(
            **common, outcome="failed" if failed else "passed", longrepr=result.breach if failed else None,
            when="call", sections=[]))
        # JUnit writes a case's properties (and system-out, with junit_logging) from its teardown report: a
        # WARN or INCONCLUSIVE case carries its verdict and figure, it does not look like a plain green case.
        config.hook.pytest_runtest_logreport(report=pytest.TestReport(
            **common, outcome="passed", longrepr=None, when="teardown",
            sections=[("Captured stdout teardown", result.judged + "\n")],
            user_properties=threshold_properties(result)))


def threshold_properties(result: MetricResult) -> list[tuple[str, object]]:
    """The JUnit properties of a threshold case: its verdict, figure, limit and the sample behind it."""
    props: list[tuple[str, object]] = [
        ("verdict", result.verdict), ("value", f"{result.value:g}"), ("unit", result.unit),
        ("threshold", result.threshold), ("limit", result.limit), ("judged", result.judged)]
    if result.samples is not None:
        props.append(("samples", result.samples))
    if result.interval is not None:
        props.append(("interval", f"{result.interval[0]:.2f} to {result.interval[1]:.2f} {result.unit}".strip()))
    if result.samples_needed is not None:
        props.append(("samples_needed", result.samples_needed))
    return props
