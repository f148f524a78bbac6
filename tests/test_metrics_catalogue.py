"""The metric catalogue is the one list of built-in metric names: every name the suites and the plugin record
is in it, and the README's metric table matches it (pure, fast)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_deploygate.gate import CATEGORIES, make_metric
from pytest_deploygate.metrics import BY_NAME, CATALOGUE, is_custom, markdown_table, matches, suggest
from pytest_deploygate.thresholds import unit_of

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(REPO / "suites").glob("*.py"), *(REPO / "pytest_deploygate").rglob("*.py")])
# gate.record("name", ...) / record(f"crud.{step}_ms", ...) / could_not_check("category", ...)
RECORD = re.compile(r"""\brecord\(\s*(f?)(["'])((?:(?!\2).)+)\2""")
COULD_NOT_CHECK = re.compile(r"""\bcould_not_check\(\s*["'](\w+)["']""")
# a metric name handed to a helper that records it: a whole string literal shaped like one
NAME_LITERAL = re.compile(r"""["']((?:smoke|crud|isolation|performance|security)\.[a-z0-9_.]+"""
                          r"""(?:_ms|_count|_rate|_ok|_left|\.rps))["']""")


def _recorded_names() -> list[tuple[str, str]]:
    """(source file, metric name or glob) of every literal metric name the code records."""
    found = []
    for path in SOURCES:
        if path.name == "metrics.py":
            continue
        text = path.read_text(encoding="utf-8")
        for m in RECORD.finditer(text):
            name = re.sub(r"\{[^}]*\}", "*", m.group(3)) if m.group(1) else m.group(3)
            if "." in name and not name.startswith("*"):
                found.append((path.name, name))
        found += [(path.name, f"{category}.unverified_count") for category in COULD_NOT_CHECK.findall(text)]
        if path.parent.name == "suites":
            found += [(path.name, name) for name in NAME_LITERAL.findall(text)]
    return found


def test_the_scan_finds_the_recorded_metrics() -> None:
    names = {name for _, name in _recorded_names()}
    assert {"smoke.health.latency_ms", "performance.p95_ms", "crud.*_ms", "security.bandit.*_count",
            "isolation.unverified_count"} <= names


@pytest.mark.parametrize(("source", "name"), sorted(set(_recorded_names())))
def test_every_recorded_metric_is_catalogued(source: str, name: str) -> None:
    assert is_custom(name) or matches(name), (
        f"{source} records {name!r}, which is not in pytest_deploygate/metrics.py (add a MetricInfo for it)")


def test_catalogue_entries_are_well_formed() -> None:
    assert len(BY_NAME) == len(CATALOGUE), "a metric is catalogued twice"
    for info in CATALOGUE:
        make_metric(info.name, 1.0)  # a valid metric name
        assert info.category in CATEGORIES, info.name
        assert info.description and "\n" not in info.description, info.name
        if unit_of(info.name):
            assert info.unit == unit_of(info.name), info.name


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_counts_what_it_could_not_verify(category: str) -> None:
    assert f"{category}.unverified_count" in BY_NAME


def test_globs_and_suggestions() -> None:
    assert "crud.read_after_update_ms" in matches("crud.*_ms")
    assert matches("smoke.helth.latency_ms") == []
    assert suggest("smoke.helth.latency_ms") == "smoke.health.latency_ms"
    assert suggest("completely.different") is None
    assert is_custom("custom.login_ms") and not is_custom("customer.login_ms")


def _readme_table() -> dict[str, str]:
    """metric name -> its row in the README's metric table (the table under its ``| metric | unit |`` head)."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    head = markdown_table().splitlines()[0]
    assert head in lines, "README.md has no metric table (print it with python -m pytest_deploygate.metrics)"
    rows = {}
    for line in lines[lines.index(head) + 2:]:
        if not line.startswith("|"):
            break
        rows[line.split("`")[1] if "`" in line else line] = line
    return rows


def test_the_readme_metric_table_matches_the_catalogue() -> None:
    rows = _readme_table()
    missing = [name for name in BY_NAME if name not in rows]
    stale = [name for name in rows if name not in BY_NAME]
    assert not missing, ("not in README.md's metric table (print the table with python -m "
                         f"pytest_deploygate.metrics): {missing}")
    assert not stale, f"README.md's metric table lists metrics that are not catalogued: {stale}"
    generated = {line.split("`")[1]: line for line in markdown_table().splitlines() if line.startswith("| `")}
    differing = [name for name, line in generated.items() if rows[name] != line]
    assert not differing, f"README.md's rows differ from the catalogue for: {differing}"
