"""The process-wide write guard's hook in http.client, against a local http.server: what each client
raises when a write to a protected destination is refused, and that nothing reaches the server."""

from __future__ import annotations

import http.client
import http.server
import importlib
import importlib.machinery
import subprocess
import sys
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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



def _unguarded(putrequest: Any) -> bool:
    return not hasattr(putrequest, "__wrapped__") and not getattr(putrequest, "deploygate_guard", False)


def test_an_http_client_imported_again_mid_run_is_guarded_and_restored(server: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """http.client dropped from sys.modules during a guarded run (pytester's inline_run restoring its snapshot,
    ``monkeypatch.delitem``, an isolation plugin): the module imported next is a fresh one, guarded like the
    first; the end of the run puts back both classes' own putrequest, and the next run guards the one in use."""
    url = f"http://127.0.0.1:{server.server_port}"
    run = _Run(_Project({"prod": _Env("prod", url + "/v1", True)}))
    first = http.client
    original = first.HTTPConnection.putrequest
    config = _Config()
    install_process_guard(config, run)  # type: ignore[arg-type]
    try:
        monkeypatch.setattr(sys.modules["http"], "client", first)  # the import below rebinds it: put back at the end
        monkeypatch.delitem(sys.modules, "http.client")
        fresh = importlib.import_module("http.client")
        assert fresh is not first and fresh.HTTPConnection is not first.HTTPConnection
        conn = fresh.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        with pytest.raises(WriteRefused, match=rf"refused POST {url}/v1/api/stories"):
            conn.request("POST", "/v1/api/stories", body=b"{}")
        conn.close()
        with pytest.raises(WriteRefused):  # the first module's class, still in use by whoever holds it
            first.HTTPConnection("127.0.0.1", server.server_port, timeout=5).request("DELETE", "/v1/x")
    finally:
        remove_process_guard(config)  # type: ignore[arg-type]
    assert first.HTTPConnection.putrequest is original
    assert _unguarded(fresh.HTTPConnection.putrequest)
    assert server.seen == []
    for _ in _guarded_now(run):  # a later run in the same process: the module in sys.modules now is the fresh one
        with pytest.raises(WriteRefused, match="refused PUT"):
            fresh.HTTPConnection("127.0.0.1", server.server_port, timeout=5).request("PUT", "/v1/api/x", body=b"")
    assert _unguarded(fresh.HTTPConnection.putrequest)
    assert server.seen == []
    conn = fresh.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    conn.request("PUT", "/v1/api/x")
    assert conn.getresponse().read() == b"ok"
    conn.close()
    assert server.seen == [("PUT", "/v1/api/x")]


def _guarded_now(run: _Run) -> Iterator[_Config]:
    config = _Config()
    install_process_guard(config, run)  # type: ignore[arg-type]
    try:
        yield config
    finally:
        remove_process_guard(config)  # type: ignore[arg-type]


class _LegacyLoader:
    """A loader with only the old ``load_module`` (what an old import hook's finder may hand back)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def load_module(self, name: str) -> Any:
        return self.loader.load_module(name)


class _LegacyFinder:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "http.client":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        assert spec is not None and spec.loader is not None
        spec.loader = _LegacyLoader(spec.loader)  # type: ignore[assignment]
        return spec


def test_an_http_client_a_legacy_loader_imports_is_guarded_too(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _Run(_Project({"prod": _Env("prod", f"http://127.0.0.1:{server.server_port}/v1", True)}))
    monkeypatch.setattr(sys, "meta_path", [_LegacyFinder(), *sys.meta_path])
    monkeypatch.setattr(sys.modules["http"], "client", http.client)
    monkeypatch.delitem(sys.modules, "http.client")
    for _ in _guarded_now(run):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # load_module() is deprecated
            fresh = importlib.import_module("http.client")
        assert isinstance(fresh.__loader__, importlib.machinery.SourceFileLoader)
        with pytest.raises(WriteRefused, match="refused POST"):
            fresh.HTTPConnection("127.0.0.1", server.server_port, timeout=5).request("POST", "/v1/api/x")
    assert _unguarded(fresh.HTTPConnection.putrequest)
    assert server.seen == []


#: a fresh interpreter, so that http.client is first imported while the run is guarded (the import hook's case)
REIMPORT_SCRIPT = '''
import importlib
import socketserver
import sys
import threading
from types import SimpleNamespace

import pytest

from pytest_deploygate.failures import WriteRefused
from pytest_deploygate.guard import install_process_guard, remove_process_guard

assert "http.client" not in sys.modules, "imported before the guard: this script checks nothing"
seen = []


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                return
            seen.append(line.split()[:2])
            length = 0
            while (header := self.rfile.readline()) not in (b"\\r\\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            self.rfile.read(length)
            self.wfile.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")


httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
httpd.daemon_threads = True
threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
url = f"http://127.0.0.1:{httpd.server_address[1]}"
prod = SimpleNamespace(name="prod", base_url=url + "/v1", protected=True, frontend_url=None,
                       aws=SimpleNamespace(endpoint_url=None))
run = SimpleNamespace(project=SimpleNamespace(environments={"prod": prod}), allow_writes=False, environments={},
                      secrets=frozenset())


def guarded():
    config = SimpleNamespace(stash=pytest.Stash())
    install_process_guard(config, run)
    return config


def post(requests):
    try:
        answer = requests.post(url + "/v1/api/stories", json={"title": "oops"}, timeout=5)
    except WriteRefused:
        return "refused"
    return f"sent {answer.status_code}"


def patched(cls):
    return hasattr(cls.putrequest, "__wrapped__") or getattr(cls.putrequest, "deploygate_guard", False)


config = guarded()
snapshot = dict(sys.modules)  # what pytester's inline_run does: SysModulesSnapshot, restored at its end
import requests
first = sys.modules["http.client"]
print("first import:", post(requests))
sys.modules.clear()
sys.modules.update(snapshot)
requests = importlib.import_module("requests")
second = sys.modules["http.client"]
assert second is not first
print("imported again:", post(requests))
classes = [first.HTTPConnection, second.HTTPConnection]
importlib.reload(second)
assert second.HTTPConnection is not classes[1]
classes.append(second.HTTPConnection)
try:
    second.HTTPConnection("127.0.0.1", httpd.server_address[1], timeout=5).request("POST", "/v1/x", body=b"{}")
    print("reloaded: sent")
except WriteRefused:
    print("reloaded: refused")
remove_process_guard(config)
print("after the run:", [patched(cls) for cls in classes], post(requests))
config = guarded()
print("next run:", post(requests))
remove_process_guard(config)
print("after it:", [patched(cls) for cls in classes], post(requests))
print("seen:", ", ".join(b" ".join(request).decode() for request in seen))
'''


def test_http_client_dropped_from_sys_modules_mid_run_stays_guarded(tmp_path: Path) -> None:
    """The reviewer's case: the run guarded before http.client was imported (the import hook), then a snapshot of
    sys.modules taken before that import put back (pytester's inline_run), then ``requests`` imported again, and
    an ``importlib.reload``: each http.client the process imports while the run is guarded refuses the write; the
    end of the run leaves every one as it was; the next run in the process is guarded too."""
    script = tmp_path / "reimport.py"
    script.write_text(REIMPORT_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "first import: refused",
        "imported again: refused",
        "reloaded: refused",
        "after the run: [False, False, False] sent 200",
        "next run: refused",
        "after it: [False, False, False] sent 200",
        "seen: POST /v1/api/stories, POST /v1/api/stories",
    ], done.stdout + done.stderr
