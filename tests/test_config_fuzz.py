"""Property-based tests: whatever TOML or threshold text comes in, the loaders answer with a result or a
clean ConfigError/ValueError, never another exception."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_deploygate.config import ENVIRONMENT_SPEC, PROJECT_SPEC, ConfigError, load_project
from pytest_deploygate.schema import Either, MapOf, Num, OneOf, Section
from pytest_deploygate.thresholds import load_policy, parse_condition

KEYS = ["service", "defaults", "environments", "staging", "prod", "base_url", "stage", "protected", "launch",
        "aws", "region", "auth", "value", "resources", "tables", "smoke", "health", "path", "status", "crud",
        "collections", "isolation", "performance", "users", "duration_s", "security", "allowlist", "expires",
        "metrics", "fail", "warn", "publish", "webhook", "url", "http", "read_timeout_s", "tasks", "endpoints",
        "protected_endpoints", "error_probes", "method", "distributed", "expect_workers", "frontend", "expect",
        "cloudwatch", "monitoring", "functions", "queues", "alarms", "name"]
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
    if isinstance(v, datetime.date):
        return v.isoformat()  # a TOML local date
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


# Schema-guided: tables shaped like the real sections (each key optional, values mostly of the right type,
# sometimes not), so the builders behind validation meet the combinations a user can write.

TEXTS = st.sampled_from(["", "x", "/health", "/api/{stage}", "{service}-{stage}", "{nope}", "${NOPE}", "${HOME}",
                         "GET", "post", "2026-01-01", "not-a-date", "https://hooks.example.test/${HOME}"])


def _from_spec(spec: object, depth: int = 0) -> st.SearchStrategy[object]:
    if isinstance(spec, type) and issubclass(spec, Section):
        return _from_spec(spec.schema(), depth)
    if isinstance(spec, dict):
        return st.fixed_dictionaries({}, optional={k: _from_spec(v, depth + 1) for k, v in spec.items()})
    if isinstance(spec, MapOf):
        return st.dictionaries(st.sampled_from(["a", "b", "FunctionName"]), _from_spec(spec.spec, depth + 1),
                               max_size=2)
    if isinstance(spec, list):
        return st.lists(_from_spec(spec[0], depth + 1), max_size=2)
    if isinstance(spec, Either):
        return st.one_of(*(_from_spec(s, depth) for s in spec.specs))
    if isinstance(spec, OneOf):
        return st.one_of(st.sampled_from(spec.choices), TEXTS)
    if isinstance(spec, Num):
        low, high = spec.low if spec.low is not None else -10, spec.high if spec.high is not None else 10**6
        around = st.sampled_from([low, high, low - 1, high + 1, (low + high) / 2, 0, 1, 2])
        return around.map(lambda x: int(x) if spec.integer else float(x))
    if spec is bool:
        return st.booleans()
    if spec is int:
        return st.integers(-2, 200)
    if spec is str:
        return TEXTS
    if spec is datetime.date:
        return st.dates(datetime.date(2020, 1, 1), datetime.date(2040, 1, 1))
    return st.one_of(TEXTS, st.integers(0, 3), st.booleans())  # object, NUMBER


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_from_spec(ENVIRONMENT_SPEC), st.dictionaries(st.sampled_from(["dev", "prod"]), _from_spec(ENVIRONMENT_SPEC),
                                                     min_size=1, max_size=2),
       _from_spec(PROJECT_SPEC["publish"]))
def test_tables_shaped_like_the_sections_give_results_or_config_errors(
        defaults: dict[str, object], envs: dict[str, dict[str, object]], publish: dict[str, object]) -> None:
    doc: dict[str, object] = {"service": "svc", "defaults": {"base_url": "http://127.0.0.1:1", **defaults},
                              "environments": envs, "publish": publish}
    _check(_toml_doc(doc), lambda p: load_project(p, environ={"HOME": "/root"}))


def _toml_doc(doc: dict[str, object]) -> str:
    """``doc`` as TOML: every top-level table as one line of inline tables."""
    return "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in doc.items())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from(["performance.p95_ms", "performance.success_rate", "x.y_count"]))
def test_threshold_expressions_parse_or_raise_value_error(text: str, metric: str) -> None:
    try:
        cond = parse_condition(text, metric)
    except ValueError as exc:
        assert "bad threshold" in str(exc)
    else:
        assert cond.op in ("<", "<=", ">", ">=", "==", "!=")


# --------------------------------------------------------------------------------------------------
# Bytes, encodings, nesting depth and non-finite numbers: still only results or clean ConfigErrors

VALID = """service = "svc"
[defaults.performance]
users = 5
duration_s = 10
tasks = [{ path = "/health" }]
[environments.staging]
base_url = "http://127.0.0.1:1"
[environments.prod]
base_url = "http://127.0.0.1:2"
protected = true
"""
VALID_POLICY = '[metrics]\n"performance.p95_ms" = { warn = "> 1000", fail = "> 3000" }\n'


def _load_bytes(raw: bytes) -> None:
    """Load ``raw`` as a project and as a policy: a result or a ConfigError with a message naming the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deploygate.toml"
        path.write_bytes(raw)
        for loader in (lambda: load_project(path, environ={}), lambda: load_policy(path, "staging")):
            try:
                loader()
            except ConfigError as exc:
                assert exc.file == str(path) and str(exc).startswith(str(path)), str(exc)


FAST = settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_give_results_or_config_errors(raw: bytes) -> None:
    _load_bytes(raw)


@FAST
@given(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig", "latin-1",
                        "cp1252", "utf-8"]),
       st.text(alphabet=st.characters(max_codepoint=0xff), max_size=20),
       st.sampled_from([VALID, VALID_POLICY]))
def test_any_encoding_gives_results_or_config_errors(encoding: str, extra: str, text: str) -> None:
    body = f"# {extra}\n{text}".replace("\r", "")
    raw = body.encode(encoding, errors="replace")
    _load_bytes(raw)
    if encoding in ("utf-8", "utf-8-sig") and "\x00" not in body:
        # UTF-8, with or without a byte-order mark, is TOML: these load (or fail only on their content)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "deploygate.toml"
            path.write_bytes(raw)
            try:
                load_project(path, environ={}) if text is VALID else load_policy(path, "staging")
            except ConfigError as exc:
                assert "UTF" not in str(exc) and "text file" not in str(exc), str(exc)


@FAST
@given(st.integers(1, 3000), st.sampled_from(["array", "inline", "header", "mixed"]))
def test_any_nesting_depth_gives_results_or_config_errors(depth: int, kind: str) -> None:
    if kind == "array":
        nested = "x = " + "[" * depth + "1" + "]" * depth
    elif kind == "inline":
        nested = "x = " + "{ a = " * depth + "1" + " }" * depth
    elif kind == "header":
        nested = "[" + ".".join(["a"] * depth) + "]\nb = 1"
    else:
        nested = "x = " + "[{ a = " * depth + "1" + " }]" * depth
    for text in (VALID + nested + "\n", VALID_POLICY + nested + "\n"):
        _load_bytes(text.encode())


NUMBER_KEYS = [
    ("defaults.http", "connect_timeout_s"), ("defaults.http", "read_timeout_s"), ("defaults.http", "retries"),
    ("defaults.performance", "users"), ("defaults.performance", "duration_s"),
    ("defaults.performance", "warmup_s"), ("defaults.performance", "spawn_rate"),
    ("defaults.performance", "max_users"), ("defaults.performance", "max_duration_s"),
    ("defaults.performance", "min_requests"), ("defaults.performance", "probe_requests"),
    ("defaults.crud", "ttl_s"), ("defaults.security.audit", "timeout_s"), ("defaults.security.tls", "min_days"),
]
WEIRD_NUMBERS = st.one_of(
    st.sampled_from(["nan", "+nan", "-nan", "inf", "+inf", "-inf", "1e300", "-1e300", "1e309", "1e-400", "0",
                     "-0.0", "9" * 400, "-" + "9" * 40, "0x7fffffffffffffff", "1_000_000_000_000_000"]),
    st.floats().map(repr),
    st.integers(-(10**30), 10**30).map(str),
)


def _finite_everywhere(value: object) -> None:
    """Every number in a loaded project is finite (walks dataclasses, mappings and sequences)."""
    if isinstance(value, float):
        assert math.isfinite(value), value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _finite_everywhere(getattr(value, f.name))
    elif isinstance(value, dict):
        for v in value.values():
            _finite_everywhere(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _finite_everywhere(v)


@FAST
@given(st.lists(st.tuples(st.sampled_from(NUMBER_KEYS), WEIRD_NUMBERS), min_size=1, max_size=4,
                unique_by=lambda kv: kv[0]),
       st.booleans())
def test_non_finite_and_huge_numbers_give_results_or_config_errors(values: list[tuple[tuple[str, str], str]],
                                                                   as_array: bool) -> None:
    tables: dict[str, dict[str, str]] = {"defaults.performance": {"users": "5", "duration_s": "10"}}
    for (table, key), number in values:
        tables.setdefault(table, {})[key] = number
    if as_array:
        tables["defaults.performance"]["wait_s"] = f"[{values[0][1]}, {values[0][1]}]"
    text = 'service = "svc"\n[environments.staging]\nbase_url = "http://127.0.0.1:1"\n'
    for table, entries in tables.items():
        text += f"[{table}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deploygate.toml"
        path.write_text(text)
        try:
            project = load_project(path, environ={})
        except ConfigError as exc:
            assert str(exc).startswith(str(path)), str(exc)
        else:
            _finite_everywhere(project)


@FAST
@given(st.sampled_from([">", "<", ">=", "<=", "==", "!="]), st.integers(1, 700),
       st.sampled_from(["", " ms", " s", " %"]), st.sampled_from(["performance.p95_ms", "performance.success_rate"]))
def test_threshold_levels_are_finite_or_rejected(op: str, digits: int, suffix: str, metric: str) -> None:
    text = f"{op} {'9' * digits}{suffix}"
    try:
        cond = parse_condition(text, metric)
    except ValueError as exc:
        assert "bad threshold" in str(exc)
    else:
        assert math.isfinite(cond.value) and abs(cond.value) <= 1e15
