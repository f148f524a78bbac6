"""The gate as test cases: the verdict (``deploygate::gate::verdict``, failed exactly when the run blocks
promotion) and every judged threshold (``deploygate::gate::<metric key>``), through
``pytest_runtest_logreport`` (JUnit, xdist, the terminal) and through Allure's reporter (Allure).

What a JUnit viewer shows of a case is its name, its failure message and its properties (system-out only with
``junit_logging``): a threshold that is not a plain PASS carries its level and figure in its name
(``smoke.health.latency_ms{path=/health} [WARN 1500 ms > 1000 ms]``), so a WARN that does not block reads as
"passed" and "WARN" at a glance; every threshold carries its value, limit, headroom and sample size as
properties, formatted as everywhere else (:func:`~pytest_deploygate.gate.format_value`). Cases that fail or warn
come first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..gate import FAIL, INCONCLUSIVE, PASS, WARN, MetricResult, format_value
from ..run import THRESHOLD_PREFIX, VERDICT_NODEID
from .model import GateReport, headroom, headroom_text


def log_threshold_cases(config: pytest.Config, report: GateReport, report_dir: Path | None = None,
                        secrets: frozenset[str] = frozenset()) -> None:
    """Hand the verdict and every judged threshold to the reporters as test cases, failed when they block
    promotion (``report_dir``: where artifacts recorded relative to it are, for Allure's attachments)."""
    allure_dir = getattr(config.option, "allure_report_dir", None)
    if allure_dir:
        from .allure import report_gate

        report_gate(report, allure_dir, report_dir, secrets)
    _log(config, verdict_nodeid(report), "verdict", ("gate", 1), failed=report.blocks_promotion,
         message=verdict_message(report), out=verdict_message(report) + "\n" + report.counts_line(),
         properties=verdict_properties(report))
    for result, failed in report.ordered_thresholds():
        _log(config, threshold_nodeid(result), f"gate::{result.key}", (result.category, 1), failed=failed,
             message=threshold_message(result, failed, report), out=result.judged,
             properties=threshold_properties(result))


def _log(config: pytest.Config, nodeid: str, domain: str, keyword: tuple[str, int], *, failed: bool, message: str,
         out: str, properties: list[tuple[str, object]]) -> None:
    common: dict[str, Any] = {"nodeid": nodeid, "location": ("deploygate", None, domain),
                              "keywords": {"gate": 1, keyword[0]: keyword[1]}, "duration": 0.0}
    config.hook.pytest_runtest_logreport(report=pytest.TestReport(
        **common, outcome="failed" if failed else "passed", longrepr=message if failed else None, when="call",
        sections=[]))
    # JUnit writes a case's properties (and system-out, with junit_logging) from its teardown report
    config.hook.pytest_runtest_logreport(report=pytest.TestReport(
        **common, outcome="passed", longrepr=None, when="teardown",
        sections=[("Captured stdout teardown", out + "\n")], user_properties=properties))


def marker(result: MetricResult) -> str:
    """``[WARN 1500 ms > 1000 ms]`` for a threshold that is not a plain PASS (empty for a PASS)."""
    if result.verdict == PASS:
        return ""
    value = format_value(result.value, result.unit)
    if result.verdict == INCONCLUSIVE:
        n = f", n = {result.samples}" if result.samples is not None else ""
        return f"[INCONCLUSIVE {value}{n}, cannot tell against {result.limit}]"
    return f"[{result.verdict} {value} {result.limit}]".replace("  ", " ")


def threshold_nodeid(result: MetricResult) -> str:
    mark = marker(result)
    return f"{THRESHOLD_PREFIX}{result.key}" + (f" {mark}" if mark else "")


def verdict_nodeid(report: GateReport) -> str:
    """``deploygate::gate::verdict [GATE WARN, blocks promotion: no]``."""
    return f"{VERDICT_NODEID} [GATE {report.headline}, blocks promotion: {report.blocks_word}]"


def verdict_message(report: GateReport) -> str:
    """``GATE WARN — blocks promotion: no (1 threshold warned; ...)``: the verdict case's message."""
    return f"GATE {report.headline} — {report.promotion()}"


def threshold_message(result: MetricResult, failed: bool, report: GateReport) -> str:
    """``WARN: key = 1500 ms breaches warn level > 1000 ms; does not block promotion (...)``."""
    if result.verdict == PASS:
        return f"PASS: {result.key} = {headroom_text(result)}"
    if result.verdict in (WARN, FAIL):
        text = f"{result.verdict}: {result.breach}{result.evidence}"
    else:
        text = f"{result.verdict}: {result.key} = {format_value(result.value, result.unit)} cannot be told " \
               f"against {result.limit}{result.evidence}"
    if result.verdict == FAIL:
        return text
    if failed:
        return f"{text}; blocks promotion ({'--fail-on-warn' if result.verdict == WARN else '--fail-on-inconclusive'})"
    switch = "--fail-on-warn" if result.verdict == WARN else "--fail-on-inconclusive"
    return f"{text}; does not block promotion (it would with {switch})"


def threshold_properties(result: MetricResult) -> list[tuple[str, object]]:
    """The JUnit properties of a threshold case: its verdict, figure, limit, headroom and the sample behind it,
    each number as every report writes it."""
    props: list[tuple[str, object]] = [
        # the number as every report writes it (98.0, not 97.9605), its unit apart
        ("verdict", result.verdict), ("value", _number(result.value, result.unit)), ("unit", result.unit),
        ("limit", result.limit), ("threshold", result.threshold)]
    room = headroom(result)
    if room is not None:
        props.append(("headroom", f"{room:.0f} %" if room >= 0 else f"{-room:.0f} % over"))
    props.append(("figure", headroom_text(result)))
    if result.samples is not None:
        props.append(("samples", result.samples))
    if result.interval is not None:
        lo, hi = (format_value(v, result.unit) for v in result.interval)
        props.append(("interval", f"{lo} to {hi}"))
    if result.samples_needed is not None:
        props.append(("samples_needed", result.samples_needed))
    props.append(("judged", result.judged))
    return props


def _number(value: float, unit: str) -> str:
    text = format_value(value, unit)
    return text[: -len(unit) - 1] if unit and text.endswith(f" {unit}") else text


def verdict_properties(report: GateReport) -> list[tuple[str, object]]:
    """The verdict case's properties: the verdict, whether and why it blocks, the counts, where it ran and the
    artifacts (links relative to the report directory, or through ``report_url``: no local absolute path)."""
    props: list[tuple[str, object]] = [
        ("verdict", report.judged_verdict), ("blocks_promotion", report.blocks_word),
        ("promotion", report.promotion()), ("counts", report.counts_line()), ("environment", report.env_name),
        ("run_id", report.run_id), ("fail_on_warn", str(report.fail_on_warn).lower())]
    props += [(k, v) for k, v in report.metadata.items()]
    props += [(f"artifact:{name}", link) for name, link in report.links.items()]
    return props
