"""Resource and monitoring probes: the AWS resources a deployment declares exist in this environment's
account and are configured as expected; its alarms are quiet; its CloudWatch metrics are within policy.

Driven by the environment's ``resources`` (functions, user_pools, queues, log_groups, secrets, parameters,
apis; table and bucket options) and ``monitoring`` (alarms, metrics) settings: one check per declared
resource, each through boto3 in the environment's account with describe/get/list calls only (a secret's
or a parameter's value is never read).

- A resource that does not exist FAILS, naming it; declared ``optional = true`` (or with ``--skip-absent``,
  for a first deploy) it is SKIPPED with the reason instead, never passed. One that exists but is
  misconfigured FAILS either way.
- AWS refusing or failing to answer (access denied, unreachable endpoint, timeout) is "could not check"
  (``smoke.unverified_count``), never "missing".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import CheckFailure, Unverified
from pytest_deploygate.resources import (
    Absent,
    aggregate,
    alarms_in_alarm,
    api_problems,
    bucket_problems,
    call,
    cors_problems,
    describe_error,
    dlq_depth,
    function_problems,
    log_group_problems,
    metric_window,
    pages,
    parameter_problems,
    parse_percentile,
    queue_problems,
    redrive_target,
    resource_ids,
    secret_problems,
    shared_roles,
    table_problems,
)

pytestmark = [pytest.mark.gate, pytest.mark.smoke]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    env = current_environment(metafunc.config)
    if env is None:
        return
    r, m = env.resources, env.monitoring
    tables = [t for t in r.tables if t.probed]
    buckets = [b for b in r.buckets if b.probed]
    params: dict[str, tuple[Any, list[str]]] = {
        "function": (r.functions, [f.name for f in r.functions]),
        "user_pool": (r.user_pools, [p.label for p in r.user_pools]),
        "queue": (r.queues, [q.name for q in r.queues]),
        "log_group": (r.log_groups, [g.name for g in r.log_groups]),
        "secret": (r.secrets, [s.name for s in r.secrets]),
        "parameter": (r.parameters, [p.name for p in r.parameters]),
        "table_options": (tables, [t.name for t in tables]),
        "bucket_options": (buckets, [b.name for b in buckets]),
        "api_stage": (r.apis, [a.label for a in r.apis]),
        "alarm": (m.alarms, [a.label for a in m.alarms]),
        "cloudwatch_metric": (m.metrics, [c.name for c in m.metrics]),
    }
    for name, (specs, labels) in params.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, list(specs), ids=resource_ids(env.format, labels))


@pytest.fixture(scope="session")
def skip_absent(request: pytest.FixtureRequest) -> bool:
    """``--skip-absent``: every declared resource acts as ``optional`` (first deploys)."""
    return bool(request.config.getoption("deploygate_skip_absent", False))


class Probe:
    """One resource check: AWS calls whose "does not exist" and "could not ask" answers end the check
    the same way for every kind of resource."""

    def __init__(self, gate: Any, env: Any, kind: str, name: str, optional: bool, skip_absent: bool) -> None:
        self.gate, self.env = gate, env
        self.what = f"{kind} {name} in {env.name}"
        self.optional, self.skip_absent = optional, skip_absent

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, Absent):
            if self.optional or self.skip_absent:
                why = "declared optional" if self.optional else "--skip-absent"
                pytest.skip(f"{exc} ({why}: not deployed yet)")
            raise CheckFailure(f"{exc} (declare it optional = true, or run with --skip-absent, if it is "
                               "not deployed yet)") from None
        if isinstance(exc, Unverified):  # could not check: counted, and the check fails saying so
            self.gate.record("smoke.unverified_count", 1, check=self.what)
        elif exc is not None and _is_botocore_error(exc):
            # before any call: no credentials, an unknown profile, a bad region or endpoint
            self.gate.record("smoke.unverified_count", 1, check=self.what)
            raise Unverified(f"{self.what}: could not check: {describe_error(exc)}") from None

    def fail(self, problems: list[str]) -> None:
        if problems:
            raise CheckFailure(f"{self.what}: " + "; ".join(problems))


def _is_botocore_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError

    return isinstance(exc, BotoCoreError)


def _filled(spec: Any, env: Any, *fields: str) -> Any:
    """``spec`` with its template ``fields`` (``image_tag = "api-{stage}-*"``) filled in for ``env``."""
    values = {f: env.format(getattr(spec, f)) for f in fields if getattr(spec, f) is not None}
    return dataclasses.replace(spec, **values)


def _probe(gate: Any, env: Any, kind: str, name: str, optional: bool, skip_absent: bool) -> Probe:
    return Probe(gate, env, kind, name, optional, skip_absent)


def test_function(aws, aws_for, deploy_env, peers, function, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """A Lambda function exists in this environment's account, is Active and configured as declared
    (runtime, memory, timeout, image tag, environment variables), with a role no peer's function shares."""
    name = deploy_env.format(function.name)
    with _probe(gate, deploy_env, "Lambda function", name, function.optional, skip_absent) as probe:
        answer = call(aws.client("lambda"), "get_function", probe.what, FunctionName=name)
        expected = {k: deploy_env.format(v) for k, v in function.environment.items()}
        problems = function_problems(answer, _filled(function, deploy_env, "image_tag"), expected,
                                     deploy_env.aws.account_id)
        role = answer.get("Configuration", {}).get("Role", "")
        if function.distinct_role and role:
            peer_roles = {}
            for peer in peers.values():
                peer_name = peer.format(function.name)
                try:
                    theirs = call(aws_for(peer).client("lambda"), "get_function", f"{peer.name}'s {peer_name}",
                                  FunctionName=peer_name)
                except Exception as exc:  # absent, could not check, no credentials for the peer's account
                    if not isinstance(exc, (Absent, Unverified)) and not _is_botocore_error(exc):
                        raise
                    gate.note(f"{probe.what}: role not compared with {peer.name}: {exc}")
                    continue
                peer_roles[peer.name] = theirs.get("Configuration", {}).get("Role", "")
            shared = shared_roles(role, peer_roles)
            if shared:
                problems.append(f"runs with role {role}, which {', '.join(shared)} shares")
        probe.fail(problems)


def test_user_pool(aws, deploy_env, user_pool, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """A Cognito user pool (by name or id) exists in this environment's account."""
    label = deploy_env.format(user_pool.label)
    with _probe(gate, deploy_env, "Cognito user pool", label, user_pool.optional, skip_absent) as probe:
        client = aws.client("cognito-idp")
        pool_id = deploy_env.format(user_pool.id)
        if user_pool.name:
            pools = [p for p in pages(client, "list_user_pools", probe.what, "UserPools", MaxResults=60)
                     if p.get("Name") == label]
            if not pools:
                raise Absent(f"{probe.what} does not exist")
            if len(pools) > 1:
                probe.fail([f"is ambiguous: {len(pools)} pools have that name "
                            f"({', '.join(p.get('Id', '?') for p in pools)})"])
            pool_id = pools[0]["Id"]
        pool = call(client, "describe_user_pool", probe.what, UserPoolId=pool_id).get("UserPool", {})
        account = deploy_env.aws.account_id
        arn = pool.get("Arn", "")
        if account and arn and f":{account}:" not in arn:
            probe.fail([f"{arn} is not in this environment's account {account}"])


def test_queue(aws, deploy_env, queue, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """An SQS queue exists in this environment's account with a redrive policy to a dead-letter queue;
    the DLQ's depth is ``smoke.resources.dlq_depth_count{queue=...}`` (judged by the policy)."""
    name = deploy_env.format(queue.name)
    with _probe(gate, deploy_env, "SQS queue", name, queue.optional, skip_absent) as probe:
        sqs = aws.client("sqs")
        url = call(sqs, "get_queue_url", probe.what, QueueName=name)["QueueUrl"]
        attributes = call(sqs, "get_queue_attributes", probe.what, QueueUrl=url,
                          AttributeNames=["All"]).get("Attributes", {})
        dlq_name = deploy_env.format(queue.dlq_name) if queue.dlq_name else None
        problems = queue_problems(attributes, queue, dlq_name, deploy_env.aws.account_id)
        probe.fail(problems)
        target, _ = redrive_target(attributes)
        if queue.dlq and target:
            dlq = target.rsplit(":", 1)[-1]
            what = f"dead-letter queue {dlq} of {name} in {deploy_env.name}"
            try:
                dlq_url = call(sqs, "get_queue_url", what, QueueName=dlq)["QueueUrl"]
            except Absent:  # the queue is there, its dead-letter queue is not: broken, not absent
                raise CheckFailure(f"{probe.what}: redrives to {dlq}, which does not exist") from None
            dlq_attributes = call(sqs, "get_queue_attributes", what, QueueUrl=dlq_url,
                                  AttributeNames=["All"]).get("Attributes", {})
            depth = dlq_depth(dlq_attributes)
            gate.record("smoke.resources.dlq_depth_count", depth, queue=name)
            if depth:
                gate.note(f"{what} holds {depth} message(s): failed work nobody has looked at")


def test_log_group(aws, deploy_env, log_group, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """A CloudWatch Logs group exists with a retention set (the one declared, if any)."""
    name = deploy_env.format(log_group.name)
    with _probe(gate, deploy_env, "log group", name, log_group.optional, skip_absent) as probe:
        groups = [g for g in pages(aws.client("logs"), "describe_log_groups", probe.what, "logGroups",
                                   logGroupNamePrefix=name) if g.get("logGroupName") == name]
        if not groups:
            raise Absent(f"{probe.what} does not exist")
        probe.fail(log_group_problems(groups[0], log_group))


def test_secret(aws, deploy_env, secret, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """A Secrets Manager secret exists (described, never read) and is not scheduled for deletion."""
    name = deploy_env.format(secret.name)
    with _probe(gate, deploy_env, "secret", name, secret.optional, skip_absent) as probe:
        described = call(aws.client("secretsmanager"), "describe_secret", probe.what, SecretId=name)
        probe.fail(secret_problems(described, _filled(secret, deploy_env, "kms_key")))


def test_parameter(aws, deploy_env, parameter, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """An SSM parameter exists with the declared type (SecureString by default), described, never read."""
    name = deploy_env.format(parameter.name)
    with _probe(gate, deploy_env, "SSM parameter", name, parameter.optional, skip_absent) as probe:
        found = pages(aws.client("ssm"), "describe_parameters", probe.what, "Parameters",
                      ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])
        found = [p for p in found if p.get("Name") == name]
        if not found:
            raise Absent(f"{probe.what} does not exist")
        probe.fail(parameter_problems(found[0], _filled(parameter, deploy_env, "kms_key")))


def test_table_options(aws, deploy_env, table_options, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """A DynamoDB table has point-in-time recovery and KMS server-side encryption, as declared."""
    name = deploy_env.format(table_options.name)
    with _probe(gate, deploy_env, "DynamoDB table", name, table_options.optional, skip_absent) as probe:
        ddb = aws.client("dynamodb")
        table = call(ddb, "describe_table", probe.what, TableName=name).get("Table", {})
        backups = None
        if table_options.pitr:
            backups = call(ddb, "describe_continuous_backups", probe.what,
                           TableName=name).get("ContinuousBackupsDescription", {})
        probe.fail(table_problems(table, backups, table_options))


def test_bucket_options(aws, deploy_env, bucket_options, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """An S3 bucket has default encryption and its public-access block, as declared."""
    name = deploy_env.format(bucket_options.name)
    with _probe(gate, deploy_env, "S3 bucket", name, bucket_options.optional, skip_absent) as probe:
        s3 = aws.client("s3")
        encryption = public_access = None
        none = {"ServerSideEncryptionConfigurationNotFoundError", "NoSuchPublicAccessBlockConfiguration"}
        try:
            encryption = call(s3, "get_bucket_encryption", probe.what, absent={"NoSuchBucket", "404", *none},
                              Bucket=name).get("ServerSideEncryptionConfiguration")
        except Absent:
            # one of the "none configured" codes, or no bucket at all: ask which
            call(s3, "head_bucket", probe.what, Bucket=name)
        if bucket_options.public_access_block:
            try:
                public_access = call(s3, "get_public_access_block", probe.what, absent=none,
                                     Bucket=name).get("PublicAccessBlockConfiguration")
            except Absent:
                public_access = None
        probe.fail(bucket_problems(encryption, public_access, bucket_options))


def test_api_stage(aws, deploy_env, api_stage, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """An API Gateway stage (REST, or HTTP with ``kind = "http"``) exists with throttling set (and, for an
    HTTP API, CORS origins as declared)."""
    api = api_stage
    label = deploy_env.format(api.label)
    stage = deploy_env.format(api.stage)
    with _probe(gate, deploy_env, "API Gateway stage", label, api.optional, skip_absent) as probe:
        api_id = deploy_env.format(api.id)
        if api.kind == "http":
            client = aws.client("apigatewayv2")
            lookup, items, name_key, id_key = "get_apis", "Items", "Name", "ApiId"
        else:
            client = aws.client("apigateway")
            lookup, items, name_key, id_key = "get_rest_apis", "items", "name", "id"
        if api.name:
            name = deploy_env.format(api.name)
            found = [a for a in pages(client, lookup, probe.what, items) if a.get(name_key) == name]
            if not found:
                raise Absent(f"{probe.what} does not exist (no {api.kind.upper()} API named {name})")
            api_id = found[0][id_key]
        if api.kind == "http":
            answer = call(client, "get_stage", probe.what, ApiId=api_id, StageName=stage)
        else:
            answer = call(client, "get_stage", probe.what, restApiId=api_id, stageName=stage)
        problems = api_problems(answer, api)
        if api.cors_origins is not None:
            described = call(client, "get_api", probe.what, ApiId=api_id)
            allowed = list((described.get("CorsConfiguration") or {}).get("AllowOrigins") or [])
            problems += cors_problems(allowed, [deploy_env.format(o) for o in api.cors_origins])
        probe.fail(problems)


def test_alarm(aws, deploy_env, alarm, gate, skip_absent) -> None:  # type: ignore[no-untyped-def]
    """CloudWatch alarms (one by name, or every one with a prefix) exist and none is in ALARM; how many are
    is ``smoke.monitoring.alarms_in_alarm_count{alarms=...}`` (judged by the policy)."""
    label = deploy_env.format(alarm.label)
    with _probe(gate, deploy_env, "CloudWatch alarm", label, alarm.optional, skip_absent) as probe:
        cloudwatch = aws.client("cloudwatch")
        if alarm.name:
            params: dict[str, Any] = {"AlarmNames": [label]}
        else:
            params = {"AlarmNamePrefix": deploy_env.format(alarm.prefix)}
        found = (pages(cloudwatch, "describe_alarms", probe.what, "MetricAlarms", **params)
                 + pages(cloudwatch, "describe_alarms", probe.what, "CompositeAlarms", AlarmTypes=["CompositeAlarm"],
                         **params))
        if alarm.name:
            found = [a for a in found if a.get("AlarmName") == label]
        if not found:
            raise Absent(f"{probe.what} does not exist" if alarm.name else f"no CloudWatch alarm named {label} "
                         f"in {deploy_env.name}")
        firing = alarms_in_alarm(found)
        gate.record("smoke.monitoring.alarms_in_alarm_count", len(firing), alarms=label)
        if firing:
            gate.note(f"CloudWatch alarms {label} in {deploy_env.name}: {len(firing)} of {len(found)} in ALARM: "
                      + "; ".join(firing))


def test_cloudwatch_metric(aws, deploy_env, cloudwatch_metric, gate) -> None:  # type: ignore[no-untyped-def]
    """A CloudWatch statistic over the last ``window_s`` seconds, recorded as a gate metric (judged by its
    threshold in thresholds.toml)."""
    spec = cloudwatch_metric
    what = f"CloudWatch {spec.namespace} {spec.metric} {spec.stat} in {deploy_env.name}"
    dimensions = [{"Name": k, "Value": deploy_env.format(v)} for k, v in spec.dimensions.items()]
    params: dict[str, Any] = {"Namespace": spec.namespace, "MetricName": spec.metric, "Dimensions": dimensions,
                              **metric_window(spec.window_s)}
    if parse_percentile(spec.stat) is None:
        params["Statistics"] = [spec.stat, "SampleCount"]
    else:
        params["ExtendedStatistics"] = [spec.stat]
        params["Statistics"] = ["SampleCount"]
    if spec.unit:
        params["Unit"] = spec.unit
    with _probe(gate, deploy_env, "CloudWatch metric", f"{spec.namespace} {spec.metric} {spec.stat}", False,
                False) as probe:
        answer = call(aws.client("cloudwatch"), "get_metric_statistics", probe.what, absent=set(), **params)
    datapoints = answer.get("Datapoints", [])
    value = aggregate(datapoints, spec.stat)
    if value is None and datapoints:
        gate.could_not_check("smoke", what, f"{len(datapoints)} datapoint(s) without the {spec.stat} statistic",
                             metric=spec.name)
    if value is None:
        if spec.missing == "skip":
            pytest.skip(f"{what}: no datapoints in the last {spec.window_s} s (missing = \"skip\")")
        value = 0.0
    gate.record(spec.name, value, samples=len(datapoints))
