"""Metrics recorded by checks and the gate verdict judged from them.

Workers only record plain values; the controller alone calls :func:`judge`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .thresholds import FAIL, INFO, PASS, SKIP, WARN, Policy, unit_of, worst

CATEGORIES = ("smoke", "crud", "isolation", "performance", "security")
OTHER = "other"


def metric_category(name: str) -> str:
    """``smoke`` for ``smoke.health.latency_ms``."""
    return name.split(".", 1)[0]


@dataclass(frozen=True)
class Metric:
    """One measured value: ``smoke.health.latency_ms{path=/health} = 12.5 ms``."""

    name: str
    value: float
    unit: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    nodeid: str = ""

    @property
    def category(self) -> str:
        return metric_category(self.name)

    @property
    def key(self) -> str:
        if not self.labels:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit,
                "labels": dict(self.labels), "nodeid": self.nodeid}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metric:
        return cls(d["name"], float(d["value"]), d.get("unit", ""), dict(d.get("labels", {})),
                   d.get("nodeid", ""))


def make_metric(name: str, value: float, unit: str | None = None,
                labels: Mapping[str, object] | None = None, nodeid: str = "") -> Metric:
    """Validate and build a metric; a bad name or a non-finite value is a programming error."""
    parts = name.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"metric name {name!r} must look like 'category.name_unit'")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {name!r}: value must be a number, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"metric {name!r}: value is NaN")
    return Metric(name, float(value), unit if unit is not None else unit_of(name),
                  {str(k): str(v) for k, v in (labels or {}).items()}, nodeid)


@dataclass
class TestTally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)


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

    @property
    def category(self) -> str:
        return metric_category(self.name)

    @property
    def breach(self) -> str:
        """``key = value unit breaches fail level > limit``: why this threshold fails (or warns)."""
        return (f"{self.key} = {self.value:g} {self.unit} breaches {self.verdict.lower()} "
                f"level {self.limit}").replace("  ", " ")

    @property
    def judged(self) -> str:
        """``FAIL: key = value unit (threshold)``."""
        return f"{self.verdict}: {self.key} = {self.value:g} {self.unit} ({self.threshold})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = dict(self.labels)
        return d


@dataclass
class Verdict:
    environment: str
    verdict: str
    categories: dict[str, dict[str, Any]]
    metrics: list[MetricResult]
    fail_on_warn: bool

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL or (self.fail_on_warn and self.verdict == WARN)

    def thresholds(self) -> list[tuple[MetricResult, bool]]:
        """Every judged (non-INFO) metric, and whether it fails the gate."""
        return [(m, m.verdict == FAIL or (self.fail_on_warn and m.verdict == WARN))
                for m in self.metrics if m.verdict != INFO]


def category_of(keywords: Iterable[str]) -> str:
    names = set(keywords)
    for category in CATEGORIES:
        if category in names:
            return category
    return OTHER


def judge(environment: str, metrics: Iterable[Metric], policy: Policy,
          tests: Mapping[str, TestTally], fail_on_warn: bool = False) -> Verdict:
    """Judge every metric against the policy; a failed test fails its category."""
    results: list[MetricResult] = []
    for m in metrics:
        threshold = policy.lookup(m.name)
        if threshold is None:
            verdict, limit, desc = INFO, "", ""
        else:
            verdict = threshold.judge(m.value)
            limit = threshold.limit_for(verdict)
            desc = threshold.describe()
        results.append(MetricResult(m.name, m.key, m.labels, m.value, m.unit, verdict, limit,
                                    desc, m.nodeid))

    categories: dict[str, dict[str, Any]] = {}
    names = {r.category for r in results} | set(tests)
    order = (*CATEGORIES, OTHER)
    for cat in sorted(names, key=lambda c: (order.index(c) if c in order else len(order), c)):
        tally = tests.get(cat, TestTally())
        levels = [r.verdict for r in results if r.category == cat]
        if tally.failed:
            levels.append(FAIL)
        if not levels and not tally.passed and not tally.skipped:
            continue
        categories[cat] = {
            # everything skipped (e.g. destructive checks on a protected environment): shown, not judged
            "verdict": worst(levels) if levels or tally.passed else SKIP,
            "tests": {"passed": tally.passed, "failed": tally.failed, "skipped": tally.skipped},
            "failed_tests": list(tally.failures),
        }
    overall = worst([c["verdict"] for c in categories.values()]) if categories else PASS
    return Verdict(environment, overall, categories, results, fail_on_warn)


__all__ = [
    "CATEGORIES",
    "FAIL",
    "INFO",
    "OTHER",
    "PASS",
    "WARN",
    "Metric",
    "MetricResult",
    "TestTally",
    "Verdict",
    "category_of",
    "judge",
    "make_metric",
]
