"""The resource and monitoring probes end to end: real gate runs against the reference deployment, whose
moto servers (one AWS account per environment) hold each environment's Lambda function, user pool, queues,
log group, secret, parameters, alarms and table/bucket options. Healthy passes; each fault fails its named
probe for the right reason; an absent optional resource is skipped with the reason; AWS that cannot be
asked is "could not check", never "missing"."""

from __future__ import annotations

import json
import re
import socket

import pytest

from gatehelpers import Gate, RunningDemo

PROBES = ("-m", "gate and smoke", "-k", "test_resources")


def test_healthy_prod_passes_every_probe_read_only(gate_project: Gate) -> None:
    # prod is protected: every probe only describes, gets and lists (a write would be refused and fail)
    res = gate_project.run("--env", "prod", *PROBES, "-rA")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["verdict"] == "PASS"
    for check in ("test_function[aipm-backend-prod-api]", "test_user_pool[aipm-backend-prod-users]",
                  "test_queue[aipm-backend-prod-jobs]", "test_log_group[/aws/lambda/aipm-backend-prod-api]",
                  "test_secret[aipm-backend/prod/db-credentials]", "test_parameter[/aipm-backend/prod/jwt-secret]",
                  "test_table_options[aipm-backend-prod-stories]", "test_bucket_options[aipm-prod-frontend-hosting]",
                  "test_alarm[aipm-backend-prod-*]", "test_cloudwatch_metric[custom.lambda_errors_count]"):
        assert f"PASSED test_resources.py::{check}" in res.stdout, check
    assert res.metric("smoke.resources.dlq_depth_count", queue="aipm-backend-prod-jobs")["verdict"] == "PASS"
    assert res.metric("smoke.monitoring.alarms_in_alarm_count", alarms="aipm-backend-prod-*")["value"] == 0
    assert res.metric("custom.lambda_errors_count")["value"] == 0  # no datapoints: missing = "zero"
    assert "refused AWS" not in res.output and "could not check" not in res.output
    assert gate_project.leftovers() == []


@pytest.mark.demo_faults("staging:dlq-not-empty", "staging:alarm-firing", "staging:log-level-wrong",
                         "staging:pitr-off")
def test_each_fault_fails_its_named_probe(gate_project: Gate, running_demo: RunningDemo) -> None:
    res = gate_project.run("--env", "staging", *PROBES, "-rA")
    assert res.ret == 1, res.output
    assert res.report is not None and res.report["verdict"] == "FAIL"
    failed = res.failed_tests()
    reasons = {nodeid.split("::", 1)[1]: reason for nodeid, reason in failed.items()}
    # log-level-wrong: the function's environment variable, named with both values
    assert reasons["test_function[aipm-backend-staging-api]"] == (
        "Lambda function aipm-backend-staging-api in staging: environment variable LOG_LEVEL = 'DEBUG', "
        "expected 'INFO'")
    # pitr-off: only the stories table (acceptance-tests keeps PITR)
    assert reasons["test_table_options[aipm-backend-staging-stories]"] == (
        "DynamoDB table aipm-backend-staging-stories in staging: point-in-time recovery is DISABLED, "
        "expected ENABLED")
    assert "PASSED test_resources.py::test_table_options[aipm-backend-staging-acceptance-tests]" in res.stdout
    # dlq-not-empty: the queue itself is fine (it has its DLQ); the DLQ's depth breaches the policy
    assert "PASSED test_resources.py::test_queue[aipm-backend-staging-jobs]" in res.stdout
    depth = res.metric("smoke.resources.dlq_depth_count", queue="aipm-backend-staging-jobs")
    assert depth["value"] == 1 and depth["verdict"] == "FAIL"
    # alarm-firing: the alarms exist; one of them is in ALARM, named in a note
    alarms = res.metric("smoke.monitoring.alarms_in_alarm_count", alarms="aipm-backend-staging-*")
    assert alarms["value"] == 1 and alarms["verdict"] == "FAIL"
    assert "1 of 3 in ALARM: aipm-backend-staging-api-errors" in res.stdout
    # nothing else fails, and no fault is misreported as "could not check" or "does not exist"
    assert set(reasons) == {"test_function[aipm-backend-staging-api]",
                            "test_table_options[aipm-backend-staging-stories]"}, reasons
    for check in ("test_user_pool[aipm-backend-staging-users]",
                  "test_log_group[/aws/lambda/aipm-backend-staging-api]",
                  "test_secret[aipm-backend/staging/db-credentials]",
                  "test_bucket_options[aipm-staging-frontend-hosting]"):
        assert f"PASSED test_resources.py::{check}" in res.stdout, check
    assert "could not check" not in res.output and "does not exist" not in res.output
    assert "Traceback" not in res.output


@pytest.mark.demo_faults("dev:function-missing")
def test_an_absent_resource_fails_unless_optional_or_skip_absent(gate_project: Gate,
                                                                running_demo: RunningDemo) -> None:
    res = gate_project.run("--env", "dev", *PROBES, "-rA")
    assert res.ret == 1, res.output
    reasons = {nodeid.split("::", 1)[1]: reason for nodeid, reason in res.failed_tests().items()}
    assert set(reasons) == {"test_function[aipm-backend-dev-api]"}, reasons
    assert reasons["test_function[aipm-backend-dev-api]"].startswith(
        "Lambda function aipm-backend-dev-api in dev does not exist")
    # what the missing function leaves behind is still checked (and fine)
    assert "PASSED test_resources.py::test_log_group[/aws/lambda/aipm-backend-dev-api]" in res.stdout

    # declared optional: SKIPPED with the reason, never PASS
    config = gate_project.path / "deploygate.toml"
    text = config.read_text()
    dev_function = 'environment = { STAGE = "{stage}", LOG_LEVEL = "DEBUG" } }'
    assert text.count(dev_function) == 1
    config.write_text(text.replace(dev_function, dev_function[:-2] + ", optional = true }"))
    res = gate_project.run("--env", "dev", *PROBES, "-rA")
    assert res.ret == 0, res.output
    assert re.search(r"SKIPPED \[1\] \S*test_resources\.py:\d+: Lambda function aipm-backend-dev-api in dev does "
                     r"not exist \(declared optional: not deployed yet\)", res.stdout), res.stdout
    assert "PASSED test_resources.py::test_function" not in res.stdout
    assert res.report is not None and res.report["verdict"] == "PASS"
    assert res.report["categories"]["smoke"]["tests"]["skipped"] >= 1

    # a first deploy: --skip-absent makes every declared resource optional
    config.write_text(text)
    if "--skip-absent" not in gate_project.run("--help").stdout:
        # the plugin does not register the option yet: register it here the way it will (the suite reads
        # config.getoption("deploygate_skip_absent", False))
        gate_project.pytester.makeconftest("""
def pytest_addoption(parser):
    parser.getgroup("deploygate").addoption("--skip-absent", action="store_true", dest="deploygate_skip_absent")
""")
    res = gate_project.run("--env", "dev", *PROBES, "-rA", "--skip-absent")
    assert res.ret == 0, res.output
    assert "does not exist (--skip-absent: not deployed yet)" in res.stdout


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_aws_that_cannot_be_asked_is_could_not_check_never_missing(gate_project: Gate) -> None:
    port = _dead_port()
    (gate_project.path / "deploygate.toml").write_text(f"""service = "shop"
[environments.staging]
stage = "staging"
base_url = "http://127.0.0.1:{port}"
aws = {{ endpoint_url = "http://127.0.0.1:{port}", region = "us-east-1" }}
http = {{ connect_timeout_s = 1, read_timeout_s = 1, retries = 0 }}
[environments.staging.resources]
functions = [{{ name = "{{service}}-{{stage}}-api" }}]
queues = [{{ name = "{{service}}-{{stage}}-jobs", optional = true }}]
[environments.staging.monitoring]
alarms = [{{ prefix = "{{service}}-{{stage}}-" }}]
""")
    gate_project.monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    gate_project.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    res = gate_project.run("--env", "staging", "--no-preflight", *PROBES, "-rA")
    assert res.ret == 1, res.output
    reasons = {nodeid.split("::", 1)[1]: reason for nodeid, reason in res.failed_tests().items()}
    assert set(reasons) == {"test_function[shop-staging-api]", "test_queue[shop-staging-jobs]",
                            "test_alarm[shop-staging-*]"}, reasons
    for reason in reasons.values():
        assert "could not check" in reason and "EndpointConnectionError" in reason, reason
        assert "does not exist" not in reason and "missing" not in reason
    # an optional resource that could not be checked is not skipped as absent either
    assert reasons["test_queue[shop-staging-jobs]"].startswith(
        "SQS queue shop-staging-jobs in staging: could not check: get_queue_url")
    unverified = res.metric("smoke.unverified_count", check="Lambda function shop-staging-api in staging")
    assert unverified["value"] == 1

    # no credentials for the account at all (an unknown profile): could not check either
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text().replace('region = "us-east-1" }',
                                                 'region = "us-east-1", profile = "deploygate-no-such-profile" }'))
    res = gate_project.run("--env", "staging", "--no-preflight", *PROBES, "-rA")
    assert res.ret == 1, res.output
    reasons = {nodeid.split("::", 1)[1]: reason for nodeid, reason in res.failed_tests().items()}
    assert reasons["test_function[shop-staging-api]"] == (
        "Lambda function shop-staging-api in staging: could not check: ProfileNotFound: The config profile "
        "(deploygate-no-such-profile) could not be found"), reasons
    assert "Traceback" not in res.output


def test_what_the_reference_deployment_lacks(gate_project: Gate, running_demo: RunningDemo) -> None:
    """What the reference deployment does not have is created in staging's account here, as a deploy and its
    traffic would: REST API stages (the reference API is a local process), container-image functions, a queue
    whose dead-letter queue was deleted, and Lambda datapoints."""
    import datetime

    import boto3

    info = running_demo.state["environments"]["staging"]
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    apigw = session.client("apigateway", endpoint_url=info["endpoint_url"])
    throttled = apigw.create_rest_api(name="aipm-backend-staging-api")["id"]
    bare = apigw.create_rest_api(name="aipm-backend-staging-admin")["id"]
    for api_id in (throttled, bare):
        root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
        apigw.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
        apigw.create_deployment(restApiId=api_id, stageName="staging")
    apigw.update_stage(restApiId=throttled, stageName="staging", patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "100"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "200"}])
    role = session.client("iam", endpoint_url=info["endpoint_url"]).create_role(
        RoleName="aipm-backend-staging-worker-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lambdas = session.client("lambda", endpoint_url=info["endpoint_url"])
    for name, tag in (("worker", "worker-staging-4f2a9c1"), ("cron", "cron-dev-77aa01b")):  # cron: dev's image
        lambdas.create_function(FunctionName=f"aipm-backend-staging-{name}", Role=role, PackageType="Image",
                                Code={"ImageUri": f"{info['account_id']}.dkr.ecr.us-east-1.amazonaws.com/"
                                                  f"aipm-backend:{tag}"})
    # an HTTP API, throttled, whose CORS allows any origin
    apigw2 = session.client("apigatewayv2", endpoint_url=info["endpoint_url"])
    http_api = apigw2.create_api(Name="aipm-backend-staging-http", ProtocolType="HTTP",
                                 CorsConfiguration={"AllowOrigins": ["*"]})["ApiId"]
    apigw2.create_stage(ApiId=http_api, StageName="staging",
                        DefaultRouteSettings={"ThrottlingRateLimit": 25.0, "ThrottlingBurstLimit": 50})
    # a queue whose dead-letter queue was deleted after it was wired
    sqs = session.client("sqs", endpoint_url=info["endpoint_url"])
    dlq = sqs.create_queue(QueueName="aipm-backend-staging-orphans-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName="aipm-backend-staging-orphans", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})
    sqs.delete_queue(QueueUrl=dlq)
    now = datetime.datetime.now(datetime.timezone.utc)
    function = [{"Name": "FunctionName", "Value": "aipm-backend-staging-api"}]
    session.client("cloudwatch", endpoint_url=info["endpoint_url"]).put_metric_data(Namespace="AWS/Lambda", MetricData=[
        *({"MetricName": "Errors", "Dimensions": function, "Value": v, "Timestamp": now - datetime.timedelta(minutes=m)}
          for v, m in ((2, 1), (1, 3))),
        *({"MetricName": "Duration", "Dimensions": function, "Value": v, "Unit": "Milliseconds",
           "Timestamp": now - datetime.timedelta(minutes=m)} for v, m in ((120, 1), (2400, 2), (80, 3))),
        # outside the 15 minute window: not counted
        {"MetricName": "Errors", "Dimensions": function, "Value": 50, "Timestamp": now - datetime.timedelta(hours=2)},
    ])
    http_api_entry = ('{ name = "{service}-{stage}-http", kind = "http", throttling = { rate = 25, burst = 50 }, '
                      'cors_origins = ["{frontend_origin}"] }')
    resources = """
[environments.staging.resources]
queues = [{ name = "{service}-{stage}-orphans" }]
functions = [
    { name = "{service}-{stage}-worker", image_tag = "worker-{stage}-*" },
    { name = "{service}-{stage}-cron", image_tag = "cron-{stage}-*" },
]
apis = [
    { name = "{service}-{stage}-api", throttling = { rate = 100, burst = 200 } },
    { name = "{service}-{stage}-admin" },
    { name = "{service}-{stage}-web", optional = true },
    HTTP_API,
]
""".replace("HTTP_API", http_api_entry)
    metrics = "".join(f"""
[[environments.staging.monitoring.metrics]]
name = "{name}"
namespace = "AWS/Lambda"
metric = "{metric}"
dimensions = {{ FunctionName = "{{service}}-{{stage}}-api" }}
{extra}
""" for name, metric, extra in (("custom.lambda_errors_count", "Errors", 'missing = "zero"'),
                                 ("custom.lambda_duration_max_ms", "Duration", 'stat = "Maximum"'),
                                 ("custom.lambda_throttles_count", "Throttles", "")))
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + resources + metrics)
    policy = gate_project.generous_policy()
    policy.write_text(policy.read_text().replace("[metrics]\n", '[metrics]\n"custom.lambda_errors_count" = '
                                                 '{ fail = "> 0" }\n"custom.lambda_duration_max_ms" = '
                                                 '{ warn = "> 1000", fail = "> 3000" }\n', 1))
    probes = "test_api_stage or test_cloudwatch_metric or test_function or test_queue"
    res = gate_project.run("--env", "staging", "-m", "gate and smoke", "-k", f"test_resources and ({probes})", "-rA")
    assert res.ret == 1, res.output
    # API stages: throttled passes, unthrottled fails naming why, an absent optional one is skipped
    assert "PASSED test_resources.py::test_api_stage[aipm-backend-staging-api/staging]" in res.stdout
    reasons = {nodeid.split("::", 1)[1]: reason for nodeid, reason in res.failed_tests().items()}
    frontend_origin = "/".join(info["frontend_url"].split("/")[:3])
    cron_uri = f"{info['account_id']}.dkr.ecr.us-east-1.amazonaws.com/aipm-backend:cron-dev-77aa01b"
    assert reasons == {"test_api_stage[aipm-backend-staging-admin/staging]":
                       "API Gateway stage aipm-backend-staging-admin/staging in staging: has no throttling on */* "
                       "(rate and burst limits)",
                       # the image tag: staging runs dev's image
                       "test_function[aipm-backend-staging-cron]":
                       "Lambda function aipm-backend-staging-cron in staging: image tag is 'cron-dev-77aa01b' "
                       f"({cron_uri}), expected 'cron-staging-*'",
                       "test_api_stage[aipm-backend-staging-http/staging]":
                       "API Gateway stage aipm-backend-staging-http/staging in staging: CORS allows * (expected only "
                       f"{frontend_origin}); CORS does not allow {frontend_origin}",
                       # broken, not absent: the queue is there, its dead-letter queue is not
                       "test_queue[aipm-backend-staging-orphans]":
                       "SQS queue aipm-backend-staging-orphans in staging: redrives to "
                       "aipm-backend-staging-orphans-dlq, which does not exist"}
    assert "PASSED test_resources.py::test_function[aipm-backend-staging-worker]" in res.stdout
    assert "aipm-backend-staging-web/staging in staging does not exist (no REST API named " in res.stdout
    # CloudWatch statistics over the window, judged by the policy
    errors = res.metric("custom.lambda_errors_count")
    assert errors["value"] == 3 and errors["verdict"] == "FAIL"
    duration = res.metric("custom.lambda_duration_max_ms")
    assert duration["value"] == 2400 and duration["verdict"] == "WARN"
    # no Throttles datapoint and missing = "skip" (the default): skipped, not a zero
    assert re.search(r"SKIPPED \[1\] \S*test_resources\.py:\d+: CloudWatch AWS/Lambda Throttles Sum in staging: no "
                     r"datapoints in the last 900 s", res.stdout), res.stdout
