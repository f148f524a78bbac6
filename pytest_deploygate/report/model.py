"""The report model: one value per gate run, built once, that every renderer reads — the JSON file, the
terminal summary, Markdown, the JUnit and Allure threshold cases, the webhook and CloudWatch.

A report read back from its JSON file (``deploygate report``) is the same model (:meth:`GateReport.from_dict`),
so Markdown rendered from a file and from a live run cannot differ."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..gate import FAIL, INCONCLUSIVE, INFO, NO_CHECKS, PASS, WARN, MetricResult, format_value

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


def from_iso(text: Any) -> float | None:
    """A time as :func:`iso` writes it, back as seconds since the epoch (None when it is not one)."""
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
    #: this report's JSON text, secrets masked, when :meth:`redacted` already built it (the report file is
    #: then written without serialising and redacting it a second time); never copied by ``replace``
    json_text: str | None = field(default=None, init=False, repr=False, compare=False)
    #: where and what was gated: commit, CI job link, target URL, deployed version (see :mod:`.metadata`)
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: artifact name -> its link: relative to the report directory, or through ``[report] report_url``
    links: Mapping[str, str] = field(default_factory=dict)

    # ----------------------------------------------------------------------------------------------
    # builders

    @classmethod
    def of_verdict(cls, run: GateRun, verdict: Verdict, exit_status: int, version: str,
                   environ: Mapping[str, str] | None = None) -> GateReport:
        """The report of a judged run. ``exit_status`` is the process's final exit code (the report and the
        exit code always agree). ``environ``: where the CI variables are read (``os.environ``)."""
        from .metadata import artifact_links, collect_metadata, resolve

        settings, results = run.settings, run.results
        base = settings.report_path.parent
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
            # recorded relative to the report directory (JUnit holds no local absolute path); the JSON names files
            artifacts={name: str(resolve(path, base)) for name, path in results.artifacts.items()},
            notes=tuple(results.notes),
            findings=tuple(results.findings), judged=True, metadata=collect_metadata(run, environ),
            links=artifact_links(run, results.artifacts, environ))

    @classmethod
    def of_error(cls, run: GateRun, error: str, exit_status: int, version: str) -> GateReport:
        """A gate that could not run (unreachable environment: exit 4) or could not judge (an internal
        error: exit 3): verdict ERROR, no checks."""
        from .metadata import collect_metadata

        return cls(run_id=run.run_id, environment=_environment(run), plugin_version=version, verdict=ERROR,
                   blocks_promotion=True, error=error, exit_status=exit_status,
                   started_at=run.settings.started_at, finished_at=time.time(),
                   config=str(run.settings.config_path), thresholds=str(run.policy.path),
                   notes=tuple(run.results.notes), metadata=collect_metadata(run, fetch_version=False))

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
        one): every renderer then reads a clean model. Its JSON text, masked, is kept for the report file."""
        if not secrets:
            return self
        from ..redaction import redact, redact_value

        text = self.json()
        masked = redact(text, secrets)
        clean = self
        if masked != text:
            clean = replace(GateReport.from_dict(redact_value(self.to_dict(), secrets)), started_at=self.started_at,
                            finished_at=self.finished_at)
        object.__setattr__(clean, "json_text", masked)
        return clean

    # ----------------------------------------------------------------------------------------------
    # views the renderers share

    @property
    def env_name(self) -> str:
        return str(self.environment.get("name", "?"))

    @property
    def judged_verdict(self) -> str:
        """The verdict over the checks (the partial one of an interrupted run)."""
        return self.partial_verdict or self.verdict

    @property
    def headline(self) -> str:
        """The verdict as a case name or a report title says it: ``WARN``, or ``INTERRUPTED (partial verdict
        PASS)`` for an interrupted run (never a bare PASS: an interrupted gate never lets a deployment through)."""
        return f"INTERRUPTED (partial verdict {self.judged_verdict})" if self.interrupted else self.judged_verdict

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

    def ordered_thresholds(self) -> list[tuple[MetricResult, bool]]:
        """:meth:`thresholds_judged` with what blocks first, then FAIL, WARN, INCONCLUSIVE and PASS (stable
        within a level): the order of the JUnit and Allure threshold cases."""
        rank = {FAIL: 0, WARN: 1, INCONCLUSIVE: 2}
        return sorted(self.thresholds_judged(), key=lambda mf: (not mf[1], rank.get(mf[0].verdict, 3)))

    def threshold_counts(self) -> dict[str, int]:
        """Judged thresholds by outcome: passed, warned, failed, inconclusive (could not tell)."""
        counts = {"passed": 0, "warned": 0, "failed": 0, "inconclusive": 0}
        word = {PASS: "passed", WARN: "warned", FAIL: "failed", INCONCLUSIVE: "inconclusive"}
        for m in self.metrics:
            if m.verdict in word:
                counts[word[m.verdict]] += 1
        return counts

    def counts_line(self) -> str:
        """``checks: 24 passed, 1 failed · thresholds: 40 passed, 1 warned, 2 failed``: checks (tests) and
        thresholds counted apart, said the same way in the terminal, Markdown, JUnit, Allure and the JSON."""
        checks = _said(self.tests, ("passed", "failed", "skipped"))
        thresholds = _said(self.threshold_counts(), ("passed", "warned", "failed", "inconclusive"))
        return f"checks: {checks} · thresholds: {thresholds}"

    @property
    def blocks_word(self) -> str:
        return "yes" if self.blocks_promotion else "no"

    def promotion(self) -> str:
        """``blocks promotion: yes (2 thresholds failed, 1 check failed)``: the answer a reviewer wants, and
        why; a WARN says whether ``--fail-on-warn`` made it block."""
        return f"blocks promotion: {self.blocks_word} ({self.promotion_reason()})"

    def promotion_reason(self) -> str:
        t, c = self.threshold_counts(), self.tests
        if self.verdict == ERROR:
            return "the gate could not run"  # why: the report's error
        if self.verdict == RUNNING:
            return "the run has not finished"
        if self.interrupted or self.verdict == INTERRUPTED:
            return "the run was interrupted" + (f"; partial verdict {self.partial_verdict}"
                                                if self.partial_verdict else "")
        if self.verdict == NO_CHECKS:
            return "nothing was checked"
        blocking = []
        if c.get("failed"):
            blocking.append(_n(c["failed"], "check") + " failed")
        if t["failed"]:
            blocking.append(_n(t["failed"], "threshold") + " failed")
        others = []
        for count, word, flag, switch in ((t["warned"], "warned", self.fail_on_warn, "--fail-on-warn"),
                                          (t["inconclusive"], "could not be told", self.fail_on_inconclusive,
                                           "--fail-on-inconclusive")):
            if not count:
                continue
            said = f"{_n(count, 'threshold')} {word}"
            if flag:
                blocking.append(f"{said}, and {switch} makes that block")
            elif blocking:
                others.append(said)
            else:
                others.append(f"{said}, which blocks only with {switch}")
        parts = blocking + others
        if not parts:
            parts.append("every check and threshold passed")
        if self.blocks_promotion and not blocking and self.exit_status:
            parts.append(f"pytest exit status {self.exit_status}")
        return "; ".join(parts)

    def failed_tests(self) -> list[tuple[str, str]]:
        return [(f["nodeid"], f["reason"]) for c in self.categories.values() for f in c.get("failed_tests", ())]

    @property
    def duration_s(self) -> float | None:
        return round(self.finished_at - self.started_at, 3) if self.finished_at is not None else None

    # ----------------------------------------------------------------------------------------------
    # the JSON form (schema 1)

    def to_dict(self) -> dict[str, Any]:
        return self._data(_metric_dict)

    def json(self) -> str:
        """This report as JSON, as :func:`~.json_report.dumps` lays out :meth:`to_dict` (secrets not masked: see
        :meth:`redacted`); each metric's line is written straight from the metric (a dict per metric, then
        json's encoder, cost ~5 µs of each metric's ~8)."""
        from .json_report import Encoded, dumps

        return dumps(self._data(_metric_json, Encoded))

    def _data(self, metric: Callable[[MetricResult], Any], items: Callable[[list[Any]], list[Any]] = list
              ) -> dict[str, Any]:
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
        d["metrics"] = items([metric(m) for m in self.metrics])
        if self.judged:
            d["promotion"] = self.promotion()
            d["counts"] = {"checks": dict(self.tests), "thresholds": self.threshold_counts(),
                           "line": self.counts_line()}
        if self.metadata:
            d["metadata"] = dict(self.metadata)
        if self.links:
            d["links"] = dict(self.links)
        if self.judged or self.notes:
            d["artifacts"] = dict(self.artifacts)
            d["notes"] = list(self.notes)
            d["findings"] = [dict(f) for f in self.findings]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateReport:
        """A report read back from its JSON file (tolerant: a field it lacks takes its default)."""
        env = d.get("environment")
        started = from_iso(d.get("started_at")) or 0.0
        metrics = []
        for m in d.get("metrics") or ():
            m = {k: v for k, v in m.items() if k in _METRIC_FIELDS}  # a later schema may add keys
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
            started_at=started, finished_at=_finished(started, d),
            config=d.get("config"), thresholds=d.get("thresholds"),
            tests=d.get("tests") or {"passed": 0, "failed": 0, "skipped": 0},
            categories=d.get("categories") or {}, metrics=tuple(metrics),
            artifacts=d.get("artifacts") or {}, notes=tuple(d.get("notes") or ()),
            findings=tuple(d.get("findings") or ()), judged="duration_s" in d,
            metadata=d.get("metadata") or {}, links=d.get("links") or {})


def _finished(started: float, d: Mapping[str, Any]) -> float | None:
    """The finish time read back: from the duration when there is one (the ISO stamps are whole seconds), so
    a report rendered from its file says the same duration as the live run's."""
    finished = from_iso(d.get("finished_at"))
    duration = d.get("duration_s")
    if finished is not None and isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return started + float(duration)
    return finished


_METRIC_FIELDS = frozenset(MetricResult.__dataclass_fields__)
_LIMIT = re.compile(r"^\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)")


_FAIL_LEVEL = re.compile(r"\bfail (<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)")


def _room_limit(m: MetricResult) -> tuple[str, float] | None:
    """The level headroom is measured to: the fail level (a WARN's too), else the limit it was judged on."""
    return _level_of(m.threshold or "", m.limit or "")


@functools.lru_cache(maxsize=1024)
def _level_of(threshold: str, limit: str) -> tuple[str, float] | None:
    # a threshold's texts are shared by every metric it judges: parsed once each
    match = _FAIL_LEVEL.search(threshold) or _LIMIT.match(limit)
    return (match.group(1), float(match.group(2))) if match else None


def headroom(m: MetricResult) -> float | None:
    """How far the figure is from its fail level (or the only level it has), in % of that level: 87.3 for
    380 ms of a ``> 3000 ms`` limit; negative past it (a breach). None without a comparable level (``== 0``,
    a level of 0)."""
    level = _room_limit(m)
    if level is None or level[1] == 0:
        return None
    op, limit = level
    room = (limit - m.value) if op in (">", ">=") else (m.value - limit)
    return room / abs(limit) * 100.0


def headroom_text(m: MetricResult) -> str:
    """``380 ms of 3000 ms, 87 % headroom`` (``6200 ms of 5000 ms, 24 % over``; a WARN also names the warn
    level it passed); the figure and its limit without a comparable level."""
    value = format_value(m.value, m.unit)
    level, h = _room_limit(m), headroom(m)
    if level is None or h is None:
        return f"{value} ({m.limit})" if m.limit else value
    limit = format_value(level[1], m.unit)
    text = f"{value} of {limit}, {h:.0f} % headroom" if h >= 0 else f"{value} of {limit}, {-h:.0f} % over"
    if m.verdict == WARN and m.limit:
        text += f" (past warn level {m.limit})"
    return text


def _metric_dict(m: MetricResult) -> dict[str, Any]:
    d = m.to_dict()
    if m.verdict != INFO:
        h = headroom(m)
        if h is not None:
            d["headroom_pct"] = round(h, 1)
    return d


_ENCODE = json.encoder.encode_basestring_ascii  # what json.dumps writes a str as (C), a TypeError for another type
_INF = float("inf")


def _number(v: Any) -> str:
    """A number or null as json.dumps writes it (a ValueError for anything else)."""
    kind = type(v)
    if kind is float:
        if v != v or v in (_INF, -_INF):
            return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
        return float.__repr__(v)
    if kind is int:
        return int.__repr__(v)
    if v is None:
        return "null"
    raise ValueError(v)


def _metric_json(m: MetricResult) -> str:
    """``json.dumps(_metric_dict(m))``, written directly: a report's metrics are plain strings and numbers (a
    metric holding anything else goes through json.dumps)."""
    try:
        e, number = _ENCODE, _number
        labels = ", ".join([f"{e(k)}: {e(v)}" for k, v in m.labels.items()])
        values = ", ".join([number(v) for v in m.values])
        interval = "null" if m.interval is None else f"[{', '.join([number(round(v, 3)) for v in m.interval])}]"
        room = ""
        if m.verdict != INFO:
            h = headroom(m)
            if h is not None:
                room = f', "headroom_pct": {number(round(h, 1))}'
        return (f'{{"name": {e(m.name)}, "key": {e(m.key)}, "labels": {{{labels}}}, "value": {number(m.value)}, '
                f'"unit": {e(m.unit)}, "verdict": {e(m.verdict)}, "limit": {e(m.limit)}, '
                f'"threshold": {e(m.threshold)}, "nodeid": {e(m.nodeid)}, "samples": {number(m.samples)}, '
                f'"values": [{values}], "interval": {interval}, "samples_needed": {number(m.samples_needed)}, '
                f'"why": {e(m.why)}{room}}}')
    except (TypeError, ValueError, AttributeError):
        return json.dumps(_metric_dict(m))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _said(counts: Mapping[str, int], order: tuple[str, ...]) -> str:
    """``24 passed, 1 failed``: passed always, the others when there are any."""
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in order if k == "passed" or counts.get(k, 0))


def _environment(run: GateRun) -> dict[str, Any]:
    env = run.environment
    return {"name": env.name, "stage": env.stage, "protected": env.protected,
            "base_url": env.base_url, "frontend_url": env.frontend_url}


__all__ = ["ERROR", "INTERRUPTED", "NOTABLE", "RUNNING", "SCHEMA_VERSION", "GateReport", "headroom", "headroom_text",
           "iso"]
