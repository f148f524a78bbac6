"""Property-based tests: whatever TOML or threshold text comes in, the loaders answer with a result or a
clean ConfigError/ValueError, never another exception."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_deploygate.config import ConfigError, load_project
from pytest_deploygate.thresholds import load_policy, parse_condition

KEYS = ["service", "defaults", "environments", "staging", "prod", "base_url", "stage", "protected", "launch",
        "aws", "region", "auth", "value", "resources", "tables", "smoke", "health", "path", "status", "crud",
        "collections", "isolation", "performance", "users", "duration_s", "security", "allowlist", "expires",
        "metrics", "fail", "warn", "publish", "webhook", "url", "http", "read_timeout_s", "tasks"]
scalars = st.one_of(
    st.integers(-10, 10**6), st.booleans(), st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "x", "${NOPE}", "${HOME}", "{stage}", "{nope}", "> 5", "< 95%", "2026-01-01", "demo",
                     "http://127.0.0.1:1", "GET", "/health", "{service}-{stage}-t"]),
    st.text(string.printable, max_size=12),
)
tomlish = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), kids, max_size=5)),
                       max_leaves=25)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"


def _check(text: str, loader) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deploygate.toml"
        path.write_text(text)
        try:
            loader(path)
        except ConfigError as exc:
            assert str(exc)  # a message that says something
        except UnicodeDecodeError:
            pass  # not text at all: reported by read_toml as a ConfigError in practice


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), tomlish, max_size=6))
def test_random_structures_give_results_or_config_errors(doc: dict[str, object]) -> None:
    text = "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in doc.items())
    _check(text, lambda p: load_project(p, environ={"HOME": "/root"}))
    _check(text, lambda p: load_policy(p, "staging"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_gives_results_or_config_errors(text: str) -> None:
    _check(text, lambda p: load_project(p, environ={}))
    _check(text, lambda p: load_policy(p, "prod"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["staging", "prod", "dev"]),
                       st.dictionaries(st.sampled_from(KEYS), tomlish, max_size=6), max_size=3))
def test_random_environments_give_results_or_config_errors(envs: dict[str, dict[str, object]]) -> None:
    lines = ['service = "svc"']
    for name, body in envs.items():
        lines.append(f"[environments.{name}]")
        lines += [f'"{k}" = {_toml_value(v)}' for k, v in body.items()]
    _check("\n".join(lines), lambda p: load_project(p, environ={}))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from(["performance.p95_ms", "performance.success_rate", "x.y_count"]))
def test_threshold_expressions_parse_or_raise_value_error(text: str, metric: str) -> None:
    try:
        cond = parse_condition(text, metric)
    except ValueError as exc:
        assert "bad threshold" in str(exc)
    else:
        assert cond.op in ("<", "<=", ">", ">=", "==", "!=")
