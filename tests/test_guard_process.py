"""Production stays read-only for the clients a user's test builds itself (``requests.post``, its own
``requests.Session``, ``urllib``, ``http.client``): the gate guards its whole process, and its xdist
workers, by destination (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from gatehelpers import REFUSAL, Gate, ProdState, RunningDemo

pytestmark = pytest.mark.e2e

#: a user's tests that write to prod with clients no gate fixture made, and read from it
USER_TESTS = """
    import http.client
    import json
    import os
    import urllib.parse
    import urllib.request

    import boto3
    import requests

    PROD = os.environ["PROD_API"]
    ITEM = os.environ["PROD_ITEM"]

    def test_requests_post():
        requests.post(PROD + "/api/stories", json={"title": "oops"}, timeout=10)

    def test_own_session_delete():
        with requests.Session() as session:
            session.delete(PROD + "/api/stories/" + ITEM, timeout=10)

    def test_urllib_put():
        request = urllib.request.Request(PROD + "/api/stories/" + ITEM, data=json.dumps({"title": "replaced"}).encode(),
                                         headers={"Content-Type": "application/json"}, method="PUT")
        urllib.request.urlopen(request, timeout=10)

    def test_http_client_post():
        url = urllib.parse.urlsplit(PROD)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            conn.request("POST", url.path + "/api/stories", body=json.dumps({"title": "oops"}),
                         headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        finally:
            conn.close()

    def test_frontend_put():
        requests.put(os.environ["PROD_FRONTEND"] + "config.js", data="window.CONFIG = {};", timeout=10)

    def test_reads_still_work():
        assert requests.get(PROD + "/api/stories/" + ITEM, timeout=10).json()["title"] == "prod's own"
        with urllib.request.urlopen(PROD + "/api/stories", timeout=10) as answer:
            assert answer.status == 200
        url = urllib.parse.urlsplit(PROD)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", url.path + "/api/stories")
        assert conn.getresponse().status == 200
        conn.close()
        # botocore reads DynamoDB with POSTs: the AWS endpoint is the boto3 guard's business, not this one's
        ddb = boto3.client("dynamodb", endpoint_url=os.environ["PROD_ENDPOINT"], region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        assert ddb.list_tables()["TableNames"]
"""

WRITES = {"test_requests_post": "POST", "test_own_session_delete": "DELETE", "test_urllib_put": "PUT",
          "test_http_client_post": "POST", "test_frontend_put": "PUT"}


@pytest.fixture
def prod(gate_project: Gate) -> Iterator[RunningDemo]:
    demo = RunningDemo(gate_project, [])
    try:
        created = requests.post(demo.api("prod") + "/api/stories", json={"title": "prod's own"}, timeout=10)
        assert created.status_code in (200, 201), created.text
        info = demo.state["environments"]["prod"]
        gate_project.monkeypatch.setenv("PROD_API", demo.api("prod"))
        gate_project.monkeypatch.setenv("PROD_ITEM", str(created.json()["id"]))
        gate_project.monkeypatch.setenv("PROD_FRONTEND", info["frontend_url"].rsplit("/", 1)[0] + "/")
        gate_project.monkeypatch.setenv("PROD_ENDPOINT", info["endpoint_url"])
        yield demo
    finally:
        demo.stop()


def _refused(failed: dict[str, str], expected: dict[str, str]) -> None:
    for test, method in expected.items():
        reason = failed.get(f"test_mine.py::{test}", "")
        assert f"refused {method} http://127.0.0.1:" in reason and REFUSAL in reason, (test, reason)


def test_clients_a_test_builds_itself_cannot_write_to_prod(gate_project: Gate, prod: RunningDemo) -> None:
    gate_project.pytester.makepyfile(test_mine=USER_TESTS)
    state = ProdState(prod)
    before = state.snapshot()
    res = gate_project.run("--env", "prod", "--no-builtin-suites", "test_mine.py")
    after = state.snapshot()
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    _refused(failed, WRITES)
    assert set(failed) == {f"test_mine.py::{t}" for t in WRITES}, failed
    assert res.report is not None and res.report["tests"]["passed"] == 1
    # a plain failure naming the rule: no traceback through urllib3 or a retry
    assert "MaxRetryError" not in res.output and "Traceback" not in res.output
    assert after == before


def test_a_staging_run_cannot_write_to_prod_and_cleans_up_its_own(gate_project: Gate, prod: RunningDemo) -> None:
    gate_project.monkeypatch.setenv("STAGING_API", prod.api("staging"))
    gate_project.pytester.makepyfile(test_mine=USER_TESTS + """
    def test_staging_writes_are_fine():
        created = requests.post(os.environ["STAGING_API"] + "/api/stories", json={"title": "staging's"}, timeout=10)
        assert created.status_code in (200, 201)
        deleted = requests.delete(os.environ["STAGING_API"] + "/api/stories/" + str(created.json()["id"]), timeout=10)
        assert deleted.status_code in (200, 204)

    def test_gate_records_on_staging(records):
        records.create(records.collection("stories"))  # the ledger deletes it at teardown
    """)
    state = ProdState(prod)
    before = state.snapshot()
    res = gate_project.run("--env", "staging", "--no-builtin-suites", "test_mine.py")
    after = state.snapshot()
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    _refused(failed, WRITES)
    assert set(failed) == {f"test_mine.py::{t}" for t in WRITES}, failed
    assert res.report is not None and res.report["tests"]["passed"] == 3
    assert after == before
    assert prod.gate_records()["staging"] == 0


def test_xdist_workers_are_guarded_too(gate_project: Gate, prod: RunningDemo) -> None:
    gate_project.pytester.makepyfile(test_mine=USER_TESTS)
    state = ProdState(prod)
    before = state.snapshot()
    res = gate_project.run("--env", "prod", "--no-builtin-suites", "-n", "2", "test_mine.py")
    after = state.snapshot()
    assert res.ret == 1, res.output
    _refused(res.failed_tests(), WRITES)
    assert res.report is not None and res.report["tests"]["passed"] == 1
    assert after == before


def test_allow_writes_lets_the_write_through(gate_project: Gate, prod: RunningDemo) -> None:
    gate_project.pytester.makepyfile(test_mine="""
        import os
        import requests

        def test_write_and_undo():
            api = os.environ["PROD_API"] + "/api/stories"
            created = requests.post(api, json={"title": "allowed"}, timeout=10)
            assert created.status_code in (200, 201), created.text
            assert requests.delete(api + "/" + str(created.json()["id"]), timeout=10).status_code in (200, 204)
    """)
    state = ProdState(prod)
    before = state.snapshot()
    res = gate_project.run("--env", "prod", "--no-builtin-suites", "--allow-writes", "test_mine.py")
    after = state.snapshot()
    assert res.ret == 0, res.output
    assert after["writes"] == before["writes"] + 2
    assert after["tables"] == before["tables"] and after["bucket"] == before["bucket"]
