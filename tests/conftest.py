"""Fixtures for the plugin's own tests, and the e2e marker for every test that needs a live deployment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from gatehelpers import Gate, RunningDemo, serve

#: Fixtures that start pytest subprocesses, servers or the reference deployment. A test using any of them
#: (directly or through another fixture) is end-to-end, so ``pytest tests -m "not e2e"`` stays a fast
#: layer even when someone adds such a test without marking it.
E2E_FIXTURES = frozenset({
    "pytester", "testdir", "gate_project",  # real pytest runs in a fresh project
    "running_demo", "json_server", "rest_server",  # the reference deployment, third-party REST servers
    "webhook", "https_site", "odd_site",  # local HTTP(S) servers a gate run talks to
    "hostile", "prod_server",  # the hostile transport server (answers that trickle, hang or never end)
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e = pytest.mark.e2e
    for item in items:
        if E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())) and item.get_closest_marker("e2e") is None:
            item.add_marker(e2e)


@pytest.fixture
def gate_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A fresh project holding the repository's deploygate.toml (load phases shortened); ``run`` starts
    ``pytest`` in it as a subprocess."""
    return Gate(pytester, monkeypatch)


@pytest.fixture(autouse=True)
def _no_outer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DEPLOYGATE_ENV", "DEPLOYGATE_DEMO_FAULTS", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def running_demo(gate_project: Gate, request: pytest.FixtureRequest) -> Iterator[RunningDemo]:
    marker = request.node.get_closest_marker("demo_faults")
    demo = RunningDemo(gate_project, list(marker.args) if marker else [],
                       {"DEMO_TTL_SWEEP_S": "0.3"})
    yield demo
    demo.stop()


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(gate_project: Gate) -> Iterator[list[dict[str, object]]]:
    received: list[dict[str, object]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server, url = serve(handler)
    gate_project.monkeypatch.setenv("TEST_WEBHOOK_URL", f"{url}/services/T000/B000/XXXXSECRETXXXX")
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + '\n[publish.webhook]\nurl = "${TEST_WEBHOOK_URL}"\non = ["FAIL"]\n'
                    'report_url = "https://ci.example/gate/report.json"\n')
    yield received
    server.shutdown()

