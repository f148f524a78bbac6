"""Reports of a gate run. The session judges once and builds one :class:`~.model.GateReport`; every
renderer reads that model: the JSON file and Markdown (:mod:`.json_report`, :mod:`.markdown`), the
terminal (:mod:`.terminal`), the JUnit/Allure threshold cases (:mod:`.cases`, :mod:`.allure`), CloudWatch
and the webhook (:mod:`.publish`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from ..gate import Verdict
    from ..run import GateRun
    from .model import GateReport


def deliver(config: pytest.Config, run: GateRun, verdict: Verdict, exit_status: int, version: str) -> GateReport:
    """Build the report of a judged run and hand it to every renderer: the threshold cases (JUnit, Allure),
    the JSON report and Markdown, then CloudWatch and the webhook (which link to the written report);
    what publishing did is noted in the report, written again."""
    from .cases import log_threshold_cases
    from .json_report import write_report
    from .model import GateReport
    from .publish import publish

    settings = run.settings
    report = GateReport.of_verdict(run, verdict, exit_status, version).redacted(run.secrets)
    log_threshold_cases(config, report, settings.report_path.parent, run.secrets)
    write_report(report, settings.report_path, run.secrets, settings.markdown_path)
    notes = publish(report, run)
    if notes:
        report = report.with_notes(notes)
        write_report(report, settings.report_path, run.secrets, settings.markdown_path)
    return report


def rewrite_exit_status(report: GateReport, exit_status: int, run: GateRun) -> GateReport:
    """The report again, for a process whose exit status a later plugin changed."""
    from .json_report import write_report

    report = report.with_exit_status(exit_status)
    write_report(report, run.settings.report_path, run.secrets, run.settings.markdown_path)
    return report
