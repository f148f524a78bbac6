"""Hooks that users and other plugins implement to extend the gate (all prefixed ``pytest_deploygate_``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .config import Environment
    from .gate import Verdict


@pytest.hookspec
def pytest_deploygate_metrics(config: pytest.Config, environment: Environment,
                              record: Callable[..., Any]) -> None:
    """Record extra metrics to judge, on the controller, just before the verdict.

    ``record(name, value, unit=None, **labels)`` takes the same arguments as the ``gate`` fixture's
    ``record``; the metric is judged against ``thresholds.toml`` like every other one.

    Example (in a ``conftest.py``)::

        def pytest_deploygate_metrics(config, environment, record):
            import requests
            queue = requests.get(environment.base_url + "/queue-depth", timeout=5).json()
            record("custom.queue_depth_count", queue["depth"], queue="orders")

    with ``"custom.queue_depth_count" = { warn = "> 100", fail = "> 1000" }`` in thresholds.toml.
    """


@pytest.hookspec
def pytest_deploygate_verdict(config: pytest.Config, verdict: Verdict, report: dict[str, Any]) -> None:
    """Consume the final verdict, on the controller, after the JSON report is written.

    ``verdict.verdict`` is ``"PASS"``, ``"WARN"`` or ``"FAIL"``; ``verdict.failed`` says whether it
    blocks the deployment (WARN does with ``--fail-on-warn``); ``report`` is the JSON report as a dict
    (already redacted).

    Example (in a ``conftest.py``)::

        def pytest_deploygate_verdict(config, verdict, report):
            if verdict.failed:
                print(f"::error::deploy gate {verdict.verdict} for {verdict.environment}")
    """
