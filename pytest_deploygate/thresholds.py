"""The gate policy (``thresholds.toml``): threshold expressions, levels and their evaluation.

Pure functions and frozen data; no pytest import.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .metrics import is_custom, matches, suggest
from .schema import MAX_NUMBER, ConfigError, MapOf, Num, OneOf, Source, finite, read_toml, validate

PASS, WARN, FAIL, INFO, SKIP = "PASS", "WARN", "FAIL", "INFO", "SKIP"
#: the sample cannot tell a breach either way (a rate from too few requests): never PASS or FAIL on noise
INCONCLUSIVE = "INCONCLUSIVE"
#: the run checked nothing (no test ran, no threshold judged): it never passes
NO_CHECKS = "NO CHECKS"
_RANK = {SKIP: -1, INFO: 0, PASS: 0, INCONCLUSIVE: 1, WARN: 2, FAIL: 3, NO_CHECKS: 3}

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
    if not finite(number):  # a 400-digit level parses as infinity and would never breach
        raise ValueError(f"bad threshold {text!r}: the number is out of range (at most {MAX_NUMBER:g})")
    shown = f"{op} {number:g}" + (f" {unit}" if unit else "")
    return Condition(op, number, shown)


_SELECTOR = re.compile(r"^(?P<name>[^{}]+)\{(?P<labels>[^{}]*)\}$")


def parse_key(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A threshold key's metric name (exact or glob) and label selector:
    ``"smoke.api.latency_ms{path=/api/products}"`` → ``("smoke.api.latency_ms", (("path", "/api/products"),))``.
    Label values are taken as written (no quotes, no commas); ValueError says what is wrong."""
    if "{" not in key and "}" not in key:
        return key, ()
    m = _SELECTOR.match(key)
    if not m:
        raise ValueError(f"bad label selector in {key!r}: expected name{{label=value,...}}, "
                         "e.g. \"smoke.api.latency_ms{path=/api/products}\"")
    labels: dict[str, str] = {}
    for part in m.group("labels").split(","):
        label, eq, value = part.partition("=")
        label, value = label.strip(), value.strip()
        if not eq or not label or not value:
            raise ValueError(f"bad label selector in {key!r}: {part.strip()!r} is not label=value")
        if label in labels:
            raise ValueError(f"bad label selector in {key!r}: label {label!r} given twice")
        labels[label] = value
    return m.group("name").strip(), tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Threshold:
    """A metric pattern (exact name or glob, optionally with a label selector ``{path=/api/x}``) with a
    fail and an optional warn condition."""

    #: the key as written in thresholds.toml (name and selector)
    metric: str
    fail: Condition | None = None
    warn: Condition | None = None
    description: str = ""
    #: fewer samples than this (requests behind a rate, latency samples) and the metric is INCONCLUSIVE
    min_samples: int | None = None
    #: the selector's labels, sorted: the threshold judges only metrics carrying all of them
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """The metric name (or glob) without the label selector."""
        return parse_key(self.metric)[0] if self.labels else self.metric

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


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


@dataclass(frozen=True)
class Policy:
    """Thresholds for one environment: defaults with that environment's overrides applied.

    Which threshold judges a metric (most specific wins): a threshold of the metric's exact name whose
    label selector the metric carries, the one with the most labels first (so exact labels beat a subset
    of them; among equally many, the first written); then the exact name without labels; then globs, in
    the same order (labelled before plain, first written first). A selector never matches a metric that
    lacks one of its labels.
    """

    path: Path | None
    thresholds: tuple[Threshold, ...]
    #: name → its candidates in precedence order, as (selector labels, threshold); built on first lookup
    _plans: dict[str, tuple[tuple[frozenset[tuple[str, str]], Threshold], ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    def _plan(self, name: str) -> tuple[tuple[frozenset[tuple[str, str]], Threshold], ...]:
        exact = [t for t in self.thresholds if not _is_glob(t.name) and t.name == name]
        globs = [t for t in self.thresholds if _is_glob(t.name) and fnmatch.fnmatchcase(name, t.name)]
        ordered = [t for group in (exact, globs)
                   for t in sorted(group, key=lambda t: -len(t.labels))]  # stable: first written first
        plan = tuple((frozenset(t.labels), t) for t in ordered)
        self._plans[name] = plan
        return plan

    def lookup(self, metric: str, labels: Mapping[str, str] | None = None) -> Threshold | None:
        """The threshold for ``metric`` carrying ``labels`` (see the class for the precedence): one dict
        lookup per metric name, then a scan of that name's few candidates until the first whose selector
        the metric's labels contain."""
        plan = self._plans.get(metric)
        if plan is None:
            plan = self._plan(metric)
        if not plan:
            return None
        if not labels:
            for selector, t in plan:
                if not selector:
                    return t
            return None
        items = labels.items()
        for selector, t in plan:
            if not selector or selector <= items:
                return t
        return None


THRESHOLD_SPEC = {"fail": str, "warn": str, "description": str, "custom": bool,
                  "min_samples": Num(1, 10**9, integer=True)}
POLICY_SPEC: dict[str, Any] = {
    "policy": OneOf("none"),
    "metrics": MapOf(THRESHOLD_SPEC),
    "environments": MapOf({"metrics": MapOf(THRESHOLD_SPEC)}),
}

_UP, _DOWN = (">", ">="), ("<", "<=")


def looser_warn(warn: Condition, fail: Condition) -> str | None:
    """Why a warn level is looser than (or points away from) its fail level, or None when it is sound.

    A warn level exists to go off *before* the fail level: ``warn > 5000, fail > 3000`` can never warn.
    """
    if warn.op in _UP and fail.op in _UP and warn.value > fail.value:
        return f"warn {warn} is looser than fail {fail}: it could never warn before failing"
    if warn.op in _DOWN and fail.op in _DOWN and warn.value < fail.value:
        return f"warn {warn} is looser than fail {fail}: it could never warn before failing"
    if (warn.op in _UP and fail.op in _DOWN) or (warn.op in _DOWN and fail.op in _UP):
        return f"warn {warn} and fail {fail} breach in opposite directions"
    return None


def unknown_metric(metric: str, declared: set[str] | frozenset[str] = frozenset()) -> str | None:
    """Why ``metric`` (a threshold key: exact name or glob) names no metric, or None when it does.

    Known are the catalogued metrics (:mod:`pytest_deploygate.metrics`; a glob must match one of them),
    any ``custom.`` name, and names the policy declares with ``custom = true``.
    """
    if is_custom(metric) or metric in declared or matches(metric):
        return None
    close = suggest(metric)
    hint = f"did you mean {close!r}? " if close else ""
    return (f"unknown metric {metric!r}: {hint}(the built-in metrics are listed in the README; "
            "for a metric of your own, name it custom.<name> or add custom = true to its threshold)")


def _thresholds(table: Mapping[str, Any], src: Source, path: tuple[str, ...],
                declared: set[str] | frozenset[str] = frozenset()) -> dict[str, Threshold]:
    out: dict[str, Threshold] = {}
    for metric, spec in table.items():
        try:
            name, labels = parse_key(metric)
        except ValueError as exc:
            raise src.error(str(exc), (*path, metric)) from None
        why = unknown_metric(name, declared)
        if why:
            raise src.error(why, (*path, metric))
        if "fail" not in spec and "warn" not in spec:
            raise src.error("a threshold needs fail and/or warn", (*path, metric))
        conds: dict[str, Condition] = {}
        for level in ("fail", "warn"):
            if level in spec:
                try:
                    conds[level] = parse_condition(spec[level], name)
                except ValueError as exc:
                    raise src.error(str(exc), (*path, metric, level)) from None
        if "fail" in conds and "warn" in conds:
            why = looser_warn(conds["warn"], conds["fail"])
            if why:
                raise src.error(why, (*path, metric, "warn"))
        out[metric] = Threshold(metric, conds.get("fail"), conds.get("warn"),
                                spec.get("description", ""), spec.get("min_samples"), labels)
    return out


def parse_policy(src: Source, environment: str) -> Policy:
    validate(src.data, POLICY_SPEC, src, ())
    tables: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [(("metrics",), src.data.get("metrics", {}))]
    tables += [(("environments", name, "metrics"), env.get("metrics", {}))
               for name, env in src.data.get("environments", {}).items()]
    declared = {metric.split("{", 1)[0] for _, table in tables for metric, spec in table.items()
                if spec.get("custom")}
    count = sum(len(table) for _, table in tables)
    if src.data.get("policy") == "none":
        if count:
            raise src.error(f"policy = \"none\" but {count} threshold(s) are defined: remove one or the other",
                            ("policy",))
    elif not count:
        raise ConfigError("the gate policy has no thresholds, so no metric would be judged: add thresholds "
                          "under [metrics], or write policy = \"none\" to judge on check results alone",
                          file=src.path)
    merged = _thresholds(src.data.get("metrics", {}), src, ("metrics",), declared)
    env_table = src.data.get("environments", {}).get(environment, {}).get("metrics", {})
    merged.update(_thresholds(env_table, src, ("environments", environment, "metrics"), declared))
    # Check every environment's overrides, not just the selected one: a typo in prod's policy
    # should not wait for the prod run to surface.
    for name, table in src.data.get("environments", {}).items():
        _thresholds(table.get("metrics", {}), src, ("environments", name, "metrics"), declared)
    return Policy(src.path, tuple(merged.values()))


#: a recorded metric as the policy sees it: its name, or its name and labels
MetricRef = str | tuple[str, Mapping[str, str] | tuple[tuple[str, str], ...]]


def _refs(metrics: Iterable[MetricRef]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    out: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for m in metrics:
        if isinstance(m, str):
            out.add((m, ()))
        else:
            labels = m[1]
            out.add((m[0], tuple(sorted(labels.items() if isinstance(labels, Mapping) else labels))))
    return out


def unused_thresholds(policy: Policy, metrics: Iterable[MetricRef]) -> list[str]:
    """The thresholds of ``policy`` that judged none of ``metrics`` (names, or (name, labels) pairs: a
    label selector judges only metrics carrying its labels; a threshold shadowed by a more specific one
    for every metric it matches judged nothing either), in policy order."""
    used = set()
    for name, labels in _refs(metrics):
        threshold = policy.lookup(name, dict(labels))
        if threshold is not None:
            used.add(threshold.metric)
    return [t.metric for t in policy.thresholds if t.metric not in used]


def unused_note(policy: Policy, metrics: Iterable[MetricRef]) -> str | None:
    """The summary note naming thresholds that judged nothing, among the categories this run measured
    (a smoke-only run leaves the performance thresholds unused by design), or None."""
    names = _refs(metrics)
    ran = {n.split(".", 1)[0] for n, _ in names}
    unused = [m for m in unused_thresholds(policy, names)
              if m.split(".", 1)[0] in ran or any(ch in m.split(".", 1)[0] for ch in "*?[")]
    if not unused:
        return None
    return (f"{len(unused)} threshold(s) judged nothing in this run (no metric of that name was recorded): "
            + ", ".join(unused))


def load_policy(path: Path, environment: str) -> Policy:
    return parse_policy(read_toml(path), environment)
