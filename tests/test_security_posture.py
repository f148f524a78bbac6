"""The security suite's HTTP posture checks against a small third-party-like server written here: the
API and its frontend on one origin, each route answering (status, headers, body), or None to drop the
connection without an answer. Headers, error leaks, framework banners, the protected endpoint and its
credential, CORS of a same-origin frontend, the allowlist and frontend secrets; no answer is "could not
check", never open."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gatehelpers import Gate

pytestmark = pytest.mark.e2e


Answer = tuple[int, dict[str, str], str] | None
Route = Callable[[BaseHTTPRequestHandler], Answer]
SECURE = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
TOKEN = "odd-admin-token-4711"


def _plain(status: int, body: str = "{}", **headers: str) -> Route:
    return lambda _h: (status, {**SECURE, **{k.replace("_", "-"): v for k, v in headers.items()}}, body)


def _dropped(_h: BaseHTTPRequestHandler) -> Answer:
    return None


def _admin(accepts_token: bool) -> Route:
    def route(h: BaseHTTPRequestHandler) -> Answer:
        supplied = h.headers.get("Authorization")
        if not supplied:
            return 401, SECURE, '{"message": "authentication required"}'
        if accepts_token and supplied == f"Bearer {TOKEN}":
            return 200, SECURE, '{"exported": 3}'
        return 403, SECURE, '{"message": "forbidden"}'

    return route


HEALTHY: dict[str, Route] = {
    "/api": _plain(200, '{"items": []}'),
    "/index.html": lambda _h: (200, {"Content-Type": "text/html"}, "<html><body>odd</body></html>"),
    "/admin": _admin(True),
    "/boom": _plain(400, '{"message": "bad request"}'),
}


def _odd_handler(routes: dict[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answer = routes.get(self.path.split("?", 1)[0], _plain(404))(self)
            if answer is None:  # accepted, read, then dropped: a restart or a load balancer reset
                self.close_connection = True
                self.connection.shutdown(2)
                return
            status, headers, body = answer
            payload = body.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def version_string(self) -> str:
            return "odd"

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up on a dropped answer is the point of the test, not an error


def _serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture
def odd_site(gate_project: Gate, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``odd_site(routes, security="...")``: serve ``routes`` (over the healthy ones) on 127.0.0.1 and
    point a one-environment project ("odd", with auth from $ODD_TOKEN) at it."""
    servers: list[ThreadingHTTPServer] = []
    monkeypatch.setenv("ODD_TOKEN", TOKEN)

    def start(routes: dict[str, Route] | None = None, security: str = "", isolation: str = "", smoke: str = "",
              frontend_secrets: bool = False) -> None:
        server = _QuietServer(("127.0.0.1", 0), _odd_handler({**HEALTHY, **(routes or {})}))
        server.daemon_threads = True
        servers.append(server)
        _serve(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        (gate_project.path / "deploygate.toml").write_text(f"""
[environments.odd]
base_url = "{url}"
frontend_url = "{url}/index.html"
auth = {{ value = "Bearer ${{ODD_TOKEN}}" }}
http = {{ read_timeout_s = 20, retries = 1 }}

[environments.odd.smoke]
health = [{{ path = "/api" }}]
{smoke}

[environments.odd.security]
protected_endpoints = [{{ path = "/admin" }}]
error_probes = [{{ path = "/boom" }}]
frontend_secrets = {str(frontend_secrets).lower()}
{security}

[environments.odd.isolation]
{isolation}
""")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_healthy_odd_server_passes_its_posture_checks(gate_project: Gate, odd_site: Callable[..., None]) -> None:
    odd_site()
    res = gate_project.run("--env", "odd", "-m", "gate and (security or isolation)", "-k", "not canary and not peer")
    assert res.ret == 0, res.output
    assert res.metric("security.auth.open_endpoints_count", endpoint="GET /admin")["value"] == 0
    assert res.metric("security.auth.credential_refused_count", endpoint="GET /admin")["value"] == 0
    assert res.metric("security.errors.leaks_count", probe="GET /boom")["value"] == 0
    assert TOKEN not in res.output


@pytest.mark.parametrize("broken", [_plain(500, '{"message": "internal error"}'), _dropped], ids=["500", "dropped"])
def test_no_answer_is_could_not_check_never_open(gate_project: Gate, odd_site: Callable[..., None],
                                                  broken: Route) -> None:
    odd_site({"/api": broken, "/admin": broken})
    res = gate_project.run("--env", "odd", "-m", "gate and security")
    assert res.ret == 1, res.output
    assert res.report is not None
    for test, check in (("test_security_headers", "security headers"), ("test_cors_refuses_foreign", "CORS"),
                        ("test_protected_endpoint_refuses_anonymous", "protected endpoint"),
                        ("test_protected_endpoint_accepts_the_credential",
                         "protected endpoint with the configured credential")):
        reason = res.reason(test)
        assert f"{check}: could not check: " in reason, (test, reason)
        assert res.metric("security.unverified_count", check=check)["value"] == 1
    assert "/admin" in res.reason("test_protected_endpoint_refuses_anonymous")
    for word in ("is open", "open:", "refuses the configured credential", "is missing", "allows foreign"):
        assert word not in res.stdout, word
    recorded = {m["name"] for m in res.report["metrics"]}
    assert not recorded & {"security.auth.open_endpoints_count", "security.headers.missing_count",
                           "security.cors.findings_count", "security.auth.credential_refused_count"}
    assert "Traceback" not in res.stderr


def test_protected_endpoint_refusing_the_real_credential_fails(gate_project: Gate,
                                                                odd_site: Callable[..., None]) -> None:
    odd_site({"/admin": _admin(False)})
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "protected_endpoint")
    assert res.ret == 1, res.output
    assert "test_protected_endpoint_refuses_anonymous" not in " ".join(res.failed_tests())  # still refuses them
    reason = res.reason("test_protected_endpoint_accepts_the_credential")
    assert "refuses the configured credential: it answered 403 with odd's auth (Authorization)" in reason, reason
    assert res.metric("security.auth.credential_refused_count", endpoint="GET /admin")["verdict"] == "FAIL"
    assert TOKEN not in res.output


def test_error_probe_that_provokes_no_error_says_so(gate_project: Gate, odd_site: Callable[..., None]) -> None:
    odd_site({"/boom": _plain(200, '{"ok": true}')})
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "errors_leak")
    assert res.ret == 1, res.output
    reason = res.reason("test_errors_leak_nothing")
    assert "error probe: could not check: GET http://127.0.0.1:" in reason
    assert "/boom answered 200, not an error" in reason
    assert res.metric("security.unverified_count", check="error probe", probe="GET /boom")["value"] == 1
    assert not any(m["name"] == "security.errors.leaks_count" for m in res.report["metrics"]) if res.report else False


def test_framework_banner_is_named_as_such(gate_project: Gate, odd_site: Callable[..., None]) -> None:
    odd_site({"/boom": _plain(500, '{"message": "internal error"}', X_Powered_By="Express")})
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "errors_leak")
    assert res.ret == 1, res.output
    reason = res.reason("test_errors_leak_nothing")
    assert "X-Powered-By: 'Express' names the framework [DG-VERSION-BANNER-X-Powered-By]" in reason
    assert "names a version" not in reason
    assert res.metric("security.errors.leaks_count", probe="GET /boom")["verdict"] == "FAIL"


@pytest.mark.parametrize(("allow_origin", "fails"), [(None, ""), ("*", "DG-CORS-WILDCARD")], ids=["none", "wildcard"])
def test_same_origin_frontend_needs_no_cors_header(gate_project: Gate, odd_site: Callable[..., None],
                                                   allow_origin: str | None, fails: str) -> None:
    """The frontend is served from the API's origin and the API sends no CORS headers at all: correct
    with the default cors_origins; the same server answering ``*`` to everyone is still caught."""
    headers = {"Access-Control-Allow-Origin": allow_origin} if allow_origin else {}
    odd_site({"/api": lambda _h: (200, {**SECURE, **headers}, "[]")})
    res = gate_project.run("--env", "odd", "-m", "gate and (security or isolation)", "-k", "cors")
    assert res.metric("security.cors.findings_count")["value"] == 0  # no credentials: not security's finding
    if not fails:
        assert res.ret == 0, res.output
        assert res.metric("isolation.leaks_count", check="cors")["value"] == 0
    else:
        assert res.ret == 1
        assert list(res.failed_tests()) == [n for n in res.failed_tests() if "test_cors_allows_only_own_origins" in n]
        assert fails in res.reason("test_cors_allows_only_own_origins")


def _days(n: int) -> str:
    return (datetime.date.today() + datetime.timedelta(days=n)).isoformat()


@pytest.mark.parametrize(("expires", "passes"), [(_days(30), True), (_days(-1), False)], ids=["valid", "expired"])
def test_allowlisted_posture_finding(gate_project: Gate, odd_site: Callable[..., None], expires: str,
                                     passes: bool) -> None:
    odd_site({"/api": lambda _h: (200, {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"},
                                  "[]")},
             security=f'allowlist = [{{ id = "DG-HEADER-X-Frame-Options", reason = "framed by the partner portal", '
                      f'expires = {expires} }}]')
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "headers")
    assert res.report is not None
    texts = {f["text"]: f["severity"] for f in res.report["findings"]}
    if passes:
        assert res.ret == 0, res.output
        assert res.metric("security.headers.missing_count")["value"] == 0
        assert texts == {"X-Frame-Options is missing [DG-HEADER-X-Frame-Options] "
                         f"(allowlisted until {expires}: framed by the partner portal)": "INFO"}
    else:
        assert res.ret == 1
        assert res.metric("security.headers.missing_count")["value"] == 1
        assert texts == {"X-Frame-Options is missing [DG-HEADER-X-Frame-Options] "
                         f"(allowlist entry DG-HEADER-X-Frame-Options expired on {expires}: counts again)": "MEDIUM"}


SECRET_CONFIG = "window.config = { stage: 'odd', aws_secret_access_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };"


@pytest.mark.parametrize(("config_js", "words"), [
    (_plain(500, "oops"), "frontend secrets: could not check: GET http://127.0.0.1:"),
    (lambda _h: (200, {"Content-Type": "application/javascript"}, SECRET_CONFIG),
     "AWS secret access key wJal…EY in http://127.0.0.1:"),
], ids=["unreadable", "secret"])
def test_frontend_secrets_says_what_it_could_not_read(gate_project: Gate, odd_site: Callable[..., None],
                                                      config_js: Route, words: str) -> None:
    page = '<html><script src="config.js"></script><script src="app.js"></script></html>'
    odd_site({"/config.js": config_js, "/app.js": _dropped,
              "/index.html": lambda _h: (200, {"Content-Type": "text/html"}, page)},
             smoke='frontend = { config_js = "config.js" }', frontend_secrets=True)
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "frontend")
    assert res.ret == 1, res.output
    reason = res.reason("test_frontend_has_no_secrets")
    assert words in reason, reason
    assert "/app.js" in reason  # the dropped script is named as not read, never as clean
    if "could not check" in words:
        assert "/config.js answered 500 (asked twice)" in reason
        assert res.metric("security.unverified_count", check="frontend secrets")["value"] == 1
        assert not any(m["name"] == "security.frontend.secrets_count" for m in res.report["metrics"]) \
            if res.report else False
    else:
        assert "[DG-SECRET-AWS-SECRET-KEY]" in reason and "could not read: " in reason
        assert res.metric("security.frontend.secrets_count")["verdict"] == "FAIL"
