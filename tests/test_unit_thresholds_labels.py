"""Thresholds with label selectors (issue 12): ``"smoke.api.latency_ms{path=/api/products}"`` beside the
name-wide default. Precedence (most specific wins): the exact name with the most matching labels (exact
labels, then a subset), then the name-wide threshold, then globs (labelled first). Validation keeps
naming unknown metrics, with a suggestion; a malformed selector is a file:line: key error. Pure, fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_deploygate.gate import judge, make_metric
from pytest_deploygate.schema import ConfigError, Source, tomllib
from pytest_deploygate.thresholds import FAIL, PASS, Policy, parse_key, parse_policy, unused_thresholds

POLICY = '''[metrics]
"smoke.api.latency_ms" = { fail = "> 3000" }
"smoke.api.latency_ms{path=/api/products}" = { fail = "> 500" }
"smoke.api.latency_ms{method=POST,path=/api/products}" = { fail = "> 800" }
"smoke.api.latency_ms{method=GET}" = { fail = "> 1500" }
"smoke.*.latency_ms{path=/health}" = { fail = "> 200" }
"smoke.*.latency_ms" = { fail = "> 4000" }

[environments.prod.metrics]
"smoke.api.latency_ms{path=/api/products}" = { fail = "> 300" }
'''


def _policy(text: str = POLICY, env: str = "staging") -> Policy:
    return parse_policy(Source(Path("thresholds.toml"), text, tomllib.loads(text)), env)


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _policy(text)
    return info.value


def _limit(policy: Policy, name: str, **labels: str) -> str | None:
    t = policy.lookup(name, labels)
    return None if t is None else str(t.fail)


def test_parse_key_splits_name_and_sorted_labels() -> None:
    assert parse_key("smoke.api.latency_ms") == ("smoke.api.latency_ms", ())
    assert parse_key("smoke.api.latency_ms{path=/api/x}") == ("smoke.api.latency_ms", (("path", "/api/x"),))
    assert parse_key("m{ path = /a=b , method=GET }") == ("m", (("method", "GET"), ("path", "/a=b")))
    for bad in ("m{path}", "m{=x}", "m{path=}", "m{path=/a", "m{a=1,a=2}", "m{a=1}{b=2}"):
        with pytest.raises(ValueError, match="bad label selector"):
            parse_key(bad)


def test_exact_labels_beat_a_subset_which_beats_the_name_wide_default() -> None:
    policy = _policy()
    api = "smoke.api.latency_ms"
    # both labels of the two-label selector: it is the most specific
    assert _limit(policy, api, path="/api/products", method="POST") == "> 800 ms"
    # the one-label selector: an exact match, and a subset of a metric with more labels
    assert _limit(policy, api, path="/api/products") == "> 500 ms"
    assert _limit(policy, api, path="/api/products", region="eu") == "> 500 ms"
    # equally specific selectors (path=… and method=GET both match): the first written wins
    assert _limit(policy, api, path="/api/products", method="GET") == "> 500 ms"
    assert _limit(policy, api, path="/api/other", method="GET") == "> 1500 ms"
    # no selector matches: the name-wide threshold, never a glob
    assert _limit(policy, api, path="/api/other") == "> 3000 ms"
    assert _limit(policy, api) == "> 3000 ms"


def test_globs_come_after_exact_names_labelled_first() -> None:
    policy = _policy()
    assert _limit(policy, "smoke.health.latency_ms", path="/health") == "> 200 ms"
    assert _limit(policy, "smoke.health.latency_ms", path="/ready") == "> 4000 ms"
    assert _limit(policy, "smoke.health.latency_ms") == "> 4000 ms"
    # an exact name-wide threshold beats a labelled glob
    assert _limit(policy, "smoke.api.latency_ms", path="/health") == "> 3000 ms"
    assert policy.lookup("crud.create_ms", {"path": "/health"}) is None


def test_a_selector_never_judges_a_metric_without_its_labels() -> None:
    policy = _policy('[metrics]\n"smoke.api.latency_ms{path=/api/products}" = { fail = "> 500" }\n')
    assert policy.lookup("smoke.api.latency_ms") is None
    assert policy.lookup("smoke.api.latency_ms", {"path": "/api/other"}) is None
    assert policy.lookup("smoke.api.latency_ms", {"path": "/api/products"}) is not None


def test_an_environment_overrides_one_selector() -> None:
    assert _limit(_policy(env="prod"), "smoke.api.latency_ms", path="/api/products") == "> 300 ms"
    assert _limit(_policy(env="prod"), "smoke.api.latency_ms", path="/api/other") == "> 3000 ms"


def test_judge_uses_the_labels_of_each_metric() -> None:
    policy = _policy()
    metrics = [make_metric("smoke.api.latency_ms", 900.0, labels={"path": "/api/products"}),
               make_metric("smoke.api.latency_ms", 900.0, labels={"path": "/api/stories"})]
    verdict = judge("staging", metrics, policy, {})
    by_path = {r.labels["path"]: r for r in verdict.metrics}
    assert by_path["/api/products"].verdict == FAIL and by_path["/api/products"].limit == "> 500 ms"
    assert by_path["/api/stories"].verdict == PASS
    assert verdict.failed


def test_unused_thresholds_know_labels() -> None:
    policy = _policy('[metrics]\n"smoke.api.latency_ms" = { fail = "> 3000" }\n'
                     '"smoke.api.latency_ms{path=/api/products}" = { fail = "> 500" }\n')
    assert unused_thresholds(policy, ["smoke.api.latency_ms"]) == ["smoke.api.latency_ms{path=/api/products}"]
    assert unused_thresholds(policy, [("smoke.api.latency_ms", {"path": "/api/products"})]) == [
        "smoke.api.latency_ms"]
    assert unused_thresholds(policy, [("smoke.api.latency_ms", {"path": "/api/products"}),
                                      ("smoke.api.latency_ms", {"path": "/x"})]) == []


def test_validation_names_the_metric_behind_a_selector() -> None:
    err = _error('[metrics]\n"smoke.api.latency_ms" = { fail = "> 1" }\n'
                 '"smoke.api.latncy_ms{path=/api/x}" = { fail = "> 500" }\n')
    assert err.line == 3
    assert "unknown metric 'smoke.api.latncy_ms'" in str(err)
    assert "did you mean 'smoke.api.latency_ms'?" in str(err)
    err = _error('[metrics]\n"smoke.api.latency_ms{path}" = { fail = "> 500" }\n')
    assert err.line == 2 and "bad label selector" in str(err) and "'path' is not label=value" in str(err)
    # units come from the name, not the selector
    err = _error('[metrics]\n"smoke.api.latency_ms{path=/x}" = { fail = "> 5 %" }\n')
    assert "does not match smoke.api.latency_ms (unit ms)" in str(err)
    # a custom metric declared once may carry selectors elsewhere
    policy = _policy('[metrics]\n"team.login_ms" = { fail = "> 800", custom = true }\n'
                     '"team.login_ms{region=eu}" = { fail = "> 400" }\n')
    assert _limit(policy, "team.login_ms", region="eu") == "> 400 ms"


def test_lookup_stays_one_plan_per_name() -> None:
    policy = _policy()
    for i in range(1000):
        policy.lookup("smoke.api.latency_ms", {"path": f"/api/{i}"})
    assert set(policy._plans) == {"smoke.api.latency_ms"}
