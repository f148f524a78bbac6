"""A protected environment (prod) is read-only unless --allow-writes: the built-in gate reads it and skips its
destructive checks saying how to allow them, and a user's writes through the gate's fixtures are refused.
(Every other route to a write: test_guard_http.py, test_guard_process.py, test_guard_aws.py,
test_guard_locust.py.)"""

from __future__ import annotations

import boto3
import pytest
import requests

from gatehelpers import Gate, RunningDemo

pytestmark = pytest.mark.e2e


def test_unmarked_user_writes_to_prod_are_refused(gate_project: Gate) -> None:
    gate_project.pytester.makepyfile(test_mine="""
        def test_post_story(api):
            api.post("/api/stories", json={"title": "oops"})

        def test_put_item(aws, deploy_env):
            aws.client("dynamodb").put_item(TableName=deploy_env.tables[0], Item={"id": {"S": "oops"}})

        def test_reading_is_fine(api, aws, deploy_env):
            assert api.get("/api/stories").status_code == 200
            aws.client("dynamodb").describe_table(TableName=deploy_env.tables[0])
    """)
    demo = RunningDemo(gate_project, [])
    try:
        res = gate_project.run("--env", "prod", "--no-builtin-suites", "test_mine.py")
        assert res.ret == 1
        failed = res.failed_tests()
        assert "refused POST http://127.0.0.1:" in failed["test_mine.py::test_post_story"]
        post = failed["test_mine.py::test_post_story"]
        assert "environment prod is protected (read-only); pass --allow-writes" in post
        assert "refused AWS dynamodb.PutItem: environment prod is protected" in failed["test_mine.py::test_put_item"]
        assert res.report is not None and res.report["tests"]["passed"] == 1
        assert requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["writes"] == 0
        assert sum(len(v) for v in demo.items("prod").values()) == 0
    finally:
        demo.stop()


def test_full_prod_gate_changes_nothing_in_prod(gate_project: Gate) -> None:
    demo = RunningDemo(gate_project, [])
    try:
        info = demo.state["environments"]["prod"]
        s3 = boto3.client("s3", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")

        def snapshot() -> tuple[dict[str, int], int]:
            objects = s3.list_objects_v2(Bucket="aipm-prod-frontend-hosting").get("KeyCount", 0)
            return {t: len(items) for t, items in demo.items("prod").items()}, objects

        before = snapshot()
        res = gate_project.run("--env", "prod", "-m", "gate")
        assert res.ret == 0, res.output
        assert snapshot() == before
        assert requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["writes"] == 0
    finally:
        demo.stop()


def test_prod_run_writes_nothing_to_prod(gate_project: Gate, running_demo: RunningDemo) -> None:
    before = running_demo.items("prod")
    res = gate_project.run("--env", "prod", "-m", "gate")
    assert res.ret == 0, res.output
    assert res.report is not None
    assert res.report["categories"]["crud"]["tests"]["skipped"] == 2
    after = running_demo.items("prod")
    assert {c: len(v) for c, v in after.items()} == {c: len(v) for c, v in before.items()}
    stats = requests.get(running_demo.api("prod") + "/_demo/stats", timeout=5).json()
    assert stats["writes"] == 0 and stats["requests"] > 0  # read, never written
    # the peers were written to (canaries) and cleaned up again
    assert requests.get(running_demo.api("staging") + "/_demo/stats", timeout=5).json()["writes"] > 0
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}


def test_protected_skip_says_how_to_allow(gate_project: Gate) -> None:
    # with a smoke check beside it: a run whose every check was skipped is a run that checked nothing
    res = gate_project.run("--env", "prod", "-m", "gate and (crud or smoke)", "-rs")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["crud"]["tests"]["skipped"] == 2
    assert "environment prod is protected: destructive check skipped (pass --allow-writes to run it)" in res.stdout


def test_allow_writes_runs_crud_on_prod(gate_project: Gate) -> None:
    res = gate_project.run("--env", "prod", "-m", "gate and crud", "--allow-writes")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["crud"]["tests"]["passed"] == 2
