"""AWS resource and monitoring probes: the ``resources`` and ``monitoring`` sections of an environment and
what the probes of ``suites/test_resources.py`` decide from AWS's answers.

One place per section: its schema (``RESOURCES_SPEC``, ``MONITORING_SPEC``), its frozen dataclasses and
their builders (:func:`build_resources`, :func:`build_monitoring`). Then the probes: each reads one
resource with describe/get/list calls only (never a secret's or a parameter's value) through a client of
the environment's account, and returns what it found or raises

- :class:`Absent`: the resource does not exist (a finding, or a skip when it is ``optional`` / the run
  says ``--skip-absent``);
- :class:`~pytest_deploygate.failures.Unverified`: AWS could not be asked or refused to answer (access
  denied, endpoint unreachable, timeout): never reported as "missing".

Resource names are templates (``{service}-{stage}-api``), filled in per environment when probed. No pytest
import; botocore is imported only when a probe runs.
"""

from __future__ import annotations

import datetime
import fnmatch
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .failures import Unverified
from .schema import Either, MapOf, Num, OneOf, Source
from .specs import LATE_FIELDS, TEMPLATE_FIELDS, check_template

# --------------------------------------------------------------------------------------------------
# Configuration: schema, dataclasses, builders

#: what a resource name may use: the environment's fields (``{service}``, ``{stage}``, ``{account_id}``, ...)
NAME_FIELDS = TEMPLATE_FIELDS
#: what an expected value (a function's environment variable) may use: the launched addresses too
VALUE_FIELDS = TEMPLATE_FIELDS | LATE_FIELDS

FUNCTION_SPEC = {
    "name": str, "optional": bool, "state": str, "runtime": str,
    "memory_mb": Num(128, 10240, integer=True), "timeout_s": Num(1, 900, integer=True),
    "image_tag": str, "environment": MapOf(str), "distinct_role": bool,
}
USER_POOL_SPEC = {"name": str, "id": str, "optional": bool}
QUEUE_SPEC = {"name": str, "optional": bool, "dlq": bool, "dlq_name": str}
LOG_GROUP_SPEC = {"name": str, "optional": bool, "retention_days": Num(1, 3653, integer=True)}
SECRET_SPEC = {"name": str, "optional": bool, "kms_key": str, "rotation": bool}
PARAMETER_SPEC = {"name": str, "optional": bool, "type": OneOf("SecureString", "String", "StringList"),
                  "kms_key": str}
TABLE_SPEC = {"name": str, "optional": bool, "pitr": bool, "sse": bool}
PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
BUCKET_SPEC = {"name": str, "optional": bool, "encryption": bool,
               "public_access_block": Either(bool, [OneOf(*PUBLIC_ACCESS_FLAGS)])}
API_SPEC = {"name": str, "id": str, "stage": str, "optional": bool,
            "throttling": {"rate": Num(0, 1e9), "burst": Num(0, 1e9, integer=True)},
            "cors_origins": [str]}

#: ``[environments.X.resources]``: ``tables``/``buckets`` entries are names, or tables with a name and options
RESOURCES_SPEC: dict[str, Any] = {
    # a name, or { name = ..., pitr = true, ... } (checked entry by entry by build_resources)
    "tables": [Either(str, dict)], "buckets": [Either(str, dict)],
    "functions": [FUNCTION_SPEC], "user_pools": [USER_POOL_SPEC], "queues": [QUEUE_SPEC],
    "log_groups": [LOG_GROUP_SPEC], "secrets": [SECRET_SPEC], "parameters": [PARAMETER_SPEC],
    "apis": [API_SPEC],
}

ALARM_SPEC = {"name": str, "prefix": str, "optional": bool}
STATISTICS = ("Sum", "Average", "Maximum", "Minimum", "SampleCount")
CLOUDWATCH_METRIC_SPEC = {
    "name": str, "namespace": str, "metric": str, "dimensions": MapOf(str), "stat": str,
    "window_s": Num(60, 15 * 86400, integer=True), "missing": OneOf("zero", "skip"), "unit": str,
}
#: ``[environments.X.monitoring]``
MONITORING_SPEC: dict[str, Any] = {"alarms": [ALARM_SPEC], "metrics": [CLOUDWATCH_METRIC_SPEC]}


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function expected in the environment's account (``environment`` values are templates)."""

    name: str
    optional: bool = False
    state: str = "Active"
    runtime: str | None = None
    memory_mb: int | None = None
    timeout_s: int | None = None
    #: a glob on the image tag of a container-image function (``api-handler-{stage}-*``)
    image_tag: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    #: its execution role must differ from the role of the same function in every peer environment
    distinct_role: bool = True


@dataclass(frozen=True)
class UserPoolSpec:
    name: str = ""
    id: str = ""
    optional: bool = False

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class QueueSpec:
    name: str
    optional: bool = False
    #: a redrive policy to a dead-letter queue is required; its depth is ``smoke.resources.dlq_depth_count``
    dlq: bool = True
    #: the DLQ's expected name (default: whichever the redrive policy names)
    dlq_name: str | None = None


@dataclass(frozen=True)
class LogGroupSpec:
    name: str
    optional: bool = False
    #: the retention expected exactly (default: any retention, but one must be set)
    retention_days: int | None = None


@dataclass(frozen=True)
class SecretSpec:
    name: str
    optional: bool = False
    #: a glob on the KMS key id/ARN/alias that encrypts it (default: any; every secret is encrypted)
    kms_key: str | None = None
    rotation: bool = False


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    optional: bool = False
    type: str = "SecureString"
    kms_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """Options a DynamoDB table must have (``tables`` entries written as tables)."""

    name: str
    optional: bool = False
    #: point-in-time recovery enabled
    pitr: bool = False
    #: encrypted with a KMS key (AWS managed or the customer's), not only DynamoDB's default owned key
    sse: bool = False


@dataclass(frozen=True)
class BucketSpec:
    name: str
    optional: bool = False
    #: a default server-side encryption configuration
    encryption: bool = False
    #: the public-access-block settings that must be on (``public_access_block = true``: all four; a
    #: website served through a public-read policy can still block ACLs)
    public_access_block: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiSpec:
    """An API Gateway REST API stage: exists, throttled, and (HTTP APIs) CORS as expected."""

    name: str = ""
    id: str = ""
    stage: str = "{stage}"
    optional: bool = False
    throttling: bool = True
    rate: float | None = None
    burst: int | None = None
    cors_origins: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.name or self.id}/{self.stage}"


@dataclass(frozen=True)
class ResourcesSpec:
    """The AWS resources the probes check, besides the table/bucket existence checks of the smoke suite."""

    functions: tuple[FunctionSpec, ...] = ()
    user_pools: tuple[UserPoolSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    log_groups: tuple[LogGroupSpec, ...] = ()
    secrets: tuple[SecretSpec, ...] = ()
    parameters: tuple[ParameterSpec, ...] = ()
    #: tables and buckets declared with options (pitr, sse, encryption, public_access_block)
    tables: tuple[TableSpec, ...] = ()
    buckets: tuple[BucketSpec, ...] = ()
    apis: tuple[ApiSpec, ...] = ()


@dataclass(frozen=True)
class AlarmSpec:
    """CloudWatch alarms that must exist and not be in ALARM: one by ``name``, or every one whose name
    starts with ``prefix`` (at least one must)."""

    name: str = ""
    prefix: str = ""
    optional: bool = False

    @property
    def label(self) -> str:
        return self.name or f"{self.prefix}*"


@dataclass(frozen=True)
class CloudWatchMetricSpec:
    """A CloudWatch statistic over the last ``window_s`` seconds, recorded as the gate metric ``name``."""

    name: str
    namespace: str
    metric: str
    stat: str = "Sum"
    dimensions: Mapping[str, str] = field(default_factory=dict)
    window_s: int = 900
    #: no datapoint in the window: "zero" (a count of events that did not happen) or "skip"
    missing: str = "skip"
    unit: str | None = None


@dataclass(frozen=True)
class MonitoringSpec:
    alarms: tuple[AlarmSpec, ...] = ()
    metrics: tuple[CloudWatchMetricSpec, ...] = ()


def _entry(raw: Any, spec: dict[str, Any], src: Source, where: tuple[str, ...]) -> dict[str, Any]:
    """A ``tables``/``buckets`` entry as a table: a plain name becomes ``{name = ...}``."""
    from .schema import validate

    if isinstance(raw, str):
        return {"name": raw}
    validate(raw, spec, src, where)
    return dict(raw)


def _named(raw: dict[str, Any], src: Source, where: tuple[str, ...], fields: set[str] = NAME_FIELDS) -> str:
    name = raw.get("name")
    if not name:
        raise src.error("needs a name", where)
    check_template(name, fields, src, (*where, "name"))
    return str(name)


def _template(value: str | None, src: Source, where: tuple[str, ...], fields: set[str] = NAME_FIELDS) -> None:
    if value:
        check_template(value, fields, src, where)


def table_names(raw: dict[str, Any], src: Source, path: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The name templates of ``resources.tables`` and ``resources.buckets`` (entries may be tables)."""
    out: tuple[list[str], list[str]] = ([], [])
    for kind, spec, names in (("tables", TABLE_SPEC, out[0]), ("buckets", BUCKET_SPEC, out[1])):
        for i, entry in enumerate(raw.get(kind, [])):
            where = (*path, kind, f"[{i}]")
            names.append(_named(_entry(entry, spec, src, where), src, where))
    return out


def build_resources(raw: dict[str, Any], src: Source, path: tuple[str, ...]) -> ResourcesSpec:
    """``raw``: the validated ``resources`` table of one environment (defaults merged in)."""

    def each(kind: str) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
        return [(entry, (*path, kind, f"[{i}]")) for i, entry in enumerate(raw.get(kind, []))]

    functions = []
    for f, where in each("functions"):
        name = _named(f, src, where)
        for key, value in f.get("environment", {}).items():
            check_template(value, VALUE_FIELDS, src, (*where, "environment", key))
        _template(f.get("image_tag"), src, (*where, "image_tag"))
        functions.append(FunctionSpec(
            name=name, optional=f.get("optional", False), state=f.get("state", "Active"),
            runtime=f.get("runtime"), memory_mb=f.get("memory_mb"), timeout_s=f.get("timeout_s"),
            image_tag=f.get("image_tag"), environment=dict(f.get("environment", {})),
            distinct_role=f.get("distinct_role", True)))

    pools = []
    for p, where in each("user_pools"):
        if bool(p.get("name")) == bool(p.get("id")):
            raise src.error("a user pool is found by name or by id: give exactly one", where)
        _template(p.get("name"), src, (*where, "name"))
        _template(p.get("id"), src, (*where, "id"))
        pools.append(UserPoolSpec(name=p.get("name", ""), id=p.get("id", ""), optional=p.get("optional", False)))

    queues = []
    for q, where in each("queues"):
        name = _named(q, src, where)
        _template(q.get("dlq_name"), src, (*where, "dlq_name"))
        if q.get("dlq_name") and q.get("dlq") is False:
            raise src.error("dlq_name needs dlq = true", (*where, "dlq_name"))
        queues.append(QueueSpec(name=name, optional=q.get("optional", False), dlq=q.get("dlq", True),
                                dlq_name=q.get("dlq_name")))

    log_groups = [LogGroupSpec(_named(g, src, where), g.get("optional", False), g.get("retention_days"))
                  for g, where in each("log_groups")]
    secrets = [SecretSpec(_named(s, src, where), s.get("optional", False), s.get("kms_key"), s.get("rotation", False))
               for s, where in each("secrets")]
    parameters = [ParameterSpec(_named(p, src, where), p.get("optional", False), p.get("type", "SecureString"),
                                p.get("kms_key")) for p, where in each("parameters")]

    tables, buckets = [], []
    for i, entry in enumerate(raw.get("tables", [])):
        where = (*path, "tables", f"[{i}]")
        t = _entry(entry, TABLE_SPEC, src, where)
        if isinstance(entry, dict) and (t.get("pitr") or t.get("sse") or t.get("optional")):
            tables.append(TableSpec(_named(t, src, where), t.get("optional", False), t.get("pitr", False),
                                    t.get("sse", False)))
    for i, entry in enumerate(raw.get("buckets", [])):
        where = (*path, "buckets", f"[{i}]")
        b = _entry(entry, BUCKET_SPEC, src, where)
        if isinstance(entry, dict) and (b.get("encryption") or b.get("public_access_block") or b.get("optional")):
            block = b.get("public_access_block", False)
            flags = PUBLIC_ACCESS_FLAGS if block is True else tuple(block or ())
            buckets.append(BucketSpec(_named(b, src, where), b.get("optional", False), b.get("encryption", False),
                                      flags))

    apis = []
    for a, where in each("apis"):
        if bool(a.get("name")) == bool(a.get("id")):
            raise src.error("an API is found by name or by id: give exactly one", where)
        for key in ("name", "id", "stage"):
            _template(a.get(key), src, (*where, key))
        for j, origin in enumerate(a.get("cors_origins", [])):
            check_template(origin, VALUE_FIELDS, src, (*where, "cors_origins", f"[{j}]"))
        throttling = a.get("throttling", {})
        apis.append(ApiSpec(name=a.get("name", ""), id=a.get("id", ""), stage=a.get("stage", "{stage}"),
                            optional=a.get("optional", False), rate=throttling.get("rate"),
                            burst=throttling.get("burst"),
                            cors_origins=tuple(a["cors_origins"]) if "cors_origins" in a else None))

    return ResourcesSpec(functions=tuple(functions), user_pools=tuple(pools), queues=tuple(queues),
                         log_groups=tuple(log_groups), secrets=tuple(secrets), parameters=tuple(parameters),
                         tables=tuple(tables), buckets=tuple(buckets), apis=tuple(apis))


def build_monitoring(raw: dict[str, Any], src: Source, path: tuple[str, ...]) -> MonitoringSpec:
    """``raw``: the validated ``monitoring`` table of one environment (defaults merged in)."""
    alarms = []
    for i, a in enumerate(raw.get("alarms", [])):
        where = (*path, "alarms", f"[{i}]")
        if bool(a.get("name")) == bool(a.get("prefix")):
            raise src.error("an alarm entry names one alarm (name) or a family (prefix): give exactly one", where)
        _template(a.get("name"), src, (*where, "name"))
        _template(a.get("prefix"), src, (*where, "prefix"))
        alarms.append(AlarmSpec(name=a.get("name", ""), prefix=a.get("prefix", ""), optional=a.get("optional", False)))

    metrics = []
    seen: set[str] = set()
    for i, m in enumerate(raw.get("metrics", [])):
        where = (*path, "metrics", f"[{i}]")
        for key in ("name", "namespace", "metric"):
            if not m.get(key):
                raise src.error(f"a CloudWatch metric needs {key}", where)
        name = m["name"]
        parts = name.split(".")
        if len(parts) < 2 or not all(parts) or not all(p.replace("_", "").isalnum() for p in parts):
            raise src.error(f"name {name!r} must be a gate metric name like custom.lambda_errors_count "
                            "(judged by its threshold in thresholds.toml)", (*where, "name"))
        if name in seen:
            raise src.error(f"duplicate metric name {name!r}", (*where, "name"))
        seen.add(name)
        stat = m.get("stat", "Sum")
        if stat not in STATISTICS and parse_percentile(stat) is None:
            raise src.error(f"stat must be one of {', '.join(STATISTICS)} or a percentile like p95, got {stat!r}",
                            (*where, "stat"))
        for key, value in m.get("dimensions", {}).items():
            check_template(value, NAME_FIELDS, src, (*where, "dimensions", key))
        metrics.append(CloudWatchMetricSpec(
            name=name, namespace=m["namespace"], metric=m["metric"], stat=stat,
            dimensions=dict(m.get("dimensions", {})), window_s=m.get("window_s", 900),
            missing=m.get("missing", "skip"), unit=m.get("unit")))
    return MonitoringSpec(alarms=tuple(alarms), metrics=tuple(metrics))


def parse_percentile(stat: str) -> float | None:
    """95.0 for ``p95``, 99.9 for ``p99.9``; None for anything else."""
    if not stat.startswith("p"):
        return None
    try:
        value = float(stat[1:])
    except ValueError:
        return None
    return value if 0 < value < 100 else None


# --------------------------------------------------------------------------------------------------
# Calling AWS: absent, could not check, or an answer


class Absent(Exception):
    """The resource does not exist in the environment's account (the message says which)."""


#: error codes that mean "no such resource" (anything else that fails is "could not check")
ABSENT_CODES = frozenset({
    "ResourceNotFoundException", "ResourceNotFound", "NotFoundException", "NotFound", "404",
    "NoSuchBucket", "ParameterNotFound", "TableNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
})


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def describe_error(exc: BaseException) -> str:
    """One line for a botocore error: the AWS error code and message, or the connection problem."""
    code = error_code(exc)
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        return f"{code}: {message}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def call(client: Any, operation: str, what: str, *, absent: frozenset[str] | set[str] = ABSENT_CODES,
         **params: Any) -> dict[str, Any]:
    """``client.<operation>(**params)``: raises :class:`Absent` when AWS says ``what`` does not exist and
    :class:`Unverified` when it could not be asked (access denied, unreachable, timeout, throttled)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return dict(getattr(client, operation)(**params))
    except ClientError as exc:
        if error_code(exc) in absent:
            raise Absent(f"{what} does not exist") from None
        raise Unverified(f"{what}: could not check: {operation}: {describe_error(exc)}") from None
    except BotoCoreError as exc:
        raise Unverified(f"{what}: could not check: {operation}: {describe_error(exc)}") from None


def pages(client: Any, operation: str, what: str, key: str, **params: Any) -> list[Any]:
    """Every item under ``key`` of a paginated list/describe call (same errors as :func:`call`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    items: list[Any] = []
    try:
        for page in client.get_paginator(operation).paginate(**params):
            items.extend(page.get(key, []))
    except ClientError as exc:
        raise Unverified(f"{what}: could not check: {operation}: {describe_error(exc)}") from None
    except BotoCoreError as exc:
        raise Unverified(f"{what}: could not check: {operation}: {describe_error(exc)}") from None
    return items


def in_account(arn: str, account_id: str | None) -> bool:
    """Whether ``arn`` belongs to ``account_id`` (True when the account is not known)."""
    return not account_id or arn.split(":")[4:5] == [account_id]


# --------------------------------------------------------------------------------------------------
# The decisions (pure: AWS answers in, problems out)


def image_tag_of(uri: str) -> str | None:
    """``v1.2.3`` of ``123.dkr.ecr.us-east-1.amazonaws.com/app:v1.2.3``; None for a digest or no tag."""
    last = uri.rsplit("/", 1)[-1]
    if "@" in last or ":" not in last:
        return None
    return last.rsplit(":", 1)[1]


def function_problems(function: Mapping[str, Any], spec: FunctionSpec, expected_env: Mapping[str, str],
                      account_id: str | None) -> list[str]:
    """What is wrong with a ``GetFunction`` answer. Only the variables ``expected_env`` names are read
    (the others may hold secrets); their expected values are the configuration's, so showing them is safe."""
    cfg = function.get("Configuration", {})
    problems = []
    arn = cfg.get("FunctionArn", "")
    if not in_account(arn, account_id):
        problems.append(f"{arn} is not in this environment's account {account_id}")
    state = cfg.get("State")
    if spec.state and state is not None and state != spec.state:
        reason = cfg.get("StateReason")
        problems.append(f"state is {state}, expected {spec.state}" + (f" ({reason})" if reason else ""))
    for key, label, expected in (("Runtime", "runtime", spec.runtime), ("MemorySize", "memory", spec.memory_mb),
                                 ("Timeout", "timeout", spec.timeout_s)):
        if expected is not None and cfg.get(key) != expected:
            problems.append(f"{label} is {cfg.get(key)!r}, expected {expected!r}")
    if spec.image_tag is not None:
        uri = function.get("Code", {}).get("ImageUri") or cfg.get("ImageConfigResponse", {}).get("ImageUri", "")
        tag = image_tag_of(uri or "")
        if not uri:
            problems.append(f"is not a container-image function (package type {cfg.get('PackageType')}), "
                            f"expected image tag {spec.image_tag!r}")
        elif tag is None or not fnmatch.fnmatchcase(tag, spec.image_tag):
            problems.append(f"image tag is {tag!r} ({uri}), expected {spec.image_tag!r}")
    variables = (cfg.get("Environment") or {}).get("Variables") or {}
    for key, expected in expected_env.items():
        if key not in variables:
            problems.append(f"environment variable {key} is not set (expected {expected!r})")
        elif variables[key] != expected:
            problems.append(f"environment variable {key} = {variables[key]!r}, expected {expected!r}")
    return problems


def shared_roles(role: str, peer_roles: Mapping[str, str]) -> list[str]:
    """The peers whose function runs with the same execution role."""
    return [peer for peer, peer_role in peer_roles.items() if peer_role == role]


def redrive_target(attributes: Mapping[str, str]) -> tuple[str | None, int | None]:
    """(DLQ ARN, maxReceiveCount) of a queue's ``RedrivePolicy`` attribute, or (None, None)."""
    import json

    raw = attributes.get("RedrivePolicy")
    if not raw:
        return None, None
    try:
        policy = json.loads(raw)
    except ValueError:
        return None, None
    count = policy.get("maxReceiveCount")
    try:
        receives = int(count) if count is not None else None
    except (TypeError, ValueError):
        receives = None
    return policy.get("deadLetterTargetArn"), receives


def queue_problems(attributes: Mapping[str, str], spec: QueueSpec, dlq_name: str | None,
                   account_id: str | None) -> list[str]:
    """What is wrong with a queue's attributes (``dlq_name``: the expected DLQ name, formatted)."""
    problems = []
    arn = attributes.get("QueueArn", "")
    if arn and not in_account(arn, account_id):
        problems.append(f"{arn} is not in this environment's account {account_id}")
    if spec.dlq:
        target, _ = redrive_target(attributes)
        if not target:
            problems.append("has no redrive policy to a dead-letter queue")
        elif dlq_name and target.rsplit(":", 1)[-1] != dlq_name:
            problems.append(f"redrives to {target.rsplit(':', 1)[-1]}, expected {dlq_name}")
    return problems


def dlq_depth(attributes: Mapping[str, str]) -> int:
    """Messages in a dead-letter queue: visible plus in flight (being looked at is not being fixed)."""
    return sum(int(attributes.get(k, 0) or 0) for k in ("ApproximateNumberOfMessages",
                                                        "ApproximateNumberOfMessagesNotVisible"))


def log_group_problems(group: Mapping[str, Any], spec: LogGroupSpec) -> list[str]:
    days = group.get("retentionInDays")
    if days is None:
        return ["has no retention set (logs are kept forever)"]
    if spec.retention_days is not None and days != spec.retention_days:
        return [f"retention is {days} days, expected {spec.retention_days}"]
    return []


def secret_problems(secret: Mapping[str, Any], spec: SecretSpec) -> list[str]:
    problems = []
    if secret.get("DeletedDate"):
        problems.append(f"is scheduled for deletion ({secret['DeletedDate']})")
    key = secret.get("KmsKeyId") or "aws/secretsmanager (the default key)"
    if spec.kms_key and not fnmatch.fnmatchcase(str(secret.get("KmsKeyId") or ""), spec.kms_key):
        problems.append(f"is encrypted with {key}, expected {spec.kms_key!r}")
    if spec.rotation and not secret.get("RotationEnabled"):
        problems.append("has rotation disabled")
    return problems


def parameter_problems(parameter: Mapping[str, Any], spec: ParameterSpec) -> list[str]:
    problems = []
    kind = parameter.get("Type")
    if kind != spec.type:
        problems.append(f"is a {kind}, expected {spec.type}"
                        + (" (stored unencrypted)" if spec.type == "SecureString" else ""))
    if spec.kms_key and not fnmatch.fnmatchcase(str(parameter.get("KeyId") or ""), spec.kms_key):
        problems.append(f"is encrypted with {parameter.get('KeyId')!r}, expected {spec.kms_key!r}")
    return problems


def table_problems(table: Mapping[str, Any], backups: Mapping[str, Any] | None, spec: TableSpec) -> list[str]:
    """``table``: DescribeTable's ``Table``; ``backups``: DescribeContinuousBackups's description."""
    problems = []
    if spec.pitr:
        status = ((backups or {}).get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus")
        if status != "ENABLED":
            problems.append(f"point-in-time recovery is {status or 'DISABLED'}, expected ENABLED")
    if spec.sse:
        sse = table.get("SSEDescription") or {}
        if sse.get("Status") not in ("ENABLED", "ENABLING", "UPDATING"):
            problems.append("is not encrypted with a KMS key (SSE " + (sse.get("Status") or "off") + ", only "
                            "DynamoDB's default owned key), expected server-side encryption")
    return problems


def bucket_problems(encryption: Mapping[str, Any] | None, public_access: Mapping[str, Any] | None,
                    spec: BucketSpec) -> list[str]:
    """``encryption``: GetBucketEncryption's configuration (None: none configured);
    ``public_access``: GetPublicAccessBlock's configuration (None: none)."""
    problems = []
    if spec.encryption:
        rules = (encryption or {}).get("Rules") or []
        algorithms = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules]
        if not any(algorithms):
            problems.append("has no default server-side encryption")
    if spec.public_access_block:
        off = [flag for flag in spec.public_access_block if not (public_access or {}).get(flag)]
        if public_access is None:
            problems.append("has no public access block")
        elif off:
            problems.append(f"public access block leaves {', '.join(off)} off")
    return problems


def alarms_in_alarm(alarms: list[Mapping[str, Any]]) -> list[str]:
    """``name (reason)`` of every alarm in state ALARM."""
    return [f"{a.get('AlarmName')} ({a.get('StateReason', '').strip() or 'no reason given'})"
            for a in alarms if a.get("StateValue") == "ALARM"]


def aggregate(datapoints: list[Mapping[str, Any]], stat: str) -> float | None:
    """One value for the whole window from CloudWatch datapoints (periods): sums add up, maxima and
    percentiles take the worst period, averages weight by sample count. None without datapoints."""
    key = stat if parse_percentile(stat) is None else None
    values = []
    for point in datapoints:
        value = point.get(key) if key else (point.get("ExtendedStatistics") or {}).get(stat)
        if value is not None and math.isfinite(float(value)):
            values.append((float(value), float(point.get("SampleCount") or 0)))
    if not values:
        return None
    if stat in ("Sum", "SampleCount"):
        return sum(v for v, _ in values)
    if stat == "Minimum":
        return min(v for v, _ in values)
    if stat == "Average":
        weight = sum(n for _, n in values)
        return sum(v * n for v, n in values) / weight if weight else sum(v for v, _ in values) / len(values)
    return max(v for v, _ in values)  # Maximum and percentiles: the worst period


def metric_window(window_s: int, now: datetime.datetime | None = None) -> dict[str, Any]:
    """StartTime, EndTime and Period of a GetMetricStatistics call covering the last ``window_s`` s."""
    end = now or datetime.datetime.now(datetime.timezone.utc)
    period = max(60, math.ceil(window_s / 60) * 60)
    return {"StartTime": end - datetime.timedelta(seconds=window_s), "EndTime": end, "Period": period}


def api_problems(stage: Mapping[str, Any], spec: ApiSpec) -> list[str]:
    """What is wrong with a REST API ``GetStage`` answer: throttling on every method (``*/*``)."""
    problems = []
    settings = (stage.get("methodSettings") or {}).get("*/*") or {}
    rate, burst = settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")
    if spec.throttling and (not rate or rate <= 0 or burst is None or burst <= 0):
        problems.append("has no throttling on */* (rate and burst limits)")
    if spec.rate is not None and rate != spec.rate:
        problems.append(f"throttling rate is {rate!r}, expected {spec.rate:g}")
    if spec.burst is not None and burst != spec.burst:
        problems.append(f"throttling burst is {burst!r}, expected {spec.burst}")
    return problems


def cors_problems(allowed: list[str], expected: list[str]) -> list[str]:
    extra = sorted(set(allowed) - set(expected))
    missing = sorted(set(expected) - set(allowed))
    problems = []
    if extra:
        problems.append(f"CORS allows {', '.join(extra)} (expected only {', '.join(expected) or 'none'})")
    if missing:
        problems.append(f"CORS does not allow {', '.join(missing)}")
    return problems


def resource_ids(env_format: Callable[[str], str], names: list[str]) -> list[str]:
    """Test ids: the names formatted with what is known at collection (a launched deployment's account
    id is not); unique."""
    ids: list[str] = []
    for name in names:
        try:
            label = env_format(name)
        except (KeyError, ValueError, IndexError):
            label = name
        while label in ids:
            label += "+"
        ids.append(label)
    return ids
