"""The configuration's entry points: where the files are (:func:`locate_files`, shared by the gate and
``deploygate check-config``), everything checked before a run (:func:`load_gate`), and what the rest of the
plugin reads (:class:`Environment`, :class:`Project`).

An environment's table is its own keys plus its sections (:data:`ENVIRONMENT_SECTIONS`: each a dataclass,
in sections.py or, for ``resources`` and ``monitoring``, in resources.py, that is that table's schema,
defaults and builder); the rules *between* sections live in :func:`_build_environment`. The machinery
(TOML with line numbers, validation, ``${VAR}``) is schema.py. Pure configuration: no pytest import. Every
problem is a :class:`ConfigError` naming file, line and key.

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .promotion import RequiresSpec
from .report.metadata import ReportSpec
from .resources import MonitoringSpec, ResourcesSpec
from .schema import ConfigError, MapOf, OneOf, Section, Source, Where, expand_vars, read_toml, validate
from .sections import (
    DEPLOYED_FIELDS,
    LAUNCHED_PASSWORD,
    AuthSpec,
    AwsSpec,
    CloudWatchSpec,
    CrudSpec,
    HttpSpec,
    IsolationSpec,
    LoadTask,
    PerformanceSpec,
    SecuritySpec,
    SmokeSpec,
    WebhookSpec,
)
from .thresholds import Policy, load_policy

__all__ = ["CONFIG_FILE", "DEPLOYED_FIELDS", "ENVIRONMENT_SECTIONS", "THRESHOLDS_FILE", "AuthSpec", "AwsSpec",
           "ConfigError", "Environment", "GateFiles", "HttpSpec", "Project", "Source", "cli_root", "find_config",
           "load_gate", "load_project", "locate_files", "parse_project"]

CONFIG_FILE = "deploygate.toml"
THRESHOLDS_FILE = "thresholds.toml"

#: The sections of an environment's table: key → the dataclass that is its schema, defaults and builder
#: (sections.py). A new section is a line here and a field of :class:`Environment` of the same name.
ENVIRONMENT_SECTIONS: dict[str, type[Section]] = {
    "aws": AwsSpec, "auth": AuthSpec, "http": HttpSpec, "smoke": SmokeSpec, "crud": CrudSpec,
    "isolation": IsolationSpec, "performance": PerformanceSpec, "security": SecuritySpec,
    "resources": ResourcesSpec, "monitoring": MonitoringSpec, "requires": RequiresSpec,
}

#: ``[environments.NAME]`` (and ``[defaults]``): its own keys, then its sections
ENVIRONMENT_SPEC: dict[str, Any] = {
    "stage": str,
    "base_url": str,
    "frontend_url": str,
    "protected": bool,
    #: "demo": the plugin launches the reference deployment for it; "none" (e.g. one environment at a real URL
    #: under [defaults] launch = "demo"): not launched
    "launch": OneOf("demo", "none"),
    **ENVIRONMENT_SECTIONS,
}

PROJECT_SPEC: dict[str, Any] = {
    "service": str,
    "defaults": ENVIRONMENT_SPEC,
    "environments": MapOf(ENVIRONMENT_SPEC),
    "publish": {"cloudwatch": CloudWatchSpec, "webhook": WebhookSpec},
    "report": ReportSpec,
}


# --------------------------------------------------------------------------------------------------
# The typed configuration


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
    #: AWS resources and monitoring the probes (suites/test_resources.py) check (resources.py)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    #: the promotion precondition: another environment's gate passed recently (promotion.py)
    requires: RequiresSpec = field(default_factory=RequiresSpec)

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
        """A cheap GET on this environment's API: the first GET smoke endpoint, else GET health check, else /."""
        for checks in (self.smoke.endpoints, self.smoke.health):
            for check in checks:
                if check.method == "GET":
                    return check.path
        return "/"

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
            auth = replace(auth, value=f"Bearer {token}") if auth else AuthSpec(value=f"Bearer {token}")
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
    #: ``[report]``: where the report's artifacts are published, how to read the deployed version
    report: ReportSpec = field(default_factory=ReportSpec)

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
    """One environment from its table (defaults merged in, ``${VAR}``s expanded): its own keys, each section
    built by its dataclass, then the rules between sections."""
    path = ("environments", name)
    stage = raw.get("stage", name)
    launch = raw.get("launch")
    if launch == "none":
        launch = None  # not launched: addressed by its own base_url like any real deployment
    if launch == "demo":
        for key in ("base_url", "frontend_url"):
            if key in raw:
                raise src.error(f"{key} must not be set when launch = \"demo\" (the launched "
                                "deployment supplies it)", (*path, key))
    elif "base_url" not in raw:
        raise src.error("base_url is required (or launch = \"demo\")", path)

    aws_raw = raw.get("aws", {})
    fields = {"env": name, "service": service, "stage": stage, "region": aws_raw.get("region", AwsSpec.region),
              "account_id": aws_raw.get("account_id") or ""}
    where = Where(src, path, fields, inherited=("defaults",))
    sections: dict[str, Any] = {key: cls.from_table(raw.get(key, {}), where.at(key))
                                for key, cls in ENVIRONMENT_SECTIONS.items()}
    if "auth" not in raw:
        sections["auth"] = None

    resources: ResourcesSpec = sections["resources"]
    # the names the smoke suite checks exist (and isolation keeps apart), filled in for this environment
    tables = tuple(t.name.format_map(fields) for t in resources.tables)
    buckets = tuple(b.name.format_map(fields) for b in resources.buckets)

    smoke: SmokeSpec = sections["smoke"]
    if smoke.frontend is not None and launch != "demo" and "frontend_url" not in raw:
        raise where.error("smoke.frontend needs frontend_url")
    isolation: IsolationSpec = sections["isolation"]
    if isolation.collection is not None and sections["crud"].collection(isolation.collection) is None:
        raise where.error(f"no crud collection named {isolation.collection!r}", "isolation", "collection")
    performance: PerformanceSpec = sections["performance"]
    if not performance.tasks and not performance.locustfile:
        # By default, load what the smoke suite checks: its API endpoints (GET), else its health checks.
        sections["performance"] = replace(performance, tasks=tuple(
            LoadTask(name=f"GET {check.path}", path=check.path, status=(check.status,))
            for check in smoke.endpoints or smoke.health if check.method == "GET"))

    return Environment(
        name=name, service=service, stage=stage, base_url=raw.get("base_url", ""),
        frontend_url=raw.get("frontend_url", ""), protected=raw.get("protected", False),
        launch=launch, tables=tables, buckets=buckets, **sections,
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
            cognito = auth_raw.get("cognito")
            password = cognito.get("password", "") if isinstance(cognito, dict) else ""
            if password and "${" not in password and password != LAUNCHED_PASSWORD:
                raise Where(src, path, inherited=("defaults",)).error(
                    "secrets must be references like \"${COGNITO_PASSWORD}\", not literals (or "
                    f"{LAUNCHED_PASSWORD}: a launched reference deployment's probe user)",
                    "auth", "cognito", "password")
            # Auth values are secrets: remember what they expand to so every output can redact them.
            merged["auth"] = expand_vars(auth_raw, src, (*path, "auth"), environ, secrets)
        environments[name] = _build_environment(name, merged, service, src)
    for name, env in environments.items():
        required = env.requires.environment
        if required and (required == name or required not in environments):
            why = "itself" if required == name else f"unknown environment {required!r} (known: " \
                f"{', '.join(sorted(environments))})"
            raise Where(src, ("environments", name, "requires"), inherited=("defaults", "requires")).error(
                f"requires.environment names {why}", "environment")
    cloudwatch, webhook = _build_publish(data.get("publish", {}), src, environ, secrets, environments)
    # no ${VAR} expansion here: report_url's variables are the CI job's, filled in when the report is written
    report = ReportSpec.from_table(data.get("report", {}), Where(src, ("report",)))
    return Project(path=src.path, service=service, environments=environments,
                   secrets=frozenset(secrets), cloudwatch=cloudwatch, webhook=webhook, report=report)


def _build_publish(raw: dict[str, Any], src: Source, environ: Mapping[str, str], secrets: set[str],
                   environments: Mapping[str, Environment]) -> tuple[CloudWatchSpec | None, WebhookSpec | None]:
    """The ``publish`` sections, ``${VAR}``s expanded; a webhook URL is a secret, so it must be a reference."""
    cloudwatch = webhook = None
    if "cloudwatch" in raw:
        where = Where(src, ("publish", "cloudwatch"))
        cloudwatch = CloudWatchSpec.from_table(expand_vars(raw["cloudwatch"], src, where.path, environ), where)
        if cloudwatch.environment and cloudwatch.environment not in environments:
            raise where.error(f"unknown environment {cloudwatch.environment!r}", "environment")
    if "webhook" in raw:
        where = Where(src, ("publish", "webhook"))
        wh = dict(raw["webhook"])
        if "url" in wh:
            if "${" not in wh["url"]:
                raise where.error("webhook URLs carry a token: reference it, e.g. url = \"${SLACK_WEBHOOK_URL}\"",
                                  "url")
            # the whole URL is a secret (Slack-style webhook URLs are bearer tokens)
            wh["url"] = expand_vars(wh["url"], src, (*where.path, "url"), environ, secrets)
            secrets.add(wh["url"])
        if "report_url" in wh:
            wh["report_url"] = expand_vars(wh["report_url"], src, where.path, environ)
        webhook = WebhookSpec.from_table(wh, where)
    return cloudwatch, webhook


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
