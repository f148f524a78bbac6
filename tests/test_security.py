"""Security suite against the reference deployment (and a local HTTPS server with certificates made here)."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# Imported here, not inside a test: pytester restores sys.modules after every test, and a second
# import of cryptography's classes breaks its isinstance checks.
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gatehelpers import Gate

pytestmark = pytest.mark.e2e


def test_healthy_staging_passes_the_security_gate(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and security")
    assert res.ret == 0, res.output
    assert res.report is not None and res.report["categories"]["security"]["verdict"] == "PASS"
    assert res.metric("security.bandit.high_count")["value"] == 0
    audit = res.metric("security.audit.vulnerabilities_count")
    assert audit["value"] == 0 and audit["verdict"] == "PASS"
    assert res.metric("security.audit.unaudited_count")["value"] == 0  # audited for real, not skipped
    assert "safety: not configured" in " ".join(res.report["notes"])
    assert not any(m["name"].startswith("security.safety") for m in res.report["metrics"])


FAULTS = [
    # fault, env, failing metric, words naming the finding (in the terminal and the report)
    ("insecure-code", "staging", "security.bandit.high_count", "HIGH B602 CWE-78"),
    ("vulnerable-deps", "staging", "security.audit.vulnerabilities_count",
     "requests 2.19.0: PYSEC-2018-28 (CVE-2018-18074"),
    ("no-security-headers", "staging", "security.headers.missing_count", "X-Content-Type-Options is missing"),
    ("cors-reflect", "prod", "security.cors.findings_count", "allows foreign origin"),
    ("open-auth", "staging", "security.auth.open_endpoints_count", "an anonymous caller got 200"),
    ("auth-broken", "staging", "security.auth.credential_refused_count", "refuses the configured credential"),
    ("stack-trace", "staging", "security.errors.leaks_count", "Traceback (most recent call last)"),
    ("secret-in-config", "staging", "security.frontend.secrets_count", "AWS secret access key wJal"),
]


@pytest.mark.parametrize(("fault", "env", "metric", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_fails_the_right_check(gate_project: Gate, fault: str, env: str, metric: str, words: str) -> None:
    res = gate_project.run("--env", env, "-m", "gate and security", faults=f"{env}:{fault}")
    assert res.ret == 1, res.output
    assert res.report is not None
    judged = [m for m in res.report["metrics"] if m["name"] == metric]
    assert judged and judged[0]["verdict"] == "FAIL", metric
    others = [m["name"] for m in res.report["metrics"] if m["verdict"] == "FAIL" and m["name"] != metric]
    assert others == []  # only the matching check fails
    assert words in res.stdout
    texts = [f["text"] for f in res.report["findings"]] + list(res.failed_tests().values())
    assert any(words in t for t in texts), texts
    assert "Traceback" not in res.stderr


def test_jinja_advisory_is_reported_with_its_fix_version(gate_project: Gate) -> None:
    res = gate_project.run("--env", "staging", "-m", "gate and security", faults="staging:vulnerable-deps")
    assert res.report is not None
    texts = [f["text"] for f in res.report["findings"] if f["check"] == "audit"]
    assert any("jinja2 2.10: PYSEC-2019-217" in t and "CVE-2019-10906" in t and "fixed in 2.10.1" in t
               for t in texts), texts
    assert res.metric("security.audit.critical_count")["value"] == 1
    assert res.metric("security.audit.high_count")["value"] == 1


def _allow(gate: Gate, entry_id: str, expires: str) -> None:
    path = gate.path / "deploygate.toml"
    text = path.read_text().replace(
        'error_probes = [{ path = "/api/stories?limit=not-a-number", method = "GET" }]',
        'error_probes = [{ path = "/api/stories?limit=not-a-number", method = "GET" }]\n'
        f'allowlist = [{{ id = "{entry_id}", reason = "accepted until the rewrite ships", expires = {expires} }}]')
    path.write_text(text)


def test_allowlisted_finding_passes_until_it_expires(gate_project: Gate) -> None:
    future = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    _allow(gate_project, "B602", future)
    res = gate_project.run("--env", "staging", "-m", "gate and security", faults="staging:insecure-code")
    assert res.ret == 0, res.output
    assert res.metric("security.bandit.high_count")["value"] == 0
    assert res.metric("security.bandit.allowlisted_count")["value"] == 1
    assert any(f"allowlisted until {future}: accepted until the rewrite ships" in f["text"]
               for f in res.report["findings"]) if res.report else False


def test_expired_allowlist_entry_counts_again_and_says_so(gate_project: Gate) -> None:
    _allow(gate_project, "CVE-2018-18074", "2026-01-01")  # by alias
    res = gate_project.run("--env", "staging", "-m", "gate and security", faults="staging:vulnerable-deps")
    assert res.ret == 1
    assert res.metric("security.audit.vulnerabilities_count")["value"] == 2
    assert any("allowlist entry CVE-2018-18074 expired on 2026-01-01: counts again" in f["text"]
               for f in res.report["findings"]) if res.report else False


def test_allowlist_entries_need_reason_and_expiry(gate_project: Gate) -> None:
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace(
        'audit = { osv_url = "{osv_url}" }', 'audit = { osv_url = "{osv_url}" }\nallowlist = [{ id = "B602" }]'))
    res = gate_project.run("--env", "staging", "-m", "gate and security")
    assert res.ret == 4
    assert "an allowlist entry needs reason" in res.stderr


def test_unreachable_vulnerability_service_is_never_a_pass(gate_project: Gate) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace('audit = { osv_url = "{osv_url}" }',
                                             f'audit = {{ osv_url = "http://127.0.0.1:{port}/v1/query", '
                                             'timeout_s = 5 }'))
    res = gate_project.run("--env", "staging", "-m", "gate and security")
    assert res.ret == 0, res.output  # WARN by default ...
    assert res.report is not None and res.report["verdict"] == "WARN"
    unaudited = res.metric("security.audit.unaudited_count")
    assert unaudited["verdict"] == "WARN" and unaudited["value"] >= 2
    notes = " ".join(res.report["notes"])
    assert "could not audit" in notes and "boto3" in notes and "requests" in notes
    # ... and FAIL when the policy says so
    strict_policy = '[metrics]\n"security.audit.unaudited_count" = { fail = "> 0" }\n'
    gate_project.pytester.makefile(".toml", thresholds=strict_policy)
    strict = gate_project.run("--env", "staging", "-m", "gate and security")
    assert strict.ret == 1
    assert strict.metric("security.audit.unaudited_count")["verdict"] == "FAIL"


# --------------------------------------------------------------------------------------------------
# TLS against a local HTTPS server with certificates made here


def _certs(tmp: Path, *, days: int, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deploygate test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False).sign(ca_key, hashes.SHA256()))
    ca_pem, cert_pem, key_pem = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, cert_pem, key_pem


class _Secure(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        for k, v in (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"),
                     ("X-Frame-Options", "DENY"), ("Strict-Transport-Security", "max-age=31536000")):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _redirecting(target: str, redirect: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if redirect:
                self.send_response(301)
                self.send_header("Location", target + self.path)
            else:
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture
def https_site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    days, host, redirect = request.param
    ca, cert, key = _certs(tmp_path, days=days, host=host)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Secure)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _serve(server)
    url = f"https://127.0.0.1:{server.server_address[1]}"
    plain = ThreadingHTTPServer(("127.0.0.1", 0), _redirecting(url, redirect))
    _serve(plain)
    try:
        yield {"url": url, "http": f"http://127.0.0.1:{plain.server_address[1]}", "ca": str(ca)}
    finally:
        server.shutdown()
        plain.shutdown()


def _tls_project(gate: Gate, site: dict[str, str]) -> None:
    (gate.path / "deploygate.toml").write_text(f"""
[environments.edge]
base_url = "{site['url']}"
http = {{ ca_bundle = "{site['ca']}" }}
smoke = {{ health = [{{ path = "/" }}] }}
security = {{ tls = {{ min_days = 14, http_url = "{site['http']}/" }}, frontend_secrets = false }}
""")


@pytest.mark.parametrize("https_site", [(90, "127.0.0.1", True)], indirect=True)
def test_tls_valid_certificate_and_redirect_pass(gate_project: Gate, https_site: dict[str, str]) -> None:
    _tls_project(gate_project, https_site)
    res = gate_project.run("--env", "edge", "-m", "gate and security")
    assert res.ret == 0, res.output
    days = res.metric("security.tls.cert_days_left")["value"]
    assert 88 < days <= 90
    assert res.metric("security.headers.missing_count")["value"] == 0  # HSTS required on https, and present


@pytest.mark.parametrize(("https_site", "words"), [
    ((5, "127.0.0.1", True), "less than tls.min_days = 14"),
    ((90, "other.example", True), "certificate not valid"),
    ((90, "127.0.0.1", False), "expected a redirect to https"),
], indirect=["https_site"], ids=["expiring", "wrong-host", "no-redirect"])
def test_tls_problems_fail_the_tls_check(gate_project: Gate, https_site: dict[str, str], words: str) -> None:
    _tls_project(gate_project, https_site)
    res = gate_project.run("--env", "edge", "-m", "gate and security", "-k", "tls")
    assert res.ret == 1, res.output
    reason = next(r for n, r in res.failed_tests().items() if "test_tls" in n)
    assert words in reason


@pytest.mark.parametrize("https_site", [(90, "127.0.0.1", True)], indirect=True)
@pytest.mark.parametrize("client", ["http", "fast"])
def test_load_over_tls_uses_the_environments_ca_bundle(gate_project: Gate, https_site: dict[str, str],
                                                        client: str) -> None:
    """Both Locust clients verify the certificate against ``http.ca_bundle``; without it, every request
    fails verification (the private CA is not trusted) and the performance check fails."""
    _tls_project(gate_project, https_site)
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + f"""
[environments.edge.performance]
users = 4
duration_s = 3
min_requests = 10
client = "{client}"
tasks = [{{ name = "root", path = "/" }}]
""")
    res = gate_project.run("--env", "edge", "-m", "gate and performance")
    assert res.ret == 0, res.output
    assert res.metric("performance.success_rate")["value"] == 100.0
    ca = https_site["ca"]
    path.write_text(path.read_text().replace(f'http = {{ ca_bundle = "{ca}" }}\n', ""))
    untrusted = gate_project.run("--env", "edge", "-m", "gate and performance")
    assert untrusted.ret == 1, untrusted.output
    reason = next(iter(untrusted.failed_tests().values()))
    assert "performance.success_rate" in reason or "performance: " in reason, reason


# --------------------------------------------------------------------------------------------------
# Posture against a small third-party-like server written here: the API and its frontend on one origin,
# each route answering (status, headers, body), or None to drop the connection without an answer.

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


def _reason(res: object, test: str) -> str:
    failed = res.failed_tests()  # type: ignore[attr-defined]
    return next((r for n, r in failed.items() if test in n), "")


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
        reason = _reason(res, test)
        assert f"{check}: could not check: " in reason, (test, reason)
        assert res.metric("security.unverified_count", check=check)["value"] == 1
    assert "/admin" in _reason(res, "test_protected_endpoint_refuses_anonymous")
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
    reason = _reason(res, "test_protected_endpoint_accepts_the_credential")
    assert "refuses the configured credential: it answered 403 with odd's auth (Authorization)" in reason, reason
    assert res.metric("security.auth.credential_refused_count", endpoint="GET /admin")["verdict"] == "FAIL"
    assert TOKEN not in res.output


def test_error_probe_that_provokes_no_error_says_so(gate_project: Gate, odd_site: Callable[..., None]) -> None:
    odd_site({"/boom": _plain(200, '{"ok": true}')})
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "errors_leak")
    assert res.ret == 1, res.output
    reason = _reason(res, "test_errors_leak_nothing")
    assert "error probe: could not check: GET http://127.0.0.1:" in reason
    assert "/boom answered 200, not an error" in reason
    assert res.metric("security.unverified_count", check="error probe", probe="GET /boom")["value"] == 1
    assert not any(m["name"] == "security.errors.leaks_count" for m in res.report["metrics"]) if res.report else False


def test_framework_banner_is_named_as_such(gate_project: Gate, odd_site: Callable[..., None]) -> None:
    odd_site({"/boom": _plain(500, '{"message": "internal error"}', X_Powered_By="Express")})
    res = gate_project.run("--env", "odd", "-m", "gate and security", "-k", "errors_leak")
    assert res.ret == 1, res.output
    reason = _reason(res, "test_errors_leak_nothing")
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
        assert fails in _reason(res, "test_cors_allows_only_own_origins")


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
    reason = _reason(res, "test_frontend_has_no_secrets")
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


def test_tls_handshake_cut_short_is_could_not_check(gate_project: Gate) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def hang_up() -> None:  # accepts, then closes before any TLS handshake: a reset by a balancer
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        (gate_project.path / "deploygate.toml").write_text(f"""
[environments.edge]
base_url = "https://127.0.0.1:{port}"
smoke = {{ health = [{{ path = "/" }}] }}
security = {{ frontend_secrets = false }}
""")
        res = gate_project.run("--env", "edge", "-m", "gate and security", "-k", "tls")
    finally:
        listener.close()
    assert res.ret == 1, res.output
    reason = _reason(res, "test_tls")
    assert f"TLS: could not check: 127.0.0.1:{port}: connection closed during the handshake" in reason, reason
    assert res.metric("security.unverified_count", check="TLS")["value"] == 1
    assert "certificate not valid" not in res.stdout


@pytest.mark.parametrize(("fault", "owner", "other"), [
    ("cors-wildcard", "test_cors_allows_only_own_origins", "security.cors.findings_count"),
    ("cors-reflect", "test_cors_refuses_foreign_origins", "isolation.leaks_count"),
])
def test_one_cors_misconfiguration_fails_one_check(gate_project: Gate, fault: str, owner: str, other: str) -> None:
    res = gate_project.run("--env", "prod", "-m", "gate and (security or isolation)", "-k", "cors",
                           faults=f"prod:{fault}")
    assert res.ret == 1, res.output
    assert [n.rsplit("::", 1)[-1] for n in res.failed_tests()] == [owner]
    assert res.metric(other)["value"] == 0


def test_allowlisted_cors_finding_is_accepted_by_its_owner(gate_project: Gate) -> None:
    _allow(gate_project, "DG-CORS-WILDCARD", _days(30))
    res = gate_project.run("--env", "prod", "-m", "gate and isolation", "-k", "cors", faults="prod:cors-wildcard")
    assert res.ret == 0, res.output
    assert res.metric("isolation.leaks_count", check="cors")["value"] == 0
    assert res.report is not None
    assert any("[DG-CORS-WILDCARD] (allowlisted until" in f["text"] and f["severity"] == "INFO"
               for f in res.report["findings"])
