"""Every judged threshold as its own Allure test case, written through allure-pytest's own reporter.

allure-pytest follows collected items only, so the gate's synthetic threshold cases (which reach JUnit
through ``pytest_runtest_logreport``) would be missing from Allure. Here they are handed to Allure's
plugin manager (``report_result``), i.e. to the ``AllureFileLogger`` that ``--alluredir`` registered:
Allure's own model and file format, nothing home-made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..run import THRESHOLD_PREFIX

if TYPE_CHECKING:
    from .model import GateReport


def report_thresholds(report: GateReport) -> int:
    """Send one Allure test result per judged threshold; returns how many (0 without allure-pytest)."""
    try:
        import allure_commons
        from allure_commons.model2 import Label, Parameter, Status, StatusDetails, TestResult
        from allure_commons.utils import md5, now, uuid4
    except ImportError:
        return 0
    environment = report.env_name
    sent = 0
    stamp = now()
    for result, failed in report.thresholds_judged():
        case = TestResult(
            uuid=uuid4(), name=result.key, fullName=f"{THRESHOLD_PREFIX}{result.key}",
            historyId=md5("deploygate", environment, result.key), testCaseId=md5("deploygate", result.key),
            status=Status.FAILED if failed else Status.PASSED,
            statusDetails=StatusDetails(message=result.breach) if result.verdict != "PASS" else None,
            stage="finished", start=stamp, stop=stamp,
            description=result.judged,
            labels=[Label(name="parentSuite", value=f"deploygate gate: {environment}"),
                    Label(name="suite", value=result.category), Label(name="feature", value=result.category),
                    Label(name="tag", value=f"verdict:{result.verdict}"),
                    Label(name="framework", value="pytest-deploygate")],
            parameters=[Parameter(name="value", value=f"{result.value:g} {result.unit}".strip()),
                        Parameter(name="threshold", value=result.threshold)],
        )
        allure_commons.plugin_manager.hook.report_result(result=case)
        sent += 1
    return sent
