"""Security suite: the code scan (bandit), the dependency audit (pip-audit; safety when configured) and the
posture of the deployed API and frontend (headers, CORS, authentication, error leaks, TLS, secrets).

Driven by ``security``; findings are listed in the report, counts are judged against thresholds.toml, and
an allowlist entry (reason + expiry) accepts a finding until it expires.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import CheckFailure
from pytest_deploygate.frontend import asset_refs, config_js_url, page_url
from pytest_deploygate.security.allowlist import decide
from pytest_deploygate.security.posture import (
    FOREIGN_ORIGIN,
    cors_problems,
    find_secrets,
    header_problems,
    leak_problems,
    tls_info,
)

pytestmark = [pytest.mark.gate, pytest.mark.security]

SEVERITIES = ("HIGH", "MEDIUM", "LOW")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    env = current_environment(metafunc.config)
    if env is None:
        return
    sec = env.security
    if "protected_endpoint" in metafunc.fixturenames:
        metafunc.parametrize("protected_endpoint", sec.protected_endpoints,
                             ids=[f"{m} {p}" for p, m in sec.protected_endpoints])
    if "error_probe" in metafunc.fixturenames:
        metafunc.parametrize("error_probe", sec.error_probes, ids=[f"{m} {p}" for p, m, _ in sec.error_probes])


def _paths(env, templates) -> list[str]:  # type: ignore[no-untyped-def]
    return [p for p in (env.format(t) for t in templates) if p]


def test_code_scan(deploy_env, gate) -> None:  # type: ignore[no-untyped-def]
    """bandit finds no HIGH issue (MEDIUM warns) in the deployed code, allowlist aside."""
    from pytest_deploygate.security.codescan import run_bandit

    spec = deploy_env.security
    paths = _paths(deploy_env, spec.code_paths)
    if not paths:
        pytest.skip(f"environment {deploy_env.name} declares no security.code_paths")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise CheckFailure(f"code scan: path not found: {', '.join(missing)}")
    counts = dict.fromkeys(SEVERITIES, 0)
    accepted = 0
    for finding in run_bandit(paths, spec.bandit_severity, spec.bandit_confidence, spec.bandit_exclude):
        decision = decide(spec.allowlist, [finding.test_id], finding.filename)
        if decision.accepted:
            accepted += 1
        else:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        gate.finding("bandit", "INFO" if decision.accepted else finding.severity,
                     finding.describe() + decision.note())
    for severity, count in counts.items():
        gate.record(f"security.bandit.{severity.lower()}_count", count)
    gate.record("security.bandit.allowlisted_count", accepted)


def _requirement_names(paths: list[str]) -> list[str]:
    names = []
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
            if m:
                names.append(m.group(1))
    return names


def test_dependency_audit(deploy_env, gate) -> None:  # type: ignore[no-untyped-def]
    """No known vulnerability in the dependencies (pip-audit; safety too when its key is set); a
    dependency that could not be audited is reported as such, never as clean."""
    from pytest_deploygate.security.audit import (
        SAFETY_KEY_VAR,
        run_pip_audit,
        run_safety,
        safety_configured,
        with_severities,
    )

    spec = deploy_env.security
    requirements = _paths(deploy_env, spec.requirements)
    if not requirements and not spec.audit_installed:
        pytest.skip(f"environment {deploy_env.name} declares no security.requirements "
                    "(or security.audit.installed = true)")
    osv_url = deploy_env.format(spec.osv_url) if spec.osv_url else ""
    results = [("pip-audit", with_severities(run_pip_audit(requirements, osv_url=osv_url, service=spec.audit_service,
                                                           timeout_s=spec.audit_timeout_s), osv_url))]
    if safety_configured():
        results.append(("safety", run_safety(requirements, spec.audit_timeout_s)))
    else:
        gate.note(f"safety: not configured (set {SAFETY_KEY_VAR} to add it as a second audit backend)")

    unaudited: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    counts: dict[str, int] = {}
    total = accepted = 0
    for backend, result in results:
        if result.error:
            names = _requirement_names(requirements) or ["(installed environment)"]
            unaudited.update({n: f"{backend}: {result.error}" for n in names})
            gate.note(f"dependency audit: {backend} could not audit: {result.error}")
        for name, why in result.unaudited.items():
            unaudited[name] = f"{backend}: {why}"
        for vuln in result.vulnerabilities:
            key = (vuln.package, next((a for a in vuln.ids if a.startswith("CVE-")), vuln.id))
            if key in seen:
                continue  # the same advisory from both backends
            seen.add(key)
            decision = decide(spec.allowlist, vuln.ids)
            gate.finding("audit", "INFO" if decision.accepted else vuln.severity, vuln.describe() + decision.note())
            if decision.accepted:
                accepted += 1
                continue
            total += 1
            counts[vuln.severity] = counts.get(vuln.severity, 0) + 1
    gate.record("security.audit.vulnerabilities_count", total)
    for severity, count in counts.items():
        gate.record(f"security.audit.{severity.lower()}_count", count)
    gate.record("security.audit.allowlisted_count", accepted)
    gate.record("security.audit.unaudited_count", len(unaudited))
    if unaudited:
        gate.note("dependency audit: could not audit " + ", ".join(f"{n} ({why})" for n, why in unaudited.items()))


def test_security_headers(deploy_env, api, gate) -> None:  # type: ignore[no-untyped-def]
    """The API sends the expected security headers (HSTS too on https)."""
    response = api.get(deploy_env.probe_path)
    https = deploy_env.base_url.startswith("https://")
    problems = header_problems(response.headers, deploy_env.security.headers, https)
    gate.record("security.headers.missing_count", len(problems))
    if problems:
        raise CheckFailure(f"security headers of {deploy_env.name} (GET {response.url}): " + "; ".join(problems))


def test_cors_refuses_foreign_origins(deploy_env, api, gate) -> None:  # type: ignore[no-untyped-def]
    """A foreign Origin is never allowed with credentials; on a protected environment not at all."""
    allowed = [deploy_env.format(o) for o in deploy_env.isolation.cors_origins]
    response = api.get(deploy_env.probe_path, headers={"Origin": FOREIGN_ORIGIN})
    problems = cors_problems(FOREIGN_ORIGIN, response.headers, deploy_env.protected, allowed)
    gate.record("security.cors.findings_count", len(problems))
    if problems:
        raise CheckFailure(f"CORS of {deploy_env.name} (GET {response.url} with Origin {FOREIGN_ORIGIN}): "
                           + "; ".join(problems))


def test_protected_endpoint_refuses_anonymous(deploy_env, http_client, gate, protected_endpoint) -> None:  # type: ignore[no-untyped-def]
    """A protected endpoint answers 401/403 to an anonymous caller and to a bogus token."""
    path, method = protected_endpoint
    client = http_client()
    header = deploy_env.auth.header if deploy_env.auth else "Authorization"
    client.headers.pop(header, None)
    open_to = []
    for who, headers in (("an anonymous caller", {}), ("a bogus token", {header: "Bearer deploygate-bogus-token"})):
        response = client.request(method, path, headers=headers)
        if response.status_code not in (401, 403):
            open_to.append(f"{who} got {response.status_code}")
    gate.record("security.auth.open_endpoints_count", 1 if open_to else 0, endpoint=f"{method} {path}")
    if open_to:
        raise CheckFailure(f"protected endpoint {method} {client.url_for(path)} of {deploy_env.name} is open: "
                           + "; ".join(open_to) + " (expected 401 or 403)")


def test_errors_leak_nothing(deploy_env, api, gate, error_probe) -> None:  # type: ignore[no-untyped-def]
    """A request that provokes an error gets no stack trace and no framework or server version."""
    path, method, body = error_probe
    response = api.request(method, path, json=body) if body is not None else api.request(method, path)
    problems = leak_problems(response.status_code, response.headers, response.text)
    gate.record("security.errors.leaks_count", len(problems), probe=f"{method} {path}")
    if problems:
        raise CheckFailure(f"error answer of {deploy_env.name} ({method} {response.url} -> {response.status_code}) "
                           "leaks: " + "; ".join(problems))


def test_tls(deploy_env, http_client, gate) -> None:  # type: ignore[no-untyped-def]
    """https: the certificate is valid for the host and not about to expire; http redirects to https."""
    import ssl

    if not deploy_env.base_url.startswith("https://"):
        pytest.skip(f"environment {deploy_env.name} is not served over https ({deploy_env.base_url})")
    spec = deploy_env.security
    try:
        info = tls_info(deploy_env.base_url, deploy_env.http.ca_bundle, deploy_env.http.connect_timeout_s + 5)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise CheckFailure(f"TLS of {deploy_env.name} ({urlsplit(deploy_env.base_url).netloc}): certificate not "
                           f"valid: {getattr(exc, 'verify_message', None) or exc}") from None
    except OSError as exc:
        raise CheckFailure(f"TLS of {deploy_env.name}: cannot connect: {exc}") from None
    gate.record("security.tls.cert_days_left", info.days_left, "days")
    problems = []
    if info.days_left < spec.tls_min_days:
        problems.append(f"certificate for {info.host} expires on {info.not_after:%Y-%m-%d} "
                        f"({info.days_left:.1f} days, less than tls.min_days = {spec.tls_min_days})")
    if spec.tls_http_url:
        response = http_client().get(deploy_env.format(spec.tls_http_url), allow_redirects=False)
        location = response.headers.get("Location", "")
        if response.status_code not in (301, 302, 307, 308) or not location.startswith("https://"):
            problems.append(f"GET {response.url} answered {response.status_code}"
                            + (f" to {location}" if location else "") + ", expected a redirect to https")
    if problems:
        raise CheckFailure(f"TLS of {deploy_env.name}: " + "; ".join(problems))


def test_frontend_has_no_secrets(deploy_env, frontend, gate) -> None:  # type: ignore[no-untyped-def]
    """The page, config.js and the page's own scripts carry no secret-looking values."""
    if not deploy_env.security.frontend_secrets:
        pytest.skip("security.frontend_secrets = false")
    page = page_url(deploy_env)
    response = frontend.get(page)
    texts = {page: response.text}
    if config_js_url(deploy_env):
        url = str(config_js_url(deploy_env))
        texts[url] = frontend.get(url).text
    host = urlsplit(page).netloc
    for ref in asset_refs(response.text):
        url = urljoin(page, ref)
        if url.endswith(".js") and urlsplit(url).netloc == host and url not in texts:
            asset = frontend.get(url)
            if asset.status_code == 200:
                texts[url] = asset.text
    found = [f"{secret} in {url}" for url, text in texts.items() for secret in find_secrets(text)]
    gate.record("security.frontend.secrets_count", len(found))
    for f in found:
        gate.finding("frontend", "HIGH", f)
    if found:
        raise CheckFailure(f"frontend of {deploy_env.name} ships secrets: " + "; ".join(found))
