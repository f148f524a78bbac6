"""Judging (pure, fast): a metric against its warn and fail levels, a category from its metrics and tests, the
overall verdict, fail_on_warn, and the texts a judged metric gives. Synthetic metrics and policies.

Rates judged on their sample size (INCONCLUSIVE, NO CHECKS, exit codes) are in test_verdict.py."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pytest_deploygate.gate import (
    FAIL,
    INFO,
    OTHER,
    PASS,
    WARN,
    Metric,
    MetricResult,
    Verdict,
    category_of,
    judge,
    make_metric,
    metric_category,
)
from pytest_deploygate.gate import TestTally as Tally  # not TestTally here: pytest would try to collect it
from pytest_deploygate.thresholds import SKIP, Policy, Threshold, parse_condition, parse_key, worst

LATENCY = "smoke.health.latency_ms"


def _threshold(metric: str, fail: str | None = None, warn: str | None = None) -> Threshold:
    return Threshold(metric, parse_condition(fail, metric) if fail else None,
                     parse_condition(warn, metric) if warn else None)


POLICY = Policy(None, (
    _threshold(LATENCY, fail="> 3000", warn="> 1000"),
    _threshold("crud.*_ms", fail="> 5000"),
    _threshold("isolation.leaks_count", fail=">= 1"),
))


def _metric(name: str, value: float, **labels: str) -> Metric:
    return Metric(name=name, value=value, unit="ms" if name.endswith("_ms") else "", labels=labels,
                  nodeid=f"suites/test_{metric_category(name)}.py::test_it")


def _judge(metrics: list[Metric], tests: Mapping[str, Tally] | None = None, **kwargs: bool) -> Verdict:
    return judge("staging", metrics, POLICY, tests if tests is not None else {}, **kwargs)


# --------------------------------------------------------------------------------------------------
# one metric


@pytest.mark.parametrize(("value", "level", "limit"), [
    (500.0, PASS, "> 3000 ms"),  # a PASS is shown against the fail level
    (1000.0, PASS, "> 3000 ms"),  # on a strict level is not past it
    (1500.0, WARN, "> 1000 ms"),
    (3000.5, FAIL, "> 3000 ms"),
])
def test_a_metric_against_its_warn_and_fail_levels(value: float, level: str, limit: str) -> None:
    result = _judge([_metric(LATENCY, value)], {"smoke": Tally(passed=1)}).metrics[0]
    assert (result.verdict, result.limit) == (level, limit)
    assert result.threshold == "warn > 1000 ms, fail > 3000 ms"


def test_a_glob_threshold_judges_every_metric_it_matches() -> None:
    verdict = _judge([_metric("crud.create_ms", 6000.0), _metric("crud.read_ms", 10.0)])
    assert [(m.name, m.verdict) for m in verdict.metrics] == [("crud.create_ms", FAIL), ("crud.read_ms", PASS)]


def test_a_metric_without_a_threshold_is_info_and_judges_nothing() -> None:
    verdict = _judge([_metric("custom.queue_depth_count", 10**6)], {"smoke": Tally(passed=1)})
    assert verdict.metrics[0].verdict == INFO and verdict.metrics[0].threshold == ""
    # no threshold judged its category and no check of it ran: recorded (INFO), never "PASS 0/0"
    assert verdict.categories["custom"]["verdict"] == INFO and verdict.verdict == PASS
    assert verdict.thresholds() == []  # INFO is no JUnit threshold case


def test_a_category_of_recorded_metrics_is_judged_only_by_what_judged_it() -> None:
    info = _metric("custom.lambda_errors_count", 3)
    # its checks passed: PASS; all skipped: SKIP; nothing else: INFO (recorded); a failed check: FAIL
    assert _judge([info], {"custom": Tally(passed=1)}).categories["custom"]["verdict"] == PASS
    assert _judge([info], {"custom": Tally(skipped=2)}).categories["custom"]["verdict"] == SKIP
    assert _judge([info], {"custom": Tally(failed=1)}).categories["custom"]["verdict"] == FAIL
    only = _judge([info], {"smoke": Tally(passed=1)})
    assert only.categories["custom"] == {"verdict": INFO, "tests": {"passed": 0, "failed": 0, "skipped": 0},
                                         "failed_tests": []}
    # unjudged beside unjudged: still INFO
    assert _judge([info, _metric("custom.lambda_errors_count", 9, fn="x")], {}).categories["custom"]["verdict"] == INFO
    # a judged threshold beside it decides its category, INFO does not count
    key = "custom.lambda_errors_count{fn=x}"
    judged = Threshold(key, parse_condition("> 5", "custom.lambda_errors_count"), None, labels=parse_key(key)[1])
    policy = Policy(None, (*POLICY.thresholds, judged))
    for value, verdict in ((9, FAIL), (2, PASS)):
        both = judge("staging", [info, _metric("custom.lambda_errors_count", value, fn="x")], policy, {})
        assert both.categories["custom"]["verdict"] == verdict and both.verdict == verdict, (value, both.categories)
    # recorded metrics alone are no check: the gate says so
    assert _judge([info], {}).verdict == "NO CHECKS"


# --------------------------------------------------------------------------------------------------
# categories and the overall verdict


def test_a_failed_test_fails_its_category_although_every_metric_passes() -> None:
    failure = {"nodeid": "suites/test_crud.py::test_create", "reason": "POST /items answered 500"}
    tests = {"crud": Tally(passed=2, failed=1, failures=[failure]), "smoke": Tally(passed=3)}
    verdict = _judge([_metric("crud.create_ms", 10.0), _metric(LATENCY, 10.0)], tests)
    assert verdict.categories["crud"]["verdict"] == FAIL
    assert verdict.categories["crud"]["tests"] == {"passed": 2, "failed": 1, "skipped": 0}
    assert verdict.categories["crud"]["failed_tests"] == [failure]
    assert verdict.categories["smoke"]["verdict"] == PASS  # the other category keeps its own verdict
    assert verdict.verdict == FAIL and verdict.failed


def test_the_overall_verdict_is_the_worst_category() -> None:
    tests = {"smoke": Tally(passed=1), "isolation": Tally(passed=1)}
    warn = _judge([_metric(LATENCY, 1500.0), _metric("isolation.leaks_count", 0)], tests)
    assert {c: v["verdict"] for c, v in warn.categories.items()} == {"smoke": WARN, "isolation": PASS}
    assert warn.verdict == WARN
    fail = _judge([_metric(LATENCY, 1500.0), _metric("isolation.leaks_count", 1)], tests)
    assert fail.verdict == FAIL


def test_an_all_skipped_category_is_shown_as_skip_and_does_not_pass_or_fail_the_gate() -> None:
    verdict = _judge([], {"crud": Tally(skipped=4), "smoke": Tally(passed=2)})
    assert verdict.categories["crud"] == {"verdict": SKIP, "tests": {"passed": 0, "failed": 0, "skipped": 4},
                                          "failed_tests": []}
    assert verdict.verdict == PASS


def test_categories_follow_the_gate_order_then_others_by_name() -> None:
    tests = {name: Tally(passed=1) for name in ("zeta", "security", OTHER, "smoke", "alpha", "performance")}
    assert list(_judge([], tests).categories) == ["smoke", "performance", "security", OTHER, "alpha", "zeta"]


def test_a_category_with_nothing_in_it_is_left_out() -> None:
    assert "crud" not in _judge([], {"crud": Tally(), "smoke": Tally(passed=1)}).categories


def test_worst_of_levels() -> None:
    assert worst([]) == PASS
    assert worst([SKIP, SKIP]) == SKIP
    assert worst([SKIP, PASS]) == PASS
    assert worst([INFO, PASS]) == PASS
    assert worst([PASS, WARN, PASS]) == WARN
    assert worst([WARN, FAIL, SKIP]) == FAIL


# --------------------------------------------------------------------------------------------------
# fail_on_warn


def test_a_warn_passes_the_gate_unless_fail_on_warn() -> None:
    metrics, tests = [_metric(LATENCY, 1500.0)], {"smoke": Tally(passed=1)}
    lenient = _judge(metrics, tests)
    assert lenient.verdict == WARN and not lenient.failed
    assert lenient.thresholds() == [(lenient.metrics[0], False)]
    strict = _judge(metrics, tests, fail_on_warn=True)
    assert strict.verdict == WARN and strict.failed
    assert strict.thresholds() == [(strict.metrics[0], True)]


def test_what_blocks_promotion() -> None:
    lenient = _judge([], {"smoke": Tally(passed=1)})
    assert [lenient.blocks(level) for level in (PASS, INFO, SKIP, WARN, FAIL)] == [False, False, False, False, True]
    assert _judge([], {"smoke": Tally(passed=1)}, fail_on_warn=True).blocks(WARN)


# --------------------------------------------------------------------------------------------------
# names, categories and the texts of a judged metric


def test_category_of_a_test_from_its_markers() -> None:
    assert category_of(["gate", "crud", "parametrize"]) == "crud"
    assert category_of(["security", "smoke"]) == "smoke"  # the first in the gate's order wins
    assert category_of(["gate", "destructive"]) == OTHER


def test_metric_names_keys_and_plain_values() -> None:
    m = make_metric("smoke.endpoint.latency_ms", 12.5, labels={"path": "/items", "method": "GET"})
    assert m.category == "smoke" and m.unit == "ms"
    assert m.key == "smoke.endpoint.latency_ms{method=GET,path=/items}"  # labels sorted: one key per metric
    assert Metric.from_dict(m.to_dict()) == m
    for bad in ("latency_ms", "smoke..latency_ms", ".x"):
        with pytest.raises(ValueError, match=r"category\.name_unit"):
            make_metric(bad, 1.0)
    with pytest.raises(TypeError, match="must be a number"):
        make_metric("smoke.up_count", True)
    for not_finite in (float("nan"), float("inf"), float("-inf")):  # the JSON report must stay strict JSON
        with pytest.raises(ValueError, match="not a finite number"):
            make_metric("smoke.up_count", not_finite)


def test_the_breach_and_judged_texts() -> None:
    result = _judge([_metric(LATENCY, 3500.0, path="/health")]).metrics[0]
    assert result.key == "smoke.health.latency_ms{path=/health}"
    assert result.breach == "smoke.health.latency_ms{path=/health} = 3500 ms breaches fail level > 3000 ms"
    assert result.judged == "FAIL: smoke.health.latency_ms{path=/health} = 3500 ms (warn > 1000 ms, fail > 3000 ms)"
    count = _judge([_metric("isolation.leaks_count", 2)]).metrics[0]
    assert count.breach == "isolation.leaks_count = 2 breaches fail level >= 1"  # no unit, no double space


def test_the_evidence_names_the_samples_behind_a_figure() -> None:
    m = Metric(name=LATENCY, value=12.0, unit="ms", samples=3, values=(300.0, 12.0, 11.0))
    result = _judge([m]).metrics[0]
    assert result.evidence == "; n = 3, samples 300, 12, 11"
    assert result.judged.endswith("(warn > 1000 ms, fail > 3000 ms); n = 3, samples 300, 12, 11")
    assert _judge([_metric(LATENCY, 12.0)]).metrics[0].evidence == ""


def test_a_judged_metric_is_plain_data_for_the_report() -> None:
    result = _judge([_metric(LATENCY, 1500.0, path="/health")]).metrics[0]
    d = result.to_dict()
    assert d["verdict"] == WARN and d["labels"] == {"path": "/health"} and d["limit"] == "> 1000 ms"
    assert MetricResult(**d).breach == result.breach  # the Markdown summary rebuilds it from the JSON
