"""The configuration sections (sections.py): each table described once by its dataclass. Pure and fast: the
schemas derived from the fields are the closed schemas the gate always had, a table with nothing in it is
the dataclass defaults, missing or wrong keys are config errors naming file, line and key (never a
TypeError), and an error in an environment's inherited value points at the ``[defaults]`` line that set it."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_deploygate.config import ENVIRONMENT_SECTIONS, ENVIRONMENT_SPEC, Environment, parse_project
from pytest_deploygate.schema import (
    TIMEOUT,
    ConfigError,
    Either,
    MapOf,
    Num,
    OneOf,
    Section,
    Source,
    Where,
    locate,
    tomllib,
)
from pytest_deploygate.sections import (
    METHOD,
    AllowEntry,
    AuthSpec,
    AwsSpec,
    CloudWatchSpec,
    CollectionSpec,
    CrudSpec,
    DistributedSpec,
    EndpointCheck,
    FrontendCheck,
    HealthCheck,
    HttpSpec,
    IsolationSpec,
    LoadTask,
    PerformanceSpec,
    SecuritySpec,
    SmokeSpec,
    WebhookSpec,
)

# --------------------------------------------------------------------------------------------------
# The schemas the fields describe are the schemas the gate had when they were written out by hand

STATUS = Num(100, 599, integer=True)
STATUSES = Either(STATUS, [STATUS])
LOAD_CAP, SECONDS_CAP = 1_000_000, 7 * 86400
#: what a health or endpoint check sends and expects (issue 12)
REQUEST: dict[str, Any] = {"method": METHOD, "body": Either(str, MapOf(object), [object]), "headers": MapOf(str),
                           "expect_json": MapOf(object), "read_only_post": bool}
WRITTEN_OUT: dict[type, dict[str, Any]] = {
    AwsSpec: {"profile": str, "region": str, "endpoint_url": str, "account_id": str},
    AuthSpec: {"header": str, "value": str, "scheme": str,
               "cognito": {"client_id": str, "username": str, "password": str, "user_pool_id": str,
                           "token": OneOf("id", "access")}},
    HttpSpec: {"connect_timeout_s": TIMEOUT, "read_timeout_s": TIMEOUT, "retries": Num(0, 10, integer=True),
               "verify": bool, "ca_bundle": str, "total_timeout_s": TIMEOUT,
               "max_body_bytes": Num(0, 10**12, above=True, integer=True)},
    SmokeSpec: {
        "health": [{"path": str, "status": STATUS, "name": str, **REQUEST}],
        "endpoints": [{"path": str, "status": STATUS, "json": bool, "name": str, **REQUEST,
                       "graphql": {"query": str, "variables": MapOf(object), "operation_name": str}}],
        "frontend": {"page": str, "assets": bool, "config_js": str, "expect": MapOf(str)},
        "samples": Num(1, 25, integer=True),
    },
    CrudSpec: {"collections": [{
        "name": str, "path": str, "item_path": str, "id_field": str,
        "create": MapOf(object), "update": MapOf(object), "update_method": OneOf("PUT", "PATCH"),
        "compare": [str], "list_key": str, "table": str, "table_key": str,
        "expect": {step: STATUSES for step in ("create", "read", "list", "update", "delete", "missing")},
    }], "markers": bool, "ttl_field": str, "ttl_s": Num(1, 10 * 365 * 86400, integer=True)},
    IsolationSpec: {"collection": str, "cors_origins": [str], "datastore": bool, "separate_accounts": bool,
                    "protected_endpoints": [str]},
    PerformanceSpec: {
        "users": Num(1, LOAD_CAP, integer=True), "spawn_rate": Num(0, LOAD_CAP, above=True),
        "duration_s": Num(0, SECONDS_CAP, above=True), "warmup_s": Num(0, SECONDS_CAP),
        "wait_s": [Num(0, 3600)], "pacing_s": Num(0, 3600, above=True), "client": OneOf("http", "fast"),
        "min_requests": int, "workers": Num(1, 1024, integer=True), "max_users": Num(1, LOAD_CAP, integer=True),
        "max_duration_s": Num(0, SECONDS_CAP, above=True), "locustfile": str,
        "abort_on_fail": bool, "probe_requests": int,
        "tasks": [{"name": str, "method": OneOf("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
                   "path": str, "weight": int, "status": STATUSES, "body": MapOf(object)}],
        "distributed": {"expect_workers": Num(1, 100_000, integer=True), "bind_host": str,
                        "bind_port": Num(1, 65535, integer=True), "max_wait_s": Num(0, 3600, above=True)},
    },
    SecuritySpec: {
        "code_paths": [str],
        "bandit": {"severity": OneOf("low", "medium", "high"), "confidence": OneOf("low", "medium", "high"),
                   "exclude": [str]},
        "requirements": [str],
        "audit": {"osv_url": str, "timeout_s": TIMEOUT, "service": OneOf("osv", "pypi"), "installed": bool},
        "allowlist": [{"id": str, "path": str, "reason": str, "expires": Either(str, datetime.date)}],
        "headers": MapOf(str),
        "protected_endpoints": [{"path": str, "method": str}],
        "error_probes": [{"path": str, "method": str, "body": MapOf(object)}],
        "tls": {"min_days": Num(0, 3650, integer=True), "http_url": str},
        "frontend_secrets": bool,
    },
    CloudWatchSpec: {"namespace": str, "dimensions": MapOf(str), "metrics": [str], "environment": str},
    WebhookSpec: {"url": str, "on": [OneOf("FAIL", "WARN", "PASS")], "report_url": str, "timeout_s": TIMEOUT},
}


def _plain(spec: Any) -> Any:
    """A schema as comparable plain data (Section classes expanded to their schema)."""
    if isinstance(spec, type) and issubclass(spec, Section):
        return _plain(spec.schema())
    if isinstance(spec, dict):
        return {k: _plain(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_plain(spec[0])]
    if isinstance(spec, Num):
        return ("Num", spec.low, spec.high, spec.above, spec.integer)
    if isinstance(spec, OneOf):
        return ("OneOf", spec.choices)
    if isinstance(spec, MapOf):
        return ("MapOf", _plain(spec.spec))
    if isinstance(spec, Either):
        return ("Either", tuple(_plain(s) for s in spec.specs))
    return spec


@pytest.mark.parametrize("section", list(WRITTEN_OUT), ids=lambda c: c.__name__)
def test_the_schema_derived_from_the_fields_is_the_written_out_one(section: type[Section]) -> None:
    assert _plain(section) == _plain(WRITTEN_OUT[section])


def test_every_environment_section_is_a_field_of_the_environment() -> None:
    fields = {f.name for f in dataclasses.fields(Environment)}
    assert set(ENVIRONMENT_SECTIONS) <= fields
    for key, section in ENVIRONMENT_SECTIONS.items():
        assert ENVIRONMENT_SPEC[key] is section


# --------------------------------------------------------------------------------------------------
# Defaults are written once: an empty table is the dataclass defaults

WHERE = Where(Source(Path("deploygate.toml"), "", {}), ("environments", "dev"), {"env": "dev", "stage": "dev"})


@pytest.mark.parametrize("section", [AwsSpec, AuthSpec, HttpSpec, SmokeSpec, CrudSpec, IsolationSpec,
                                     PerformanceSpec, SecuritySpec, CloudWatchSpec, FrontendCheck],
                         ids=lambda c: c.__name__)
def test_an_empty_table_is_the_dataclass_defaults(section: type[Section]) -> None:
    assert section.from_table({}, WHERE) == section()


def test_values_are_converted_to_what_the_fields_hold() -> None:
    perf = PerformanceSpec.from_table({"duration_s": 5, "wait_s": [1, 2], "spawn_rate": 3, "users": 2,
                                       "tasks": [{"path": "/a", "status": [200, 201]}, {"path": "/b"}],
                                       "distributed": {"expect_workers": 2, "max_wait_s": 4}}, WHERE)
    assert perf.duration_s == 5.0 and isinstance(perf.duration_s, float)
    assert perf.wait_s == (1.0, 2.0) and perf.spawn_rate == 3.0
    assert perf.tasks == (LoadTask("GET /a", path="/a", status=(200, 201)), LoadTask("GET /b", path="/b"))
    assert perf.distributed == DistributedSpec(expect_workers=2, max_wait_s=4.0)
    smoke = SmokeSpec.from_table({"health": [{"path": "/h", "status": 204}], "endpoints": [{"path": "/e"}]}, WHERE)
    assert smoke.health == (HealthCheck("/h", 204),) and smoke.endpoints == (EndpointCheck("/e"),)
    sec = SecuritySpec.from_table({"bandit": {"severity": "high"}, "audit": {"timeout_s": 5},
                                   "protected_endpoints": [{"path": "/admin", "method": "post"}],
                                   "allowlist": [{"id": "B1", "reason": "r", "expires": "2030-01-02"}]}, WHERE)
    assert sec.bandit_severity == "high" and sec.bandit_confidence == "low" and sec.audit_timeout_s == 5.0
    assert sec.protected_endpoints == (("/admin", "POST"),)
    assert sec.allowlist == (AllowEntry("B1", "r", datetime.date(2030, 1, 2)),)
    crud = CrudSpec.from_table({"collections": [{"path": "/api/things/", "table": "{stage}-t",
                                                 "expect": {"create": 201}}]}, WHERE)
    things = crud.collections[0]
    assert things.name == "things" and things.table == "dev-t"
    assert things.expect["create"] == (201,) and things.expect["read"] == (200,)
    assert things == dataclasses.replace(CollectionSpec("things", "/api/things/"), table="dev-t",
                                         expect={**CollectionSpec("x", "/x").expect, "create": (201,)})


# --------------------------------------------------------------------------------------------------
# Bad tables: a config error at file:line: key

TEXT = """\
service = "shop"

[defaults.smoke]
health = [{ status = 200 }]

[environments.dev]
base_url = "http://127.0.0.1:1"
"""


def _error(text: str) -> ConfigError:
    src = Source(Path("deploygate.toml"), text, tomllib.loads(text))
    with pytest.raises(ConfigError) as info:
        parse_project(src, src.data, environ={})
    return info.value


@pytest.mark.parametrize(("table", "message"), [
    ("smoke = { health = [{ status = 200 }] }", "smoke.health.[0]: a health check needs 'path'"),
    ("smoke = { endpoints = [{ json = false }] }", "smoke.endpoints.[0]: an endpoint check needs 'path'"),
    ('security = { protected_endpoints = [{ method = "GET" }] }',
     "security.protected_endpoints.[0]: a protected endpoint needs 'path'"),
    ('security = { error_probes = [{ method = "GET" }] }', "security.error_probes.[0]: an error probe needs 'path'"),
    ('crud = { collections = [{ name = "x" }] }', "crud.collections.[0]: a collection needs a path"),
    ("performance = { tasks = [{ weight = 2 }] }", "performance.tasks.[0]: a load task needs a path"),
    ("performance = { users = 600 }", "performance.users: users must be between 1 and max_users (500)"),
    ('isolation = { cors_origins = ["{nope}"] }', "isolation.cors_origins.[0]: unknown placeholder {nope}"),
    ('crud = { collections = [{ path = "/a", create = { a = [{ b = "{nope}" }] } }] }',
     "crud.collections.[0].create.a.[0].b: unknown placeholder {nope}"),
])
def test_a_missing_or_wrong_key_names_its_line_and_key(table: str, message: str) -> None:
    text = f'[environments.dev]\nbase_url = "http://127.0.0.1:1"\n{table}\n'
    assert f"deploygate.toml:3: environments.dev.{message}" in str(_error(text))


def test_an_inherited_value_is_reported_at_the_defaults_line_that_set_it() -> None:
    err = _error(TEXT)  # checked per environment, after [defaults] is merged in
    assert str(err) == "deploygate.toml:4: environments.dev.smoke.health.[0]: a health check needs 'path'"
    text = TEXT.replace("health = [{ status = 200 }]", 'endpoints = [{ path = "/a" }]') + (
        "\n[defaults.performance]\nusers = 3\nmax_users = 2\n")
    assert str(_error(text)).startswith("deploygate.toml:10: environments.dev.performance.users: users must be")


def test_a_publish_table_is_checked_too() -> None:
    text = TEXT.replace("health = [{ status = 200 }]", "") + '\n[publish.webhook]\non = ["FAIL"]\n'
    assert str(_error(text)) == "deploygate.toml:9: publish.webhook: a webhook needs a url"


# --------------------------------------------------------------------------------------------------
# Where an array-of-tables entry is

ARRAY = """\
[[defaults.crud.collections]]
name = "a"
path = "/a"

[[defaults.crud.collections]]
path = "/b"
create = { title = "x",
    body = "y" }
"""


@pytest.mark.parametrize(("path", "line"), [
    (("defaults", "crud", "collections", "[0]", "name"), 2),
    (("defaults", "crud", "collections", "[1]"), 5),
    (("defaults", "crud", "collections", "[1]", "path"), 6),
    (("defaults", "crud", "collections", "[1]", "create", "body"), 8),
    (("defaults", "crud", "collections", "[1]", "name"), 5),  # not there: the entry's own header
])
def test_the_nth_entry_of_an_array_of_tables(path: tuple[str, ...], line: int) -> None:
    assert locate(ARRAY, path) == line


def test_the_report_table_is_a_project_section() -> None:
    text = ('[environments.dev]\nbase_url = "http://127.0.0.1:1"\n\n[report]\n'
            'report_url = "https://ci.example.test/${CI_JOB_URL}/{path}"\ntimeout_s = 2\n')
    src = Source(Path("deploygate.toml"), text, tomllib.loads(text))
    report = parse_project(src, src.data, environ={}).report
    assert report.report_url == "https://ci.example.test/${CI_JOB_URL}/{path}"  # the CI's variables: at report time
    assert report.timeout_s == 2.0 and report.version_key == "version"
    assert "deploygate.toml:5: report.report_url: unknown placeholder {nope}" in str(
        _error(text.replace("{path}", "{nope}")))


def _all_sections(cls: type[Section] = Section) -> list[type[Section]]:
    found: list[type[Section]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_sections(sub)]
    return found


def test_every_section_follows_the_pattern() -> None:
    """Every Section (sections.py, resources.py, promotion.py, report/metadata.py, ...) is a frozen dataclass,
    its schema derives without error, and one with a required key names itself in the error."""
    sections = _all_sections()
    assert len(sections) >= 20
    for section in sections:
        params = getattr(section, "__dataclass_params__", None)
        assert params is not None and params.frozen, f"{section.__name__} is not a frozen dataclass"
        assert section.schema(), section
        required = [f.name for f in dataclasses.fields(section) if f.metadata and  # type: ignore[arg-type]
                    f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if required:
            assert section.NOUN != Section.NOUN, f"{section.__name__} has required keys {required}: give it a NOUN"
