"""The gate policy (``thresholds.toml``): threshold expressions, levels and their evaluation.

Pure functions and frozen data; no pytest import.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schema import MapOf, Source, read_toml, validate

PASS, WARN, FAIL, INFO, SKIP = "PASS", "WARN", "FAIL", "INFO", "SKIP"
_RANK = {SKIP: -1, INFO: 0, PASS: 0, WARN: 1, FAIL: 2}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_EXPR = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*(ms|s|%)?\s*$")


def worst(levels: list[str] | tuple[str, ...]) -> str:
    """The most severe of ``levels`` (PASS when there are none; SKIP when all were skipped)."""
    if levels and all(level == SKIP for level in levels):
        return SKIP
    result = PASS
    for level in levels:
        if _RANK[level] > _RANK[result]:
            result = level
    return result


def unit_of(metric: str) -> str:
    """The unit a metric's name declares by its suffix (``_ms``, ``_rate`` ...)."""
    leaf = metric.rsplit(".", 1)[-1]
    if leaf.endswith("_ms"):
        return "ms"
    if leaf.endswith("_rate") or leaf.endswith("_pct"):
        return "%"
    if leaf.endswith("_s"):
        return "s"
    if leaf.endswith("_rps"):
        return "req/s"
    return ""


@dataclass(frozen=True)
class Condition:
    """A breach condition such as ``> 2000`` (the metric breaches when the comparison holds)."""

    op: str
    value: float
    text: str

    def breached(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str, metric: str) -> Condition:
    """Parse ``"> 2000"``, ``"> 2 s"`` or ``"< 95%"`` for ``metric``; ValueError says why not."""
    m = _EXPR.match(text)
    if not m:
        raise ValueError(f"bad threshold {text!r}: expected an operator (<, <=, >, >=, ==, !=) "
                         "and a number, e.g. \"> 2000\"")
    op, number, suffix = m.group(1), float(m.group(2)), m.group(3)
    unit = unit_of(metric)
    if suffix:
        if suffix == "s" and unit == "ms":
            number *= 1000.0
        elif suffix != unit:
            raise ValueError(f"bad threshold {text!r}: unit {suffix!r} does not match "
                             f"{metric} (unit {unit or 'none'})")
    shown = f"{op} {number:g}" + (f" {unit}" if unit else "")
    return Condition(op, number, shown)


@dataclass(frozen=True)
class Threshold:
    """A metric pattern (exact name or glob) with a fail and an optional warn condition."""

    metric: str
    fail: Condition | None = None
    warn: Condition | None = None
    description: str = ""

    def judge(self, value: float) -> str:
        if self.fail is not None and self.fail.breached(value):
            return FAIL
        if self.warn is not None and self.warn.breached(value):
            return WARN
        return PASS

    def limit_for(self, level: str) -> str:
        """The condition a verdict is about: the breached one, or for PASS the fail level."""
        cond = self.warn if level == WARN else self.fail
        return str(cond) if cond else ""

    def describe(self) -> str:
        parts = []
        if self.warn:
            parts.append(f"warn {self.warn}")
        if self.fail:
            parts.append(f"fail {self.fail}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Policy:
    """Thresholds for one environment: defaults with that environment's overrides applied."""

    path: Path | None
    thresholds: tuple[Threshold, ...]

    def lookup(self, metric: str) -> Threshold | None:
        """The threshold for ``metric``: an exact name wins, then the first matching glob."""
        for t in self.thresholds:
            if t.metric == metric:
                return t
        for t in self.thresholds:
            if any(ch in t.metric for ch in "*?[") and fnmatch.fnmatchcase(metric, t.metric):
                return t
        return None


THRESHOLD_SPEC = {"fail": str, "warn": str, "description": str}
POLICY_SPEC: dict[str, Any] = {
    "metrics": MapOf(THRESHOLD_SPEC),
    "environments": MapOf({"metrics": MapOf(THRESHOLD_SPEC)}),
}


def _thresholds(table: Mapping[str, Any], src: Source, path: tuple[str, ...]) -> dict[str, Threshold]:
    out: dict[str, Threshold] = {}
    for metric, spec in table.items():
        if "fail" not in spec and "warn" not in spec:
            raise src.error("a threshold needs fail and/or warn", (*path, metric))
        conds: dict[str, Condition] = {}
        for level in ("fail", "warn"):
            if level in spec:
                try:
                    conds[level] = parse_condition(spec[level], metric)
                except ValueError as exc:
                    raise src.error(str(exc), (*path, metric, level)) from None
        out[metric] = Threshold(metric, conds.get("fail"), conds.get("warn"),
                                spec.get("description", ""))
    return out


def parse_policy(src: Source, environment: str) -> Policy:
    validate(src.data, POLICY_SPEC, src, ())
    merged = _thresholds(src.data.get("metrics", {}), src, ("metrics",))
    env_table = src.data.get("environments", {}).get(environment, {}).get("metrics", {})
    merged.update(_thresholds(env_table, src, ("environments", environment, "metrics")))
    # Check every environment's overrides, not just the selected one: a typo in prod's policy
    # should not wait for the prod run to surface.
    for name, table in src.data.get("environments", {}).items():
        _thresholds(table.get("metrics", {}), src, ("environments", name, "metrics"))
    return Policy(src.path, tuple(merged.values()))


def load_policy(path: Path, environment: str) -> Policy:
    return parse_policy(read_toml(path), environment)
