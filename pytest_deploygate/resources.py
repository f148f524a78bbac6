"""AWS resource and monitoring probes: the ``resources`` and ``monitoring`` sections of an environment and
what the probes of ``suites/test_resources.py`` decide from AWS's answers.

The sections: :class:`ResourcesSpec` and :class:`MonitoringSpec` and their entries (FunctionSpec, QueueSpec,
...), each a :class:`~pytest_deploygate.schema.Section` dataclass that is at once its table's schema, defaults
and builder (registered in ``config.ENVIRONMENT_SECTIONS``). Then the probes: each reads one
resource with describe/get/list calls only (never a secret's or a parameter's value) through a client of
the environment's account, and returns what it found or raises

- :class:`Absent`: the resource does not exist (a finding, or a skip when it is ``optional`` / the run
  says ``--skip-absent``);
- :class:`~pytest_deploygate.failures.Unverified`: AWS could not be asked or refused to answer (access
  denied, endpoint unreachable, timeout): never reported as "missing".

Resource names are templates (``{service}-{stage}-api``), filled in per environment when probed. No pytest
import; botocore is imported only when a probe runs.

PYTEST_DONT_REWRITE (loaded at pytest's start: see plugin.py).
"""

from __future__ import annotations

import datetime
import fnmatch
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .failures import Unverified
from .schema import ConfigError, Either, MapOf, Num, OneOf, Section, Where, build, key, validate
from .sections import LATE_FIELDS, TEMPLATE_FIELDS

S = TypeVar("S", bound=Section)

# --------------------------------------------------------------------------------------------------
# Configuration: one frozen dataclass per table (schema, default and builder in one place)

#: what a resource name may use: the environment's fields (``{service}``, ``{stage}``, ``{account_id}``, ...)
NAME_FIELDS = frozenset(TEMPLATE_FIELDS)
#: what an expected value (a function's environment variable, a CORS origin) may use: the addresses too
VALUE_FIELDS = frozenset(TEMPLATE_FIELDS | LATE_FIELDS)
PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
STATISTICS = ("Sum", "Average", "Maximum", "Minimum", "SampleCount")


def _name() -> Any:
    return field(metadata=key(str, template=NAME_FIELDS))


def _optional() -> Any:
    #: absent: SKIPPED with the reason (never PASS) instead of FAIL; present but broken still FAILS
    return field(default=False, metadata=key(bool))


def _exactly_one(raw: Mapping[str, Any], where: Where, first: str, second: str, what: str) -> None:
    if bool(raw.get(first)) == bool(raw.get(second)):
        raise where.error(f"{what}: give exactly one of {first} and {second}")


@dataclass(frozen=True, eq=False, repr=False)
class FunctionSpec(Section):
    """A Lambda function expected in the environment's account (``environment`` values are templates)."""

    NOUN: ClassVar[str] = "a Lambda function"

    name: str = _name()
    optional: bool = _optional()
    state: str = field(default="Active", metadata=key(str))
    runtime: str | None = field(default=None, metadata=key(str))
    memory_mb: int | None = field(default=None, metadata=key(Num(128, 10240, integer=True)))
    timeout_s: int | None = field(default=None, metadata=key(Num(1, 900, integer=True)))
    #: a glob on the image tag of a container-image function (``api-handler-{stage}-*``)
    image_tag: str | None = field(default=None, metadata=key(str, template=NAME_FIELDS))
    environment: Mapping[str, str] = field(default_factory=dict, metadata=key(MapOf(str), template=VALUE_FIELDS))
    #: its execution role must differ from the role of the same function in every peer environment
    distinct_role: bool = field(default=True, metadata=key(bool))


@dataclass(frozen=True, eq=False, repr=False)
class UserPoolSpec(Section):
    """A Cognito user pool, found by ``name`` or by ``id``."""

    NOUN: ClassVar[str] = "a user pool"

    name: str = field(default="", metadata=key(str, template=NAME_FIELDS))
    id: str = field(default="", metadata=key(str, template=NAME_FIELDS))
    optional: bool = _optional()

    @property
    def label(self) -> str:
        return self.name or self.id

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> UserPoolSpec:
        _exactly_one(raw, where, "name", "id", "a user pool is found by name or by id")
        return build(cls, raw, where)


@dataclass(frozen=True, eq=False, repr=False)
class QueueSpec(Section):
    """An SQS queue; its dead-letter queue's depth is ``smoke.resources.dlq_depth_count{queue=...}``."""

    NOUN: ClassVar[str] = "a queue"

    name: str = _name()
    optional: bool = _optional()
    #: a redrive policy to a dead-letter queue is required
    dlq: bool = field(default=True, metadata=key(bool))
    #: the DLQ's expected name (default: whichever the redrive policy names)
    dlq_name: str | None = field(default=None, metadata=key(str, template=NAME_FIELDS))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> QueueSpec:
        if raw.get("dlq_name") and raw.get("dlq") is False:
            raise where.error("dlq_name needs dlq = true", "dlq_name")
        return build(cls, raw, where)


@dataclass(frozen=True, eq=False, repr=False)
class LogGroupSpec(Section):
    NOUN: ClassVar[str] = "a log group"

    name: str = _name()
    optional: bool = _optional()
    #: the retention expected exactly (default: any retention, but one must be set)
    retention_days: int | None = field(default=None, metadata=key(Num(1, 3653, integer=True)))


@dataclass(frozen=True, eq=False, repr=False)
class SecretSpec(Section):
    """A Secrets Manager secret: described, never read."""

    NOUN: ClassVar[str] = "a secret"

    name: str = _name()
    optional: bool = _optional()
    #: a glob on the KMS key that encrypts it (default: any; every secret is encrypted)
    kms_key: str | None = field(default=None, metadata=key(str, template=NAME_FIELDS))
    rotation: bool = field(default=False, metadata=key(bool))


@dataclass(frozen=True, eq=False, repr=False)
class ParameterSpec(Section):
    """An SSM parameter: described, never read."""

    NOUN: ClassVar[str] = "a parameter"

    name: str = _name()
    optional: bool = _optional()
    type: str = field(default="SecureString", metadata=key(OneOf("SecureString", "String", "StringList")))
    kms_key: str | None = field(default=None, metadata=key(str, template=NAME_FIELDS))


@dataclass(frozen=True, eq=False, repr=False)
class TableSpec(Section):
    """A ``resources.tables`` entry: a DynamoDB table's name, and the options it must have."""

    NOUN: ClassVar[str] = "a table"

    name: str = _name()
    optional: bool = _optional()
    #: point-in-time recovery enabled
    pitr: bool = field(default=False, metadata=key(bool))
    #: encrypted with a KMS key (AWS managed or the customer's), not only DynamoDB's default owned key
    sse: bool = field(default=False, metadata=key(bool))

    @property
    def probed(self) -> bool:
        """Whether the probes check it (the smoke suite checks every table's existence anyway)."""
        return self.pitr or self.sse or self.optional


@dataclass(frozen=True, eq=False, repr=False)
class BucketSpec(Section):
    """A ``resources.buckets`` entry: an S3 bucket's name, and the options it must have."""

    NOUN: ClassVar[str] = "a bucket"

    name: str = _name()
    optional: bool = _optional()
    #: a default server-side encryption configuration
    encryption: bool = field(default=False, metadata=key(bool))
    #: the public-access-block settings that must be on (``public_access_block = true``: all four; a
    #: website served through a public-read policy can still block ACLs)
    public_access_block: tuple[str, ...] = field(
        default=(), metadata=key(Either(bool, [OneOf(*PUBLIC_ACCESS_FLAGS)])))

    @property
    def probed(self) -> bool:
        return self.encryption or bool(self.public_access_block) or self.optional

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> BucketSpec:
        block = raw.get("public_access_block", False)
        return build(cls, raw, where, public_access_block=PUBLIC_ACCESS_FLAGS if block is True else tuple(block or ()))


@dataclass(frozen=True, eq=False, repr=False)
class ApiSpec(Section):
    """An API Gateway stage (a REST API's, or with ``kind = "http"`` an HTTP API's): exists, throttled, and
    (HTTP APIs) CORS origins as expected."""

    NOUN: ClassVar[str] = "an API"

    name: str = field(default="", metadata=key(str, template=NAME_FIELDS))
    kind: str = field(default="rest", metadata=key(OneOf("rest", "http")))
    id: str = field(default="", metadata=key(str, template=NAME_FIELDS))
    stage: str = field(default="{stage}", metadata=key(str, template=NAME_FIELDS))
    optional: bool = _optional()
    rate: float | None = field(default=None, metadata=key(Num(0, 1e9), "throttling.rate"))
    burst: int | None = field(default=None, metadata=key(Num(0, 1e9, integer=True), "throttling.burst"))
    cors_origins: tuple[str, ...] | None = field(default=None, metadata=key([str], template=VALUE_FIELDS))
    #: throttling (rate and burst on ``*/*``) must be set
    throttling: bool = True

    @property
    def label(self) -> str:
        return f"{self.name or self.id}/{self.stage}"

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> ApiSpec:
        _exactly_one(raw, where, "name", "id", "an API is found by name or by id")
        if "cors_origins" in raw and raw.get("kind", "rest") != "http":
            raise where.error("cors_origins is an HTTP API's setting: add kind = \"http\" (a REST API answers "
                              "CORS from its own methods: the isolation suite checks those)", "cors_origins")
        return build(cls, raw, where)


def _entries(cls: type[S], raw: Mapping[str, Any], kind: str, where: Where) -> tuple[S, ...]:
    """``tables``/``buckets`` entries (a name, or a table with a name and options) as ``cls``."""
    out = []
    for i, entry in enumerate(raw.get(kind, [])):
        at = where.at(kind, f"[{i}]")
        if isinstance(entry, str):
            entry = {"name": entry}
        else:
            try:
                validate(entry, cls, at.src, at.path)
            except ConfigError as exc:  # said again through ``at``: an entry inherited from [defaults] is there
                raise at.error(exc.message, *(exc.key or "").split(".")[len(at.path):]) from None
        out.append(cls.from_table(entry, at))
    return tuple(out)


@dataclass(frozen=True, eq=False, repr=False)
class ResourcesSpec(Section):
    """``resources``: the AWS resources of the environment. ``tables``/``buckets`` feed the smoke suite's
    existence checks (``Environment.tables``/``buckets``) and, with options, the probes."""

    NOUN: ClassVar[str] = "resources"

    # a name, or { name = ..., pitr = true, ... }: each entry is checked against TableSpec/BucketSpec
    tables: tuple[TableSpec, ...] = field(default=(), metadata=key([Either(str, dict)]))
    buckets: tuple[BucketSpec, ...] = field(default=(), metadata=key([Either(str, dict)]))
    functions: tuple[FunctionSpec, ...] = field(default=(), metadata=key([FunctionSpec]))
    user_pools: tuple[UserPoolSpec, ...] = field(default=(), metadata=key([UserPoolSpec]))
    queues: tuple[QueueSpec, ...] = field(default=(), metadata=key([QueueSpec]))
    log_groups: tuple[LogGroupSpec, ...] = field(default=(), metadata=key([LogGroupSpec]))
    secrets: tuple[SecretSpec, ...] = field(default=(), metadata=key([SecretSpec]))
    parameters: tuple[ParameterSpec, ...] = field(default=(), metadata=key([ParameterSpec]))
    apis: tuple[ApiSpec, ...] = field(default=(), metadata=key([ApiSpec]))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> ResourcesSpec:
        return build(cls, raw, where, tables=_entries(TableSpec, raw, "tables", where),
                     buckets=_entries(BucketSpec, raw, "buckets", where))


@dataclass(frozen=True, eq=False, repr=False)
class AlarmSpec(Section):
    """CloudWatch alarms that must exist and not be in ALARM: one by ``name``, or every one whose name
    starts with ``prefix`` (at least one must)."""

    NOUN: ClassVar[str] = "an alarm entry"

    name: str = field(default="", metadata=key(str, template=NAME_FIELDS))
    prefix: str = field(default="", metadata=key(str, template=NAME_FIELDS))
    optional: bool = _optional()

    @property
    def label(self) -> str:
        return self.name or f"{self.prefix}*"

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> AlarmSpec:
        _exactly_one(raw, where, "name", "prefix", "an alarm entry names one alarm or a family (prefix)")
        return build(cls, raw, where)


@dataclass(frozen=True, eq=False, repr=False)
class CloudWatchMetricSpec(Section):
    """A CloudWatch statistic over the last ``window_s`` seconds, recorded as the gate metric ``name``
    (judged by its threshold in thresholds.toml: ``custom.`` names need no declaration there)."""

    NOUN: ClassVar[str] = "a CloudWatch metric"

    name: str = field(metadata=key(str))
    namespace: str = field(metadata=key(str))
    metric: str = field(metadata=key(str))
    stat: str = field(default="Sum", metadata=key(str))
    dimensions: Mapping[str, str] = field(default_factory=dict, metadata=key(MapOf(str), template=NAME_FIELDS))
    window_s: int = field(default=900, metadata=key(Num(60, 15 * 86400, integer=True)))
    #: no datapoint in the window: "zero" (a count of events that did not happen) or "skip"
    missing: str = field(default="skip", metadata=key(OneOf("zero", "skip")))
    unit: str | None = field(default=None, metadata=key(str))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> CloudWatchMetricSpec:
        name = raw.get("name", "")
        parts = name.split(".")
        if name and (len(parts) < 2 or not all(p.replace("_", "").isalnum() for p in parts)):
            raise where.error(f"name {name!r} must be a gate metric name like custom.lambda_errors_count "
                              "(judged by its threshold in thresholds.toml)", "name")
        stat = raw.get("stat", "Sum")
        if stat not in STATISTICS and parse_percentile(stat) is None:
            raise where.error(f"stat must be one of {', '.join(STATISTICS)} or a percentile like p95, got {stat!r}",
                              "stat")
        return build(cls, raw, where)


@dataclass(frozen=True, eq=False, repr=False)
class MonitoringSpec(Section):
    """``monitoring``: CloudWatch alarms and statistics of the environment."""

    NOUN: ClassVar[str] = "monitoring"

    alarms: tuple[AlarmSpec, ...] = field(default=(), metadata=key([AlarmSpec]))
    metrics: tuple[CloudWatchMetricSpec, ...] = field(default=(), metadata=key([CloudWatchMetricSpec]))

    @classmethod
    def from_table(cls, raw: Mapping[str, Any], where: Where) -> MonitoringSpec:
        seen: set[str] = set()
        for i, m in enumerate(raw.get("metrics", [])):
            if m.get("name") in seen:
                raise where.error(f"duplicate metric name {m['name']!r}", "metrics", f"[{i}]", "name")
            seen.add(m.get("name"))
        return build(cls, raw, where)


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


def pages(client: Any, operation: str, what: str, items_key: str, **params: Any) -> list[Any]:
    """Every item under ``items_key`` of a paginated list/describe call (same errors as :func:`call`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    items: list[Any] = []
    try:
        for page in client.get_paginator(operation).paginate(**params):
            items.extend(page.get(items_key, []))
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


#: an environment variable whose value is never shown, whatever the configuration expects of it
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)


def image_tag_of(uri: str) -> str | None:
    """``v1.2.3`` of ``123.dkr.ecr.us-east-1.amazonaws.com/app:v1.2.3``; None for a digest or no tag."""
    last = uri.rsplit("/", 1)[-1]
    if "@" in last or ":" not in last:
        return None
    return last.rsplit(":", 1)[1]


def function_problems(function: Mapping[str, Any], spec: FunctionSpec, expected_env: Mapping[str, str],
                      account_id: str | None) -> list[str]:
    """What is wrong with a ``GetFunction`` answer. Only the variables ``expected_env`` names are compared
    (the others may hold secrets); a compared value is shown unless the variable's name looks secret
    (:data:`SECRET_NAME`: its expected value may come from a ``${VAR}``)."""
    cfg = function.get("Configuration", {})
    problems = []
    arn = cfg.get("FunctionArn", "")
    if not in_account(arn, account_id):
        problems.append(f"{arn} is not in this environment's account {account_id}")
    state = cfg.get("State")
    if spec.state and state is not None and state != spec.state:
        reason = cfg.get("StateReason")
        problems.append(f"state is {state}, expected {spec.state}" + (f" ({reason})" if reason else ""))
    for setting, label, expected in (("Runtime", "runtime", spec.runtime), ("MemorySize", "memory", spec.memory_mb),
                                     ("Timeout", "timeout", spec.timeout_s)):
        if expected is not None and cfg.get(setting) != expected:
            problems.append(f"{label} is {cfg.get(setting)!r}, expected {expected!r}")
    if spec.image_tag is not None:
        uri = function.get("Code", {}).get("ImageUri") or cfg.get("ImageConfigResponse", {}).get("ImageUri", "")
        tag = image_tag_of(uri or "")
        if not uri:
            problems.append(f"is not a container-image function (package type {cfg.get('PackageType')}), "
                            f"expected image tag {spec.image_tag!r}")
        elif tag is None or not fnmatch.fnmatchcase(tag, spec.image_tag):
            problems.append(f"image tag is {tag!r} ({uri}), expected {spec.image_tag!r}")
    variables = (cfg.get("Environment") or {}).get("Variables") or {}
    for var, expected in expected_env.items():
        secret = SECRET_NAME.search(var) is not None
        if var not in variables:
            problems.append(f"environment variable {var} is not set" + ("" if secret else f" (expected {expected!r})"))
        elif variables[var] != expected:
            problems.append(f"environment variable {var} differs from the expected value (neither shown: the name "
                            "looks secret)" if secret else
                            f"environment variable {var} = {variables[var]!r}, expected {expected!r}")
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
    used = secret.get("KmsKeyId") or "aws/secretsmanager (the default key)"
    if spec.kms_key and not fnmatch.fnmatchcase(str(secret.get("KmsKeyId") or ""), spec.kms_key):
        problems.append(f"is encrypted with {used}, expected {spec.kms_key!r}")
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


def alarms_in_alarm(alarms: Sequence[Mapping[str, Any]]) -> list[str]:
    """``name (reason)`` of every alarm in state ALARM."""
    return [f"{a.get('AlarmName')} ({a.get('StateReason', '').strip() or 'no reason given'})"
            for a in alarms if a.get("StateValue") == "ALARM"]


def aggregate(datapoints: Sequence[Mapping[str, Any]], stat: str) -> float | None:
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
    """What is wrong with a ``GetStage`` answer: throttling on every method (a REST API's ``*/*`` method
    settings, an HTTP API's default route settings)."""
    problems = []
    if spec.kind == "http":
        settings = stage.get("DefaultRouteSettings") or {}
        rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
        where = "the default route"
    else:
        settings = (stage.get("methodSettings") or {}).get("*/*") or {}
        rate, burst = settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")
        where = "*/*"
    if spec.throttling and (not rate or rate <= 0 or burst is None or burst <= 0):
        problems.append(f"has no throttling on {where} (rate and burst limits)")
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
