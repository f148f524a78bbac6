"""Secrets never leave the run: reports (terminal, JUnit, xdist), log records and Allure results are
redacted before anything writes them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .run import GateRun


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (4 characters or more) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def redact_report(report: pytest.TestReport, secrets: frozenset[str]) -> None:
    """No secret reaches a report: terminal, JUnit, xdist and every other reporter read these fields."""
    if report.longrepr is not None:
        text = report.longreprtext
        clean = redact(text, secrets)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, redact(content, secrets)) for title, content in report.sections]
    report.user_properties = [(k, redact(v, secrets) if isinstance(v, str) else v)
                              for k, v in report.user_properties]


LOG_FACTORY_KEY = pytest.StashKey[Any]()


def redact_logging(config: pytest.Config, run: GateRun) -> None:
    """Every log record's message is redacted before any handler (pytest's capture, live logs) sees it."""
    previous = logging.getLogRecordFactory()
    config.stash[LOG_FACTORY_KEY] = previous

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        secrets = run.secrets
        if secrets:
            message = record.getMessage()
            clean = redact(message, secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)




def restore_logging(config: pytest.Config) -> None:
    factory = config.stash.get(LOG_FACTORY_KEY, None)
    if factory is not None:
        logging.setLogRecordFactory(factory)


def redact_allure_results(config: pytest.Config, secrets: frozenset[str]) -> None:
    """allure-pytest writes its result files itself: redact them in place once the run is over."""
    allure_dir = getattr(config.option, "allure_report_dir", None)
    if not allure_dir or not secrets:
        return
    for path in Path(allure_dir).glob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            clean = redact(text, secrets)
            if clean != text:
                path.write_text(clean)
