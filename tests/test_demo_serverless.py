"""The reference deployment's serverless side (issue 12): what each environment's deploy creates in its own
account — read back with boto3 from that environment's moto server — and exactly what each new fault changes;
the protected route takes a token of its own environment's user pool and refuses a peer's."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import time
from importlib import resources
from typing import Any

import boto3
import pytest
import requests
from joserfc import jwk, jwt
from joserfc.jwk import KeySet

from gatehelpers import RunningDemo
from pytest_deploygate.demo import serverless
from pytest_deploygate.demo.faults import FAULTS, parse_faults
from pytest_deploygate.demo.service import CognitoAuth

# tests using running_demo are marked e2e by conftest; the unit tests at the end are the fast layer. joserfc is
# imported here, at collection: imported first inside a pytester test, its cryptography classes would be dropped
# from sys.modules after that test and re-imported apart from the ones cryptography's bindings hold

ENVS = ("dev", "staging", "prod")
SERVICE = "aipm-backend"


def aws(demo: RunningDemo, env: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=demo.state["environments"][env]["endpoint_url"],
                        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def snapshot(demo: RunningDemo, env: str) -> dict[str, Any]:
    """Every serverless setting of ``env`` the gate's probes look at, read from its account."""
    info = demo.state["environments"][env]
    stage = info["stage"]
    prefix = f"{SERVICE}-{stage}-"
    arns: list[str] = []
    lam = aws(demo, env, "lambda")
    try:
        cfg = lam.get_function_configuration(FunctionName=f"{prefix}api")
        function: dict[str, Any] | None = {
            "state": cfg["State"], "runtime": cfg["Runtime"], "memory": cfg["MemorySize"], "timeout": cfg["Timeout"],
            "variables": cfg["Environment"]["Variables"], "role": cfg["Role"]}
        arns += [cfg["FunctionArn"], cfg["Role"]]
    except lam.exceptions.ResourceNotFoundException:
        function = None
    role = aws(demo, env, "iam").get_role(RoleName=f"{prefix}api-role")["Role"]["Arn"]
    groups = aws(demo, env, "logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    idp = aws(demo, env, "cognito-idp")
    pools = {p["Name"]: p["Id"] for p in idp.list_user_pools(MaxResults=60)["UserPools"]}
    pool_id = pools.get(f"{prefix}users", "")
    clients = {c["ClientName"]: c["ClientId"] for c in
               idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]}
    user = idp.admin_get_user(UserPoolId=pool_id, Username=info["cognito_username"])
    sqs = aws(demo, env, "sqs")
    queue = sqs.get_queue_attributes(QueueUrl=info["queue_url"], AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=info["dlq_url"], AttributeNames=["All"])["Attributes"]
    arns += [queue["QueueArn"], dlq["QueueArn"]]
    alarms = aws(demo, env, "cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    arns += [a["AlarmArn"] for a in alarms]
    params = aws(demo, env, "ssm").describe_parameters()["Parameters"]
    secret = aws(demo, env, "secretsmanager").describe_secret(SecretId=f"{SERVICE}/{stage}/db-credentials")
    arns.append(secret["ARN"])
    ddb = aws(demo, env, "dynamodb")
    tables = {}
    for table in (f"{prefix}stories", f"{prefix}acceptance-tests"):
        backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        sse = ddb.describe_table(TableName=table)["Table"].get("SSEDescription", {})
        tables[table] = {"pitr": backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
                         "sse": (sse.get("Status"), sse.get("SSEType"))}
    s3 = aws(demo, env, "s3")
    bucket = f"aipm-{stage}-frontend-hosting"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    return {
        "function": function,
        "role": role,
        "log_groups": {g["logGroupName"]: g.get("retentionInDays") for g in groups},
        "user_pool": (pool_id == info["user_pool_id"], clients == {f"{prefix}web": info["user_pool_client_id"]},
                      user["UserStatus"]),
        "redrive": json.loads(queue["RedrivePolicy"]),
        "queue_depth": int(queue["ApproximateNumberOfMessages"]),
        "dlq_depth": int(dlq["ApproximateNumberOfMessages"]),
        "alarms": {a["AlarmName"]: a["StateValue"] for a in alarms},
        "parameters": {p["Name"]: p["Type"] for p in params},
        "tables": tables,
        "bucket": (rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
                   s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]),
        # every ARN names this environment's account
        "accounts": sorted({arn.split(":")[4] for arn in arns}),
    }


def healthy(demo: RunningDemo, env: str) -> dict[str, Any]:
    """What ``snapshot`` reads in a healthy deployment (the settings documented for the probes)."""
    info = demo.state["environments"][env]
    stage, account = info["stage"], info["account_id"]
    prefix = f"{SERVICE}-{stage}-"
    role = f"arn:aws:iam::{account}:role/{prefix}api-role"
    return {
        "function": {"state": "Active", "runtime": "python3.12", "memory": 512, "timeout": 30, "role": role,
                     "variables": {"STAGE": stage, "SERVICE": SERVICE,
                                   "LOG_LEVEL": "DEBUG" if stage == "dev" else "INFO"}},
        "role": role,
        "log_groups": {f"/aws/lambda/{prefix}api": 14},
        "user_pool": (True, True, "CONFIRMED"),
        "redrive": {"deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{account}:{prefix}jobs-dlq", "maxReceiveCount": 3},
        "queue_depth": 0,
        "dlq_depth": 0,
        "alarms": {f"{prefix}api-errors": "OK", f"{prefix}api-throttles": "OK", f"{prefix}api-duration-p95": "OK"},
        "parameters": {f"/{SERVICE}/{stage}/jwt-secret": "SecureString", f"/{SERVICE}/{stage}/api-key": "SecureString"},
        "tables": {f"{prefix}{c}": {"pitr": "ENABLED", "sse": ("ENABLED", "KMS")}
                   for c in ("stories", "acceptance-tests")},
        "bucket": ("AES256", {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                              "BlockPublicPolicy": False, "RestrictPublicBuckets": False}),
        "accounts": [account],
    }


def expected(demo: RunningDemo, env: str, faults: set[str]) -> dict[str, Any]:
    """The healthy snapshot with exactly the changes ``faults`` are documented to make."""
    exp = copy.deepcopy(healthy(demo, env))
    prefix = f"{SERVICE}-{demo.state['environments'][env]['stage']}-"
    if "dlq-not-empty" in faults:
        exp["dlq_depth"] = 1
    if "alarm-firing" in faults:
        exp["alarms"][f"{prefix}api-errors"] = "ALARM"
    if "log-level-wrong" in faults:
        variables = exp["function"]["variables"]
        variables["LOG_LEVEL"] = "INFO" if variables["LOG_LEVEL"] == "DEBUG" else "DEBUG"
    if "pitr-off" in faults:
        exp["tables"][f"{prefix}stories"]["pitr"] = "DISABLED"
    if "function-missing" in faults:
        exp["function"] = None
    return exp


def tokens(demo: RunningDemo, env: str) -> dict[str, str]:
    """The probe user's ID and access tokens from ``env``'s pool (credentials from the launched addresses)."""
    info = demo.state["environments"][env]
    result = aws(demo, env, "cognito-idp").initiate_auth(
        ClientId=info["user_pool_client_id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": info["cognito_username"], "PASSWORD": info["cognito_password"]},
    )["AuthenticationResult"]
    return {"id": result["IdToken"], "access": result["AccessToken"]}


def me(demo: RunningDemo, env: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(demo.api(env) + demo.state["environments"][env]["protected_path"], headers=headers,
                        timeout=30)


def token_matrix(demo: RunningDemo) -> dict[tuple[str, str, str], int]:
    """(API's environment, token's environment, token kind) -> status of GET /api/me."""
    toks = {env: tokens(demo, env) for env in ENVS}
    return {(api, src, kind): me(demo, api, tok).status_code
            for api in ENVS for src in ENVS for kind, tok in toks[src].items()}


def own_pool_only(trusts: dict[str, set[str]] | None = None) -> dict[tuple[str, str, str], int]:
    trusts = trusts or {}
    return {(api, src, kind): 200 if src == api or src in trusts.get(api, set()) else 401
            for api in ENVS for src in ENVS for kind in ("id", "access")}


def moto_signed(claims: dict[str, Any]) -> str:
    """A token signed with the key moto signs every pool's tokens with (to vary one claim at a time)."""
    raw = gzip.decompress((resources.files("moto") / "cognitoidp/resources/jwks-private.json.gz").read_bytes())
    return jwt.encode({"alg": "RS256", "kid": "dummy"}, claims, jwk.RSAKey.import_key(json.loads(raw)))


def assert_faults(demo: RunningDemo, faults: dict[str, set[str]]) -> None:
    for env in ENVS:
        assert snapshot(demo, env) == expected(demo, env, faults.get(env, set())), env


# ----------------------------------------------------------------------------------------------------------
def test_healthy_deployment_has_every_resource_in_its_own_account(running_demo: RunningDemo) -> None:
    demo = running_demo
    assert_faults(demo, {})
    roles = {snapshot(demo, env)["role"] for env in ENVS}
    assert len(roles) == 3  # each function runs with its own environment's role
    accounts = {demo.state["environments"][env]["account_id"] for env in ENVS}
    assert len(accounts) == 3
    # the addresses carry what configs need; the password is listed as a secret
    info = demo.state["environments"]["prod"]
    for key in ("function_name", "log_group", "user_pool_id", "user_pool_client_id", "queue_url", "dlq_url",
                "alarm_prefix", "secret_name", "cognito_username", "cognito_password"):
        assert info[key], key
    assert info["function_name"] == "aipm-backend-prod-api"
    assert "cognito_password" in info["secret_keys"] and "token" in info["secret_keys"]
    assert len({demo.state["environments"][env]["cognito_password"] for env in ENVS}) == 3


def test_protected_route_takes_only_its_own_pools_tokens(running_demo: RunningDemo) -> None:
    demo = running_demo
    assert token_matrix(demo) == own_pool_only()
    answer = me(demo, "staging", tokens(demo, "staging")["id"])
    assert answer.json()["stage"] == "staging" and answer.json()["username"] == "deploygate-probe"
    assert me(demo, "staging", None).status_code == 401
    assert me(demo, "staging", None).json() == {"message": "authentication required"}
    assert me(demo, "staging", "not-a-token").json() == {"message": "invalid token"}
    # a tampered payload keeps its signature: refused
    head, payload, signature = tokens(demo, "staging")["id"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "cognito:username": "admin"}).encode()).decode().rstrip("=")
    assert me(demo, "staging", f"{head}.{forged}.{signature}").status_code == 401
    # with moto's signing key, one claim at a time: valid claims pass, an expired token or a wrong audience does not
    info = demo.state["environments"]["staging"]
    now = int(time.time())
    good = {"iss": f"https://cognito-idp.us-east-1.amazonaws.com/{info['user_pool_id']}", "sub": "s",
            "aud": info["user_pool_client_id"], "token_use": "id", "iat": now, "exp": now + 600,
            "cognito:username": "deploygate-probe"}
    assert me(demo, "staging", moto_signed(good)).status_code == 200
    assert me(demo, "staging", moto_signed({**good, "exp": now - 600, "iat": now - 4000})).status_code == 401
    assert me(demo, "staging", moto_signed({**good, "aud": "another-client"})).status_code == 401
    assert me(demo, "staging", moto_signed({**good, "token_use": "refresh"})).status_code == 401


FAULT_GROUPS = [
    # one fault per environment, so each environment shows what its fault changes and nothing else
    ("dev:pitr-off", "staging:dlq-not-empty", "prod:alarm-firing"),
    ("dev:function-missing", "staging:log-level-wrong", "prod:foreign-token-accepted"),
]


@pytest.mark.parametrize("faults", [pytest.param(g, marks=pytest.mark.demo_faults(*g), id="+".join(g))
                                    for g in FAULT_GROUPS])
def test_each_fault_changes_exactly_its_resource(running_demo: RunningDemo, faults: tuple[str, ...]) -> None:
    by_env: dict[str, set[str]] = {}
    for item in faults:
        env, _, fault = item.partition(":")
        by_env.setdefault(env, set()).add(fault)
    assert_faults(running_demo, by_env)
    # foreign-token-accepted: prod also takes dev's tokens (and still refuses staging's); others unchanged
    trusts = {"prod": {"dev"}} if "foreign-token-accepted" in by_env.get("prod", set()) else {}
    assert token_matrix(running_demo) == own_pool_only(trusts)


@pytest.mark.demo_faults("dev:log-level-wrong", "staging:slow-endpoint")
def test_slow_endpoint_delays_one_path_only(running_demo: RunningDemo) -> None:
    demo = running_demo
    # dev's level flips to INFO (its healthy level is DEBUG); slow-endpoint changes no resource
    assert_faults(demo, {"dev": {"log-level-wrong"}})
    assert token_matrix(demo) == own_pool_only()

    def fastest(env: str, path: str, method: str = "GET", status: int = 200) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            answer = requests.request(method, demo.api(env) + path, json={"title": "t"} if method == "POST" else None,
                                      timeout=30)
            assert answer.status_code == status
            times.append(time.perf_counter() - start)
        return min(times)

    # the delay is a sleep of 0.8 s: a lower bound whatever the machine's load; the other paths (and the same path
    # in another environment) answer in a few ms when idle, so their fastest of three stays far below
    assert fastest("staging", "/api/acceptance-tests") >= 0.8
    assert fastest("staging", "/api/stories") < 0.4
    assert fastest("staging", "/api/acceptance-tests", "POST", 201) < 0.4  # GET only
    assert fastest("staging", "/api/acceptance-tests/none", status=404) < 0.4  # that path only
    assert fastest("prod", "/api/acceptance-tests") < 0.4


# ---------------------------------------------------------------------------------------------------------- unit
NEW_FAULTS = ("dlq-not-empty", "alarm-firing", "log-level-wrong", "foreign-token-accepted", "pitr-off",
              "function-missing", "slow-endpoint")


def test_new_faults_are_known_and_described() -> None:
    assert set(NEW_FAULTS) <= set(FAULTS)
    assert parse_faults("prod:" + ",prod:".join(NEW_FAULTS), ENVS)["prod"] == frozenset(NEW_FAULTS)


def test_log_level_follows_the_seed_and_the_fault_flips_it() -> None:
    assert [serverless.log_level(s) for s in ENVS] == ["DEBUG", "INFO", "INFO"]
    assert [serverless.log_level(s, frozenset({"log-level-wrong"})) for s in ENVS] == ["INFO", "DEBUG", "DEBUG"]


def test_foreign_token_fault_trusts_dev_or_else_the_next_environment() -> None:
    class Env:
        def __init__(self, name: str) -> None:
            self.name = self.stage = name
            self.peers: dict[str, Env] = {}

    envs = {n: Env(n) for n in ENVS}
    for e in envs.values():
        e.peers = envs
    assert {n: serverless.foreign_peer(e).name for n, e in envs.items()} == {  # type: ignore[arg-type,union-attr]
        "dev": "staging", "staging": "dev", "prod": "dev"}
    alone = Env("prod")
    alone.peers = {"prod": alone}
    assert serverless.foreign_peer(alone) is None  # type: ignore[arg-type]


def _auth(pool: str, client: str, keys: object, trusted: list[dict[str, str]] | None = None) -> CognitoAuth:
    auth = CognitoAuth({"USER_POOL_ID": pool, "USER_POOL_CLIENT_ID": client, "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                        "TRUSTED_USER_POOLS": json.dumps(trusted or [])})
    for issuer in auth.pools:
        auth._keys[issuer] = keys  # what the pool's JWKS would give
    return auth


def test_token_check_wants_the_pool_the_client_the_key_and_time() -> None:
    key = jwk.RSAKey.generate_key(2048, parameters={"kid": "k1"})
    other = jwk.RSAKey.generate_key(2048, parameters={"kid": "k1"})
    keys = KeySet.import_key_set({"keys": [key.as_dict(private=False)]})
    now = int(time.time())
    iss = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_own"
    claims = {"iss": iss, "aud": "own-client", "token_use": "id", "exp": now + 60, "iat": now, "sub": "u"}

    def sign(c: dict[str, Any], k: Any = key) -> str:
        return jwt.encode({"alg": "RS256", "kid": "k1"}, c, k)

    auth = _auth("us-east-1_own", "own-client", keys)
    assert auth.check(sign(claims)) is not None
    access = {**claims, "token_use": "access", "client_id": "own-client"}
    del access["aud"]
    assert auth.check(sign(access)) is not None
    peer_iss = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_peer"
    refused = {
        "peer pool": {**claims, "iss": peer_iss},
        "other client": {**claims, "aud": "peer-client"},
        "expired": {**claims, "exp": now - 60},
        "refresh": {**claims, "token_use": "refresh"},
        "no expiry": {k: v for k, v in claims.items() if k != "exp"},
    }
    for why, c in refused.items():
        assert auth.check(sign(c)) is None, why
    assert auth.check(sign(claims, other)) is None  # right claims, wrong signing key
    assert auth.check("garbage") is None and auth.check("a.b.c") is None
    # a deploy that also trusts the peer pool (foreign-token-accepted) takes the peer's token
    trusting = _auth("us-east-1_own", "own-client", keys,
                     [{"pool_id": "us-east-1_peer", "client_id": "peer-client", "jwks_url": "http://127.0.0.1:9/x"}])
    assert trusting.check(sign({**claims, "iss": peer_iss, "aud": "peer-client"})) is not None
    assert trusting.check(sign({**claims, "iss": peer_iss})) is None  # the peer pool with our client id: no
