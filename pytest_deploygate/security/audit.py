"""The dependency audit: pip-audit (default; ``--strict``, skipped dependencies are "could not audit", never
clean) against an OSV-compatible service, and safety as a second backend when its API key is set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

SAFETY_KEY_VAR = "SAFETY_API_KEY"


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]
    description: str
    severity: str = "UNKNOWN"
    source: str = "pip-audit"

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def describe(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"; fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "; no fixed version"
        return f"{self.package} {self.version}: {self.id}{aliases} {self.severity}{fix}"


@dataclass
class AuditResult:
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    #: dependencies the backend could not audit: name -> why (never counted as clean)
    unaudited: dict[str, str] = field(default_factory=dict)
    audited: int = 0
    error: str | None = None


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def run_pip_audit(requirements: Iterable[str], *, osv_url: str = "", service: str = "osv",
                  timeout_s: float = 120.0) -> AuditResult:
    """pip-audit on pinned requirement files (``--no-deps --disable-pip``: exactly what is pinned), or on
    the installed environment when none are given."""
    reqs = list(requirements)
    with tempfile.TemporaryDirectory(prefix="deploygate-audit-") as cache:
        cmd = [sys.executable, "-m", "pip_audit", "--strict", "--format", "json", "--progress-spinner", "off",
               "--aliases", "on", "--desc", "on", "--cache-dir", cache, "--timeout", f"{int(timeout_s)}",
               "--vulnerability-service", service]
        if service == "osv" and osv_url:
            cmd += ["--osv-url", osv_url]
        for req in reqs:
            cmd += ["--requirement", req]
        if reqs:
            cmd += ["--no-deps", "--disable-pip"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30, check=False)
        except subprocess.TimeoutExpired:
            return AuditResult(error=f"pip-audit did not finish within {timeout_s + 30:g} s")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return AuditResult(error=f"pip-audit failed (exit code {done.returncode}): {_tail(done.stderr)}")
    return parse_pip_audit(data)


def parse_pip_audit(data: dict[str, Any]) -> AuditResult:
    result = AuditResult()
    for dep in data.get("dependencies", []):
        name = dep.get("name", "?")
        if dep.get("skip_reason"):
            result.unaudited[name] = dep["skip_reason"]
            continue
        result.audited += 1
        for v in dep.get("vulns", []):
            result.vulnerabilities.append(Vulnerability(
                package=name, version=str(dep.get("version", "?")), id=v["id"],
                aliases=tuple(sorted((a for a in v.get("aliases", []) if a != v["id"]),
                                     key=lambda a: (not a.startswith("CVE-"), a))),
                fix_versions=tuple(v.get("fix_versions", [])), description=v.get("description", "")))
    return result


def with_severities(result: AuditResult, osv_url: str, timeout_s: float = 10.0) -> AuditResult:
    """Fill in severities where the OSV service knows them (``GET /v1/vulns/{id}``)."""
    if not osv_url or not result.vulnerabilities:
        return result
    import requests

    base = osv_url.rsplit("/v1/", 1)[0]
    filled = []
    for v in result.vulnerabilities:
        severity = v.severity
        try:
            record = requests.get(f"{base}/v1/vulns/{v.id}", timeout=timeout_s).json()
            severity = str((record.get("database_specific") or {}).get("severity") or severity).upper()
        except (requests.RequestException, ValueError, AttributeError):
            pass
        filled.append(replace(v, severity=severity))
    result.vulnerabilities = filled
    return result


# --------------------------------------------------------------------------------------------------
# safety (optional backend: needs an API key and network access)


def safety_configured() -> bool:
    return bool(os.environ.get(SAFETY_KEY_VAR))


def run_safety(requirements: Iterable[str], timeout_s: float = 120.0) -> AuditResult:
    """``safety check --json`` on the requirement files, with the key from ``$SAFETY_API_KEY``."""
    cmd = [sys.executable, "-m", "safety", "check", "--json"]
    for req in requirements:
        cmd += ["-r", req]
    env = dict(os.environ)
    try:
        done = subprocess.run([*cmd, "--key", env[SAFETY_KEY_VAR]], capture_output=True, text=True,
                              timeout=timeout_s, check=False, env=env)
    except subprocess.TimeoutExpired:
        return AuditResult(error=f"safety did not finish within {timeout_s:g} s")
    except FileNotFoundError as exc:  # pragma: no cover
        return AuditResult(error=f"safety is not installed: {exc}")
    try:
        return parse_safety(json.loads(done.stdout))
    except (ValueError, TypeError):
        return AuditResult(error=f"safety failed (exit code {done.returncode}): {_tail(done.stderr or done.stdout)}")


def parse_safety(data: dict[str, Any] | list[Any]) -> AuditResult:
    """Parse safety's JSON report (2.x/3.x ``check --json``: ``vulnerabilities`` with ``package_name``,
    ``analyzed_version``, ``vulnerability_id``, ``CVE``, ``severity``, ``fixed_versions``)."""
    result = AuditResult()
    if isinstance(data, list):  # safety 1.x: [[name, spec, version, advisory, id, ...], ...]
        for row in data:
            result.vulnerabilities.append(Vulnerability(str(row[0]), str(row[2]), f"SAFETY-{row[4]}", (), (),
                                                        str(row[3]), "UNKNOWN", "safety"))
        return result
    packages = data.get("scanned_packages") or {}
    result.audited = len(packages) if isinstance(packages, dict) else 0
    for v in data.get("vulnerabilities", []):
        severity = v.get("severity")
        if isinstance(severity, dict):
            severity = severity.get("cvssv3", {}).get("base_severity") or severity.get("source")
        aliases = tuple(a for a in [v.get("CVE")] if a)
        result.vulnerabilities.append(Vulnerability(
            package=str(v.get("package_name")), version=str(v.get("analyzed_version")),
            id=f"SAFETY-{v.get('vulnerability_id')}", aliases=aliases,
            fix_versions=tuple(v.get("fixed_versions") or ()), description=str(v.get("advisory", ""))[:300],
            severity=str(severity or "UNKNOWN").upper(), source="safety"))
    return result
