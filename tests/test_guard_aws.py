"""Production stays read-only through boto3 sessions (every write route of the environment's session).

Unit tests first (no server: a refused call never leaves the process, an allowed one fails to connect to a
closed port), then end-to-end runs against the reference deployment (marked e2e). Locust:
test_guard_locust.py.
"""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from gatehelpers import REFUSAL, Gate, RunningDemo, prod_state
from pytest_deploygate.aws import EnvironmentAWS
from pytest_deploygate.config import AwsSpec, Environment, HttpSpec
from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.sections import SmokeSpec


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(protected: bool = True, name: str = "prod") -> Environment:
    endpoint = f"http://127.0.0.1:{_closed_port()}"  # nothing listens: a call that is sent fails to connect
    return Environment(name=name, service="svc", stage=name, base_url=endpoint, frontend_url="", protected=protected,
                       launch=None, aws=AwsSpec(endpoint_url=endpoint, static_credentials=("testing", "testing")),
                       auth=None, tables=("svc-prod-stories",), buckets=("svc-prod-bucket",),
                       http=HttpSpec(connect_timeout_s=0.5, read_timeout_s=0.5, retries=0), smoke=SmokeSpec())


WRITE_ROUTES: dict[str, Any] = {
    "session.client": lambda aws: aws.session.client("s3").put_object(Bucket="svc-prod-bucket", Key="k", Body=b"x"),
    "session.resource Object.put": lambda aws: aws.session.resource("s3").Object("svc-prod-bucket", "k").put(Body=b"x"),
    "session.resource Table.put_item": lambda aws: aws.session.resource("dynamodb").Table("svc-prod-stories").put_item(
        Item={"id": "x"}),
    "session.client explicit endpoint": lambda aws: aws.session.client(
        "dynamodb", endpoint_url=aws.env.aws.endpoint_url).delete_table(TableName="svc-prod-stories"),
    "client()": lambda aws: aws.client("dynamodb").put_item(TableName="svc-prod-stories", Item={"id": {"S": "x"}}),
    "botocore session": lambda aws: aws.session._session.create_client(
        "s3", region_name="us-east-1", endpoint_url=aws.env.aws.endpoint_url).delete_object(Bucket="b", Key="k"),
    "boto3.Session(botocore_session=...)": lambda aws: boto3.Session(botocore_session=aws.session._session).client(
        "dynamodb", endpoint_url=aws.env.aws.endpoint_url).put_item(TableName="t", Item={"id": {"S": "x"}}),
    "presigned PUT url": lambda aws: aws.session.client("s3").generate_presigned_url(
        "put_object", Params={"Bucket": "svc-prod-bucket", "Key": "k"}),
    "presigned POST": lambda aws: aws.session.client("s3").generate_presigned_post("svc-prod-bucket", "k"),
    "upload_file": lambda aws: aws.session.client("s3").upload_fileobj(__import__("io").BytesIO(b"x"),
                                                                        "svc-prod-bucket", "k"),
    "batch_writer": lambda aws: _batch_write(aws),
}


def _batch_write(aws: EnvironmentAWS) -> None:
    with aws.session.resource("dynamodb").Table("svc-prod-stories").batch_writer() as batch:
        batch.put_item(Item={"id": "x"})


@pytest.mark.parametrize("route", sorted(WRITE_ROUTES))
def test_every_write_route_through_the_session_is_refused(route: str) -> None:
    aws = EnvironmentAWS(_env())
    with pytest.raises(WriteRefused) as refused:
        WRITE_ROUTES[route](aws)
    assert str(refused.value).startswith("refused AWS ") and str(refused.value).endswith(REFUSAL)


def test_reads_pass_the_guard_and_reach_the_environment() -> None:
    aws = EnvironmentAWS(_env())
    # not refused: sent to the environment's endpoint (nothing listens there, so it cannot connect)
    for read in (lambda: aws.session.client("s3").list_objects_v2(Bucket="svc-prod-bucket"),
                 lambda: aws.session.resource("dynamodb").Table("svc-prod-stories").scan(),
                 lambda: aws.client("dynamodb").describe_table(TableName="svc-prod-stories")):
        with pytest.raises(EndpointConnectionError, match=aws.env.aws.endpoint_url or "?"):
            read()
    url = aws.session.client("s3").generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert url.startswith(aws.env.aws.endpoint_url or "?")


def test_session_clients_default_to_the_environment_endpoint_and_timeouts() -> None:
    env = _env()
    aws = EnvironmentAWS(env)
    client = aws.session.client("s3")
    assert client.meta.endpoint_url == env.aws.endpoint_url
    assert client.meta.config.connect_timeout == 0.5 and client.meta.config.read_timeout == 0.5
    resource = aws.session.resource("dynamodb")
    assert resource.meta.client.meta.endpoint_url == env.aws.endpoint_url
    # the caller's own settings win
    from botocore.config import Config

    own = aws.session.client("s3", endpoint_url="http://127.0.0.1:9", config=Config(read_timeout=7))
    assert own.meta.endpoint_url == "http://127.0.0.1:9"
    assert own.meta.config.read_timeout == 7 and own.meta.config.connect_timeout == 0.5


@pytest.mark.parametrize(("protected", "allow_writes"), [(False, False), (True, True)])
def test_writable_environments_send_writes(protected: bool, allow_writes: bool) -> None:
    aws = EnvironmentAWS(_env(protected=protected), allow_writes=allow_writes)
    with pytest.raises(EndpointConnectionError):  # sent, not refused
        WRITE_ROUTES["session.resource Object.put"](aws)


# --------------------------------------------------------------------------------------------------
# end to end: the reference deployment, real pytest runs


USER_AWS_TESTS = '''
import requests

KEY = "deploygate-guard-probe.txt"


def test_session_client_put(aws, deploy_env):
    aws.session.client("s3").put_object(Bucket=deploy_env.buckets[0], Key=KEY, Body=b"client")


def test_session_resource_put(aws, deploy_env):
    aws.session.resource("s3").Object(deploy_env.buckets[0], KEY).put(Body=b"resource")


def test_session_table_put(aws, deploy_env):
    aws.session.resource("dynamodb").Table(deploy_env.tables[0]).put_item(Item={"id": "guard-probe", "title": "x"})


def test_presigned_put(aws, deploy_env):
    url = aws.session.client("s3").generate_presigned_url("put_object",
                                                          Params={"Bucket": deploy_env.buckets[0], "Key": KEY})
    requests.put(url, data=b"presigned", timeout=10).raise_for_status()


def test_reads_still_work(aws, deploy_env):
    assert aws.session.client("s3").list_objects_v2(Bucket=deploy_env.buckets[0])["KeyCount"] >= 1
    aws.session.resource("dynamodb").Table(deploy_env.tables[0]).scan()
'''


USER_PEER_TEST = '''
def test_write_prod_from_a_staging_run(aws_for, peers):
    prod = peers["prod"]
    aws_for(prod).session.resource("s3").Object(prod.buckets[0], "deploygate-guard-peer.txt").put(Body=b"peer")
'''


@pytest.mark.e2e
def test_user_tests_cannot_write_to_prod_through_the_aws_session(gate_project: Gate) -> None:
    (gate_project.path / "test_user_aws.py").write_text(USER_AWS_TESTS)
    (gate_project.path / "test_user_peer.py").write_text(USER_PEER_TEST)
    demo = RunningDemo(gate_project, [])
    try:
        before = prod_state(demo)
        res = gate_project.run("--env", "prod", "--no-builtin-suites", "test_user_aws.py", "-rA")
        assert res.ret == 1, res.output
        res.result.assert_outcomes(failed=4, passed=1)
        assert res.failed_tests() == {
            f"test_user_aws.py::{test}": f"refused AWS {call}: {REFUSAL}"
            for test, call in (("test_session_client_put", "s3.PutObject"),
                               ("test_session_resource_put", "s3.PutObject"),
                               ("test_session_table_put", "dynamodb.PutItem"), ("test_presigned_put", "s3.PutObject"))}
        peer = gate_project.run("--env", "staging", "--no-builtin-suites", "test_user_peer.py")
        assert peer.ret == 1, peer.output
        assert peer.failed_tests() == {
            "test_user_peer.py::test_write_prod_from_a_staging_run": f"refused AWS s3.PutObject: {REFUSAL}"}
        assert prod_state(demo) == before  # not one write reached prod

        # The same tests with --allow-writes do write to prod: the guard refused them, nothing else did.
        allowed = gate_project.run("--env", "prod", "--allow-writes", "--no-builtin-suites", "test_user_aws.py")
        assert allowed.ret == 0, allowed.output
        after = prod_state(demo)
        assert "deploygate-guard-probe.txt" in {key for key, _ in after["objects"]}
        assert any(i["id"] == {"S": "guard-probe"} for i in after["items"]["stories"])
    finally:
        demo.stop()
