"""The JSON gate report: environment, verdict, metrics with limits, categories, test counts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from ..run import GateRun, RunStart

SCHEMA_VERSION = 1


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _header(run: GateRun, version: str) -> dict[str, Any]:
    env = run.environment
    return {
        "schema": SCHEMA_VERSION,
        "plugin": {"name": "pytest-deploygate", "version": version},
        "run_id": run.run_id,
        "environment": {"name": env.name, "stage": env.stage, "protected": env.protected,
                        "base_url": env.base_url, "frontend_url": env.frontend_url},
    }


def build_report(run: GateRun, exitstatus: int, version: str) -> dict[str, Any]:
    """The report of a judged run. ``exitstatus`` is the process's final exit code (the report and the exit
    code always agree)."""
    assert run.verdict is not None
    verdict = run.verdict
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for _category, outcome, _reason in run.outcomes.values():
        counts[outcome] += 1
    finished = time.time()
    return {
        **_header(run, version),
        # an interrupted gate judged only part of the checks: it never lets a deployment through
        "verdict": "INTERRUPTED" if exitstatus == 2 else verdict.verdict,
        "partial_verdict": verdict.verdict if exitstatus == 2 else None,
        "blocks_promotion": verdict.failed or exitstatus != 0,
        "fail_on_warn": verdict.fail_on_warn,
        "fail_on_inconclusive": verdict.fail_on_inconclusive,
        "interrupted": exitstatus == 2,
        "exit_status": exitstatus,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(finished),
        "duration_s": round(finished - run.started_at, 3),
        "config": str(run.config_path),
        "thresholds": str(run.policy.path),
        "tests": counts,
        "categories": verdict.categories,
        "metrics": [m.to_dict() for m in verdict.metrics],
        "artifacts": dict(run.artifacts),
        "notes": list(run.notes),
        "findings": list(run.findings),
    }


def write_report(report: dict[str, Any], path: Path, secrets: Iterable[str], markdown: Path | None = None) -> None:
    """Write ``report`` to ``path`` atomically (and its Markdown summary to ``markdown``), every secret value
    redacted."""
    secrets = list(secrets)
    _write(path, redact(dumps(report), secrets) + "\n")
    if markdown is not None:
        from .markdown import render_markdown

        _write(markdown, redact(render_markdown(report), secrets))


def dumps(report: Mapping[str, Any]) -> str:
    """``report`` as JSON laid out for reading and diffing: a line per top-level key, and per item of a
    top-level list or dict (a metric, a finding, a category). Each line comes from json's C encoder:
    ``indent=`` switches to its pure-Python one, which cost ~8 µs per metric."""
    if not report or not all(isinstance(k, str) for k in report):
        return json.dumps(report, indent=2)
    lines = []
    for key, value in report.items():
        head = f"  {json.dumps(key)}: "
        if isinstance(value, list) and value:
            inner = ",\n".join(f"    {json.dumps(item)}" for item in value)
            lines.append(f"{head}[\n{inner}\n  ]")
        elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            inner = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{head}{{\n{inner}\n  }}")
        else:
            lines.append(head + json.dumps(value))
    return "{\n" + ",\n".join(lines) + "\n}"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_error_report(run: GateRun, version: str, exit_status: int = 4) -> None:
    """The report of a gate that could not run (unreachable environment: exit 4) or could not judge (an
    internal error: exit 3): verdict ERROR, no checks."""
    report = {
        **_header(run, version),
        "verdict": "ERROR",
        "blocks_promotion": True,
        "error": run.error,
        "interrupted": False,
        "exit_status": exit_status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(time.time()),
        "tests": {"passed": 0, "failed": 0, "skipped": 0},
        "categories": {},
        "metrics": [],
    }
    write_report(report, run.report_path, run.secrets, run.markdown_path)


#: the verdict of a report whose run has started and not finished (a run killed with SIGKILL leaves it so)
RUNNING = "RUNNING"


def write_status_report(start: RunStart, version: str, verdict: str, exit_status: int | None = None,
                        error: str | None = None, secrets: Iterable[str] = ()) -> None:
    """A report before or without a verdict: RUNNING at the start of a run (so an earlier run's report is
    never taken for this one's), INTERRUPTED or ERROR when the run ended before it could judge."""
    report = {
        "schema": SCHEMA_VERSION,
        "plugin": {"name": "pytest-deploygate", "version": version},
        "run_id": start.run_id,
        "environment": {"name": start.env_name},
        "verdict": verdict,
        "blocks_promotion": True,
        "interrupted": verdict == "INTERRUPTED",
        "exit_status": exit_status,
        "error": error,
        "started_at": _iso(start.started_at),
        "finished_at": None if verdict == RUNNING else _iso(time.time()),
        "tests": {"passed": 0, "failed": 0, "skipped": 0},
        "categories": {},
        "metrics": [],
    }
    write_report(report, start.report_path, secrets, None if verdict == RUNNING else start.markdown_path)
