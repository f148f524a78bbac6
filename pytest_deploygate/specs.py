"""What the built-in suites and the publishers are configured with: schemas, frozen dataclasses and the
builders that turn validated TOML tables into them. No pytest import."""

from __future__ import annotations

import datetime
import string
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema import TIMEOUT, Either, MapOf, Num, OneOf, Source, expand_vars

#: an HTTP status code
STATUS = Num(100, 599, integer=True)
HEALTH_SPEC = {"path": str, "status": STATUS, "name": str}
STATUS_SPEC = Either(STATUS, [STATUS])
COLLECTION_SPEC = {
    "name": str, "path": str, "item_path": str, "id_field": str,
    "create": MapOf(object), "update": MapOf(object), "update_method": OneOf("PUT", "PATCH"),
    "compare": [str], "list_key": str, "table": str, "table_key": str,
    "expect": {step: STATUS_SPEC for step in ("create", "read", "list", "update", "delete", "missing")},
}
ENDPOINT_SPEC = {"path": str, "status": STATUS, "json": bool, "name": str}

LOAD_TASK_SPEC = {
    "name": str, "method": OneOf("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"), "path": str,
    "weight": int, "status": STATUS_SPEC, "body": MapOf(object),
}
#: Absolute caps of a load run (each run is also capped by its own max_users / max_duration_s): finite
#: numbers Locust and the gate's timers take as they are.
LOAD_USERS_CAP = 1_000_000
LOAD_SECONDS_CAP = 7 * 86400
PERFORMANCE_SPEC = {
    "users": Num(1, LOAD_USERS_CAP, integer=True), "spawn_rate": Num(0, LOAD_USERS_CAP, above=True),
    "duration_s": Num(0, LOAD_SECONDS_CAP, above=True), "warmup_s": Num(0, LOAD_SECONDS_CAP),
    "wait_s": [Num(0, 3600)], "pacing_s": Num(0, 3600, above=True), "client": OneOf("http", "fast"),
    "min_requests": int, "workers": Num(1, 1024, integer=True), "max_users": Num(1, LOAD_USERS_CAP, integer=True),
    "max_duration_s": Num(0, LOAD_SECONDS_CAP, above=True), "locustfile": str,
    "abort_on_fail": bool, "probe_requests": int, "tasks": [LOAD_TASK_SPEC],
    "distributed": {"expect_workers": Num(1, 100_000, integer=True), "bind_host": str,
                    "bind_port": Num(1, 65535, integer=True), "max_wait_s": Num(0, 3600, above=True)},
}

ALLOW_SPEC = {"id": str, "path": str, "reason": str, "expires": Either(str, datetime.date)}
SECURITY_SPEC = {
    "code_paths": [str],
    "bandit": {"severity": OneOf("low", "medium", "high"), "confidence": OneOf("low", "medium", "high"),
               "exclude": [str]},
    "requirements": [str],
    "audit": {"osv_url": str, "timeout_s": TIMEOUT, "service": OneOf("osv", "pypi"), "installed": bool},
    "allowlist": [ALLOW_SPEC],
    "headers": MapOf(str),
    "protected_endpoints": [{"path": str, "method": str}],
    "error_probes": [{"path": str, "method": str, "body": MapOf(object)}],
    "tls": {"min_days": Num(0, 3650, integer=True), "http_url": str},
    "frontend_secrets": bool,
}

PUBLISH_SPEC = {
    "cloudwatch": {"namespace": str, "dimensions": MapOf(str), "metrics": [str], "environment": str},
    "webhook": {"url": str, "on": [OneOf("FAIL", "WARN", "PASS")], "report_url": str, "timeout_s": TIMEOUT},
}


TEMPLATE_FIELDS = {"env", "service", "stage", "region", "account_id"}
DEPLOYED_FIELDS = ("source_dir", "requirements", "osv_url")
LATE_FIELDS = {"base_url", "frontend_url", "frontend_origin", *DEPLOYED_FIELDS}
BODY_FIELDS = TEMPLATE_FIELDS | {"run_id"}


def check_template(value: str, allowed: set[str], src: Source, path: tuple[str, ...]) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as exc:
        raise src.error(f"bad template {value!r}: {exc}", path) from None
    unknown = {n for n in names if n not in allowed}
    if unknown:
        raise src.error(f"unknown placeholder {{{sorted(unknown)[0]}}} in {value!r} "
                        f"(known: {', '.join(sorted(allowed))})", path)


@dataclass(frozen=True)
class HealthCheck:
    path: str
    status: int = 200
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or self.path


@dataclass(frozen=True)
class EndpointCheck:
    path: str
    status: int = 200
    json: bool = True
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or self.path


@dataclass(frozen=True)
class FrontendCheck:
    page: str = ""
    assets: bool = True
    config_js: str = "config.js"
    expect: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmokeSpec:
    health: tuple[HealthCheck, ...] = (HealthCheck("/health"),)
    endpoints: tuple[EndpointCheck, ...] = ()
    frontend: FrontendCheck | None = None
    #: latency is judged on the median of this many requests (one slow first request is not a verdict)
    samples: int = 3


DEFAULT_STATUSES: dict[str, tuple[int, ...]] = {
    "create": (200, 201), "read": (200,), "list": (200,), "update": (200, 204),
    "delete": (200, 202, 204), "missing": (404, 410),
}


@dataclass(frozen=True)
class CollectionSpec:
    """A REST collection the CRUD suite exercises; bodies may use ``{run_id}``, ``{env}``, ``{stage}``."""

    name: str
    path: str
    item_path: str = "{path}/{id}"
    id_field: str = "id"
    create: Mapping[str, Any] = field(default_factory=lambda: {"title": "deploygate probe {run_id}"})
    update: Mapping[str, Any] = field(default_factory=lambda: {"title": "deploygate probe {run_id} (updated)"})
    update_method: str = "PUT"
    compare: tuple[str, ...] | None = None
    list_key: str = ""
    expect: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_STATUSES))
    table: str | None = None
    table_key: str | None = None

    def url_of(self, item_id: object) -> str:
        return self.item_path.replace("{path}", self.path.rstrip("/")).replace("{id}", str(item_id))


@dataclass(frozen=True)
class CrudSpec:
    collections: tuple[CollectionSpec, ...] = ()
    markers: bool = True
    ttl_field: str = "ttl"
    ttl_s: int = 3600

    def collection(self, name: str | None) -> CollectionSpec | None:
        if not self.collections:
            return None
        if name is None:
            return self.collections[0]
        return next((c for c in self.collections if c.name == name), None)


@dataclass(frozen=True)
class IsolationSpec:
    collection: str | None = None
    cors_origins: tuple[str, ...] = ("{frontend_origin}",)
    datastore: bool = True
    separate_accounts: bool = True


@dataclass(frozen=True)
class LoadTask:
    """One weighted request of the generated Locust user."""

    name: str
    method: str = "GET"
    path: str = "/"
    weight: int = 1
    status: tuple[int, ...] = (200,)
    body: Mapping[str, Any] | None = None

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class DistributedSpec:
    """Locust master/worker mode: the gate runs the master; workers (anywhere) connect to it."""

    expect_workers: int
    bind_host: str = "127.0.0.1"
    bind_port: int = 5557
    max_wait_s: float = 30.0  # how long the master waits for all workers before the check fails


@dataclass(frozen=True)
class PerformanceSpec:
    users: int = 10
    spawn_rate: float | None = None
    duration_s: float = 30.0
    warmup_s: float = 0.0
    wait_s: tuple[float, float] = (0.0, 0.0)
    #: each user starts a task every pacing_s seconds (Locust constant_pacing): a fixed request rate
    pacing_s: float | None = None
    #: Locust's user class: "fast" (FastHttpUser, geventhttpclient: 3-4x the requests/s per core, and its
    #: own cost per request small enough for its percentiles to agree with hey's) or "http" (HttpUser)
    client: str = "fast"
    min_requests: int = 100
    workers: int = 1
    max_users: int = 500
    max_duration_s: float = 900.0
    locustfile: str | None = None
    abort_on_fail: bool = True
    #: 100 of 100 successes rule out "< 95 %" (Wilson lower bound 96.3 %); 20 of 20 cannot (83.9 %)
    probe_requests: int = 100
    tasks: tuple[LoadTask, ...] = ()
    distributed: DistributedSpec | None = None


@dataclass(frozen=True)
class AllowEntry:
    """An accepted finding (bandit test id, advisory id/alias or posture ``DG-…`` id), with a reason and an
    expiry date; ``path`` narrows it to a file (bandit) or a frontend file (``DG-SECRET-…``)."""

    id: str
    reason: str
    expires: datetime.date
    path: str = "*"

    def expired(self, today: datetime.date | None = None) -> bool:
        return (today or datetime.date.today()) > self.expires


@dataclass(frozen=True)
class SecuritySpec:
    code_paths: tuple[str, ...] = ()
    bandit_severity: str = "low"
    bandit_confidence: str = "low"
    bandit_exclude: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    osv_url: str = ""
    audit_service: str = "osv"
    audit_timeout_s: float = 120.0
    #: audit the environment the gate runs in (when the deployment ships from it) rather than files
    audit_installed: bool = False
    allowlist: tuple[AllowEntry, ...] = ()
    headers: Mapping[str, str] = field(default_factory=lambda: {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY|SAMEORIGIN",
    })
    protected_endpoints: tuple[tuple[str, str], ...] = ()
    error_probes: tuple[tuple[str, str, Mapping[str, Any] | None], ...] = ()
    tls_min_days: int = 14
    tls_http_url: str = ""
    frontend_secrets: bool = True


@dataclass(frozen=True)
class CloudWatchSpec:
    """Publish the verdict and key metrics as CloudWatch metrics (boto3 ``put_metric_data``)."""

    namespace: str = "DeployGate"
    dimensions: Mapping[str, str] = field(default_factory=lambda: {"Service": "{service}", "Environment": "{env}"})
    metrics: tuple[str, ...] = ()
    #: whose AWS account receives them (default: the gated environment's)
    environment: str | None = None


@dataclass(frozen=True)
class WebhookSpec:
    """A Slack-compatible webhook told about the verdict."""

    url: str
    on: tuple[str, ...] = ("FAIL",)
    report_url: str = ""
    timeout_s: float = 10.0


def build_security(raw: dict[str, Any], src: Source, path: tuple[str, ...]) -> SecuritySpec:
    d = SecuritySpec()
    for key in ("code_paths", "requirements"):
        for i, tmpl in enumerate(raw.get(key, [])):
            check_template(tmpl, TEMPLATE_FIELDS | LATE_FIELDS, src, (*path, key, f"[{i}]"))
    audit = raw.get("audit", {})
    if "osv_url" in audit:
        check_template(audit["osv_url"], TEMPLATE_FIELDS | LATE_FIELDS, src, (*path, "audit", "osv_url"))
    allow = []
    for i, entry in enumerate(raw.get("allowlist", [])):
        where = (*path, "allowlist", f"[{i}]")
        for key in ("id", "reason", "expires"):
            if not entry.get(key):
                raise src.error(f"an allowlist entry needs {key} (every accepted finding has a reason and an "
                                "expiry date)", where)
        expires = entry["expires"]
        if isinstance(expires, str):
            try:
                expires = datetime.date.fromisoformat(expires)
            except ValueError:
                raise src.error(f"expires must be a date (YYYY-MM-DD), got {expires!r}", (*where, "expires")) from None
        allow.append(AllowEntry(entry["id"], entry["reason"], expires, entry.get("path", "*")))
    bandit = raw.get("bandit", {})
    tls = raw.get("tls", {})
    return SecuritySpec(
        code_paths=tuple(raw.get("code_paths", [])), bandit_severity=bandit.get("severity", "low"),
        bandit_confidence=bandit.get("confidence", "low"), bandit_exclude=tuple(bandit.get("exclude", [])),
        requirements=tuple(raw.get("requirements", [])), osv_url=audit.get("osv_url", ""),
        audit_service=audit.get("service", "osv"), audit_timeout_s=float(audit.get("timeout_s", 120.0)),
        audit_installed=audit.get("installed", False),
        allowlist=tuple(allow), headers=dict(raw.get("headers", d.headers)),
        protected_endpoints=tuple((e["path"], e.get("method", "GET").upper())
                                  for e in raw.get("protected_endpoints", [])),
        error_probes=tuple((e["path"], e.get("method", "GET").upper(), e.get("body"))
                           for e in raw.get("error_probes", [])),
        tls_min_days=tls.get("min_days", 14), tls_http_url=tls.get("http_url", ""),
        frontend_secrets=raw.get("frontend_secrets", True),
    )


def build_performance(raw: dict[str, Any], smoke_raw: dict[str, Any], src: Source,
                       path: tuple[str, ...]) -> PerformanceSpec:
    d = PerformanceSpec()
    users = raw.get("users", d.users)
    max_users = raw.get("max_users", d.max_users)
    duration = float(raw.get("duration_s", d.duration_s))
    max_duration = float(raw.get("max_duration_s", d.max_duration_s))
    warmup = float(raw.get("warmup_s", d.warmup_s))
    # Hard caps: a load run is always bounded in users and time.
    if not 1 <= users <= max_users:
        raise src.error(f"users must be between 1 and max_users ({max_users})", (*path, "users"))
    if not 0 < duration <= max_duration:
        raise src.error(f"duration_s must be positive and at most max_duration_s ({max_duration:g})",
                        (*path, "duration_s"))
    if not 0 <= warmup < duration:
        raise src.error("warmup_s must be shorter than duration_s", (*path, "warmup_s"))
    wait = tuple(float(w) for w in raw.get("wait_s", [0, 0]))
    if len(wait) != 2 or wait[0] < 0 or wait[1] < wait[0]:
        raise src.error("wait_s must be [min, max] seconds with 0 <= min <= max", (*path, "wait_s"))
    for key in ("workers", "min_requests", "probe_requests"):
        if raw.get(key, 1) < (1 if key != "min_requests" else 0):
            raise src.error(f"{key} must be at least 1", (*path, key))
    tasks = []
    for i, t in enumerate(raw.get("tasks", [])):
        if "path" not in t:
            raise src.error("a load task needs a path", (*path, "tasks", f"[{i}]"))
        tasks.append(LoadTask(name=t.get("name") or f"{t.get('method', 'GET')} {t['path']}",
                              method=t.get("method", "GET"), path=t["path"], weight=t.get("weight", 1),
                              status=_statuses(t.get("status"), (200,)), body=t.get("body")))
    if not tasks and not raw.get("locustfile"):
        # By default, load what the smoke suite checks: its API endpoints (GET).
        for e in smoke_raw.get("endpoints", []) or smoke_raw.get("health", [{"path": "/health"}]):
            tasks.append(LoadTask(name=f"GET {e['path']}", path=e["path"], status=(e.get("status", 200),)))
    dist = raw.get("distributed")
    distributed = None
    if dist is not None:
        if dist.get("expect_workers", 0) < 1:
            raise src.error("distributed.expect_workers must be at least 1", (*path, "distributed"))
        if dist.get("max_wait_s", 30) <= 0:
            raise src.error("distributed.max_wait_s must be positive", (*path, "distributed"))
        distributed = DistributedSpec(dist["expect_workers"], dist.get("bind_host", "127.0.0.1"),
                                      dist.get("bind_port", 5557), float(dist.get("max_wait_s", 30)))
    spawn = raw.get("spawn_rate")
    if spawn is not None and spawn <= 0:
        raise src.error("spawn_rate must be positive", (*path, "spawn_rate"))
    pacing = raw.get("pacing_s")
    if pacing is not None and (pacing <= 0 or "wait_s" in raw):
        raise src.error("pacing_s must be positive and excludes wait_s", (*path, "pacing_s"))
    return PerformanceSpec(
        users=users, spawn_rate=float(spawn) if spawn is not None else None, duration_s=duration,
        warmup_s=warmup, wait_s=(wait[0], wait[1]), pacing_s=float(pacing) if pacing is not None else None,
        min_requests=raw.get("min_requests", d.min_requests),
        workers=raw.get("workers", 1), max_users=max_users, max_duration_s=max_duration,
        locustfile=raw.get("locustfile"), abort_on_fail=raw.get("abort_on_fail", True),
        probe_requests=raw.get("probe_requests", d.probe_requests), tasks=tuple(tasks), distributed=distributed,
        client=raw.get("client", d.client),
    )


def _check_body(value: Any, src: Source, path: tuple[str, ...]) -> None:
    if isinstance(value, str):
        check_template(value, BODY_FIELDS, src, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_body(v, src, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_body(v, src, (*path, f"[{i}]"))


def _statuses(value: int | list[int] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if value is None:
        return default
    return (value,) if isinstance(value, int) else tuple(value)


def build_crud(raw: dict[str, Any], fields: dict[str, str], src: Source, path: tuple[str, ...]) -> CrudSpec:
    collections = []
    names: set[str] = set()
    for i, c in enumerate(raw.get("collections", [])):
        where = (*path, "collections", f"[{i}]")
        if "path" not in c:
            raise src.error("a collection needs a path", where)
        name = c.get("name") or c["path"].strip("/").rsplit("/", 1)[-1]
        if name in names:
            raise src.error(f"duplicate collection name {name!r}", (*where, "name"))
        names.add(name)
        for key in ("create", "update"):
            _check_body(c.get(key, {}), src, (*where, key))
        if "table" in c:
            check_template(c["table"], TEMPLATE_FIELDS, src, (*where, "table"))
        expect = {step: _statuses(c.get("expect", {}).get(step), d) for step, d in DEFAULT_STATUSES.items()}
        defaults = CollectionSpec(name=name, path=c["path"])
        collections.append(CollectionSpec(
            name=name, path=c["path"], item_path=c.get("item_path", defaults.item_path),
            id_field=c.get("id_field", "id"), create=c.get("create", defaults.create),
            update=c.get("update", defaults.update), update_method=c.get("update_method", "PUT"),
            compare=tuple(c["compare"]) if "compare" in c else None, list_key=c.get("list_key", ""),
            expect=expect, table=c["table"].format_map(fields) if "table" in c else None,
            table_key=c.get("table_key"),
        ))
    ttl_s = raw.get("ttl_s", 3600)
    if ttl_s <= 0:
        raise src.error("ttl_s must be positive", (*path, "ttl_s"))
    return CrudSpec(collections=tuple(collections), markers=raw.get("markers", True),
                    ttl_field=raw.get("ttl_field", "ttl"), ttl_s=ttl_s)


def build_publish(raw: dict[str, Any], src: Source, environ: Mapping[str, str], secrets: set[str],
                   environments: Container[str]) -> tuple[CloudWatchSpec | None, WebhookSpec | None]:
    cloudwatch = webhook = None
    if "cloudwatch" in raw:
        cw = expand_vars(raw["cloudwatch"], src, ("publish", "cloudwatch"), environ)
        for key, tmpl in cw.get("dimensions", {}).items():
            check_template(tmpl, TEMPLATE_FIELDS, src, ("publish", "cloudwatch", "dimensions", key))
        if cw.get("environment") and cw["environment"] not in environments:
            raise src.error(f"unknown environment {cw['environment']!r}", ("publish", "cloudwatch", "environment"))
        d = CloudWatchSpec()
        cloudwatch = CloudWatchSpec(namespace=cw.get("namespace", d.namespace),
                                    dimensions=dict(cw.get("dimensions", d.dimensions)),
                                    metrics=tuple(cw.get("metrics", ())), environment=cw.get("environment"))
    if "webhook" in raw:
        wh = raw["webhook"]
        if "url" not in wh:
            raise src.error("a webhook needs a url", ("publish", "webhook"))
        if "${" not in wh["url"]:
            raise src.error("webhook URLs carry a token: reference it, e.g. url = \"${SLACK_WEBHOOK_URL}\"",
                            ("publish", "webhook", "url"))
        # the whole URL is a secret (Slack-style webhook URLs are bearer tokens)
        url = expand_vars(wh["url"], src, ("publish", "webhook", "url"), environ, secrets)
        secrets.add(url)
        webhook = WebhookSpec(url=url, on=tuple(wh.get("on", ["FAIL"])),
                              report_url=expand_vars(wh.get("report_url", ""), src, ("publish", "webhook"), environ),
                              timeout_s=float(wh.get("timeout_s", 10.0)))
    return cloudwatch, webhook
