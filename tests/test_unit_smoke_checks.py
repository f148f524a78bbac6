"""The smoke extensions' rules, pure and fast (issue 12): what a health/endpoint check accepts (method, body,
headers, expect_json, read_only_post, graphql) and its file:line: key errors; what counts as a GraphQL query;
the write guard's only exceptions on a protected environment (a declared read_only_post URL, a declared
GraphQL URL with a query body), tested on the guard itself; JSON values by dotted path."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from gatehelpers import serve
from pytest_deploygate.config import ConfigError, parse_project
from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.http import client_for
from pytest_deploygate.reads import graphql_query_body, writes_in_graphql
from pytest_deploygate.schema import Source, tomllib
from pytest_deploygate.suites.test_smoke import _request, json_problems
from pytest_deploygate.transport import UNSEEN, WriteGuard

PROD = "http://127.0.0.1:9000"
STAGING = "http://127.0.0.1:9001"


def _project(smoke: str, launch: str = ""):  # type: ignore[no-untyped-def]
    text = f"""
[environments.staging]
base_url = "{STAGING}"

[environments.prod]
base_url = "{PROD}"
protected = true
{launch}
[environments.prod.smoke]
{smoke}
"""
    return parse_project(Source(Path("deploygate.toml"), text, tomllib.loads(text)), tomllib.loads(text), {})


def _error(smoke: str) -> str:
    with pytest.raises(ConfigError) as info:
        _project(smoke)
    return str(info.value)


def test_checks_take_method_body_headers_and_expected_json() -> None:
    env = _project('health = [{ path = "/health", method = "POST", body = { deep = true }, read_only_post = true, '
                   'headers = { X-Probe = "{env}" }, expect_json = { status = "ok", "db.status" = "ok" } }]\n'
                   'endpoints = [{ path = "/graphql", '
                   'graphql = { query = "{ stage }", variables = { s = "{stage}" } } }]'
                   ).environment("prod")
    health = env.smoke.health[0]
    assert (health.method, health.body, health.read_only_post, health.id) == ("POST", {"deep": True}, True,
                                                                              "POST /health")
    assert dict(health.expect_json) == {"status": "ok", "db.status": "ok"}
    graphql = env.smoke.endpoints[0]
    assert graphql.method == "POST" and graphql.graphql is not None and graphql.graphql.query == "{ stage }"
    # the load test's default tasks and the protected probe only GET
    assert env.performance.tasks == () and env.probe_path == "/"


@pytest.mark.parametrize(("smoke", "message"), [
    ('health = [{ path = "/h", body = "x" }]', "environments.prod.smoke.health.[0].body: a GET request sends no body"),
    ('health = [{ path = "/h", read_only_post = true }]', "read_only_post = true declares a POST that only reads"),
    ('health = [{ path = "/h", method = "PUT", read_only_post = true }]', "it needs method = \"POST\""),
    ('health = [{ path = "/h", method = "FETCH" }]', "environments.prod.smoke.health.[0].method: expected one of"),
    ('endpoints = [{ path = "/g", graphql = { query = "mutation { add }" } }]',
     "environments.prod.smoke.endpoints.[0].graphql.query: a smoke check only reads, and this query holds 'mutation'"),
    ('endpoints = [{ path = "/g", method = "GET", graphql = { query = "{ a }" } }]', "a GraphQL check POSTs its query"),
    ('endpoints = [{ path = "/g", read_only_post = true, graphql = { query = "{ a }" } }]',
     "read_only_post does not go with graphql: a GraphQL query is a read already"),
    ('endpoints = [{ path = "/g", graphql = { variables = {} } }]', "a GraphQL check needs 'query'"),
    ('health = [{ path = "/h", expect_json = { stage = "{stag}" } }]', "unknown placeholder {stag}"),
])
def test_check_errors_name_file_line_key(smoke: str, message: str) -> None:
    assert message in _error(smoke)


def test_what_counts_as_a_graphql_query() -> None:
    assert writes_in_graphql("{ stage }") is None
    assert writes_in_graphql("query Q { mutationCount _mutation subscriptions }") is None
    assert writes_in_graphql("mutation { add }") == "mutation"
    assert writes_in_graphql("query { a }\nsubscription S { b }") == "subscription"
    assert writes_in_graphql("# a comment about a MUTATION\n{ a }") == "MUTATION"  # refused: never let one by
    assert graphql_query_body(json.dumps({"query": "{ stage }", "variables": {"a": 1}}).encode())
    assert graphql_query_body(json.dumps([{"query": "{ a }"}, {"query": "query B { b }"}]))
    for body in (json.dumps({"query": "mutation { a }"}), json.dumps([{"query": "{ a }"}, {"query": "mutation { b }"}]),
                 json.dumps({"extensions": {"persistedQuery": {"sha256Hash": "abc"}}}), json.dumps([]),
                 json.dumps({"query": ""}), "{ stage }", b"\xff", None, iter([b"{}"])):
        assert not graphql_query_body(body), body


def _guard(smoke: str) -> WriteGuard:
    return WriteGuard.of(_project(smoke).environments.values())


def test_the_guard_refuses_an_undeclared_post_and_allows_a_declared_one() -> None:
    guard = _guard('health = [{ path = "/health", method = "POST" }]')
    with pytest.raises(WriteRefused) as info:
        guard.check("POST", PROD + "/health")
    assert "refused POST http://127.0.0.1:9000/health: environment prod is protected" in str(info.value)
    guard = _guard('health = [{ path = "/health", method = "POST", read_only_post = true }]')
    guard.check("POST", PROD + "/health")
    guard.check("POST", PROD + "/health/?deep=1")  # the same endpoint
    guard.check("POST", PROD + "/health", body=UNSEEN)  # the process-wide guard: the URL is declared
    for method, url in (("PUT", "/health"), ("DELETE", "/health"), ("POST", "/health/deep"), ("POST", "/api/stories")):
        with pytest.raises(WriteRefused):
            guard.check(method, PROD + url)
    guard.check("POST", STAGING + "/anything")  # not protected
    assert WriteGuard.of(_project('health = [{ path = "/health", method = "POST", read_only_post = true }]')
                         .environments.values(), allow_writes=True) == WriteGuard()


def test_the_guard_lets_only_graphql_queries_through_a_declared_graphql_url() -> None:
    guard = _guard('endpoints = [{ path = "/graphql", graphql = { query = "{ stage }" } }]')
    guard.check("POST", PROD + "/graphql", body=json.dumps({"query": "{ stage }"}).encode())
    for body in (json.dumps({"query": "mutation { stage }"}).encode(), b"not json", None, UNSEEN):
        with pytest.raises(WriteRefused):
            guard.check("POST", PROD + "/graphql", body=body)
    with pytest.raises(WriteRefused):  # a query, but not to the declared URL
        guard.check("POST", PROD + "/graphql2", body=json.dumps({"query": "{ stage }"}))


def test_json_values_by_key_dotted_path_or_table() -> None:
    answer = {"status": "ok", "db.status": "literal", "db": {"status": "down", "ms": 3}, "items": [{"id": "a"}],
              "up": True, "n": 1}
    assert json_problems(answer, {"status": "ok", "items.0.id": "a", "db": {"ms": 3}, "n": 1.0}) == []
    assert json_problems(answer, {"db.status": "literal"}) == []  # a key as it is wins over a path
    assert json_problems(answer, {"db": {"status": "ok"}, "items.1.id": "b", "up": 1, "status": "healthy"}) == [
        "db.status = 'down', expected 'ok'", "items.1.id is missing (expected 'b')", "up = True, expected 1",
        "status = 'ok', expected 'healthy'"]
    assert json_problems([1], {"status": "ok"}) == ["status is missing (expected 'ok')"]


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Recorder.seen.append((self.command, self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_a_check_sends_its_method_headers_and_body_on_127_0_0_1() -> None:
    server, url = serve(_Recorder)
    try:
        text = f"""
[environments.staging]
base_url = "{url}"

[[environments.staging.smoke.health]]
path = "/health"
method = "POST"
body = {{ deep = true }}
headers = {{ X-Probe = "deploygate-{{env}}" }}

[[environments.staging.smoke.endpoints]]
path = "/graphql"
graphql = {{ query = "query Q($s: String) {{ stage }}", variables = {{ s = "{{stage}}" }}, operation_name = "Q" }}
"""
        env = parse_project(Source(Path("deploygate.toml"), text, tomllib.loads(text)), tomllib.loads(text),
                            {}).environment("staging")
        api = client_for(env)
        assert _request(api, env.smoke.health[0], env, "health check")().status_code == 200
        assert _request(api, env.smoke.endpoints[0], env, "GraphQL endpoint")().status_code == 200
    finally:
        server.shutdown()
    (m1, p1, h1, b1), (m2, p2, h2, b2) = _Recorder.seen
    assert (m1, p1, h1["X-Probe"], json.loads(b1)) == ("POST", "/health", "deploygate-staging", {"deep": True})
    assert (m2, p2, json.loads(b2)) == ("POST", "/graphql", {"query": "query Q($s: String) { stage }",
                                                              "variables": {"s": "staging"}, "operationName": "Q"})
    assert h2["Content-Type"] == "application/json"
