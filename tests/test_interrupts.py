"""Production safety, publishing, secrets and failure behaviour."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import requests
from test_crud_isolation import RunningDemo

from gatehelpers import Gate, running_processes, wait_for


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------------------------------
# protected environments


def test_unmarked_user_writes_to_prod_are_refused(gate_project: Gate) -> None:
    gate_project.pytester.makepyfile(test_mine="""
        def test_post_story(api):
            api.post("/api/stories", json={"title": "oops"})

        def test_put_item(aws, deploy_env):
            aws.client("dynamodb").put_item(TableName=deploy_env.tables[0], Item={"id": {"S": "oops"}})

        def test_reading_is_fine(api, aws, deploy_env):
            assert api.get("/api/stories").status_code == 200
            aws.client("dynamodb").describe_table(TableName=deploy_env.tables[0])
    """)
    demo = RunningDemo(gate_project, [])
    try:
        res = gate_project.run("--env", "prod", "--no-builtin-suites", "test_mine.py")
        assert res.ret == 1
        failed = res.failed_tests()
        assert "refused POST http://127.0.0.1:" in failed["test_mine.py::test_post_story"]
        post = failed["test_mine.py::test_post_story"]
        assert "environment prod is protected (read-only); pass --allow-writes" in post
        assert "refused AWS dynamodb.PutItem: environment prod is protected" in failed["test_mine.py::test_put_item"]
        assert res.report is not None and res.report["tests"]["passed"] == 1
        assert requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["writes"] == 0
        assert sum(len(v) for v in demo.items("prod").values()) == 0
    finally:
        demo.stop()


def test_full_prod_gate_changes_nothing_in_prod(gate_project: Gate) -> None:
    demo = RunningDemo(gate_project, [])
    try:
        info = demo.state["environments"]["prod"]
        s3 = boto3.client("s3", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")

        def snapshot() -> tuple[dict[str, int], int]:
            objects = s3.list_objects_v2(Bucket="aipm-prod-frontend-hosting").get("KeyCount", 0)
            return {t: len(items) for t, items in demo.items("prod").items()}, objects

        before = snapshot()
        res = gate_project.run("--env", "prod", "-m", "gate")
        assert res.ret == 0, res.output
        assert snapshot() == before
        assert requests.get(demo.api("prod") + "/_demo/stats", timeout=5).json()["writes"] == 0
    finally:
        demo.stop()


# --------------------------------------------------------------------------------------------------
# publishing


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
    server, url = _serve(handler)
    gate_project.monkeypatch.setenv("TEST_WEBHOOK_URL", f"{url}/services/T000/B000/XXXXSECRETXXXX")
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + '\n[publish.webhook]\nurl = "${TEST_WEBHOOK_URL}"\non = ["FAIL"]\n'
                    'report_url = "https://ci.example/gate/report.json"\n')
    yield received
    server.shutdown()


def test_webhook_on_fail_only(gate_project: Gate, webhook: list[dict[str, object]]) -> None:
    ok = gate_project.run("--env", "staging", "-m", "gate and smoke")
    assert ok.ret == 0 and webhook == []
    bad = gate_project.run("--env", "staging", "-m", "gate and smoke", faults="staging:health-down")
    assert bad.ret == 1
    assert len(webhook) == 1
    text = str(webhook[0]["text"])
    assert "*Deploy gate FAIL* for `staging`" in text
    assert "test_health[/health]" in text and "Report: https://ci.example/gate/report.json" in text
    assert webhook[0]["blocks"]
    assert "XXXXSECRETXXXX" not in bad.output  # the webhook URL is itself a secret


def test_cloudwatch_metrics_can_be_read_back(gate_project: Gate) -> None:
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + '\n[publish.cloudwatch]\nnamespace = "DeployGate"\n'
                    'dimensions = { Service = "{service}", Environment = "{env}" }\n')
    demo = RunningDemo(gate_project, ["staging:slow"])
    try:
        res = gate_project.run("--env", "staging", "-m", "gate and smoke")
        assert res.ret == 1
        assert any("published" in n and "CloudWatch" in n for n in res.report["notes"]) if res.report else False
        info = demo.state["environments"]["staging"]
        cw = boto3.client("cloudwatch", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        dims = [{"Name": "Service", "Value": "aipm-backend"}, {"Name": "Environment", "Value": "staging"}]
        names = {m["MetricName"] for m in cw.list_metrics(Namespace="DeployGate")["Metrics"]}
        assert {"GateVerdict", "CategoryVerdict", "smoke.frontend.missing_assets_count"} <= names
        now = time.time()
        stats = cw.get_metric_statistics(Namespace="DeployGate", MetricName="GateVerdict", Dimensions=dims,
                                         StartTime=now - 600, EndTime=now + 600, Period=60, Statistics=["Maximum"])
        assert [p["Maximum"] for p in stats["Datapoints"]] == [2.0]  # FAIL
    finally:
        demo.stop()


# --------------------------------------------------------------------------------------------------
# secrets


def test_a_planted_secret_appears_nowhere(gate_project: Gate, webhook: list[dict[str, object]]) -> None:
    secret = "dg-canary-token-7f3a9c1e5b"
    gate_project.monkeypatch.setenv("STAGING_TOKEN", secret)
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text().replace(
        '[environments.staging]\nstage = "staging"',
        '[environments.staging]\nstage = "staging"\nauth = { value = "Bearer ${STAGING_TOKEN}" }'))
    gate_project.pytester.makepyfile(test_leaky="""
        import logging
        import pytest

        @pytest.mark.gate
        def test_leaks_everywhere(api, deploy_env, gate):
            token = deploy_env.auth.value
            print("stdout:", token)
            logging.getLogger("app").warning("log: %s", token)
            gate.note(f"note: {token}")
            assert api.get("/health", headers={"X-Debug": token}).status_code == 200
            assert token == "something else", token
    """)
    res = gate_project.run("--env", "staging", "-m", "gate and not performance",
                           "--alluredir", "allure-results", "--junitxml", "junit.xml", "--gate-markdown", "summary.md",
                           "-rA", "-o", "log_cli=true")
    assert res.ret == 1
    assert webhook, "the failing run notified the webhook"
    assert secret not in res.stdout + res.stderr
    assert secret not in json.dumps(webhook)
    produced = [p for p in gate_project.path.rglob("*") if p.is_file() and p.suffix != ".py"
                and p.name != "deploygate.toml"]
    assert any(p.name == "junit.xml" for p in produced)
    assert any(p.parent.name == "allure-results" for p in produced)
    assert any(p.name == "report.json" for p in produced)
    assert "`test_leaky.py::test_leaks_everywhere`" in (gate_project.path / "summary.md").read_text()
    leaks = [str(p) for p in produced if secret.encode() in p.read_bytes()]
    assert leaks == []
    # nor any piece of it a truncation could leave (tests/test_secrets.py tries every pattern)
    pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
    texts = [res.stdout, res.stderr, json.dumps(webhook), *(p.read_text(errors="replace") for p in produced)]
    assert [piece for piece in pieces if any(piece in t for t in texts)] == []
    assert "***" in (gate_project.path / "junit.xml").read_text()  # redacted, not dropped


# --------------------------------------------------------------------------------------------------
# failure behaviour


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
    server, url = _serve(_Broken)
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
    if target == "closed-port":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base, why = f"http://127.0.0.1:{s.getsockname()[1]}", "cannot connect"
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


def test_sigint_mid_run_leaves_a_partial_report_marked_interrupted(gate_project: Gate) -> None:
    proc = gate_project.start("--env", "staging", "-m", "gate and smoke", "-v", faults="staging:slow")
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # a check has passed (whatever the machine's speed), and the next slow one is in flight
        wait_for(lambda: any(" PASSED" in line for line in lines), timeout=240, what="a first passed check")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=30)
        out = "".join(lines)
        assert proc.returncode == 2, out
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
    assert report["interrupted"] is True and report["exit_status"] == 2
    assert report["tests"]["passed"] >= 1, (report, out)
    deadline = time.monotonic() + 30
    while gate_project.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gate_project.leftovers() == []


def test_an_interrupt_on_an_instruction_without_a_line_is_still_an_interrupted_run(gate_project: Gate) -> None:
    """CPython 3.11+: a signal landing on an instruction with no source line leaves a traceback entry with
    ``tb_lineno`` None, on which pytest's own KeyboardInterrupt report crashes (seen in CI, mid-CRUD). The
    run must still end as interrupted: exit 2, a report marked INTERRUPTED, no traceback."""
    gate_project.pytester.makepyfile(test_ctrl_c="""
        import sys, types

        def test_first():
            pass

        def test_interrupted_here():
            try:  # exception handling adds instructions that have no source line
                pass
            except ValueError:
                pass
            frame = sys._getframe()
            where = next(2 * i for i, pos in enumerate(frame.f_code.co_positions()) if pos[0] is None)
            unnumbered = types.TracebackType(None, frame, where, -1)  # as if the signal had landed there
            assert unnumbered.tb_lineno is None
            raise KeyboardInterrupt().with_traceback(unnumbered)
    """)
    res = gate_project.run("--env", "staging", "--no-builtin-suites", "test_ctrl_c.py")
    assert res.ret == 2, res.output
    assert "GATE INTERRUPTED" in res.stdout and "KeyboardInterrupt" in res.stdout
    assert "Traceback" not in res.output and "INTERNALERROR" not in res.output
    assert res.report is not None and res.report["verdict"] == "INTERRUPTED" and res.report["interrupted"] is True
    assert res.report["tests"]["passed"] == 1
    # Even when another plugin's report of the interruption breaks, the gate report never says PASS.
    gate_project.pytester.makepyfile(brokenreporter="""
        def pytest_keyboard_interrupt(excinfo):
            raise RuntimeError("a reporter that breaks")
    """)
    broken = gate_project.run("--env", "staging", "--no-builtin-suites", "-p", "brokenreporter", "test_ctrl_c.py")
    assert broken.ret != 0 and "GATE PASS" not in broken.stdout, broken.output
    assert broken.report is not None and broken.report["verdict"] == "INTERRUPTED", broken.output


def test_cleanup_refuses_a_protected_environment_without_allow_writes(gate_project: Gate) -> None:
    deploygate = str(Path(sys.executable).with_name("deploygate"))
    demo = RunningDemo(gate_project, [])
    try:
        res = subprocess.run([deploygate, "cleanup", "--env", "prod"], cwd=gate_project.path, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 4
        assert "environment prod is protected: pass --allow-writes" in res.stderr
        dry = subprocess.run([deploygate, "cleanup", "--env", "prod", "--dry-run"], cwd=gate_project.path,
                             capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0 and "prod: 0 leftover gate record(s) found" in dry.stdout
    finally:
        demo.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["mid-crud", "mid-load"])
def test_interrupting_at_any_point_leaves_nothing_behind(gate_project: Gate, sig: int, point: str) -> None:
    """No test record in any table, no Locust, and a readable report marked interrupted."""
    path = gate_project.path / "deploygate.toml"
    path.write_text(path.read_text() + "\n[environments.staging.performance]\nduration_s = 30\nwarmup_s = 1\n")
    demo = RunningDemo(gate_project, ["staging:slow"] if point == "mid-crud" else [])
    marker = "gate and crud" if point == "mid-crud" else "gate and performance"
    proc = gate_project.start("--env", "staging", "-m", marker)
    try:
        if point == "mid-crud":  # a record exists: each slow CRUD step takes 3.5 s
            wait_for(lambda: demo.gate_records()["staging"] > 0, what="a gate record in staging")
        else:
            wait_for(lambda: running_processes("locust", str(gate_project.path)), what="locust to start")
            time.sleep(2)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2, out
        assert "GATE INTERRUPTED" in out
        report = json.loads((gate_project.path / ".deploygate" / "report.json").read_text())
        assert report["interrupted"] is True and report["verdict"] == "INTERRUPTED"
        assert demo.gate_records() == {"dev": 0, "staging": 0, "prod": 0}
        wait_for(lambda: not running_processes("locust", str(gate_project.path)), timeout=30,
                 what="locust to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()
        demo.stop()
