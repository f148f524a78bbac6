"""The report model: one value per gate run, built once, that every renderer reads — the JSON file, the
terminal summary, Markdown, the JUnit and Allure threshold cases, the webhook and CloudWatch.

A report read back from its JSON file (``deploygate report``) is the same model (:meth:`GateReport.from_dict`),
so Markdown rendered from a file and from a live run cannot differ."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..gate import FAIL, INCONCLUSIVE, INFO, NO_CHECKS, WARN, MetricResult

if TYPE_CHECKING:  # pragma: no cover
    from ..gate import Verdict
    from ..run import GateRun, RunStart

SCHEMA_VERSION = 1
#: the verdict of a report whose run has started and not finished (a run killed with SIGKILL leaves it so)
RUNNING = "RUNNING"
INTERRUPTED = "INTERRUPTED"
ERROR = "ERROR"
#: levels a reader is pointed at, each with its figure
NOTABLE = (FAIL, WARN, INCONCLUSIVE)


def iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts is not None else None


def _from_iso(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    import calendar

    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


@dataclass(frozen=True)
class GateReport:
    """What a gate run concluded, and on what."""

    run_id: str
    #: name, and once the configuration is known: stage, protected, base_url, frontend_url
    environment: Mapping[str, Any]
    #: PASS, WARN, FAIL, INCONCLUSIVE, NO CHECKS; INTERRUPTED, ERROR or RUNNING when the run did not judge
    verdict: str
    blocks_promotion: bool
    exit_status: int | None
    started_at: float
    finished_at: float | None = None
    plugin_version: str = ""
    #: the verdict of what was judged before an interruption
    partial_verdict: str | None = None
    interrupted: bool = False
    fail_on_warn: bool = False
    fail_on_inconclusive: bool = False
    error: str | None = None
    config: str | None = None
    thresholds: str | None = None
    #: test outcomes: passed, failed, skipped
    tests: Mapping[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0})
    categories: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metrics: tuple[MetricResult, ...] = ()
    artifacts: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    findings: tuple[Mapping[str, str], ...] = ()
    #: whether this report is a judged one (a verdict over checks), as opposed to a status
    judged: bool = False

    # ----------------------------------------------------------------------------------------------
    # builders

    @classmethod
    def of_verdict(cls, run: GateRun, verdict: Verdict, exit_status: int, version: str) -> GateReport:
        """The report of a judged run. ``exit_status`` is the process's final exit code (the report and the
        exit code always agree)."""
        settings, results = run.settings, run.results
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for _category, outcome, _reason in results.outcomes.values():
            counts[outcome] += 1
        interrupted = exit_status == 2
        return cls(
            run_id=settings.run_id, environment=_environment(run), plugin_version=version,
            # an interrupted gate judged only part of the checks: it never lets a deployment through
            verdict=INTERRUPTED if interrupted else verdict.verdict,
            partial_verdict=verdict.verdict if interrupted else None,
            blocks_promotion=verdict.failed or exit_status != 0,
            fail_on_warn=verdict.fail_on_warn, fail_on_inconclusive=verdict.fail_on_inconclusive,
            interrupted=interrupted, exit_status=exit_status,
            started_at=settings.started_at, finished_at=time.time(),
            config=str(settings.config_path), thresholds=str(settings.policy.path),
            tests=counts, categories=verdict.categories, metrics=tuple(verdict.metrics),
            artifacts=dict(results.artifacts), notes=tuple(results.notes),
            findings=tuple(results.findings), judged=True)

    @classmethod
    def of_error(cls, run: GateRun, error: str, exit_status: int, version: str) -> GateReport:
        """A gate that could not run (unreachable environment: exit 4) or could not judge (an internal
        error: exit 3): verdict ERROR, no checks."""
        return cls(run_id=run.run_id, environment=_environment(run), plugin_version=version, verdict=ERROR,
                   blocks_promotion=True, error=error, exit_status=exit_status,
                   started_at=run.settings.started_at, finished_at=time.time(),
                   config=str(run.settings.config_path), thresholds=str(run.policy.path),
                   notes=tuple(run.results.notes))

    @classmethod
    def of_status(cls, start: RunStart, version: str, verdict: str, exit_status: int | None = None,
                  error: str | None = None) -> GateReport:
        """A report before or without a verdict: RUNNING at the start of a run (so an earlier run's report
        is never taken for this one's), INTERRUPTED or ERROR when the run ended before it could judge."""
        return cls(run_id=start.run_id, environment={"name": start.env_name}, plugin_version=version,
                   verdict=verdict, blocks_promotion=True, interrupted=verdict == INTERRUPTED,
                   exit_status=exit_status, error=error, started_at=start.started_at,
                   finished_at=None if verdict == RUNNING else time.time())

    def with_exit_status(self, exit_status: int) -> GateReport:
        """The same report for a process that exits with ``exit_status`` (a plugin after the verdict
        changed it): a non-zero exit always blocks promotion."""
        return replace(self, exit_status=exit_status, blocks_promotion=self.blocks_promotion or exit_status != 0)

    def with_notes(self, notes: list[str]) -> GateReport:
        return replace(self, notes=(*self.notes, *(n for n in notes if n not in self.notes)))

    def redacted(self, secrets: frozenset[str]) -> GateReport:
        """This report with every secret value masked (a metric label, a note or a failure reason may carry
        one): every renderer then reads a clean model."""
        if not secrets:
            return self
        import json

        from ..redaction import redact, redact_value

        data = self.to_dict()
        text = json.dumps(data)
        if redact(text, secrets) == text:
            return self
        return replace(GateReport.from_dict(redact_value(data, secrets)), started_at=self.started_at,
                       finished_at=self.finished_at)

    # ----------------------------------------------------------------------------------------------
    # views the renderers share

    @property
    def env_name(self) -> str:
        return str(self.environment.get("name", "?"))

    @property
    def judged_verdict(self) -> str:
        """The verdict over the checks (the partial one of an interrupted run)."""
        return self.partial_verdict or self.verdict

    def blocks(self, level: str) -> bool:
        """Whether ``level`` (of the gate, a category or a metric) blocks promotion under this run's switches."""
        return (level in (FAIL, NO_CHECKS) or (self.fail_on_warn and level == WARN)
                or (self.fail_on_inconclusive and level == INCONCLUSIVE))

    def thresholds_judged(self) -> list[tuple[MetricResult, bool]]:
        """Every judged (non-INFO) metric, and whether it fails the gate."""
        return [(m, self.blocks(m.verdict)) for m in self.metrics if m.verdict != INFO]

    def notable(self) -> list[MetricResult]:
        """Metrics that failed, warned or could not be told, in that order."""
        return sorted((m for m in self.metrics if m.verdict in NOTABLE), key=lambda m: NOTABLE.index(m.verdict))

    def failed_tests(self) -> list[tuple[str, str]]:
        return [(f["nodeid"], f["reason"]) for c in self.categories.values() for f in c.get("failed_tests", ())]

    @property
    def duration_s(self) -> float | None:
        return round(self.finished_at - self.started_at, 3) if self.finished_at is not None else None

    # ----------------------------------------------------------------------------------------------
    # the JSON form (schema 1)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "plugin": {"name": "pytest-deploygate", "version": self.plugin_version},
            "run_id": self.run_id,
            "environment": dict(self.environment),
            "verdict": self.verdict,
        }
        if self.judged:
            d["partial_verdict"] = self.partial_verdict
        d["blocks_promotion"] = self.blocks_promotion
        if self.judged:
            d["fail_on_warn"] = self.fail_on_warn
            d["fail_on_inconclusive"] = self.fail_on_inconclusive
        else:
            d["error"] = self.error
        d["interrupted"] = self.interrupted
        d["exit_status"] = self.exit_status
        d["started_at"] = iso(self.started_at)
        d["finished_at"] = iso(self.finished_at)
        if self.judged:
            d["duration_s"] = self.duration_s
        if self.config is not None:
            d["config"] = self.config
            d["thresholds"] = self.thresholds
        d["tests"] = dict(self.tests)
        d["categories"] = {k: dict(v) for k, v in self.categories.items()}
        d["metrics"] = [m.to_dict() for m in self.metrics]
        if self.judged or self.notes:
            d["artifacts"] = dict(self.artifacts)
            d["notes"] = list(self.notes)
            d["findings"] = [dict(f) for f in self.findings]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateReport:
        """A report read back from its JSON file (tolerant: a field it lacks takes its default)."""
        env = d.get("environment")
        started = _from_iso(d.get("started_at")) or 0.0
        metrics = []
        for m in d.get("metrics") or ():
            m = dict(m)
            m["values"] = tuple(m.get("values") or ())
            if m.get("interval") is not None:
                m["interval"] = tuple(m["interval"])
            metrics.append(MetricResult(**m))
        return cls(
            run_id=str(d.get("run_id", "")),
            environment=env if isinstance(env, Mapping) else {"name": str(env)},
            plugin_version=str((d.get("plugin") or {}).get("version", "")),
            verdict=str(d.get("verdict", "?")), partial_verdict=d.get("partial_verdict"),
            blocks_promotion=bool(d.get("blocks_promotion", True)), exit_status=d.get("exit_status"),
            fail_on_warn=bool(d.get("fail_on_warn", False)),
            fail_on_inconclusive=bool(d.get("fail_on_inconclusive", False)),
            interrupted=bool(d.get("interrupted", False)), error=d.get("error"),
            started_at=started, finished_at=_from_iso(d.get("finished_at")),
            config=d.get("config"), thresholds=d.get("thresholds"),
            tests=d.get("tests") or {"passed": 0, "failed": 0, "skipped": 0},
            categories=d.get("categories") or {}, metrics=tuple(metrics),
            artifacts=d.get("artifacts") or {}, notes=tuple(d.get("notes") or ()),
            findings=tuple(d.get("findings") or ()), judged="duration_s" in d)


def _environment(run: GateRun) -> dict[str, Any]:
    env = run.environment
    return {"name": env.name, "stage": env.stage, "protected": env.protected,
            "base_url": env.base_url, "frontend_url": env.frontend_url}


__all__ = ["ERROR", "INTERRUPTED", "NOTABLE", "RUNNING", "SCHEMA_VERSION", "GateReport", "iso"]
