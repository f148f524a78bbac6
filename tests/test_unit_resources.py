"""The resource and monitoring probes' pure parts (fast): their configuration (schema, templates, errors with
file, line and key), the decisions they take on AWS's answers, and how an AWS error becomes "absent" or
"could not check" (botocore's Stubber stands in for AWS here only; tests/test_resources.py proves the probes
against the reference deployment's moto servers)."""

from __future__ import annotations

import datetime
import functools
import re
from pathlib import Path
from typing import Any

import pytest

from gatehelpers import closed_port
from pytest_deploygate.config import ConfigError, load_project
from pytest_deploygate.failures import Unverified
from pytest_deploygate.resources import (
    Absent,
    ApiSpec,
    BucketSpec,
    FunctionSpec,
    LogGroupSpec,
    ParameterSpec,
    QueueSpec,
    SecretSpec,
    TableSpec,
    aggregate,
    alarms_in_alarm,
    api_problems,
    bucket_problems,
    call,
    cors_problems,
    dlq_depth,
    function_problems,
    image_tag_of,
    in_account,
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

REPO = Path(__file__).resolve().parent.parent

BASE = """service = "shop"
[defaults]
base_url = "http://127.0.0.1:1"
[environments.staging]
stage = "staging"
[environments.prod]
stage = "prod"
"""


def _project(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "deploygate.toml"
    path.write_text(BASE + text)
    return load_project(path, environ={})


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _project(tmp_path, text)
    return info.value


# --------------------------------------------------------------------------------------------------
# configuration


def test_every_section_builds_with_defaults_and_per_environment_overrides(tmp_path: Path) -> None:
    project = _project(tmp_path, """
[defaults.resources]
tables = [{ name = "{service}-{stage}-orders", pitr = true, sse = true }, "{service}-{stage}-plain"]
buckets = [{ name = "{service}-{stage}-site", encryption = true, public_access_block = ["BlockPublicAcls"] }]
user_pools = [{ name = "{service}-{stage}-users" }, { id = "us-east-1_abc", optional = true }]
queues = [{ name = "{service}-{stage}-jobs", dlq_name = "{service}-{stage}-jobs-dlq" }]
log_groups = [{ name = "/aws/lambda/{service}-{stage}-api", retention_days = 14 }]
secrets = [{ name = "{service}/{stage}/db" }]
parameters = [{ name = "/{service}/{stage}/jwt" }, { name = "/{service}/{stage}/flag", type = "String" }]
apis = [{ name = "{service}-api", throttling = { rate = 100, burst = 200 } }]

[defaults.monitoring]
alarms = [{ prefix = "{service}-{stage}-" }, { name = "{service}-{stage}-errors", optional = true }]

[[defaults.monitoring.metrics]]
name = "custom.lambda_errors_count"
namespace = "AWS/Lambda"
metric = "Errors"
dimensions = { FunctionName = "{service}-{stage}-api" }
missing = "zero"

[[defaults.monitoring.metrics]]
name = "custom.lambda_p95_ms"
namespace = "AWS/Lambda"
metric = "Duration"
stat = "p95"
window_s = 600

[[defaults.resources.functions]]
name = "{service}-{stage}-api"
runtime = "python3.12"
memory_mb = 512
timeout_s = 30
environment = { STAGE = "{stage}", LOG_LEVEL = "INFO" }

[environments.prod.resources]
functions = [{ name = "{service}-{stage}-api", environment = { STAGE = "{stage}", LOG_LEVEL = "WARN" } }]
""")
    staging, prod = project.environment("staging"), project.environment("prod")
    # the plain table names stay what the smoke suite checks; the options are the probes'
    assert staging.tables == ("shop-staging-orders", "shop-staging-plain")
    assert staging.buckets == ("shop-staging-site",)
    r = staging.resources
    assert r.tables == (TableSpec("{service}-{stage}-orders", pitr=True, sse=True),
                        TableSpec("{service}-{stage}-plain"))
    assert [t.probed for t in r.tables] == [True, False]
    assert r.buckets == (BucketSpec("{service}-{stage}-site", encryption=True,
                                    public_access_block=("BlockPublicAcls",)),)
    assert r.functions[0].memory_mb == 512 and r.functions[0].environment["LOG_LEVEL"] == "INFO"
    assert r.functions[0].distinct_role and r.functions[0].state == "Active"
    assert [p.label for p in r.user_pools] == ["{service}-{stage}-users", "us-east-1_abc"]
    assert r.user_pools[1].optional
    assert r.queues == (QueueSpec("{service}-{stage}-jobs", dlq_name="{service}-{stage}-jobs-dlq"),)
    assert r.log_groups == (LogGroupSpec("/aws/lambda/{service}-{stage}-api", retention_days=14),)
    assert r.parameters[0].type == "SecureString" and r.parameters[1].type == "String"
    assert r.apis == (ApiSpec(name="{service}-api", rate=100, burst=200),)
    m = staging.monitoring
    assert [a.label for a in m.alarms] == ["{service}-{stage}-*", "{service}-{stage}-errors"]
    assert m.metrics[0].stat == "Sum" and m.metrics[0].missing == "zero" and m.metrics[0].window_s == 900
    assert m.metrics[1].stat == "p95" and m.metrics[1].missing == "skip"
    # an environment's own list replaces the default's (tables are merged key by key, lists replaced)
    assert prod.resources.functions[0].environment == {"STAGE": "{stage}", "LOG_LEVEL": "WARN"}
    assert prod.resources.queues == r.queues


def test_a_project_without_the_sections_has_none(tmp_path: Path) -> None:
    env = _project(tmp_path, "").environment("staging")
    assert env.resources.functions == () and env.monitoring.alarms == () and env.resources.tables == ()


R = "[environments.staging.resources]\n"
M = "[environments.staging.monitoring]\n"


@pytest.mark.parametrize(("text", "key", "message"), [
    (R + 'functions = [{ name = "x", memry_mb = 1 }]',
     "resources.functions.[0].memry_mb", "unknown key 'memry_mb'"),
    (R + 'functions = [{ runtime = "python3.12" }]', "resources.functions.[0]", "a Lambda function needs 'name'"),
    (R + 'functions = [{ name = "{service}-{stgae}-api" }]',
     "resources.functions.[0].name", "unknown placeholder {stgae}"),
    (R + 'functions = [{ name = "f", environment = { STAGE = "{nope}" } }]',
     "resources.functions.[0].environment.STAGE", "unknown placeholder {nope}"),
    (R + 'functions = [{ name = "f", memory_mb = 64 }]',
     "resources.functions.[0].memory_mb", "expected an integer >= 128"),
    (R + 'user_pools = [{ name = "a", id = "b" }]', "resources.user_pools.[0]",
     "by name or by id"),
    (R + 'queues = [{ name = "q", dlq = false, dlq_name = "d" }]',
     "resources.queues.[0].dlq_name", "dlq_name needs dlq = true"),
    (R + 'parameters = [{ name = "p", type = "Secure" }]', "resources.parameters.[0].type",
     "expected one of 'SecureString'"),
    (R + 'tables = [{ name = "t", pitr = "yes" }]', "resources.tables.[0].pitr",
     "expected a boolean"),
    (R + 'tables = [{ pitr = true }]', "resources.tables.[0]", "a table needs 'name'"),
    (R + 'tables = [3]', "resources.tables.[0]", "expected a string or a dict"),
    (R + 'buckets = [{ name = "b", public_access_block = ["BlockEverything"] }]',
     "resources.buckets.[0].public_access_block", "expected a boolean or an array"),
    (R + 'apis = [{ name = "a", cors_origins = ["*"] }]', "resources.apis.[0].cors_origins",
     'add kind = "http"'),
    (M + 'alarms = [{ name = "a", prefix = "b" }]', "monitoring.alarms.[0]", "exactly one"),
    (M + 'metrics = [{ name = "custom.x_count", namespace = "AWS/Lambda" }]',
     "monitoring.metrics.[0]", "a CloudWatch metric needs 'metric'"),
    (M + 'metrics = [{ name = "errors", namespace = "N", metric = "M" }]',
     "monitoring.metrics.[0].name", "gate metric name like custom.lambda_errors_count"),
    (M + 'metrics = [{ name = "custom.e", namespace = "N", metric = "M", stat = "Median" }]',
     "monitoring.metrics.[0].stat", "or a percentile like p95"),
    (M + 'metrics = [{ name = "custom.e", namespace = "N", metric = "M", window_s = 30 }]',
     "monitoring.metrics.[0].window_s", "expected an integer >= 60"),
])
def test_bad_entries_name_file_line_and_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    err = _error(tmp_path, text)
    assert err.file and err.file.endswith("deploygate.toml")
    assert err.key is not None and err.key.endswith(key), str(err)
    assert message in err.message, str(err)
    assert err.line is not None and err.line > BASE.count("\n"), str(err)


def test_the_repository_configuration_declares_probes_for_every_environment() -> None:
    project = load_project(REPO / "deploygate.toml", environ={})
    for name in ("dev", "staging", "prod"):
        env = project.environment(name)
        assert env.resources.functions and env.resources.queues and env.monitoring.alarms, name
        assert env.resources.tables and env.resources.buckets, name
    # seed 001: DEBUG in dev, INFO elsewhere
    assert project.environment("dev").resources.functions[0].environment["LOG_LEVEL"] == "DEBUG"
    assert project.environment("prod").resources.functions[0].environment["LOG_LEVEL"] == "INFO"


# --------------------------------------------------------------------------------------------------
# decisions


def _function(**cfg):  # type: ignore[no-untyped-def]
    base = {"FunctionArn": "arn:aws:lambda:us-east-1:222222222222:function:shop-staging-api", "State": "Active",
            "Runtime": "python3.12", "MemorySize": 512, "Timeout": 30,
            "Environment": {"Variables": {"STAGE": "staging", "LOG_LEVEL": "INFO", "DB_PASSWORD": "hunter2"}}}
    base.update(cfg)
    return {"Configuration": base}


def test_function_problems() -> None:
    spec = FunctionSpec("f", runtime="python3.12", memory_mb=512, timeout_s=30)
    expected = {"STAGE": "staging", "LOG_LEVEL": "INFO"}
    assert function_problems(_function(), spec, expected, "222222222222") == []
    problems = function_problems(_function(State="Failed", StateReason="bad image", MemorySize=128,
                                           Environment={"Variables": {"STAGE": "staging", "LOG_LEVEL": "DEBUG",
                                                                      "DB_PASSWORD": "hunter2"}}),
                                 spec, {**expected, "REGION": "us-east-1"}, "333333333333")
    assert problems == [
        "arn:aws:lambda:us-east-1:222222222222:function:shop-staging-api is not in this environment's account "
        "333333333333",
        "state is Failed, expected Active (bad image)",
        "memory is 128, expected 512",
        "environment variable LOG_LEVEL = 'DEBUG', expected 'INFO'",
        "environment variable REGION is not set (expected 'us-east-1')",
    ]
    # variables the configuration does not name (they may be secrets) are never shown
    assert not any("hunter2" in p for p in problems)
    # nor the values of secret-looking ones it does name (the expected value may come from a ${VAR})
    problems = function_problems(_function(), spec, {"DB_PASSWORD": "s3cr3t", "API_KEY": "k"}, None)
    assert problems == ["environment variable DB_PASSWORD differs from the expected value (neither shown: the name "
                        "looks secret)", "environment variable API_KEY is not set"]
    assert not any("hunter2" in p or "s3cr3t" in p for p in problems)


def test_image_tags() -> None:
    assert image_tag_of("1.dkr.ecr.us-east-1.amazonaws.com/lifestyle-app-dev:api-handler-dev-abc123") == \
        "api-handler-dev-abc123"
    assert image_tag_of("localhost:5000/app") is None
    assert image_tag_of("1.dkr.ecr.us-east-1.amazonaws.com/app@sha256:0123") is None
    spec = FunctionSpec("f", image_tag="api-handler-staging-*")
    image = {"Configuration": {"PackageType": "Image"},
             "Code": {"ImageUri": "1.dkr.ecr.us-east-1.amazonaws.com/app:api-handler-dev-abc"}}
    assert function_problems(image, spec, {}, None) == [
        "image tag is 'api-handler-dev-abc' (1.dkr.ecr.us-east-1.amazonaws.com/app:api-handler-dev-abc), "
        "expected 'api-handler-staging-*'"]
    assert "is not a container-image function" in function_problems(
        {"Configuration": {"PackageType": "Zip"}}, spec, {}, None)[0]


def test_roles_and_accounts() -> None:
    assert shared_roles("arn:r1", {"dev": "arn:r2", "prod": "arn:r1"}) == ["prod"]
    assert in_account("arn:aws:sqs:us-east-1:111111111111:q", "111111111111")
    assert not in_account("arn:aws:sqs:us-east-1:111111111111:q", "222222222222")
    assert in_account("anything", None)


def test_queues_and_dead_letter_queues() -> None:
    arn = "arn:aws:sqs:us-east-1:222222222222:jobs"
    redrive = '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:222222222222:jobs-dlq", "maxReceiveCount": "3"}'
    attributes = {"QueueArn": arn, "RedrivePolicy": redrive}
    assert redrive_target(attributes) == ("arn:aws:sqs:us-east-1:222222222222:jobs-dlq", 3)
    assert queue_problems(attributes, QueueSpec("jobs"), "jobs-dlq", "222222222222") == []
    assert queue_problems({"QueueArn": arn}, QueueSpec("jobs"), None, None) == [
        "has no redrive policy to a dead-letter queue"]
    assert queue_problems({"QueueArn": arn}, QueueSpec("jobs", dlq=False), None, None) == []
    assert queue_problems(attributes, QueueSpec("jobs"), "other-dlq", None) == [
        "redrives to jobs-dlq, expected other-dlq"]
    assert redrive_target({"RedrivePolicy": "not json"}) == (None, None)
    assert dlq_depth({"ApproximateNumberOfMessages": "2", "ApproximateNumberOfMessagesNotVisible": "1"}) == 3
    assert dlq_depth({}) == 0


def test_log_groups_secrets_parameters() -> None:
    assert log_group_problems({"retentionInDays": 14}, LogGroupSpec("g")) == []
    assert log_group_problems({}, LogGroupSpec("g")) == ["has no retention set (logs are kept forever)"]
    assert log_group_problems({"retentionInDays": 7}, LogGroupSpec("g", retention_days=14)) == [
        "retention is 7 days, expected 14"]
    assert secret_problems({"Name": "s"}, SecretSpec("s")) == []
    assert secret_problems({"DeletedDate": "2026-01-01", "KmsKeyId": "alias/other"},
                           SecretSpec("s", kms_key="alias/shop-*", rotation=True)) == [
        "is scheduled for deletion (2026-01-01)", "is encrypted with alias/other, expected 'alias/shop-*'",
        "has rotation disabled"]
    assert parameter_problems({"Type": "SecureString"}, ParameterSpec("p")) == []
    assert parameter_problems({"Type": "String"}, ParameterSpec("p")) == [
        "is a String, expected SecureString (stored unencrypted)"]


def test_tables_and_buckets() -> None:
    spec = TableSpec("t", pitr=True, sse=True)
    on = {"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED"}}
    off = {"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}}
    assert table_problems({"SSEDescription": {"Status": "ENABLED"}}, on, spec) == []
    problems = table_problems({}, off, spec)
    assert problems[0] == "point-in-time recovery is DISABLED, expected ENABLED"
    assert problems[1].startswith("is not encrypted with a KMS key")
    assert table_problems({}, None, TableSpec("t")) == []
    aes = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    acls = ("BlockPublicAcls", "IgnorePublicAcls")
    bucket = BucketSpec("b", encryption=True, public_access_block=acls)
    assert bucket_problems(aes, {"BlockPublicAcls": True, "IgnorePublicAcls": True}, bucket) == []
    assert bucket_problems(None, None, bucket) == ["has no default server-side encryption",
                                                   "has no public access block"]
    assert bucket_problems(aes, {"BlockPublicAcls": True}, bucket) == [
        "public access block leaves IgnorePublicAcls off"]


def test_alarms_and_statistics() -> None:
    alarms = [{"AlarmName": "a", "StateValue": "OK"},
              {"AlarmName": "b", "StateValue": "ALARM", "StateReason": "Threshold Crossed: 3 datapoints"},
              {"AlarmName": "c", "StateValue": "INSUFFICIENT_DATA"}]
    assert alarms_in_alarm(alarms) == ["b (Threshold Crossed: 3 datapoints)"]
    points: list[dict[str, Any]] = [{"Sum": 2.0, "Maximum": 900.0, "Average": 100.0, "SampleCount": 2.0},
              {"Sum": 1.0, "Maximum": 1500.0, "Average": 400.0, "SampleCount": 1.0,
               "ExtendedStatistics": {"p95": 1400.0}}]
    assert aggregate(points, "Sum") == 3.0
    assert aggregate(points, "Maximum") == 1500.0
    assert aggregate(points, "Average") == 200.0  # weighted by sample count
    assert aggregate(points, "p95") == 1400.0
    assert aggregate([], "Sum") is None
    assert parse_percentile("p99.9") == 99.9 and parse_percentile("p100") is None
    assert parse_percentile("Sum") is None
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    window = metric_window(90, now)
    assert window["Period"] == 120 and window["EndTime"] - window["StartTime"] == datetime.timedelta(seconds=90)


def test_apis_and_cors() -> None:
    stage = {"methodSettings": {"*/*": {"throttlingRateLimit": 100.0, "throttlingBurstLimit": 200}}}
    assert api_problems(stage, ApiSpec(name="a", rate=100, burst=200)) == []
    assert api_problems({}, ApiSpec(name="a")) == ["has no throttling on */* (rate and burst limits)"]
    assert api_problems(stage, ApiSpec(name="a", rate=50)) == ["throttling rate is 100.0, expected 50"]
    http = {"DefaultRouteSettings": {"ThrottlingRateLimit": 25.0, "ThrottlingBurstLimit": 50}}
    assert api_problems(http, ApiSpec(name="a", kind="http", rate=25, burst=50)) == []
    assert api_problems({"DefaultRouteSettings": {}}, ApiSpec(name="a", kind="http")) == [
        "has no throttling on the default route (rate and burst limits)"]
    assert cors_problems(["*"], ["https://shop.example"]) == [
        "CORS allows * (expected only https://shop.example)", "CORS does not allow https://shop.example"]


def test_resource_ids_are_unique_and_formatted() -> None:
    assert resource_ids(lambda t: t.format(stage="dev"), ["a-{stage}", "a-{stage}", "{oops"]) == [
        "a-dev", "a-dev+", "{oops"]


# --------------------------------------------------------------------------------------------------
# AWS errors: absent, or could not check


@functools.cache
def _session():  # type: ignore[no-untyped-def]
    import boto3

    return boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")


def _stubbed(service: str):  # type: ignore[no-untyped-def]
    from botocore.stub import Stubber

    client = _session().client(service)
    return client, Stubber(client)


@pytest.mark.parametrize(("service", "operation", "params", "code"), [
    ("lambda", "get_function", {"FunctionName": "f"}, "ResourceNotFoundException"),
    ("sqs", "get_queue_url", {"QueueName": "q"}, "AWS.SimpleQueueService.NonExistentQueue"),
    ("secretsmanager", "describe_secret", {"SecretId": "s"}, "ResourceNotFoundException"),
    ("dynamodb", "describe_table", {"TableName": "t"}, "ResourceNotFoundException"),
    ("s3", "head_bucket", {"Bucket": "b"}, "404"),
])
def test_not_found_is_absent(service: str, operation: str, params: dict[str, Any], code: str) -> None:
    client, stub = _stubbed(service)
    stub.add_client_error(operation, service_error_code=code, http_status_code=404)
    with stub, pytest.raises(Absent, match=r"^thing does not exist$"):
        call(client, operation, "thing", **params)


@pytest.mark.parametrize("code", ["AccessDeniedException", "AccessDenied", "ThrottlingException",
                                  "InternalServerError"])
def test_refused_or_failed_is_could_not_check_never_missing(code: str) -> None:
    client, stub = _stubbed("lambda")
    stub.add_client_error("get_function", service_error_code=code, service_message="not for you",
                          http_status_code=403)
    with stub, pytest.raises(Unverified) as info:
        call(client, "get_function", "Lambda function f in prod", FunctionName="f")
    assert str(info.value) == f"Lambda function f in prod: could not check: get_function: {code}: not for you"
    assert "does not exist" not in str(info.value) and "missing" not in str(info.value)


def test_an_unreachable_endpoint_is_could_not_check() -> None:
    from botocore.config import Config

    with closed_port() as port:  # a loopback port nobody listens on
        client = _session().client(
            "logs", endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}))
        with pytest.raises(Unverified, match="could not check: describe_log_groups: EndpointConnectionError"):
            pages(client, "describe_log_groups", "log group g in staging", "logGroups", logGroupNamePrefix="g")


def test_every_aws_operation_of_the_probes_is_a_read() -> None:
    from pytest_deploygate.aws import READ_PREFIXES

    source = (REPO / "suites" / "test_resources.py").read_text()
    operations = re.findall(r"""\b(?:call|pages)\([^,]+,\s*["'](\w+)["']""", source)
    assert len(set(operations)) >= 15, operations
    camel = {op: "".join(part.title() for part in op.split("_")) for op in operations}
    assert all(name.startswith(READ_PREFIXES) for name in camel.values()), camel
    # a secret's or a parameter's value is never read
    assert not {"get_secret_value", "get_parameter", "get_parameters", "get_parameters_by_path"} & set(operations)


def test_a_bad_table_entry_inherited_from_defaults_is_shown_at_its_defaults_line(tmp_path: Path) -> None:
    err = _error(tmp_path, '[defaults.resources]\ntables = ["ok", { name = "t", pitr = "yes" }]\n')
    assert err.message == "expected a boolean, got 'yes'" and err.key is not None
    assert err.key.endswith("resources.tables.[1].pitr"), str(err)
    assert err.line == BASE.count("\n") + 2, str(err)


def test_duplicate_cloudwatch_metric_names_are_an_error(tmp_path: Path) -> None:
    entry = '{ name = "custom.e_count", namespace = "N", metric = "M" }'
    err = _error(tmp_path, f"{M}metrics = [{entry}, {entry}]\n")
    assert "duplicate metric name 'custom.e_count'" in err.message and err.key is not None
    assert err.key.endswith("monitoring.metrics.[1].name"), str(err)
