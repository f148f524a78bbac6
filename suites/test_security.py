"""Security suite: the code scan (bandit), the dependency audit (pip-audit; safety when configured) and the
posture of the deployed API and frontend (headers, CORS, authentication, error leaks, TLS, secrets).

Driven by ``security``; findings are listed in the report, counts are judged against thresholds.toml, and
an allowlist entry (reason + expiry) accepts a finding until it expires.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from pytest_deploygate import current_environment
from pytest_deploygate.failures import READ_METHODS, CheckFailure, RequestFailed
from pytest_deploygate.frontend import asset_refs, config_js_url, page_url
from pytest_deploygate.security.allowlist import decide, screen
from pytest_deploygate.security.posture import (
    FOREIGN_ORIGIN,
    Finding,
    cors_findings,
    failure_reason,
    fetch,
    header_findings,
    leak_findings,
    origin_of,
    secret_findings,
    settle,
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


def _env_origin(env) -> str:  # type: ignore[no-untyped-def]
    return origin_of(env.base_url)


def test_security_headers(deploy_env, api, gate) -> None:  # type: ignore[no-untyped-def]
    """The API sends the expected security headers (HSTS too on https)."""
    response = fetch(gate, "security", "security headers", api, "GET", deploy_env.probe_path)
    https = deploy_env.base_url.startswith("https://")
    found = screen(gate, "headers", header_findings(response.headers, deploy_env.security.headers, https),
                   deploy_env.security.allowlist)
    gate.record("security.headers.missing_count", len(found))
    if found:
        raise CheckFailure(f"security headers of {deploy_env.name} (GET {response.url}): "
                           + "; ".join(f.describe() for f in found))


def test_cors_refuses_foreign_origins(deploy_env, api, gate) -> None:  # type: ignore[no-untyped-def]
    """A foreign origin is never allowed with credentials (which origins an environment admits at all is
    the isolation suite's test_cors_allows_only_own_origins: one owner per finding)."""
    allowed = [deploy_env.format(o) for o in deploy_env.isolation.cors_origins]
    response = fetch(gate, "security", "CORS", api, "GET", deploy_env.probe_path, headers={"Origin": FOREIGN_ORIGIN})
    findings = [f for f in cors_findings({FOREIGN_ORIGIN: response.headers}, allowed,
                                         api_origin=_env_origin(deploy_env)) if f.owner == "security"]
    found = screen(gate, "cors", findings, deploy_env.security.allowlist)
    gate.record("security.cors.findings_count", len(found))
    if found:
        raise CheckFailure(f"CORS of {deploy_env.name} (GET {response.url} with Origin {FOREIGN_ORIGIN}): "
                           + "; ".join(f.describe() for f in found))


def _auth_header(env) -> str:  # type: ignore[no-untyped-def]
    return env.auth.header if env.auth else "Authorization"


def test_protected_endpoint_refuses_anonymous(deploy_env, http_client, gate, protected_endpoint) -> None:  # type: ignore[no-untyped-def]
    """A protected endpoint answers 401/403 to an anonymous caller and to a bogus token."""
    path, method = protected_endpoint
    client = http_client()
    header = _auth_header(deploy_env)
    client.headers.pop(header, None)
    open_to, unverified = [], []
    for who, headers in (("an anonymous caller", {}), ("a bogus token", {header: "Bearer deploygate-bogus-token"})):
        try:
            response = settle(functools.partial(client.request, method, path, headers=headers), method)
        except RequestFailed as exc:
            unverified.append(f"{who}: {failure_reason(exc, client, method, client.url_for(path))}")
            continue
        if response.status_code >= 500:
            unverified.append(f"{who} got {response.status_code}")
        elif response.status_code not in (401, 403):
            open_to.append(f"{who} got {response.status_code}")
    endpoint = f"{method} {path}"
    if open_to:
        gate.record("security.auth.open_endpoints_count", 1, endpoint=endpoint)
        raise CheckFailure(f"protected endpoint {method} {client.url_for(path)} of {deploy_env.name} is open: "
                           + "; ".join(open_to) + " (expected 401 or 403)")
    if unverified:
        gate.could_not_check("security", "protected endpoint", f"{method} {client.url_for(path)}: "
                             + "; ".join(unverified), endpoint=endpoint)
    gate.record("security.auth.open_endpoints_count", 0, endpoint=endpoint)


def test_protected_endpoint_accepts_the_credential(deploy_env, http_client, gate, protected_endpoint) -> None:  # type: ignore[no-untyped-def]
    """The environment's configured auth gets a 2xx from each protected endpoint: one that refuses
    everyone is broken, not secure."""
    path, method = protected_endpoint
    if not (deploy_env.auth and (deploy_env.auth.value or deploy_env.auth.cognito)):
        pytest.skip(f"environment {deploy_env.name} configures no auth: the protected endpoint cannot be "
                    f"called with a real credential (set [environments.{deploy_env.name}.auth] value = "
                    '"${VAR}", or auth.cognito)')
    if method not in READ_METHODS:
        pytest.skip(f"{method} {path} changes data: the gate does not call it with a real credential")
    client = http_client()
    endpoint = f"{method} {path}"
    response = fetch(gate, "security", "protected endpoint with the configured credential", client, method, path,
                     labels={"endpoint": endpoint})
    refused = not 200 <= response.status_code < 300
    gate.record("security.auth.credential_refused_count", int(refused), endpoint=endpoint)
    if refused:
        what = ("refuses the configured credential" if response.status_code in (401, 403)
                else "does not accept the configured credential")
        raise CheckFailure(f"protected endpoint {method} {response.url} of {deploy_env.name} {what}: it answered "
                           f"{response.status_code} with {deploy_env.name}'s auth ({_auth_header(deploy_env)}), "
                           "expected 2xx (an endpoint that refuses everyone is broken, not secure)")


def test_errors_leak_nothing(deploy_env, api, gate, error_probe) -> None:  # type: ignore[no-untyped-def]
    """A request that provokes an error gets no stack trace and no framework or server version."""
    path, method, body = error_probe
    probe = f"{method} {path}"
    extra = {"json": body} if body is not None else {}
    response = fetch(gate, "security", "error probe", api, method, path, error_expected=True,
                     labels={"probe": probe}, **extra)
    found = screen(gate, "errors", leak_findings(response.headers, response.text), deploy_env.security.allowlist)
    if not found and response.status_code < 400:
        gate.could_not_check("security", "error probe", f"{method} {response.url} answered {response.status_code}, "
                             "not an error: the probe provokes no error answer to inspect (change it so it does)",
                             probe=probe)
    gate.record("security.errors.leaks_count", len(found), probe=probe)
    if found:
        raise CheckFailure(f"error answer of {deploy_env.name} ({method} {response.url} -> {response.status_code}) "
                           "leaks: " + "; ".join(f.describe() for f in found))


def test_tls(deploy_env, http_client, gate) -> None:  # type: ignore[no-untyped-def]
    """https: the certificate is valid for the host and not about to expire; http redirects to https."""
    import ssl

    if not deploy_env.base_url.startswith("https://"):
        pytest.skip(f"environment {deploy_env.name} is not served over https ({deploy_env.base_url})")
    spec = deploy_env.security
    where = urlsplit(deploy_env.base_url).netloc
    try:
        info = tls_info(deploy_env.base_url, deploy_env.http.ca_bundle, deploy_env.http.connect_timeout_s + 5)
    except ssl.SSLCertVerificationError as exc:
        raise CheckFailure(f"TLS of {deploy_env.name} ({where}): certificate not "
                           f"valid: {getattr(exc, 'verify_message', None) or exc}") from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError) as exc:
        gate.could_not_check("security", "TLS", f"{where}: connection closed during the handshake ({exc})")
    except ssl.SSLError as exc:
        raise CheckFailure(f"TLS of {deploy_env.name} ({where}): handshake failed: {exc.reason or exc}") from None
    except OSError as exc:
        gate.could_not_check("security", "TLS", f"{where}: cannot connect: {exc}")
    gate.record("security.tls.cert_days_left", info.days_left, "days")
    problems = []
    if info.days_left < spec.tls_min_days:
        problems.append(f"certificate for {info.host} expires on {info.not_after:%Y-%m-%d} "
                        f"({info.days_left:.1f} days, less than tls.min_days = {spec.tls_min_days})")
    if spec.tls_http_url:
        response = fetch(gate, "security", "TLS", http_client(), "GET", deploy_env.format(spec.tls_http_url),
                         allow_redirects=False)
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
    response = fetch(gate, "security", "frontend secrets", frontend, "GET", page)
    texts = {page: response.text}
    unread: list[str] = []
    tried = {page}

    def read(url: str, required: bool) -> None:
        tried.add(url)
        try:
            answer = settle(lambda: frontend.get(url), "GET")
        except RequestFailed as exc:
            unread.append(failure_reason(exc, frontend))
            return
        if answer.status_code >= 500:
            unread.append(f"GET {url} answered {answer.status_code} (asked twice)")
        elif required or answer.status_code == 200:
            texts[url] = answer.text  # a missing asset is the smoke suite's finding

    if config_js_url(deploy_env):
        read(str(config_js_url(deploy_env)), True)
    host = urlsplit(page).netloc
    for ref in asset_refs(response.text):
        url = urljoin(page, ref)
        if url.endswith(".js") and urlsplit(url).netloc == host and url not in tried:
            read(url, False)
    findings = [Finding(f.id, f"{f.text} in {url}", f.severity, f.owner, urlsplit(url).path)
                for url, text in texts.items() for f in secret_findings(text)]
    found = screen(gate, "frontend", findings, deploy_env.security.allowlist)
    if found:
        gate.record("security.frontend.secrets_count", len(found))
        raise CheckFailure(f"frontend of {deploy_env.name} ships secrets: " + "; ".join(f.describe() for f in found)
                           + ("" if not unread else " (could not read: " + "; ".join(unread) + ")"))
    if unread:
        gate.could_not_check("security", "frontend secrets", "; ".join(unread))
    gate.record("security.frontend.secrets_count", 0)
