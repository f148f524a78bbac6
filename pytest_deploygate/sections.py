"""The sections of ``deploygate.toml``: one frozen dataclass per table, described once.

Each field that is a configuration key carries its schema beside its default (``metadata=key(...)``, see
:class:`~pytest_deploygate.schema.Section`): the dataclass is at once the table's closed schema, its
defaults and, with ``from_table``, its builder. Rules beyond the schema (one key bounded by another, values
derived at load) live in the section's ``from_table``; rules between sections live in
``config._build_environment``.

Environment sections: ``aws``, ``auth``, ``http`` (how to reach it), ``smoke``, ``crud``, ``isolation``,
``performance``, ``security`` (what the built-in suites check). Project sections: ``publish.cloudwatch``,
``publish.webhook``. No pytest import.

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from .schema import TIMEOUT, Either, MapOf, Num, OneOf, Section, Where, build, key

#: what a name may use when the configuration is read: ``{env}``, ``{service}``, ``{stage}``, ...
TEMPLATE_FIELDS = {"env", "service", "stage", "region", "account_id"}
#: what a launched reference deployment tells about itself (see ``Environment.deployed``)
DEPLOYED_FIELDS = ("source_dir", "requirements", "osv_url")
#: known only once the deployment is addressed: filled in when a check runs
LATE_FIELDS = {"base_url", "frontend_url", "frontend_origin", *DEPLOYED_FIELDS}
ANY_FIELDS = TEMPLATE_FIELDS | LATE_FIELDS
#: what a request body may use
BODY_FIELDS = TEMPLATE_FIELDS | {"run_id"}

#: an HTTP status code
STATUS = Num(100, 599, integer=True)
#: a status code or a list of them
STATUSES = Either(STATUS, [STATUS])
METHOD = OneOf("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _statuses(value: int | list[int]) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


# --------------------------------------------------------------------------------------------------
# How to reach the environment: aws, auth, http


@dataclass(frozen=True, eq=False, repr=False)
class AwsSpec(Section):
    """``aws``: the environment's account."""

    region: str = field(default="us-east-1", metadata=key(str))
    profile: str | None = field(default=None, metadata=key(str))
    endpoint_url: str | None = field(default=None, metadata=key(str))
    account_id: str | None = field(default=None, metadata=key(str))
    # Only set for the embedded reference deployment, whose emulator accepts any key pair.
    static_credentials: tuple[str, str] | None = None


#: what a launched reference deployment fills into ``auth.cognito`` (its address keys): a real deployment
#: names its pool and client itself. ``{cognito_password}`` only in ``password``: it is a secret.
LAUNCHED_COGNITO_FIELDS = ("user_pool_id", "user_pool_client_id", "cognito_username")
LAUNCHED_PASSWORD = "{cognito_password}"


@dataclass(frozen=True, eq=False, repr=False)
class CognitoSpec(Section):
    """``auth.cognito``: sign the probe user in to this environment's Cognito user pool (``initiate_auth``,
    USER_PASSWORD_AUTH, in the environment's account) and send its ID or access token. The password is a
    ``${VAR}`` reference (or, for a launched reference deployment, ``"{cognito_password}"``)."""

    NOUN: ClassVar[str] = "auth.cognito"

    client_id: str = field(metadata=key(str, template=TEMPLATE_FIELDS | set(LAUNCHED_COGNITO_FIELDS)))
    username: str = field(metadata=key(str, template=TEMPLATE_FIELDS | set(LAUNCHED_COGNITO_FIELDS)))
    password: str = field(metadata=key(str))
    #: named in messages, and the issuer a token must carry (a token of another pool is a misconfiguration)
    user_pool_id: str = field(default="", metadata=key(str, template=TEMPLATE_FIELDS | set(LAUNCHED_COGNITO_FIELDS)))
    token: str = field(default="id", metadata=key(OneOf("id", "access")))


@dataclass(frozen=True, eq=False, repr=False)
class AuthSpec(Section):
    """``auth``: the header the API wants: ``value`` (a ``${VAR}`` reference: it is a secret), or with
    ``cognito`` a token of the environment's user pool sent as ``"{scheme} {token}"``. With both, ``value``
    is what every request carries and the Cognito token is what the isolation check uses."""

    header: str = field(default="Authorization", metadata=key(str))
    value: str = field(default="", metadata=key(str))
    scheme: str = field(default="Bearer", metadata=key(str))
    cognito: CognitoSpec | None = field(default=None, metadata=key(CognitoSpec))


@dataclass(frozen=True, eq=False, repr=False)
class HttpSpec(Section):
    """``http``: timeouts, retries and TLS of every request to the environment."""

    connect_timeout_s: float = field(default=3.05, metadata=key(TIMEOUT))
    read_timeout_s: float = field(default=10.0, metadata=key(TIMEOUT))
    retries: int = field(default=2, metadata=key(Num(0, 10, integer=True)))
    verify: bool = field(default=True, metadata=key(bool))
    ca_bundle: str | None = field(default=None, metadata=key(str))
    #: the whole request, answer included, however slowly the server trickles it
    total_timeout_s: float = field(default=30.0, metadata=key(TIMEOUT))
    #: the largest answer body read, in bytes (10 MB, decimal)
    max_body_bytes: int = field(default=10_000_000, metadata=key(Num(0, 10**12, above=True, integer=True)))


# --------------------------------------------------------------------------------------------------
# smoke


READS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True, eq=False, repr=False)
class RequestCheck(Section):
    """What a health or endpoint check sends and expects: the request (``method``, ``body``, ``headers``),
    the status and, with ``expect_json``, values of the JSON answer (keys are field names or dotted paths,
    ``"checks.dynamodb" = "ok"``; a table compares the fields it names). A POST to a protected environment
    is refused like any write unless ``read_only_post = true`` declares that this POST only reads (the
    002 guide's ``POST /health``)."""

    NOUN: ClassVar[str] = "a check"

    path: str = field(metadata=key(str))
    status: int = field(default=200, metadata=key(STATUS))
    name: str = field(default="", metadata=key(str))
    method: str = field(default="GET", metadata=key(METHOD))
    #: a table or array is sent as JSON, a string as it is
    body: Any = field(default=None, metadata=key(Either(str, MapOf(object), [object])))
    headers: Mapping[str, str] = field(default_factory=dict, metadata=key(MapOf(str), template=ANY_FIELDS))
    expect_json: Mapping[str, Any] = field(default_factory=dict,
                                           metadata=key(MapOf(object), template=ANY_FIELDS))
    read_only_post: bool = field(default=False, metadata=key(bool))

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        return self.path if self.method == "GET" else f"{self.method} {self.path}"

    @property
    def label(self) -> str:
        """The ``path`` label of its latency metric (its name, else its path)."""
        return self.name or self.path

    @classmethod
    def check_request(cls, raw: Mapping[str, Any], where: Where) -> None:
        method = raw.get("method", "GET")
        if "body" in raw and method in READS:
            raise where.error(f"a {method} request sends no body: set method = \"POST\" (or PUT, PATCH)", "body")
        if raw.get("read_only_post") and method != "POST":
            raise where.error("read_only_post = true declares a POST that only reads: it needs method = \"POST\"",
                              "read_only_post")

    @classmethod
    def from_table(cls: type[RC], raw: Mapping[str, Any], where: Where) -> RC:
        if "path" not in raw:
            raise where.error(f"{cls.NOUN} needs 'path'")
        cls.check_request(raw, where)
        return build(cls, raw, where)


RC = TypeVar("RC", bound=RequestCheck)


@dataclass(frozen=True, eq=False, repr=False)
class HealthCheck(RequestCheck):
    NOUN: ClassVar[str] = "a health check"


@dataclass(frozen=True, eq=False, repr=False)
class GraphQLQuery(Section):
    """``graphql = { query = "…", variables = {…} }`` of an endpoint check: POSTed as JSON; the answer must
    be 200 with ``data`` and no ``errors``. Only queries: a smoke check reads."""

    NOUN: ClassVar[str] = "a GraphQL check"

    query: str = field(metadata=key(str))
    variables: Mapping[str, Any] = field(default_factory=dict, metadata=key(MapOf(object), template=ANY_FIELDS))
    operation_name: str = field(default="", metadata=key(str))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> GraphQLQuery:
        from .reads import writes_in_graphql

        word = writes_in_graphql(raw.get("query", ""))
        if word:
            raise where.error(f"a smoke check only reads, and this query holds {word!r} (a GraphQL "
                              f"{word.lower()} may write): query fields only", "query")
        return build(cls, raw, where)


@dataclass(frozen=True, eq=False, repr=False)
class EndpointCheck(RequestCheck):
    NOUN: ClassVar[str] = "an endpoint check"

    json: bool = field(default=True, metadata=key(bool))
    graphql: GraphQLQuery | None = field(default=None, metadata=key(GraphQLQuery))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> EndpointCheck:  # type: ignore[override]
        if "path" not in raw:
            raise where.error(f"{cls.NOUN} needs 'path'")
        if "graphql" not in raw:
            cls.check_request(raw, where)
            return build(cls, raw, where)
        if raw.get("method", "POST") != "POST":
            raise where.error("a GraphQL check POSTs its query: method must be \"POST\"", "method")
        for name, why in (("body", "the body is the query"), ("read_only_post", "a GraphQL query is a read already "
                                                                "(and read_only_post would let mutations through)"),
                          ("json", "a GraphQL answer is JSON")):
            if name in raw:
                raise where.error(f"{name} does not go with graphql: {why}", name)
        return build(cls, raw, where, method="POST")


@dataclass(frozen=True, eq=False, repr=False)
class FrontendCheck(Section):
    page: str = field(default="", metadata=key(str))
    assets: bool = field(default=True, metadata=key(bool))
    config_js: str = field(default="config.js", metadata=key(str))
    expect: Mapping[str, str] = field(default_factory=dict, metadata=key(MapOf(str), template=ANY_FIELDS))


@dataclass(frozen=True, eq=False, repr=False)
class SmokeSpec(Section):
    """``smoke``: health checks, API endpoints, the frontend."""

    health: tuple[HealthCheck, ...] = field(default=(HealthCheck("/health"),), metadata=key([HealthCheck]))
    endpoints: tuple[EndpointCheck, ...] = field(default=(), metadata=key([EndpointCheck]))
    frontend: FrontendCheck | None = field(default=None, metadata=key(FrontendCheck))
    #: latency is judged on the median of this many requests (one slow first request is not a verdict)
    samples: int = field(default=3, metadata=key(Num(1, 25, integer=True)))


# --------------------------------------------------------------------------------------------------
# crud


DEFAULT_STATUSES: dict[str, tuple[int, ...]] = {
    "create": (200, 201), "read": (200,), "list": (200,), "update": (200, 204),
    "delete": (200, 202, 204), "missing": (404, 410),
}


@dataclass(frozen=True, eq=False, repr=False)
class CollectionSpec(Section):
    """A REST collection the CRUD suite exercises; bodies may use ``{run_id}``, ``{env}``, ``{stage}``."""

    NOUN: ClassVar[str] = "a collection"

    #: default: the last segment of ``path``
    name: str = field(metadata=key(str))
    path: str = field(metadata=key(str))
    item_path: str = field(default="{path}/{id}", metadata=key(str))
    id_field: str = field(default="id", metadata=key(str))
    create: Mapping[str, Any] = field(default_factory=lambda: {"title": "deploygate probe {run_id}"},
                                      metadata=key(MapOf(object), template=BODY_FIELDS))
    update: Mapping[str, Any] = field(default_factory=lambda: {"title": "deploygate probe {run_id} (updated)"},
                                      metadata=key(MapOf(object), template=BODY_FIELDS))
    update_method: str = field(default="PUT", metadata=key(OneOf("PUT", "PATCH")))
    compare: tuple[str, ...] | None = field(default=None, metadata=key([str]))
    list_key: str = field(default="", metadata=key(str))
    #: the statuses each step accepts (a step not given keeps its default)
    expect: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_STATUSES),
                                                  metadata=key({step: STATUSES for step in DEFAULT_STATUSES}))
    #: filled in at load (``{service}-{stage}-stories``)
    table: str | None = field(default=None, metadata=key(str, template=TEMPLATE_FIELDS))
    table_key: str | None = field(default=None, metadata=key(str))

    def url_of(self, item_id: object) -> str:
        return self.item_path.replace("{path}", self.path.rstrip("/")).replace("{id}", str(item_id))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> CollectionSpec:
        if "path" not in raw:
            raise where.error("a collection needs a path")
        given = raw.get("expect", {})
        spec = build(cls, raw, where, name=raw.get("name") or raw["path"].strip("/").rsplit("/", 1)[-1],
                     expect={step: _statuses(given[step]) if step in given else default
                             for step, default in DEFAULT_STATUSES.items()})
        return spec if spec.table is None else replace(spec, table=spec.table.format_map(where.fields))


@dataclass(frozen=True, eq=False, repr=False)
class CrudSpec(Section):
    """``crud``: the collections the CRUD suite writes, reads and deletes (records carry a run marker)."""

    collections: tuple[CollectionSpec, ...] = field(default=(), metadata=key([CollectionSpec]))
    markers: bool = field(default=True, metadata=key(bool))
    ttl_field: str = field(default="ttl", metadata=key(str))
    ttl_s: int = field(default=3600, metadata=key(Num(1, 10 * 365 * 86400, integer=True)))

    def collection(self, name: str | None) -> CollectionSpec | None:
        if not self.collections:
            return None
        if name is None:
            return self.collections[0]
        return next((c for c in self.collections if c.name == name), None)

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> CrudSpec:
        spec = build(cls, raw, where)
        names: set[str] = set()
        for i, collection in enumerate(spec.collections):
            if collection.name in names:
                raise where.error(f"duplicate collection name {collection.name!r}", "collections", f"[{i}]", "name")
            names.add(collection.name)
        return spec


# --------------------------------------------------------------------------------------------------
# isolation


@dataclass(frozen=True, eq=False, repr=False)
class IsolationSpec(Section):
    """``isolation``: which collection the canaries use, which CORS origins are this environment's."""

    collection: str | None = field(default=None, metadata=key(str))
    cors_origins: tuple[str, ...] = field(default=("{frontend_origin}",), metadata=key([str], template=ANY_FIELDS))
    datastore: bool = field(default=True, metadata=key(bool))
    separate_accounts: bool = field(default=True, metadata=key(bool))
    #: paths (GET) that take only this environment's ``auth.cognito`` tokens: each must refuse a peer pool's
    protected_endpoints: tuple[str, ...] = field(default=(), metadata=key([str], template=ANY_FIELDS))


# --------------------------------------------------------------------------------------------------
# performance


#: Absolute caps of a load run (each run is also capped by its own max_users / max_duration_s): finite
#: numbers Locust and the gate's timers take as they are.
LOAD_USERS_CAP = 1_000_000
LOAD_SECONDS_CAP = 7 * 86400


@dataclass(frozen=True, eq=False, repr=False)
class LoadTask(Section):
    """One weighted request of the generated Locust user."""

    NOUN: ClassVar[str] = "a load task"

    #: default: "METHOD path"
    name: str = field(metadata=key(str))
    method: str = field(default="GET", metadata=key(METHOD))
    path: str = field(default="/", metadata=key(str))
    weight: int = field(default=1, metadata=key(int))
    status: tuple[int, ...] = field(default=(200,), metadata=key(STATUSES))
    body: Mapping[str, Any] | None = field(default=None, metadata=key(MapOf(object)))

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> LoadTask:
        if "path" not in raw:
            raise where.error("a load task needs a path")
        return build(cls, raw, where, name=raw.get("name") or f"{raw.get('method', 'GET')} {raw['path']}",
                     **({"status": _statuses(raw["status"])} if "status" in raw else {}))


@dataclass(frozen=True, eq=False, repr=False)
class DistributedSpec(Section):
    """Locust master/worker mode: the gate runs the master; workers (anywhere) connect to it."""

    NOUN: ClassVar[str] = "performance.distributed"

    expect_workers: int = field(metadata=key(Num(1, 100_000, integer=True)))
    bind_host: str = field(default="127.0.0.1", metadata=key(str))
    bind_port: int = field(default=5557, metadata=key(Num(1, 65535, integer=True)))
    #: how long the master waits for all workers before the check fails
    max_wait_s: float = field(default=30.0, metadata=key(Num(0, 3600, above=True)))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> DistributedSpec:
        if "expect_workers" not in raw:
            raise where.error("distributed.expect_workers must be at least 1")
        return build(cls, raw, where)


@dataclass(frozen=True, eq=False, repr=False)
class PerformanceSpec(Section):
    """``performance``: the load test (Locust) and the probe that stands in for it on protected environments."""

    users: int = field(default=10, metadata=key(Num(1, LOAD_USERS_CAP, integer=True)))
    spawn_rate: float | None = field(default=None, metadata=key(Num(0, LOAD_USERS_CAP, above=True)))
    duration_s: float = field(default=30.0, metadata=key(Num(0, LOAD_SECONDS_CAP, above=True)))
    warmup_s: float = field(default=0.0, metadata=key(Num(0, LOAD_SECONDS_CAP)))
    wait_s: tuple[float, float] = field(default=(0.0, 0.0), metadata=key([Num(0, 3600)]))
    #: each user starts a task every pacing_s seconds (Locust constant_pacing): a fixed request rate
    pacing_s: float | None = field(default=None, metadata=key(Num(0, 3600, above=True)))
    #: Locust's user class: "fast" (FastHttpUser, geventhttpclient: 3-4x the requests/s per core, and its
    #: own cost per request small enough for its percentiles to agree with hey's) or "http" (HttpUser)
    client: str = field(default="fast", metadata=key(OneOf("http", "fast")))
    min_requests: int = field(default=100, metadata=key(int))
    workers: int = field(default=1, metadata=key(Num(1, 1024, integer=True)))
    max_users: int = field(default=500, metadata=key(Num(1, LOAD_USERS_CAP, integer=True)))
    max_duration_s: float = field(default=900.0, metadata=key(Num(0, LOAD_SECONDS_CAP, above=True)))
    locustfile: str | None = field(default=None, metadata=key(str))
    abort_on_fail: bool = field(default=True, metadata=key(bool))
    #: 100 of 100 successes rule out "< 95 %" (Wilson lower bound 96.3 %); 20 of 20 cannot (83.9 %)
    probe_requests: int = field(default=100, metadata=key(int))
    #: default (no tasks, no locustfile): GET what the smoke suite checks (config._build_environment)
    tasks: tuple[LoadTask, ...] = field(default=(), metadata=key([LoadTask]))
    distributed: DistributedSpec | None = field(default=None, metadata=key(DistributedSpec))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> PerformanceSpec:
        spec = build(cls, raw, where)
        # Hard caps: a load run is always bounded in users and time.
        if not 1 <= spec.users <= spec.max_users:
            raise where.error(f"users must be between 1 and max_users ({spec.max_users})", "users")
        if not 0 < spec.duration_s <= spec.max_duration_s:
            raise where.error(f"duration_s must be positive and at most max_duration_s ({spec.max_duration_s:g})",
                              "duration_s")
        if not 0 <= spec.warmup_s < spec.duration_s:
            raise where.error("warmup_s must be shorter than duration_s", "warmup_s")
        wait = spec.wait_s
        if len(wait) != 2 or wait[0] < 0 or wait[1] < wait[0]:
            raise where.error("wait_s must be [min, max] seconds with 0 <= min <= max", "wait_s")
        for name in ("workers", "min_requests", "probe_requests"):
            if raw.get(name, 1) < (1 if name != "min_requests" else 0):
                raise where.error(f"{name} must be at least 1", name)
        if spec.pacing_s is not None and "wait_s" in raw:
            raise where.error("pacing_s must be positive and excludes wait_s", "pacing_s")
        return spec


# --------------------------------------------------------------------------------------------------
# security


@dataclass(frozen=True, eq=False, repr=False)
class AllowEntry(Section):
    """An accepted finding (bandit test id, advisory id/alias or posture ``DG-…`` id), with a reason and an
    expiry date; ``path`` narrows it to a file (bandit) or a frontend file (``DG-SECRET-…``)."""

    NOUN: ClassVar[str] = "an allowlist entry"

    id: str = field(metadata=key(str))
    reason: str = field(metadata=key(str))
    expires: datetime.date = field(metadata=key(Either(str, datetime.date)))
    path: str = field(default="*", metadata=key(str))

    def expired(self, today: datetime.date | None = None) -> bool:
        return (today or datetime.date.today()) > self.expires

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> AllowEntry:
        for name in ("id", "reason", "expires"):
            if not raw.get(name):
                raise where.error(f"an allowlist entry needs {name} (every accepted finding has a reason and an "
                                  "expiry date)")
        expires = raw["expires"]
        if isinstance(expires, str):
            try:
                expires = datetime.date.fromisoformat(expires)
            except ValueError:
                raise where.error(f"expires must be a date (YYYY-MM-DD), got {expires!r}", "expires") from None
        return build(cls, raw, where, expires=expires)


@dataclass(frozen=True, eq=False, repr=False)
class EndpointRef(Section):
    """A protected endpoint (``security.protected_endpoints``)."""

    NOUN: ClassVar[str] = "a protected endpoint"

    path: str = field(metadata=key(str))
    method: str = field(default="GET", metadata=key(str))


@dataclass(frozen=True, eq=False, repr=False)
class ErrorProbe(Section):
    """A request that should fail cleanly (``security.error_probes``)."""

    NOUN: ClassVar[str] = "an error probe"

    path: str = field(metadata=key(str))
    method: str = field(default="GET", metadata=key(str))
    body: Mapping[str, Any] | None = field(default=None, metadata=key(MapOf(object)))


@dataclass(frozen=True, eq=False, repr=False)
class SecuritySpec(Section):
    """``security``: code scan (bandit), dependency audit, posture (headers, auth, errors, TLS, frontend)."""

    code_paths: tuple[str, ...] = field(default=(), metadata=key([str], template=ANY_FIELDS))
    bandit_severity: str = field(default="low", metadata=key(OneOf("low", "medium", "high"), "bandit.severity"))
    bandit_confidence: str = field(default="low",
                                   metadata=key(OneOf("low", "medium", "high"), "bandit.confidence"))
    bandit_exclude: tuple[str, ...] = field(default=(), metadata=key([str], "bandit.exclude"))
    requirements: tuple[str, ...] = field(default=(), metadata=key([str], template=ANY_FIELDS))
    osv_url: str = field(default="", metadata=key(str, "audit.osv_url", template=ANY_FIELDS))
    audit_service: str = field(default="osv", metadata=key(OneOf("osv", "pypi"), "audit.service"))
    audit_timeout_s: float = field(default=120.0, metadata=key(TIMEOUT, "audit.timeout_s"))
    #: audit the environment the gate runs in (when the deployment ships from it) rather than files
    audit_installed: bool = field(default=False, metadata=key(bool, "audit.installed"))
    allowlist: tuple[AllowEntry, ...] = field(default=(), metadata=key([AllowEntry]))
    headers: Mapping[str, str] = field(default_factory=lambda: {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY|SAMEORIGIN",
    }, metadata=key(MapOf(str)))
    #: (path, METHOD)
    protected_endpoints: tuple[tuple[str, str], ...] = field(default=(), metadata=key([EndpointRef]))
    #: (path, METHOD, body)
    error_probes: tuple[tuple[str, str, Mapping[str, Any] | None], ...] = field(
        default=(), metadata=key([ErrorProbe]))
    tls_min_days: int = field(default=14, metadata=key(Num(0, 3650, integer=True), "tls.min_days"))
    tls_http_url: str = field(default="", metadata=key(str, "tls.http_url"))
    frontend_secrets: bool = field(default=True, metadata=key(bool))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> SecuritySpec:
        endpoints = [EndpointRef.from_table(e, where.at("protected_endpoints", f"[{i}]"))
                     for i, e in enumerate(raw.get("protected_endpoints", []))]
        probes = [ErrorProbe.from_table(e, where.at("error_probes", f"[{i}]"))
                  for i, e in enumerate(raw.get("error_probes", []))]
        return build(cls, raw, where,
                     protected_endpoints=tuple((e.path, e.method.upper()) for e in endpoints),
                     error_probes=tuple((p.path, p.method.upper(), p.body) for p in probes))


# --------------------------------------------------------------------------------------------------
# publish (project sections: after the environments, ${VAR}s expanded by config.parse_project)


@dataclass(frozen=True, eq=False, repr=False)
class CloudWatchSpec(Section):
    """``publish.cloudwatch``: the verdict and key metrics as CloudWatch metrics (boto3 ``put_metric_data``)."""

    namespace: str = field(default="DeployGate", metadata=key(str))
    dimensions: Mapping[str, str] = field(default_factory=lambda: {"Service": "{service}", "Environment": "{env}"},
                                          metadata=key(MapOf(str), template=TEMPLATE_FIELDS))
    metrics: tuple[str, ...] = field(default=(), metadata=key([str]))
    #: whose AWS account receives them (default: the gated environment's)
    environment: str | None = field(default=None, metadata=key(str))


@dataclass(frozen=True, eq=False, repr=False)
class WebhookSpec(Section):
    """``publish.webhook``: a Slack-compatible webhook told about the verdict."""

    NOUN: ClassVar[str] = "a webhook"

    #: a secret (Slack-style webhook URLs are bearer tokens): a ``${VAR}`` reference in the file
    url: str = field(metadata=key(str))
    on: tuple[str, ...] = field(default=("FAIL",), metadata=key([OneOf("FAIL", "WARN", "PASS")]))
    report_url: str = field(default="", metadata=key(str))
    timeout_s: float = field(default=10.0, metadata=key(TIMEOUT))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> WebhookSpec:
        if "url" not in raw:
            raise where.error("a webhook needs a url")
        return build(cls, raw, where)
