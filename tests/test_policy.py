"""The gate policy's own checks (pure, fast): unknown metric names, warn looser than fail, empty policies,
non-finite levels, and thresholds that judged nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate.config import ConfigError
from pytest_deploygate.schema import Source, tomllib
from pytest_deploygate.thresholds import (
    load_policy,
    looser_warn,
    parse_condition,
    parse_policy,
    unused_note,
    unused_thresholds,
)

REPO = Path(__file__).resolve().parent.parent


def _policy(text: str, env: str = "staging"):  # type: ignore[no-untyped-def]
    return parse_policy(Source(Path("thresholds.toml"), text, tomllib.loads(text)), env)


def _error(text: str, env: str = "staging") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _policy(text, env)
    return info.value


def test_a_typo_in_a_metric_name_is_an_error_with_line_key_and_suggestion() -> None:
    err = _error('[metrics]\n"smoke.api.latency_ms" = { fail = "> 1" }\n'
                 '"smoke.helth.latency_ms" = { fail = "> 3000" }\n')
    assert err.line == 3
    assert err.key == "metrics.smoke.helth.latency_ms"
    assert "unknown metric 'smoke.helth.latency_ms'" in str(err)
    assert "did you mean 'smoke.health.latency_ms'?" in str(err)
    assert str(err).startswith("thresholds.toml:3: metrics.smoke.helth.latency_ms: ")


def test_a_typo_in_an_environment_override_is_found_whatever_the_environment() -> None:
    err = _error('[metrics]\n"performance.p95_ms" = { fail = "> 1" }\n'
                 '[environments.prod.metrics]\n"performance.sucess_rate" = { fail = "< 1" }\n', env="staging")
    assert err.key == "environments.prod.metrics.performance.sucess_rate" and err.line == 4
    assert "did you mean 'performance.success_rate'?" in str(err)


def test_a_glob_must_match_a_catalogued_metric() -> None:
    assert _policy('[metrics]\n"crud.*_ms" = { fail = "> 1" }\n').lookup("crud.create_ms") is not None
    err = _error('[metrics]\n"smoke.*.latncy_ms" = { fail = "> 1" }\n')
    assert "unknown metric 'smoke.*.latncy_ms'" in str(err)


def test_custom_metrics_by_prefix_or_declaration() -> None:
    policy = _policy('[metrics]\n"custom.queue_depth_count" = { fail = "> 5" }\n'
                     '"team.login_ms" = { fail = "> 800", custom = true }\n'
                     '[environments.prod.metrics]\n"team.login_ms" = { fail = "> 400" }\n', env="prod")
    assert policy.lookup("team.login_ms").judge(500) == "FAIL"  # type: ignore[union-attr]
    assert policy.lookup("custom.queue_depth_count") is not None
    err = _error('[metrics]\n"team.login_ms" = { fail = "> 800" }\n')
    assert "custom = true" in str(err)


@pytest.mark.parametrize(("warn", "fail", "bad"), [
    ("> 5000", "> 3000", True),
    ("> 1000", "> 3000", False),
    ("> 3000", ">= 3000", False),
    ("< 95", "< 99", True),
    ("< 99", "< 95", False),
    ("< 99", "> 5", True),  # opposite directions
    ("== 1", "> 5", False),
])
def test_warn_looser_than_fail(warn: str, fail: str, bad: bool) -> None:
    metric = "performance.success_rate" if "%" in warn else "isolation.leaks_count"
    assert (looser_warn(parse_condition(warn, metric), parse_condition(fail, metric)) is not None) == bad


def test_a_looser_warn_is_rejected_with_its_key() -> None:
    err = _error('[metrics]\n"performance.p95_ms" = { warn = "> 5000", fail = "> 3000" }\n')
    assert err.key == "metrics.performance.p95_ms.warn" and "looser than fail" in str(err)


def test_an_empty_policy_is_an_error_unless_explicitly_none() -> None:
    assert "no thresholds" in str(_error(""))
    assert "no thresholds" in str(_error("[metrics]\n"))
    assert _policy('policy = "none"\n').thresholds == ()
    assert "policy = \"none\" but 1 threshold" in str(
        _error('policy = "none"\n[metrics]\n"performance.p95_ms" = { fail = "> 1" }\n'))


@pytest.mark.parametrize("level", ["> " + "9" * 400, "> " + "9" * 300 + " s", "< 1" + "0" * 320 + " ms"])
def test_levels_must_be_finite(level: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_condition(level, "performance.p95_ms")
    err = _error(f'[metrics]\n"performance.p95_ms" = {{ fail = "{level}" }}\n')
    assert err.key == "metrics.performance.p95_ms.fail" and err.line == 2


def test_unused_thresholds_are_those_that_judged_nothing() -> None:
    policy = _policy('[metrics]\n"smoke.*.latency_ms" = { fail = "> 1" }\n'
                     '"smoke.health.latency_ms" = { fail = "> 1" }\n'
                     '"performance.p95_ms" = { fail = "> 1" }\n"crud.*_ms" = { fail = "> 1" }\n')
    assert unused_thresholds(policy, ["smoke.health.latency_ms", "crud.create_ms"]) == [
        "smoke.*.latency_ms", "performance.p95_ms"]
    assert unused_thresholds(policy, ["smoke.api.latency_ms", "smoke.health.latency_ms", "performance.p95_ms",
                                      "crud.read_ms"]) == []
    assert unused_thresholds(policy, []) == [t.metric for t in policy.thresholds]


@pytest.mark.parametrize("path", [REPO / "thresholds.toml", REPO / "pytest_deploygate" / "thresholds.toml"])
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_shipped_policies_are_valid(path: Path, env: str) -> None:
    assert load_policy(path, env).thresholds


def test_the_unused_note_covers_the_categories_that_ran() -> None:
    policy = _policy('[metrics]\n"smoke.health.latency_ms" = { fail = "> 1" }\n'
                     '"smoke.api.latency_ms" = { fail = "> 1" }\n'
                     '"performance.p95_ms" = { fail = "> 1" }\n"custom.login_ms" = { fail = "> 1" }\n')
    # a smoke-only run: the performance and custom thresholds are unused by design, the API one is news
    note = unused_note(policy, ["smoke.health.latency_ms"])
    assert note is not None and note.endswith(": smoke.api.latency_ms") and note.startswith("1 threshold(s)")
    assert unused_note(policy, ["smoke.health.latency_ms", "smoke.api.latency_ms"]) is None


def test_min_samples_is_read_per_threshold() -> None:
    policy = _policy('[metrics]\n"performance.success_rate" = { fail = "< 95", min_samples = 50 }\n')
    assert policy.lookup("performance.success_rate").min_samples == 50  # type: ignore[union-attr]
    err = _error('[metrics]\n"performance.success_rate" = { fail = "< 95", min_samples = 0 }\n')
    assert err.key == "metrics.performance.success_rate.min_samples" and "an integer >= 1" in str(err)
