"""CRUD and isolation suites against the reference deployment (and a json-server API nobody here wrote)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from gatehelpers import REPO, Gate, wait_for

DEPLOYGATE = str(Path(sys.executable).with_name("deploygate"))

pytestmark = pytest.mark.e2e




class RunningDemo:
    """``deploygate demo up`` in the project directory, so tests can look inside its tables."""

    def __init__(self, gate: Gate, faults: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.gate = gate
        env = dict(os.environ, **(extra_env or {}))
        env.pop("DEPLOYGATE_DEMO_FAULTS", None)
        args = [DEPLOYGATE, "demo", "up"] + [a for f in faults for a in ("--fault", f)]
        self.proc = subprocess.Popen(args, cwd=gate.path, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        state = gate.path / ".deploygate" / "demo" / "demo.json"
        wait_for(state.exists, what="demo up")
        self.state = json.loads(state.read_text())

    def dynamodb(self, env: str) -> Any:
        info = self.state["environments"][env]
        return boto3.client("dynamodb", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def items(self, env: str) -> dict[str, list[dict[str, Any]]]:
        stage = self.state["environments"][env]["stage"]
        ddb = self.dynamodb(env)
        return {c: ddb.scan(TableName=f"aipm-backend-{stage}-{c}")["Items"] for c in ("stories", "acceptance-tests")}

    def gate_records(self) -> dict[str, int]:
        """Items carrying a gate run marker, per environment, over all tables."""
        return {env: sum(1 for items in self.items(env).values() for i in items if "deploygateRun" in i)
                for env in self.state["environments"]}

    def api(self, env: str) -> str:
        return str(self.state["environments"][env]["api_url"])

    def stop(self) -> None:
        subprocess.run([DEPLOYGATE, "demo", "down"], cwd=self.gate.path, timeout=60, check=False,
                       capture_output=True)
        self.proc.wait(timeout=30)


@pytest.fixture
def running_demo(gate_project: Gate, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    marker = request.node.get_closest_marker("demo_faults")
    demo = RunningDemo(gate_project, list(marker.args) if marker else [],
                       {"DEMO_TTL_SWEEP_S": "0.3"})
    yield demo
    demo.stop()


def test_healthy_staging_and_dev_pass_crud_and_isolation(gate_project: Gate) -> None:
    for env in ("staging", "dev"):
        res = gate_project.run("--env", env, "-m", "gate and (crud or isolation)")
        assert res.ret == 0, res.output
        assert res.report is not None
        cats = res.report["categories"]
        assert cats["crud"]["verdict"] == "PASS" and cats["crud"]["tests"]["passed"] == 2
        assert cats["isolation"]["verdict"] == "PASS"
        assert res.metric("crud.lifecycle_ok", collection="stories")["value"] == 1
        assert res.metric("crud.create_ms", collection="acceptance-tests")["verdict"] == "PASS"
        peers = {"staging": ["dev", "prod"], "dev": ["prod", "staging"]}[env]
        for peer in peers:
            assert res.metric("isolation.leaks_count", check="canary-out", env=env, seen_in=peer)["value"] == 0
        assert res.metric("isolation.leaks_count", check="configuration", env=env)["value"] == 0
        assert res.metric("isolation.leaks_count", check="cors", env=env)["value"] == 0


def test_leak_names_the_record_and_where_it_leaked(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", faults="staging:leak")
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    reason = next(r for n, r in failed.items() if "test_canary_stays_here[prod]" in n)
    assert "leak: canary stories/" in reason and "written in staging is visible in prod" in reason
    assert "by id (GET http://127.0.0.1:" in reason
    assert "in prod's list" in reason
    assert "in prod's table aipm-backend-prod-stories (account 333333333333)" in reason
    assert res.metric("isolation.leaks_count", check="canary-out", env="staging", seen_in="prod")["verdict"] == "FAIL"
    assert not any("[dev]" in n for n in failed)  # dev is not involved


def test_leak_is_caught_reading_prod_only(gate_project: Gate) -> None:
    res = gate_project.run("--env", "prod", "-m", "gate and isolation", faults="staging:leak")
    assert res.ret == 1, res.output
    reason = next(r for n, r in res.failed_tests().items() if "test_peer_canary_stays_there[staging]" in n)
    assert "written in staging is visible in prod" in reason


def test_leak_breaks_crud_datastore_verification(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and crud", faults="staging:leak")
    assert res.ret == 1
    reason = next(r for n, r in res.failed_tests().items() if "test_crud_lifecycle[stories]" in n)
    assert "datastore: created item" in reason and "is not in staging's table aipm-backend-staging-stories" in reason
    assert res.metric("crud.lifecycle_ok", collection="stories")["verdict"] == "FAIL"
    assert res.metric("crud.lifecycle_ok", collection="acceptance-tests")["verdict"] == "PASS"


def test_wrong_config_is_an_isolation_finding(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", faults="staging:wrong-config")
    assert res.ret == 1
    reason = next(r for n, r in res.failed_tests().items() if "test_configuration_is_own" in n)
    assert "config.js apiEndpoint" in reason and "references prod's API endpoint" in reason
    assert "references prod's table aipm-backend-prod-stories" in reason


def test_cors_wildcard_on_prod(gate_project: Gate) -> None:
    res = gate_project.run("--env", "prod", "-m", "gate and isolation", faults="prod:cors-wildcard")
    assert res.ret == 1
    reason = next(r for n, r in res.failed_tests().items() if "test_cors_allows_only_own_origins" in n)
    assert "answers Access-Control-Allow-Origin: * to https://deploygate-foreign-origin.invalid" in reason
    # dev allows * by its own configuration: the same answer there is no finding
    dev = gate_project.run("--env", "dev", "-m", "gate and isolation", faults="dev:cors-wildcard")
    assert dev.ret == 0, dev.output


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


@pytest.mark.demo_faults("staging:slow")
def test_killed_run_leftovers_are_removed_by_cleanup(gate_project: Gate, running_demo: RunningDemo) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate and crud")
    try:
        # mid-CRUD: a record exists (each slow step takes 3.5 s), then the run dies without teardown
        wait_for(lambda: running_demo.gate_records()["staging"] > 0, timeout=180, what="a gate record in staging")
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = running_demo.gate_records()["staging"]
    assert left >= 1
    dry = subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging", "--dry-run"], cwd=gate_project.path,
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert f"staging: {left} leftover gate record(s) found, would remove {left}" in dry.stdout
    assert running_demo.gate_records()["staging"] == left  # dry run touched nothing
    done = subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging"], cwd=gate_project.path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"removed {left}" in done.stdout
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}


@pytest.mark.demo_faults("staging:slow")
def test_sigterm_mid_crud_still_removes_the_records(gate_project: Gate, running_demo: RunningDemo) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate and crud")
    try:
        wait_for(lambda: running_demo.gate_records()["staging"] > 0, timeout=180, what="a gate record in staging")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 2  # interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}
    res = subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging"], cwd=gate_project.path,
                         capture_output=True, text=True, timeout=120)
    assert "staging: 0 leftover gate record(s) found" in res.stdout


class Streamed:
    """A gate run in the background, verbose and unbuffered, its output read line by line as it comes (to
    signal it at a known moment)."""

    def __init__(self, gate: Gate, *args: str) -> None:
        env = dict(os.environ, TMPDIR=str(gate.tmp), PYTHONUNBUFFERED="1")
        env.pop("DEPLOYGATE_DEMO_FAULTS", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *args],
                                     cwd=gate.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, "".join(self.lines)


@pytest.mark.demo_faults("staging:slow")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_create_in_flight_when_interrupted_is_still_removed(gate_project: Gate, running_demo: RunningDemo,
                                                              sig: int) -> None:
    run = Streamed(gate_project, "--env", "staging", "-m", "gate and crud")
    try:
        # the lifecycle starts with its create: the slow fault holds the answer (and the write) for 3.5 s
        wait_for(lambda: run.saw("test_crud_lifecycle[stories]"), timeout=120, what="the CRUD check to start")
        time.sleep(1.0)
        assert running_demo.gate_records()["staging"] == 0  # not written yet: the create is in flight
        run.proc.send_signal(sig)
        code, out = run.finish(timeout=120)
        assert code == 2, out
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}
    stats = requests.get(running_demo.api("staging") + "/_demo/stats", timeout=30).json()
    assert stats["writes"] >= 2  # the create did land (and was deleted): the interrupt did not stop it
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["verdict"] == "INTERRUPTED"
    assert not [n for n in report["notes"] if "could not be removed" in n]


def _leftover(api: str, run_id: str = "dg-20260101T000000-c0ffee") -> str:
    """A record a crashed run left in the reference deployment's stories (created through its API)."""
    body = {"title": f"deploygate probe {run_id}", "deploygateRun": run_id, "deploygateEnv": "staging",
            "deploygateCreatedAt": int(time.time()) - 3600}
    created = wait_for(lambda: (r := requests.post(api + "/api/stories", json=body, timeout=30)).status_code == 201
                       and r, timeout=30, what="a leftover record")
    return str(created.json()["id"])


def _cleanup(gate: Gate, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEPLOYGATE, "cleanup", "--env", "staging", *args], cwd=gate.path, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.demo_faults("staging:errors")
def test_cleanup_uses_the_table_when_the_api_list_fails(gate_project: Gate, running_demo: RunningDemo) -> None:
    api = running_demo.api("staging")
    item_id = _leftover(api)
    # every second /api answer is a 500: after a good one, the next (cleanup's list) fails
    wait_for(lambda: requests.get(api + "/api/acceptance-tests", timeout=30).status_code == 200, timeout=30,
             what="a good answer")
    done = _cleanup(gate_project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "staging stories: the API list failed" in done.stdout and "answered 500" in done.stdout
    assert "searched the table instead" in done.stdout
    assert f"staging stories {item_id} run dg-20260101T000000-c0ffee (found in table)" in done.stdout
    assert "staging: 1 leftover gate record(s) found, removed 1" in done.stdout
    assert running_demo.gate_records()["staging"] == 0


def test_cleanup_uses_the_api_list_when_the_table_scan_fails(gate_project: Gate, running_demo: RunningDemo) -> None:
    item_id = _leftover(running_demo.api("staging"))
    path = gate_project.path / "deploygate.toml"
    text = path.read_text()
    assert 'table = "{service}-{stage}-stories"' in text
    path.write_text(text.replace('table = "{service}-{stage}-stories"', 'table = "{service}-{stage}-gone"'))
    done = _cleanup(gate_project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the scan of staging's table aipm-backend-staging-gone" in done.stdout
    assert "ResourceNotFoundException" in done.stdout and "searched the API list instead" in done.stdout
    assert f"staging stories {item_id} run dg-20260101T000000-c0ffee (found in api)" in done.stdout
    assert "removed 1" in done.stdout
    assert running_demo.gate_records()["staging"] == 0


@pytest.mark.demo_faults("staging:errors")
def test_cleanup_that_can_search_nowhere_fails_naming_both(gate_project: Gate, running_demo: RunningDemo) -> None:
    api = running_demo.api("staging")
    _leftover(api)
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace('table = "{service}-{stage}-stories"', 'table = "{service}-{stage}-gone"'))
    wait_for(lambda: requests.get(api + "/api/acceptance-tests", timeout=30).status_code == 200, timeout=30,
             what="a good answer")
    done = _cleanup(gate_project, "--dry-run")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "staging stories: cannot look for leftovers: the API list failed" in done.stderr
    assert "the scan of staging's table aipm-backend-staging-gone" in done.stderr


def test_a_peer_answering_500_is_could_not_check(gate_project: Gate) -> None:
    # prod answers every second /api request with a 500: the canary lookups there cannot all be answered
    res = gate_project.run("--env", "staging", "-m", "gate and isolation", "-k", "canary_stays_here",
                           faults="prod:errors")
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    reason = next(r for n, r in failed.items() if "test_canary_stays_here[prod]" in n)
    assert "canary-out: could not check: canary stories/" in reason and "looked for in prod" in reason
    assert "answered 500" in reason and "leak" not in reason
    assert res.metric("isolation.unverified_count", check="canary-out", env="staging", seen_in="prod")["value"] == 1
    assert not any("[dev]" in n for n in failed)
    assert res.metric("isolation.leaks_count", check="canary-out", env="staging", seen_in="dev")["value"] == 0


def test_normal_and_failing_runs_leave_zero_records(gate_project: Gate, running_demo: RunningDemo) -> None:
    assert gate_project.run("--env", "staging", "-m", "gate").ret == 0
    assert gate_project.run("--env", "dev", "-m", "gate").ret == 0
    # a failing run: the isolation check fails on purpose (a stricter CORS policy than dev has)
    text = (gate_project.path / "deploygate.toml").read_text().replace(
        '[environments.dev.isolation]\ncors_origins = ["*"]', '[environments.dev.isolation]\ncors_origins = ["https://x"]')
    (gate_project.path / "deploygate.toml").write_text(text)
    assert gate_project.run("--env", "dev", "-m", "gate").ret == 1
    assert running_demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}


def test_demo_expires_ttl_items(gate_project: Gate, running_demo: RunningDemo) -> None:
    api = running_demo.api("dev")
    expired = requests.post(api + "/api/stories", json={"title": "old", "ttl": int(time.time()) - 10}, timeout=5)
    fresh = requests.post(api + "/api/stories", json={"title": "new", "ttl": int(time.time()) + 3600}, timeout=5)
    assert expired.status_code == fresh.status_code == 201
    wait_for(lambda: requests.get(f"{api}/api/stories/{expired.json()['id']}", timeout=5).status_code == 404,
              timeout=45, what="the TTL sweeper")
    assert requests.get(f"{api}/api/stories/{fresh.json()['id']}", timeout=5).status_code == 200


def test_xdist_gives_the_same_verdict_for_crud_and_isolation(gate_project: Gate) -> None:
    serial = gate_project.run("--env", "staging", "-m", "gate and isolation", faults="staging:leak")
    parallel = gate_project.run("--env", "staging", "-m", "gate and isolation", "-n", "2", faults="staging:leak")
    assert serial.ret == parallel.ret == 1
    assert serial.report is not None and parallel.report is not None
    assert set(serial.failed_tests()) == set(parallel.failed_tests())
    healthy = gate_project.run("--env", "staging", "-m", "gate", "-n", "2")
    assert healthy.ret == 0, healthy.output


@pytest.fixture
def json_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The real json-server (npm) on a free loopback port: an API written by nobody here."""
    binary = REPO / "tests" / "jsonserver" / "node_modules" / ".bin" / "json-server"
    assert binary.exists(), "run: npm ci --prefix tests/jsonserver (done by .ci/run)"
    (tmp_path / "db.json").write_text(json.dumps({"posts": [], "comments": []}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port), "db.json"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/posts", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, what="json-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_crud_on_a_json_server_api(gate_project: Gate, json_server: str) -> None:
    (gate_project.path / "deploygate.toml").write_text(f"""
service = "blog"

[environments.local]
base_url = "{json_server}"
smoke = {{ health = [{{ path = "/posts" }}] }}

[[environments.local.crud.collections]]
path = "/posts"
create = {{ title = "gate probe {{run_id}}", author = "deploygate" }}
update = {{ title = "gate probe {{run_id}} v2", author = "deploygate" }}
expect = {{ create = 201, delete = 200 }}

[[environments.local.crud.collections]]
name = "comments"
path = "/comments"
create = {{ body = "probe", postId = 1 }}
update = {{ body = "probe, edited", postId = 1 }}
update_method = "PATCH"
""")
    res = gate_project.run("--env", "local", "-m", "gate and crud")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["crud"]["tests"]["passed"] == 2
    assert requests.get(json_server + "/posts", timeout=5).json() == []  # nothing left behind
