"""Load and validate ``deploygate.toml`` into frozen dataclasses.

Pure configuration: no pytest import. Every problem is a :class:`ConfigError` naming file, line and key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .schema import TIMEOUT, ConfigError, MapOf, Num, OneOf, Source, expand_vars, read_toml, validate
from .specs import (
    COLLECTION_SPEC,
    DEPLOYED_FIELDS,
    ENDPOINT_SPEC,
    HEALTH_SPEC,
    LATE_FIELDS,
    PERFORMANCE_SPEC,
    PUBLISH_SPEC,
    SECURITY_SPEC,
    TEMPLATE_FIELDS,
    CloudWatchSpec,
    CrudSpec,
    EndpointCheck,
    FrontendCheck,
    HealthCheck,
    IsolationSpec,
    PerformanceSpec,
    SecuritySpec,
    SmokeSpec,
    WebhookSpec,
    build_crud,
    build_performance,
    build_publish,
    build_security,
    check_template,
)
from .thresholds import Policy, load_policy

CONFIG_FILE = "deploygate.toml"
THRESHOLDS_FILE = "thresholds.toml"


ENVIRONMENT_SPEC: dict[str, Any] = {
    "stage": str,
    "base_url": str,
    "frontend_url": str,
    "protected": bool,
    "launch": OneOf("demo"),
    "aws": {"profile": str, "region": str, "endpoint_url": str, "account_id": str},
    "auth": {"header": str, "value": str},
    "resources": {"tables": [str], "buckets": [str]},
    "http": {"connect_timeout_s": TIMEOUT, "read_timeout_s": TIMEOUT, "retries": Num(0, 10, integer=True),
             "verify": bool, "ca_bundle": str, "total_timeout_s": TIMEOUT,
             "max_body_bytes": Num(0, 10**12, above=True, integer=True)},
    "smoke": {
        "health": [HEALTH_SPEC],
        "endpoints": [ENDPOINT_SPEC],
        "frontend": {"page": str, "assets": bool, "config_js": str, "expect": MapOf(str)},
        "samples": Num(1, 25, integer=True),
    },
    "crud": {"collections": [COLLECTION_SPEC], "markers": bool, "ttl_field": str,
             "ttl_s": Num(1, 10 * 365 * 86400, integer=True)},
    "isolation": {"collection": str, "cors_origins": [str], "datastore": bool, "separate_accounts": bool},
    "performance": PERFORMANCE_SPEC,
    "security": SECURITY_SPEC,
}

PROJECT_SPEC: dict[str, Any] = {
    "service": str,
    "defaults": ENVIRONMENT_SPEC,
    "environments": MapOf(ENVIRONMENT_SPEC),
    "publish": PUBLISH_SPEC,
}


# --------------------------------------------------------------------------------------------------
# The typed configuration


@dataclass(frozen=True)
class AwsSpec:
    region: str = "us-east-1"
    profile: str | None = None
    endpoint_url: str | None = None
    account_id: str | None = None
    # Only set for the embedded reference deployment, whose emulator accepts any key pair.
    static_credentials: tuple[str, str] | None = None


@dataclass(frozen=True)
class AuthSpec:
    header: str = "Authorization"
    value: str = ""


@dataclass(frozen=True)
class HttpSpec:
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    retries: int = 2
    verify: bool = True
    ca_bundle: str | None = None
    #: the whole request, answer included, however slowly the server trickles it
    total_timeout_s: float = 30.0
    #: the largest answer body read, in bytes (10 MB, decimal)
    max_body_bytes: int = 10_000_000


@dataclass(frozen=True)
class Environment:
    """One deployment target (dev, staging, prod, ...), fully resolved."""

    name: str
    service: str
    stage: str
    base_url: str
    frontend_url: str
    protected: bool
    launch: str | None
    aws: AwsSpec
    auth: AuthSpec | None
    tables: tuple[str, ...]
    buckets: tuple[str, ...]
    http: HttpSpec
    smoke: SmokeSpec
    crud: CrudSpec = field(default_factory=CrudSpec)
    isolation: IsolationSpec = field(default_factory=IsolationSpec)
    performance: PerformanceSpec = field(default_factory=PerformanceSpec)
    security: SecuritySpec = field(default_factory=SecuritySpec)
    #: what a launched deployment tells about itself: source_dir, requirements, osv_url
    deployed: Mapping[str, str] = field(default_factory=dict)

    def read_only(self, allow_writes: bool) -> bool:
        """The production-safety rule, defined once: a protected environment is read-only unless the run
        passes ``--allow-writes`` (no write through HTTP, AWS, Locust or a cleanup reaches it)."""
        return self.protected and not allow_writes

    def load_refused(self, allow_load: bool) -> bool:
        """A protected environment gets a light sequential probe instead of load unless ``--allow-load``."""
        return self.protected and not allow_load

    @property
    def frontend_origin(self) -> str:
        parts = urlsplit(self.frontend_url)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""

    @property
    def probe_path(self) -> str:
        """A cheap GET on this environment's API: the first smoke endpoint, else the health check, else /."""
        if self.smoke.endpoints:
            return self.smoke.endpoints[0].path
        return self.smoke.health[0].path if self.smoke.health else "/"

    def fields(self) -> dict[str, str]:
        """Values that config templates may use: ``{service}``, ``{stage}``, ``{base_url}``, ..."""
        return {
            "env": self.name, "service": self.service, "stage": self.stage,
            "base_url": self.base_url, "frontend_url": self.frontend_url,
            "region": self.aws.region, "account_id": self.aws.account_id or "",
            "frontend_origin": self.frontend_origin,
            **{k: self.deployed.get(k, "") for k in DEPLOYED_FIELDS},
        }

    def format(self, template: str) -> str:
        return template.format_map(self.fields())

    def with_addresses(self, *, base_url: str, frontend_url: str, endpoint_url: str,
                       account_id: str, token: str | None = None, deployed: Mapping[str, str] | None = None,
                       ) -> Environment:
        aws = replace(self.aws, endpoint_url=endpoint_url, account_id=account_id,
                      static_credentials=("testing", "testing"))
        auth = self.auth
        if token and (auth is None or not auth.value):
            auth = AuthSpec(header=auth.header if auth else "Authorization", value=f"Bearer {token}")
        return replace(self, base_url=base_url, frontend_url=frontend_url, aws=aws, auth=auth,
                       deployed=dict(deployed or {}))


@dataclass(frozen=True)
class Project:
    """The whole ``deploygate.toml``: the service and its environments."""

    path: Path
    service: str
    environments: Mapping[str, Environment]
    secrets: frozenset[str] = frozenset()
    cloudwatch: CloudWatchSpec | None = None
    webhook: WebhookSpec | None = None

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(f"unknown environment {name!r} (known: {known})",
                              file=self.path) from None


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build_environment(name: str, raw: dict[str, Any], service: str, src: Source) -> Environment:
    path = ("environments", name)
    stage = raw.get("stage", name)
    launch = raw.get("launch")
    aws_raw = raw.get("aws", {})
    aws = AwsSpec(region=aws_raw.get("region", "us-east-1"), profile=aws_raw.get("profile"),
                  endpoint_url=aws_raw.get("endpoint_url"), account_id=aws_raw.get("account_id"))
    if launch == "demo":
        for key in ("base_url", "frontend_url"):
            if key in raw:
                raise src.error(f"{key} must not be set when launch = \"demo\" (the launched "
                                "deployment supplies it)", (*path, key))
    elif "base_url" not in raw:
        raise src.error("base_url is required (or launch = \"demo\")", path)

    auth = None
    if "auth" in raw:
        auth = AuthSpec(header=raw["auth"].get("header", "Authorization"),
                        value=raw["auth"].get("value", ""))

    fields = {"env": name, "service": service, "stage": stage, "region": aws.region,
              "account_id": aws.account_id or ""}
    resources = raw.get("resources", {})
    for kind in ("tables", "buckets"):
        for i, tmpl in enumerate(resources.get(kind, [])):
            check_template(tmpl, TEMPLATE_FIELDS, src, (*path, "resources", kind, f"[{i}]"))
    tables = tuple(t.format_map(fields) for t in resources.get("tables", []))
    buckets = tuple(b.format_map(fields) for b in resources.get("buckets", []))

    http_raw = raw.get("http", {})
    http = HttpSpec(connect_timeout_s=float(http_raw.get("connect_timeout_s", 3.05)),
                    read_timeout_s=float(http_raw.get("read_timeout_s", 10.0)),
                    retries=int(http_raw.get("retries", 2)), verify=http_raw.get("verify", True),
                    ca_bundle=http_raw.get("ca_bundle"),
                    total_timeout_s=float(http_raw.get("total_timeout_s", 30.0)),
                    max_body_bytes=int(http_raw.get("max_body_bytes", 10_000_000)))
    if http.connect_timeout_s <= 0 or http.read_timeout_s <= 0:
        raise src.error("timeouts must be positive", (*path, "http"))

    smoke_raw = raw.get("smoke", {})
    health = tuple(HealthCheck(**h) for h in smoke_raw.get("health", [{"path": "/health"}]))
    endpoints = tuple(EndpointCheck(**e) for e in smoke_raw.get("endpoints", []))
    frontend = None
    if "frontend" in smoke_raw:
        fr = smoke_raw["frontend"]
        for key, tmpl in fr.get("expect", {}).items():
            check_template(tmpl, TEMPLATE_FIELDS | LATE_FIELDS, src,
                            (*path, "smoke", "frontend", "expect", key))
        frontend = FrontendCheck(page=fr.get("page", ""), assets=fr.get("assets", True),
                                 config_js=fr.get("config_js", "config.js"),
                                 expect=dict(fr.get("expect", {})))
    if frontend is not None and launch != "demo" and "frontend_url" not in raw:
        raise src.error("smoke.frontend needs frontend_url", path)

    crud = build_crud(raw.get("crud", {}), fields, src, (*path, "crud"))
    iso_raw = raw.get("isolation", {})
    for i, tmpl in enumerate(iso_raw.get("cors_origins", [])):
        check_template(tmpl, TEMPLATE_FIELDS | LATE_FIELDS, src, (*path, "isolation", "cors_origins", f"[{i}]"))
    if "collection" in iso_raw and crud.collection(iso_raw["collection"]) is None:
        raise src.error(f"no crud collection named {iso_raw['collection']!r}", (*path, "isolation", "collection"))
    isolation = IsolationSpec(collection=iso_raw.get("collection"),
                              cors_origins=tuple(iso_raw.get("cors_origins", ["{frontend_origin}"])),
                              datastore=iso_raw.get("datastore", True),
                              separate_accounts=iso_raw.get("separate_accounts", True))

    performance = build_performance(raw.get("performance", {}), smoke_raw, src, (*path, "performance"))
    security = build_security(raw.get("security", {}), src, (*path, "security"))

    return Environment(
        name=name, service=service, stage=stage, base_url=raw.get("base_url", ""),
        frontend_url=raw.get("frontend_url", ""), protected=raw.get("protected", False),
        launch=launch, aws=aws, auth=auth, tables=tables, buckets=buckets, http=http,
        smoke=SmokeSpec(health=health, endpoints=endpoints, frontend=frontend,
                        samples=smoke_raw.get("samples", SmokeSpec.samples)),
        crud=crud, isolation=isolation, performance=performance, security=security,
    )


def parse_project(src: Source, data: dict[str, Any], environ: Mapping[str, str] | None = None) -> Project:
    """Validate the deploygate table ``data`` (read from ``src``) and build the typed project."""
    environ = os.environ if environ is None else environ
    validate(data, PROJECT_SPEC, src, ())
    envs_raw = data.get("environments", {})
    if not envs_raw:
        raise src.error("no environments defined (add an [environments.NAME] table)", ("environments",))
    service = data.get("service", "")
    secrets: set[str] = set()
    environments: dict[str, Environment] = {}
    for name, raw in envs_raw.items():
        path = ("environments", name)
        merged = _merge(data.get("defaults", {}), raw)
        auth_raw = merged.pop("auth", None)
        merged = expand_vars(merged, src, path, environ)
        if auth_raw is not None:
            value = auth_raw.get("value", "")
            if value and "${" not in value:
                raise src.error("secrets must be references like \"Bearer ${API_TOKEN}\", "
                                "not literals", (*path, "auth", "value"))
            # Auth values are secrets: remember what they expand to so every output can redact them.
            merged["auth"] = expand_vars(auth_raw, src, (*path, "auth"), environ, secrets)
        environments[name] = _build_environment(name, merged, service, src)
    cloudwatch, webhook = build_publish(data.get("publish", {}), src, environ, secrets, environments)
    return Project(path=src.path, service=service, environments=environments,
                   secrets=frozenset(secrets), cloudwatch=cloudwatch, webhook=webhook)


def find_config(rootdir: Path, explicit: str | None) -> tuple[Path, str | None]:
    """Where the project configuration lives: (file, table) — table is ``tool.deploygate`` for pyproject."""
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = rootdir / path
        if not path.exists():
            raise ConfigError("configuration file not found", file=path)
        return path, ("tool.deploygate" if path.name == "pyproject.toml" else None)
    candidate = rootdir / CONFIG_FILE
    if candidate.exists():
        return candidate, None
    pyproject = rootdir / "pyproject.toml"
    if pyproject.exists():
        src = read_toml(pyproject)
        if "deploygate" in src.data.get("tool", {}):
            return pyproject, "tool.deploygate"
    raise ConfigError(f"no {CONFIG_FILE} (or [tool.deploygate] in pyproject.toml) in {rootdir}")


@dataclass(frozen=True)
class GateFiles:
    """The files a gate run reads: the project configuration (``table`` is ``tool.deploygate`` inside a
    pyproject.toml) and the gate policy."""

    config: Path
    table: str | None
    thresholds: Path


def locate_files(root: Path, config: Path | None = None, thresholds: Path | None = None) -> GateFiles:
    """Where the gate's configuration and policy are: the one lookup the plugin and the CLI share.

    ``root`` is pytest's rootdir in a gate run and :func:`cli_root` for ``deploygate`` commands. An explicit
    ``config``/``thresholds`` (already resolved by the caller) must exist; otherwise the configuration is
    ``root/deploygate.toml``, else ``[tool.deploygate]`` in ``root/pyproject.toml``, and the policy is
    ``root/thresholds.toml``, else the built-in one.
    """
    config_path, table = find_config(root, str(config) if config is not None else None)
    if thresholds is not None:
        if not thresholds.is_file():
            raise ConfigError("thresholds file not found", file=thresholds)
        policy_path = thresholds
    else:
        policy_path = root / THRESHOLDS_FILE
        if not policy_path.is_file():
            policy_path = Path(__file__).with_name(THRESHOLDS_FILE)
    return GateFiles(config_path, table, policy_path)


def cli_root(start: Path | None = None) -> Path:
    """The directory ``deploygate`` commands look in (they have no pytest rootdir): the nearest one from
    ``start`` (the current directory) upwards that holds deploygate.toml or a pyproject.toml with
    ``[tool.deploygate]``, else ``start`` itself. With the configuration beside the pytest ini file, as
    usual, that is the gate's rootdir from any subdirectory."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            try:
                if "deploygate" in read_toml(pyproject).data.get("tool", {}):
                    return directory
            except ConfigError:
                return directory  # a broken pyproject.toml here: report it from here, not a parent's config
    return start


def load_gate(files: GateFiles, environments: Sequence[str] | None = None,
              environ: Mapping[str, str] | None = None) -> tuple[Project, dict[str, Policy]]:
    """Everything the gate validates before it runs, for ``environments`` (default: all of them): the
    project, each environment's existence, and each environment's policy. ``deploygate check-config``
    runs exactly this."""
    project = load_project(files.config, files.table, environ)
    names = list(environments) if environments else list(project.environments)
    for name in names:
        project.environment(name)  # an unknown environment is a ConfigError listing the known ones
    return project, {name: load_policy(files.thresholds, name) for name in names}


def load_project(path: Path, table: str | None = None,
                 environ: Mapping[str, str] | None = None) -> Project:
    src = read_toml(path)
    data: Any = src.data
    if table:
        for part in table.split("."):
            data = data.get(part, {}) if isinstance(data, dict) else {}
        src = replace(src, prefix=tuple(table.split(".")))
    return parse_project(src, data, environ)
