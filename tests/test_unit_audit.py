"""Unit tests of the dependency audit's pure parts: the pip-audit and safety JSON parsers, and severities filled
in from an OSV service (a local one here). No scanner run."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from gatehelpers import closed_port, serve
from pytest_deploygate.security.audit import AuditResult, Vulnerability, parse_pip_audit, parse_safety, with_severities

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


def test_pip_audit_vulnerabilities_carry_their_aliases_cve_first_and_their_fixes() -> None:
    # pip-audit --format json --aliases on --desc on: one dependency, two advisories
    result = parse_pip_audit({"dependencies": [{"name": "jinja2", "version": "2.10", "vulns": [
        {"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "description": "sandbox escape",
         "aliases": ["GHSA-462w-v97r-4m45", "PYSEC-2019-217", "CVE-2019-10906"]},
        {"id": "GHSA-0000-0000-0000", "fix_versions": [], "aliases": []},
    ]}], "fixes": []})
    assert result.audited == 1 and result.unaudited == {} and result.error is None
    first, second = result.vulnerabilities
    assert first.ids == ("PYSEC-2019-217", "CVE-2019-10906", "GHSA-462w-v97r-4m45")  # the id is not its own alias
    assert first.describe() == ("jinja2 2.10: PYSEC-2019-217 (CVE-2019-10906, GHSA-462w-v97r-4m45) UNKNOWN; "
                                "fixed in 2.10.1")
    assert second.describe() == "jinja2 2.10: GHSA-0000-0000-0000 UNKNOWN; no fixed version"
    assert parse_pip_audit({}).audited == 0


def test_safety_1x_rows_are_read_too() -> None:
    result = parse_safety([["requests", "<2.20.0", "2.19.0", "Requests before 2.20.0 sends an HTTP Authorization "
                            "header to an http URI upon receiving a same-hostname https-to-http redirect", "36546"]])
    [vuln] = result.vulnerabilities
    assert vuln.describe() == "requests 2.19.0: SAFETY-36546 UNKNOWN; no fixed version"
    assert vuln.source == "safety" and vuln.description.startswith("Requests before 2.20.0")


class _OSV(BaseHTTPRequestHandler):
    """``GET /v1/vulns/{id}``: a record with a severity, one without, or no JSON at all."""

    def do_GET(self) -> None:
        body = {"/v1/vulns/PYSEC-1": b'{"id": "PYSEC-1", "database_specific": {"severity": "high"}}',
                "/v1/vulns/PYSEC-2": b'{"id": "PYSEC-2"}'}.get(self.path, b"<html>gateway error</html>")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _vulns(*ids: str) -> AuditResult:
    return AuditResult(vulnerabilities=[Vulnerability("pkg", "1.0", i, (), (), "") for i in ids], audited=1)


def test_severities_come_from_the_osv_service_where_it_knows_them() -> None:
    server, url = serve(_OSV)
    try:
        filled = with_severities(_vulns("PYSEC-1", "PYSEC-2", "PYSEC-3"), f"{url}/v1/query", timeout_s=5)
    finally:
        server.shutdown()
    # known: its severity; a record without one, or an answer that is no JSON: still UNKNOWN, never dropped
    assert [(v.id, v.severity) for v in filled.vulnerabilities] == [
        ("PYSEC-1", "HIGH"), ("PYSEC-2", "UNKNOWN"), ("PYSEC-3", "UNKNOWN")]


def test_an_unreachable_osv_service_leaves_every_vulnerability_counted() -> None:
    with closed_port() as port:
        filled = with_severities(_vulns("PYSEC-1"), f"http://127.0.0.1:{port}/v1/query", timeout_s=2)
    assert [(v.id, v.severity) for v in filled.vulnerabilities] == [("PYSEC-1", "UNKNOWN")]
    unchanged = _vulns("PYSEC-1")
    assert with_severities(unchanged, "") is unchanged  # no service configured: nothing asked
