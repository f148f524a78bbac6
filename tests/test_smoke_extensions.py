"""The smoke extensions of issue 12, end to end against the reference deployment: health and endpoint checks
with a method, body, headers and expected JSON values (dotted paths); GraphQL query checks (200, data, no
errors); a POST on a protected environment refused unless the configuration declares it a read (and a GraphQL
query, never a mutation); a latency threshold for one label beside the name-wide default; the promotion
precondition (``requires``) reading the staging run's report; ``launch = "none"`` for one environment at a
real URL under ``[defaults] launch = "demo"``. Each fault fails its named check for the right reason."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from gatehelpers import REFUSAL, Gate, RunningDemo, serve

pytestmark = pytest.mark.e2e

STAGING_SMOKE = """
[[environments.staging.smoke.health]]
path = "/health"
expect_json = { status = "ok", stage = "{stage}", "checks.dynamodb" = "ok" }

[[environments.staging.smoke.health]]
path = "/health"
method = "POST"
body = { deep = true }
headers = { X-Deploygate-Probe = "{env}" }
expect_json = { status = "ok", checks = { dynamodb = "ok" } }

[[environments.staging.smoke.endpoints]]
path = "/api/stories"

[[environments.staging.smoke.endpoints]]
path = "/api/acceptance-tests"

[[environments.staging.smoke.endpoints]]
path = "/graphql"
name = "graphql-health"
expect_json = { "data.health.status" = "ok", "data.stage" = "{stage}" }

[environments.staging.smoke.endpoints.graphql]
query = "query Health($limit: Int) { stage health { status stage } stories(limit: $limit) { id } }"
variables = { limit = 1 }
operation_name = "Health"
"""

#: the name-wide latency default stays generous; one path gets a tight label threshold, far below the
#: slow-endpoint fault's +800 ms and far above a healthy answer
LABEL_POLICY = '''
"smoke.api.latency_ms{path=/api/acceptance-tests}" = { fail = "> 300" }
'''

SMOKE_CHECKS = ("-m", "smoke", "-k", "test_health or test_api_endpoint")


def _configure(gate: Gate, extra: str) -> None:
    path = gate.path / "deploygate.toml"
    path.write_text(path.read_text() + extra)


def _policy(gate: Gate) -> None:
    path = gate.generous_policy()
    text = path.read_text().replace("[metrics]\n", "[metrics]\n" + LABEL_POLICY.strip() + "\n", 1)
    path.write_text(text)


def test_healthy_staging_passes_method_body_json_graphql_and_label_thresholds(gate_project: Gate) -> None:
    _configure(gate_project, STAGING_SMOKE)
    _policy(gate_project)
    res = gate_project.run("--env", "staging", *SMOKE_CHECKS)
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["verdict"] == "PASS"
    assert res.report["categories"]["smoke"]["tests"] == {"passed": 5, "failed": 0, "skipped": 0}
    # a non-GET check is labelled with its method; the GraphQL check by its name
    assert res.metric("smoke.health.latency_ms", path="/health", method="POST")["verdict"] == "PASS"
    assert res.metric("smoke.api.latency_ms", path="graphql-health", method="POST")["verdict"] == "PASS"
    tight = res.metric("smoke.api.latency_ms", path="/api/acceptance-tests")
    assert tight["verdict"] == "PASS" and tight["limit"] == "> 300 ms"
    assert res.metric("smoke.api.latency_ms", path="/api/stories")["limit"] == "> 60000 ms"
    notes = " ".join(res.report["notes"])
    assert "latency_ms{path=/api/acceptance-tests}" not in notes  # the label threshold judged its metric


def test_each_fault_fails_its_named_smoke_check(gate_project: Gate) -> None:
    """health-degraded (200, a body that says otherwise), graphql-errors (200 with errors) and slow-endpoint
    (one path +800 ms) together on staging: exactly their checks fail, each for its reason."""
    _configure(gate_project, STAGING_SMOKE)
    _policy(gate_project)
    res = gate_project.run("--env", "staging", *SMOKE_CHECKS,
                           faults="staging:health-degraded,staging:graphql-errors,staging:slow-endpoint")
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    assert set(failed) == {"test_smoke.py::test_health[/health]", "test_smoke.py::test_health[POST /health]",
                           "test_smoke.py::test_api_endpoint[graphql-health]"}, failed
    get = failed["test_smoke.py::test_health[/health]"]
    assert get.startswith("health check /health: the answer differs: ")
    assert "status = 'degraded', expected 'ok'" in get and "checks.dynamodb = 'timeout', expected 'ok'" in get
    assert "checks.dynamodb = 'timeout', expected 'ok'" in failed["test_smoke.py::test_health[POST /health]"]
    assert failed["test_smoke.py::test_api_endpoint[graphql-health]"] == (
        "GraphQL endpoint graphql-health: the GraphQL answer carries errors: health resolver failed "
        "(fault: graphql-errors)")
    # the slow path breaches its label threshold; the name-wide default (generous) passes the others
    slow = res.metric("smoke.api.latency_ms", path="/api/acceptance-tests")
    assert slow["verdict"] == "FAIL" and slow["limit"] == "> 300 ms" and slow["value"] > 700
    assert res.metric("smoke.api.latency_ms", path="/api/stories")["verdict"] == "PASS"
    assert "FAIL smoke.api.latency_ms{path=/api/acceptance-tests}" in res.stdout
    assert "Traceback" not in res.output


PROD_SMOKE = """
[environments.prod.smoke]
health = [{ path = "/health", method = "POST", body = { deep = true }, expect_json = { status = "ok" }READ }]

[[environments.prod.smoke.endpoints]]
path = "/graphql"
name = "graphql-stage"
graphql = { query = "{ stage }" }
expect_json = { "data.stage" = "prod" }
"""

USER_TESTS = """
import requests

def test_graphql_query_through_the_gate_client(api):
    assert api.post("/graphql", json={"query": "{ stage }"}).json() == {"data": {"stage": "prod"}}

def test_graphql_mutation_is_refused(api):
    api.post("/graphql", json={"query": "mutation { stage }"})

def test_graphql_batch_with_a_mutation_is_refused(api):
    api.post("/graphql", json=[{"query": "{ stage }"}, {"query": "mutation M { stage }"}])

def test_graphql_from_a_client_that_hides_the_body_is_refused(deploy_env):
    requests.post(deploy_env.base_url + "/graphql", json={"query": "{ stage }"}, timeout=10)

def test_declared_post_health_from_any_client(deploy_env):
    assert requests.post(deploy_env.base_url + "/health", timeout=10).status_code == 200

def test_other_writes_stay_refused(api):
    api.post("/api/stories", json={"title": "oops"})
"""


def test_protected_prod_refuses_a_post_unless_declared_a_read(gate_project: Gate) -> None:
    demo = RunningDemo(gate_project, [])
    try:
        text = (gate_project.path / "deploygate.toml").read_text()
        # undeclared: the POST health check is refused before it is sent, saying how to declare it
        (gate_project.path / "deploygate.toml").write_text(text + PROD_SMOKE.replace("READ", ""))
        res = gate_project.run("--env", "prod", *SMOKE_CHECKS)
        assert res.ret == 1, res.output
        failed = res.failed_tests()
        assert list(failed) == ["test_smoke.py::test_health[POST /health]"], failed
        reason = failed["test_smoke.py::test_health[POST /health]"]
        assert reason.startswith("health check POST /health: ") and "refused POST http://127.0.0.1:" in reason
        assert REFUSAL in reason and "declare read_only_post = true on the check" in reason
        # the GraphQL query check is a read: it passed on prod
        assert res.metric("smoke.api.latency_ms", path="graphql-stage", method="POST")["verdict"] == "PASS"

        # declared: the check passes; a user's own requests keep the rule but for that URL and queries
        (gate_project.path / "deploygate.toml").write_text(text + PROD_SMOKE.replace("READ", ", read_only_post = true"))
        res = gate_project.run("--env", "prod", *SMOKE_CHECKS)
        assert res.ret == 0, res.output
        assert res.metric("smoke.health.latency_ms", path="/health", method="POST")["verdict"] == "PASS"
        gate_project.pytester.makepyfile(test_mine=USER_TESTS)
        res = gate_project.run("--env", "prod", "--no-builtin-suites", "test_mine.py")
        failed = res.failed_tests()
        assert set(failed) == {"test_mine.py::test_graphql_mutation_is_refused",
                               "test_mine.py::test_graphql_batch_with_a_mutation_is_refused",
                               "test_mine.py::test_graphql_from_a_client_that_hides_the_body_is_refused",
                               "test_mine.py::test_other_writes_stay_refused"}, res.output
        for nodeid, reason in failed.items():
            assert "refused POST http://127.0.0.1:" in reason and REFUSAL in reason, (nodeid, reason)
        assert res.report is not None and res.report["tests"]["passed"] == 2
        assert requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["writes"] == 0
        assert sum(len(v) for v in demo.items("prod").values()) == 0
    finally:
        demo.stop()


PROMOTION = """
[environments.prod.requires]
environment = "staging"
max_age = "24h"
"""


def test_prod_requires_a_recent_passing_staging_report(gate_project: Gate) -> None:
    _configure(gate_project, PROMOTION)
    gate_project.generous_policy()
    staging_report = gate_project.path / ".deploygate" / "staging-report.json"
    demo = RunningDemo(gate_project, [])
    try:
        # no staging report yet: could not check, naming the path and how to produce it
        res = gate_project.run("--env", "prod", "-k", "test_promotion")
        assert res.ret == 1, res.output
        reason = res.failed_tests()["test_smoke.py::test_promotion[staging]"]
        assert reason.startswith("promotion precondition: could not check: no gate report of staging at "
                                 f"{staging_report} (run staging's gate with --gate-report {staging_report}")

        # staging's gate passes, writing its report where prod looks
        res = gate_project.run("--env", "staging", "-m", "smoke", "-k", "test_health",
                               "--gate-report", str(staging_report))
        assert res.ret == 0, res.output
        res = gate_project.run("--env", "prod", "-k", "test_promotion")
        assert res.ret == 0, res.output
        assert res.report is not None and res.report["verdict"] == "PASS"
        assert any("staging passed" in note and "max_age 24h" in note for note in res.report["notes"]), \
            res.report["notes"]

        # the same passing report, two days old: too old
        data = json.loads(staging_report.read_text())
        data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))
        staging_report.write_text(json.dumps(data))
        res = gate_project.run("--env", "prod", "-k", "test_promotion")
        assert res.ret == 1
        reason = res.failed_tests()["test_smoke.py::test_promotion[staging]"]
        assert "staging's latest passing gate is 2d old" in reason and "older than max_age 24h" in reason

        # a staging gate that failed blocks the promotion whatever its age
        data.update(verdict="FAIL", blocks_promotion=True, finished_at=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        staging_report.write_text(json.dumps(data))
        res = gate_project.run("--env", "prod", "-k", "test_promotion")
        assert res.ret == 1
        assert "staging's latest gate did not pass: verdict FAIL" in \
            res.failed_tests()["test_smoke.py::test_promotion[staging]"]

        # an environment without requires has no promotion check at all (deselected, not skipped)
        res = gate_project.run("--env", "staging", "-m", "smoke", "-k", "test_health or test_promotion")
        assert res.ret == 0 and res.report is not None
        assert res.report["categories"]["smoke"]["tests"]["skipped"] == 0
    finally:
        demo.stop()


class _RealAPI(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        _RealAPI.seen.append(self.path)
        body = json.dumps({"status": "healthy", "db": {"status": "ok"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_launch_none_gates_one_environment_at_its_own_url(gate_project: Gate) -> None:
    server, url = serve(_RealAPI)
    try:
        # the other environment is the reference deployment; this one is a deployment at its own URL
        (gate_project.path / "deploygate.toml").write_text(f"""
service = "aipm-backend"

[defaults]
launch = "demo"

[defaults.smoke]
health = [{{ path = "/health" }}]

[environments.dev]
stage = "dev"

[environments.real]
launch = "none"
base_url = "{url}"

[environments.real.smoke]
health = [{{ path = "/health", expect_json = {{ status = "healthy", "db.status" = "ok" }} }}]
""")
        res = gate_project.run("--env", "real", "-m", "smoke", "-k", "test_health")
        assert res.ret == 0, res.output
        assert res.report is not None and res.report["environment"]["base_url"] == url
        assert f"deploygate target: api {url}" in res.stdout
        assert "/health" in _RealAPI.seen
        assert gate_project.leftovers() == []
        # "none" is the only other value
        (gate_project.path / "deploygate.toml").write_text(
            (gate_project.path / "deploygate.toml").read_text().replace('launch = "none"', 'launch = "never"'))
        res = gate_project.run("--env", "real", "-m", "smoke")
        assert res.ret == 4
        assert "environments.real.launch: expected one of" in res.stderr and "'never'" in res.stderr
    finally:
        server.shutdown()
