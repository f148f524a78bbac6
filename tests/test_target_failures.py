"""A target that answers badly (read timeout, 5xx, HTML for JSON, a redirect loop) or not at all: each bad
answer is a failed check naming the URL and the reason; a dead environment is named once, and the gate
could not run (exit 4)."""

from __future__ import annotations

import contextlib
import time
from http.server import BaseHTTPRequestHandler

import pytest

from gatehelpers import Gate, closed_port, serve


class _Broken(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(4)
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, ctype, body = {
            "/boom": (503, "application/json", b'{"message": "unavailable"}'),
            "/html": (200, "text/html", b"<html>maintenance</html>"),
        }.get(self.path, (200, "application/json", b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_each_failure_is_a_failed_check_naming_url_and_reason(gate_project: Gate) -> None:
    server, url = serve(_Broken)
    try:
        (gate_project.path / "deploygate.toml").write_text(f"""
[environments.broken]
base_url = "{url}"
http = {{ connect_timeout_s = 1, read_timeout_s = 1, retries = 0 }}
[environments.broken.smoke]
health = [{{ path = "/health" }}]
endpoints = [{{ path = "/slow" }}, {{ path = "/boom" }}, {{ path = "/html" }}, {{ path = "/loop" }}]
""")
        res = gate_project.run("--env", "broken", "-m", "gate and smoke")
    finally:
        server.shutdown()
    assert res.ret == 1, res.output
    failed = res.failed_tests()
    expected = {
        "/slow": f"GET {url}/slow: no answer within 1 s (read timeout)",
        "/boom": f"GET {url}/boom answered 503, expected 200",
        "/html": f"{url}/html: expected JSON, got text/html",
        "/loop": f"GET {url}/loop: redirect loop",
    }
    for path, words in expected.items():
        reason = next(r for n, r in failed.items() if f"test_api_endpoint[{path}]" in n)
        assert words in reason, reason
        assert "\n" not in reason
    assert not any("test_health" in n for n in failed)
    assert "Traceback" not in res.output


@pytest.mark.parametrize("target", ["closed-port", "no-such-host"])
def test_a_dead_environment_is_named_once_and_the_gate_could_not_run(gate_project: Gate, target: str) -> None:
    with contextlib.ExitStack() as stack:
        _a_dead_environment(gate_project, target, stack)


def _a_dead_environment(gate_project: Gate, target: str, stack: contextlib.ExitStack) -> None:
    if target == "closed-port":
        base, why = f"http://127.0.0.1:{stack.enter_context(closed_port())}", "cannot connect"
    else:
        base, why = "http://deploygate-no-such-host.invalid", "DNS lookup failed"
    (gate_project.path / "deploygate.toml").write_text(f"""
[environments.gone]
base_url = "{base}"
http = {{ connect_timeout_s = 1, retries = 1 }}
smoke = {{ endpoints = [{{ path = "/a" }}, {{ path = "/b" }}, {{ path = "/c" }}] }}
""")
    res = gate_project.run("--env", "gone", "-m", "gate")
    assert res.ret == 4, res.output
    assert f"environment gone is unreachable: pre-flight of gone: GET {base}/: {why}" in res.stderr
    assert res.stderr.count("environment gone is unreachable") == 1
    assert res.report is not None and res.report["verdict"] == "ERROR"
    assert "Traceback" not in res.output
