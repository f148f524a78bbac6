"""HTTP client bound to one environment: base URL, timeouts always, retries on connection errors only,
per-request timing, auth from the environment's reference, secrets redacted from every message."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .config import Environment, HttpSpec
from .failures import CheckFailure, RequestFailed, Unverified, WriteRefused
from .redaction import redact

__all__ = ["CheckFailure", "GateHTTP", "RequestFailed", "Unverified", "WriteRefused", "client_for",
           "json_body", "redact"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Timing:
    method: str
    url: str
    status: int | None
    elapsed_ms: float


class GateHTTP(requests.Session):
    """A ``requests.Session`` whose relative URLs resolve against ``base_url``.

    Every request has a timeout; connection errors are retried (never reads or statuses, so a
    failing endpoint is not hidden); each request's wall time lands in ``timings``.
    """

    def __init__(self, base_url: str, spec: HttpSpec, *, auth_header: tuple[str, str] | None = None,
                 secrets: Iterable[str] = (), check: str = "", read_only: str | None = None) -> None:
        super().__init__()
        #: why writes are refused (the protected environment's name), or None when they are allowed
        self.read_only = read_only
        self.base_url = base_url.rstrip("/") + "/"
        self.spec = spec
        self.secrets = frozenset(secrets)
        self.check = check
        self.timings: list[Timing] = []
        self.timeout = (spec.connect_timeout_s, spec.read_timeout_s)
        retry = Retry(total=None, connect=spec.retries, read=0, status=0, other=0, redirect=10,
                      backoff_factor=0.1, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.verify = spec.ca_bundle if spec.ca_bundle else spec.verify
        self.headers["User-Agent"] = "pytest-deploygate"
        if auth_header is not None:
            self.headers[auth_header[0]] = auth_header[1]

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        method_s = method.decode() if isinstance(method, bytes) else method
        full = self.url_for(url.decode() if isinstance(url, bytes) else url)
        if self.read_only and method_s.upper() in WRITE_METHODS:
            prefix = f"{self.check}: " if self.check else ""
            raise WriteRefused(redact(f"{prefix}refused {method_s.upper()} {full}: environment {self.read_only} is "
                                      "protected (read-only); pass --allow-writes to let the gate write to it",
                                      self.secrets))
        kwargs.setdefault("timeout", self.timeout)
        # per request: requests lets $REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829)
        kwargs.setdefault("verify", self.verify)
        start = time.perf_counter()
        try:
            response = super().request(method_s, full, *args, **kwargs)
        except requests.exceptions.RequestException as exc:
            elapsed = (time.perf_counter() - start) * 1000.0
            self.timings.append(Timing(method_s.upper(), full, None, elapsed))
            kind, why = self._classify(exc)
            prefix = f"{self.check}: " if self.check else ""
            raise RequestFailed(redact(f"{prefix}{method_s.upper()} {full}: {why}", self.secrets), kind) from None
        elapsed = (time.perf_counter() - start) * 1000.0
        self.timings.append(Timing(method_s.upper(), full, response.status_code, elapsed))
        response.elapsed_ms = elapsed  # type: ignore[attr-defined]
        return response

    def _classify(self, exc: Exception) -> tuple[str, str]:
        if isinstance(exc, requests.exceptions.SSLError):
            reason = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(|'|\)|$)", str(exc))
            return "tls", "TLS error" + (f": {reason.group(1).strip()}" if reason else "")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return "connect-timeout", f"connect timed out after {self.spec.connect_timeout_s:g} s"
        # urllib3 wraps a read timeout it may not retry in MaxRetryError, which requests turns into a
        # ConnectionError: look at the reason, not just the class
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(reason, ReadTimeoutError):
            return "read-timeout", f"no answer within {self.spec.read_timeout_s:g} s (read timeout)"
        if isinstance(exc, requests.exceptions.TooManyRedirects):
            return "redirects", "redirect loop (too many redirects)"
        if isinstance(exc, requests.exceptions.ConnectionError):
            text = str(exc)
            if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
                return "dns", "DNS lookup failed (no such host)"
            return "connect", "cannot connect (host unreachable or connection refused)"
        return "other", type(exc).__name__



def client_for(env: Environment, base_url: str | None = None, *, secrets: Iterable[str] = (),
               check: str = "", allow_writes: bool = False) -> GateHTTP:
    """A :class:`GateHTTP` for ``env`` (its API by default) carrying its auth header; read-only when
    ``env`` is protected and ``allow_writes`` is not given."""
    auth = (env.auth.header, env.auth.value) if env.auth and env.auth.value else None
    read_only = env.name if env.protected and not allow_writes else None
    return GateHTTP(base_url if base_url is not None else env.base_url, env.http,
                    auth_header=auth, secrets=secrets, check=check, read_only=read_only)


def json_body(response: requests.Response, what: str = "") -> Any:
    """The JSON body of ``response`` or a CheckFailure that says what came back instead."""
    try:
        return response.json()
    except ValueError:
        ctype = response.headers.get("Content-Type", "?")
        snippet = response.text[:80].replace("\n", " ")
        raise CheckFailure(f"{what or response.request.method} {response.url}: expected JSON, got "
                           f"{ctype} ({snippet!r})") from None
