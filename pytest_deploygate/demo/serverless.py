"""The serverless side of one environment of the reference deployment (issue 12), created through boto3
against that environment's own moto server, as the seeds' deploys create it (001 AI Lifestyle, 004 Trinity):

- the Lambda function record ``{service}-{stage}-api`` (runtime, memory, timeout, ``STAGE`` / ``LOG_LEVEL``),
  its own IAM role and its log group ``/aws/lambda/{service}-{stage}-api`` with a retention;
- a Cognito user pool, an app client and a probe user (password generated per launch: a secret);
- an SQS queue with a dead-letter queue (redrive policy);
- CloudWatch alarms prefixed ``{service}-{stage}-`` (all OK);
- SSM SecureString parameters and a Secrets Manager secret;
- point-in-time recovery on the tables (encryption is set when they are created: ``TABLE_SSE``), and default
  encryption plus a public-access block on the frontend bucket.

``tasks(env)`` are one environment's groups of calls, run concurrently with each other and with the other
environments' (``table_options`` and ``bucket_options`` after the launcher created the table and the bucket);
``wire(env)`` runs once every environment's user pool exists (the API's configuration: it may read its peers'
``user_pool*`` outputs), while the other groups may still run. ``env`` is the launcher's per-environment
setup (see ``Setup``). What the gate needs (names, ids, URLs, the probe user's credentials) goes to
``env.outputs`` (the environment's entry of the state file); what the API needs goes to ``env.api_env``.
"""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Protocol

from .service import PROTECTED_PATH

RUNTIME = "python3.12"
MEMORY_MB = 512
TIMEOUT_S = 30
LOG_RETENTION_DAYS = 14
#: the seeds' log levels (001: DEBUG in dev, INFO in prod)
LOG_LEVELS = {"dev": "DEBUG"}
DEFAULT_LOG_LEVEL = "INFO"
PROBE_USER = "deploygate-probe"
MAX_RECEIVE_COUNT = 3
#: DynamoDB encryption with the AWS managed KMS key: passed to create_table (update_table cannot set it)
TABLE_SSE: dict[str, Any] = {"SSESpecification": {"Enabled": True, "SSEType": "KMS"}}
#: the frontend bucket serves the site through its public-read policy (seed 000's S3 hosting): ACLs are
#: blocked, the policy is allowed
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": False, "RestrictPublicBuckets": False}
#: address keys whose values are secrets (the run adds them to what it redacts)
SECRET_KEYS = ("token", "cognito_password")


class Setup(Protocol):
    """What the launcher hands over for one environment."""

    name: str
    stage: str
    faults: frozenset[str]
    account_id: str
    endpoint_url: str
    api_env: dict[str, str]
    outputs: dict[str, Any]

    @property
    def peers(self) -> Mapping[str, Setup]: ...

    def client(self, service: str) -> Any: ...


def log_level(stage: str, faults: frozenset[str] = frozenset()) -> str:
    """The function's LOG_LEVEL: the seed's level, flipped by the ``log-level-wrong`` fault."""
    level = LOG_LEVELS.get(stage, DEFAULT_LOG_LEVEL)
    if "log-level-wrong" in faults:
        level = "INFO" if level == "DEBUG" else "DEBUG"
    return level


def names(service: str, stage: str) -> dict[str, Any]:
    """Every resource name of one environment (the address keys of the plain ones)."""
    prefix = f"{service}-{stage}-"
    function = f"{prefix}api"
    return {
        "function_name": function,
        "function_role": f"{function}-role",
        "log_group": f"/aws/lambda/{function}",
        "user_pool_name": f"{prefix}users",
        "user_pool_client_name": f"{prefix}web",
        "queue_name": f"{prefix}jobs",
        "dlq_name": f"{prefix}jobs-dlq",
        "alarm_prefix": prefix,
        "alarms": [f"{prefix}api-errors", f"{prefix}api-throttles", f"{prefix}api-duration-p95"],
        "parameters": [f"/{service}/{stage}/jwt-secret", f"/{service}/{stage}/api-key"],
        "secret_name": f"{service}/{stage}/db-credentials",
    }


@lru_cache(maxsize=1)
def _function_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", '"""The AIPM API (the reference deployment serves it outside Lambda)."""\n\n\n'
                                "def handler(event, context):\n    return {'statusCode': 200}\n")
    return buf.getvalue()


def _password() -> str:
    # upper, lower, digit and symbol, as a Cognito pool's default policy requires
    return secrets.token_urlsafe(18) + "-Aa1"


def tasks(env: Setup) -> tuple[list[Callable[[], None]], list[Callable[[], None]]]:
    """The environment's serverless resources (see the module docstring), as independent groups of calls: the
    launcher runs them concurrently (each group's calls in order, each one writing its own address keys to
    ``env.outputs``). First the groups the API's configuration reads (the user pool: ``env.api_env``), then
    the others. The table and bucket options are not here: ``table_options`` and ``bucket_options`` run once
    the launcher created the table and the bucket."""
    service = env.api_env.get("SERVICE", "aipm-backend")
    stage, faults = env.stage, env.faults
    n = names(service, stage)
    region = env.api_env.get("AWS_REGION", "us-east-1")
    env.outputs.update({k: v for k, v in n.items() if k not in ("function_role", "user_pool_client_name")})
    env.outputs["secret_keys"] = list(SECRET_KEYS)

    def function() -> None:  # Lambda: a role of its own, then the function record
        iam = env.client("iam")
        role_arn = iam.create_role(RoleName=n["function_role"], AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        env.outputs["function_role_arn"] = role_arn
        if "function-missing" not in faults:
            env.client("lambda").create_function(
                FunctionName=n["function_name"], Runtime=RUNTIME, Role=role_arn, Handler="index.handler",
                Code={"ZipFile": _function_zip()}, MemorySize=MEMORY_MB, Timeout=TIMEOUT_S,
                Environment={"Variables": {"STAGE": stage, "SERVICE": service,
                                           "LOG_LEVEL": log_level(stage, faults)}},
                Tags={"service": service, "stage": stage})

    def log_group() -> None:  # the function's log group, with a retention
        logs = env.client("logs")
        logs.create_log_group(logGroupName=n["log_group"])
        logs.put_retention_policy(logGroupName=n["log_group"], retentionInDays=LOG_RETENTION_DAYS)

    def user_pool() -> None:  # Cognito: pool, app client (no secret, password auth) and a confirmed probe user
        idp = env.client("cognito-idp")
        pool_id = idp.create_user_pool(PoolName=n["user_pool_name"])["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName=n["user_pool_client_name"], GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        password = _password()
        idp.admin_create_user(UserPoolId=pool_id, Username=PROBE_USER, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username=PROBE_USER, Password=password, Permanent=True)
        env.outputs.update(user_pool_id=pool_id, user_pool_client_id=client_id, cognito_username=PROBE_USER,
                           cognito_password=password, protected_path=PROTECTED_PATH,
                           cognito_jwks_url=f"{env.endpoint_url}/{pool_id}/.well-known/jwks.json")
        env.api_env.update(USER_POOL_ID=pool_id, USER_POOL_CLIENT_ID=client_id)

    def queues() -> None:  # SQS: the queue and its dead-letter queue (an ARN is known from the name)
        sqs = env.client("sqs")
        dlq_url = sqs.create_queue(QueueName=n["dlq_name"])["QueueUrl"]
        dlq_arn = f"arn:aws:sqs:{region}:{env.account_id}:{n['dlq_name']}"
        queue_url = sqs.create_queue(QueueName=n["queue_name"], Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})})["QueueUrl"]
        if "dlq-not-empty" in faults:
            sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(
                {"job": "export", "error": "handler timed out", "attempts": MAX_RECEIVE_COUNT}))
        env.outputs.update(dlq_url=dlq_url, queue_url=queue_url)

    def alarms() -> None:  # CloudWatch alarms on the function (moto creates them OK; nothing evaluates them)
        cw = env.client("cloudwatch")
        errors, throttles, duration = n["alarms"]
        dims = [{"Name": "FunctionName", "Value": n["function_name"]}]
        common: dict[str, Any] = {"Namespace": "AWS/Lambda", "Dimensions": dims, "Period": 60,
                                  "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold",
                                  "TreatMissingData": "notBreaching"}
        cw.put_metric_alarm(AlarmName=errors, MetricName="Errors", Statistic="Sum", Threshold=0, **common)
        cw.put_metric_alarm(AlarmName=throttles, MetricName="Throttles", Statistic="Sum", Threshold=0, **common)
        cw.put_metric_alarm(AlarmName=duration, MetricName="Duration", ExtendedStatistic="p95",
                            Threshold=TIMEOUT_S * 1000 * 0.8, **common)
        if "alarm-firing" in faults:
            cw.set_alarm_state(AlarmName=errors, StateValue="ALARM", StateReason=(
                "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (0.0)"))

    def parameters() -> None:  # SecureString parameters (values generated, never handed out)
        ssm = env.client("ssm")
        for name in n["parameters"]:
            ssm.put_parameter(Name=name, Value=secrets.token_urlsafe(24), Type="SecureString")

    def secret() -> None:  # a Secrets Manager secret (value generated, never handed out)
        env.client("secretsmanager").create_secret(Name=n["secret_name"], SecretString=json.dumps(
            {"username": f"aipm_{stage}", "password": secrets.token_urlsafe(24)}))

    return [user_pool], [function, log_group, queues, alarms, parameters, secret]


def table_options(env: Setup, collection: str, table: str) -> None:
    """Point-in-time recovery on a table once it exists (not on the stories table under ``pitr-off``); its
    encryption is set when it is created (``TABLE_SSE``)."""
    if collection == "stories" and "pitr-off" in env.faults:
        return
    env.client("dynamodb").update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


def bucket_options(env: Setup, bucket: str) -> None:
    """Default encryption and a public-access block on the frontend bucket once it exists."""
    s3 = env.client("s3")
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)


def foreign_peer(env: Setup) -> Setup | None:
    """The peer whose pool the ``foreign-token-accepted`` fault makes ``env`` trust: dev (the next environment
    when ``env`` is dev)."""
    others = [p for name, p in env.peers.items() if name != env.name]
    if not others:
        return None
    dev = [p for p in others if p.stage == "dev"]
    if dev:
        return dev[0]
    names_ = list(env.peers)
    return env.peers[names_[(names_.index(env.name) + 1) % len(names_)]] if env.name in names_ else others[0]


def wire(env: Setup) -> None:
    """Cross-environment settings, once every environment is provisioned: under ``foreign-token-accepted`` the
    API trusts a peer's user pool too."""
    if "foreign-token-accepted" not in env.faults:
        return
    peer = foreign_peer(env)
    if peer is None or "user_pool_id" not in peer.outputs:
        return
    env.api_env["TRUSTED_USER_POOLS"] = json.dumps([{
        "pool_id": peer.outputs["user_pool_id"], "client_id": peer.outputs["user_pool_client_id"],
        "jwks_url": peer.outputs["cognito_jwks_url"]}])
