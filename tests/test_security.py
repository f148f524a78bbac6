"""The security suite against the reference deployment: healthy staging passes; each fault fails its own
check naming the finding; advisories carry their fix version; the allowlist (until its expiry, entries
need a reason and an expiry); an unreachable vulnerability service is never a pass; one CORS
misconfiguration fails one check, its owner's. (TLS: test_security_tls.py; posture against odd servers:
test_security_posture.py; the rules alone, fast: test_unit_posture.py, test_unit_audit.py,
test_unit_codescan.py.)"""

from __future__ import annotations

import datetime

import pytest

from gatehelpers import Gate, closed_port

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
    with closed_port() as port:
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


def _days(n: int) -> str:
    return (datetime.date.today() + datetime.timedelta(days=n)).isoformat()


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
