"""Metrics recorded by checks and the gate verdict judged from them.

Workers only record plain values; the controller alone calls :func:`judge`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .metrics import CATEGORIES, OTHER, category_of_metric, category_of_test
from .thresholds import (
    FAIL,
    INCONCLUSIVE,
    INFO,
    NO_CHECKS,
    PASS,
    SKIP,
    WARN,
    Condition,
    Policy,
    Threshold,
    unit_of,
    worst,
)

# one rule each for a metric's and a test's category: the metric catalogue's
metric_category = category_of_metric
category_of = category_of_test


@dataclass(frozen=True)
class Metric:
    """One measured value: ``smoke.health.latency_ms{path=/health} = 12.5 ms``."""

    name: str
    value: float
    unit: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    nodeid: str = ""
    #: how many observations stand behind ``value``: requests behind a rate, latency samples behind a median
    samples: int | None = None
    #: the observations themselves, when few (the latency samples a median was taken of)
    values: tuple[float, ...] = ()

    @property
    def category(self) -> str:
        return metric_category(self.name)

    @property
    def key(self) -> str:
        labels = self.labels
        if not labels:
            return self.name
        if len(labels) == 1:
            ((k, v),) = labels.items()
            return f"{self.name}{{{k}={v}}}"
        inner = ",".join([f"{k}={v}" for k, v in sorted(labels.items())])
        return f"{self.name}{{{inner}}}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit,
                "labels": dict(self.labels), "nodeid": self.nodeid, "samples": self.samples,
                "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metric:
        samples = d.get("samples")
        return cls(d["name"], float(d["value"]), d.get("unit", ""), dict(d.get("labels", {})),
                   d.get("nodeid", ""), int(samples) if samples is not None else None,
                   tuple(float(v) for v in d.get("values") or ()))


def make_metric(name: str, value: float, unit: str | None = None,
                labels: Mapping[str, object] | None = None, nodeid: str = "",
                samples: int | None = None, values: Iterable[float] = ()) -> Metric:
    """Validate and build a metric; a bad name or a non-finite value is a programming error.
    ``samples``: how many observations ``value`` stands on (a rate's requests), so noise can be told
    from a breach."""
    parts = name.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"metric name {name!r} must look like 'category.name_unit'")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {name!r}: value must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"metric {name!r}: value is {value!r}, not a finite number")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 0):
        raise ValueError(f"metric {name!r}: samples must be a whole number >= 0, got {samples!r}")
    return Metric(name, float(value), unit if unit is not None else unit_of(name),
                  {str(k): str(v) for k, v in (labels or {}).items()}, nodeid, samples,
                  tuple(float(v) for v in values))


# --------------------------------------------------------------------------------------------------
# noise: a rate measured on few requests

#: two-sided 95 % normal quantile
Z_95 = 1.959963984540054
_COMPARISONS = ("<", "<=", ">", ">=")


def wilson_interval(rate_pct: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (in %) of a rate observed as ``rate_pct`` % of ``n`` trials. Unlike
    ``p ± z·se`` it stays inside 0..100 and is honest at 0/n and n/n, where the few-request cases live."""
    if n <= 0:
        return (0.0, 100.0)
    p = min(max(rate_pct / 100.0, 0.0), 1.0)
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return (max(0.0, center - half) * 100.0, min(1.0, center + half) * 100.0)


def _side(cond: Condition, interval: tuple[float, float]) -> bool | None:
    """Whether the whole interval breaches ``cond`` (True), none of it does (False), or it straddles (None)."""
    lo, hi = (cond.breached(v) for v in interval)
    return lo if lo == hi else None


def samples_needed(rate_pct: float, cond: Condition, limit: int = 10**9) -> int | None:
    """The smallest number of requests at which the same observed rate would settle ``cond`` either way
    (None when it never would: the rate sits on the level)."""
    if rate_pct == cond.value:
        return None
    hi = 1
    while _side(cond, wilson_interval(rate_pct, hi)) is None:
        hi *= 2
        if hi > limit:
            return None
    lo = hi // 2
    while lo + 1 < hi:  # the interval narrows as n grows: bisect for the first n that settles it
        mid = (lo + hi) // 2
        if _side(cond, wilson_interval(rate_pct, mid)) is None:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class Judgement:
    """One metric judged against its threshold: the level, the condition it is about, and for a verdict
    weighed on its sample the interval and the sample size that would settle it."""

    verdict: str
    limit: str = ""
    interval: tuple[float, float] | None = None
    samples_needed: int | None = None
    why: str = ""


def judge_value(threshold: Threshold, value: float, unit: str = "", samples: int | None = None) -> Judgement:
    """Judge one figure. A rate (unit ``%``) measured on ``samples`` requests is judged on its Wilson
    interval: a level is reached only when the whole interval is past it, PASS needs the fail level ruled
    out, and a sample that cannot tell is INCONCLUSIVE; so are fewer samples than ``min_samples``.
    Everything else is judged on its value."""
    fail, warn = threshold.fail, threshold.warn
    gate_cond = fail or warn
    if threshold.min_samples is not None and (samples is None or samples < threshold.min_samples):
        have = "an unknown number of" if samples is None else f"{samples}"
        return Judgement(INCONCLUSIVE, str(gate_cond or ""), samples_needed=threshold.min_samples,
                         why=f"{have} samples, fewer than min_samples = {threshold.min_samples}")
    if unit != "%" or samples is None:
        verdict = threshold.judge(value)
        return Judgement(verdict, threshold.limit_for(verdict))
    interval = wilson_interval(value, samples)
    for level, cond in ((FAIL, fail), (WARN, warn)):
        if cond is None or cond.op not in _COMPARISONS:
            if cond is not None and cond.breached(value):
                return Judgement(level, str(cond), interval)
            continue
        side = _side(cond, interval)
        if side:
            return Judgement(level, str(cond), interval)
        # FAIL undecided: cannot say whether it blocks. WARN undecided only matters when the reading itself
        # warns (1 error in 20 is not a WARN); a reading on the right side of the warn level stays PASS.
        if side is None and (level == FAIL or cond.breached(value)):
            return Judgement(INCONCLUSIVE, str(cond), interval, samples_needed(value, cond),
                             f"95 % interval {interval[0]:.1f} to {interval[1]:.1f} % straddles {cond}")
    return Judgement(PASS, str(fail) if fail else "", interval)


@dataclass
class TestTally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)


def format_number(value: float, unit: str = "") -> str:
    """A figure's number as every report shows it: at most one decimal for ms, s and %, otherwise up to 6
    significant digits (``98.0``, ``412.3``, ``3``)."""
    return f"{value:.1f}" if unit in ("ms", "%", "s") and value != int(value) else f"{value:g}"


def format_value(value: float, unit: str = "") -> str:
    """A figure with its unit: ``98.0 %``, ``412.3 ms``, ``3``."""
    text = format_number(value, unit)
    return f"{text} {unit}" if unit else text


@dataclass(frozen=True)
class MetricResult:
    name: str
    key: str
    labels: Mapping[str, str]
    value: float
    unit: str
    verdict: str
    limit: str
    threshold: str
    nodeid: str
    samples: int | None = None
    values: tuple[float, ...] = ()
    #: 95 % Wilson interval of a rate judged on its sample
    interval: tuple[float, float] | None = None
    samples_needed: int | None = None
    why: str = ""

    @property
    def category(self) -> str:
        return metric_category(self.name)

    @property
    def breach(self) -> str:
        """``key = value unit breaches fail level > limit``: why this threshold fails (or warns)."""
        return f"{self.key} = {format_value(self.value, self.unit)} breaches {self.verdict.lower()} level {self.limit}"

    @property
    def judged(self) -> str:
        """``FAIL: key = value unit (threshold)``, with the sample behind the figure when there is one."""
        return f"{self.verdict}: {self.key} = {format_value(self.value, self.unit)} ({self.threshold}){self.evidence}"

    @property
    def evidence(self) -> str:
        """``; n = 20, 95 % interval 76.4 to 99.1 %, needs n >= 73``: what the figure stands on."""
        parts = []
        if self.samples is not None:
            parts.append(f"n = {self.samples}")
        if self.values and len(self.values) > 1:
            parts.append("samples " + ", ".join(format_number(v, self.unit) for v in self.values))
        if self.interval is not None:
            parts.append(f"95 % interval {self.interval[0]:.1f} to {self.interval[1]:.1f} %")
        if self.verdict == INCONCLUSIVE:
            if self.why and self.interval is None:
                parts.append(self.why)
            if self.samples_needed is not None:
                parts.append(f"needs n >= {self.samples_needed}")
        return ("; " + ", ".join(parts)) if parts else ""

    def to_dict(self) -> dict[str, Any]:
        # field by field, spelled out: dataclasses.asdict deep-copies every value (most of the cost of a report
        # of 10k metrics), a loop over the fields with getattr cost twice this
        interval = self.interval
        return {"name": self.name, "key": self.key, "labels": dict(self.labels), "value": self.value,
                "unit": self.unit, "verdict": self.verdict, "limit": self.limit, "threshold": self.threshold,
                "nodeid": self.nodeid, "samples": self.samples, "values": list(self.values),
                "interval": [round(v, 3) for v in interval] if interval is not None else None,
                "samples_needed": self.samples_needed, "why": self.why}


@dataclass
class Verdict:
    environment: str
    verdict: str
    categories: dict[str, dict[str, Any]]
    metrics: list[MetricResult]
    fail_on_warn: bool
    fail_on_inconclusive: bool = False

    def blocks(self, level: str) -> bool:
        """Whether ``level`` (of the gate, a category or a metric) blocks promotion."""
        return (level in (FAIL, NO_CHECKS) or (self.fail_on_warn and level == WARN)
                or (self.fail_on_inconclusive and level == INCONCLUSIVE))

    @property
    def failed(self) -> bool:
        return self.blocks(self.verdict)

    def thresholds(self) -> list[tuple[MetricResult, bool]]:
        """Every judged (non-INFO) metric, and whether it fails the gate."""
        return [(m, self.blocks(m.verdict)) for m in self.metrics if m.verdict != INFO]


def judge(environment: str, metrics: Iterable[Metric], policy: Policy,
          tests: Mapping[str, TestTally], fail_on_warn: bool = False,
          fail_on_inconclusive: bool = False) -> Verdict:
    """Judge every metric against the policy; a failed test fails its category. A run in which no check
    ran (nothing passed or failed, no threshold judged) is NO CHECKS, which blocks promotion."""
    results: list[MetricResult] = []
    # per category, the set of levels its metrics reached (one pass; ``worst`` needs only the set)
    reached: dict[str, set[str]] = {}
    described: dict[int, str] = {}  # a threshold's description, once per threshold (many metrics share one)
    for m in metrics:
        threshold = policy.lookup(m.name, m.labels)
        if threshold is None:
            result = MetricResult(m.name, m.key, m.labels, m.value, m.unit, INFO, "", "", m.nodeid, m.samples,
                                  m.values)
        else:
            desc = described.get(id(threshold))
            if desc is None:
                desc = described[id(threshold)] = threshold.describe() + (
                    f", min_samples {threshold.min_samples}" if threshold.min_samples is not None else "")
            if threshold.min_samples is None and (m.samples is None or m.unit != "%"):
                # judged on its value alone (judge_value's first case, without its Judgement)
                level = threshold.judge(m.value)
                result = MetricResult(m.name, m.key, m.labels, m.value, m.unit, level, threshold.limit_for(level),
                                      desc, m.nodeid, m.samples, m.values)
            else:
                j = judge_value(threshold, m.value, m.unit, m.samples)
                result = MetricResult(m.name, m.key, m.labels, m.value, m.unit, j.verdict, j.limit, desc, m.nodeid,
                                      m.samples, m.values, j.interval, j.samples_needed, j.why)
        results.append(result)
        category = metric_category(m.name)
        levels_of = reached.get(category)
        if levels_of is None:
            levels_of = reached[category] = set()
        levels_of.add(result.verdict)

    categories: dict[str, dict[str, Any]] = {}
    names = set(reached) | set(tests)
    order = (*CATEGORIES, OTHER)
    for cat in sorted(names, key=lambda c: (order.index(c) if c in order else len(order), c)):
        tally = tests.get(cat, TestTally())
        recorded = reached.get(cat, set())
        levels = [level for level in recorded if level != INFO]  # what a threshold judged
        if tally.failed:
            levels.append(FAIL)
        if levels or tally.passed:
            level = worst(levels)
        elif tally.skipped:
            level = SKIP  # everything skipped (e.g. destructive checks on a protected environment): not judged
        elif recorded:
            level = INFO  # metrics recorded (a CloudWatch probe's custom.*), no threshold for them, no check
        else:
            continue
        categories[cat] = {
            "verdict": level,
            "tests": {"passed": tally.passed, "failed": tally.failed, "skipped": tally.skipped},
            "failed_tests": list(tally.failures),
        }
    checked = (any(t.passed or t.failed for t in tests.values())
               or any(levels - {INFO} for levels in reached.values()))
    overall = worst([c["verdict"] for c in categories.values()]) if checked else NO_CHECKS
    return Verdict(environment, overall, categories, results, fail_on_warn, fail_on_inconclusive)


__all__ = [
    "CATEGORIES",
    "FAIL",
    "INCONCLUSIVE",
    "INFO",
    "NO_CHECKS",
    "OTHER",
    "PASS",
    "WARN",
    "Metric",
    "MetricResult",
    "TestTally",
    "Verdict",
    "category_of",
    "format_number",
    "format_value",
    "judge",
    "judge_value",
    "make_metric",
    "samples_needed",
    "wilson_interval",
]
