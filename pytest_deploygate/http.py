"""HTTP client bound to one environment: base URL, timeouts and a total deadline always, a body cap,
retries of refused connections and dropped reads, per-request timing, auth from the environment's
reference, secrets redacted from every message; the write guard and the bounds live in ``transport``."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin

import requests
from requests.adapters import BaseAdapter
from urllib3.exceptions import ReadTimeoutError

from .cognito import CognitoTokens
from .config import Environment, HttpSpec
from .failures import CheckFailure, RequestFailed, Unverified, WriteRefused
from .redaction import redact
from .transport import (
    AnswerCutOff,
    AnswerTooLarge,
    DeadlineExceeded,
    ForeignAdapter,
    GuardedAdapter,
    Limits,
    WriteGuard,
    size_text,
)

__all__ = ["CheckFailure", "GateHTTP", "RequestFailed", "Unverified", "WriteGuard", "WriteRefused", "client_for",
           "json_body", "leak_watcher", "protected_guard", "redact"]


@dataclass(frozen=True)
class Timing:
    method: str
    url: str
    status: int | None
    elapsed_ms: float


class GateHTTP(requests.Session):
    """A ``requests.Session`` whose relative URLs resolve against ``base_url``.

    Every request has connect/read timeouts, a total deadline (``http.total_timeout_s``) and a body cap
    (``http.max_body_bytes``); refused connections are retried, dropped ones for idempotent reads only
    (never read timeouts or statuses, so a failing endpoint is not hidden); each request's wall time
    lands in ``timings``. Writes to a protected environment's URLs are refused at the transport
    (:class:`pytest_deploygate.transport.WriteGuard`), however the request is sent.
    """

    def __init__(self, base_url: str, spec: HttpSpec, *, auth_header: tuple[str, str] | None = None,
                 secrets: Iterable[str] = (), check: str = "", read_only: str | None = None,
                 guard: WriteGuard | None = None,
                 on_error_answer: Callable[[requests.Response], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.secrets = frozenset(secrets)
        self.check = check
        #: the protected environment this client is bound to (its writes are refused), or None
        self.read_only = read_only
        extra = WriteGuard.of((), extra={self.base_url: read_only}).scopes if read_only else ()
        self._guard = WriteGuard((guard or WriteGuard()).scopes + extra, (guard or WriteGuard()).reads)
        # set before Session.__init__, whose default adapters go through mount()
        super().__init__()
        self.spec = spec
        self.limits = Limits(spec.total_timeout_s, spec.max_body_bytes)
        #: called with every answer of status 500 or more (e.g. to scan it for leaked stack traces)
        self.on_error_answer = on_error_answer
        self.timings: list[Timing] = []
        self.timeout = (spec.connect_timeout_s, spec.read_timeout_s)
        self._scope = threading.local()
        adapter = GuardedAdapter(self._guard, self.limits, retries=spec.retries, check=check, redact=self._redact,
                                 deadline=lambda: getattr(self._scope, "deadline", None))
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.verify = spec.ca_bundle if spec.ca_bundle else spec.verify
        self.headers["User-Agent"] = "pytest-deploygate"
        if auth_header is not None:
            self.headers[auth_header[0]] = auth_header[1]

    def _redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _guarded(self, adapter: BaseAdapter) -> BaseAdapter:
        if getattr(adapter, "guard", None) is self._guard:
            return adapter
        return ForeignAdapter(adapter, self._guard, self.check, self._redact)

    def mount(self, prefix: str, adapter: BaseAdapter) -> None:
        """Mount ``adapter``; one that is not the gate's own keeps the write guard in front of it."""
        super().mount(prefix, self._guarded(adapter))

    def get_adapter(self, url: str) -> BaseAdapter:
        # also guards adapters put straight into ``self.adapters``
        return self._guarded(super().get_adapter(url))

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        method_s = method.decode() if isinstance(method, bytes) else method
        full = self.url_for(url.decode() if isinstance(url, bytes) else url)
        kwargs.setdefault("timeout", self.timeout)
        # per request: requests lets $REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829)
        kwargs.setdefault("verify", self.verify)
        return super().request(method_s, full, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send ``request`` within the deadline and body cap; a failure is a :class:`RequestFailed`."""
        if getattr(self._scope, "deadline", None) is not None:
            return super().send(request, **kwargs)  # a redirect hop, inside the first request's deadline
        kwargs.setdefault("timeout", self.timeout)
        method = (request.method or "GET").upper()
        self._scope.deadline = time.monotonic() + self.limits.total_timeout_s
        start = time.perf_counter()
        try:
            response = super().send(request, **kwargs)
        except requests.exceptions.RequestException as exc:
            self.timings.append(Timing(method, request.url or "", None, (time.perf_counter() - start) * 1000.0))
            kind, why = self._classify(exc)
            prefix = f"{self.check}: " if self.check else ""
            raise RequestFailed(self._redact(f"{prefix}{method} {request.url}: {why}"), kind) from None
        finally:
            self._scope.deadline = None
        elapsed = (time.perf_counter() - start) * 1000.0
        self.timings.append(Timing(method, request.url or "", response.status_code, elapsed))
        response.elapsed_ms = elapsed  # type: ignore[attr-defined]
        if response.status_code >= 500 and self.on_error_answer is not None:
            self.on_error_answer(response)
        return response

    def _classify(self, exc: Exception) -> tuple[str, str]:
        if isinstance(exc, AnswerTooLarge):
            return "too-large", f"answer larger than {size_text(self.limits.max_body_bytes)}"
        if isinstance(exc, DeadlineExceeded):
            return "deadline", f"no complete answer within {self.limits.total_timeout_s:g} s"
        if isinstance(exc, AnswerCutOff):
            return "dropped", "connection closed before the whole answer arrived"
        if isinstance(exc, requests.exceptions.SSLError):
            reason = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(|'|\)|$)", str(exc))
            return "tls", "TLS error" + (f": {reason.group(1).strip()}" if reason else "")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return "connect-timeout", f"connect timed out after {self.spec.connect_timeout_s:g} s"
        causes = list(_causes(exc))
        # urllib3 wraps a read timeout it may not retry in MaxRetryError, which requests turns into a
        # ConnectionError: look at the causes, not just the class
        if isinstance(exc, requests.exceptions.ReadTimeout) or any(isinstance(c, ReadTimeoutError) for c in causes):
            return "read-timeout", f"no answer within {self.spec.read_timeout_s:g} s (read timeout)"
        if isinstance(exc, requests.exceptions.TooManyRedirects):
            return "redirects", "redirect loop (too many redirects)"
        if any(isinstance(c, DROPPED) for c in causes):
            return "dropped", "connection closed before an answer"
        if any(isinstance(c, http.client.HTTPException) for c in causes):
            return "other", "the answer is not HTTP"
        if isinstance(exc, requests.exceptions.ConnectionError):
            text = str(exc)
            if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
                return "dns", "DNS lookup failed (no such host)"
            return "connect", "cannot connect (host unreachable or connection refused)"
        return "other", type(exc).__name__


#: the server closed or reset the connection after accepting it
DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def _causes(exc: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """``exc`` and what it wraps (urllib3 and requests nest errors in args, ``reason`` and causes)."""
    if depth > 6:
        return
    yield exc
    inner: list[Any] = [getattr(exc, "reason", None), exc.__cause__, exc.__context__, *exc.args]
    for item in inner:
        if isinstance(item, BaseException) and item is not exc:
            yield from _causes(item, depth + 1)


def protected_guard(environments: Iterable[Environment], allow_writes: bool) -> WriteGuard:
    """The write guard of a run: every protected environment's API, frontend and AWS endpoint URLs are
    read-only unless ``allow_writes``."""
    return WriteGuard.of(environments, allow_writes)


def auth_credential(env: Environment, tokens: CognitoTokens | None) -> tuple[str, str | None] | None:
    """What ``env``'s requests carry in its auth header — every gate client and the load alike: ``auth.value``,
    else (given the run's ``tokens``) a token of its ``auth.cognito`` user pool (:class:`Unverified` when none
    can be had). Returns the header value and the token inside it (None for ``auth.value``), or None."""
    if env.auth is None:
        return None
    if env.auth.value:
        return env.auth.value, None
    if env.auth.cognito is not None and tokens is not None:
        token = tokens.get(env)
        return token.header_value(env.auth.scheme), token.value
    return None


def client_for(env: Environment, base_url: str | None = None, *, secrets: Iterable[str] = (),
               check: str = "", allow_writes: bool = False, guard: WriteGuard | None = None,
               on_error_answer: Callable[[requests.Response], None] | None = None,
               tokens: CognitoTokens | None = None) -> GateHTTP:
    """A :class:`GateHTTP` for ``env`` (its API by default) carrying its auth header (``auth.value``, else,
    given the run's ``tokens``, a token of its ``auth.cognito`` user pool: :class:`Unverified` when none can
    be had); read-only when ``env`` is protected and ``allow_writes`` is not given, and towards every
    protected destination ``guard`` knows (by default: ``env``'s own URLs)."""
    credential = auth_credential(env, tokens)
    auth = None
    if credential is not None and env.auth is not None:
        auth = (env.auth.header, credential[0])
        if credential[1] is not None:
            secrets = (*secrets, credential[1])
    read_only = env.name if env.read_only(allow_writes) else None
    return GateHTTP(base_url if base_url is not None else env.base_url, env.http,
                    auth_header=auth, secrets=secrets, check=check, read_only=read_only,
                    guard=guard if guard is not None else protected_guard([env], allow_writes),
                    on_error_answer=on_error_answer)


def json_body(response: requests.Response, what: str = "") -> Any:
    """The JSON body of ``response`` or a CheckFailure that says what came back instead."""
    try:
        return response.json()
    except ValueError:
        ctype = response.headers.get("Content-Type", "?")
        snippet = response.text[:80].replace("\n", " ")
        raise CheckFailure(f"{what or response.request.method} {response.url}: expected JSON, got "
                           f"{ctype} ({snippet!r})") from None


class FindingRecorder(Protocol):
    def finding(self, check: str, severity: str, text: str) -> None: ...

    def record(self, name: str, value: float, unit: str | None = None, **labels: Any) -> Any: ...


def leak_watcher(gate: FindingRecorder, allowlist: Iterable[Any], seen_in: str) -> Callable[[requests.Response], None]:
    """An ``on_error_answer`` callback: an error answer met by any check is scanned like an error probe
    (stack trace, version banner); what it leaks is a ``security.errors`` finding and a
    ``security.errors.leaks_count`` metric labelled ``seen_in`` (the check) and ``url``, once per check,
    URL and kind of leak."""
    entries = tuple(allowlist)
    seen: set[tuple[str, str]] = set()

    def on_error_answer(response: requests.Response) -> None:
        from .security.allowlist import screen
        from .security.posture import Finding, leak_findings

        url = (response.url or "").split("?", 1)[0]
        method = response.request.method if response.request is not None else "?"
        fresh = [f for f in leak_findings(response.headers, response.text) if (f.id, url) not in seen]
        if not fresh:
            return
        seen.update((f.id, url) for f in fresh)
        where = f"{method} {url} answered {response.status_code} (seen in {seen_in})"
        found = [Finding(f.id, f"{where}: {f.text}", f.severity, f.owner, f.where) for f in fresh]
        counted = screen(gate, "errors", found, entries)
        gate.record("security.errors.leaks_count", len(counted), None, seen_in=seen_in, url=url)

    return on_error_answer
