"""Configuration reading (pure, fast): the line of a key in a TOML text, closed-schema validation and its
messages, text decoding, nesting depth, ``${VAR}`` expansion. Small texts with known answers; the whole
configuration loaders are covered in test_config_errors.py and test_config_fuzz.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_deploygate.schema import (
    MAX_DEPTH,
    NUMBER,
    ConfigError,
    Either,
    MapOf,
    Num,
    OneOf,
    Source,
    decode_toml,
    depth_error,
    expand_vars,
    finite,
    locate,
    parse_toml_text,
    validate,
)

TEXT = """\
service = "shop"

[defaults]
base_url = "https://api.example.test"

[environments.staging]
stage = "staging"
http = { read_timeout_s = 5, retries = 2 }

[environments.prod]
stage = "prod"
protected = true

[environments.prod.performance]
users = 5

[metrics]
"performance.avg_ms" = { fail = "> 2000" }
'smoke.health.latency_ms' = { warn = "> 1000",
    fail = "> 3000" }
"""


# --------------------------------------------------------------------------------------------------
# where a key is


@pytest.mark.parametrize(("path", "line"), [
    (("service",), 1),
    (("defaults",), 3),
    (("defaults", "base_url"), 4),
    (("environments", "staging"), 6),
    (("environments", "staging", "stage"), 7),  # not prod's stage (line 11): the key in its own table
    (("environments", "prod", "stage"), 11),
    (("environments", "prod", "protected"), 12),
    (("environments", "prod", "performance"), 14),
    (("environments", "prod", "performance", "users"), 15),
    (("environments", "staging", "http", "retries"), 8),  # inside an inline table
    (("metrics", "performance.avg_ms"), 18),  # a quoted key with dots
    (("metrics", "performance.avg_ms", "fail"), 18),
    (("metrics", "smoke.health.latency_ms"), 19),  # single quotes
    (("metrics", "smoke.health.latency_ms", "fail"), 20),  # an inline table over two lines
])
def test_the_line_of_a_key(path: tuple[str, ...], line: int) -> None:
    assert locate(TEXT, path) == line


def test_a_table_known_only_by_its_subtables_is_found_at_the_first_of_them() -> None:
    text = 'service = "x"\n\n[environments.dev.http]\nretries = 1\n'
    assert locate(text, ("environments", "dev")) == 3
    assert locate(text, ("environments",)) == 3


def test_array_positions_are_skipped_and_unknown_keys_have_no_line() -> None:
    text = "[security]\nrequirements = [\n  \"a.txt\",\n]\n"
    assert locate(text, ("security", "requirements", "[0]")) == 2
    assert locate(text, ("nowhere",)) is None
    assert locate(text, ()) is None
    assert locate(text, ("[0]",)) is None


def test_a_key_of_another_table_is_the_best_guess_when_its_own_is_missing() -> None:
    # ``environments.dev.stage`` is not there: the first ``stage =`` anywhere is better than no line
    assert locate(TEXT, ("environments", "dev", "stage")) == 7


# --------------------------------------------------------------------------------------------------
# validation against a closed schema

SPEC: dict[str, Any] = {
    "service": str,
    "environments": MapOf({
        "protected": bool,
        "users": Num(1, 1000, integer=True),
        "timeout_s": Num(0, 3600, above=True),
        "weight": NUMBER,
        "retries": int,
        "client": OneOf("http", "fast"),
        "status": Either(int, [int]),
        "tags": [str],
        "body": object,
    }),
}


def _error(text: str) -> ConfigError:
    src = Source(Path("deploygate.toml"), text, parse_toml_text(text, Path("deploygate.toml")))
    with pytest.raises(ConfigError) as info:
        validate(src.data, SPEC, src, ())
    return info.value


def _ok(text: str) -> None:
    src = Source(Path("deploygate.toml"), text, parse_toml_text(text, Path("deploygate.toml")))
    validate(src.data, SPEC, src, ())


def test_a_valid_document_passes() -> None:
    _ok('service = "s"\n[environments.dev]\nprotected = false\nusers = 10\ntimeout_s = 0.5\nweight = 2\n'
        'retries = 0\nclient = "fast"\nstatus = [200, 201]\ntags = ["a"]\nbody = { n = [1, 2.5] }\n'
        "[environments.prod]\nstatus = 200\n")


def test_an_unknown_key_names_its_path_line_and_the_known_keys() -> None:
    err = _error('service = "s"\n[environments.dev]\nprotected = true\nprotectd = true\n')
    assert (err.file, err.line, err.key) == ("deploygate.toml", 4, "environments.dev.protectd")
    assert err.message.startswith("unknown key 'protectd' (known: body, client, protected, retries, status,")
    assert str(err).startswith("deploygate.toml:4: environments.dev.protectd: unknown key 'protectd'")
    assert _error("servce = 1\n").key == "servce"


@pytest.mark.parametrize(("line", "key", "message"), [
    ('protected = "no"', "protected", "expected a boolean, got 'no'"),
    ("users = 0", "users", "expected an integer >= 1 and <= 1000, got 0"),
    ("users = 2.5", "users", "expected an integer >= 1 and <= 1000, got 2.5"),
    ("users = true", "users", "expected an integer >= 1 and <= 1000, got True"),
    ("timeout_s = 0", "timeout_s", "expected a number > 0 and <= 3600, got 0"),
    ("timeout_s = nan", "timeout_s", "expected a number > 0 and <= 3600, got nan (not a number)"),
    ("weight = inf", "weight", "expected a number, got inf: numbers must be finite and at most 1e+15 in magnitude"),
    ("retries = 1.0", "retries", "expected an integer, got 1.0"),
    ('client = "slow"', "client", "expected one of 'http', 'fast', got 'slow'"),
    ('status = "200"', "status", "expected an integer or an array, got '200'"),
    ('tags = "a"', "tags", "expected an array, got str"),
    ("tags = [1]", "tags.[0]", "expected a string, got 1"),
    ("body = { a = [1, inf] }", "body.a.[1]", "expected a finite number, got inf"),
])
def test_a_wrong_value_says_what_was_expected_and_where(line: str, key: str, message: str) -> None:
    err = _error(f'service = "s"\n[environments.dev]\n{line}\n')
    assert err.key == f"environments.dev.{key}" and err.line == 3
    assert err.message.startswith(message), err.message


def test_a_table_where_a_value_belongs_and_back() -> None:
    assert _error("[service]\nx = 1\n").message == "expected a string, got {'x': 1}"
    assert _error('environments = "dev"\n').message == "expected a table, got str"
    assert _error('[environments]\ndev = "x"\n').message == "expected a table, got str"


def test_numbers_are_finite_and_bounded() -> None:
    assert finite(1e15) and finite(-10**15) and finite(0)
    assert not finite(1e16) and not finite(10**16) and not finite(float("inf")) and not finite(float("nan"))
    assert Num(0, 1, above=True).describe() == "a number > 0 and <= 1"
    assert Num(integer=True).describe() == "an integer"


def test_a_configuration_error_without_a_place_is_just_its_message() -> None:
    assert str(ConfigError("boom")) == "boom"
    assert str(ConfigError("boom", file="f.toml")) == "f.toml: boom"
    assert str(ConfigError("boom", file="f.toml", line=3, key="a.b")) == "f.toml:3: a.b: boom"


def test_an_error_at_a_prefixed_table_points_into_pyproject() -> None:
    text = '[project]\nname = "x"\n\n[tool.deploygate]\nservice = "s"\nservce = 1\n'
    data = parse_toml_text(text, Path("pyproject.toml"))["tool"]["deploygate"]
    src = Source(Path("pyproject.toml"), text, data, prefix=("tool", "deploygate"))
    with pytest.raises(ConfigError) as info:
        validate(data, SPEC, src, ())
    assert (info.value.line, info.value.key) == (6, "servce")


# --------------------------------------------------------------------------------------------------
# reading the text


def test_text_must_be_utf8() -> None:
    path = Path("deploygate.toml")
    assert decode_toml(b'\xef\xbb\xbfservice = "s"\n', path) == 'service = "s"\n'  # a UTF-8 BOM is dropped
    with pytest.raises(ConfigError, match="UTF-16 text") as info:
        decode_toml('service = "s"\n'.encode("utf-16"), path)
    assert info.value.line == 1
    with pytest.raises(ConfigError, match="holds NUL bytes") as info:
        decode_toml(b'a = 1\nb = 2\n\x00\n', path)
    assert info.value.line == 3
    with pytest.raises(ConfigError, match="byte 0xe9") as info:
        decode_toml("a = 1\n# caf\u00e9\n".encode("latin-1"), path)
    assert info.value.line == 2


def test_malformed_toml_names_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_toml_text('a = 1\nb = \n', Path("deploygate.toml"))
    assert info.value.line == 2 and info.value.message.startswith("malformed TOML: ")


def test_nesting_depth() -> None:
    assert depth_error({"a": {"b": [1, {"c": 2}]}}) is None
    assert depth_error({"a": {"b": {"c": 1}}}, limit=2) == ("a", "b", "c")
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    assert depth_error({"x": deep}) is not None
    text = "x = " + "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2) + "\n"
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        parse_toml_text(text, Path("deploygate.toml"))
    assert info.value.line == 1 and info.value.key is not None and info.value.key.startswith("x.[0]")


# --------------------------------------------------------------------------------------------------
# ${VAR} expansion


def test_variables_expand_with_defaults_and_secrets_are_remembered() -> None:
    src = Source(Path("deploygate.toml"), "", {})
    secrets: set[str] = set()
    value = {"url": "https://${HOST}/${PREFIX:-v1}", "list": ["${HOST}", 3], "plain": "no $ here"}
    out = expand_vars(value, src, (), {"HOST": "api.test"}, secrets)
    assert out == {"url": "https://api.test/v1", "list": ["api.test", 3], "plain": "no $ here"}
    assert secrets == {"api.test", "v1"}  # whatever a reference expands to may be secret


def test_a_missing_variable_names_the_key_and_the_variable() -> None:
    text = '[environments.prod]\nauth = { value = "Bearer ${API_TOKEN}" }\n'
    src = Source(Path("deploygate.toml"), text, parse_toml_text(text, Path("deploygate.toml")))
    with pytest.raises(ConfigError) as info:
        expand_vars(src.data, src, (), {})
    err = info.value
    assert err.message == "environment variable ${API_TOKEN} is not set"
    assert (err.key, err.line) == ("environments.prod.auth.value", 2)


def test_sections_compare_hash_and_print_as_their_dataclass_would() -> None:
    """The sections of sections.py and resources.py are declared ``eq=False, repr=False`` (each generated method
    costs start-up time): Section's one ``__eq__``/``__hash__``/``__repr__`` answer as @dataclass's own would,
    checked on every section of this repository's configuration against a dataclass twin of the same fields."""
    import dataclasses

    from pytest_deploygate import resources, sections
    from pytest_deploygate.config import load_project
    from pytest_deploygate.schema import Section

    declared = [c for m in (sections, resources) for c in vars(m).values()
                if isinstance(c, type) and issubclass(c, Section) and c.__module__ == m.__name__]
    assert len(declared) >= 30
    for cls in declared:  # none compiles its own: Section's serve them all
        assert not {"__eq__", "__hash__", "__repr__"} & set(vars(cls)), cls

    def walk(value: Any) -> Any:
        if isinstance(value, Section):
            yield value
            for f in dataclasses.fields(value):  # type: ignore[arg-type]
                yield from walk(getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                yield from walk(item)

    project = load_project(Path(__file__).resolve().parent.parent / "deploygate.toml")
    found = [s for env in project.environments.values() for f in dataclasses.fields(env)
             for s in walk(getattr(env, f.name))]
    assert len({type(s) for s in found}) >= 10
    for section in found:
        names = [f.name for f in dataclasses.fields(section)]
        twin_cls = dataclasses.make_dataclass(type(section).__qualname__, names, frozen=True)
        twin = twin_cls(**{n: getattr(section, n) for n in names})
        assert repr(section) == repr(twin)
        same = dataclasses.replace(section)
        assert same == section and not (same != section) and section != twin and section != object()
        try:
            expected = hash(twin)
        except TypeError:
            with pytest.raises(TypeError):
                hash(section)
        else:
            assert hash(section) == expected == hash(same)
        for n in names:  # a field differs: unequal
            changed = dataclasses.replace(section, **{n: object()})
            assert changed != section and (changed == section) is False
