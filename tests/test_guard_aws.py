"""Production stays read-only through boto3 sessions and user locustfiles, and Locust dies with the gate.

Unit tests first (no server: a refused call never leaves the process, an allowed one fails to connect to a
closed port), then end-to-end runs against the reference deployment (marked e2e).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import EndpointConnectionError
from test_crud_isolation import RunningDemo

from gatehelpers import Gate, running_processes, wait_for
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
# end to end: the reference deployment, real pytest runs, real Locust


def _s3(demo: RunningDemo, env: str) -> Any:
    info = demo.state["environments"][env]
    return boto3.client("s3", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _prod_state(demo: RunningDemo) -> dict[str, Any]:
    """What a write could change in prod: its tables, its bucket, the API's write counter."""
    bucket = "aipm-prod-frontend-hosting"
    return {"items": demo.items("prod"),
            "objects": sorted((o["Key"], o["ETag"]) for o in _s3(demo, "prod").list_objects_v2(Bucket=bucket).get(
                "Contents", [])),
            "api_writes": requests.get(demo.api("prod") + "/_demo/stats", timeout=10).json()["writes"]}


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
        before = _prod_state(demo)
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
        assert _prod_state(demo) == before  # not one write reached prod

        # The same tests with --allow-writes do write to prod: the guard refused them, nothing else did.
        allowed = gate_project.run("--env", "prod", "--allow-writes", "--no-builtin-suites", "test_user_aws.py")
        assert allowed.ret == 0, allowed.output
        after = _prod_state(demo)
        assert "deploygate-guard-probe.txt" in {key for key, _ in after["objects"]}
        assert any(i["id"] == {"S": "guard-probe"} for i in after["items"]["stories"])
    finally:
        demo.stop()


WRITER = {
    "http": '''
import urllib.request

import requests
from locust import HttpUser, constant, task


class Writer(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def create_and_delete(self):
        created = self.client.post("/api/stories", json={"title": "written by load"}, name="create story")
        self.client.delete(f"/api/stories/{created.json()['id']}", name="delete story")

    @task
    def session_send(self):  # around HttpSession.request: its transport
        self.client.send(requests.Request("PUT", self.host + "/api/stories/none", json={}).prepare())

    @task
    def plain_requests(self):  # no Locust client at all
        requests.patch(self.host + "/api/stories/none", json={}, timeout=5)

    @task
    def standard_library(self):
        request = urllib.request.Request(self.host + "/api/stories", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()

    @task(3)
    def read(self):
        self.client.get("/api/stories", name="list stories")

    def on_stop(self):  # at shutdown, after Locust's last CSV refresh
        self.client.post("/api/stories", json={"title": "on stop"}, name="on stop")
''',
    "fast": '''
from geventhttpclient import HTTPClient
from locust import FastHttpUser, constant, task


class Writer(FastHttpUser):
    wait_time = constant(0.05)

    @task(3)
    def create_and_delete(self):
        created = self.client.post("/api/stories", json={"title": "written by load"}, name="create story")
        self.client.delete(f"/api/stories/{created.json()['id']}", name="delete story")

    @task
    def bare_client(self):  # geventhttpclient without Locust's session
        HTTPClient.from_url(self.host).request("PUT", "/api/stories/none", body=b"{}")

    @task(3)
    def read(self):
        self.client.get("/api/stories", name="list stories")
''',
}
BYPASSES = {"http": ["PUT /api/stories/none", "PATCH /api/stories/none", "POST /api/stories"],
            "fast": ["PUT /api/stories/none"]}


def _failures(gate: Gate) -> dict[str, int]:
    """The final failure messages of the last prod run in Locust, with their counts (a report artifact)."""
    report = json.loads((gate.path / ".deploygate" / "report.json").read_text())
    rows = json.loads(Path(report["artifacts"]["locust_failures"]).read_text())
    return {row["error"]: row["occurrences"] for row in rows}


@pytest.mark.e2e
@pytest.mark.parametrize("client", ["http", "fast"])
def test_a_user_locustfile_cannot_write_to_prod_with_allow_load_only(gate_project: Gate, client: str) -> None:
    (gate_project.path / "writer.py").write_text(WRITER[client])
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent("""
        [environments.prod.performance]
        locustfile = "writer.py"
        users = 5
        duration_s = 3
        warmup_s = 0
        min_requests = 1
        abort_on_fail = false
    """))
    demo = RunningDemo(gate_project, [])
    try:
        before = _prod_state(demo)
        res = gate_project.run("--env", "prod", "-m", "gate and performance", "--allow-load")
        assert res.ret == 1, res.output
        reason = res.failed_tests()["test_performance.py::test_performance"]
        assert "requests of the load were writes to protected prod and were refused, none sent (pass " \
               "--allow-writes as well as --allow-load to let the load write)" in reason, reason
        assert f"refused POST create story: {REFUSAL}" in _failures(gate_project), _failures(gate_project)
        for bypass in [*BYPASSES[client], *(["POST on stop"] if client == "http" else [])]:
            assert f"refused {bypass}: {REFUSAL}" in _failures(gate_project), _failures(gate_project)
        posts = res.metric("performance.endpoint.requests_count", endpoint="POST create story")["value"]
        assert posts > 0 and res.metric("performance.endpoint.failures_count",
                                        endpoint="POST create story")["value"] == posts
        assert res.metric("performance.endpoint.failures_count", endpoint="GET list stories")["value"] == 0
        assert res.metric("performance.endpoint.requests_count", endpoint="GET list stories")["value"] > 0
        assert _prod_state(demo) == before  # 0 writes: tables, bucket and the API's write counter

        # --allow-writes as well: the same locustfile writes (the guard was the rule, not a breakage)
        allowed = gate_project.run("--env", "prod", "-m", "gate and performance", "--allow-load", "--allow-writes")
        assert allowed.ret == 0, allowed.output
        assert allowed.metric("performance.endpoint.failures_count", endpoint="POST create story")["value"] == 0
        assert _prod_state(demo)["api_writes"] > 2 * posts // 3
    finally:
        demo.stop()


def _locust_pids(gate: Gate) -> list[int]:
    """Locust processes started for this project (its path is in their arguments)."""
    return [int(line.split(" ", 1)[0]) for line in running_processes(" -m locust ", str(gate.path))]


@pytest.mark.e2e
def test_locust_and_its_workers_die_with_a_killed_gate(gate_project: Gate) -> None:
    """SIGKILL of the gate mid-load (no teardown runs): the Locust master and its --processes workers exit
    within seconds, not when their 120 s are up, and the target stops receiving load."""
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent("""
        [environments.staging.performance]
        users = 4
        duration_s = 120
        warmup_s = 0
        workers = 2
    """))
    demo = RunningDemo(gate_project, [])  # started by the test: the gate's death does not take it along
    gate = gate_project.start("--env", "staging", "-m", "gate and performance")
    try:
        def loading() -> bool:
            return len(_locust_pids(gate_project)) >= 3 and requests.get(
                demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"] > 50

        wait_for(loading, timeout=120, what="a master, two workers and load on staging")
        killed = time.monotonic()
        gate.kill()
        gate.wait(timeout=30)
        log = gate_project.path / ".deploygate" / "performance" / "locust-staging.log"
        try:
            wait_for(lambda: not _locust_pids(gate_project), timeout=20, what="Locust to exit")
        except AssertionError:
            left = running_processes(" -m locust ", str(gate_project.path))
            raise AssertionError(f"Locust outlived the gate: {left}\n{log.read_text()}") from None
        gone_after = time.monotonic() - killed
        print(f"Locust (master and 2 workers) gone {gone_after:.2f} s after SIGKILL of the gate")
        assert gone_after < 10  # seconds, against 120 s of load left
        served = requests.get(demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"]
        time.sleep(1.5)
        assert requests.get(demo.api("staging") + "/_demo/stats", timeout=10).json()["requests"] == served
    finally:
        if gate.poll() is None:
            gate.kill()
        for pid in _locust_pids(gate_project):  # only if the test failed: what this test's gate started
            os.kill(pid, signal.SIGKILL)
        demo.stop()


@pytest.mark.e2e
def test_distributed_workers_get_the_rule_from_the_master(gate_project: Gate) -> None:
    """A remote worker has none of the gate's environment variables: the rule reaches it from the master
    (with the guard file), and its writes are refused too."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (gate_project.path / "writer.py").write_text(WRITER["http"])
    config = gate_project.path / "deploygate.toml"
    config.write_text(config.read_text() + textwrap.dedent(f"""
        [environments.prod.performance]
        locustfile = "writer.py"
        users = 4
        duration_s = 3
        warmup_s = 0
        min_requests = 1
        abort_on_fail = false
        distributed = {{ expect_workers = 1, bind_port = {port} }}
    """))
    demo = RunningDemo(gate_project, [])
    gate = gate_project.start("--env", "prod", "-m", "gate and performance", "--allow-load")
    worker = None
    try:
        before = _prod_state(demo)

        def master_up() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(master_up, timeout=120, what="the locust master")
        own_tmp = gate_project.tmp / "worker"
        own_tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYGATE_")}
        log = gate_project.tmp / "worker.log"
        with log.open("wb") as sink:
            worker = subprocess.Popen([sys.executable, "-m", "locust", "-f", "-", "--worker", "--master-host",
                                       "127.0.0.1", "--master-port", str(port)], cwd=own_tmp,
                                      env=dict(env, TMPDIR=str(own_tmp)), stdout=sink, stderr=subprocess.STDOUT)
        out, _ = gate.communicate(timeout=150)
        assert gate.returncode == 1, out + log.read_text()
        assert "requests of the load were writes to protected prod and were refused, none sent" in out, out
        assert f"refused POST create story: {REFUSAL}" in _failures(gate_project)
        assert _prod_state(demo) == before
        worker.wait(timeout=30)
    finally:
        for p in (gate, worker):
            if p is not None and p.poll() is None:
                p.kill()
        demo.stop()


def test_the_gate_and_the_guard_in_locust_agree_on_their_variables() -> None:
    from pytest_deploygate.failures import READ_METHODS
    from pytest_deploygate.load import GATE_VAR, GUARD, READ_ONLY_VAR

    source = GUARD.read_text()  # read, never imported here: it patches Locust's clients where it loads
    assert f'READ_ONLY_VAR = "{READ_ONLY_VAR}"' in source and f'GATE_VAR = "{GATE_VAR}"' in source
    # Locust loads a copy of the guard without the package: its own list of reads must be the gate's
    reads = ", ".join(f'"{m}"' for m in ("GET", "HEAD", "OPTIONS"))
    assert READ_METHODS == {"GET", "HEAD", "OPTIONS"} and f"READ_METHODS = frozenset({{{reads}}})" in source
    assert "pytest_deploygate.locust_guard" not in sys.modules
