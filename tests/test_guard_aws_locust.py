"""Production stays read-only through boto3 sessions and user locustfiles, and Locust dies with the gate.

Unit tests first (no server: a refused call never leaves the process, an allowed one fails to connect to a
closed port), then end-to-end runs against the reference deployment (marked e2e).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from pytest_deploygate.aws import EnvironmentAWS
from pytest_deploygate.config import AwsSpec, Environment, HttpSpec
from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.specs import SmokeSpec


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


REFUSAL = "environment prod is protected (read-only); pass --allow-writes to let the gate write to it"

#: every way a test can reach a write through the environment's session
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
