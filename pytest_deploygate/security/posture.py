"""The HTTP posture of a deployment: security headers, CORS, error leaks, TLS, secrets in the frontend.

Every finding has a stable id (``DG-…``) that a ``security.allowlist`` entry can accept; see :class:`Finding`.
"""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from urllib.parse import urlsplit

from ..failures import READ_METHODS, RequestFailed

if TYPE_CHECKING:
    import requests

#: what a secret looks like in a frontend bundle: (id suffix, kind, pattern); the match is shown masked
SECRET_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("AWS-ACCESS-KEY", "AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS-SECRET-KEY", "AWS secret access key", re.compile(
        r"(?i)(?:aws)?_?secret_?(?:access)?_?key['\"]?\s*[:=]\s*['\"]([A-Za-z0-9/+=]{40})['\"]")),
    ("PRIVATE-KEY", "private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("GITHUB-TOKEN", "GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("SLACK-TOKEN", "Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
    ("API-KEY", "API key or token", re.compile(
        r"(?i)\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|password)['\"]?\s*[:=]\s*"
        r"['\"]([^'\"\s]{12,})['\"]")),
)
TRACE_PATTERNS = (
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"File \\?\"[^\"\\]+\\?\", line \d+"),
    re.compile(r"\bat [\w.$]+\([\w]+\.java:\d+\)"),
)
#: a framework or server named with its version in an answer's body
BODY_BANNER = re.compile(r"(?i)\b(?:werkzeug|django|flask|express|node\.js)/\d+\.\d+")
#: headers that name the server or framework; Server only counts when it carries a version ("nginx" is fine)
BANNER_HEADERS = ("Server", "X-Powered-By", "X-AspNet-Version")
VERSIONED = re.compile(r"\d+\.\d+")
#: an origin no environment may allow (the .invalid TLD never resolves)
FOREIGN_ORIGIN = "https://deploygate-foreign-origin.invalid"

SECURITY = "security"
ISOLATION = "isolation"


@dataclass(frozen=True)
class Finding:
    """One posture finding. ``id`` is stable across runs so an allowlist entry can accept it:

    - ``DG-HEADER-<Header-Name>``: a security header missing or with a wrong value
    - ``DG-CORS-CREDENTIALS``: a foreign origin is allowed with credentials (security)
    - ``DG-CORS-WILDCARD`` / ``DG-CORS-REFLECT``: any origin is allowed, by ``*`` or by echoing the
      Origin, where ``cors_origins`` does not say ``*`` (isolation)
    - ``DG-CORS-PEER-<env>``: another environment's frontend origin is allowed (isolation)
    - ``DG-CORS-OWN-ORIGIN``: this environment's own frontend origin is not allowed (isolation)
    - ``DG-ERROR-TRACE``: an error answer carries a stack trace
    - ``DG-VERSION-BANNER-<Header>`` / ``DG-VERSION-BANNER-body``: a server or framework banner
    - ``DG-SECRET-<KIND>``: a secret-looking value in the frontend (``AWS-ACCESS-KEY``, ``API-KEY``, …)

    ``owner`` is the category that reports it (one owner per finding); ``where`` is matched against an
    allowlist entry's ``path`` (the frontend file for secrets).
    """

    id: str
    text: str
    severity: str = "MEDIUM"
    owner: str = SECURITY
    where: str = ""

    def describe(self) -> str:
        return f"{self.text} [{self.id}]"


def mask(value: str) -> str:
    return value[:4] + "…" + value[-2:] if len(value) > 8 else "…"


def secret_findings(text: str, where: str = "") -> list[Finding]:
    """Secret-looking values in ``text`` (found at ``where``), described with the value masked."""
    found: dict[str, Finding] = {}
    for suffix, kind, pattern in SECRET_PATTERNS:
        for m in pattern.finditer(text):
            value = m.group(1) if m.groups() else m.group(0)
            described = f"{kind} {mask(value)}"
            found.setdefault(described, Finding(f"DG-SECRET-{suffix}", described, "HIGH", SECURITY, where))
    return list(found.values())


def find_secrets(text: str) -> list[str]:
    """Secret-looking values in ``text``, described with the value masked."""
    return [f.text for f in secret_findings(text)]


def header_findings(headers: Mapping[str, str], expected: Mapping[str, str], https: bool) -> list[Finding]:
    """Missing or wrong security headers; ``expected`` maps a header to a regex its value must match."""
    wanted = dict(expected)
    if https:
        wanted.setdefault("Strict-Transport-Security", r"max-age=\d+.*")
    lower = {k.lower(): v for k, v in headers.items()}
    found = []
    for name, pattern in wanted.items():
        value = lower.get(name.lower())
        if value is None:
            if name.lower() == "x-frame-options" and "frame-ancestors" in lower.get("content-security-policy", ""):
                continue  # CSP frame-ancestors is the modern frame protection
            found.append(Finding(f"DG-HEADER-{name}", f"{name} is missing"))
        elif not re.fullmatch(pattern, value.strip(), flags=re.IGNORECASE):
            found.append(Finding(f"DG-HEADER-{name}", f"{name}: {value!r} does not match {pattern!r}"))
    return found


def leak_findings(headers: Mapping[str, str], body: str) -> list[Finding]:
    """What an answer gives away: a stack trace, a server or framework banner (one finding per kind)."""
    found = []
    trace = next((m for m in (p.search(body) for p in TRACE_PATTERNS) if m), None)
    if trace:
        found.append(Finding("DG-ERROR-TRACE", f"body carries {trace.group(0)!r}"))
    banner = BODY_BANNER.search(body)
    if banner:
        found.append(Finding("DG-VERSION-BANNER-body", f"body names a version: {banner.group(0)!r}"))
    for name in BANNER_HEADERS:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
        if not value:
            continue
        versioned = VERSIONED.search(value) is not None
        if versioned or name != "Server":
            what = "names a version" if versioned else "names the framework"
            found.append(Finding(f"DG-VERSION-BANNER-{name}", f"{name}: {value!r} {what}"))
    return found


def leak_problems(status: int, headers: Mapping[str, str], body: str) -> list[str]:
    """What an error answer gives away, as text (see :func:`leak_findings` for the findings)."""
    return [f.text for f in leak_findings(headers, body)]


# --------------------------------------------------------------------------------------------------
# CORS: one rule set, two owners. Security owns what lets a foreign site act as the user (credentials
# granted to an origin outside the list); isolation owns which origins an environment admits (its own
# yes, its peers' and any origin no). A peer admitted only because the API admits *every* origin is
# that one finding, not one more per peer.


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def own_origins(allowed: Iterable[str], api_origin: str) -> list[str]:
    """The origins that must be admitted: the configured ones, less ``*`` and the API's own origin (a
    same-origin frontend makes no cross-origin call, so no Access-Control-Allow-Origin is owed to it)."""
    return [o for o in dict.fromkeys(allowed) if o and o != "*" and o != api_origin]


def peer_origins(peers: Mapping[str, str], allowed: Iterable[str], api_origin: str) -> dict[str, str]:
    """Peer environment -> its frontend origin, for the peers whose origin this environment must refuse."""
    mine = set(allowed) | {api_origin}
    return {name: origin for name, origin in peers.items() if origin and origin not in mine}


def _admits(headers: Mapping[str, str], origin: str) -> tuple[str | None, bool]:
    lower = {k.lower(): v for k, v in headers.items()}
    acao = lower.get("access-control-allow-origin")
    creds = lower.get("access-control-allow-credentials", "").strip().lower() == "true"
    return (acao if acao in ("*", origin) else None), creds


def cors_findings(answers: Mapping[str, Mapping[str, str]], allowed: Iterable[str], *, api_origin: str = "",
                  peers: Mapping[str, str] | None = None, foreign: str = FOREIGN_ORIGIN) -> list[Finding]:
    """Findings from the API's answers to requests carrying ``Origin: <origin>`` (``answers`` maps an origin
    to the answer's headers; origins not probed are not judged). ``allowed`` is ``isolation.cors_origins``
    (``*`` = any origin, but never with credentials); ``peers`` maps a peer environment to its origin."""
    allowed = [o for o in allowed if o]
    anyone = "*" in allowed
    found = []
    foreign_admitted = False
    if foreign in answers:
        acao, creds = _admits(answers[foreign], foreign)
        foreign_admitted = acao is not None
        if acao and creds:
            found.append(Finding("DG-CORS-CREDENTIALS", f"allows foreign origin {foreign} with credentials "
                                 f"(Access-Control-Allow-Origin: {acao}, Access-Control-Allow-Credentials: true)",
                                 "HIGH", SECURITY))
        elif acao == "*" and not anyone:
            found.append(Finding("DG-CORS-WILDCARD", f"answers Access-Control-Allow-Origin: * to {foreign} "
                                 f"(allowed: {', '.join(allowed) or 'none'})", "HIGH", ISOLATION))
        elif acao and not anyone:
            found.append(Finding("DG-CORS-REFLECT", f"reflects the foreign origin {foreign}: any origin is "
                                 f"allowed (allowed: {', '.join(allowed) or 'none'})", "HIGH", ISOLATION))
    if not foreign_admitted:
        for name, origin in peer_origins(peers or {}, allowed, api_origin).items():
            if origin not in answers:
                continue
            acao, creds = _admits(answers[origin], origin)
            if acao and (creds or not anyone):
                found.append(Finding(f"DG-CORS-PEER-{name}", f"allows {name}'s origin {origin}"
                                     + (" with credentials" if creds else ""), "HIGH", ISOLATION))
    for origin in own_origins(allowed, api_origin):
        if origin not in answers:
            continue
        acao = {k.lower(): v for k, v in answers[origin].items()}.get("access-control-allow-origin")
        if acao not in (origin, "*"):
            found.append(Finding("DG-CORS-OWN-ORIGIN", f"does not allow its own origin {origin} "
                                 f"(answered {acao!r})", "MEDIUM", ISOLATION))
    return found


def cors_probe_origins(allowed: Iterable[str], *, api_origin: str = "", peers: Mapping[str, str] | None = None,
                       foreign: str = FOREIGN_ORIGIN) -> list[str]:
    """Every origin :func:`cors_findings` needs an answer for, to judge all of its findings."""
    allowed = list(allowed)
    return list(dict.fromkeys([foreign, *peer_origins(peers or {}, allowed, api_origin).values(),
                               *own_origins(allowed, api_origin)]))


# --------------------------------------------------------------------------------------------------
# Could not check: one rule for every posture check


class Recorder(Protocol):
    def could_not_check(self, category: str, check: str, why: str, **labels: object) -> NoReturn: ...


# only reads (READ_METHODS) are asked twice: a one-off 5xx says nothing about headers or CORS
RETRY_PAUSE_S = 0.2


def settle(send: Callable[[], requests.Response], method: str) -> requests.Response:
    """``send()``; a read answered with a 5xx is asked once more, so that one random server error does
    not turn a posture check into *could not check* (a persistent one still does)."""
    response = send()
    if response.status_code >= 500 and method.upper() in READ_METHODS:
        time.sleep(RETRY_PAUSE_S)
        response = send()
    return response


def failure_reason(exc: RequestFailed, client: Any, method: str = "", url: str = "") -> str:
    """A transport failure's reason without the prefixes the caller already states (check name, request)."""
    why = str(exc).removeprefix(f"{getattr(client, 'check', '')}: ")
    return why.removeprefix(f"{method} {url}: ") if method else why


def fetch(gate: Recorder, category: str, check: str, client: Any, method: str, url: str, *,
          error_expected: bool = False, labels: Mapping[str, object] | None = None,
          **kwargs: Any) -> requests.Response:
    """``client.request(method, url)``, or a failed *could not check* (``<category>.unverified_count``)
    when nothing usable came back: a timeout, a dropped connection, or a 5xx that persists (unless the
    check provokes errors on purpose, ``error_expected``). Never a finding."""
    try:
        if error_expected:
            response = client.request(method, url, **kwargs)
        else:
            response = settle(lambda: client.request(method, url, **kwargs), method)
    except RequestFailed as exc:
        gate.could_not_check(category, check, failure_reason(exc, client), **dict(labels or {}))
    if response.status_code >= 500 and not error_expected:
        again = " (asked twice)" if method.upper() in READ_METHODS else ""
        gate.could_not_check(category, check, f"{method} {response.url} answered {response.status_code}{again}",
                             **dict(labels or {}))
    return response


# --------------------------------------------------------------------------------------------------
# TLS


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
