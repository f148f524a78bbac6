"""The promotion precondition (issue 12): ``requires = { environment = "staging", max_age = "24h" }`` on an
environment (prod) makes its gate fail unless the latest gate report of ``staging`` passed within that age.

The report is a file: ``report = "…"`` (relative to the configuration's directory), by default
``.deploygate/<environment>-report.json`` — where the staging run writes it with
``pytest --env staging -m gate --gate-report .deploygate/staging-report.json``. (Not the default
``.deploygate/report.json``: every gate run, this prod run included, rewrites that file when it starts.)

A report that is missing, unreadable, of another environment or without a finishing time is *could not
check* (:class:`~pytest_deploygate.failures.Unverified`, naming the path); one that says staging did not
pass, has not finished, or passed too long ago is a finding. Pure: no pytest import.

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .failures import CheckFailure, Unverified
from .schema import Section, Where, build, key

__all__ = ["DEFAULT_REPORT", "RequiresSpec", "check_promotion", "parse_age"]

#: where a required environment's report is looked for by default (relative to the configuration's directory)
DEFAULT_REPORT = ".deploygate/{environment}-report.json"

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``"24h"`` → 86400.0 seconds (units s, m, h, d, w); ValueError says what is accepted."""
    m = _AGE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"max_age must be a positive duration with a unit, like \"24h\", \"90m\" or \"2d\" "
                         f"(s, m, h, d, w), got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def age_text(seconds: float) -> str:
    """``2h 5m`` for 7500 s: how old a report is, for a message."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


@dataclass(frozen=True)
class RequiresSpec(Section):
    """``requires``: the environment whose passing gate report this environment's promotion needs."""

    NOUN: ClassVar[str] = "requires"

    #: empty: no precondition
    environment: str = field(default="", metadata=key(str))
    max_age: str = field(default="24h", metadata=key(str))
    #: default: DEFAULT_REPORT for the environment
    report: str = field(default="", metadata=key(str))
    max_age_s: float = 86400.0

    @property
    def active(self) -> bool:
        return bool(self.environment)

    def report_path(self, root: Path) -> Path:
        path = Path(self.report or DEFAULT_REPORT.format(environment=self.environment))
        return path if path.is_absolute() else root / path

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> RequiresSpec:
        if not raw:
            return cls()
        if not raw.get("environment"):
            raise where.error("requires needs 'environment' (whose passing gate report this environment's "
                              "promotion needs)")
        try:
            max_age_s = parse_age(raw.get("max_age", cls.max_age))
        except ValueError as exc:
            raise where.error(str(exc), "max_age") from None
        return build(cls, raw, where, max_age_s=max_age_s)


def check_promotion(requires: RequiresSpec, root: Path, now: float | None = None) -> str:
    """Check the precondition: the message saying it holds, or raise :class:`CheckFailure` (the required
    environment did not pass, or too long ago) or :class:`Unverified` (its report cannot tell)."""
    path = requires.report_path(root)
    env = requires.environment
    how = f"run {env}'s gate with --gate-report {path}, or point requires.report at its report"
    if not path.is_file():
        raise Unverified(f"promotion precondition: could not check: no gate report of {env} at {path} ({how})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Unverified(f"promotion precondition: could not check: the gate report {path} cannot be read "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise Unverified(f"promotion precondition: could not check: {path} is not a gate report")
    environment = data.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else None
    if name != env:
        raise Unverified(f"promotion precondition: could not check: the report {path} is of environment "
                         f"{name!r}, not {env!r} ({how})")
    verdict = str(data.get("verdict", "?"))
    run = data.get("run_id", "?")
    from .report.model import from_iso  # the report's own time format, read back the way it writes it

    finished = from_iso(data.get("finished_at"))
    if verdict == "RUNNING" or (finished is None and data.get("finished_at") is None):
        raise CheckFailure(f"promotion precondition: {env}'s latest gate (run {run}, {path}) has not finished "
                           f"(verdict {verdict}): {env} must pass first")
    if finished is None:
        raise Unverified(f"promotion precondition: could not check: {path} has no readable finished_at "
                         f"({data.get('finished_at')!r})")
    if data.get("blocks_promotion", True) or verdict not in ("PASS", "WARN"):
        raise CheckFailure(f"promotion precondition: {env}'s latest gate did not pass: verdict {verdict} "
                           f"(run {run}, finished {data.get('finished_at')}, {path})")
    age = (time.time() if now is None else now) - finished
    if age > requires.max_age_s:
        raise CheckFailure(f"promotion precondition: {env}'s latest passing gate is {age_text(age)} old "
                           f"(finished {data.get('finished_at')}, run {run}), older than max_age "
                           f"{requires.max_age} ({path})")
    return (f"{env} passed {age_text(age)} ago (verdict {verdict}, run {run}, finished "
            f"{data.get('finished_at')}; max_age {requires.max_age})")
