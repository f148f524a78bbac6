"""The security suite's TLS check against a local HTTPS server with certificates made here: a valid certificate
and the HTTP-to-HTTPS redirect pass; an expiring certificate, a wrong host name and a missing redirect fail
it; load over TLS trusts the environment's CA bundle; a handshake cut short is "could not check"."""

from __future__ import annotations

import datetime
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

pytestmark = pytest.mark.e2e


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
    reason = res.reason("test_tls")
    assert f"TLS: could not check: 127.0.0.1:{port}: connection closed during the handshake" in reason, reason
    assert res.metric("security.unverified_count", check="TLS")["value"] == 1
    assert "certificate not valid" not in res.stdout
