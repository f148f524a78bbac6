"""The process-wide write guard's hook in http.client, against a local http.server: what each client
raises when a write to a protected destination is refused, and that nothing reaches the server."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.guard import ProcessGuard, destination, install_process_guard, remove_process_guard

REFUSED = "environment prod is protected (read-only); pass --allow-writes to let the gate write to it"


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path))  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")

    do_GET = do_HEAD = do_OPTIONS = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@dataclass
class _AWS:
    endpoint_url: str | None = None


@dataclass
class _Env:
    name: str
    base_url: str
    protected: bool
    frontend_url: str | None = None
    aws: _AWS = field(default_factory=_AWS)


@dataclass
class _Project:
    environments: dict[str, Any]


@dataclass
class _Run:
    """The parts of a GateRun the guard reads."""

    project: _Project
    allow_writes: bool = False
    environments: dict[str, Any] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()


class _Config:
    def __init__(self) -> None:
        self.stash = pytest.Stash()


def _guarded(run: _Run) -> Iterator[_Config]:
    config = _Config()
    original = http.client.HTTPConnection.putrequest
    install_process_guard(config, run)  # type: ignore[arg-type]
    try:
        yield config
    finally:
        remove_process_guard(config)  # type: ignore[arg-type]
        assert http.client.HTTPConnection.putrequest is original


@pytest.fixture
def prod_guard(server: Any) -> Iterator[tuple[str, _Run]]:
    url = f"http://127.0.0.1:{server.server_port}"
    run = _Run(_Project({"prod": _Env("prod", url + "/v1", True, frontend_url=url + "/site/index.html"),
                         "staging": _Env("staging", url + "/v1/staging", False)}))
    yield from ((url, run) for _ in _guarded(run))


def test_requests_post_is_refused_unwrapped_and_never_sent(server: Any, prod_guard: tuple[str, _Run]) -> None:
    url, _ = prod_guard
    with pytest.raises(WriteRefused) as refused:
        requests.post(url + "/v1/api/stories", json={"title": "oops"}, timeout=5)
    assert str(refused.value) == f"refused POST {url}/v1/api/stories: {REFUSED}"
    assert server.seen == []


def test_every_client_is_refused_and_reads_pass(server: Any, prod_guard: tuple[str, _Run]) -> None:
    url, _ = prod_guard
    port = server.server_port
    with pytest.raises(WriteRefused, match="refused DELETE"):
        requests.Session().delete(url + "/v1/api/stories/1", timeout=5)
    with pytest.raises(WriteRefused, match=r"refused PUT .*/site/config\.js"):
        urllib.request.urlopen(urllib.request.Request(url + "/site/config.js", data=b"x", method="PUT"), timeout=5)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises(WriteRefused, match="refused PATCH"):
        conn.request("PATCH", "/v1/api/stories/1", body=b"{}")
    conn.close()
    assert server.seen == []
    assert requests.get(url + "/v1/api/stories", timeout=5).text == "ok"
    assert requests.head(url + "/v1", timeout=5).status_code == 200
    assert requests.options(url + "/v1/x", timeout=5).status_code == 200
    with urllib.request.urlopen(url + "/site/index.html", timeout=5) as answer:
        assert answer.read() == b"ok"
    assert [m for m, _ in server.seen] == ["GET", "HEAD", "OPTIONS", "GET"]


def test_a_refusal_is_not_retried(server: Any, prod_guard: tuple[str, _Run],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = prod_guard
    asked: list[str] = []
    check = ProcessGuard.check

    def counted(self: ProcessGuard, method: str, target: str) -> None:
        asked.append(method)
        check(self, method, target)

    monkeypatch.setattr(ProcessGuard, "check", counted)
    session = requests.Session()
    # retries of any method on any error: urllib3 still hands the refusal straight back
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=urllib3_retry()))
    with pytest.raises(WriteRefused, match="refused POST"):
        session.post(url + "/v1/api/stories", data=b"x", timeout=5)
    assert asked == ["POST"]
    assert server.seen == []


def urllib3_retry() -> Any:
    from urllib3.util.retry import Retry

    return Retry(total=5, allowed_methods=None, backoff_factor=0)


def test_other_destinations_stay_writable(server: Any, prod_guard: tuple[str, _Run]) -> None:
    url, _ = prod_guard
    # a writable environment nested under prod's host (longest scope wins), paths outside every scope
    for path in ("/v1/staging/api/stories", "/other", "/v10/api"):
        assert requests.post(url + path, data=b"x", timeout=5).status_code == 200
    assert [p for _, p in server.seen] == ["/v1/staging/api/stories", "/other", "/v10/api"]


def test_addresses_filled_in_later_are_guarded(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server_port}"
    run = _Run(_Project({"prod": _Env("prod", "", True)}))
    for _ in _guarded(run):
        assert requests.post(url + "/api", timeout=5).status_code == 200  # not launched yet: unknown address
        run.environments = {"prod": _Env("prod", url, True)}  # what GateRun.resolve does after the launch
        with pytest.raises(WriteRefused):
            requests.post(url + "/api", timeout=5)
    assert len(server.seen) == 1


def test_aws_endpoints_are_left_to_the_boto3_guard(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server_port}"
    env = _Env("prod", "http://127.0.0.1:1/api", True, frontend_url=url + "/bucket/index.html", aws=_AWS(url))
    for _ in _guarded(_Run(_Project({"prod": env}))):
        assert requests.post(url + "/", data=b"{}", timeout=5).status_code == 200  # e.g. DynamoDB GetItem
        with pytest.raises(WriteRefused, match="refused PUT"):
            requests.put(url + "/bucket/config.js", data=b"x", timeout=5)  # the frontend is still prod's


def test_inactive_without_a_protected_environment_or_with_allow_writes(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server_port}"
    original = http.client.HTTPConnection.putrequest
    for run in (_Run(_Project({"prod": _Env("prod", url, True)}), allow_writes=True),
                _Run(_Project({"staging": _Env("staging", url, False)}))):
        config = _Config()
        install_process_guard(config, run)  # type: ignore[arg-type]
        assert http.client.HTTPConnection.putrequest is original
        assert requests.post(url + "/api", timeout=5).status_code == 200
        remove_process_guard(config)  # type: ignore[arg-type]


def test_nested_runs_uninstall_in_any_order(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server_port}"
    original = http.client.HTTPConnection.putrequest
    outer, inner = _Config(), _Config()
    install_process_guard(outer, _Run(_Project({"prod": _Env("prod", url + "/a", True)})))  # type: ignore[arg-type]
    install_process_guard(inner, _Run(_Project({"prod": _Env("prod", url + "/b", True)})))  # type: ignore[arg-type]
    try:
        remove_process_guard(outer)  # type: ignore[arg-type]
        assert requests.post(url + "/a/x", timeout=5).status_code == 200
        with pytest.raises(WriteRefused):
            requests.post(url + "/b/x", timeout=5)
    finally:
        remove_process_guard(inner)  # type: ignore[arg-type]
    assert http.client.HTTPConnection.putrequest is original


def test_the_destination_of_each_connection_kind() -> None:
    assert destination(http.client.HTTPConnection("Example.com"), "/p?q=1") == "http://Example.com:80/p?q=1"
    assert destination(http.client.HTTPSConnection("h", 8443), "/p") == "https://h:8443/p"
    assert destination(http.client.HTTPConnection("::1", 81), "/") == "http://[::1]:81/"
    proxied = http.client.HTTPConnection("proxy", 3128)
    assert destination(proxied, "http://h:1/p") == "http://h:1/p"
    tunnel = http.client.HTTPSConnection("proxy", 3128)
    tunnel.set_tunnel("h", 8443)
    assert destination(tunnel, "/p") == "https://h:8443/p"
    from urllib3.connection import HTTPSConnection

    assert destination(HTTPSConnection("h"), "/p") == "https://h:443/p"


def test_a_secret_in_the_url_is_redacted(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server_port}"
    run = _Run(_Project({"prod": _Env("prod", url, True)}), secrets=frozenset({"s3cr3t-t0ken-value"}))
    for _ in _guarded(run):
        with pytest.raises(WriteRefused) as refused:
            requests.post(url + "/api?token=s3cr3t-t0ken-value", timeout=5)
    assert "s3cr3t" not in str(refused.value) and "refused POST" in str(refused.value)

