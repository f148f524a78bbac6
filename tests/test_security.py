"""Security suite against the reference deployment (and a local HTTPS server with certificates made here)."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Iterator
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
from pytest_deploygate.security.audit import parse_pip_audit, parse_safety
from pytest_deploygate.security.posture import find_secrets


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


SAFETY_SAMPLE = Path(__file__).with_name("data") / "safety-check.json"


def test_safety_parser_on_a_recorded_report() -> None:
    result = parse_safety(json.loads(SAFETY_SAMPLE.read_text()))
    assert [v.describe() for v in result.vulnerabilities] == [
        "requests 2.19.0: SAFETY-36546 (CVE-2018-18074) HIGH; fixed in 2.20.0",
        "jinja2 2.10: SAFETY-36788 (CVE-2019-10906) UNKNOWN; fixed in 2.10.1",
    ]
    assert result.audited == 2


def test_pip_audit_skips_are_unaudited_not_clean() -> None:
    result = parse_pip_audit({"dependencies": [
        {"name": "requests", "version": "2.32.0", "vulns": []},
        {"name": "private-lib", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]})
    assert result.audited == 1
    assert result.unaudited == {"private-lib": "Dependency not found on PyPI and could not be audited"}


def test_secret_patterns() -> None:
    assert find_secrets("apiEndpoint: 'https://x', stage: 'prod'") == []
    found = find_secrets("key: 'AKIAIOSFODNN7EXAMPLE', client_secret = \"s3cr3t-value-123456\"")
    assert found == ["AWS access key id AKIA…LE", "API key or token s3cr…56"]


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
