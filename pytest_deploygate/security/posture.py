"""The HTTP posture of a deployment: security headers, CORS, error leaks, TLS, secrets in the frontend."""

from __future__ import annotations

import datetime
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

#: what a secret looks like in a frontend bundle: (kind, pattern); the match is shown masked
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(
        r"(?i)(?:aws)?_?secret_?(?:access)?_?key['\"]?\s*[:=]\s*['\"]([A-Za-z0-9/+=]{40})['\"]")),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
    ("API key or token", re.compile(
        r"(?i)\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|password)['\"]?\s*[:=]\s*"
        r"['\"]([^'\"\s]{12,})['\"]")),
)
TRACE_PATTERNS = (
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"File \\?\"[^\"\\]+\\?\", line \d+"),
    re.compile(r"\bat [\w.$]+\([\w]+\.java:\d+\)"),
    re.compile(r"(?i)\b(?:werkzeug|django|flask|express|node\.js)/\d+\.\d+"),
)
VERSIONED = re.compile(r"\d+\.\d+")
#: an origin no environment may allow (the .invalid TLD never resolves)
FOREIGN_ORIGIN = "https://deploygate-foreign-origin.invalid"


def mask(value: str) -> str:
    return value[:4] + "…" + value[-2:] if len(value) > 8 else "…"


def find_secrets(text: str) -> list[str]:
    """Secret-looking values in ``text``, described with the value masked."""
    found = []
    for kind, pattern in SECRET_PATTERNS:
        for m in pattern.finditer(text):
            value = m.group(1) if m.groups() else m.group(0)
            found.append(f"{kind} {mask(value)}")
    return list(dict.fromkeys(found))


def header_problems(headers: Mapping[str, str], expected: Mapping[str, str], https: bool) -> list[str]:
    """Missing or wrong security headers; ``expected`` maps a header to a regex its value must match."""
    wanted = dict(expected)
    if https:
        wanted.setdefault("Strict-Transport-Security", r"max-age=\d+.*")
    lower = {k.lower(): v for k, v in headers.items()}
    problems = []
    for name, pattern in wanted.items():
        value = lower.get(name.lower())
        if value is None:
            if name.lower() == "x-frame-options" and "frame-ancestors" in lower.get("content-security-policy", ""):
                continue  # CSP frame-ancestors is the modern frame protection
            problems.append(f"{name} is missing")
        elif not re.fullmatch(pattern, value.strip(), flags=re.IGNORECASE):
            problems.append(f"{name}: {value!r} does not match {pattern!r}")
    return problems


def leak_problems(status: int, headers: Mapping[str, str], body: str) -> list[str]:
    """What an error answer gives away: stack traces, framework or server versions."""
    problems = []
    for pattern in TRACE_PATTERNS:
        m = pattern.search(body)
        if m:
            problems.append(f"body carries {m.group(0)!r}")
    for name in ("Server", "X-Powered-By", "X-AspNet-Version"):
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
        if value and (name != "Server" or VERSIONED.search(value)):
            problems.append(f"{name}: {value!r} names a version")
    return problems


def cors_problems(origin: str, headers: Mapping[str, str], protected: bool, allowed: list[str]) -> list[str]:
    lower = {k.lower(): v for k, v in headers.items()}
    acao = lower.get("access-control-allow-origin")
    creds = lower.get("access-control-allow-credentials", "").lower() == "true"
    problems = []
    if acao and creds and (acao == "*" or acao == origin) and origin not in allowed:
        problems.append(f"allows foreign origin {origin} with credentials")
    elif protected and acao == "*":
        problems.append("answers Access-Control-Allow-Origin: * on a protected environment")
    elif protected and acao == origin and origin not in allowed:
        problems.append(f"reflects the foreign origin {origin}")
    return problems


@dataclass(frozen=True)
class TlsInfo:
    host: str
    not_after: datetime.datetime
    days_left: float
    issuer: str


def tls_info(url: str, ca_bundle: str | None = None, timeout_s: float = 10.0) -> TlsInfo:
    """Handshake with ``url``'s host, verifying its certificate chain and name (ssl.SSLError if not)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    with socket.create_connection((host, port), timeout=timeout_s) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert() or {}
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert.get("notAfter"))),
                                                tz=datetime.timezone.utc)
    days = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400.0
    issuer = ", ".join("=".join(x) for rdn in cert.get("issuer", ()) for x in rdn)
    return TlsInfo(host, not_after, days, issuer)
