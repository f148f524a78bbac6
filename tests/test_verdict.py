"""The verdict's pure parts: the Wilson interval, INCONCLUSIVE judging, min_samples, NO CHECKS and the exit
code a verdict gives. Milliseconds, no servers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_deploygate.gate import (
    FAIL,
    INCONCLUSIVE,
    INFO,
    NO_CHECKS,
    PASS,
    WARN,
    Metric,
    judge,
    judge_value,
    make_metric,
    samples_needed,
    wilson_interval,
)
from pytest_deploygate.gate import TestTally as Tally
from pytest_deploygate.schema import ConfigError
from pytest_deploygate.session import final_status
from pytest_deploygate.thresholds import Policy, Threshold, load_policy, parse_condition, worst

RATE = "performance.success_rate"


def rate_threshold(fail: str | None = "< 95", warn: str | None = "< 99", min_samples: int | None = None) -> Threshold:
    return Threshold(RATE, parse_condition(fail, RATE) if fail else None, parse_condition(warn, RATE) if warn else None,
                     min_samples=min_samples)


# --------------------------------------------------------------------------------------------------
# the Wilson score interval


@pytest.mark.parametrize(("rate", "n", "lo", "hi"), [
    (95.0, 20, 76.39, 99.11),     # prod's probe: 1 error in 20
    (100.0, 20, 83.89, 100.0),    # 20 of 20: honest at the edge (p ± z·se would say 100-100)
    (0.0, 10, 0.0, 27.75),
    (50.0, 100, 40.38, 59.62),
])
def test_wilson_interval_matches_the_closed_form(rate: float, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(rate, n)
    assert got == pytest.approx((lo, hi), abs=0.01)


def test_the_interval_narrows_with_the_sample_and_holds_the_rate() -> None:
    widths = [(lambda i: i[1] - i[0])(wilson_interval(97.0, n)) for n in (20, 100, 1000, 10000)]
    assert widths == sorted(widths, reverse=True)
    for n in (20, 100, 1000):
        lo, hi = wilson_interval(97.0, n)
        assert lo <= 97.0 <= hi and 0.0 <= lo and hi <= 100.0
    assert wilson_interval(97.0, 0) == (0.0, 100.0)  # no sample: anything is possible


# --------------------------------------------------------------------------------------------------
# judging a rate on its sample


def test_one_error_in_twenty_is_inconclusive_not_warn() -> None:
    j = judge_value(rate_threshold(), 95.0, "%", 20)
    assert j.verdict == INCONCLUSIVE
    assert j.limit == "< 95 %" and j.interval == pytest.approx((76.39, 99.11), abs=0.01)
    assert j.samples_needed is None  # the reading sits on the level: no sample size would settle it


def test_twenty_of_twenty_cannot_rule_out_the_fail_level_and_says_how_many_would() -> None:
    j = judge_value(rate_threshold(), 100.0, "%", 20)
    assert j.verdict == INCONCLUSIVE
    assert j.samples_needed == 73  # n/(n + z²) >= 0.95 from n = 73 on
    assert judge_value(rate_threshold(), 100.0, "%", 73).verdict == PASS
    assert judge_value(rate_threshold(), 100.0, "%", 72).verdict == INCONCLUSIVE


def test_a_breach_beyond_the_noise_fails_and_a_clean_large_sample_passes() -> None:
    assert judge_value(rate_threshold(), 50.0, "%", 20).verdict == FAIL  # 10 errors in 20: whole interval < 95
    assert judge_value(rate_threshold(), 94.0, "%", 10000).verdict == FAIL
    assert judge_value(rate_threshold(), 99.9, "%", 10000).verdict == PASS
    assert judge_value(rate_threshold(), 98.0, "%", 10000).verdict == WARN  # whole interval below the warn level


def test_a_warn_level_is_asserted_only_beyond_the_noise() -> None:
    # 3 errors in 200 = 98.5 %: reads as a WARN, but the interval reaches above 99 %
    j = judge_value(rate_threshold(), 98.5, "%", 200)
    assert j.verdict == INCONCLUSIVE and j.limit == "< 99 %" and j.samples_needed and j.samples_needed > 200
    # 2 errors in 400 = 99.5 %: fail level ruled out, the reading does not warn
    assert judge_value(rate_threshold(), 99.5, "%", 400).verdict == PASS


def test_error_rates_are_judged_the_same_way() -> None:
    t = Threshold("performance.error_rate", parse_condition("> 5", "performance.error_rate"))
    assert judge_value(t, 5.0, "%", 20).verdict == INCONCLUSIVE
    assert judge_value(t, 50.0, "%", 20).verdict == FAIL
    assert judge_value(t, 0.0, "%", 1000).verdict == PASS


def test_without_a_sample_size_the_value_is_judged_as_before() -> None:
    assert judge_value(rate_threshold(), 95.0, "%", None).verdict == WARN
    latency = Threshold("smoke.health.latency_ms", parse_condition("> 3000", "smoke.health.latency_ms"))
    assert judge_value(latency, 4000.0, "ms", 3).verdict == FAIL  # not a rate: no interval


def test_min_samples() -> None:
    t = rate_threshold(min_samples=100)
    j = judge_value(t, 100.0, "%", 50)
    assert j.verdict == INCONCLUSIVE and j.samples_needed == 100 and "fewer than min_samples = 100" in j.why
    assert judge_value(t, 100.0, "%", 500).verdict == PASS
    unknown = judge_value(t, 100.0, "%", None)
    assert unknown.verdict == INCONCLUSIVE and "unknown number" in unknown.why


def test_min_samples_in_thresholds_toml(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text('[metrics]\n"performance.success_rate" = { fail = "< 95", min_samples = 100 }\n')
    policy = load_policy(path, "staging")
    threshold = policy.lookup(RATE)
    assert threshold is not None and threshold.min_samples == 100
    for bad in ("0", '"many"'):
        path.write_text(f'[metrics]\n"performance.success_rate" = {{ fail = "< 95", min_samples = {bad} }}\n')
        with pytest.raises(ConfigError, match="min_samples"):
            load_policy(path, "staging")


def test_samples_needed_is_the_first_sample_size_that_settles_it() -> None:
    cond = parse_condition("< 95", RATE)
    n = samples_needed(98.0, cond)
    assert n is not None
    assert wilson_interval(98.0, n)[0] >= 95.0 > wilson_interval(98.0, n - 1)[0]
    assert samples_needed(95.0, cond) is None


# --------------------------------------------------------------------------------------------------
# the verdict of a run


def policy() -> Policy:
    return Policy(None, (rate_threshold(),))


def test_inconclusive_ranks_between_pass_and_warn() -> None:
    assert worst([PASS, INCONCLUSIVE]) == INCONCLUSIVE
    assert worst([INCONCLUSIVE, WARN]) == WARN
    assert worst([INCONCLUSIVE, FAIL]) == FAIL


def test_an_inconclusive_rate_blocks_only_with_fail_on_inconclusive() -> None:
    metrics = [make_metric(RATE, 95.0, labels={"mode": "probe"}, samples=20)]
    tally = {"performance": Tally(passed=1)}
    lenient = judge("prod", metrics, policy(), tally)
    assert lenient.verdict == INCONCLUSIVE and not lenient.failed
    assert lenient.categories["performance"]["verdict"] == INCONCLUSIVE
    result = lenient.metrics[0]
    assert result.samples == 20 and result.interval is not None
    assert "n = 20" in result.judged and "95 % interval 76.4 to 99.1 %" in result.judged
    strict = judge("prod", metrics, policy(), tally, fail_on_inconclusive=True)
    assert strict.failed and strict.thresholds() == [(strict.metrics[0], True)]
    assert final_status(0, lenient) == 0 and final_status(0, strict) == 1


def test_nothing_checked_is_no_checks_and_blocks() -> None:
    for tallies in ({}, {"crud": Tally(skipped=3)}):  # nothing selected; everything skipped
        verdict = judge("staging", [], policy(), tallies)
        assert verdict.verdict == NO_CHECKS and verdict.failed
        assert final_status(0, verdict) == 5 and final_status(5, verdict) == 5
    # a metric nobody set a threshold for is not a check either
    info_only = judge("staging", [make_metric("custom.queue_depth_count", 3)], policy(), {})
    assert info_only.metrics[0].verdict == INFO and info_only.verdict == NO_CHECKS
    # one check that ran is enough
    assert judge("staging", [], policy(), {"smoke": Tally(passed=1)}).verdict == PASS


def test_exit_codes_follow_the_verdict() -> None:
    warn = judge("staging", [make_metric(RATE, 98.0, samples=10000)], policy(), {"performance": Tally(passed=1)})
    assert warn.verdict == WARN and final_status(0, warn) == 0
    warn.fail_on_warn = True
    assert final_status(0, warn) == 1
    assert final_status(2, warn) == 2  # interrupted stays interrupted
    assert final_status(3, warn) == 3


def test_metric_samples_cross_xdist_as_plain_values() -> None:
    m = make_metric("smoke.health.latency_ms", 12.0, labels={"path": "/health"}, samples=3,
                    values=[300.0, 12.0, 11.0])
    back = Metric.from_dict(m.to_dict())
    assert back == m and back.values == (300.0, 12.0, 11.0)
    legacy = Metric.from_dict({"name": "smoke.health.latency_ms", "value": 1.0})
    assert legacy.samples is None and legacy.values == ()
    with pytest.raises(ValueError, match="samples"):
        make_metric(RATE, 99.0, samples=-1)
    assert math.isfinite(m.value)
