"""The transport under every gate HTTP client against a hostile server: a total deadline, a body cap,
dropped connections named and retried for reads only, the write guard by destination, error answers
scanned for leaks. The client tests run in well under a second each; one gate run is end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hostile import HostileServer

from gatehelpers import Gate
from pytest_deploygate.config import HttpSpec
from pytest_deploygate.failures import RequestFailed, WriteRefused
from pytest_deploygate.http import GateHTTP, leak_watcher
from pytest_deploygate.transport import WriteGuard, size_text

SPEC = HttpSpec(connect_timeout_s=2, read_timeout_s=5, retries=2, total_timeout_s=0.5, max_body_bytes=1_000_000)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer(interval_s=0.05)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prod_server() -> Iterator[HostileServer]:
    """A server playing a protected environment's API."""
    server = HostileServer()
    yield server
    server.stop()


def fails(client: GateHTTP, method: str, path: str, **kwargs: Any) -> tuple[RequestFailed, float]:
    start = time.monotonic()
    with pytest.raises(RequestFailed) as info:
        client.request(method, path, **kwargs)
    return info.value, time.monotonic() - start


# --------------------------------------------------------------------------------------------------
# bounded in time and size


@pytest.mark.parametrize("path", ["/trickle", "/trickle-head"])
def test_a_trickling_answer_ends_at_the_total_deadline(hostile: HostileServer, path: str) -> None:
    # each byte comes well within the 5 s read timeout: only the total deadline can end this
    exc, took = fails(GateHTTP(hostile.url, SPEC, check="t"), "GET", path)
    assert exc.kind == "deadline"
    assert str(exc) == f"t: GET {hostile.url}{path}: no complete answer within 0.5 s"
    assert took < 3


def test_a_head_of_a_large_answer_is_fine(hostile: HostileServer) -> None:
    assert GateHTTP(hostile.url, SPEC).head("/big").headers["Content-Length"] == "100000000"


@pytest.mark.parametrize("path", ["/endless", "/big", "/big-unannounced"])
def test_an_answer_over_the_cap_is_too_large(hostile: HostileServer, path: str) -> None:
    exc, _ = fails(GateHTTP(hostile.url, SPEC), "GET", path)
    assert exc.kind == "too-large"
    assert str(exc) == f"GET {hostile.url}{path}: answer larger than 1 MB"
    assert exc.unreachable is False and isinstance(exc, RequestFailed)


def test_the_cap_holds_for_a_caller_that_streams(hostile: HostileServer) -> None:
    response = GateHTTP(hostile.url, SPEC).get("/endless", stream=True)
    with pytest.raises(requests.RequestException, match="answer larger than 1 MB"):
        for _ in response.iter_content(65536):
            pass


def test_a_normal_answer_reads_as_usual(hostile: HostileServer) -> None:
    client = GateHTTP(hostile.url, SPEC)
    response = client.get("/ok")
    assert response.json() == {"ok": True} and response.text == '{"ok": true}'
    assert client.timings[-1].status == 200 and response.elapsed_ms >= 0  # type: ignore[attr-defined]
    assert client.head("/ok").status_code == 200


@pytest.mark.parametrize("path", ["/endless", "/big", "/trickle", "/close"])
def test_the_pre_flight_reads_headers_only(hostile: HostileServer, tmp_path: Any, path: str) -> None:
    from types import SimpleNamespace

    from pytest_deploygate.config import load_project
    from pytest_deploygate.target import preflight

    (tmp_path / "deploygate.toml").write_text(
        f'[environments.x]\nbase_url = "{hostile.url}{path}"\nhttp = {{ total_timeout_s = 0.5 }}\n')
    env = load_project(tmp_path / "deploygate.toml").environment("x")
    start = time.monotonic()
    # something answers (or accepts the connection): not unreachable, so the checks will say what is wrong
    run = SimpleNamespace(environment=env, secrets=frozenset())  # what preflight reads of a GateRun
    preflight(run)  # type: ignore[arg-type]
    assert time.monotonic() - start < 3


def test_sizes_are_named_in_decimal_units() -> None:
    assert size_text(10_000_000) == "10 MB"
    assert size_text(1_500_000) == "1.5 MB"
    assert size_text(2048) == "2.048 kB"


@pytest.mark.parametrize("setting", ["total_timeout_s = 0", "total_timeout_s = -1", "total_timeout_s = nan",
                                     "total_timeout_s = inf", "total_timeout_s = 1e300", 'total_timeout_s = "30"',
                                     "max_body_bytes = 0", "max_body_bytes = 1.5", "max_body_bytes = -10",
                                     "max_body_bytes = 100000000000000000000"])
def test_bad_bounds_are_config_errors(tmp_path: Any, setting: str) -> None:
    from pytest_deploygate.config import ConfigError, load_project

    path = tmp_path / "deploygate.toml"
    path.write_text(f'[environments.x]\nbase_url = "http://127.0.0.1:9"\nhttp = {{ {setting} }}\n')
    with pytest.raises(ConfigError, match=setting.split(" ")[0]):
        load_project(path)


def test_the_bounds_default_to_30_s_and_10_mb(tmp_path: Any) -> None:
    from pytest_deploygate.config import load_project

    path = tmp_path / "deploygate.toml"
    path.write_text('[environments.x]\nbase_url = "http://127.0.0.1:9"\n'
                    '[environments.y]\nbase_url = "http://127.0.0.1:9"\n'
                    'http = { total_timeout_s = 2.5, max_body_bytes = 1000 }\n')
    project = load_project(path)
    assert (project.environment("x").http.total_timeout_s, project.environment("x").http.max_body_bytes) == (
        30.0, 10_000_000)
    assert (project.environment("y").http.total_timeout_s, project.environment("y").http.max_body_bytes) == (
        2.5, 1000)


# --------------------------------------------------------------------------------------------------
# dropped connections


@pytest.mark.parametrize("path", ["/close", "/reset"])
def test_a_dropped_connection_is_named_and_a_read_retried(hostile: HostileServer, path: str) -> None:
    before = hostile.count("GET", path)
    exc, _ = fails(GateHTTP(hostile.url, SPEC), "GET", path)
    assert exc.kind == "dropped" and not exc.unreachable
    assert str(exc) == f"GET {hostile.url}{path}: connection closed before an answer"
    assert hostile.count("GET", path) - before == 1 + SPEC.retries


@pytest.mark.parametrize("path", ["/close", "/reset"])
def test_a_dropped_write_is_never_retried(hostile: HostileServer, path: str) -> None:
    before = hostile.count("POST", path)
    exc, _ = fails(GateHTTP(hostile.url, SPEC), "POST", path, json={"a": 1})
    assert exc.kind == "dropped"
    assert "connection closed before an answer" in str(exc)
    assert hostile.count("POST", path) - before == 1


def test_a_read_dropped_once_succeeds_on_retry(hostile: HostileServer) -> None:
    client = GateHTTP(hostile.url, SPEC)
    assert client.get("/flaky").json() == {"ok": True}
    with pytest.raises(RequestFailed, match="connection closed before an answer"):
        client.post("/flaky", json={})


def test_a_refused_connection_is_still_cannot_connect() -> None:
    import socket

    # the port stays bound (never listening) while the request is refused: no other process can take it meanwhile
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        exc, _ = fails(GateHTTP(url, SPEC), "GET", "/")
    assert exc.kind == "connect" and exc.unreachable
    assert "cannot connect (host unreachable or connection refused)" in str(exc)


# --------------------------------------------------------------------------------------------------
# the write guard, by destination


def _guard(prod: str) -> WriteGuard:
    return WriteGuard((*WriteGuard.of((), extra={prod: "prod"}).scopes,))


def test_guard_owner_by_origin_and_path() -> None:
    guard = WriteGuard((("https://api.example.com:443", "/", "prod", True),
                        ("https://api.example.com:443", "/staging/", "staging", False),
                        ("http://127.0.0.1:9000", "/prod-bucket/", "prod", True)))
    assert guard.owner("https://API.example.com/items/1") == "prod"
    assert guard.owner("https://api.example.com:443/items") == "prod"
    assert guard.owner("https://api.example.com/staging/items") is None
    assert guard.owner("http://api.example.com/items") is None  # another origin
    assert guard.owner("http://127.0.0.1:9000/prod-bucket/config.js") == "prod"
    assert guard.owner("http://127.0.0.1:9000/dev-bucket/config.js") is None
    guard.check("GET", "https://api.example.com/items")
    guard.check("OPTIONS", "https://api.example.com/items")
    with pytest.raises(WriteRefused, match=r"^c: refused PATCH https://api.example.com/x: environment prod is "
                       r"protected \(read-only\); pass --allow-writes to let the gate write to it$"):
        guard.check("patch", "https://api.example.com/x", "c")


def test_guard_of_environments_and_allow_writes() -> None:
    from types import SimpleNamespace as NS

    prod = NS(name="prod", protected=True, base_url="http://127.0.0.1:1",
              frontend_url="http://127.0.0.1:2/b/index.html", aws=NS(endpoint_url="http://127.0.0.1:2"))
    staging = NS(name="staging", protected=False, base_url="http://127.0.0.1:3", frontend_url="",
                 aws=NS(endpoint_url=None))
    guard = WriteGuard.of([prod, staging])
    assert guard.owner("http://127.0.0.1:1/api") == "prod"
    assert guard.owner("http://127.0.0.1:2/other-bucket/x") == "prod"  # the AWS endpoint is prod's too
    assert guard.owner("http://127.0.0.1:3/api") is None
    assert WriteGuard.of([prod, staging], allow_writes=True).owner("http://127.0.0.1:1/api") is None


ROUTES = {
    "request": lambda c, url: c.post(url, json={}),
    "absolute url from another client": lambda c, url: c.delete(url),
    "send a prepared POST": lambda c, url: c.send(requests.Request("POST", url, json={}).prepare()),
    "send a prepared DELETE": lambda c, url: c.send(requests.Request("DELETE", url).prepare()),
    "Session.send": lambda c, url: requests.Session.send(c, requests.Request("PUT", url).prepare()),
    "the mounted adapter": lambda c, url: c.get_adapter(url).send(requests.Request("POST", url).prepare()),
    "a newly mounted adapter": lambda c, url: (c.mount("http://", requests.adapters.HTTPAdapter()), c.post(url)),
    "an adapter put in adapters": lambda c, url: (c.adapters.__setitem__("http://", requests.adapters.HTTPAdapter()),
                                                  c.patch(url)),
    "an adapter with an empty guard": lambda c, url: (
        c.mount("http://", __import__("pytest_deploygate.transport", fromlist=["x"]).GuardedAdapter(
            WriteGuard(), __import__("pytest_deploygate.transport", fromlist=["x"]).Limits())), c.post(url)),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_no_route_writes_to_a_protected_destination(hostile: HostileServer, prod_server: HostileServer,
                                                    route: str) -> None:
    # a client bound to an unprotected environment, that knows prod's URL from the run's guard
    client = GateHTTP(hostile.url, SPEC, guard=_guard(prod_server.url), check="t")
    target = f"{prod_server.url}/items"
    writes = sum(n for (m, p), n in prod_server.hits.items() if m != "GET")
    with pytest.raises(WriteRefused, match=rf"refused [A-Z]+ {target}: environment prod is protected"):
        ROUTES[route](client, target)
    assert sum(n for (m, p), n in prod_server.hits.items() if m != "GET") == writes
    assert client.get(f"{prod_server.url}/ok").status_code == 200  # reads stay allowed


def test_a_redirect_to_a_protected_destination_is_refused(hostile: HostileServer,
                                                           prod_server: HostileServer) -> None:
    client = GateHTTP(hostile.url, SPEC, guard=_guard(prod_server.url))
    with pytest.raises(WriteRefused, match=r"refused POST .*/items: environment prod is protected"):
        client.post(f"/redirect?to={prod_server.url}/items", json={})
    assert prod_server.count("POST", "/items") == 0
    assert client.get(f"/redirect?to={prod_server.url}/ok").json() == {"ok": True}


def test_a_client_bound_to_a_protected_environment_stays_read_only(prod_server: HostileServer) -> None:
    client = GateHTTP(prod_server.url, SPEC, read_only="prod")
    with pytest.raises(WriteRefused, match="environment prod is protected"):
        client.post("/items", json={})
    assert prod_server.count("POST", "/items") == 0


# --------------------------------------------------------------------------------------------------
# error answers scanned wherever they are met


class _Recorder:
    def __init__(self) -> None:
        self.findings: list[tuple[str, str, str]] = []
        self.metrics: list[tuple[str, float, dict[str, Any]]] = []

    def finding(self, check: str, severity: str, text: str) -> None:
        self.findings.append((check, severity, text))

    def record(self, name: str, value: float, unit: str | None = None, **labels: Any) -> None:
        self.metrics.append((name, value, labels))


def test_an_error_answer_that_leaks_a_trace_is_a_finding(hostile: HostileServer) -> None:
    gate = _Recorder()
    client = GateHTTP(hostile.url, SPEC, on_error_answer=leak_watcher(gate, (), "test_smoke.py::test_x"))
    assert client.get("/trace").status_code == 500
    client.get("/trace")  # met twice: counted once
    assert client.get("/ok").status_code == 200
    assert len(gate.findings) == 1
    check, severity, text = gate.findings[0]
    assert check == "errors" and severity == "MEDIUM"
    assert f"GET {hostile.url}/trace answered 500 (seen in test_smoke.py::test_x)" in text
    assert "Traceback (most recent call last)" in text and "[DG-ERROR-TRACE]" in text
    assert gate.metrics == [("security.errors.leaks_count", 1,
                             {"seen_in": "test_smoke.py::test_x", "url": f"{hostile.url}/trace"})]


# --------------------------------------------------------------------------------------------------
# end to end: a gate run against the hostile server ends, with each failure named


@pytest.mark.e2e
def test_a_gate_run_against_a_hostile_server_ends_and_names_each_failure(gate_project: Gate,
                                                                       hostile: HostileServer) -> None:
    url = hostile.url
    (gate_project.path / "deploygate.toml").write_text(f"""
[environments.hostile]
base_url = "{url}"
http = {{ connect_timeout_s = 2, read_timeout_s = 5, retries = 1, total_timeout_s = 2, max_body_bytes = 1000000 }}
[environments.hostile.smoke]
health = [{{ path = "/ok" }}]
endpoints = [{{ path = "/trickle" }}, {{ path = "/endless" }}, {{ path = "/big" }}, {{ path = "/close" }}]
""")
    start = time.monotonic()
    res = gate_project.run("--env", "hostile", "-m", "gate and smoke", timeout=180)  # a safety net only
    took = time.monotonic() - start
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    expected = {
        "/trickle": f"GET {url}/trickle: no complete answer within 2 s",
        "/endless": f"GET {url}/endless: answer larger than 1 MB",
        "/big": f"GET {url}/big: answer larger than 1 MB",
        "/close": f"GET {url}/close: connection closed before an answer",
    }
    for path, words in expected.items():
        reason = next(r for n, r in failed.items() if f"test_api_endpoint[{path}]" in n)
        assert words in reason, reason
    assert not any("test_health" in n for n in failed)
    assert "Traceback" not in res.output
    assert took < 120, f"the gate took {took:.0f} s"


@pytest.mark.e2e
def test_a_trace_met_by_smoke_or_crud_is_a_security_finding(gate_project: Gate) -> None:
    # every second /api answer is a 500 that carries a traceback
    res = gate_project.run("--env", "staging", "-m", "gate and (smoke or crud)",
                           faults="staging:errors,staging:stack-trace")
    assert res.ret == 1, res.output
    assert res.report is not None
    leaks = [m for m in res.report["metrics"] if m["name"] == "security.errors.leaks_count"]
    assert leaks and all("seen_in" in m["labels"] and "probe" not in m["labels"] for m in leaks), leaks
    assert any(m["value"] >= 1 and m["verdict"] == "FAIL" for m in leaks), leaks
    seen_in = {m["labels"]["seen_in"].split("::")[0].rsplit("/", 1)[-1] for m in leaks}
    assert seen_in & {"test_smoke.py", "test_crud.py"}, seen_in
    texts = [f["text"] for f in res.report["findings"] if f["check"] == "errors"]
    assert any("answered 500 (seen in " in t and "Traceback (most recent call last)" in t
               and "[DG-ERROR-TRACE]" in t for t in texts), texts


@pytest.mark.e2e
def test_a_healthy_run_meets_no_leaking_error_answer(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and (smoke or crud)", faults="staging:stack-trace")
    assert res.ret == 0, res.output
    assert res.report is not None
    assert not [m for m in res.report["metrics"] if m["name"] == "security.errors.leaks_count"]
